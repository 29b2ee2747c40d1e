/**
 * rawRequest (registry/rawhttp.ts) with request bodies: methods, Content-Length and chunked
 * framing (RFC 9112 §6), HEAD responses without a body (RFC 9110 §9.3.2), the upload's
 * minimum-throughput rule, and a failing body source. Peers are node:http servers that hash
 * what they receive.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { rawRequest } from "../src/registry/rawhttp.js";

const MiB = 1024 * 1024;
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

interface Seen {
  method: string;
  headers: http.IncomingHttpHeaders;
  sha: string;
  length: number;
}

describe("rawRequest: request bodies", () => {
  let srv: http.Server;
  let url = "";
  const seen: Seen[] = [];
  before(async () => {
    srv = http.createServer((req, res) => {
      if (req.url === "/stall") {
        // never reads the body: the client's upload stalls once the socket buffers fill
        req.pause();
        return;
      }
      const h = createHash("sha256");
      let n = 0;
      req.on("data", (c: Buffer) => {
        h.update(c);
        n += c.length;
      });
      req.on("end", () => {
        const digest = h.digest("hex");
        seen.push({ method: req.method ?? "", headers: req.headers, sha: digest, length: n });
        if (req.method === "HEAD") {
          res.writeHead(200, { "Content-Length": "12345", "Docker-Content-Digest": `sha256:${digest}` });
          res.end();
          return;
        }
        res.writeHead(201, { "Content-Type": "text/plain", Location: "/next" });
        res.end(`${req.method} ${n} ${digest}`);
      });
    });
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    url = `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
  });
  after(() => {
    srv.closeAllConnections();
    srv.close();
  });

  it("sends an in-memory body with Content-Length, small and large (PUT, POST, PATCH)", async () => {
    for (const [method, size] of [
      ["PUT", 10],
      ["POST", 0],
      ["PATCH", 5 * MiB + 3],
    ] as const) {
      const body = randomBytes(size);
      const res = await rawRequest(`${url}/u`, { method, body });
      assert.equal(res.status, 201);
      assert.equal(await res.text(), `${method} ${size} ${sha(body)}`);
      const s = seen.at(-1)!;
      assert.equal(s.headers["content-length"], String(size));
      assert.equal(s.headers["transfer-encoding"], undefined);
    }
  });

  it("streams an iterable body with a declared length, and chunked without one", async () => {
    const parts = Array.from({ length: 9 }, (_, i) => randomBytes(100_000 + i * 7919));
    const all = Buffer.concat(parts);
    async function* gen() {
      // one reused buffer: each chunk must be written before the next is asked for
      const buf = Buffer.alloc(200_000);
      for (const p of parts) {
        p.copy(buf);
        yield buf.subarray(0, p.length);
      }
    }
    const r1 = await rawRequest(`${url}/u`, { method: "PUT", body: { stream: gen(), length: all.length } });
    assert.equal(await r1.text(), `PUT ${all.length} ${sha(all)}`);
    assert.equal(seen.at(-1)!.headers["content-length"], String(all.length));
    const r2 = await rawRequest(`${url}/u`, { method: "PATCH", body: { stream: gen() } });
    assert.equal(await r2.text(), `PATCH ${all.length} ${sha(all)}`);
    assert.equal(seen.at(-1)!.headers["transfer-encoding"], "chunked");
  });

  it("a HEAD response has no body whatever its Content-Length says", async () => {
    const res = await rawRequest(`${url}/h`, { method: "HEAD" });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-length"), "12345");
    assert.equal((await res.bytes(100)).length, 0);
  });

  it("a body longer or shorter than declared fails the request", async () => {
    async function* three() {
      yield Buffer.alloc(10);
      yield Buffer.alloc(10);
      yield Buffer.alloc(10);
    }
    await assert.rejects(rawRequest(`${url}/u`, { method: "PUT", body: { stream: three(), length: 20 } }), /longer than its declared 20/);
    await assert.rejects(rawRequest(`${url}/u`, { method: "PUT", body: { stream: three(), length: 40 } }), /30 bytes, 40 declared/);
  });

  it("a failing body source fails the request with its own error (not a retryable network error)", async () => {
    async function* bad() {
      yield Buffer.alloc(1000);
      throw new Error("source broke");
    }
    await assert.rejects(rawRequest(`${url}/u`, { method: "PUT", body: { stream: bad() } }), (e: Error & { code?: string }) => e.message === "source broke" && e.code === undefined);
  });

  it("an upload the peer stops taking fails with ETIMEDOUT under the minimum-throughput rule", { timeout: 20_000 }, async () => {
    const big = Buffer.alloc(64 * MiB);
    const t0 = Date.now();
    await assert.rejects(
      rawRequest(`${url}/stall`, { method: "PUT", body: big, minRate: { bytesPerSec: 1024 * 1024, windowMs: 500 } }),
      (e: Error & { code?: string }) => e.code === "ETIMEDOUT" && /below the minimum/.test(e.message),
    );
    assert.ok(Date.now() - t0 < 10_000);
  });

  it("the head deadline starts after the body is sent", async () => {
    // a slow source (1.5 s) with a 1 s head deadline: the request still succeeds
    async function* slow() {
      yield Buffer.alloc(10);
      await new Promise((r) => setTimeout(r, 1500));
      yield Buffer.alloc(10);
    }
    const res = await rawRequest(`${url}/u`, { method: "PUT", body: { stream: slow(), length: 20 }, headerTimeoutMs: 1000 });
    assert.equal(res.status, 201);
    await res.text();
  });
});
