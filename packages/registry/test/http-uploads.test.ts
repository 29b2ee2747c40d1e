/**
 * OCI Distribution Spec v1.1 blob uploads: POST (end-4a/4b), PATCH (end-5) streamed and
 * chunked, PUT (end-6), GET status (end-13), DELETE (end-14), including the chunk-order rules
 * (out-of-order and repeated chunks are 416), resuming after a status GET, digest/size
 * validation and session scoping.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { describe, it } from "node:test";
import { backends } from "./helpers/backends.js";
import { expectError, expectStatus, locationPath, type Res, SPEC_ERROR_CODES, useRegistry, withQuery } from "./helpers/http.js";
import { assertBytesEqual, pushBlobChunked, randomBlob, repoName, sha256, sha512, startUpload } from "./helpers/oci.js";

const OCTET = { "Content-Type": "application/octet-stream" };

function patchHeaders(start: number, len: number): Record<string, string> {
  return { ...OCTET, "Content-Range": `${start}-${start + len - 1}` };
}

/** A 416 answer; when `range` is given, the response must carry `Range: <range>`. */
function expect416(res: Res, range?: string): void {
  assert.equal(res.status, 416, `expected 416, got ${res.status}; body ${res.text().slice(0, 300)}`);
  if (range !== undefined) assert.equal(res.header("range"), range, "416 must report the current Range");
}

for (const backend of backends()) {
  describe(`blob uploads [${backend.name}]`, () => {
    const h = useRegistry(backend);

    async function assertBlob(repo: string, data: Buffer, digest = sha256(data)): Promise<void> {
      const res = await h.req("GET", `/v2/${repo}/blobs/${digest}`);
      assert.equal(res.status, 200, `blob ${digest} should be readable in ${repo}`);
      assertBytesEqual(res.body, data, "uploaded blob");
    }

    async function assertNoBlob(repo: string, digest: string): Promise<void> {
      expectError(await h.req("GET", `/v2/${repo}/blobs/${digest}`), 404, "BLOB_UNKNOWN", `blob ${digest} must not exist`);
    }

    it("POST starts a session: 202, Location under /v2/<name>/blobs/uploads/ containing Docker-Upload-UUID", async () => {
      const repo = repoName();
      const res = await h.req("POST", `/v2/${repo}/blobs/uploads/`, { headers: { "Content-Length": "0" } });
      assert.equal(res.status, 202);
      const loc = locationPath(res.header("location"));
      assert.ok(loc.startsWith(`/v2/${repo}/blobs/uploads/`), `Location ${loc}`);
      const uuid = res.header("docker-upload-uuid");
      assert.ok(uuid, "Docker-Upload-UUID missing");
      assert.ok(loc.includes(uuid), "Location must contain the session id");
      const other = await h.req("POST", `/v2/${repo}/blobs/uploads/`);
      assert.notEqual(other.header("docker-upload-uuid"), uuid, "sessions must be unique");
    });

    it("a new session reports status 204 with Location", async () => {
      const repo = repoName();
      const { location } = await startUpload(h, repo);
      const res = await h.req("GET", location);
      assert.equal(res.status, 204);
      assert.ok(locationPath(res.header("location")).startsWith(`/v2/${repo}/blobs/uploads/`));
    });

    describe("monolithic", () => {
      it("single POST ?digest= with the body is 201 with a pullable Location and Docker-Content-Digest", async () => {
        const repo = repoName();
        const data = randomBlob(5000);
        const d = sha256(data);
        const res = await h.req("POST", `/v2/${repo}/blobs/uploads/?digest=${d}`, { headers: OCTET, body: data });
        assert.equal(res.status, 201);
        assert.equal(res.header("docker-content-digest"), d);
        const loc = locationPath(res.header("location"));
        assert.equal(loc, `/v2/${repo}/blobs/${d}`);
        const get = await h.req("GET", loc);
        assert.equal(get.status, 200);
        assertBytesEqual(get.body, data, "blob at Location");
      });

      it("POST then PUT ?digest= with the whole body is 201 with a pullable Location", async () => {
        const repo = repoName();
        const data = randomBlob(5000);
        const d = sha256(data);
        const { location } = await startUpload(h, repo);
        const res = await h.req("PUT", withQuery(location, { digest: d }), { headers: OCTET, body: data });
        assert.equal(res.status, 201);
        assert.equal(res.header("docker-content-digest"), d);
        const get = await h.req("GET", locationPath(res.header("location")));
        assert.equal(get.status, 200);
        assertBytesEqual(get.body, data, "blob at Location");
      });

      it("single POST with a digest that does not match the body is 400 DIGEST_INVALID and stores nothing", async () => {
        const repo = repoName();
        const data = randomBlob(1000);
        const wrong = sha256(randomBlob(10));
        expectError(await h.req("POST", `/v2/${repo}/blobs/uploads/?digest=${wrong}`, { headers: OCTET, body: data }), 400, "DIGEST_INVALID");
        await assertNoBlob(repo, wrong);
        await assertNoBlob(repo, sha256(data));
      });

      it("PUT with a digest that does not match is 400 DIGEST_INVALID and stores nothing", async () => {
        const repo = repoName();
        const data = randomBlob(1000);
        const wrong = sha256(randomBlob(10));
        const { location } = await startUpload(h, repo);
        expectError(await h.req("PUT", withQuery(location, { digest: wrong }), { headers: OCTET, body: data }), 400, "DIGEST_INVALID");
        await assertNoBlob(repo, wrong);
        await assertNoBlob(repo, sha256(data));
      });

      it("PUT with a malformed digest parameter is 400 DIGEST_INVALID", async () => {
        const repo = repoName();
        const { location } = await startUpload(h, repo);
        expectError(await h.req("PUT", withQuery(location, { digest: "sha256:abc" }), { headers: OCTET, body: randomBlob(10) }), 400, "DIGEST_INVALID");
      });

      it("PUT without a digest parameter is 400 (DIGEST_INVALID or BLOB_UPLOAD_INVALID)", async () => {
        const repo = repoName();
        const { location } = await startUpload(h, repo);
        expectError(await h.req("PUT", location, { headers: OCTET, body: randomBlob(10) }), 400, ["DIGEST_INVALID", "BLOB_UPLOAD_INVALID"]);
      });

      it("a sha512 digest is accepted and verified", async () => {
        const repo = repoName();
        const data = randomBlob(2000);
        const d = sha512(data);
        const { location } = await startUpload(h, repo);
        const res = await h.req("PUT", withQuery(location, { digest: d }), { headers: OCTET, body: data });
        assert.equal(res.status, 201);
        assert.equal(res.header("docker-content-digest"), d);
        await assertBlob(repo, data, d);
        const { location: l2 } = await startUpload(h, repo);
        const bad = sha512(randomBlob(5));
        expectError(await h.req("PUT", withQuery(l2, { digest: bad }), { headers: OCTET, body: data }), 400, "DIGEST_INVALID");
        await assertNoBlob(repo, bad);
      });
    });

    describe("streamed PATCH (no Content-Range)", () => {
      it("PATCH with a body and Content-Length is 202 with Location and Range; PUT ?digest= completes it", async () => {
        const repo = repoName();
        const data = randomBlob(7000);
        const { location } = await startUpload(h, repo);
        const p = await h.req("PATCH", location, { headers: OCTET, body: data });
        assert.equal(p.status, 202);
        assert.equal(p.header("range"), `0-${data.length - 1}`);
        const put = await h.req("PUT", withQuery(locationPath(p.header("location")), { digest: sha256(data) }));
        assert.equal(put.status, 201);
        await assertBlob(repo, data);
      });

      it("PATCH with Transfer-Encoding: chunked streams the body", async () => {
        const repo = repoName();
        const parts = [randomBlob(3000), randomBlob(1), randomBlob(70_000)];
        const data = Buffer.concat(parts);
        const { location } = await startUpload(h, repo);
        const p = await h.streamed("PATCH", location, parts);
        assert.equal(p.status, 202, p.text());
        assert.equal(p.header("range"), `0-${data.length - 1}`);
        const put = await h.req("PUT", withQuery(locationPath(p.header("location")), { digest: sha256(data) }));
        assert.equal(put.status, 201);
        await assertBlob(repo, data);
      });

      it("consecutive streamed PATCHes append", async () => {
        const repo = repoName();
        const a = randomBlob(1000);
        const b = randomBlob(1500);
        const { location } = await startUpload(h, repo);
        const p1 = await h.req("PATCH", location, { headers: OCTET, body: a });
        assert.equal(p1.status, 202);
        const p2 = await h.req("PATCH", locationPath(p1.header("location")), { headers: OCTET, body: b });
        assert.equal(p2.status, 202);
        assert.equal(p2.header("range"), `0-${a.length + b.length - 1}`);
        const all = Buffer.concat([a, b]);
        const put = await h.req("PUT", withQuery(locationPath(p2.header("location")), { digest: sha256(all) }));
        assert.equal(put.status, 201);
        await assertBlob(repo, all);
      });
    });

    describe("chunked PATCH with Content-Range", () => {
      it("each chunk is 202 with Location and Range 0-<end>; PUT without body completes", async () => {
        const repo = repoName();
        const data = randomBlob(3000);
        let { location } = await startUpload(h, repo);
        for (let off = 0; off < 3000; off += 1000) {
          const res = await h.req("PATCH", location, { headers: patchHeaders(off, 1000), body: data.subarray(off, off + 1000) });
          assert.equal(res.status, 202);
          assert.equal(res.header("range"), `0-${off + 999}`);
          location = locationPath(res.header("location"));
        }
        const put = await h.req("PUT", withQuery(location, { digest: sha256(data) }), { headers: { "Content-Length": "0" } });
        assert.equal(put.status, 201);
        assert.ok(put.header("location"));
        assert.equal(put.header("docker-content-digest"), sha256(data));
        await assertBlob(repo, data);
      });

      it("the final chunk may come with the closing PUT (with Content-Range)", async () => {
        const repo = repoName();
        const data = randomBlob(2500);
        const { location } = await startUpload(h, repo);
        const p = await h.req("PATCH", location, { headers: patchHeaders(0, 2000), body: data.subarray(0, 2000) });
        assert.equal(p.status, 202);
        const put = await h.req("PUT", withQuery(locationPath(p.header("location")), { digest: sha256(data) }), {
          headers: patchHeaders(2000, 500),
          body: data.subarray(2000),
        });
        assert.equal(put.status, 201);
        await assertBlob(repo, data);
      });

      it("the closing PUT's digest must be of the whole blob, not of the final chunk", async () => {
        const repo = repoName();
        const data = randomBlob(2000);
        const { location } = await startUpload(h, repo);
        const p = await h.req("PATCH", location, { headers: patchHeaders(0, 1000), body: data.subarray(0, 1000) });
        assert.equal(p.status, 202);
        const lastChunk = data.subarray(1000);
        const put = await h.req("PUT", withQuery(locationPath(p.header("location")), { digest: sha256(lastChunk) }), {
          headers: patchHeaders(1000, 1000),
          body: lastChunk,
        });
        expectError(put, 400, "DIGEST_INVALID");
        await assertNoBlob(repo, sha256(lastChunk));
        await assertNoBlob(repo, sha256(data));
      });

      it("a first chunk not starting at 0 is 416", async () => {
        const repo = repoName();
        const { location } = await startUpload(h, repo);
        expect416(await h.req("PATCH", location, { headers: patchHeaders(1000, 1000), body: randomBlob(1000) }));
      });

      it("an out-of-order chunk is 416 with the current Range, and the session stays usable", async () => {
        const repo = repoName();
        const data = randomBlob(3000);
        const { location } = await startUpload(h, repo);
        const p1 = await h.req("PATCH", location, { headers: patchHeaders(0, 1000), body: data.subarray(0, 1000) });
        assert.equal(p1.status, 202);
        const loc1 = locationPath(p1.header("location"));
        expect416(await h.req("PATCH", loc1, { headers: patchHeaders(2000, 1000), body: data.subarray(2000) }), "0-999");
        const st = await h.req("GET", loc1);
        assert.equal(st.status, 204);
        assert.equal(st.header("range"), "0-999", "the rejected chunk must not have been stored");
        const p2 = await h.req("PATCH", locationPath(st.header("location")), { headers: patchHeaders(1000, 2000), body: data.subarray(1000) });
        assert.equal(p2.status, 202);
        assert.equal(p2.header("range"), "0-2999");
        const put = await h.req("PUT", withQuery(locationPath(p2.header("location")), { digest: sha256(data) }));
        assert.equal(put.status, 201);
        await assertBlob(repo, data);
      });

      it("an overlapping chunk (starting before the current end) is 416", async () => {
        const repo = repoName();
        const data = randomBlob(2000);
        const { location } = await startUpload(h, repo);
        const p1 = await h.req("PATCH", location, { headers: patchHeaders(0, 1000), body: data.subarray(0, 1000) });
        assert.equal(p1.status, 202);
        expect416(await h.req("PATCH", locationPath(p1.header("location")), { headers: patchHeaders(500, 1000), body: data.subarray(500, 1500) }), "0-999");
      });

      it("retrying the previous chunk is 416; GET status gives 204 + Range + Location; the upload resumes from there", async () => {
        const repo = repoName();
        const data = randomBlob(2048);
        const chunk1 = data.subarray(0, 1024);
        const chunk2 = data.subarray(1024);
        const { location } = await startUpload(h, repo);
        const p1 = await h.req("PATCH", location, { headers: patchHeaders(0, 1024), body: chunk1 });
        assert.equal(p1.status, 202);
        assert.equal(p1.header("range"), "0-1023");
        // The client did not see the answer and retries the same chunk at the same Location.
        expect416(await h.req("PATCH", location, { headers: patchHeaders(0, 1024), body: chunk1 }), "0-1023");
        const st = await h.req("GET", location);
        assert.equal(st.status, 204);
        assert.equal(st.header("range"), "0-1023");
        assert.equal(st.body.length, 0);
        const resumeAt = Number((st.header("range") ?? "").split("-")[1]) + 1;
        assert.equal(resumeAt, 1024);
        const p2 = await h.req("PATCH", locationPath(st.header("location")), { headers: patchHeaders(resumeAt, chunk2.length), body: chunk2 });
        assert.equal(p2.status, 202);
        assert.equal(p2.header("range"), `0-${data.length - 1}`);
        const put = await h.req("PUT", withQuery(locationPath(p2.header("location")), { digest: sha256(data) }), { headers: { "Content-Length": "0" } });
        assert.equal(put.status, 201);
        await assertBlob(repo, data);
      });

      it("retrying an earlier chunk after two chunks is 416 with Range 0-<end of second>", async () => {
        const repo = repoName();
        const data = randomBlob(2000);
        const { location } = await startUpload(h, repo);
        const p1 = await h.req("PATCH", location, { headers: patchHeaders(0, 1000), body: data.subarray(0, 1000) });
        const p2 = await h.req("PATCH", locationPath(p1.header("location")), { headers: patchHeaders(1000, 1000), body: data.subarray(1000) });
        assert.equal(p2.status, 202);
        expect416(await h.req("PATCH", locationPath(p2.header("location")), { headers: patchHeaders(1000, 1000), body: data.subarray(1000) }), "0-1999");
      });

      it("a closing PUT whose final chunk does not continue the upload is 416 and stores nothing", async () => {
        const repo = repoName();
        const data = randomBlob(2000);
        const { location } = await startUpload(h, repo);
        const p = await h.req("PATCH", location, { headers: patchHeaders(0, 1000), body: data.subarray(0, 1000) });
        assert.equal(p.status, 202);
        const put = await h.req("PUT", withQuery(locationPath(p.header("location")), { digest: sha256(data) }), {
          headers: patchHeaders(1500, 500),
          body: data.subarray(1500),
        });
        expect416(put);
        await assertNoBlob(repo, sha256(data));
      });

      it("identical content uploaded concurrently through two sessions is accepted by both", async () => {
        const repo = repoName();
        const data = randomBlob(40_000);
        const [s1, s2] = await Promise.all([startUpload(h, repo), startUpload(h, repo)]);
        const [r1, r2] = await Promise.all([
          h.req("PUT", withQuery(s1.location, { digest: sha256(data) }), { headers: OCTET, body: data }),
          h.req("PUT", withQuery(s2.location, { digest: sha256(data) }), { headers: OCTET, body: data }),
        ]);
        assert.equal(r1.status, 201);
        assert.equal(r2.status, 201);
        await assertBlob(repo, data);
      });

      it("a Content-Length that disagrees with Content-Range is rejected (400 SIZE_INVALID or 416)", async () => {
        const repo = repoName();
        const { location } = await startUpload(h, repo);
        const res = await h.req("PATCH", location, { headers: { ...OCTET, "Content-Range": "0-999" }, body: randomBlob(500) });
        if (res.status === 416) return;
        expectError(res, 400, "SIZE_INVALID");
      });

      it("a malformed Content-Range is rejected (400 or 416)", async () => {
        const repo = repoName();
        const { location } = await startUpload(h, repo);
        for (const cr of ["abc", "5-2", "-1-8", "0-"]) {
          const res = await h.req("PATCH", location, { headers: { ...OCTET, "Content-Range": cr }, body: randomBlob(10) });
          assert.ok(res.status === 400 || res.status === 416, `Content-Range ${cr}: got ${res.status}`);
        }
      });

      it("416 error bodies, when JSON, use a spec error code", async () => {
        const repo = repoName();
        const { location } = await startUpload(h, repo);
        const res = await h.req("PATCH", location, { headers: patchHeaders(10, 10), body: randomBlob(10) });
        expect416(res);
        if (res.body.length > 0 && /json/.test(res.header("content-type") ?? "")) {
          const codes = (res.json().errors ?? []).map((e: { code: string }) => e.code);
          assert.ok(codes.length > 0, "JSON error body without errors");
          for (const c of codes) assert.ok(SPEC_ERROR_CODES.includes(c), `416 body code ${c} is not a spec error code`);
        }
      });

      it("a chunked upload with sha512 completes and is verified", async () => {
        const repo = repoName();
        const data = randomBlob(5000);
        const d = await pushBlobChunked(h, repo, data, 1500, sha512(data));
        await assertBlob(repo, data, d);
      });

      it("two sessions in one repository are independent", async () => {
        const repo = repoName();
        const a = randomBlob(1200);
        const b = randomBlob(800);
        const sa = await startUpload(h, repo);
        const sb = await startUpload(h, repo);
        const pa = await h.req("PATCH", sa.location, { headers: patchHeaders(0, 600), body: a.subarray(0, 600) });
        const pb = await h.req("PATCH", sb.location, { headers: patchHeaders(0, 800), body: b });
        assert.equal(pa.status, 202);
        assert.equal(pb.status, 202);
        assert.equal(pb.header("range"), "0-799");
        const pa2 = await h.req("PATCH", locationPath(pa.header("location")), { headers: patchHeaders(600, 600), body: a.subarray(600) });
        assert.equal(pa2.header("range"), "0-1199");
        assert.equal((await h.req("PUT", withQuery(locationPath(pb.header("location")), { digest: sha256(b) }))).status, 201);
        assert.equal((await h.req("PUT", withQuery(locationPath(pa2.header("location")), { digest: sha256(a) }))).status, 201);
        await assertBlob(repo, a);
        await assertBlob(repo, b);
      });
    });

    describe("cancel, unknown and stale sessions", () => {
      it("DELETE cancels a session: 204, then GET/PATCH/PUT/DELETE are 404 BLOB_UPLOAD_UNKNOWN", async () => {
        const repo = repoName();
        const data = randomBlob(100);
        const { location } = await startUpload(h, repo);
        const p = await h.req("PATCH", location, { headers: patchHeaders(0, 100), body: data });
        assert.equal(p.status, 202);
        const loc = locationPath(p.header("location"));
        const del = await h.req("DELETE", loc, { headers: { "Content-Length": "0" } });
        assert.equal(del.status, 204);
        expectError(await h.req("GET", loc), 404, "BLOB_UPLOAD_UNKNOWN");
        expectError(await h.req("PATCH", loc, { headers: patchHeaders(100, 10), body: randomBlob(10) }), 404, "BLOB_UPLOAD_UNKNOWN");
        expectError(await h.req("PUT", withQuery(loc, { digest: sha256(data) })), 404, "BLOB_UPLOAD_UNKNOWN");
        expectError(await h.req("DELETE", loc), 404, "BLOB_UPLOAD_UNKNOWN");
        await assertNoBlob(repo, sha256(data));
      });

      it("an unknown session id is 404 BLOB_UPLOAD_UNKNOWN for GET, PATCH, PUT and DELETE", async () => {
        const repo = repoName();
        const loc = `/v2/${repo}/blobs/uploads/${randomUUID()}`;
        expectError(await h.req("GET", loc), 404, "BLOB_UPLOAD_UNKNOWN");
        expectError(await h.req("PATCH", loc, { headers: patchHeaders(0, 10), body: randomBlob(10) }), 404, "BLOB_UPLOAD_UNKNOWN");
        expectError(await h.req("PUT", `${loc}?digest=${sha256("x")}`, { body: "x" }), 404, "BLOB_UPLOAD_UNKNOWN");
        expectError(await h.req("DELETE", loc), 404, "BLOB_UPLOAD_UNKNOWN");
      });

      it("a completed session is gone for GET and PATCH (404 BLOB_UPLOAD_UNKNOWN); a repeated PUT of the same digest is answered 201 again, another digest 404", async () => {
        const repo = repoName();
        const data = randomBlob(100);
        const { location } = await startUpload(h, repo);
        const put = await h.req("PUT", withQuery(location, { digest: sha256(data) }), { headers: OCTET, body: data });
        assert.equal(put.status, 201);
        expectError(await h.req("GET", location), 404, "BLOB_UPLOAD_UNKNOWN");
        expectError(await h.req("PATCH", location, { headers: patchHeaders(100, 10), body: randomBlob(10) }), 404, "BLOB_UPLOAD_UNKNOWN");
        // a client whose first answer was lost retries: it learns the blob is complete
        const again = await h.req("PUT", withQuery(location, { digest: sha256(data) }), { headers: OCTET, body: data });
        assert.equal(again.status, 201);
        assert.equal(again.header("location"), put.header("location"));
        assert.equal(again.header("docker-content-digest"), sha256(data));
        expectError(await h.req("PUT", withQuery(location, { digest: sha256("other") }), { headers: OCTET, body: "other" }), 404, "BLOB_UPLOAD_UNKNOWN");
      });

      it("a session with a failed digest check cannot be completed later with more data", async () => {
        const repo = repoName();
        const data = randomBlob(100);
        const { location } = await startUpload(h, repo);
        const p = await h.req("PATCH", location, { headers: patchHeaders(0, 100), body: data });
        const loc = locationPath(p.header("location"));
        expectError(await h.req("PUT", withQuery(loc, { digest: sha256("nope") })), 400, "DIGEST_INVALID");
        // Either the session was discarded (404) or it still holds exactly the 100 bytes.
        const st = await h.req("GET", loc);
        if (st.status === 204) assert.equal(st.header("range"), "0-99");
        else expectError(st, 404, "BLOB_UPLOAD_UNKNOWN");
      });

      it("a session of repository A used through repository B is 404 BLOB_UPLOAD_UNKNOWN, and A's session is unaffected", async () => {
        const a = repoName("a");
        const b = repoName("b");
        const data = randomBlob(300);
        const { location } = await startUpload(h, a);
        const p = await h.req("PATCH", location, { headers: patchHeaders(0, 100), body: data.subarray(0, 100) });
        assert.equal(p.status, 202);
        const locA = locationPath(p.header("location"));
        const locB = locA.replace(`/v2/${a}/`, `/v2/${b}/`);
        assert.notEqual(locA, locB);
        expectError(await h.req("GET", locB), 404, "BLOB_UPLOAD_UNKNOWN");
        expectError(await h.req("PATCH", locB, { headers: patchHeaders(100, 200), body: data.subarray(100) }), 404, "BLOB_UPLOAD_UNKNOWN");
        expectError(
          await h.req("PUT", withQuery(locB, { digest: sha256(data) }), { headers: patchHeaders(100, 200), body: data.subarray(100) }),
          404,
          "BLOB_UPLOAD_UNKNOWN",
        );
        expectError(await h.req("DELETE", locB), 404, "BLOB_UPLOAD_UNKNOWN");
        await assertNoBlob(b, sha256(data));
        const st = await h.req("GET", locA);
        assert.equal(st.status, 204);
        assert.equal(st.header("range"), "0-99");
        const put = await h.req("PUT", withQuery(locA, { digest: sha256(data) }), { headers: patchHeaders(100, 200), body: data.subarray(100) });
        assert.equal(put.status, 201);
        await assertBlob(a, data);
        await assertNoBlob(b, sha256(data));
      });

      it("session ids that try to escape the upload area are 400 or 404, never 2xx", async () => {
        const repo = repoName();
        for (const id of ["..%2F..%2F..%2Fetc%2Fpasswd", "..", "%2e%2e", "a%00b", "x".repeat(300)]) {
          const res = await h.req("GET", `/v2/${repo}/blobs/uploads/${id}`);
          assert.ok(res.status === 400 || res.status === 404, `id ${id}: got ${res.status}`);
          expectStatus(res, [400, 404]);
        }
      });
    });
  });
}
