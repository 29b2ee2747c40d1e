/**
 * Dependency outages against a real `strata serve` process:
 * - a bucket that does not exist at start-up (or wrong credentials): one log line naming the
 *   cause, /healthz and /readyz 503 with it, uploads 503 with Retry-After and no crash (a 6 MiB
 *   PATCH used to end the process with an unhandled EPIPE), recovery once the bucket exists;
 *   `storage.s3.createBucket` creates it;
 * - a PRIVATE Redis and a PRIVATE Swift stopped, killed, frozen and restarted in the middle of
 *   pushes: 503 with Retry-After meanwhile, /readyz 503, blob and manifest reads keep working
 *   without Redis, and everything recovers without restarting strata.
 * The shared services (Redis 6379, Swift 9000) are never stopped: the missing-bucket tests
 * only use a bucket name that does not exist there.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { dropS3TestBucket, s3SkipReason, s3TestConfig } from "@strata/registry/test-helpers/s3-server.js";
import { ensureBucket } from "@strata/registry/s3";
import { s3Schema } from "@strata/registry";
import { minimalImage, sha256 as sha } from "../helpers/oci-layout.js";
import { type PrivateRedis, type PrivateS3, skipReason, startPrivateRedis, startPrivateS3 } from "../helpers/services.js";
import { type StrataServer, startStrata } from "../helpers/strata.js";

const MiB = 1024 * 1024;
const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const sharedS3 = (process.env.STRATA_TEST_BACKENDS ?? "").split(",").includes("s3");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Health {
  status: string;
  checks: Record<string, { status: string; error?: string }>;
}

async function health(srv: StrataServer, path: "/healthz" | "/readyz"): Promise<{ status: number; body: Health }> {
  const r = await fetch(`${srv.url}${path}`, { signal: AbortSignal.timeout(15_000) });
  return { status: r.status, body: (await r.json()) as Health };
}

/** Polls `path` until it answers `status` (within `ms`). */
async function waitHealth(srv: StrataServer, path: "/healthz" | "/readyz", status: number, ms = 30_000): Promise<Health> {
  const deadline = Date.now() + ms;
  for (;;) {
    const h = await health(srv, path).catch(() => undefined);
    if (h?.status === status) return h.body;
    if (Date.now() > deadline) throw new Error(`${path} did not answer ${status} within ${ms} ms (last: ${JSON.stringify(h)})`);
    await sleep(200);
  }
}

const expect503 = async (res: Response, what: string) => {
  assert.equal(res.status, 503, `${what}: ${res.status} ${await res.clone().text()}`);
  assert.ok(res.headers.get("retry-after"), `${what}: Retry-After`);
  if (res.headers.get("content-type")?.includes("json")) {
    const body = (await res.json()) as { errors: { code: string }[] };
    assert.equal(body.errors[0].code, "UNAVAILABLE", what);
  }
};

async function startUpload(srv: StrataServer, repo: string): Promise<URL> {
  const r = await fetch(`${srv.url}/v2/${repo}/blobs/uploads/`, { method: "POST" });
  assert.equal(r.status, 202, `POST upload: ${await r.text()}`);
  return new URL(r.headers.get("location")!, srv.url);
}

const patch = (loc: URL, body: Buffer) =>
  fetch(loc, { method: "PATCH", body, headers: { "Content-Type": "application/octet-stream" }, signal: AbortSignal.timeout(60_000) });

/** Pushes a blob with one PATCH and the closing PUT; returns the final response. */
async function pushChunked(srv: StrataServer, repo: string, blob: Buffer): Promise<Response> {
  const loc = await startUpload(srv, repo);
  const p = await patch(loc, blob);
  if (p.status !== 202) return p;
  const put = new URL(p.headers.get("location")!, srv.url);
  put.searchParams.set("digest", sha(blob));
  return fetch(put, { method: "PUT", signal: AbortSignal.timeout(60_000) });
}

const pushMonolithic = (srv: StrataServer, repo: string, blob: Buffer) =>
  fetch(`${srv.url}/v2/${repo}/blobs/uploads/?digest=${sha(blob)}`, { method: "POST", body: blob, signal: AbortSignal.timeout(60_000) });

async function readBlob(srv: StrataServer, repo: string, digest: string): Promise<Buffer> {
  const r = await fetch(`${srv.url}/v2/${repo}/blobs/${digest}`, { signal: AbortSignal.timeout(15_000) });
  assert.equal(r.status, 200, `GET blob ${digest}: ${r.status}`);
  return Buffer.from(await r.arrayBuffer());
}

/** The server's log once a line matching `re` arrived (its stdout is a pipe: lines can trail the first answer). */
async function logsWith(srv: StrataServer, re: RegExp, ms = 15_000): Promise<string> {
  const deadline = Date.now() + ms;
  while (!re.test(srv.logs()) && Date.now() < deadline) await sleep(50);
  return srv.logs();
}

function assertAlive(srv: StrataServer): void {
  assert.equal(srv.process.exitCode, null, `strata serve exited:\n${srv.logs()}`);
  assert.equal(srv.process.signalCode, null, `strata serve was killed:\n${srv.logs()}`);
}

describe("S3 bucket missing at start-up", { skip: sharedS3 ? false : "needs STRATA_TEST_BACKENDS to include s3 (CI sets it)" }, () => {
  it("logs the cause once, answers 503 with it, never crashes, and recovers when the bucket appears", async (t) => {
    const cfg = await s3TestConfig();
    if (!cfg) return t.skip(s3SkipReason());
    await dropS3TestBucket(cfg);
    const srv = await startStrata({ storage: { driver: "s3", s3: { ...cfg, maxAttempts: 2 } } });
    try {
      const lines = (await logsWith(srv, /NoSuchBucket/)).split("\n").filter((l) => l.includes("NoSuchBucket"));
      assert.equal(lines.length, 1, `one start-up line naming the cause:\n${srv.logs()}`);
      assert.match(lines[0], /storage unavailable/);
      for (const path of ["/healthz", "/readyz"] as const) {
        const h = await health(srv, path);
        assert.equal(h.status, 503, path);
        assert.equal(h.body.checks.storage.status, "unavailable");
        assert.match(h.body.checks.storage.error ?? "", /NoSuchBucket/);
      }
      const repo = "nobucket/app";
      const blob = randomBytes(6 * MiB);
      // The object store answers 404 while the 6 MiB body still streams: the EPIPE that follows
      // used to end the process.
      await expect503(await pushChunked(srv, repo, blob), "6 MiB PATCH");
      await expect503(await pushMonolithic(srv, repo, blob), "6 MiB monolithic POST");
      await expect503(await pushChunked(srv, repo, randomBytes(20 * MiB)), "20 MiB PATCH (multipart)");
      await sleep(300);
      assertAlive(srv);
      assert.equal((await fetch(`${srv.url}/v2/`)).status, 200);

      await ensureBucket(cfg);
      await waitHealth(srv, "/readyz", 200);
      assert.equal((await pushChunked(srv, repo, blob)).status, 201);
      assert.ok((await readBlob(srv, repo, sha(blob))).equals(blob));
    } finally {
      await srv.stop();
      await dropS3TestBucket(cfg).catch(() => {});
    }
  });

  it("wrong credentials: the start-up line names them as the cause, and requests answer 503", async (t) => {
    const cfg = await s3TestConfig();
    if (!cfg) return t.skip(s3SkipReason());
    const srv = await startStrata({ storage: { driver: "s3", s3: { ...cfg, secretAccessKey: "wrong-secret", maxAttempts: 1 } } });
    try {
      const line = (await logsWith(srv, /storage unavailable/)).split("\n").find((l) => l.includes("storage unavailable"));
      assert.ok(line, `start-up line:\n${srv.logs()}`);
      assert.match(line, /SignatureDoesNotMatch|AccessDenied|InvalidAccessKeyId|403/);
      assert.ok(!srv.logs().includes("wrong-secret"), "the secret never appears in the logs");
      await expect503(await pushChunked(srv, "badcreds/app", randomBytes(6 * MiB)), "PATCH with wrong credentials");
      assertAlive(srv);
    } finally {
      await srv.stop();
      await dropS3TestBucket(cfg).catch(() => {});
    }
  });

  it("storage.s3.createBucket creates a missing bucket", async (t) => {
    const cfg = await s3TestConfig();
    if (!cfg) return t.skip(s3SkipReason());
    await dropS3TestBucket(cfg);
    const srv = await startStrata({ storage: { driver: "s3", s3: { ...cfg, createBucket: true } } });
    try {
      await waitHealth(srv, "/readyz", 200, 10_000);
      const blob = randomBytes(1024);
      assert.equal((await pushMonolithic(srv, "created/app", blob)).status, 201);
    } finally {
      await srv.stop();
      await dropS3TestBucket(cfg).catch(() => {});
    }
  });
});

describe("private Redis and Swift stopped and restarted mid-push", () => {
  let redis: PrivateRedis | undefined;
  let s3: PrivateS3 | undefined;
  let srv: StrataServer;
  let skip = "";
  const repo = "outage/app";
  const layer = randomBytes(3 * MiB);
  const img = minimalImage([layer]);

  before(async () => {
    redis = await startPrivateRedis();
    if (redis) s3 = await startPrivateS3();
    if (!redis || !s3) {
      skip = skipReason;
      return;
    }
    const bucket = `outage-${randomBytes(4).toString("hex")}`;
    await ensureBucket(s3Schema.parse(s3.config(bucket)));
    srv = await startStrata({
      storage: { driver: "s3", s3: s3.config(bucket, { maxAttempts: 2, requestTimeoutMs: 5000 }) },
      redis: { url: redis.url, keyPrefix: "outage:", commandTimeoutMs: 1000 },
      uploads: { purgeIntervalSeconds: 0 },
    });
    for (const b of [layer, img.config]) assert.equal((await pushMonolithic(srv, repo, b)).status, 201);
    const m = await fetch(`${srv.url}/v2/${repo}/manifests/v1`, { method: "PUT", body: img.manifest, headers: { "Content-Type": OCI_MANIFEST } });
    assert.equal(m.status, 201);
  });
  after(async () => {
    await srv?.stop();
    await redis?.close();
    await s3?.close();
  });

  it("Redis down: uploads 503 with Retry-After, /readyz 503, blob and manifest reads served from storage; recovery without restart", async (t) => {
    if (skip) return t.skip(skip);
    const loc = await startUpload(srv, repo);
    const part = randomBytes(MiB);
    assert.equal((await patch(loc, part)).status, 202);
    await redis!.stop();
    await expect503(await patch(loc, part), "PATCH while Redis is down");
    await expect503(await fetch(`${srv.url}/v2/${repo}/blobs/uploads/`, { method: "POST" }), "POST while Redis is down");
    const ready = await waitHealth(srv, "/readyz", 503, 10_000);
    assert.equal(ready.checks.redis.status, "unavailable");
    assert.equal(ready.checks.storage.status, "ok");
    assert.equal((await health(srv, "/healthz")).status, 503);
    assert.equal((await fetch(`${srv.url}/livez`)).status, 200, "/livez stays 200: a restart would not cure the outage");
    // Every blob is in S3: pulls go on.
    assert.ok((await readBlob(srv, repo, sha(layer))).equals(layer));
    const head = await fetch(`${srv.url}/v2/${repo}/blobs/${sha(img.config)}`, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get("content-length"), String(img.config.length));
    const man = await fetch(`${srv.url}/v2/${repo}/manifests/${sha(img.manifest)}`, { headers: { Accept: OCI_MANIFEST } });
    assert.equal(man.status, 200);
    assert.equal((await fetch(`${srv.url}/v2/${repo}/blobs/${sha(randomBytes(8))}`, { method: "HEAD" })).status, 404);

    await redis!.start();
    await waitHealth(srv, "/readyz", 200, 20_000);
    await waitHealth(srv, "/healthz", 200, 5000);
    // The fresh Redis lost the session: the client starts over and succeeds.
    const blob = randomBytes(2 * MiB);
    assert.equal((await pushChunked(srv, repo, blob)).status, 201);
    assert.ok((await readBlob(srv, repo, sha(blob))).equals(blob));
    assertAlive(srv);
  });

  it("Swift frozen: /healthz and /readyz say 503 within their deadline, 200 once it thaws", async (t) => {
    if (skip) return t.skip(skip);
    s3!.freeze();
    try {
      const t0 = Date.now();
      const h = await health(srv, "/healthz");
      assert.equal(h.status, 503, JSON.stringify(h.body));
      assert.equal(h.body.checks.storage.status, "unavailable");
      assert.ok(Date.now() - t0 < 5000, "answered within the deadline");
      assert.equal((await health(srv, "/readyz")).status, 503);
    } finally {
      s3!.thaw();
    }
    await waitHealth(srv, "/healthz", 200, 20_000);
  });

  it("Swift killed mid-upload: 503 with Retry-After, no crash, /readyz 503; recovery once it restarts", async (t) => {
    if (skip) return t.skip(skip);
    const big = randomBytes(40 * MiB);
    const loc = await startUpload(srv, repo);
    // The PATCH streams slowly so that the kill lands while parts are in flight.
    const slow = new ReadableStream<Uint8Array>({
      async start(c) {
        for (let off = 0; off < big.length; off += MiB) {
          c.enqueue(big.subarray(off, off + MiB));
          await sleep(40);
        }
        c.close();
      },
    });
    const pending = fetch(loc, { method: "PATCH", body: slow, duplex: "half", signal: AbortSignal.timeout(60_000) } as RequestInit).catch((e: Error) => e);
    await sleep(700);
    await s3!.killProxy();
    const res = await pending;
    if (res instanceof Response) await expect503(res, "PATCH cut by the kill");
    // else: the server answered 503 early and closed while the body streamed (allowed).
    await expect503(await pushMonolithic(srv, repo, randomBytes(MiB)), "monolithic POST while Swift is down");
    const ready = await waitHealth(srv, "/readyz", 503, 10_000);
    assert.equal(ready.checks.storage.status, "unavailable");
    assertAlive(srv);

    await s3!.start();
    await waitHealth(srv, "/readyz", 200, 60_000);
    const again = randomBytes(12 * MiB);
    assert.equal((await pushChunked(srv, repo, again)).status, 201);
    assert.ok((await readBlob(srv, repo, sha(again))).equals(again));
    assert.ok((await readBlob(srv, repo, sha(layer))).equals(layer), "data from before the outage");
    assertAlive(srv);
  });
});
