/**
 * The metadata summary in Redis (fleet mode), kept current by every replica on push, delete
 * and pull, so the /strata/v1 API never walks storage. Keys (all under the key prefix):
 *   meta:built                 set once the summary was built from storage
 *   meta:idx:name              sorted set of repository names (score 0: byte order)
 *   meta:idx:pushed            sorted set of "<16-digit ms>|<name>" (score 0: ZRANGEBYLEX pages)
 *   meta:idx:size              sorted set of "<16-digit bytes>|<name>"
 *   meta:repo:<name>           hash: size, pushedAt, tags (count)
 *   meta:m:<name>              hash: manifest digest -> facts JSON (immutable)
 *   meta:mt:<name>             hash: manifest digest -> last push (ms)
 *   meta:t:<name>              hash: tag -> "<digest> <ms>"
 *   meta:b:<name>              hash: blob digest -> number of the repository's manifests using it
 *   meta:r:<name>              hash: subject digest -> number of referrers
 *   meta:p:<name>              hash: digest or "tag:<tag>" -> last pull (ms)
 * Every change of one repository is one Lua script (atomic). Storage stays the source of
 * truth: `strata index rebuild` recreates the summary from it.
 */
import type {
  ListPage,
  ListQuery,
  ManifestFacts,
  MetadataStore,
  RepositoryContents,
  RepositorySummary,
  TagRecord,
} from "../services/metadata.js";
import type { RedisConnection } from "./client.js";

const LUA_HELPERS = `
local function pad(n) return string.format('%016d', n) end
local function reindex(name, oldSize, size, oldPushed, pushed)
  redis.call('ZADD', KEYS[6], 0, name)
  if oldPushed ~= pushed then
    if oldPushed >= 0 then redis.call('ZREM', KEYS[7], pad(oldPushed) .. '|' .. name) end
    redis.call('ZADD', KEYS[7], 0, pad(pushed) .. '|' .. name)
  end
  if oldSize ~= size then
    if oldSize >= 0 then redis.call('ZREM', KEYS[8], pad(oldSize) .. '|' .. name) end
    redis.call('ZADD', KEYS[8], 0, pad(size) .. '|' .. name)
  end
end
local name, digest = ARGV[1], ARGV[2]
local oldSize = tonumber(redis.call('HGET', KEYS[1], 'size') or '-1')
local oldPushed = tonumber(redis.call('HGET', KEYS[1], 'pushedAt') or '-1')
`;

// KEYS: repo m b r t idxName idxPushed idxSize mt p
// ARGV: name digest factsJSON pushedAt subject tag [blobDigest blobSize]...
const PUT = `${LUA_HELPERS}
local pushed = tonumber(ARGV[4])
local size = math.max(oldSize, 0)
if redis.call('HEXISTS', KEYS[2], digest) == 0 then
  redis.call('HSET', KEYS[2], digest, ARGV[3])
  for i = 7, #ARGV, 2 do
    if redis.call('HINCRBY', KEYS[3], ARGV[i], 1) == 1 then size = size + tonumber(ARGV[i + 1]) end
  end
  if ARGV[5] ~= '' then redis.call('HINCRBY', KEYS[4], ARGV[5], 1) end
end
if pushed > tonumber(redis.call('HGET', KEYS[9], digest) or '0') then redis.call('HSET', KEYS[9], digest, pushed) end
if ARGV[6] ~= '' then
  -- a build from storage may record a tag after its (later) push event did: the later time stays
  local prev = redis.call('HGET', KEYS[5], ARGV[6])
  local keep = prev and string.sub(prev, 1, #digest + 1) == digest .. ' ' and tonumber(string.sub(prev, #digest + 2)) > pushed
  if not keep then redis.call('HSET', KEYS[5], ARGV[6], digest .. ' ' .. pushed) end
end
if oldPushed > pushed then pushed = oldPushed end
redis.call('HSET', KEYS[1], 'size', size, 'pushedAt', pushed, 'tags', redis.call('HLEN', KEYS[5]))
reindex(name, oldSize, size, oldPushed, pushed)
return 1
`;

// KEYS: as PUT; ARGV: name digest
const DELETE_MANIFEST = `${LUA_HELPERS}
local raw = redis.call('HGET', KEYS[2], digest)
if not raw then return 0 end
local f = cjson.decode(raw)
local size = math.max(oldSize, 0)
for _, b in ipairs(f.blobs) do
  if redis.call('HINCRBY', KEYS[3], b.digest, -1) <= 0 then
    redis.call('HDEL', KEYS[3], b.digest)
    size = size - b.size
  end
end
if type(f.subject) == 'string' and redis.call('HINCRBY', KEYS[4], f.subject, -1) <= 0 then redis.call('HDEL', KEYS[4], f.subject) end
redis.call('HDEL', KEYS[2], digest)
redis.call('HDEL', KEYS[9], digest)
redis.call('HDEL', KEYS[10], digest)
local tags = redis.call('HGETALL', KEYS[5])
for i = 1, #tags, 2 do
  if string.sub(tags[i + 1], 1, #digest + 1) == digest .. ' ' then
    redis.call('HDEL', KEYS[5], tags[i])
    redis.call('HDEL', KEYS[10], 'tag:' .. tags[i])
  end
end
if redis.call('HLEN', KEYS[2]) == 0 then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[9], KEYS[10])
  redis.call('ZREM', KEYS[6], name)
  if oldPushed >= 0 then redis.call('ZREM', KEYS[7], pad(oldPushed) .. '|' .. name) end
  if oldSize >= 0 then redis.call('ZREM', KEYS[8], pad(oldSize) .. '|' .. name) end
  return 1
end
redis.call('HSET', KEYS[1], 'size', size, 'tags', redis.call('HLEN', KEYS[5]))
reindex(name, oldSize, size, oldPushed, oldPushed)
return 1
`;

// KEYS: repo t p; ARGV: tag
const DELETE_TAG = `
if redis.call('HDEL', KEYS[2], ARGV[1]) == 1 then
  redis.call('HDEL', KEYS[3], 'tag:' .. ARGV[1])
  if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'tags', redis.call('HLEN', KEYS[2])) end
end
return 1
`;

// KEYS: repo p; ARGV: key ms [key ms]...  (pulls of repositories the summary does not hold are ignored)
const PULLED = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
for i = 1, #ARGV, 2 do
  if tonumber(ARGV[i + 1]) > tonumber(redis.call('HGET', KEYS[2], ARGV[i]) or '0') then redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
end
return 1
`;

type StoredFacts = Omit<ManifestFacts, "pushedAt">;

export class RedisMetadataStore implements MetadataStore {
  constructor(private readonly conn: RedisConnection) {}

  private k(kind: string, name?: string): string {
    return name === undefined ? this.conn.key("meta", kind) : this.conn.key("meta", kind, name);
  }

  private repoKeys(name: string): string[] {
    return [
      this.k("repo", name),
      this.k("m", name),
      this.k("b", name),
      this.k("r", name),
      this.k("t", name),
      this.k("idx", "name"),
      this.k("idx", "pushed"),
      this.k("idx", "size"),
      this.k("mt", name),
      this.k("p", name),
    ];
  }

  async putManifest(repository: string, facts: ManifestFacts, tag?: string): Promise<void> {
    const { pushedAt, ...stored } = facts;
    const blobArgs: (string | number)[] = [];
    const seen = new Set<string>();
    for (const b of facts.blobs) {
      if (seen.has(b.digest)) continue;
      seen.add(b.digest);
      blobArgs.push(b.digest, b.size);
    }
    await this.conn.run((r) =>
      r.eval(PUT, 10, ...this.repoKeys(repository), repository, facts.digest, JSON.stringify(stored), pushedAt, facts.subject ?? "", tag ?? "", ...blobArgs),
    );
  }

  async deleteManifest(repository: string, digest: string): Promise<void> {
    await this.conn.run((r) => r.eval(DELETE_MANIFEST, 10, ...this.repoKeys(repository), repository, digest));
  }

  async deleteTag(repository: string, tag: string): Promise<void> {
    await this.conn.run((r) => r.eval(DELETE_TAG, 3, this.k("repo", repository), this.k("t", repository), this.k("p", repository), tag));
  }

  async pulled(pulls: Map<string, Map<string, number>>): Promise<void> {
    if (pulls.size === 0) return;
    await this.conn.run(async (r) => {
      const p = r.pipeline();
      for (const [repo, keys] of pulls) p.eval(PULLED, 2, this.k("repo", repo), this.k("p", repo), ...[...keys].flat());
      await p.exec();
    });
  }

  async list(query: ListQuery, allow: (name: string) => boolean): Promise<ListPage> {
    const desc = query.sort !== "name";
    const index = this.k("idx", query.sort);
    const picked: { key: string; name: string }[] = [];
    let more = false;
    let cursor = query.last;
    const batch = Math.max(query.n + 1, 500);
    scan: for (;;) {
      const keys = await this.conn.run((r) =>
        desc
          ? r.zrevrangebylex(index, cursor === undefined ? "+" : `(${cursor}`, "-", "LIMIT", 0, batch)
          : r.zrangebylex(index, cursor === undefined ? "-" : `(${cursor}`, "+", "LIMIT", 0, batch),
      );
      for (const key of keys) {
        const name = desc ? key.slice(key.indexOf("|") + 1) : key;
        if (query.q && !name.includes(query.q)) continue;
        if (!allow(name)) continue;
        if (picked.length === query.n) {
          more = true;
          break scan;
        }
        picked.push({ key, name });
      }
      if (keys.length < batch) break;
      cursor = keys[keys.length - 1];
    }
    const summaries = await this.summaries(picked.map((p) => p.name));
    const items = summaries.filter((s): s is RepositorySummary => s !== undefined);
    return { items, next: more && picked.length > 0 ? picked[picked.length - 1].key : undefined };
  }

  private async summaries(names: string[]): Promise<(RepositorySummary | undefined)[]> {
    if (names.length === 0) return [];
    const rows = await this.conn.run(async (r) => {
      const p = r.pipeline();
      for (const n of names) p.hmget(this.k("repo", n), "size", "pushedAt", "tags");
      return (await p.exec()) ?? [];
    });
    return names.map((name, i) => {
      const [err, v] = rows[i] ?? [];
      if (err) throw err;
      const [size, pushedAt, tags] = v as (string | null)[];
      if (size === null) return undefined;
      return { name, size: Number(size), pushedAt: Number(pushedAt ?? 0), tagCount: Number(tags ?? 0) };
    });
  }

  async summary(repository: string): Promise<RepositorySummary | undefined> {
    return (await this.summaries([repository]))[0];
  }

  async contents(repository: string): Promise<RepositoryContents | undefined> {
    const res = await this.conn.run(async (r) => {
      const p = r.pipeline();
      p.exists(this.k("repo", repository));
      for (const kind of ["t", "m", "mt", "p", "r"]) p.hgetall(this.k(kind, repository));
      return (await p.exec()) ?? [];
    });
    for (const [err] of res) if (err) throw err;
    if (res[0][1] === 0) return undefined;
    const [t, m, mt, p, rf] = res.slice(1).map(([, v]) => v as Record<string, string>);
    const tags = new Map<string, TagRecord>();
    for (const [tag, v] of Object.entries(t)) {
      const [digest, at] = v.split(" ");
      tags.set(tag, { digest, pushedAt: Number(at) });
    }
    const manifests = new Map<string, ManifestFacts>();
    for (const [digest, json] of Object.entries(m)) manifests.set(digest, { ...(JSON.parse(json) as StoredFacts), pushedAt: Number(mt[digest] ?? 0) });
    const num = (o: Record<string, string>) => new Map(Object.entries(o).map(([k, v]) => [k, Number(v)]));
    return { tags, manifests, pulls: num(p), referrers: num(rf) };
  }

  async built(): Promise<boolean> {
    return (await this.conn.run((r) => r.exists(this.k("built")))) === 1;
  }

  async markBuilt(): Promise<void> {
    await this.conn.run((r) => r.set(this.k("built"), String(Date.now())));
  }
}

/** Deletes the whole summary (before a rebuild from storage). */
export async function dropMetadata(conn: RedisConnection): Promise<void> {
  await conn.run(async (r) => {
    let cursor = "0";
    do {
      const [next, keys] = await r.scan(cursor, "MATCH", `${conn.prefix}meta:*`, "COUNT", 1000);
      if (keys.length) await r.del(...keys);
      cursor = next;
    } while (cursor !== "0");
  });
}
