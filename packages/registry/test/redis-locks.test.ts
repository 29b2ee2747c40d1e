/**
 * Locks in Redis: a dead holder's lock frees itself within the (short) lease, a live holder
 * keeps its lock by renewal however long it works, and a holder that lost its lease is told so
 * (its signal aborts) and cannot change guarded Redis state any more (fencing).
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { parseConfig } from "../src/config.js";
import { UnavailableError } from "../src/errors.js";
import type { Lease } from "../src/locks.js";
import { RedisConnection } from "../src/redis/client.js";
import { RedisLocker } from "../src/redis/locks.js";
import { RedisIndex } from "../src/redis/tagindex.js";
import { filesystemDriver } from "../src/storage/filesystem.js";
import { dropRedisPrefix, testRedisUrl } from "./helpers/backends.js";

describe("Redis locks", () => {
  const url = testRedisUrl();
  const keyPrefix = `strata-test:${randomBytes(6).toString("hex")}:`;
  const conns: RedisConnection[] = [];
  const connect = async () => {
    const c = new RedisConnection({ url, keyPrefix, commandTimeoutMs: 1000 });
    conns.push(c);
    await c.ready();
    return c;
  };
  after(async () => {
    for (const c of conns) await c.close();
    await dropRedisPrefix(url, keyPrefix);
  });

  it("a lock whose holder died is free within the default lease", async () => {
    const ttl = parseConfig({}).redis.lockTtlMs;
    const dying = await connect();
    let held!: () => void;
    const holding = new Promise<void>((r) => {
      held = r;
    });
    void new RedisLocker(dying, ttl).withLock("tag:r:t", () => {
      held();
      return new Promise(() => {}); // never finishes: its process is about to die
    });
    await holding;
    dying.redis.disconnect(); // the holder is gone: no renewal, no release
    const t0 = Date.now();
    await new RedisLocker(await connect(), ttl).withLock("tag:r:t", async () => {});
    const waited = Date.now() - t0;
    assert.ok(waited <= ttl + 500, `waited ${waited} ms for a dead holder's lock (lease ${ttl} ms)`);
    assert.ok(ttl <= 5000, `the lease is short (${ttl} ms)`);
  });

  it("a live holder keeps its lock for as long as it works", async () => {
    const a = new RedisLocker(await connect(), 600);
    const b = new RedisLocker(await connect(), 600, 150);
    await a.withLock("long", async (lease) => {
      await new Promise((r) => setTimeout(r, 2000));
      assert.equal(lease.signal.aborted, false);
      await assert.rejects(
        b.withLock("long", async () => {}),
        (e: unknown) => e instanceof UnavailableError,
      );
    });
    await b.withLock("long", async () => {});
  });

  it("a holder that lost its lease is aborted and fenced out of the index", async () => {
    const root = await mkdtemp(join(tmpdir(), "strata-fence-"));
    try {
      const conn = await connect();
      const index = new RedisIndex(conn, filesystemDriver(root));
      const stale = new RedisLocker(conn, 600);
      const fresh = new RedisLocker(await connect(), 600);
      let staleLease!: Lease;
      let release!: () => void;
      const taken = new Promise<void>((r) => {
        release = r;
      });
      const staleRun = stale.withLock("tag:repo:t", async (lease) => {
        staleLease = lease;
        // the lease is lost behind the holder's back (Redis lost the key, or the holder stalled)
        await conn.redis.del(lease.fence!.key);
        await fresh.withLock("tag:repo:t", async () => {
          release();
          await new Promise((r) => lease.signal.addEventListener("abort", r, { once: true }));
        });
        await taken;
        await index.change("repo", "t", true, lease, async () => {});
      });
      await assert.rejects(staleRun, (e: unknown) => e instanceof UnavailableError && /lock/.test((e as Error).message));
      assert.ok(staleLease.signal.aborted, "the stale holder's signal aborted");
      assert.deepEqual(await conn.redis.zrange(conn.key("tags", "repo"), "0", "-1"), [], "the fenced write did not happen");
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
