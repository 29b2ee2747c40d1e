/**
 * Blob descriptor cache in Redis: "<repository>@<digest>" -> size.
 *   <prefix>blob:<repository>@<digest>   size, expiring after a day
 *   <prefix>tomb:<repository>@<digest>   set for a minute after an unlink
 * A lookup that started before an unlink can finish after it and try to cache the size it
 * saw; the tombstone makes that late write a no-op, so a deleted blob is never reported as
 * existing from the cache.
 */
import type { DescriptorCache } from "../services/cache.js";
import type { RedisConnection } from "./client.js";

const SET_UNLESS_TOMB = `if redis.call("exists", KEYS[2]) == 1 then return 0 end
redis.call("set", KEYS[1], ARGV[1], "EX", ARGV[2]) return 1`;

export class RedisDescriptorCache implements DescriptorCache {
  constructor(private readonly conn: RedisConnection) {}

  private keys(repository: string, digest: string): [string, string] {
    return [this.conn.key("blob", `${repository}@${digest}`), this.conn.key("tomb", `${repository}@${digest}`)];
  }

  async get(repository: string, digest: string): Promise<number | undefined> {
    const v = await this.conn.run((r) => r.get(this.keys(repository, digest)[0]));
    return v === null ? undefined : Number(v);
  }

  async set(repository: string, digest: string, size: number): Promise<void> {
    const [k, tomb] = this.keys(repository, digest);
    await this.conn.run((r) => r.eval(SET_UNLESS_TOMB, 2, k, tomb, String(size), "86400"));
  }

  async linked(repository: string, digest: string, size: number): Promise<void> {
    const [k, tomb] = this.keys(repository, digest);
    await this.conn.run((r) => r.multi().del(tomb).set(k, String(size), "EX", 86400).exec());
  }

  async delete(repository: string, digest: string): Promise<void> {
    const [k, tomb] = this.keys(repository, digest);
    await this.conn.run((r) => r.multi().set(tomb, "1", "EX", 60).del(k).exec());
  }
}
