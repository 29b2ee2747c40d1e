/**
 * OCI Distribution Spec v1.1 blob endpoints: GET/HEAD (end-2) with Content-Length,
 * Docker-Content-Digest and ETag, Range requests (RFC 9110), DELETE (end-10), sha512 blobs
 * and digest validation.
 */
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { backends } from "./helpers/backends.js";
import { expectError, useRegistry } from "./helpers/http.js";
import { assertBytesEqual, pushBlob, randomBlob, repoName, sha256, sha512, unknownDigest } from "./helpers/oci.js";

for (const backend of backends()) {
  describe(`blobs [${backend.name}]`, () => {
    const h = useRegistry(backend);
    const repo = repoName("blobs");
    const data = randomBlob(10_000);
    const digest = sha256(data);
    const url = `/v2/${repo}/blobs/${digest}`;

    before(async () => {
      await pushBlob(h, repo, data);
    });

    it("GET returns 200, the exact bytes, Content-Length, Docker-Content-Digest and ETag", async () => {
      const res = await h.req("GET", url);
      assert.equal(res.status, 200);
      assertBytesEqual(res.body, data, "blob body");
      assert.equal(res.header("content-length"), String(data.length));
      assert.equal(res.header("docker-content-digest"), digest);
      const etag = res.header("etag");
      assert.ok(etag, "ETag header missing");
      assert.match(etag, /^(W\/)?"[^"]+"$/, "ETag must be a quoted entity tag");
    });

    it("HEAD returns 200 with Content-Length, Docker-Content-Digest, the same ETag and no body", async () => {
      const get = await h.req("GET", url);
      const res = await h.req("HEAD", url);
      assert.equal(res.status, 200);
      assert.equal(res.body.length, 0);
      assert.equal(res.header("content-length"), String(data.length));
      assert.equal(res.header("docker-content-digest"), digest);
      assert.equal(res.header("etag"), get.header("etag"));
    });

    it("GET of an unknown blob is 404 BLOB_UNKNOWN; HEAD is 404 without a body", async () => {
      const d = unknownDigest();
      expectError(await h.req("GET", `/v2/${repo}/blobs/${d}`), 404, "BLOB_UNKNOWN");
      const head = await h.req("HEAD", `/v2/${repo}/blobs/${d}`);
      assert.equal(head.status, 404);
      assert.equal(head.body.length, 0);
    });

    it("GET in a repository that does not exist is 404 (BLOB_UNKNOWN or NAME_UNKNOWN)", async () => {
      expectError(await h.req("GET", `/v2/${repoName("never")}/blobs/${digest}`), 404, ["BLOB_UNKNOWN", "NAME_UNKNOWN"]);
    });

    describe("malformed digests in the path are 400 DIGEST_INVALID", () => {
      const bad: Record<string, string> = {
        "sha256 with 63 hex chars": `sha256:${"a".repeat(63)}`,
        "sha256 with 65 hex chars": `sha256:${"a".repeat(65)}`,
        "sha256 with upper-case hex": `sha256:${"A".repeat(64)}`,
        "sha256 with non-hex chars": `sha256:${"g".repeat(64)}`,
        "sha512 with 64 hex chars": `sha512:${"a".repeat(64)}`,
      };
      for (const [what, d] of Object.entries(bad)) {
        it(what, async () => {
          expectError(await h.req("GET", `/v2/${repo}/blobs/${d}`), 400, "DIGEST_INVALID");
          const head = await h.req("HEAD", `/v2/${repo}/blobs/${d}`);
          assert.equal(head.status, 400);
        });
      }
    });

    describe("Range requests (RFC 9110)", () => {
      it("bytes=a-b returns 206 with that slice and Content-Range bytes a-b/size", async () => {
        const res = await h.req("GET", url, { headers: { Range: "bytes=100-199" } });
        assert.equal(res.status, 206);
        assertBytesEqual(res.body, data.subarray(100, 200), "range body");
        assert.equal(res.header("content-range"), `bytes 100-199/${data.length}`);
        assert.equal(res.header("content-length"), "100");
      });

      it("the first byte alone (bytes=0-0)", async () => {
        const res = await h.req("GET", url, { headers: { Range: "bytes=0-0" } });
        assert.equal(res.status, 206);
        assertBytesEqual(res.body, data.subarray(0, 1), "range body");
        assert.equal(res.header("content-range"), `bytes 0-0/${data.length}`);
      });

      it("an open range bytes=a- returns the rest of the blob", async () => {
        const res = await h.req("GET", url, { headers: { Range: "bytes=9000-" } });
        assert.equal(res.status, 206);
        assertBytesEqual(res.body, data.subarray(9000), "range body");
        assert.equal(res.header("content-range"), `bytes 9000-${data.length - 1}/${data.length}`);
      });

      it("a suffix range bytes=-n returns the last n bytes", async () => {
        const res = await h.req("GET", url, { headers: { Range: "bytes=-300" } });
        assert.equal(res.status, 206);
        assertBytesEqual(res.body, data.subarray(data.length - 300), "range body");
        assert.equal(res.header("content-range"), `bytes ${data.length - 300}-${data.length - 1}/${data.length}`);
      });

      it("a last-byte-pos past the end is clamped to the blob size", async () => {
        const res = await h.req("GET", url, { headers: { Range: `bytes=9990-${data.length + 5000}` } });
        assert.equal(res.status, 206);
        assertBytesEqual(res.body, data.subarray(9990), "range body");
        assert.equal(res.header("content-range"), `bytes 9990-${data.length - 1}/${data.length}`);
      });

      it("an unsatisfiable range is 416 with Content-Range: bytes */size", async () => {
        const res = await h.req("GET", url, { headers: { Range: `bytes=${data.length}-` } });
        assert.equal(res.status, 416);
        assert.equal(res.header("content-range"), `bytes */${data.length}`);
        const res2 = await h.req("GET", url, { headers: { Range: `bytes=${data.length + 10}-${data.length + 20}` } });
        assert.equal(res2.status, 416);
        assert.equal(res2.header("content-range"), `bytes */${data.length}`);
      });

      it("a Range with a unit the server does not understand is ignored (200, whole blob)", async () => {
        const res = await h.req("GET", url, { headers: { Range: "items=0-5" } });
        assert.equal(res.status, 200);
        assertBytesEqual(res.body, data, "blob body");
      });

      it("a resumed download (Range from an offset) reassembles the exact blob", async () => {
        const first = await h.req("GET", url, { headers: { Range: "bytes=0-4095" } });
        const rest = await h.req("GET", url, { headers: { Range: "bytes=4096-" } });
        assert.equal(first.status, 206);
        assert.equal(rest.status, 206);
        assertBytesEqual(Buffer.concat([first.body, rest.body]), data, "reassembled blob");
      });
    });

    describe("sha512", () => {
      it("a blob pushed under its sha512 digest is served with that digest", async () => {
        const b = randomBlob(3000);
        const d = sha512(b);
        await pushBlob(h, repo, b, d);
        const res = await h.req("GET", `/v2/${repo}/blobs/${d}`);
        assert.equal(res.status, 200);
        assertBytesEqual(res.body, b, "sha512 blob");
        assert.equal(res.header("docker-content-digest"), d);
        const head = await h.req("HEAD", `/v2/${repo}/blobs/${d}`);
        assert.equal(head.status, 200);
        assert.equal(head.header("content-length"), "3000");
        const range = await h.req("GET", `/v2/${repo}/blobs/${d}`, { headers: { Range: "bytes=10-19" } });
        assert.equal(range.status, 206);
        assertBytesEqual(range.body, b.subarray(10, 20), "sha512 range");
      });

      it("an unknown sha512 digest is 404 BLOB_UNKNOWN", async () => {
        expectError(await h.req("GET", `/v2/${repo}/blobs/${sha512(randomBlob(8))}`), 404, "BLOB_UNKNOWN");
      });
    });

    it("an empty (zero-byte) blob round-trips", async () => {
      const empty = Buffer.alloc(0);
      const d = await pushBlob(h, repo, empty);
      assert.equal(d, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
      const res = await h.req("GET", `/v2/${repo}/blobs/${d}`);
      assert.equal(res.status, 200);
      assert.equal(res.body.length, 0);
      assert.equal(res.header("content-length"), "0");
      assert.equal(res.header("docker-content-digest"), d);
    });

    describe("DELETE", () => {
      it("DELETE of an existing blob is 202, after which GET/HEAD are 404", async () => {
        const b = randomBlob(100);
        const d = await pushBlob(h, repo, b);
        const del = await h.req("DELETE", `/v2/${repo}/blobs/${d}`);
        assert.equal(del.status, 202);
        expectError(await h.req("GET", `/v2/${repo}/blobs/${d}`), 404, "BLOB_UNKNOWN");
        assert.equal((await h.req("HEAD", `/v2/${repo}/blobs/${d}`)).status, 404);
      });

      it("DELETE of an unknown blob is 404 BLOB_UNKNOWN", async () => {
        expectError(await h.req("DELETE", `/v2/${repo}/blobs/${unknownDigest()}`), 404, "BLOB_UNKNOWN");
      });

      it("DELETE with a malformed digest is 400 DIGEST_INVALID", async () => {
        expectError(await h.req("DELETE", `/v2/${repo}/blobs/sha256:${"z".repeat(64)}`), 400, "DIGEST_INVALID");
      });

      it("a deleted blob can be pushed again", async () => {
        const b = randomBlob(64);
        const d = await pushBlob(h, repo, b);
        assert.equal((await h.req("DELETE", `/v2/${repo}/blobs/${d}`)).status, 202);
        await pushBlob(h, repo, b);
        const res = await h.req("GET", `/v2/${repo}/blobs/${d}`);
        assert.equal(res.status, 200);
        assertBytesEqual(res.body, b, "re-pushed blob");
      });
    });
  });
}
