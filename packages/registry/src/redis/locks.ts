/**
 * Mutual exclusion across replicas, with short leases.
 *
 * A lock is the key <prefix>lock:<name> holding a random token, set with NX and a lease of
 * `ttlMs` (redis.lockTtlMs, 3 s by default). While its holder runs, the lease is renewed every
 * ttlMs/3 by a compare-and-pexpire script; the holder releases it by compare-and-delete. A
 * holder that dies (kill -9, a lost host) stops renewing, so its lock frees itself within
 * ttlMs: that bounds how long a request waits for a lock left by a dead replica.
 *
 * A holder that is alive but cannot renew in time (Redis unreachable from it, a failover that
 * lost the key, a stalled event loop) is stale: another replica may take the lock. What a stale
 * holder can and cannot do:
 * - Its `lease.signal` aborts as soon as the lease has run out unrenewed, or a renewal finds
 *   another token, so storage calls it makes with the signal stop; a storage request already
 *   sent may still land.
 * - It cannot change Redis state guarded by the lock: guarded writes (upload sessions, the tag
 *   index) run as scripts that first compare the lock's token with its own (fencing) and are
 *   refused otherwise, and its request fails with 503.
 * - It can still have written to storage, which offers no conditional writes (Swift's s3api
 *   has none). Every guarded operation makes such a late write harmless: a tag write records an
 *   intent first and the index converges to what storage holds (tagindex.ts); an upload holds
 *   the bytes its session says, not whatever the data object holds, the session is advanced
 *   only by fenced writes, CompleteMultipartUpload refuses parts whose ETags differ from those
 *   the current holder recorded, and a blob is published only after its digest was checked.
 * Fencing is as strong as Redis: with asynchronous replication a failover can lose a lock key;
 * `redis.syncReplicas` makes acquisition and guarded writes wait for replicas (client.ts).
 */
import { randomBytes } from "node:crypto";
import { UnavailableError } from "../errors.js";
import type { Lease, Locker } from "../locks.js";
import type { RedisConnection } from "./client.js";

const RELEASE = `if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) else return 0 end`;
const RENEW = `if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("pexpire", KEYS[1], ARGV[2]) else return 0 end`;

/** Lua prologue of a fenced script: KEYS[1] is the lock, ARGV[1] the holder's token ("" = unfenced). */
export const FENCE_CHECK = `if ARGV[1] ~= "" and redis.call("get", KEYS[1]) ~= ARGV[1] then return -1 end\n`;

/** The KEYS[1]/ARGV[1] pair a fenced script starts with. */
export function fenceArgs(lease: Lease | undefined, conn: RedisConnection): [string, string] {
  return lease?.fence ? [lease.fence.key, lease.fence.token] : [conn.key("lock", "-"), ""];
}

/** Throws when a fenced script answered -1 (the lease was lost). */
export function checkFenced(result: unknown, what: string): void {
  if (result === -1) throw new UnavailableError(`${what}: lock lost to another holder`);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class RedisLocker implements Locker {
  constructor(
    private readonly conn: RedisConnection,
    private readonly ttlMs = 3000,
    private readonly waitMs = 30_000,
  ) {}

  async withLock<T>(name: string, fn: (lease: Lease) => Promise<T>): Promise<T> {
    const key = this.conn.key("lock", name);
    const token = randomBytes(16).toString("hex");
    const deadline = Date.now() + this.waitMs;
    let delay = 5;
    let sentAt: number;
    for (;;) {
      sentAt = Date.now();
      let ok: string | null;
      try {
        ok = await this.conn.write((r) => r.set(key, token, "PX", this.ttlMs, "NX"));
      } catch (e) {
        // The SET may have happened (e.g. only its replication was not confirmed): undo it.
        await this.conn.run((r) => r.eval(RELEASE, 1, key, token)).catch(() => {});
        throw e;
      }
      if (ok === "OK") break;
      if (Date.now() > deadline) throw new UnavailableError(`lock ${name} is busy`);
      await sleep(delay);
      delay = Math.min(delay * 2, 100);
    }

    const ctl = new AbortController();
    const lose = (why: string) => {
      if (!ctl.signal.aborted) ctl.abort(new UnavailableError(`lock ${name} lost: ${why}`));
    };
    // The lease counts from when the command that set or renewed it was sent.
    let expiry: NodeJS.Timeout | undefined;
    const leaseFrom = (at: number) => {
      clearTimeout(expiry);
      expiry = setTimeout(() => lose("lease ran out without renewal"), Math.max(0, at + this.ttlMs - Date.now()));
      expiry.unref();
    };
    leaseFrom(sentAt);
    let renewing = false;
    const renew = setInterval(() => {
      if (renewing || ctl.signal.aborted) return;
      renewing = true;
      const at = Date.now();
      this.conn
        .run((r) => r.eval(RENEW, 1, key, token, String(this.ttlMs)))
        .then(
          (n) => (n === 1 ? leaseFrom(at) : lose("taken by another holder")),
          () => {}, // Redis unreachable: the expiry timer decides
        )
        .finally(() => {
          renewing = false;
        });
    }, this.ttlMs / 3);
    renew.unref();

    try {
      return await fn({ signal: ctl.signal, fence: { key, token } });
    } catch (e) {
      // Whatever a holder that lost its lock failed with, the request may be retried.
      if (ctl.signal.aborted && !(e instanceof UnavailableError)) throw ctl.signal.reason;
      throw e;
    } finally {
      clearInterval(renew);
      clearTimeout(expiry);
      await this.conn.run((r) => r.eval(RELEASE, 1, key, token)).catch(() => {});
    }
  }

  async isHeld(name: string): Promise<boolean> {
    return (await this.conn.run((r) => r.exists(this.conn.key("lock", name)))) === 1;
  }
}
