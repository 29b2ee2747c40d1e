/**
 * Tag and repository index in Redis, so that tag listing and the catalog never walk storage.
 *   <prefix>repos                  sorted set of repository names (all score 0: byte order)
 *   <prefix>tags:<repo>            sorted set of tags (score 0)
 *   <prefix>tagintents:<repo>      sorted set "<tag> <random>" -> ms time: tag writes that may
 *                                  have changed storage without the index following yet
 *   <prefix>tagintents             sorted set <repo> -> time of its oldest intent (for the reconciler)
 *
 * Storage stays the source of truth. A tag write or delete (under the tag's lock) first records
 * an intent, then changes storage, then in one fenced script updates the index and removes its
 * intent. A crash (or a stale lock holder, or Redis failing) between storage and index leaves
 * the intent behind, and:
 * - `tags` answers what storage holds for every tag with an intent (verify on read), so a
 *   listing never shows a tag that GET answers 404 for, nor misses one that GET resolves;
 * - `reconcileTagIntents` (run at start-up and periodically) settles intents older than
 *   INTENT_AGE_MS from storage under the tag's lock, making the index whole again.
 * An acknowledged write cannot be lost: its storage change happened before the answer, and
 * the index only ever moves toward storage. `rebuildIndex` (`strata index rebuild`) recreates
 * everything from storage by hand.
 */
import { randomBytes } from "node:crypto";
import type { Lease, Locker } from "../locks.js";
import type { RepositoryIndex } from "../services/catalog.js";
import { walkRepositories } from "../services/catalog.js";
import { byteOrder, StorageTagIndex, type TagIndex, tagLinkExists } from "../services/manifests.js";
import type { StorageDriver } from "../storage/driver.js";
import type { RedisConnection } from "./client.js";
import { checkFenced, FENCE_CHECK, fenceArgs } from "./locks.js";

/** Intents younger than this may belong to a write still in progress (or a stale holder's late one). */
export const INTENT_AGE_MS = 30_000;

// KEYS: lock, intents:<repo>, intents; ARGV: token, member, now, repo
const BEGIN = `${FENCE_CHECK}redis.call("zadd", KEYS[2], ARGV[3], ARGV[2])
redis.call("zadd", KEYS[3], "NX", ARGV[3], ARGV[4]) return 1`;

/** Lua: gives <repo> (ARGV[4]) the score of its oldest intent in KEYS[5], or removes it when it has none. */
const RESCORE = `local oldest = redis.call("zrange", KEYS[4], 0, 0, "WITHSCORES")
if #oldest == 0 then redis.call("zrem", KEYS[5], ARGV[4]) else redis.call("zadd", KEYS[5], oldest[2], ARGV[4]) end
return 1`;

// KEYS: lock, tags:<repo>, repos, intents:<repo>, intents; ARGV: token, tag, present ("1", "0", "" = leave), repo, members...
const SETTLE = `${FENCE_CHECK}if ARGV[3] == "1" then
  redis.call("zadd", KEYS[2], 0, ARGV[2]) redis.call("zadd", KEYS[3], 0, ARGV[4])
elseif ARGV[3] == "0" then redis.call("zrem", KEYS[2], ARGV[2]) end
for i = 5, #ARGV do redis.call("zrem", KEYS[4], ARGV[i]) end
${RESCORE}`;

const tagOfIntent = (member: string) => member.slice(0, member.lastIndexOf(" "));

export class RedisIndex implements TagIndex, RepositoryIndex {
  constructor(
    private readonly conn: RedisConnection,
    private readonly driver: StorageDriver,
  ) {}

  private intentKeys(repository: string): [string, string] {
    return [this.conn.key("tagintents", repository), this.conn.key("tagintents")];
  }

  async tags(repository: string): Promise<string[] | undefined> {
    const [indexed, known, intents] = await this.conn.run(async (r) => {
      const res = await r
        .multi()
        .zrange(this.conn.key("tags", repository), "0", "-1")
        .zscore(this.conn.key("repos"), repository)
        .zrange(this.intentKeys(repository)[0], "0", "-1")
        .exec();
      if (!res) throw new Error("transaction aborted");
      return [res[0][1] as string[], res[1][1] as string | null, res[2][1] as string[]];
    });
    const tags = new Set(indexed);
    for (const tag of new Set(intents.map(tagOfIntent))) {
      if (await tagLinkExists(this.driver, repository, tag)) tags.add(tag);
      else tags.delete(tag);
    }
    if (tags.size === 0 && known === null && intents.length === 0) return undefined;
    return [...tags].sort(byteOrder);
  }

  async change(repository: string, tag: string, present: boolean, lease: Lease, write: () => Promise<void>): Promise<void> {
    const member = `${tag} ${randomBytes(8).toString("hex")}`;
    const [repoIntents, allIntents] = this.intentKeys(repository);
    const [lock, token] = fenceArgs(lease, this.conn);
    const begun = await this.conn.write((r) => r.eval(BEGIN, 3, lock, repoIntents, allIntents, token, member, String(Date.now()), repository));
    checkFenced(begun, `tag ${repository}:${tag}`);
    try {
      await write();
    } catch (e) {
      // Storage may or may not have changed: settle from what it holds (the intent stays if that fails too).
      await this.settle(repository, tag, [member], lease).catch(() => {});
      throw e;
    }
    await this.apply(repository, tag, present, [member], lease);
  }

  /** Sets the tag's index entry to what storage holds and removes the given intents. */
  async settle(repository: string, tag: string, members: string[], lease: Lease): Promise<void> {
    await this.apply(repository, tag, await tagLinkExists(this.driver, repository, tag), members, lease);
  }

  /** `present` undefined: only re-score the repository's oldest intent. */
  private async apply(repository: string, tag: string, present: boolean | undefined, members: string[], lease?: Lease): Promise<void> {
    const [repoIntents, allIntents] = this.intentKeys(repository);
    const [lock, token] = fenceArgs(lease, this.conn);
    const keys = [lock, this.conn.key("tags", repository), this.conn.key("repos"), repoIntents, allIntents];
    const flag = present === undefined ? "" : present ? "1" : "0";
    const done = await this.conn.write((r) => r.eval(SETTLE, keys.length, ...keys, token, tag, flag, repository, ...members));
    checkFenced(done, `tag ${repository}:${tag}`);
  }

  /** Gives the repository the reconciler's score of its oldest intent, or forgets it when none is left. */
  async rescore(repository: string): Promise<void> {
    await this.apply(repository, "", undefined, []);
  }

  async repositories(): Promise<string[]> {
    return this.conn.run((r) => r.zrange(this.conn.key("repos"), "0", "-1"));
  }

  async added(repository: string): Promise<void> {
    await this.conn.write((r) => r.zadd(this.conn.key("repos"), 0, repository));
  }
}

/**
 * Settles every tag intent older than `ageMs` from storage, each under its tag's lock.
 * Returns how many tags were settled.
 */
export async function reconcileTagIntents(index: RedisIndex, conn: RedisConnection, locks: Locker, ageMs = INTENT_AGE_MS): Promise<number> {
  const cutoff = String(Date.now() - ageMs);
  const repos = await conn.run((r) => r.zrangebyscore(conn.key("tagintents"), "-inf", cutoff, "LIMIT", 0, 1000));
  let settled = 0;
  for (const repository of repos) {
    const members = await conn.run((r) => r.zrangebyscore(conn.key("tagintents", repository), "-inf", cutoff, "LIMIT", 0, 1000));
    const byTag = new Map<string, string[]>();
    for (const m of members) {
      const tag = tagOfIntent(m);
      byTag.set(tag, [...(byTag.get(tag) ?? []), m]);
    }
    for (const [tag, ms] of byTag) {
      await locks.withLock(`tag:${repository}:${tag}`, (lease) => index.settle(repository, tag, ms, lease));
      settled++;
    }
    if (byTag.size === 0) await index.rescore(repository);
  }
  return settled;
}

/** Recreates the index from storage. Returns the counts restored. */
export async function rebuildIndex(conn: RedisConnection, driver: StorageDriver): Promise<{ repositories: number; tags: number }> {
  const repos = await walkRepositories(driver);
  const fromStorage = new StorageTagIndex(driver);
  let tagCount = 0;
  // SCAN, not KEYS: a shared Redis must not be blocked while the index is rebuilt
  const oldKeys = await conn.run(async (r) => {
    const keys: string[] = [];
    for (const pattern of [`${conn.prefix}tags:*`, `${conn.prefix}tagintents:*`]) {
      let cursor = "0";
      do {
        const [next, batch] = await r.scan(cursor, "MATCH", pattern, "COUNT", 1000);
        keys.push(...batch);
        cursor = next;
      } while (cursor !== "0");
    }
    return keys;
  });
  const m = conn.redis.multi();
  for (const k of oldKeys) m.del(k);
  m.del(conn.key("repos"), conn.key("tagintents"));
  for (const repo of repos) {
    m.zadd(conn.key("repos"), 0, repo);
    const tags = (await fromStorage.tags(repo)) ?? [];
    tagCount += tags.length;
    for (const t of tags) m.zadd(conn.key("tags", repo), 0, t);
  }
  await conn.write(() => m.exec());
  return { repositories: repos.length, tags: tagCount };
}
