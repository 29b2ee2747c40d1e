/**
 * OCI Distribution Spec v1.1 cross-repository mount (end-11) and repository isolation: a
 * blob is readable only through repositories it was pushed or mounted to.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { backends } from "./helpers/backends.js";
import { expectError, locationPath, useRegistry, withQuery } from "./helpers/http.js";
import {
  assertBytesEqual,
  imageParts,
  MediaTypes,
  ociManifestBytes,
  pushBlob,
  pushParts,
  putManifest,
  randomBlob,
  repoName,
  sha256,
  sha512,
  unknownDigest,
} from "./helpers/oci.js";

for (const backend of backends()) {
  describe(`cross-repository mount and isolation [${backend.name}]`, () => {
    const h = useRegistry(backend);

    it("a blob pushed to A is 404 BLOB_UNKNOWN through B", async () => {
      const a = repoName("a");
      const b = repoName("b");
      await pushBlob(h, b, randomBlob(10)); // B exists as a repository
      const data = randomBlob(200);
      const d = await pushBlob(h, a, data);
      expectError(await h.req("GET", `/v2/${b}/blobs/${d}`), 404, "BLOB_UNKNOWN");
      assert.equal((await h.req("HEAD", `/v2/${b}/blobs/${d}`)).status, 404);
      expectError(await h.req("GET", `/v2/${b}/blobs/${d}`, { headers: { Range: "bytes=0-9" } }), 404, "BLOB_UNKNOWN");
    });

    it("POST ?mount=&from= with the blob in from is 201 with Location /v2/<name>/blobs/<digest>; the blob is then readable in both", async () => {
      const a = repoName("a");
      const b = repoName("b");
      const data = randomBlob(300);
      const d = await pushBlob(h, a, data);
      const res = await h.req("POST", `/v2/${b}/blobs/uploads/?mount=${d}&from=${a}`);
      assert.equal(res.status, 201);
      assert.equal(locationPath(res.header("location")), `/v2/${b}/blobs/${d}`);
      assert.equal(res.header("docker-content-digest"), d);
      for (const r of [a, b]) {
        const get = await h.req("GET", `/v2/${r}/blobs/${d}`);
        assert.equal(get.status, 200, r);
        assertBytesEqual(get.body, data, `blob via ${r}`);
      }
    });

    it("mounting a sha512 blob works the same way", async () => {
      const a = repoName("a");
      const b = repoName("b");
      const data = randomBlob(100);
      const d = await pushBlob(h, a, data, sha512(data));
      const res = await h.req("POST", `/v2/${b}/blobs/uploads/?mount=${d}&from=${a}`);
      assert.equal(res.status, 201);
      assert.equal(locationPath(res.header("location")), `/v2/${b}/blobs/${d}`);
      assert.equal((await h.req("GET", `/v2/${b}/blobs/${d}`)).status, 200);
    });

    it("mount when the blob is not in from is 202 with a working upload session in the target", async () => {
      const a = repoName("a");
      const b = repoName("b");
      const c = repoName("c");
      const data = randomBlob(150);
      const d = await pushBlob(h, c, data); // known to the registry, but not in A
      await pushBlob(h, a, randomBlob(5));
      const res = await h.req("POST", `/v2/${b}/blobs/uploads/?mount=${d}&from=${a}`);
      assert.equal(res.status, 202);
      const loc = locationPath(res.header("location"));
      assert.ok(loc.startsWith(`/v2/${b}/blobs/uploads/`), loc);
      expectError(await h.req("GET", `/v2/${b}/blobs/${d}`), 404, "BLOB_UNKNOWN");
      const put = await h.req("PUT", withQuery(loc, { digest: d }), { headers: { "Content-Type": "application/octet-stream" }, body: data });
      assert.equal(put.status, 201);
      assert.equal((await h.req("GET", `/v2/${b}/blobs/${d}`)).status, 200);
    });

    it("mount from a repository that does not exist is 202 (upload session)", async () => {
      const b = repoName("b");
      const res = await h.req("POST", `/v2/${b}/blobs/uploads/?mount=${unknownDigest()}&from=${repoName("ghost")}`);
      assert.equal(res.status, 202);
      assert.ok(locationPath(res.header("location")).startsWith(`/v2/${b}/blobs/uploads/`));
    });

    it("mount without from, blob unknown to the registry, is 202 (upload session)", async () => {
      const b = repoName("b");
      const res = await h.req("POST", `/v2/${b}/blobs/uploads/?mount=${unknownDigest()}`);
      assert.equal(res.status, 202);
      assert.ok(locationPath(res.header("location")).startsWith(`/v2/${b}/blobs/uploads/`));
    });

    it("mount without from, blob known in another repository, is 201 (automatic content discovery)", async () => {
      const a = repoName("a");
      const b = repoName("b");
      const data = randomBlob(120);
      const d = await pushBlob(h, a, data);
      const res = await h.req("POST", `/v2/${b}/blobs/uploads/?mount=${d}`);
      assert.equal(res.status, 201);
      assert.equal(locationPath(res.header("location")), `/v2/${b}/blobs/${d}`);
      const get = await h.req("GET", `/v2/${b}/blobs/${d}`);
      assert.equal(get.status, 200);
      assertBytesEqual(get.body, data, "auto-mounted blob");
    });

    it("mount with a malformed digest is 400 DIGEST_INVALID or falls back to 202", async () => {
      const b = repoName("b");
      const res = await h.req("POST", `/v2/${b}/blobs/uploads/?mount=sha256:nothex&from=${repoName("a")}`);
      if (res.status === 202) return;
      expectError(res, 400, "DIGEST_INVALID");
    });

    it("mount with an invalid from name is 400 NAME_INVALID (never a server error)", async () => {
      const b = repoName("b");
      const a = repoName("a");
      const data = randomBlob(64);
      await pushBlob(h, a, data);
      for (const from of ["Not..Valid", "a/../../x", "a//b", "%00", `${"a".repeat(300)}`, "/abs", "a/", "..", `${a}%00`]) {
        for (const digest of [unknownDigest(), sha256(data)]) {
          const res = await h.req("POST", `/v2/${b}/blobs/uploads/?mount=${digest}&from=${from}`);
          expectError(res, 400, "NAME_INVALID", `from=${from.slice(0, 20)}`);
        }
      }
    });

    it("deleting a blob in one repository leaves a mounted copy readable in the other", async () => {
      const a = repoName("a");
      const b = repoName("b");
      const data = randomBlob(90);
      const d = await pushBlob(h, a, data);
      assert.equal((await h.req("POST", `/v2/${b}/blobs/uploads/?mount=${d}&from=${a}`)).status, 201);
      assert.equal((await h.req("DELETE", `/v2/${a}/blobs/${d}`)).status, 202);
      expectError(await h.req("GET", `/v2/${a}/blobs/${d}`), 404, "BLOB_UNKNOWN");
      const get = await h.req("GET", `/v2/${b}/blobs/${d}`);
      assert.equal(get.status, 200);
      assertBytesEqual(get.body, data, "blob via B after delete in A");
    });

    it("pushing the same content to two repositories keeps them independent", async () => {
      const a = repoName("a");
      const b = repoName("b");
      const data = randomBlob(64);
      const d = await pushBlob(h, a, data);
      await pushBlob(h, b, data);
      assert.equal((await h.req("DELETE", `/v2/${b}/blobs/${d}`)).status, 202);
      assert.equal((await h.req("GET", `/v2/${a}/blobs/${d}`)).status, 200);
      expectError(await h.req("GET", `/v2/${b}/blobs/${d}`), 404, "BLOB_UNKNOWN");
    });

    it("a manifest in B referencing blobs that exist only in A is rejected with MANIFEST_BLOB_UNKNOWN; after mounting it is accepted", async () => {
      const a = repoName("a");
      const b = repoName("b");
      const parts = imageParts(1);
      await pushParts(h, a, parts);
      const m = ociManifestBytes(parts.configDesc, parts.layerDescs);
      expectError(await putManifest(h, b, "v1", m, MediaTypes.OciManifest), 400, "MANIFEST_BLOB_UNKNOWN");
      for (const desc of [parts.configDesc, ...parts.layerDescs]) {
        assert.equal((await h.req("POST", `/v2/${b}/blobs/uploads/?mount=${desc.digest}&from=${a}`)).status, 201);
      }
      const res = await putManifest(h, b, "v1", m, MediaTypes.OciManifest);
      assert.equal(res.status, 201);
      assert.equal(res.header("docker-content-digest"), sha256(m));
    });
  });
}
