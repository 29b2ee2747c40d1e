/**
 * Error behaviour across the API: framework-level failures (bad URL encoding, unknown methods)
 * still answer OCI error JSON; deletes disabled by configuration answer 400 or 405 as the spec
 * requires; expired upload sessions are unknown; storage failures answer a 5xx JSON error that
 * leaks neither stack traces nor storage paths.
 */
import assert from "node:assert/strict";
import { rename, rm, symlink } from "node:fs/promises";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { backends } from "./helpers/backends.js";
import { assertNoStackTrace, expectError, type Harness, locationPath, SPEC_ERROR_CODES, startRegistry, useRegistry, withQuery } from "./helpers/http.js";
import { MediaTypes, pushBlob, pushImage, randomBlob, repoName, sha256 } from "./helpers/oci.js";

function assertJsonErrorBody(res: { status: number; header(n: string): string | undefined; json(): { errors?: { code: string }[] }; text(): string }): void {
  assert.match(res.header("content-type") ?? "", /^application\/json/, `Content-Type for status ${res.status}: ${res.header("content-type")}`);
  const body = res.json();
  assert.ok(Array.isArray(body.errors) && body.errors.length > 0, `errors array expected: ${res.text().slice(0, 200)}`);
  for (const e of body.errors) assert.match(e.code, /^[A-Z_]+$/);
}

for (const backend of backends()) {
  describe(`errors [${backend.name}]`, () => {
    describe("framework-level failures", () => {
      const h = useRegistry(backend);

      it("malformed percent-encoding in the path is a 4xx OCI error JSON", async () => {
        for (const path of ["/v2/repo%E0%A4%A/tags/list", `/v2/repo/blobs/sha256%G1${"a".repeat(64)}`, "/v2/repo/manifests/%ZZ"]) {
          const res = await h.req("GET", path);
          assert.ok(res.status >= 400 && res.status < 500, `${path}: ${res.status}`);
          assertJsonErrorBody(res);
          assertNoStackTrace(res);
        }
      });

      it("an unsupported method on /v2/_catalog or tags/list is 404/405 OCI error JSON", async () => {
        for (const [m, p] of [
          ["POST", "/v2/_catalog"],
          ["DELETE", "/v2/some/repo/tags/list"],
        ] as const) {
          const res = await h.req(m, p);
          assert.ok(res.status === 404 || res.status === 405, `${m} ${p}: ${res.status}`);
          assertJsonErrorBody(res);
        }
      });

      it("a body sent with Content-Type: application/json to an upload is stored as raw bytes", async () => {
        const repo = repoName();
        const data = Buffer.from('{"not": "parsed"}  ');
        const res = await h.req("POST", `/v2/${repo}/blobs/uploads/?digest=${sha256(data)}`, { headers: { "Content-Type": "application/json" }, body: data });
        assert.equal(res.status, 201);
        const get = await h.req("GET", `/v2/${repo}/blobs/${sha256(data)}`);
        assert.ok(get.body.equals(data));
      });
    });

    describe("deletes disabled by configuration", () => {
      const h = useRegistry(backend, (c) => {
        c.delete.enabled = false;
      });

      it("DELETE of a manifest by digest, of a tag and of a blob are 400 or 405 and delete nothing", async () => {
        const repo = repoName();
        const img = await pushImage(h, repo, "t");
        const layer = img.parts.layerDescs[0].digest;
        for (const path of [`/v2/${repo}/manifests/${img.digest}`, `/v2/${repo}/manifests/t`, `/v2/${repo}/blobs/${layer}`]) {
          const res = await h.req("DELETE", path);
          assert.ok(res.status === 400 || res.status === 405, `DELETE ${path}: ${res.status}`);
          if (res.body.length > 0) expectError(res, [400, 405], SPEC_ERROR_CODES);
        }
        assert.equal((await h.req("GET", `/v2/${repo}/manifests/t`, { headers: { Accept: MediaTypes.OciManifest } })).status, 200);
        assert.equal((await h.req("GET", `/v2/${repo}/manifests/${img.digest}`)).status, 200);
        assert.equal((await h.req("GET", `/v2/${repo}/blobs/${layer}`)).status, 200);
      });

      it("cancelling an upload session still works (it is not a content delete)", async () => {
        const repo = repoName();
        const res = await h.req("POST", `/v2/${repo}/blobs/uploads/`);
        const del = await h.req("DELETE", locationPath(res.header("location")));
        assert.equal(del.status, 204);
      });
    });

    describe("upload session expiry", () => {
      const h = useRegistry(backend, (c) => {
        c.uploads.ttlSeconds = 1;
        c.uploads.purgeIntervalSeconds = 1;
      });

      it("a session untouched for longer than the TTL is 404 BLOB_UPLOAD_UNKNOWN and its data never becomes a blob", async () => {
        const repo = repoName();
        const data = randomBlob(500);
        const post = await h.req("POST", `/v2/${repo}/blobs/uploads/`);
        assert.equal(post.status, 202);
        const p = await h.req("PATCH", locationPath(post.header("location")), {
          headers: { "Content-Type": "application/octet-stream", "Content-Range": "0-499" },
          body: data,
        });
        assert.equal(p.status, 202);
        const loc = locationPath(p.header("location"));
        await sleep(3000);
        expectError(await h.req("GET", loc), 404, "BLOB_UPLOAD_UNKNOWN");
        expectError(await h.req("PUT", withQuery(loc, { digest: sha256(data) })), 404, "BLOB_UPLOAD_UNKNOWN");
        expectError(await h.req("GET", `/v2/${repo}/blobs/${sha256(data)}`), 404, "BLOB_UNKNOWN");
      });
    });

    describe("storage failure", () => {
      let h: Harness;
      let root = "";
      before(async () => {
        h = await startRegistry(backend);
        root = h.reg.config.storage.driver === "filesystem" ? h.reg.config.storage.filesystem.root : "";
      });
      after(async () => {
        await h?.close();
        if (root) await rm(`${root}.moved`, { recursive: true, force: true });
      });

      it("a broken filesystem root gives 5xx JSON errors without stack traces or paths", async (t) => {
        if (!root) {
          t.skip("only the filesystem backend can be broken from outside");
          return;
        }
        const repo = repoName();
        const d = await pushBlob(h, repo, randomBlob(100));
        await rename(root, `${root}.moved`);
        // A symlink to itself: every access below the root fails with ELOOP.
        await symlink(root, root);
        const probes = [
          await h.req("GET", `/v2/${repo}/blobs/${d}`),
          await h.req("POST", `/v2/${repo}/blobs/uploads/?digest=${sha256("x")}`, { headers: { "Content-Type": "application/octet-stream" }, body: "x" }),
          await h.req("GET", `/v2/${repo}/tags/list`),
        ];
        for (const res of probes) {
          assert.ok(res.status >= 500 && res.status < 600, `expected 5xx, got ${res.status}: ${res.text().slice(0, 200)}`);
          assertJsonErrorBody(res);
          assertNoStackTrace(res);
          assert.ok(!res.text().includes(root), `error body leaks the storage path: ${res.text().slice(0, 300)}`);
          assert.doesNotMatch(res.text(), /ELOOP|ENOTDIR|ENOENT|EACCES/, "error body leaks a system error");
        }
      });
    });
  });
}
