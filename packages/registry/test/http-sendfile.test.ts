/**
 * Zero-copy blob GET (http/sendfile.ts) on filesystem storage over real sockets: the bytes are
 * those pushed (large, small, empty, ranges) by sendfile and by native copy, HEAD is unchanged,
 * TLS and `http.send: stream` stream instead, a blob file changed on disk is never served whole, and clients that go away
 * mid-transfer leave no descriptor behind.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, readdirSync } from "node:fs";
import { mkdtemp, rm, stat, utimes, writeFile } from "node:fs/promises";
import { request as httpsRequest } from "node:https";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { parseConfig, type RegistryConfigInput } from "../src/config.js";
import { sendfileStats } from "../src/http/sendfile.js";
import { type RunningServer, startServer } from "../src/server.js";
import { rawGet } from "./helpers/raw-get.js";

const MiB = 1024 * 1024;
const linux = process.platform === "linux" ? false : "sendfile is used on Linux only";
const noOpenssl = ["/usr/bin/openssl", "/bin/openssl"].some((p) => existsSync(p)) ? false : "needs openssl";

const sha256 = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

async function push(base: string, repo: string, blob: Buffer): Promise<string> {
  const digest = sha256(blob);
  const res = await fetch(`${base}/v2/${repo}/blobs/uploads/?digest=${digest}`, {
    method: "POST",
    body: blob,
    headers: { "Content-Type": "application/octet-stream" },
  });
  assert.equal(res.status, 201, await res.text());
  return digest;
}

const openFds = () => readdirSync("/proc/self/fd").length;
const run = promisify(execFile);

/** Drops `file`'s pages from the page cache (GNU dd: nocache with count=0 covers the whole file). */
async function evict(file: string): Promise<void> {
  await run("dd", [`if=${file}`, "iflag=nocache", "count=0", "status=none"]);
}

/** Bytes of `file` in the page cache (util-linux fincore), or -1 where fincore is missing. */
async function residentBytes(file: string): Promise<number> {
  try {
    const { stdout } = await run("fincore", ["--bytes", "--noheadings", "--output", "RES", file]);
    return Number(stdout.trim());
  } catch {
    return -1;
  }
}

async function withServer(root: string, extra: Partial<RegistryConfigInput> = {}): Promise<RunningServer> {
  return startServer(parseConfig({ addr: "127.0.0.1:0", log: { level: "silent" }, storage: { driver: "filesystem", filesystem: { root } }, ...extra }));
}

const blobFile = (root: string, digest: string) => {
  const hex = digest.slice("sha256:".length);
  return join(root, "v2", "blobs", "sha256", hex.slice(0, 2), hex, "data");
};

for (const mode of ["sendfile", "copy"] as const) describe(`blob GET sent natively, http.send: ${mode} [filesystem]`, { skip: linux }, () => {
  let root: string;
  let srv: RunningServer;
  const large = randomBytes(24 * MiB + 7);
  const small = randomBytes(100);
  let largeDigest: string;
  let smallDigest: string;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), "strata-sendfile-"));
    srv = await withServer(root, { http: { send: mode } });
    largeDigest = await push(srv.url, "sf/a", large);
    smallDigest = await push(srv.url, "sf/a", small);
  });
  after(async () => {
    await srv.close();
    await rm(root, { recursive: true, force: true });
  });

  it("serves a large blob byte for byte natively, with the usual headers", async () => {
    const before = { ...sendfileStats };
    for (let i = 0; i < 2; i++) {
      const res = await rawGet(`${srv.url}/v2/sf/a/blobs/${largeDigest}`);
      assert.equal(res.status, 200);
      assert.ok(res.complete);
      assert.equal(res.headers["content-length"], String(large.length));
      assert.equal(res.headers["docker-content-digest"], largeDigest);
      assert.equal(res.headers["etag"], `"${largeDigest}"`);
      assert.ok(res.body.equals(large), "body differs from the pushed blob");
    }
    assert.equal(sendfileStats.responses - before.responses, 2, "both GETs went out natively");
    assert.equal(sendfileStats.bytes - before.bytes, 2 * large.length);
    assert.equal(sendfileStats.copied - before.copied, mode === "copy" ? 2 : 0, "by the mode configured");
  });

  it("reads a blob that is not in the page cache on the thread pool, then sends it whole", async (t) => {
    const file = blobFile(root, largeDigest);
    await evict(file);
    const resident = await residentBytes(file);
    if (resident !== 0) return t.skip(`cannot drop the blob file from the page cache here (${resident} bytes stay)`);
    const before = { ...sendfileStats };
    const res = await rawGet(`${srv.url}/v2/sf/a/blobs/${largeDigest}`);
    assert.equal(res.status, 200);
    assert.ok(res.complete && res.body.equals(large), "body differs from the pushed blob");
    const prefetched = sendfileStats.prefetched - before.prefetched;
    assert.ok(prefetched >= large.length / 2, `only ${prefetched} of ${large.length} bytes were read ahead on the pool`);
    assert.ok(prefetched <= large.length, `${prefetched} bytes read ahead for a ${large.length}-byte blob`);
    // Now cached: the residency check lets it go straight out. (Under another test's load the
    // kernel may drop pages in between; their windows are then read ahead again, rightly.)
    const cached = await residentBytes(file);
    const again = { ...sendfileStats };
    const res2 = await rawGet(`${srv.url}/v2/sf/a/blobs/${largeDigest}`);
    assert.ok(res2.complete && res2.body.equals(large));
    const reread = sendfileStats.prefetched - again.prefetched;
    // fincore counts whole pages: a fully cached file shows at least its size
    if (cached >= large.length) assert.equal(reread, 0, "a cached blob is read ahead again");
    else t.diagnostic(`${large.length - cached} bytes of the blob left the page cache between the GETs; ${reread} bytes were read ahead again`);
  });

  it("serves small and empty blobs, and pipelined GETs, with exact framing", async () => {
    const empty = Buffer.alloc(0);
    const emptyDigest = await push(srv.url, "sf/a", empty);
    const before = sendfileStats.responses;
    const res = await rawGet(`${srv.url}/v2/sf/a/blobs/${smallDigest}`);
    assert.equal(res.status, 200);
    assert.ok(res.body.equals(small));
    const e = await rawGet(`${srv.url}/v2/sf/a/blobs/${emptyDigest}`);
    assert.equal(e.status, 200);
    assert.equal(e.body.length, 0);
    assert.equal(e.headers["content-length"], "0");
    // Pipelined GETs on one connection: each response is framed exactly (a response that does
    // not own the socket yet when its body starts is read through a buffer instead).
    const raw = await new Promise<Buffer>((resolve, reject) => {
      const port = new URL(srv.url).port;
      const s = connect(Number(port), "127.0.0.1");
      const chunks: Buffer[] = [];
      const req = (d: string) => `GET /v2/sf/a/blobs/${d} HTTP/1.1\r\nHost: x\r\n\r\n`;
      s.on("connect", () => s.write(req(smallDigest) + req(smallDigest) + req(smallDigest).replace("HTTP/1.1\r\n", "HTTP/1.1\r\nConnection: close\r\n")));
      s.on("data", (c: Buffer) => chunks.push(c));
      s.on("end", () => resolve(Buffer.concat(chunks)));
      s.on("error", reject);
    });
    const parts = raw.toString("latin1").split("HTTP/1.1 200 OK").slice(1);
    assert.equal(parts.length, 3, "three responses on the connection");
    for (const p of parts) assert.ok(Buffer.from(p, "latin1").subarray(-small.length).equals(small));
    assert.ok(sendfileStats.responses - before >= 2, "the small blob and the first pipelined GET went out with sendfile");
  });

  it("leaves HEAD and Range answers as they were (206, Content-Range, exact slices)", async () => {
    const url = `${srv.url}/v2/sf/a/blobs/${largeDigest}`;
    const head = await rawGet(url, {}, "HEAD");
    assert.equal(head.status, 200);
    assert.equal(head.body.length, 0);
    assert.equal(head.headers["content-length"], String(large.length));
    const cases: [string, number, number][] = [
      ["bytes=0-0", 0, 0],
      ["bytes=1000-", 1000, large.length - 1],
      ["bytes=-10", large.length - 10, large.length - 1],
      ["bytes=5000000-5000099", 5000000, 5000099],
    ];
    for (const [range, a, b] of cases) {
      const res = await rawGet(url, { Range: range });
      assert.equal(res.status, 206, range);
      assert.equal(res.headers["content-range"], `bytes ${a}-${b}/${large.length}`);
      assert.ok(res.body.equals(large.subarray(a, b + 1)), `body of ${range}`);
    }
    const bad = await rawGet(url, { Range: `bytes=${large.length}-` });
    assert.equal(bad.status, 416);
  });

  it("refuses a blob file changed on disk (same size, other bytes) instead of serving it", async () => {
    const blob = randomBytes(3 * MiB);
    const digest = await push(srv.url, "sf/t", blob);
    const url = `${srv.url}/v2/sf/t/blobs/${digest}`;
    assert.ok((await rawGet(url)).body.equals(blob), "served before the change");
    const file = blobFile(root, digest);
    const tampered = Buffer.from(blob);
    tampered[12345] ^= 0xff;
    await writeFile(file, tampered);
    for (let i = 0; i < 2; i++) {
      const res = await rawGet(url);
      assert.ok(!(res.status === 200 && res.complete && res.body.length === blob.length), "the changed file was served whole");
      assert.ok(!res.body.equals(tampered));
    }
    // Modification time put back: the change time still differs, so it is still refused.
    const st = await stat(file);
    await writeFile(file, tampered);
    await utimes(file, st.atime, st.mtime);
    const res = await rawGet(url);
    assert.ok(!(res.complete && res.body.length === blob.length), "the changed file was served whole");
    // Restored content is verified again and served.
    await writeFile(file, blob);
    const ok = await rawGet(url);
    assert.equal(ok.status, 200);
    assert.ok(ok.complete && ok.body.equals(blob));
  });

  it("survives clients that disconnect mid-transfer, without leaking descriptors", async () => {
    const baseline = openFds();
    const port = Number(new URL(srv.url).port);
    for (let i = 0; i < 20; i++) {
      await new Promise<void>((resolve) => {
        const s = connect(port, "127.0.0.1");
        s.on("connect", () => s.write(`GET /v2/sf/a/blobs/${largeDigest} HTTP/1.1\r\nHost: x\r\n\r\n`));
        let got = 0;
        s.on("data", (c: Buffer) => {
          got += c.length;
          if (got > (i % 4) * MiB) {
            if (i % 2) s.resetAndDestroy();
            else s.destroy();
            resolve();
          }
        });
        s.on("error", () => resolve());
      });
    }
    // A client that never reads: its transfer stays blocked on a full socket until it leaves.
    const stalled = connect(port, "127.0.0.1");
    stalled.on("error", () => {});
    stalled.pause();
    stalled.write(`GET /v2/sf/a/blobs/${largeDigest} HTTP/1.1\r\nHost: x\r\n\r\n`);
    await sleep(300);
    stalled.destroy();
    let now = openFds();
    for (let i = 0; i < 50 && now > baseline; i++) {
      await sleep(100);
      now = openFds();
    }
    assert.ok(now <= baseline, `open descriptors: ${now}, before: ${baseline}`);
    const res = await rawGet(`${srv.url}/v2/sf/a/blobs/${largeDigest}`);
    assert.ok(res.complete && res.body.equals(large), "still serves afterwards");
  });
});

describe("blob GET in the other modes [filesystem]", () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), "strata-sendfile-off-"));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("auto copies natively to a loopback client", { skip: linux }, async () => {
    const srv = await withServer(root, { http: { send: "auto" } });
    try {
      const blob = randomBytes(MiB + 1);
      const digest = await push(srv.url, "auto/a", blob);
      const before = { ...sendfileStats };
      const res = await rawGet(`${srv.url}/v2/auto/a/blobs/${digest}`);
      assert.ok(res.complete && res.body.equals(blob));
      assert.equal(sendfileStats.copied - before.copied, 1);
    } finally {
      await srv.close();
    }
  });

  it("streams the same bytes when `http.send` is stream", async () => {
    const srv = await withServer(root, { http: { send: "stream" } });
    try {
      const blob = randomBytes(5 * MiB + 3);
      const digest = await push(srv.url, "off/a", blob);
      const before = sendfileStats.responses;
      const res = await rawGet(`${srv.url}/v2/off/a/blobs/${digest}`);
      assert.equal(res.status, 200);
      assert.ok(res.complete && res.body.equals(blob));
      const part = await rawGet(`${srv.url}/v2/off/a/blobs/${digest}`, { Range: "bytes=10-19" });
      assert.ok(part.body.equals(blob.subarray(10, 20)));
      assert.equal(sendfileStats.responses, before, "sendfile was not used");
    } finally {
      await srv.close();
    }
  });

  it("streams over TLS (HTTP/1.1) with the same bytes", { skip: noOpenssl }, async () => {
    const dir = await mkdtemp(join(tmpdir(), "strata-sendfile-tls-"));
    try {
      await promisify(execFile)(
        "openssl",
        ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "k.pem", "-out", "c.pem", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        { cwd: dir },
      );
      const srv = await withServer(root, { tls: { certificate: join(dir, "c.pem"), key: join(dir, "k.pem"), http2: false } });
      try {
        const blob = randomBytes(4 * MiB + 1);
        const digest = sha256(blob);
        const up = await new Promise<number>((resolve, reject) => {
          const r = httpsRequest(
            `${srv.url}/v2/tls/a/blobs/uploads/?digest=${digest}`,
            { method: "POST", rejectUnauthorized: false, headers: { "Content-Type": "application/octet-stream", "Content-Length": String(blob.length) } },
            (res) => {
              res.resume();
              resolve(res.statusCode ?? 0);
            },
          );
          r.on("error", reject);
          r.end(blob);
        });
        assert.equal(up, 201);
        const before = sendfileStats.responses;
        for (let i = 0; i < 2; i++) {
          const res = await rawGet(`${srv.url}/v2/tls/a/blobs/${digest}`);
          assert.equal(res.status, 200);
          assert.ok(res.complete && res.body.equals(blob));
        }
        assert.equal(sendfileStats.responses, before, "sendfile was not used over TLS");
      } finally {
        await srv.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
