/**
 * Upload sessions in Redis, so that any replica can continue any upload.
 *   <prefix>upload:<id>   JSON session, expiring ttl + 1 h after its last update
 *   <prefix>uploads       sorted set "<repository> <id>" scored by last update (for the purger)
 */
import type { SessionStore, UploadSession } from "../upload/sessions.js";
import type { RedisConnection } from "./client.js";

export class RedisSessionStore implements SessionStore {
  constructor(
    private readonly conn: RedisConnection,
    private readonly ttlSeconds: number,
  ) {}

  private key(id: string): string {
    return this.conn.key("upload", id);
  }

  private member(s: UploadSession): string {
    return `${s.repository} ${s.id}`;
  }

  async create(s: UploadSession): Promise<void> {
    await this.write(s);
  }

  private async write(s: UploadSession): Promise<void> {
    await this.conn.run((r) =>
      r
        .multi()
        .set(this.key(s.id), JSON.stringify(s), "EX", this.ttlSeconds + 3600)
        .zadd(this.conn.key("uploads"), s.updatedAt, this.member(s))
        .exec(),
    );
  }

  async get(id: string): Promise<UploadSession | undefined> {
    const v = await this.conn.run((r) => r.get(this.key(id)));
    return v ? (JSON.parse(v) as UploadSession) : undefined;
  }

  async update(s: UploadSession): Promise<void> {
    await this.write(s);
  }

  async delete(id: string): Promise<void> {
    const s = await this.get(id);
    await this.conn.run((r) => {
      const m = r.multi().del(this.key(id));
      if (s) m.zrem(this.conn.key("uploads"), this.member(s));
      return m.exec();
    });
  }

  async expired(before: number): Promise<UploadSession[]> {
    const members = await this.conn.run((r) => r.zrangebyscore(this.conn.key("uploads"), "-inf", `(${before}`, "LIMIT", 0, 1000));
    return members.map((m) => {
      const [repository, id] = m.split(" ");
      return { id, repository, offset: 0, hashState: "", startedAt: 0, updatedAt: 0 };
    });
  }
}
