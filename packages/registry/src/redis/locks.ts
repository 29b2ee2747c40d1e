/**
 * Mutual exclusion across replicas. A lock is a Redis key set with NX and a TTL, holding a
 * random token; it is renewed while its holder works and released only by its holder (the
 * compare-and-delete runs as one script). A holder that dies loses the lock when the TTL
 * runs out.
 */
import { randomBytes } from "node:crypto";
import { UnavailableError } from "../errors.js";
import type { Locker } from "../locks.js";
import type { RedisConnection } from "./client.js";

const RELEASE = `if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) else return 0 end`;
const RENEW = `if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("pexpire", KEYS[1], ARGV[2]) else return 0 end`;

export class RedisLocker implements Locker {
  constructor(
    private readonly conn: RedisConnection,
    private readonly ttlMs = 15_000,
    private readonly waitMs = 30_000,
  ) {}

  async withLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const key = this.conn.key("lock", name);
    const token = randomBytes(16).toString("hex");
    const deadline = Date.now() + this.waitMs;
    let delay = 5;
    for (;;) {
      const ok = await this.conn.run((r) => r.set(key, token, "PX", this.ttlMs, "NX"));
      if (ok === "OK") break;
      if (Date.now() > deadline) throw new UnavailableError(`lock ${name} is busy`);
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 200);
    }
    const renew = setInterval(() => {
      this.conn.run((r) => r.eval(RENEW, 1, key, token, String(this.ttlMs))).catch(() => {});
    }, this.ttlMs / 3);
    renew.unref();
    try {
      return await fn();
    } finally {
      clearInterval(renew);
      await this.conn.run((r) => r.eval(RELEASE, 1, key, token)).catch(() => {});
    }
  }
}
