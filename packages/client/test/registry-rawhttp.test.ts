/**
 * rawGet (registry/rawhttp.ts): GET over net/tls with bodies read into reused buffers. Real
 * servers in this process write raw HTTP bytes, so framing and packet boundaries are under the
 * test's control; expectations follow RFC 9112 (message framing) and RFC 9110 (semantics), and
 * every body is compared by SHA-256 with what the server sent.
 */
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { buffersOut } from "../src/registry/lease.js";
import { type RawResponse, rawGet, rawRequest } from "../src/registry/rawhttp.js";
import { missing } from "./helpers/tools.js";

const MiB = 1024 * 1024;
const T = { timeout: 15_000 };

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** A small deterministic PRNG (mulberry32), so chunk and write sizes are reproducible. */
function prng(seed: number): (lo: number, hi: number) => number {
  let a = seed >>> 0;
  return (lo, hi) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const r = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    return lo + Math.floor(r * (hi - lo + 1));
  };
}

interface RawConn {
  socket: net.Socket;
  /** The request head as received (up to the blank line). */
  request: string;
  /** Resolves when the server side of the connection has closed. */
  closed: Promise<void>;
}

interface RawServer {
  port: number;
  url: string;
  conns: RawConn[];
  close(): Promise<void>;
}

/** A TCP server that reads one request head per connection and lets `handle` write raw bytes. */
async function rawServer(handle: (s: net.Socket, request: string) => void | Promise<void>): Promise<RawServer> {
  const sockets = new Set<net.Socket>();
  const conns: RawConn[] = [];
  const server = net.createServer((s) => {
    sockets.add(s);
    s.setNoDelay(true);
    s.on("error", () => {});
    const closed = new Promise<void>((r) =>
      s.once("close", () => {
        sockets.delete(s);
        r();
      }),
    );
    let head = Buffer.alloc(0);
    const onData = (d: Buffer) => {
      head = Buffer.concat([head, d]);
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) return;
      s.off("data", onData);
      s.resume();
      const request = head.toString("latin1", 0, end);
      conns.push({ socket: s, request, closed });
      Promise.resolve()
        .then(() => handle(s, request))
        .catch(() => s.destroy());
    };
    s.on("data", onData);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    conns,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

/** Writes and waits until the bytes are handed to the kernel (or the socket is gone). */
function send(s: net.Socket, data: string | Buffer): Promise<void> {
  return new Promise((r) => {
    if (s.destroyed) return r();
    s.write(data, () => r());
  });
}

/** Writes each piece as its own TCP segment: a pause after each so the client reads them apart. */
async function sendPieces(s: net.Socket, pieces: Array<string | Buffer>, gapMs = 15): Promise<void> {
  for (const p of pieces) {
    await send(s, p);
    await delay(gapMs);
  }
}

/**
 * Reads a body as a consumer following the contract would: copies each chunk before asking for
 * the next. Checks that a chunk stays intact while it is held (until next()), also across a
 * timer when `slowEvery` is set (a slow consumer, so the socket is paused and resumed).
 */
async function readAll(res: RawResponse, o: { slowEvery?: number; slowMs?: number } = {}): Promise<{ data: Buffer; chunks: number }> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const c of res.body) {
    assert.ok(Buffer.isBuffer(c));
    const copy = Buffer.from(c);
    parts.push(copy);
    n++;
    if (o.slowEvery && n % o.slowEvery === 0) await delay(o.slowMs ?? 5);
    else await new Promise((r) => setImmediate(r));
    assert.ok(c.equals(copy), `chunk ${n} changed while the consumer still held it`);
  }
  return { data: Buffer.concat(parts), chunks: n };
}

/** Awaits `p` and returns what it rejected with (fails when it resolves). */
async function rejection(p: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof Error, `rejected with a non-Error: ${String(e)}`);
    return e as Error & { code?: string };
  }
  assert.fail("expected a rejection");
}

/** rawGet followed by reading the whole body: the error wherever it happens. */
async function getAndRead(url: string, o: Parameters<typeof rawGet>[1] = {}): Promise<Buffer> {
  const res = await rawGet(url, o);
  return (await readAll(res)).data;
}

/** `p`, or a failure when it takes longer than `ms` (the timer is cleared either way). */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  const ac = new AbortController();
  try {
    return await Promise.race([p, delay(ms, undefined, { signal: ac.signal }).then(() => assert.fail(`${what}: not within ${ms} ms`))]);
  } finally {
    ac.abort();
  }
}

/** RFC 9112 §7.1 chunked encoding of `body` cut at the given sizes, with extensions and a trailer. */
function chunked(body: Buffer, sizes: number[], trailer = "X-Digest: sha-256\r\nX-More: 1\r\n"): Buffer {
  const out: Buffer[] = [];
  let off = 0;
  let i = 0;
  const exts = ["", ";name=value", ';q="quoted;\\"string";flag', ";a=1;b", ""];
  for (const n of sizes) {
    const hex = i % 3 === 0 ? n.toString(16).toUpperCase() : n.toString(16);
    out.push(Buffer.from(`${hex}${exts[i % exts.length]}\r\n`), body.subarray(off, off + n), Buffer.from("\r\n"));
    off += n;
    i++;
  }
  assert.equal(off, body.length);
  out.push(Buffer.from(`0\r\n${trailer}\r\n`));
  return Buffer.concat(out);
}

/** A `serve` that starts raw servers for one describe block and closes them after it. */
function serverPool(): (h: (s: net.Socket, request: string) => void | Promise<void>) => Promise<RawServer> {
  const servers: RawServer[] = [];
  after(async () => {
    for (const s of servers) await s.close();
  });
  return async (h) => {
    const s = await rawServer(h);
    servers.push(s);
    return s;
  };
}

describe("rawGet: message framing (RFC 9112 §6)", () => {
  const serve = serverPool();

  it("Content-Length: 20 MiB read by a slow consumer is intact (buffer reuse and backpressure)", T, async () => {
    const body = randomBytes(20 * MiB);
    const srv = await serve(async (s) => {
      // the first body bytes share a packet with the head; the connection is left open, so
      // only Content-Length can end the body
      await send(s, Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\nContent-Type: application/octet-stream\r\n\r\n`), body.subarray(0, 777)]));
      await send(s, body.subarray(777));
    });
    const res = await rawGet(`${srv.url}/blob`);
    assert.equal(res.status, 200);
    assert.equal(res.ok, true);
    assert.equal(res.headers.get("content-length"), String(body.length));
    const { data, chunks } = await readAll(res, { slowEvery: 3, slowMs: 10 });
    assert.equal(data.length, body.length);
    assert.equal(sha256(data), sha256(body));
    assert.ok(chunks > 1);
    await within(srv.conns[0].closed, 2000, "connection closed after the body");
  });

  it("Transfer-Encoding: chunked, 20 MiB in random chunks (1 B to 300 KiB) with extensions and a trailer, written in random pieces", T, async () => {
    const body = randomBytes(20 * MiB);
    const rnd = prng(0x5eed);
    const sizes: number[] = [];
    for (let left = body.length; left > 0; ) {
      const kind = rnd(0, 2);
      const n = Math.min(left, kind === 0 ? rnd(1, 16) : kind === 1 ? rnd(17, 4096) : rnd(4097, 300 * 1024));
      sizes.push(n);
      left -= n;
    }
    assert.ok(Math.min(...sizes) === 1 && Math.max(...sizes) > 256 * 1024, "the chunk sizes span 1 B to 300 KiB");
    const wire = chunked(body, sizes);
    const srv = await serve(async (s) => {
      await send(s, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Digest\r\n\r\n");
      // pieces of 1..12 bytes split size lines, CRLFs and the trailer; larger ones span chunks
      for (let off = 0, i = 0; off < wire.length; i++) {
        const kind = rnd(0, 3);
        const n = kind === 0 ? rnd(1, 12) : kind === 3 ? rnd(64 * 1024, 512 * 1024) : rnd(13, 64 * 1024);
        await send(s, wire.subarray(off, off + n));
        off += n;
        if (i % 16 === 0) await delay(1);
      }
    });
    const res = await rawGet(`${srv.url}/chunked`);
    assert.equal(res.status, 200);
    const { data } = await readAll(res, { slowEvery: 4, slowMs: 10 });
    assert.equal(data.length, body.length);
    assert.equal(sha256(data), sha256(body));
  });

  it("chunked framing split at awkward places: inside size lines, extensions, CRLFs, the last chunk and the trailer", T, async () => {
    const srv = await serve((s) =>
      sendPieces(s, [
        "HTTP/1.1 200 OK\r\nTransfer-Enc",
        "oding: chunked\r\nX-A: 1\r",
        "\n\r",
        "\n5",
        ';ext="q;v"\r',
        "\nhel",
        "lo\r",
        "\n",
        "00a;name=value\r\n0123",
        "456789",
        "\r\n1\r\n",
        "!",
        "\r\n0",
        "\r\nX-Trailer: t\r",
        "\n",
        "\r\n",
      ]),
    );
    const res = await rawGet(`${srv.url}/x`);
    const { data } = await readAll(res);
    assert.equal(data.toString(), "hello0123456789!");
    // the trailer is not part of the body and the head's fields are unchanged
    assert.equal(res.headers.get("x-a"), "1");
  });

  it("whitespace before a chunk extension's ';' (BWS, RFC 9112 §7.1.1) is decoded or refused, never mis-framed or left pending", T, async () => {
    // RFC 9110 §5.6.3 asks recipients to accept BWS; node:http (llhttp) refuses it as an invalid
    // chunk size, and so may rawGet, but only with a network error
    const srv = await serve((s) => send(s, 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5 ; name = value\r\nhello\r\n6\t;a;b="c"\r\n world\r\n0\r\n\r\n'));
    const outcome = await within(
      getAndRead(`${srv.url}/x`).then(
        (b) => b.toString(),
        (e: { code?: string }) => `error ${e.code}`,
      ),
      3000,
      "chunked body with BWS",
    );
    assert.ok(outcome === "hello world" || outcome === "error ECONNRESET", outcome);
  });

  it("Transfer-Encoding chunked overrides Content-Length (RFC 9112 §6.3 item 3)", T, async () => {
    const srv = await serve((s) => send(s, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"));
    assert.equal((await getAndRead(`${srv.url}/x`)).toString(), "hello");
  });

  it("a body delimited by the connection closing (no length), also from an HTTP/1.0 server", T, async () => {
    const body = randomBytes(3 * MiB + 12345);
    for (const version of ["1.1", "1.0"]) {
      const srv = await serve(async (s) => {
        await send(s, `HTTP/${version} 200 OK\r\nConnection: close\r\n\r\n`);
        const rnd = prng(7);
        for (let off = 0; off < body.length; ) {
          const n = rnd(1, 256 * 1024);
          await send(s, body.subarray(off, off + n));
          off += n;
        }
        await delay(20);
        s.end();
      });
      const res = await rawGet(`${srv.url}/close`);
      assert.equal(res.status, 200);
      const { data } = await readAll(res, { slowEvery: 2 });
      assert.equal(sha256(data), sha256(body), `HTTP/${version}`);
    }
  });

  it("interim 1xx responses are skipped: 100 Continue in its own packet, 103 + 100 + the final response in one", T, async () => {
    const a = await serve(async (s) => {
      await send(s, "HTTP/1.1 100 Continue\r\n\r\n");
      await delay(30);
      await send(s, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nX-Final: yes\r\n\r\nbody");
    });
    const r1 = await rawGet(`${a.url}/x`);
    assert.equal(r1.status, 200);
    assert.equal(r1.headers.get("x-final"), "yes");
    assert.equal((await readAll(r1)).data.toString(), "body");

    const b = await serve((s) =>
      send(s, "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nabc"),
    );
    const r2 = await rawGet(`${b.url}/x`);
    assert.equal(r2.status, 201);
    assert.equal(r2.headers.get("link"), null, "fields of an interim response are not the final response's");
    assert.equal((await readAll(r2)).data.toString(), "abc");
  });

  it("204, 304 (even with Content-Length) and Content-Length: 0 have empty bodies and end without the connection closing", T, async () => {
    for (const head of ["HTTP/1.1 204 No Content\r\nX-A: b\r\n\r\n", "HTTP/1.1 304 Not Modified\r\nContent-Length: 1234\r\nETag: \"x\"\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"]) {
      // the server keeps the connection open: the body must end by framing alone
      const srv = await serve((s) => send(s, head));
      const res = await rawGet(`${srv.url}/x`);
      assert.equal(res.status, Number(head.slice(9, 12)));
      const { data, chunks } = await within(readAll(res), 2000, head.split("\r\n")[0]);
      assert.equal(data.length, 0);
      assert.equal(chunks, 0);
    }
  });

  it("a head and a whole small body in one packet; a reason phrase may be empty (RFC 9112 §4)", T, async () => {
    const srv = await serve((s) => send(s, "HTTP/1.1 200 \r\nContent-Length: 11\r\n\r\nhello world"));
    const res = await rawGet(`${srv.url}/x`);
    assert.equal(res.status, 200);
    assert.equal((await readAll(res)).data.toString(), "hello world");
  });

  it("sends a GET with the request target, Host and the caller's headers", T, async () => {
    const srv = await serve((s) => send(s, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
    const res = await rawGet(`${srv.url}/v2/a%20b/blobs/sha256:ab?x=1&y=2#frag`, { headers: { "X-Custom": "v1", Accept: "*/*" } });
    await readAll(res);
    const lines = srv.conns[0].request.split("\r\n");
    assert.equal(lines[0], "GET /v2/a%20b/blobs/sha256:ab?x=1&y=2 HTTP/1.1");
    const fields = new Map(lines.slice(1).map((l) => [l.slice(0, l.indexOf(":")).toLowerCase(), l.slice(l.indexOf(":") + 1).trim()]));
    assert.equal(fields.get("host"), `127.0.0.1:${srv.port}`);
    assert.equal(fields.get("x-custom"), "v1");
    assert.equal(fields.get("accept"), "*/*");
  });

  it("repeated header fields are joined with commas in order; names are case-insensitive; OWS is trimmed (RFC 9110 §5.2, §5.3)", T, async () => {
    const srv = await serve((s) =>
      send(s, "HTTP/1.1 200 OK\r\nX-Multi: a\r\nContent-Length: 0\r\nx-multi: b\r\nX-MULTI:c  \r\nX-Pad: \t v w \t\r\nWWW-Authenticate: Bearer realm=\"r\"\r\n\r\n"),
    );
    const res = await rawGet(`${srv.url}/x`);
    await readAll(res);
    assert.equal(res.headers.get("x-multi"), "a, b, c");
    assert.equal(res.headers.get("X-Multi"), "a, b, c");
    assert.equal(res.headers.get("x-pad"), "v w");
    assert.equal(res.headers.get("www-authenticate"), 'Bearer realm="r"');
    assert.equal(res.headers.get("x-missing"), null);
  });

  it("a head of 32 KiB split over several packets is parsed", T, async () => {
    const big = "v".repeat(32 * 1024);
    const wire = `HTTP/1.1 200 OK\r\nX-Big: ${big}\r\nContent-Length: 2\r\n\r\nok`;
    const srv = await serve((s) => sendPieces(s, [wire.slice(0, 10), wire.slice(10, 20000), wire.slice(20000, wire.length - 3), wire.slice(wire.length - 3)]));
    const res = await rawGet(`${srv.url}/x`);
    assert.equal(res.headers.get("x-big"), big);
    assert.equal((await readAll(res)).data.toString(), "ok");
  });

  it("text() of an error response: a chunked UTF-8 body split inside a character, and a close-delimited one", T, async () => {
    const json = Buffer.from(JSON.stringify({ errors: [{ code: "BLOB_UNKNOWN", message: "blob unknown to registry: é€😀" }] }));
    const cut = json.indexOf(Buffer.from("€")) + 1;
    const a = await serve((s) =>
      sendPieces(s, [
        "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        Buffer.concat([Buffer.from(`${cut.toString(16)}\r\n`), json.subarray(0, cut), Buffer.from("\r\n")]),
        Buffer.concat([Buffer.from(`${(json.length - cut).toString(16)}\r\n`), json.subarray(cut), Buffer.from("\r\n0\r\n\r\n")]),
      ]),
    );
    const r1 = await rawGet(`${a.url}/x`);
    assert.equal(r1.status, 404);
    assert.equal(r1.ok, false);
    assert.equal(await r1.text(), json.toString());

    const b = await serve(async (s) => {
      await send(s, "HTTP/1.1 500 Internal Server Error\r\n\r\nsomething ");
      await delay(10);
      s.end("broke");
    });
    const r2 = await rawGet(`${b.url}/x`);
    assert.equal(r2.status, 500);
    assert.equal(await r2.text(), "something broke");
  });

  it("two downloads at once (sharing the buffer pool) are both intact", T, async () => {
    const bodies = [randomBytes(8 * MiB + 1), randomBytes(6 * MiB + 3)];
    const srvs = await Promise.all(
      bodies.map((body) =>
        serve(async (s) => {
          await send(s, `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n`);
          await send(s, body);
        }),
      ),
    );
    const results = await Promise.all(srvs.map(async (srv, i) => readAll(await rawGet(`${srv.url}/b`), { slowEvery: 2 + i, slowMs: 7 })));
    for (let i = 0; i < 2; i++) assert.equal(sha256(results[i].data), sha256(bodies[i]));
  });

  it("bytes that trickle in reach a waiting consumer without waiting for more", T, async () => {
    let seen!: () => void;
    const seenFirst = new Promise<void>((r) => (seen = r));
    let outcome = "";
    const srv = await serve(async (s) => {
      await send(s, "HTTP/1.1 200 OK\r\nContent-Length: 200\r\n\r\n");
      await delay(30);
      await send(s, "a".repeat(100));
      outcome = await within(seenFirst, 3000, "first bytes delivered").then(
        () => "seen",
        () => "not delivered",
      );
      await send(s, "b".repeat(100));
    });
    const res = await rawGet(`${srv.url}/slow`);
    const parts: string[] = [];
    for await (const c of res.body) {
      parts.push(c.toString());
      seen();
    }
    assert.equal(parts.join(""), "a".repeat(100) + "b".repeat(100));
    assert.equal(outcome, "seen", "the first 100 bytes were held back until the rest arrived");
  });
});

describe("rawGet: failures are network errors", () => {
  const serve = serverPool();

  it("a Content-Length body cut short by the server closing: iteration rejects with ECONNRESET after the bytes received", T, async () => {
    const body = randomBytes(100_000);
    const srv = await serve(async (s) => {
      await send(s, `HTTP/1.1 200 OK\r\nContent-Length: ${body.length + 1}\r\n\r\n`);
      await send(s, body);
      await delay(20);
      s.end();
    });
    const res = await rawGet(`${srv.url}/x`);
    const got: Buffer[] = [];
    const e = await rejection(
      (async () => {
        for await (const c of res.body) got.push(Buffer.from(c));
      })(),
    );
    assert.equal(e.code, "ECONNRESET");
    // whatever was handed on is a prefix of what was sent
    const prefix = Buffer.concat(got);
    assert.ok(body.subarray(0, prefix.length).equals(prefix));
  });

  it("a chunked body cut short (inside a chunk, between chunks, inside the trailer) rejects with ECONNRESET", T, async () => {
    for (const tail of ["5\r\nhel", "5\r\nhello\r\n", "5\r\nhello\r\n0\r\nX-T: 1\r\n"]) {
      const srv = await serve(async (s) => {
        await send(s, `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${tail}`);
        await delay(20);
        s.end();
      });
      const e = await rejection(getAndRead(`${srv.url}/x`));
      assert.equal(e.code, "ECONNRESET", JSON.stringify(tail));
    }
  });

  it("a connection reset mid-body rejects with ECONNRESET", T, async () => {
    const srv = await serve(async (s) => {
      await send(s, `HTTP/1.1 200 OK\r\nContent-Length: ${4 * MiB}\r\n\r\n`);
      await send(s, randomBytes(MiB));
      await delay(20);
      s.resetAndDestroy();
    });
    const e = await rejection(getAndRead(`${srv.url}/x`));
    assert.equal(e.code, "ECONNRESET");
  });

  it("a connection closed before any response rejects rawGet with ECONNRESET", T, async () => {
    const srv = await serve((s) => {
      s.end();
    });
    assert.equal((await rejection(rawGet(`${srv.url}/x`))).code, "ECONNRESET");
    const srv2 = await serve(async (s) => {
      await send(s, "HTTP/1.1 200 OK\r\nContent-Le");
      s.end();
    });
    assert.equal((await rejection(rawGet(`${srv2.url}/x`))).code, "ECONNRESET");
  });

  it("more bytes than Content-Length is an error, in the head's packet or a later one", T, async () => {
    const a = await serve((s) => send(s, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA"));
    const e1 = await within(rejection(getAndRead(`${a.url}/x`)), 3000, "error for extra bytes in the head's packet");
    assert.equal(e1.code, "ECONNRESET");
    const b = await serve((s) => sendPieces(s, ["HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "hel", "loEXTRA"]));
    const e2 = await within(rejection(getAndRead(`${b.url}/x`)), 3000, "error for extra bytes in a later packet");
    assert.equal(e2.code, "ECONNRESET");
  });

  it("bytes after the end of a chunked body or of a 204 are an error", T, async () => {
    for (const wire of ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\nHTTP/1.1 200 OK", "HTTP/1.1 204 No Content\r\n\r\nunexpected"]) {
      const srv = await serve((s) => send(s, wire));
      const e = await within(rejection(getAndRead(`${srv.url}/x`)), 3000, JSON.stringify(wire));
      assert.equal(e.code, "ECONNRESET");
    }
  });

  it("malformed status lines, header lines, Content-Length values and chunk sizes are errors", T, async () => {
    const wires = [
      "HTTP/1.1 OK\r\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n",
      "SSH-2.0-OpenSSH_9.6\r\n\r\n",
      "HTTP/1.1 200 OK\r\nno colon here\r\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 200 OK\r\n: empty name\r\nContent-Length: 0\r\n\r\n",
      // RFC 9112 §6.3 item 5: an invalid Content-Length is an unrecoverable framing error
      "HTTP/1.1 200 OK\r\nContent-Length: 12abc\r\n\r\nabc",
      "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nabc",
      "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
    ];
    for (const wire of wires) {
      const srv = await serve((s) => send(s, wire));
      const e = await within(rejection(getAndRead(`${srv.url}/x`)), 3000, JSON.stringify(wire));
      assert.equal(e.code, "ECONNRESET", JSON.stringify(wire));
    }
  });

  it("a head larger than 64 KiB is an error, with or without its end in sight", T, async () => {
    const big = "x".repeat(70 * 1024);
    const a = await serve((s) => send(s, `HTTP/1.1 200 OK\r\nX-Big: ${big}\r\nContent-Length: 2\r\n\r\nok`));
    const e1 = await within(rejection(getAndRead(`${a.url}/x`)), 3000, "70 KiB head in one write");
    assert.equal(e1.code, "ECONNRESET");
    // a head that never ends: header lines keep coming
    const b = await serve(async (s) => {
      await send(s, "HTTP/1.1 200 OK\r\n");
      for (let i = 0; i < 200 && !s.destroyed; i++) {
        await send(s, `X-Line-${i}: ${"y".repeat(1000)}\r\n`);
        if (i % 20 === 0) await delay(2);
      }
    });
    const e2 = await within(rejection(rawGet(`${b.url}/x`)), 3000, "endless head");
    assert.equal(e2.code, "ECONNRESET");
  });

  it("idle timeout: headers then silence rejects the iteration with ETIMEDOUT; silence before headers rejects rawGet", T, async () => {
    const a = await serve((s) => send(s, `HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n${"z".repeat(10)}`));
    const res = await rawGet(`${a.url}/x`, { idleTimeoutMs: 300 });
    const t0 = performance.now();
    const e1 = await rejection(readAll(res));
    const took = performance.now() - t0;
    assert.equal(e1.code, "ETIMEDOUT");
    assert.ok(took >= 200 && took < 3000, `timed out after ${took} ms`);
    await within(a.conns[0].closed, 2000, "connection closed after the timeout");

    const b = await serve(() => {});
    const e2 = await rejection(rawGet(`${b.url}/x`, { idleTimeoutMs: 300 }));
    assert.equal(e2.code, "ETIMEDOUT");
  });

  it("idle timeout counts silence, not total time: a body trickling in for longer than the timeout completes", T, async () => {
    const srv = await serve(async (s) => {
      await send(s, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n");
      for (let i = 0; i < 10; i++) {
        await delay(100);
        await send(s, String(i));
      }
    });
    const res = await rawGet(`${srv.url}/x`, { idleTimeoutMs: 300 });
    assert.equal((await readAll(res)).data.toString(), "0123456789");
  });

  it("an abort mid-body rejects with AbortError and closes the connection", T, async () => {
    const srv = await serve(async (s) => {
      await send(s, `HTTP/1.1 200 OK\r\nContent-Length: ${10 * MiB}\r\n\r\n`);
      await send(s, randomBytes(2 * MiB));
      // then silence: only the abort can end this
    });
    const ac = new AbortController();
    const res = await rawGet(`${srv.url}/x`, { signal: ac.signal });
    let n = 0;
    const e = await rejection(
      (async () => {
        for await (const c of res.body) {
          n += c.length;
          if (!ac.signal.aborted) ac.abort();
        }
      })(),
    );
    assert.equal(e.name, "AbortError");
    assert.ok(n > 0 && n <= 2 * MiB);
    await within(srv.conns[0].closed, 2000, "server saw the connection close");
  });

  it("an abort before the response, or an already aborted signal, rejects rawGet with AbortError", T, async () => {
    const srv = await serve(() => {});
    const ac = new AbortController();
    const p = rawGet(`${srv.url}/x`, { signal: ac.signal });
    await delay(50);
    ac.abort();
    assert.equal((await rejection(p)).name, "AbortError");
    await within(
      (async () => {
        while (srv.conns.length === 0) await delay(5);
        await srv.conns[0].closed;
      })(),
      2000,
      "server saw the connection close",
    );
    assert.equal((await rejection(rawGet(`${srv.url}/x`, { signal: AbortSignal.abort() }))).name, "AbortError");
  });

  it("leaving the iteration early or cancel() closes the connection", T, async () => {
    const srv = await serve(async (s) => {
      await send(s, `HTTP/1.1 200 OK\r\nContent-Length: ${8 * MiB}\r\n\r\n`);
      await send(s, randomBytes(MiB));
    });
    const r1 = await rawGet(`${srv.url}/x`);
    for await (const c of r1.body) {
      assert.ok(c.length > 0);
      break;
    }
    await within(srv.conns[0].closed, 2000, "closed after break");
    const r2 = await rawGet(`${srv.url}/x`);
    await r2.body.cancel();
    await within(srv.conns[1].closed, 2000, "closed after cancel()");
  });

  it("the buffer pool: an answer without a body takes no buffer; a body read, left early or cancelled unread gives its buffers back", T, async () => {
    const srv = await serve(async (s, request) => {
      if (request.startsWith("HEAD ")) await send(s, "HTTP/1.1 200 OK\r\nContent-Length: 5000000\r\n\r\n");
      else if (request.startsWith("POST ")) await send(s, "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nLocation: /u/1\r\n\r\n");
      else {
        await send(s, `HTTP/1.1 200 OK\r\nContent-Length: ${3 * MiB}\r\n\r\n`);
        await send(s, randomBytes(3 * MiB));
      }
    });
    const base = buffersOut();
    for (let i = 0; i < 3; i++) {
      const head = await rawRequest(`${srv.url}/b`, { method: "HEAD" });
      const post = await rawRequest(`${srv.url}/u`, { method: "POST", body: Buffer.alloc(0) });
      assert.equal(buffersOut(), base, "a HEAD and a 202 hold no pool buffer");
      await head.body.cancel();
      await post.body.cancel();
      const unread = await rawGet(`${srv.url}/b`);
      await delay(30);
      assert.ok(buffersOut() > base, "a body arriving is read into the pool");
      await unread.body.cancel();
      assert.equal(buffersOut(), base, "cancelled unread");
      const early = await rawGet(`${srv.url}/b`);
      for await (const c of early.body) {
        assert.ok(c.length > 0);
        break;
      }
      assert.equal(buffersOut(), base, "left after one chunk");
      assert.equal((await readAll(await rawGet(`${srv.url}/b`))).data.length, 3 * MiB);
      assert.equal(buffersOut(), base, "read to its end");
    }
  });

  it("an unsupported URL scheme is refused", T, async () => {
    await assert.rejects(rawGet("ftp://127.0.0.1/x"));
  });
});

describe("rawGet against node:http servers: redirects, chunked", () => {
  type Seen = { url: string; authorization?: string; custom?: string };
  const servers: http.Server[] = [];
  let a: string;
  let b: string;
  const seenA: Seen[] = [];
  const seenB: Seen[] = [];
  const record = (list: Seen[], req: http.IncomingMessage) =>
    list.push({ url: req.url ?? "", authorization: req.headers.authorization, custom: req.headers["x-custom"] as string | undefined });
  const listen = async (h: http.RequestListener) => {
    const s = http.createServer(h);
    servers.push(s);
    await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
    return `http://127.0.0.1:${(s.address() as net.AddressInfo).port}`;
  };

  before(async () => {
    b = await listen((req, res) => {
      record(seenB, req);
      res.end("from b");
    });
    a = await listen((req, res) => {
      record(seenA, req);
      const m = /^\/cross\/(\d+)$/.exec(req.url ?? "");
      if (m) res.writeHead(Number(m[1]), { Location: `${b}/blob?x=1` }).end();
      else if (req.url === "/same") res.writeHead(307, { Location: "/final" }).end();
      else if (req.url === "/loop") res.writeHead(302, { Location: "/loop" }).end();
      else if (req.url === "/created") res.writeHead(201, { Location: "/elsewhere" }).end("made");
      else res.end(`from a ${req.url}`);
    });
  });
  after(async () => {
    for (const s of servers) {
      s.closeAllConnections();
      await new Promise((r) => s.close(r));
    }
  });

  it("307 to another origin: followed, without the Authorization header", T, async () => {
    const res = await rawGet(`${a}/cross/307`, { headers: { Authorization: "Bearer s3cret", "X-Custom": "c" } });
    assert.equal(res.status, 200);
    assert.equal(res.url, `${b}/blob?x=1`);
    assert.equal(await res.text(), "from b");
    assert.equal(seenA.at(-1)?.authorization, "Bearer s3cret");
    assert.deepEqual(seenB.at(-1), { url: "/blob?x=1", authorization: undefined, custom: "c" });
  });

  it("301, 302, 303 and 308 to another origin drop Authorization too", T, async () => {
    for (const code of [301, 302, 303, 308]) {
      const n = seenB.length;
      const res = await rawGet(`${a}/cross/${code}`, { headers: { Authorization: "Basic dXNlcjpwYXNz" } });
      assert.equal(await res.text(), "from b", String(code));
      assert.equal(seenB.length, n + 1);
      assert.equal(seenB.at(-1)?.authorization, undefined, String(code));
    }
  });

  it("a same-origin redirect keeps Authorization", T, async () => {
    const res = await rawGet(`${a}/same`, { headers: { Authorization: "Bearer s3cret" } });
    assert.equal(res.url, `${a}/final`);
    assert.equal(await res.text(), "from a /final");
    assert.deepEqual(
      seenA.slice(-2).map((s) => [s.url, s.authorization]),
      [
        ["/same", "Bearer s3cret"],
        ["/final", "Bearer s3cret"],
      ],
    );
  });

  it("an endless redirect loop is an error; Location on a non-redirect status is not followed", T, async () => {
    const n = seenA.length;
    await assert.rejects(rawGet(`${a}/loop`), /redirect/);
    assert.ok(seenA.length - n > 1 && seenA.length - n < 50, `${seenA.length - n} requests`);
    const res = await rawGet(`${a}/created`);
    assert.equal(res.status, 201);
    assert.equal(await res.text(), "made");
  });

  it("a node:http server's chunked response of random-size writes is intact", T, async () => {
    const body = randomBytes(4 * MiB + 5);
    const url = await listen(async (_req, res) => {
      const rnd = prng(42);
      for (let off = 0; off < body.length; ) {
        const n = rnd(1, 200_000);
        if (!res.write(body.subarray(off, off + n))) await new Promise((r) => res.once("drain", r));
        off += n;
      }
      res.end();
    });
    const r = await rawGet(`${url}/c`);
    assert.equal(r.headers.get("transfer-encoding"), "chunked");
    assert.equal(sha256((await readAll(r, { slowEvery: 5 })).data), sha256(body));
  });
});

describe("rawGet over TLS", { skip: missing("openssl") }, () => {
  let dir: string;
  let server: https.Server;
  let url: string;
  let certPath: string;
  let requests = 0;
  const body = randomBytes(5 * MiB);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "strata-rawhttp-tls-"));
    certPath = join(dir, "cert.pem");
    const keyPath = join(dir, "key.pem");
    execFileSync(
      "openssl",
      ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", keyPath, "-out", certPath, "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-days", "2"],
      { stdio: "ignore" },
    );
    server = https.createServer({ key: readFileSync(keyPath), cert: readFileSync(certPath) }, (_req, res) => {
      requests++;
      res.writeHead(200, { "Content-Length": body.length });
      res.end(body);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    url = `https://127.0.0.1:${(server.address() as net.AddressInfo).port}/blob`;
  });
  after(async () => {
    server?.closeAllConnections();
    await new Promise((r) => server?.close(r));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("refuses a certificate it does not trust, before sending the request", T, async () => {
    const e = await rejection(rawGet(url));
    assert.match(String(e.code), /CERT|SELF_SIGNED/);
    assert.equal(requests, 0);
  });

  it("reads a 5 MiB body intact when the CA is trusted (NODE_EXTRA_CA_CERTS, in a child process)", T, async () => {
    const mod = new URL("../src/registry/rawhttp.js", import.meta.url).href;
    assert.ok(fileURLToPath(mod).endsWith(join("dist", "src", "registry", "rawhttp.js")));
    const script = `
      import { createHash } from "node:crypto";
      const { rawGet } = await import(${JSON.stringify(mod)});
      const res = await rawGet(${JSON.stringify(url)});
      const h = createHash("sha256");
      let n = 0;
      for await (const c of res.body) { h.update(c); n += c.length; }
      console.log(JSON.stringify({ status: res.status, n, sha: h.digest("hex") }));
    `;
    const { stdout } = await promisify(execFile)(process.execPath, ["--input-type=module", "-e", script], { env: { ...process.env, NODE_EXTRA_CA_CERTS: certPath }, timeout: 10_000 });
    const out = JSON.parse(stdout.trim()) as { status: number; n: number; sha: string };
    assert.deepEqual(out, { status: 200, n: body.length, sha: sha256(body) });
    assert.equal(requests, 1);
  });
});
