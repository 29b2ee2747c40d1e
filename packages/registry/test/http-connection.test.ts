/**
 * A request whose body the registry stops reading (an upload that fails half-way) must not
 * stall the keep-alive connection it came on: the next request on the same socket is answered
 * at once, or the failed request's answer says `Connection: close` and the socket closes.
 * Raw sockets, so that the second request really shares the first one's connection.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readdirSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parseConfig } from "../src/config.js";
import { DRAIN_BYTES } from "../src/http/body.js";
import { type RunningServer, startServer } from "../src/server.js";

const MiB = 1024 * 1024;

interface Exchange {
  /** Status lines and Connection headers of the responses, in order. */
  responses: { status: number; connection?: string }[];
  /** Whether the server closed the socket. */
  closed: boolean;
}

function parseResponses(text: string): Exchange["responses"] {
  const out: Exchange["responses"] = [];
  for (const head of text.split(/(?=HTTP\/1\.1 \d{3} )/)) {
    const m = /^HTTP\/1\.1 (\d{3}) /.exec(head);
    if (!m) continue;
    const c = /\r\nconnection: *([^\r]*)/i.exec(head.split("\r\n\r\n")[0]);
    out.push({ status: Number(m[1]), connection: c?.[1].toLowerCase() });
  }
  return out;
}

/**
 * Sends `head` + `body` (chunked when asked) and then `GET /v2/` on the same socket; resolves
 * once two responses arrived, the server closed the socket, or `waitMs` passed.
 */
function exchange(port: number, head: string, body: Buffer, chunked: boolean, waitMs = 6000): Promise<Exchange> {
  return new Promise((resolve) => {
    const s = connect(port, "127.0.0.1");
    let text = "";
    let closed = false;
    const finish = () => {
      clearTimeout(timer);
      s.destroy();
      resolve({ responses: parseResponses(text), closed });
    };
    const timer = setTimeout(finish, waitMs);
    s.on("data", (d: Buffer) => {
      text += d.toString("latin1");
      if (parseResponses(text).length >= 2) finish();
    });
    s.on("error", () => {}); // EPIPE/ECONNRESET when the server closes while we still send
    s.on("close", () => {
      closed = true;
      finish();
    });
    s.write(head);
    if (chunked) {
      for (let i = 0; i < body.length; i += 256 * 1024) {
        const c = body.subarray(i, i + 256 * 1024);
        s.write(`${c.length.toString(16)}\r\n`);
        s.write(c);
        s.write("\r\n");
      }
      s.write("0\r\n\r\n");
    } else {
      s.write(body);
    }
    s.write("GET /v2/ HTTP/1.1\r\nHost: registry\r\n\r\n");
  });
}

describe("connection after a failed upload", () => {
  let root: string;
  let srv: RunningServer;
  let port: number;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), "strata-conn-"));
    srv = await startServer(
      parseConfig({
        addr: "127.0.0.1:0",
        log: { level: "silent" },
        storage: { driver: "filesystem", filesystem: { root } },
        limits: { blobMaxBytes: MiB, manifestMaxBytes: 64 * 1024 },
      }),
    );
    port = Number(new URL(srv.url).port);
  });
  after(async () => {
    await srv?.close();
    await rm(root, { recursive: true, force: true });
  });

  const startUpload = async (): Promise<string> => {
    const r = await fetch(`${srv.url}/v2/conn/app/blobs/uploads/`, { method: "POST" });
    assert.equal(r.status, 202);
    return r.headers.get("location")!;
  };
  const body = Buffer.alloc(4 * MiB, 7);

  for (const chunked of [false, true]) {
    const framing = (n: number) => (chunked ? "Transfer-Encoding: chunked" : `Content-Length: ${n}`);
    const kind = chunked ? "chunked" : "Content-Length";

    it(`answers the next request at once after a PATCH over limits.blobMaxBytes (${kind})`, async () => {
      const loc = await startUpload();
      const x = await exchange(port, `PATCH ${loc} HTTP/1.1\r\nHost: registry\r\n${framing(body.length)}\r\n\r\n`, body, chunked);
      assert.equal(x.responses[0]?.status, 400, JSON.stringify(x));
      assert.equal(x.responses[1]?.status, 200, `second request on the connection: ${JSON.stringify(x)}`);
    });

    it(`answers the next request at once after a monolithic POST over the limit (${kind})`, async () => {
      const digest = `sha256:${"a".repeat(64)}`;
      const x = await exchange(port, `POST /v2/conn/app/blobs/uploads/?digest=${digest} HTTP/1.1\r\nHost: registry\r\n${framing(body.length)}\r\n\r\n`, body, chunked);
      assert.equal(x.responses[0]?.status, 400, JSON.stringify(x));
      assert.equal(x.responses[1]?.status, 200, JSON.stringify(x));
    });

    it(`answers the next request at once after a manifest over limits.manifestMaxBytes (${kind})`, async () => {
      const x = await exchange(
        port,
        `PUT /v2/conn/app/manifests/v1 HTTP/1.1\r\nHost: registry\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\n${framing(body.length)}\r\n\r\n`,
        body,
        chunked,
      );
      assert.equal(x.responses[0]?.status, 413, JSON.stringify(x));
      assert.equal(x.responses[1]?.status, 200, JSON.stringify(x));
    });

    it(`answers the next request at once after a PATCH to an unknown upload (${kind})`, async () => {
      const x = await exchange(port, `PATCH /v2/conn/app/blobs/uploads/00000000-0000-4000-8000-000000000000 HTTP/1.1\r\nHost: registry\r\n${framing(body.length)}\r\n\r\n`, body, chunked);
      assert.equal(x.responses[0]?.status, 404, JSON.stringify(x));
      assert.equal(x.responses[1]?.status, 200, JSON.stringify(x));
    });
  }

  it("a client that hangs up in the middle of a body the handler never read does not upset the server", async () => {
    for (const target of ["/v2/conn/app/blobs/uploads/00000000-0000-4000-8000-000000000000", await startUpload()]) {
      await new Promise<void>((resolve) => {
        const s = connect(port, "127.0.0.1", () => {
          s.write(`PATCH ${target} HTTP/1.1\r\nHost: registry\r\nContent-Length: ${4 * MiB}\r\n\r\n`);
          s.write(Buffer.alloc(MiB));
          setTimeout(() => {
            s.destroy();
            resolve();
          }, 50);
        });
        s.on("error", () => {});
      });
    }
    await new Promise((r) => setTimeout(r, 200));
    assert.equal((await fetch(`${srv.url}/v2/`)).status, 200);
  });

  it("a download its client abandons releases the blob's file", async (t) => {
    const unlimited = await startServer(parseConfig({ addr: "127.0.0.1:0", log: { level: "silent" }, storage: { driver: "filesystem", filesystem: { root } } }));
    t.after(() => unlimited.close());
    const blob = Buffer.alloc(32 * MiB, 3);
    const digest = `sha256:${createHash("sha256").update(blob).digest("hex")}`;
    const put = await fetch(`${unlimited.url}/v2/conn/dl/blobs/uploads/?digest=${digest}`, { method: "POST", body: blob });
    assert.equal(put.status, 201);
    const fds = () => readdirSync("/proc/self/fd").length;
    const before = fds();
    for (let i = 0; i < 20; i++) {
      await new Promise<void>((resolve) => {
        const s = connect(Number(new URL(unlimited.url).port), "127.0.0.1", () => s.write(`GET /v2/conn/dl/blobs/${digest} HTTP/1.1\r\nHost: registry\r\n\r\n`));
        s.once("data", () => {
          s.destroy();
          resolve();
        });
        s.on("error", () => resolve());
      });
    }
    await new Promise((r) => setTimeout(r, 500));
    assert.ok(fds() - before < 5, `file descriptors before ${before}, after ${fds()}`);
  });

  it("closes the connection instead of reading more than the drain bound", async () => {
    const loc = await startUpload();
    const huge = Buffer.alloc(DRAIN_BYTES + 24 * MiB, 1);
    const t0 = Date.now();
    const x = await exchange(port, `PATCH ${loc} HTTP/1.1\r\nHost: registry\r\nContent-Length: ${huge.length}\r\n\r\n`, huge, false, 15_000);
    assert.ok(x.closed || x.responses.length === 2, `neither answered nor closed: ${JSON.stringify(x)}`);
    if (x.responses.length === 1) assert.equal(x.responses[0].connection, "close");
    assert.ok(Date.now() - t0 < 10_000, "the connection was not left hanging");
  });
});
