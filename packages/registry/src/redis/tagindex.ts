/**
 * Tag and repository index in Redis, so that tag listing and the catalog never walk storage.
 *   <prefix>repos          sorted set of repository names (all score 0: byte order)
 *   <prefix>tags:<repo>    sorted set of tags (score 0)
 * Storage stays the source of truth: `rebuildIndex` recreates both from storage.
 */
import type { RepositoryIndex } from "../services/catalog.js";
import { walkRepositories } from "../services/catalog.js";
import { StorageTagIndex, type TagIndex } from "../services/manifests.js";
import type { StorageDriver } from "../storage/driver.js";
import type { RedisConnection } from "./client.js";

export class RedisIndex implements TagIndex, RepositoryIndex {
  constructor(private readonly conn: RedisConnection) {}

  async tags(repository: string): Promise<string[] | undefined> {
    const [tags, known] = await this.conn.run(async (r) => {
      const res = await r.multi().zrange(this.conn.key("tags", repository), "0", "-1").zscore(this.conn.key("repos"), repository).exec();
      if (!res) throw new Error("transaction aborted");
      return [res[0][1] as string[], res[1][1] as string | null];
    });
    if (tags.length === 0 && known === null) return undefined;
    return tags;
  }

  async tagged(repository: string, tag: string): Promise<void> {
    await this.conn.run((r) => r.multi().zadd(this.conn.key("tags", repository), 0, tag).zadd(this.conn.key("repos"), 0, repository).exec());
  }

  async untagged(repository: string, tag: string): Promise<void> {
    await this.conn.run((r) => r.zrem(this.conn.key("tags", repository), tag));
  }

  async repositories(): Promise<string[]> {
    return this.conn.run((r) => r.zrange(this.conn.key("repos"), "0", "-1"));
  }

  async added(repository: string): Promise<void> {
    await this.conn.run((r) => r.zadd(this.conn.key("repos"), 0, repository));
  }
}

/** Recreates the index from storage. Returns the counts restored. */
export async function rebuildIndex(conn: RedisConnection, driver: StorageDriver): Promise<{ repositories: number; tags: number }> {
  const repos = await walkRepositories(driver);
  const fromStorage = new StorageTagIndex(driver);
  let tagCount = 0;
  // SCAN, not KEYS: a shared Redis must not be blocked while the index is rebuilt
  const oldTagKeys = await conn.run(async (r) => {
    const keys: string[] = [];
    let cursor = "0";
    do {
      const [next, batch] = await r.scan(cursor, "MATCH", `${conn.prefix}tags:*`, "COUNT", 1000);
      keys.push(...batch);
      cursor = next;
    } while (cursor !== "0");
    return keys;
  });
  const m = conn.redis.multi();
  for (const k of oldTagKeys) m.del(k);
  m.del(conn.key("repos"));
  for (const repo of repos) {
    m.zadd(conn.key("repos"), 0, repo);
    const tags = (await fromStorage.tags(repo)) ?? [];
    tagCount += tags.length;
    for (const t of tags) m.zadd(conn.key("tags", repo), 0, t);
  }
  await conn.run(() => m.exec());
  return { repositories: repos.length, tags: tagCount };
}
