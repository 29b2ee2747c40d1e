/**
 * Upload sessions in Redis, so that any replica can continue any upload.
 *   <prefix>upload:<id>   JSON session, expiring ttl + 1 h after its last update (a completed
 *                         one after COMPLETED_TTL_SECONDS)
 *   <prefix>uploads       sorted set "<repository> <id>" of incomplete sessions scored by last
 *                         update (for the purger)
 * Updates and deletes run as fenced scripts: only the holder of the upload's lock changes it.
 */
import type { Lease } from "../locks.js";
import { COMPLETED_TTL_SECONDS, type SessionStore, type UploadSession } from "../upload/sessions.js";
import type { RedisConnection } from "./client.js";
import { checkFenced, FENCE_CHECK, fenceArgs } from "./locks.js";

// KEYS: lock, upload:<id>, uploads; ARGV: token, json, seconds, member, score, completed
const WRITE = `${FENCE_CHECK}redis.call("set", KEYS[2], ARGV[2], "EX", ARGV[3])
if ARGV[6] == "1" then redis.call("zrem", KEYS[3], ARGV[4]) else redis.call("zadd", KEYS[3], ARGV[5], ARGV[4]) end
return 1`;

// KEYS: lock, upload:<id>, uploads; ARGV: token, member
const DELETE = `${FENCE_CHECK}redis.call("del", KEYS[2]) redis.call("zrem", KEYS[3], ARGV[2]) return 1`;

export class RedisSessionStore implements SessionStore {
  constructor(
    private readonly conn: RedisConnection,
    private readonly ttlSeconds: number,
  ) {}

  private key(id: string): string {
    return this.conn.key("upload", id);
  }

  private member(s: Pick<UploadSession, "repository" | "id">): string {
    return `${s.repository} ${s.id}`;
  }

  async create(s: UploadSession): Promise<void> {
    await this.update(s);
  }

  async get(id: string): Promise<UploadSession | undefined> {
    const v = await this.conn.run((r) => r.get(this.key(id)));
    return v ? (JSON.parse(v) as UploadSession) : undefined;
  }

  async update(s: UploadSession, lease?: Lease): Promise<void> {
    const [lock, token] = fenceArgs(lease, this.conn);
    const seconds = s.completed ? COMPLETED_TTL_SECONDS : this.ttlSeconds + 3600;
    const done = await this.conn.write((r) =>
      r.eval(WRITE, 3, lock, this.key(s.id), this.conn.key("uploads"), token, JSON.stringify(s), String(seconds), this.member(s), String(s.updatedAt), s.completed ? "1" : "0"),
    );
    checkFenced(done, `upload ${s.id}`);
  }

  async delete(s: Pick<UploadSession, "id" | "repository">, lease?: Lease): Promise<void> {
    const [lock, token] = fenceArgs(lease, this.conn);
    const done = await this.conn.write((r) => r.eval(DELETE, 3, lock, this.key(s.id), this.conn.key("uploads"), token, this.member(s)));
    checkFenced(done, `upload ${s.id}`);
  }

  async expired(before: number): Promise<UploadSession[]> {
    const members = await this.conn.run((r) => r.zrangebyscore(this.conn.key("uploads"), "-inf", `(${before}`, "LIMIT", 0, 1000));
    return members.map((m) => {
      const [repository, id] = m.split(" ");
      return { id, repository, offset: 0, hashState: "", startedAt: 0, updatedAt: 0 };
    });
  }
}
