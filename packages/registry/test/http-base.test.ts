/**
 * OCI Distribution Spec v1.1: API version check (end-1), health endpoint, unknown routes,
 * repository-name validation and the error format shared by every endpoint.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { backends } from "./helpers/backends.js";
import { assertNoStackTrace, expectError, useRegistry } from "./helpers/http.js";
import { pushBlob, randomBlob, sha256, unknownDigest } from "./helpers/oci.js";

for (const backend of backends()) {
  describe(`base API [${backend.name}]`, () => {
    const h = useRegistry(backend);

    it("GET /v2/ answers 200 with Docker-Distribution-API-Version: registry/2.0", async () => {
      const res = await h.req("GET", "/v2/");
      assert.equal(res.status, 200);
      assert.equal(res.header("docker-distribution-api-version"), "registry/2.0");
    });

    it("HEAD /v2/ answers 200 with the API version header", async () => {
      const res = await h.req("HEAD", "/v2/");
      assert.equal(res.status, 200);
      assert.equal(res.header("docker-distribution-api-version"), "registry/2.0");
      assert.equal(res.body.length, 0);
    });

    it("GET /livez answers 200 without consulting dependencies", async () => {
      const res = await h.req("GET", "/livez");
      assert.equal(res.status, 200);
      assert.deepEqual(res.json(), { status: "ok" });
      assert.equal(res.header("cache-control"), "no-store");
    });

    it("GET /healthz and /readyz answer 200 with every dependency's check", async () => {
      for (const path of ["/healthz", "/readyz"]) {
        const res = await h.req("GET", path);
        assert.equal(res.status, 200, path);
        const body = res.json();
        assert.equal(body.status, "ok");
        assert.equal(body.checks.storage.status, "ok");
        if (h.reg.config.redis.url) assert.equal(body.checks.redis.status, "ok");
      }
    });

    it("an unknown path outside /v2 answers 404 with an OCI error body", async () => {
      const res = await h.req("GET", "/no/such/endpoint");
      assert.equal(res.status, 404);
      assert.match(res.header("content-type") ?? "", /^application\/json/);
      const body = res.json();
      assert.ok(Array.isArray(body.errors) && body.errors.length > 0);
      assert.equal(typeof body.errors[0].code, "string");
      assertNoStackTrace(res);
    });

    it("an unknown path under /v2 answers 404 with an OCI error body", async () => {
      const res = await h.req("GET", "/v2/some/repo/nonsense/thing");
      assert.equal(res.status, 404);
      assert.match(res.header("content-type") ?? "", /^application\/json/);
      const body = res.json();
      assert.ok(Array.isArray(body.errors) && body.errors.length > 0);
      assertNoStackTrace(res);
    });

    it("an unsupported method on a known endpoint answers 404 or 405 with an OCI error body", async () => {
      const res = await h.req("PATCH", `/v2/some/repo/manifests/latest`, { body: "x" });
      assert.ok(res.status === 404 || res.status === 405, `got ${res.status}`);
      assert.match(res.header("content-type") ?? "", /^application\/json/);
      assert.ok(Array.isArray(res.json().errors));
      assertNoStackTrace(res);
    });

    describe("repository names", () => {
      const invalid = ["UPPER/case", "-leading-dash", "trailing-dash-/x", "a..b", "a/.hidden", "a_-b", `${"a".repeat(256)}`];
      for (const name of invalid) {
        it(`rejects ${JSON.stringify(name.length > 40 ? `${name.slice(0, 20)}...(${name.length})` : name)} with 400 NAME_INVALID`, async () => {
          const res = await h.req("GET", `/v2/${name}/blobs/${unknownDigest()}`);
          expectError(res, 400, "NAME_INVALID");
          const up = await h.req("POST", `/v2/${name}/blobs/uploads/`);
          expectError(up, 400, "NAME_INVALID");
          const tags = await h.req("GET", `/v2/${name}/tags/list`);
          expectError(tags, 400, "NAME_INVALID");
        });
      }

      it("accepts names using every separator of the grammar (., _, __, -, --, /)", async () => {
        const data = randomBlob(16);
        for (const name of ["a.b/c_d/e__f/g-h/i--j", "x0/y1/z2/deep/er/still"]) {
          await pushBlob(h, name, data);
          const res = await h.req("HEAD", `/v2/${name}/blobs/${sha256(data)}`);
          assert.equal(res.status, 200, name);
        }
      });
    });

    it("error bodies carry spec codes, JSON content type and no stack trace (several endpoints)", async () => {
      const probes = [
        h.req("GET", `/v2/nothere/blobs/${unknownDigest()}`),
        h.req("GET", "/v2/nothere/manifests/latest"),
        h.req("GET", "/v2/nothere/blobs/uploads/00000000-0000-0000-0000-000000000000"),
        h.req("PUT", "/v2/nothere/manifests/latest", { headers: { "Content-Type": "application/vnd.oci.image.manifest.v1+json" }, body: "{not json" }),
        h.req("GET", "/v2/nothere/blobs/sha256:xyz"),
      ];
      for (const res of await Promise.all(probes)) {
        assert.ok(res.status >= 400 && res.status < 500, `status ${res.status}`);
        expectError(res, res.status, ["BLOB_UNKNOWN", "MANIFEST_UNKNOWN", "NAME_UNKNOWN", "BLOB_UPLOAD_UNKNOWN", "MANIFEST_INVALID", "DIGEST_INVALID"]);
      }
    });
  });
}
