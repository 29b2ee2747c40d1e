/**
 * A registry (and its token realm) is untrusted input: a peer played over raw TCP floods interim
 * responses, sends endless error and token bodies, oversized manifests, heads that never come and
 * bodies that trickle. Every pull fails with one clear error, in bounded memory; time limits are
 * set small through the client's options, so these tests stay fast.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, before, describe, it } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { createVerifier } from "@strata/core/verify";
import { pull } from "../src/pull.js";
import { RegistryClient } from "../src/registry/client.js";
import { rawGet } from "../src/registry/rawhttp.js";
import { runCli } from "./helpers/run-cli.js";
import { endless, type HostileServer, memImage, peakRss, reply, send, serveImage, sha256, startHostile } from "./helpers/hostile-registry.js";

const FAST = { attempts: 2, baseDelayMs: 5, maxDelayMs: 20 };
const MiB = 1024 * 1024;
/** Generous: the unbounded reads these tests replace grew by gigabytes within seconds. */
const MEMORY_BOUND = 200 * MiB;
const T = { timeout: 30_000 };

let dir: string;
let srv: HostileServer;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "strata-hostile-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});
afterEach(async () => {
  await srv?.close();
});

let n = 0;
const root = () => join(dir, `r${n++}`);

function errorOf(r: PromiseSettledResult<unknown>): Error {
  assert.equal(r.status, "rejected", "the pull must fail");
  return (r as PromiseRejectedResult).reason as Error;
}

function oneLine(e: Error): void {
  assert.ok(!e.message.includes("\n"), e.message);
}

describe("memory: everything read from a registry is bounded", () => {
  it("40,000 `100 Continue` before the manifest's response: fails with one clear error, memory bounded", T, async () => {
    srv = await startHostile();
    srv.routes.push(async (req, s) => {
      if (!req.path.includes("/manifests/")) return false;
      const flood = Buffer.from("HTTP/1.1 100 Continue\r\n\r\n".repeat(40_000));
      await send(s, flood);
      await reply(s, 200, { "Content-Type": "application/vnd.oci.image.manifest.v1+json" }, "{}");
      return true;
    });
    const { result, growth } = await peakRss(pull(`${srv.host}/a/b:1`, { root: root(), retry: FAST }));
    const e = errorOf(result);
    assert.match(e.message, /more than \d+ interim \(1xx\) responses/);
    oneLine(e);
    assert.ok(growth < MEMORY_BOUND, `RSS grew by ${growth} bytes`);
  });

  it("a head of more than 256 header fields, and heads past 64 KiB in 1xx responses, are refused", T, async () => {
    srv = await startHostile();
    srv.routes.push(async (req, s) => {
      if (req.path === "/fields") {
        await send(s, `HTTP/1.1 200 OK\r\n${"X-A: 1\r\n".repeat(300)}Content-Length: 0\r\n\r\n`);
        return true;
      }
      // interim heads of 10 KiB each: seven of them pass the 64 KiB budget before the count limit
      await send(s, `HTTP/1.1 103 Early Hints\r\nLink: ${"x".repeat(10_000)}\r\n\r\n`.repeat(7));
      await reply(s, 200, {}, "ok");
      return true;
    });
    await assert.rejects(rawGet(`${srv.url}/fields`), /more than 256 header fields/);
    await assert.rejects(rawGet(`${srv.url}/interim`), /response headers exceed 65536 bytes/);
  });

  it("an endless 403 body: the error is reported from its first 64 KiB, memory bounded", T, async () => {
    srv = await startHostile();
    srv.routes.push(async (req, s) => {
      await endless(
        s,
        'HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\n\r\n{"errors":[{"code":"DENIED","message":"no"}]}',
        Buffer.alloc(256 * 1024, 0x78),
      );
      return true;
    });
    const { result, growth } = await peakRss(pull(`${srv.host}/a/b:1`, { root: root(), retry: FAST }));
    const e = errorOf(result);
    assert.match(e.message, /fetching manifest a\/b:1: HTTP 403/);
    oneLine(e);
    assert.ok(growth < MEMORY_BOUND, `RSS grew by ${growth} bytes`);
  });

  it("an endless token response: refused past 1 MiB, memory bounded", T, async () => {
    srv = await startHostile();
    srv.routes.push(async (req, s) => {
      if (req.path.startsWith("/token")) {
        await endless(s, 'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{"token":"', Buffer.alloc(256 * 1024, 0x61));
        return true;
      }
      await reply(s, 401, { "WWW-Authenticate": `Bearer realm="${srv.url}/token",service="x"` });
      return true;
    });
    const { result, growth } = await peakRss(pull(`${srv.host}/a/b:1`, { root: root(), retry: FAST }));
    const e = errorOf(result);
    assert.match(e.message, /token response from http:\/\/127\.0\.0\.1:\d+\/token is too large \(over 1048576 bytes\)/);
    oneLine(e);
    assert.ok(growth < MEMORY_BOUND, `RSS grew by ${growth} bytes`);
  });

  it("a token that is not a string of visible ASCII (it would go into a header line) is refused", T, async () => {
    for (const body of ['{"token":"abc\\r\\nX-Injected: 1"}', '{"token":42}', '{"token":{"a":1}}']) {
      srv = await startHostile();
      srv.routes.push(async (req, s) => {
        if (req.path.startsWith("/token")) await reply(s, 200, { "Content-Type": "application/json" }, body);
        else await reply(s, 401, { "WWW-Authenticate": `Bearer realm="${srv.url}/token"` });
        return true;
      });
      await assert.rejects(pull(`${srv.host}/a/b:1`, { root: root(), retry: FAST }), /token response from http:\/\/127\.0\.0\.1:\d+\/token has an unusable token/, body);
      assert.ok(!srv.requests.some((r) => "x-injected" in r.headers));
      await srv.close();
    }
  });

  it("a 5 MiB manifest is refused (4 MiB, like the registry), with or without a Content-Length", T, async () => {
    srv = await startHostile();
    const big = Buffer.alloc(5 * MiB, 0x20);
    srv.routes.push(async (req, s) => {
      if (req.path.endsWith("/declared")) await reply(s, 200, { "Content-Type": "application/vnd.oci.image.manifest.v1+json" }, big);
      else {
        await send(s, "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\n\r\n");
        await send(s, big);
        s.end();
      }
      return true;
    });
    await assert.rejects(pull(`${srv.host}/a/b:declared`, { root: root(), retry: FAST }), /manifest a\/b:declared is too large \(5242880 bytes, over the limit of 4194304\)/);
    await assert.rejects(pull(`${srv.host}/a/b:streamed`, { root: root(), retry: FAST }), /manifest a\/b:streamed is too large \(over 4194304 bytes\)/);
  });

  it("a config over 8 MiB is refused before it is downloaded", T, async () => {
    srv = await startHostile();
    const img = await memImage({ config: () => Buffer.alloc(9 * MiB, 0x20) });
    srv.routes.push(serveImage("a/b", "1", img));
    await assert.rejects(pull(`${srv.host}/a/b:1`, { root: root(), retry: FAST }), /is too large \(9437184 bytes, over the limit of 8388608\)/);
    assert.ok(!srv.requests.some((r) => r.path.includes(img.configDigest)), "the config was not requested");
  });
});

describe("time: deadlines and a minimum throughput", () => {
  it("one `102 Processing` every 50 ms does not keep a request alive past the head deadline", T, async () => {
    srv = await startHostile();
    srv.routes.push(async (_req, s) => {
      while (!s.destroyed) {
        await send(s, "HTTP/1.1 102 Processing\r\n\r\n");
        await delay(50);
      }
      return true;
    });
    // the interim count limit must not be what stops it: 16 x 50 ms is longer than the deadline
    const r = pull(`${srv.host}/a/b:1`, { root: root(), retry: FAST, timeouts: { headersMs: 300 } });
    await assert.rejects(r, /no response from http:\/\/127\.0\.0\.1:\d+ within 300 ms/);
  });

  it("`strata pull --timeout 0.3` (or STRATA_TIMEOUT): a registry that accepts the connection and says nothing fails with one line", T, async () => {
    srv = await startHostile();
    srv.routes.push(async () => true);
    const r = await runCli(["pull", "--timeout", "0.3", `${srv.host}/a/b:1`, "--root", root()]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^strata: registry http:\/\/127\.0\.0\.1:\d+: no response from http:\/\/127\.0\.0\.1:\d+ within 300 ms\n$/);
    const env = await runCli(["pull", `${srv.host}/a/b:1`, "--root", root()], { env: { ...process.env, STRATA_TIMEOUT: "0.2" } });
    assert.match(env.stderr, /^strata: registry http:\/\/127\.0\.0\.1:\d+: no response from http:\/\/127\.0\.0\.1:\d+ within 200 ms\n$/, "STRATA_TIMEOUT sets it too");
    const bad = await runCli(["pull", "--timeout", "soon", `${srv.host}/a/b:1`, "--root", root()]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /--timeout must be a positive number of seconds/);
  });

  it("the whole-exchange deadline covers every redirect hop, not each one afresh", T, async () => {
    srv = await startHostile();
    let hops = 0;
    srv.routes.push(async (_req, s) => {
      hops++;
      await delay(150);
      await reply(s, 307, { Location: `/hop${hops}` });
      return true;
    });
    await assert.rejects(rawGet(`${srv.url}/start`, { totalTimeoutMs: 400 }), /not complete within the time allowed/);
    assert.ok(hops <= 3, `${hops} hops`);
  });

  it("a token endpoint that never answers fails within the token deadline", T, async () => {
    srv = await startHostile();
    srv.routes.push(async (req, s) => {
      if (req.path.startsWith("/token")) {
        // a head, then silence broken by a byte now and then (the idle timeout alone would not end it)
        await send(s, 'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{"token":"');
        while (!s.destroyed) {
          await send(s, "a");
          await delay(50);
        }
        return true;
      }
      await reply(s, 401, { "WWW-Authenticate": `Bearer realm="${srv.url}/token"` });
      return true;
    });
    await assert.rejects(
      pull(`${srv.host}/a/b:1`, { root: root(), retry: FAST, timeouts: { smallBodyMs: 400 } }),
      /response from http:\/\/127\.0\.0\.1:\d+ not complete within the time allowed/,
    );
  });

  it("a blob trickling 1 byte per 200 ms is abandoned below the minimum rate and resumed with Range", T, async () => {
    srv = await startHostile();
    const blob = Buffer.alloc(64 * 1024, 7);
    const digest = sha256(blob);
    let first = true;
    srv.routes.push(async (req, s) => {
      const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
      if (first) {
        first = false;
        await send(s, `HTTP/1.1 200 OK\r\nContent-Length: ${blob.length}\r\n\r\n`);
        await send(s, blob.subarray(0, 1000));
        for (let i = 1000; i < blob.length && !s.destroyed; i++) {
          await delay(200);
          await send(s, blob.subarray(i, i + 1));
        }
        return true;
      }
      assert.ok(range, "the retry asks for the rest");
      const from = Number(range[1]);
      await reply(s, 206, { "Content-Range": `bytes ${from}-${blob.length - 1}/${blob.length}` }, blob.subarray(from));
      return true;
    });
    const client = new RegistryClient({ domain: srv.host, retry: FAST, timeouts: { minRate: { bytesPerSec: 1024, windowMs: 1000 } } });
    const resumed: number[] = [];
    const v = createVerifier({ digest: digest as never, size: blob.length });
    const parts: Buffer[] = [];
    v.on("data", (c: Buffer) => parts.push(c));
    const done = new Promise((res, rej) => {
      v.on("end", res);
      v.on("error", rej);
    });
    client.blobStream("a/b", { digest: digest as never, size: blob.length }, { onResume: (o) => resumed.push(o) }).pipe(v);
    await done;
    assert.ok(Buffer.concat(parts).equals(blob));
    assert.equal(srv.requests.length, 2);
    assert.ok(resumed.length === 1 && resumed[0] >= 1000, `resumed at ${resumed}`);
    assert.equal(srv.requests[1].headers.range, `bytes=${resumed[0]}-`);
  });

  it("a consumer slower than the minimum rate is not the server's fault (backpressure windows do not count)", T, async () => {
    srv = await startHostile();
    const blob = Buffer.alloc(8 * MiB, 3);
    srv.routes.push(async (_req, s) => {
      await reply(s, 200, {}, blob);
      return true;
    });
    const res = await rawGet(`${srv.url}/x`, { minRate: { bytesPerSec: 100 * MiB, windowMs: 100 } });
    let got = 0;
    for await (const c of res.body) {
      got += c.length;
      await delay(60); // at most 1 MiB per 60 ms: below the rule's 100 MiB/s, the consumer's doing
    }
    assert.equal(got, blob.length);
  });
});

describe("limits Docker has", () => {
  it("an image of more than 125 layers is refused before anything else is downloaded", T, async () => {
    srv = await startHostile();
    const img = await memImage({ sameLayerTimes: 126 });
    srv.routes.push(serveImage("a/b", "1", img));
    await assert.rejects(pull(`${srv.host}/a/b:1`, { root: root(), retry: FAST }), (e: Error) => {
      assert.match(e.message, /^127\.0\.0\.1:\d+\/a\/b:1 has 126 layers, more than the 125 Docker allows$/);
      return true;
    });
    assert.deepEqual(
      srv.requests.map((r) => r.path),
      ["/v2/a/b/manifests/1"],
    );
    // 125 is fine
    const ok = await memImage({ sameLayerTimes: 125 });
    srv.routes.unshift(serveImage("a/c", "1", ok));
    const r = await pull(`${srv.host}/a/c:1`, { root: root(), retry: FAST });
    assert.equal(r.layers.length, 125);
  });

  it("a config nested 200,000 levels deep fails the pull with a clear error (nothing stored)", T, async () => {
    srv = await startHostile();
    const img = await memImage({
      config: (diffIds) =>
        Buffer.from(
          `{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":${JSON.stringify(diffIds)}},"config":{"Labels":{"x":${"[".repeat(200_000)}${"]".repeat(200_000)}}}}`,
        ),
    });
    srv.routes.push(serveImage("a/b", "1", img));
    await assert.rejects(pull(`${srv.host}/a/b:1`, { root: root(), retry: FAST }), /image config nests arrays and objects more than 1000 levels deep/);
    assert.ok(!srv.requests.some((r) => r.path.includes(img.layerDigests[0])), "no layer was downloaded");
  });
});
