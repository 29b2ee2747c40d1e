/**
 * Failed-login limits: fixed windows counted per key ("user:NAME", "addr:IP"). Once a key has
 * reached its limit, logins for it are refused (TOOMANYREQUESTS with Retry-After) until the
 * window ends, before any password is checked. With Redis the counts are shared by every
 * replica; while Redis is unreachable each replica counts on its own.
 */
import type { RedisConnection } from "../redis/client.js";

export interface LimitKey {
  key: string;
  limit: number;
}

export interface FailureLimiter {
  /** Seconds until every key is below its limit again (0: not blocked). */
  blockedFor(keys: readonly LimitKey[]): Promise<number>;
  /** Counts one failure against every key. */
  failed(keys: readonly LimitKey[]): Promise<void>;
}

const MAX_KEYS = 100_000;

export class MemoryFailureLimiter implements FailureLimiter {
  private readonly counts = new Map<string, { n: number; reset: number }>();

  constructor(private readonly windowSeconds: number) {}

  async blockedFor(keys: readonly LimitKey[]): Promise<number> {
    const now = Date.now();
    let wait = 0;
    for (const k of keys) {
      const c = this.counts.get(k.key);
      if (c && c.reset > now && c.n >= k.limit) wait = Math.max(wait, Math.ceil((c.reset - now) / 1000));
    }
    return wait;
  }

  async failed(keys: readonly LimitKey[]): Promise<void> {
    const now = Date.now();
    if (this.counts.size >= MAX_KEYS) for (const [k, c] of this.counts) if (c.reset <= now) this.counts.delete(k);
    for (const k of keys) {
      const c = this.counts.get(k.key);
      if (!c || c.reset <= now) {
        if (this.counts.size < MAX_KEYS) this.counts.set(k.key, { n: 1, reset: now + this.windowSeconds * 1000 });
      } else {
        c.n++;
      }
    }
  }
}

const INCR = `local n = redis.call("incr", KEYS[1]) if n == 1 then redis.call("expire", KEYS[1], ARGV[1]) end return n`;

export class RedisFailureLimiter implements FailureLimiter {
  private readonly local: MemoryFailureLimiter;

  constructor(
    private readonly conn: RedisConnection,
    private readonly windowSeconds: number,
  ) {
    this.local = new MemoryFailureLimiter(windowSeconds);
  }

  private key(k: string): string {
    return this.conn.key("authfail", k);
  }

  async blockedFor(keys: readonly LimitKey[]): Promise<number> {
    try {
      const r = this.conn.redis.multi();
      for (const k of keys) r.get(this.key(k.key)).ttl(this.key(k.key));
      const res = (await this.conn.run(() => r.exec())) ?? [];
      let wait = 0;
      keys.forEach((k, i) => {
        const n = Number(res[2 * i]?.[1] ?? 0);
        const ttl = Number(res[2 * i + 1]?.[1] ?? 0);
        if (n >= k.limit) wait = Math.max(wait, ttl > 0 ? ttl : this.windowSeconds);
      });
      return wait;
    } catch {
      return this.local.blockedFor(keys);
    }
  }

  async failed(keys: readonly LimitKey[]): Promise<void> {
    try {
      await this.conn.run((r) => Promise.all(keys.map((k) => r.eval(INCR, 1, this.key(k.key), String(this.windowSeconds)))));
    } catch {
      await this.local.failed(keys);
    }
  }
}
