/**
 * A fleet's Redis failing over, against real `strata serve` processes:
 * - Redis Sentinel: a PRIVATE master + replica + three sentinels and a PRIVATE Swift; two
 *   replicas of strata push images with chunked uploads (requests alternating between them)
 *   while the master is killed (the sentinels promote the replica) and, later, while a manual
 *   failover demotes the running master. Every request either succeeds or fails with 503 and
 *   succeeds on retry; everything acknowledged reads back afterwards, from both replicas.
 * - A PATCH whose session update fails after its bytes were stored (Redis killed) answers 503,
 *   and the upload continues from the stored bytes (the session is rolled forward).
 * - TLS: strata reaches a redis-server that only speaks TLS (rediss://, a private CA).
 * The shared Redis (6379) and Swift (9000) are never used here.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { request as httpRequest } from "node:http";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";
import { ensureBucket } from "@strata/registry/s3";
import { s3Schema } from "@strata/registry";
import { type DurableRedis, MASTER_NAME, type RedisGroup, sentinelSkipReason, startDurableRedis, startRedisGroup } from "../helpers/sentinel.js";
import { type PrivateS3, skipReason, startPrivateS3 } from "../helpers/services.js";
import { freePort, type StrataServer, startStrata } from "../helpers/strata.js";
import { call, MiB, type Res, sha } from "./kill-workload.js";

const execFileP = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";

interface Stats {
  requests: number;
  unavailable: number;
  network: number;
  /** Longest time one request needed until it succeeded (retries included). */
  longestMs: number;
  /** Blob uploads started over because the server no longer knew them. */
  restarts: number;
  other: string[];
}

/**
 * Sends a request until it gets an answer `ok` accepts, retrying (with a short pause) after 503
 * or a connection failure: the two answers a client may get while Redis fails over. Any other
 * answer is recorded and returned.
 */
async function retrying(stats: Stats, what: string, send: () => Promise<Res>, ok: (r: Res) => boolean): Promise<Res> {
  const t0 = Date.now();
  for (let attempt = 0; ; attempt++) {
    stats.requests++;
    let r: Res | undefined;
    try {
      r = await send();
    } catch {
      stats.network++;
    }
    if (r && ok(r)) {
      stats.longestMs = Math.max(stats.longestMs, Date.now() - t0);
      return r;
    }
    if (r && r.status === 503) {
      stats.unavailable++;
      if (!r.headers.get("retry-after")) stats.other.push(`${what}: 503 without Retry-After`);
    } else if (r) {
      return r;
    }
    if (Date.now() - t0 > 90_000) throw new Error(`${what}: no success within 90 s (last ${r?.status})`);
    await sleep(Math.min(100 * 2 ** attempt, 1000));
  }
}

/** A pusher whose requests alternate between replicas. */
class Pusher {
  private n = 0;
  constructor(
    private readonly servers: StrataServer[],
    readonly stats: Stats,
  ) {}

  private url(path: string): string {
    return new URL(path, this.servers[this.n++ % this.servers.length].url).href;
  }

  /** A chunked upload (PATCHes of `chunk` bytes, then PUT), resumed from the server's offset after a failure. */
  async blob(repo: string, data: Buffer, chunk: number): Promise<void> {
    const digest = sha(data);
    for (;;) {
      const post = await retrying(this.stats, "POST", () => call(this.url(`/v2/${repo}/blobs/uploads/`), { method: "POST" }), (r) => r.status === 202);
      if (post.status !== 202) throw new Error(`POST: ${post.status}`);
      let location = post.headers.get("location")!;
      let offset = 0;
      let lost = false;
      while (offset < data.length && !lost) {
        const end = Math.min(offset + chunk, data.length);
        const r = await call(this.url(location), {
          method: "PATCH",
          body: data.subarray(offset, end),
          headers: { "Content-Type": "application/octet-stream", "Content-Range": `${offset}-${end - 1}` },
        }).catch(() => undefined);
        this.stats.requests++;
        if (r?.status === 202) {
          offset = end;
          location = r.headers.get("location")!;
          continue;
        }
        if (r?.status === 503) this.stats.unavailable++;
        else if (!r) this.stats.network++;
        else if (r.status !== 416) throw new Error(`PATCH: ${r.status} ${r.body.toString().slice(0, 200)}`);
        // where does the upload stand?
        const st = await retrying(this.stats, "GET upload status", () => call(this.url(location)), (x) => x.status === 204 || x.status === 404);
        if (st.status === 404) lost = true;
        else {
          const range = st.headers.get("range")!;
          offset = range === "0-0" ? 0 : Number(range.split("-")[1]) + 1;
          location = st.headers.get("location") ?? location;
        }
      }
      if (!lost) {
        const put = await retrying(
          this.stats,
          "PUT upload",
          () => call(this.url(`${location}${location.includes("?") ? "&" : "?"}digest=${digest}`), { method: "PUT" }),
          (r) => r.status === 201 || r.status === 404,
        );
        if (put.status === 201) return;
        if (put.status !== 404) throw new Error(`PUT upload: ${put.status} ${put.body.toString().slice(0, 200)}`);
      }
      this.stats.restarts++;
    }
  }

  async manifest(repo: string, tag: string, bytes: Buffer): Promise<void> {
    const r = await retrying(
      this.stats,
      "PUT manifest",
      () => call(this.url(`/v2/${repo}/manifests/${tag}`), { method: "PUT", body: bytes, headers: { "Content-Type": OCI_MANIFEST } }),
      (x) => x.status === 201,
    );
    if (r.status !== 201) throw new Error(`PUT manifest: ${r.status} ${r.body.toString().slice(0, 200)}`);
  }
}

interface Pushed {
  repo: string;
  tag: string;
  manifest: Buffer;
  blobs: Buffer[];
}

/** Pushes images (two chunked layers, a monolithic config, a tagged manifest) until `stop()`. */
async function pushLoop(p: Pusher, repo: string, stop: () => boolean, pushed: Pushed[]): Promise<void> {
  for (let i = 0; !stop(); i++) {
    const layers = [randomBytes(5 * MiB + 1000), randomBytes(300 * 1024)];
    const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: layers.map(sha) }, n: randomBytes(4).toString("hex") }));
    await p.blob(repo, layers[0], 2 * MiB + 17);
    await p.blob(repo, layers[1], 100 * 1024);
    await p.blob(repo, config, config.length);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha(config), size: config.length },
        layers: layers.map((l) => ({ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: sha(l), size: l.length })),
      }),
    );
    const tag = `v${i}`;
    await p.manifest(repo, tag, manifest);
    pushed.push({ repo, tag, manifest, blobs: [...layers, config] });
  }
}

/** Every acknowledged push reads back from every replica; tags/list equals the tags that resolve. */
async function checkPushed(servers: StrataServer[], pushed: Pushed[]): Promise<void> {
  for (const srv of servers) {
    for (const p of pushed) {
      const m = await call(`${srv.url}/v2/${p.repo}/manifests/${p.tag}`, { headers: { Accept: OCI_MANIFEST } });
      assert.equal(m.status, 200, `${p.repo}:${p.tag} on ${srv.url}`);
      assert.equal(sha(m.body), sha(p.manifest), `${p.repo}:${p.tag} names the pushed manifest`);
      for (const b of p.blobs) {
        const r = await call(`${srv.url}/v2/${p.repo}/blobs/${sha(b)}`);
        assert.equal(r.status, 200);
        assert.ok(r.body.equals(b), `blob ${sha(b)} of ${p.repo} reads back whole`);
      }
    }
    for (const repo of new Set(pushed.map((p) => p.repo))) {
      const listed = (JSON.parse((await call(`${srv.url}/v2/${repo}/tags/list`)).body.toString()) as { tags: string[] }).tags.sort();
      assert.deepEqual(listed, pushed.filter((p) => p.repo === repo).map((p) => p.tag).sort(), `tags/list of ${repo}`);
    }
  }
}

const newStats = (): Stats => ({ requests: 0, unavailable: 0, network: 0, longestMs: 0, restarts: 0, other: [] });

describe("Redis Sentinel failover during chunked pushes to two replicas", { timeout: 600_000 }, () => {
  let group: RedisGroup | undefined;
  let s3: PrivateS3 | undefined;
  let servers: StrataServer[] = [];
  let skip = "";

  before(async () => {
    [group, s3] = await Promise.all([startRedisGroup(), startPrivateS3()]);
    if (!group) skip = sentinelSkipReason;
    else if (!s3) skip = skipReason;
  });
  after(async () => {
    await Promise.all(servers.map((s) => s.stop()));
    await group?.close();
    await s3?.close();
  });

  it("pushes complete or fail with 503 and succeed on retry; nothing acknowledged is lost", async (t) => {
    if (skip) return t.skip(skip);
    const bucket = `strata-failover-${randomBytes(4).toString("hex")}`;
    const s3cfg = s3!.config(bucket, { partSize: 5 * MiB, partBufferBytes: 10 * MiB, lonePartSize: 0 });
    await ensureBucket(s3Schema.parse(s3cfg));
    const config = {
      storage: { driver: "s3", s3: s3cfg },
      redis: { sentinels: group!.sentinels, name: MASTER_NAME, keyPrefix: "failover:", commandTimeoutMs: 1000 },
      uploads: { purgeIntervalSeconds: 0 },
    };
    servers = await Promise.all([startStrata(config), startStrata(config)]);

    const pushed: Pushed[] = [];
    let stop = false;
    const stats = newStats();
    const pushers = Array.from({ length: 2 }, () => new Pusher(servers, stats));
    let failed: unknown;
    const loops = pushers.map((p, i) =>
      pushLoop(p, `failover/app${i}`, () => stop, pushed).catch((e) => {
        failed ??= e;
      }),
    );

    const pushes = async (n: number) => {
      const target = pushed.length + n;
      while (pushed.length < target) {
        if (failed) throw failed;
        await sleep(100);
      }
    };
    await pushes(1);
    const before1 = pushed.length;
    const killed = await group!.killMaster();
    await group!.restart(killed.killed);
    await pushes(1);
    const manualMs = await group!.failover();
    await pushes(1);
    stop = true;
    await Promise.all(loops);
    if (failed) throw failed;

    process.stdout.write(
      `failover: master killed -> replica promoted in ${killed.ms} ms, manual failover in ${manualMs} ms; ${pushed.length} images pushed ` +
        `(${before1} before the first failover), ${stats.requests} requests, ${stats.unavailable} answered 503, ${stats.network} connection failures, ` +
        `${stats.restarts} blob uploads started over, longest request until success ${stats.longestMs} ms\n`,
    );
    assert.deepEqual(stats.other, []);
    assert.ok(pushed.length > before1, "pushes went on after the failovers");
    await checkPushed(servers, pushed);
  });
});

describe("a session update that fails after the chunk was stored", { timeout: 120_000 }, () => {
  let redis: DurableRedis | undefined;
  let srv: StrataServer | undefined;
  let root = "";
  before(async () => {
    redis = await startDurableRedis();
    root = await mkdtemp(join(tmpdir(), "strata-rollfwd-"));
  });
  after(async () => {
    await srv?.stop();
    await redis?.close();
    await rm(root, { recursive: true, force: true });
  });

  it("answers 503, and the upload continues from the stored bytes", async (t) => {
    if (!redis) return t.skip(sentinelSkipReason);
    srv = await startStrata({
      storage: { driver: "filesystem", filesystem: { root } },
      redis: { url: redis.url, keyPrefix: "rollfwd:", commandTimeoutMs: 500 },
      uploads: { purgeIntervalSeconds: 0 },
    });
    const repo = "rollfwd/app";
    const data = randomBytes(256 * 1024);
    const post = await call(`${srv.url}/v2/${repo}/blobs/uploads/`, { method: "POST" });
    assert.equal(post.status, 202);
    const location = new URL(post.headers.get("location")!, srv.url);
    // The body arrives slowly; Redis dies before it ends (keeping what it acknowledged), so
    // the session update that follows the stored chunk fails.
    const status = await new Promise<number>((resolve, reject) => {
      const r = httpRequest(location, { method: "PATCH", headers: { "Content-Type": "application/octet-stream", "Transfer-Encoding": "chunked" } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      r.on("error", reject);
      r.write(data.subarray(0, 128 * 1024));
      setTimeout(() => {
        redis!.kill().then(() => r.end(data.subarray(128 * 1024)), reject);
      }, 400);
    });
    assert.equal(status, 503, "the PATCH could not record its chunk");
    await redis.start();
    const st = await waitFor(() => call(location.href), (r) => r.status !== 503);
    assert.equal(st.status, 204);
    assert.equal(st.headers.get("range"), `0-${data.length - 1}`, "the upload holds the stored chunk");
    const put = new URL(st.headers.get("location")!, srv.url);
    put.searchParams.set("digest", sha(data));
    assert.equal((await call(put.href, { method: "PUT" })).status, 201);
    const got = await call(`${srv.url}/v2/${repo}/blobs/${sha(data)}`);
    assert.ok(got.body.equals(data));
  });
});

/** Repeats `send` (for up to 15 s) until `done` accepts its answer. */
async function waitFor(send: () => Promise<Res>, done: (r: Res) => boolean): Promise<Res> {
  const t0 = Date.now();
  for (;;) {
    const r = await send().catch(() => undefined);
    if (r && done(r)) return r;
    if (Date.now() - t0 > 15_000) throw new Error(`no answer accepted within 15 s (last ${r?.status})`);
    await sleep(200);
  }
}

describe("Redis over TLS", { timeout: 120_000 }, () => {
  let dir = "";
  let redisPid: number | undefined;
  let srv: StrataServer | undefined;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "strata-redis-tls-"));
  });
  after(async () => {
    await srv?.stop();
    if (redisPid) process.kill(redisPid, "SIGKILL");
    await rm(dir, { recursive: true, force: true });
  });

  it("strata reaches a TLS-only redis-server through rediss:// and a private CA", async (t) => {
    const openssl = (...args: string[]) => execFileP("openssl", args, { cwd: dir });
    try {
      await openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=strata test CA");
      await openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "redis.key", "-out", "redis.csr", "-subj", "/CN=127.0.0.1");
      const { writeFile } = await import("node:fs/promises");
      await writeFile(join(dir, "ext.cnf"), "subjectAltName=IP:127.0.0.1\n");
      await openssl("x509", "-req", "-in", "redis.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "redis.crt", "-days", "2", "-extfile", "ext.cnf");
    } catch (e) {
      return t.skip(`openssl could not make a test CA: ${(e as Error).message.split("\n")[0]}`);
    }
    const port = await freePort();
    const { spawn } = await import("node:child_process");
    const child = spawn(
      "redis-server",
      ["--port", "0", "--tls-port", String(port), "--bind", "127.0.0.1", "--tls-cert-file", "redis.crt", "--tls-key-file", "redis.key", "--tls-ca-cert-file", "ca.crt", "--tls-auth-clients", "no", "--save", "", "--appendonly", "no"],
      { cwd: dir, stdio: ["ignore", "ignore", "pipe"] },
    );
    redisPid = child.pid;
    let err = "";
    child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
    await sleep(500);
    if (child.exitCode !== null) {
      redisPid = undefined;
      return t.skip(`this redis-server does not support TLS: ${err.trim().split("\n").pop()}`);
    }
    srv = await startStrata({
      storage: { driver: "filesystem", filesystem: { root: join(dir, "data") } },
      redis: { url: `rediss://127.0.0.1:${port}`, tls: { ca: join(dir, "ca.crt") }, keyPrefix: "tls:" },
    });
    const repo = "tls/app";
    const blob = randomBytes(4096);
    const post = await call(`${srv.url}/v2/${repo}/blobs/uploads/`, { method: "POST" });
    assert.equal(post.status, 202, "a session was created in Redis over TLS");
    const put = new URL(post.headers.get("location")!, srv.url);
    put.searchParams.set("digest", sha(blob));
    assert.equal((await call(put.href, { method: "PUT", body: blob })).status, 201);
    assert.equal((await call(`${srv.url}/v2/${repo}/blobs/${sha(blob)}`)).status, 200);
    const keys = (await execFileP("redis-cli", ["--tls", "--cacert", join(dir, "ca.crt"), "-h", "127.0.0.1", "-p", String(port), "--scan", "--pattern", "tls:*"])).stdout;
    assert.match(keys, /tls:/, "strata's keys are in the TLS Redis");
  });
});
