/**
 * Upload sessions: what the registry must remember between the requests of one upload.
 * Embedded mode keeps them in this process (`MemorySessionStore`); a fleet keeps them in
 * Redis (`RedisSessionStore`) so that any replica can continue any upload.
 *
 * Lifecycle: create (POST) -> update after every accepted chunk (PATCH) -> delete on
 * completion (PUT) or cancel (DELETE). A session untouched for `ttlSeconds` expires; the
 * purger then removes its data. All mutations of one session happen under the
 * upload's lock (see locks.ts).
 */

export interface UploadSession {
  readonly id: string;
  readonly repository: string;
  /** Bytes accepted so far (== size of the upload data). */
  offset: number;
  /** Serialised running hash of those bytes (ResumableHash.save()). */
  hashState: string;
  /** Epoch milliseconds. */
  readonly startedAt: number;
  updatedAt: number;
}

export interface SessionStore {
  create(s: UploadSession): Promise<void>;
  get(id: string): Promise<UploadSession | undefined>;
  update(s: UploadSession): Promise<void>;
  delete(id: string): Promise<void>;
  /** Sessions last updated before `before` (epoch ms). */
  expired(before: number): Promise<UploadSession[]>;
  close?(): Promise<void>;
}

export class MemorySessionStore implements SessionStore {
  private readonly sessions = new Map<string, UploadSession>();
  async create(s: UploadSession): Promise<void> {
    this.sessions.set(s.id, { ...s });
  }

  async get(id: string): Promise<UploadSession | undefined> {
    const s = this.sessions.get(id);
    return s ? { ...s } : undefined;
  }

  async update(s: UploadSession): Promise<void> {
    if (this.sessions.has(s.id)) this.sessions.set(s.id, { ...s });
  }

  async delete(id: string): Promise<void> {
    this.sessions.delete(id);
  }

  async expired(before: number): Promise<UploadSession[]> {
    return [...this.sessions.values()].filter((s) => s.updatedAt < before).map((s) => ({ ...s }));
  }
}
