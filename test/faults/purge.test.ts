/**
 * Upload garbage against real `strata serve` processes with a fast purger:
 * - an upload that stays active longer than uploads.ttlSeconds (a chunk every second, or one
 *   slow chunk) is never purged: uploads expire by last activity, and never while a chunk is
 *   arriving;
 * - upload data orphaned by kill -9 (filesystem: the sessions died with the process), in a
 *   repository that holds nothing else, is purged after uploads.orphanGraceSeconds;
 * - S3 + Redis: multipart uploads nobody owns any more (a session lost from Redis, a
 *   monolithic upload cut by kill -9) are aborted after the grace period, not after the TTL.
 * Only strata itself is killed: S3 runs on the shared server (a fresh bucket), Redis on the
 * shared one (a fresh key prefix).
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { request as httpRequest } from "node:http";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { ListMultipartUploadsCommand, ListObjectsV2Command } from "@aws-sdk/client-s3";
import { createS3Client } from "@strata/registry/s3";
import { s3Schema } from "@strata/registry";
import { fleetConfig } from "../helpers/fleet.js";
import { type StrataServer, startStrata } from "../helpers/strata.js";
import { call, kill9, MiB, sha } from "./kill-workload.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const s3Enabled = (process.env.STRATA_TEST_BACKENDS ?? "").split(",").includes("s3");


async function until(what: string, ok: () => Promise<boolean>, ms: number): Promise<number> {
  const t0 = Date.now();
  while (!(await ok())) {
    if (Date.now() - t0 > ms) throw new Error(`${what} within ${ms} ms`);
    await sleep(250);
  }
  return Date.now() - t0;
}

/** An upload sending a chunk every `everyMs` for `chunks` chunks, then completing it. */
async function slowChunkedPush(srv: StrataServer, repo: string, chunks: number, size: number, everyMs: number): Promise<{ status: number; data: Buffer }> {
  const data = randomBytes(chunks * size);
  const post = await call(`${srv.url}/v2/${repo}/blobs/uploads/`, { method: "POST" });
  assert.equal(post.status, 202);
  let location = post.headers.get("location")!;
  for (let i = 0; i < chunks; i++) {
    if (i > 0) await sleep(everyMs);
    const r = await call(new URL(location, srv.url).href, {
      method: "PATCH",
      body: data.subarray(i * size, (i + 1) * size),
      headers: { "Content-Type": "application/octet-stream", "Content-Range": `${i * size}-${(i + 1) * size - 1}` },
    });
    if (r.status !== 202) return { status: r.status, data };
    location = r.headers.get("location")!;
  }
  const put = new URL(location, srv.url);
  put.searchParams.set("digest", sha(data));
  return { status: (await call(put.href, { method: "PUT" })).status, data };
}

/** One PATCH whose body trickles in over `ms`. */
function trickledPatch(location: URL, data: Buffer, ms: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const r = httpRequest(location, { method: "PATCH", headers: { "Content-Type": "application/octet-stream", "Transfer-Encoding": "chunked" } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    r.on("error", reject);
    const parts = 8;
    const step = Math.ceil(data.length / parts);
    let i = 0;
    const next = () => {
      const chunk = data.subarray(i * step, (i + 1) * step);
      i++;
      if (i >= parts) r.end(chunk);
      else {
        r.write(chunk);
        setTimeout(next, ms / parts);
      }
    };
    next();
  });
}

describe("upload purge [filesystem]", () => {
  const roots: string[] = [];
  after(async () => {
    for (const r of roots) await rm(r, { recursive: true, force: true });
  });
  const fsConfig = async (uploads: Record<string, number>) => {
    const root = await mkdtemp(join(tmpdir(), "strata-purge-"));
    roots.push(root);
    return { root, config: { storage: { driver: "filesystem", filesystem: { root } }, uploads } };
  };

  it("an upload active for longer than the TTL, through many chunks or one slow one, is never purged", async () => {
    const { config } = await fsConfig({ ttlSeconds: 2, purgeIntervalSeconds: 1, orphanGraceSeconds: 1 });
    const srv = await startStrata(config);
    try {
      const chunked = await slowChunkedPush(srv, "purge/live", 5, 64 * 1024, 900);
      assert.equal(chunked.status, 201, "a chunk every 0.9 s for 3.6 s with a 2 s TTL");
      const post = await call(`${srv.url}/v2/purge/slow/blobs/uploads/`, { method: "POST" });
      const location = new URL(post.headers.get("location")!, srv.url);
      const data = randomBytes(512 * 1024);
      assert.equal(await trickledPatch(location, data, 4000), 202, "one chunk arriving over 4 s with a 2 s TTL");
      const put = new URL(location);
      put.searchParams.set("digest", sha(data));
      assert.equal((await call(put.href, { method: "PUT" })).status, 201);
      const got = await call(`${srv.url}/v2/purge/slow/blobs/${sha(data)}`);
      assert.ok(got.body.equals(data));
    } finally {
      await srv.stop();
    }
  });

  it("data orphaned by kill -9 in a repository with nothing else is purged after the grace period", async () => {
    const { root, config } = await fsConfig({ ttlSeconds: 3600, purgeIntervalSeconds: 1, orphanGraceSeconds: 2 });
    let srv = await startStrata(config);
    for (const repo of ["orphan/empty", "orphan/other"]) {
      const post = await call(`${srv.url}/v2/${repo}/blobs/uploads/`, { method: "POST" });
      const r = await call(new URL(post.headers.get("location")!, srv.url).href, { method: "PATCH", body: randomBytes(300 * 1024), headers: { "Content-Type": "application/octet-stream" } });
      assert.equal(r.status, 202);
    }
    await kill9(srv);
    const uploads = (repo: string) => join(root, "v2/repositories", repo, "_uploads");
    assert.equal((await readdir(uploads("orphan/empty"))).length, 1, "the kill left upload data behind");
    srv = await startStrata(config);
    try {
      const ms = await until("orphaned upload data was not purged", async () => !existsSync(uploads("orphan/empty")) && !existsSync(uploads("orphan/other")), 20_000);
      process.stdout.write(`purge [filesystem]: orphans of a kill gone ${ms} ms after the restart (grace 2 s, purge every 1 s)\n`);
    } finally {
      await srv.stop();
    }
  });
});

describe("upload purge [s3+redis]", { skip: s3Enabled ? false : "S3 purge tests need STRATA_TEST_BACKENDS to include s3 (CI sets it)" }, () => {
  let cleanup: (() => Promise<void>) | undefined;
  after(async () => {
    await cleanup?.();
  });

  it("live multipart uploads outlive the TTL; orphaned ones (lost session, killed monolithic upload) go after the grace period", async () => {
    const fleet = await fleetConfig();
    cleanup = fleet.cleanup;
    const cfg = fleet.config as { storage: { s3: Record<string, unknown> }; uploads: Record<string, number> };
    // parts of exactly 5 MiB: a part pool of two (PartBuffers.partSize; no lone parts), so 7 MiB starts a multipart upload
    cfg.storage.s3.partSize = 5 * MiB;
    cfg.storage.s3.partBufferBytes = 10 * MiB;
    cfg.storage.s3.lonePartSize = 0;
    cfg.uploads = { ttlSeconds: 3, purgeIntervalSeconds: 1, orphanGraceSeconds: 2 };
    const s3 = s3Schema.parse(cfg.storage.s3);
    const client = createS3Client(s3);
    // A writer's multipart upload lives at its key or at a physical object named after it (s3-pointers.ts).
    const multipart = async (prefix: string) => {
      let n = 0;
      for (const p of [prefix, `~strata-objects/${prefix}`]) n += ((await client.send(new ListMultipartUploadsCommand({ Bucket: s3.bucket, Prefix: p }))).Uploads ?? []).length;
      return n;
    };
    const objects = async (prefix: string) => ((await client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: prefix }))).Contents ?? []).length;
    let srv = await startStrata(fleet.config);
    try {
      // live: a 5 MiB chunk (a multipart part each) every 1.2 s for 3.6 s and more, TTL 3 s
      const live = await slowChunkedPush(srv, "purge/live", 4, 5 * MiB, 1200);
      assert.equal(live.status, 201, "the live upload survived purges past its start time + TTL");
      assert.ok((await call(`${srv.url}/v2/purge/live/blobs/${sha(live.data)}`)).body.equals(live.data));
      await srv.stop();

      // The orphans must go after the grace period, long before their TTL.
      cfg.uploads = { ttlSeconds: 3600, purgeIntervalSeconds: 1, orphanGraceSeconds: 2 };
      srv = await startStrata(fleet.config);

      // orphan 1: a session lost from Redis, its data (a multipart upload and state objects) left in S3
      const post = await call(`${srv.url}/v2/purge/lost/blobs/uploads/`, { method: "POST" });
      const location = post.headers.get("location")!;
      const id = location.split("/").pop()!;
      assert.equal((await call(new URL(location, srv.url).href, { method: "PATCH", body: randomBytes(6 * MiB), headers: { "Content-Type": "application/octet-stream" } })).status, 202);
      assert.ok((await multipart("v2/repositories/purge/lost/")) > 0 && (await objects("v2/repositories/purge/lost/_uploads/")) > 0, "the upload has data in S3");
      const { Redis } = await import("ioredis");
      const r = new Redis(fleet.redisUrl);
      await r.del(`${fleet.keyPrefix}upload:${id}`, `${fleet.keyPrefix}uploads`);
      r.disconnect();

      // orphan 2: a monolithic upload cut by kill -9 after its first part went to S3
      const big = randomBytes(12 * MiB);
      const cut = new Promise<void>((resolve) => {
        const req = httpRequest(`${srv.url}/v2/purge/mono/blobs/uploads/?digest=${sha(big)}`, { method: "POST", headers: { "Content-Type": "application/octet-stream", "Transfer-Encoding": "chunked" } });
        req.on("error", () => resolve());
        req.on("response", () => resolve());
        req.write(big.subarray(0, 7 * MiB));
      });
      await until("the monolithic upload did not start a multipart upload", async () => (await multipart("v2/blobs/")) > 0, 20_000);
      await kill9(srv);
      await cut;
      srv = await startStrata(fleet.config);
      const ms = await until(
        "orphaned multipart uploads were not purged",
        async () => (await multipart("v2/")) === 0 && (await objects("v2/repositories/purge/lost/_uploads/")) === 0,
        30_000,
      );
      process.stdout.write(`purge [s3+redis]: orphaned multipart uploads gone ${ms} ms after the restart (grace 2 s, TTL 1 h, purge every 1 s)\n`);
      await call(`${srv.url}/v2/purge/mono/blobs/${sha(big)}`).then((x) => assert.equal(x.status, 404, "no part of the cut blob is visible"));
    } finally {
      client.destroy();
      await kill9(srv);
    }
  });
});
