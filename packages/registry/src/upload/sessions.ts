/**
 * Upload sessions: what the registry must remember between the requests of one upload.
 * Embedded mode keeps them in this process (`MemorySessionStore`); a fleet keeps them in
 * Redis (`RedisSessionStore`) so that any replica can continue any upload.
 *
 * Lifecycle: create (POST) -> update after every accepted chunk (PATCH) -> delete on
 * completion (PUT) or cancel (DELETE). A session untouched for `ttlSeconds` expires; the
 * purger then removes its data. All mutations of one session happen under `lock(id)`.
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
  /** Runs `fn` while holding the session's exclusive lock. */
  withLock<T>(id: string, fn: () => Promise<T>): Promise<T>;
  /** Sessions last updated before `before` (epoch ms). */
  expired(before: number): Promise<UploadSession[]>;
  close?(): Promise<void>;
}

/** A promise-chain mutex per key, for one process. */
export class KeyedMutex {
  private readonly tails = new Map<string, Promise<void>>();

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => {
      release = r;
    });
    const tail = prev.then(() => mine);
    this.tails.set(key, tail);
    await prev;
    try {
      return await fn();
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}

export class MemorySessionStore implements SessionStore {
  private readonly sessions = new Map<string, UploadSession>();
  private readonly mutex = new KeyedMutex();

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

  withLock<T>(id: string, fn: () => Promise<T>): Promise<T> {
    return this.mutex.run(id, fn);
  }

  async expired(before: number): Promise<UploadSession[]> {
    return [...this.sessions.values()].filter((s) => s.updatedAt < before).map((s) => ({ ...s }));
  }
}
