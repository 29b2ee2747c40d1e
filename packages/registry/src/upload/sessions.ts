/**
 * Upload sessions: what the registry must remember between the requests of one upload.
 * Embedded mode keeps them in this process (`MemorySessionStore`); a fleet keeps them in
 * Redis (`RedisSessionStore`) so that any replica can continue any upload.
 *
 * Lifecycle: create (POST) -> update after every accepted chunk (PATCH) -> `completed` set on
 * completion (PUT; the session lingers for COMPLETED_TTL_SECONDS so that a retried PUT is
 * answered as the first one was) or deleted on cancel (DELETE). A session untouched for the
 * upload TTL expires; the purger then removes its data. Every mutation of an existing session
 * happens under the upload's lock and passes its lease (Redis fences the write with it).
 */
import type { Lease } from "../locks.js";

export interface UploadSession {
  readonly id: string;
  readonly repository: string;
  /** Bytes accepted so far (== size of the upload data). */
  offset: number;
  /** Serialised running hash of those bytes (ResumableHash.save()). */
  hashState: string;
  /** Epoch milliseconds. */
  readonly startedAt: number;
  /** Epoch milliseconds of the last accepted chunk: uploads expire by last activity. */
  updatedAt: number;
  /** The digest the upload was published as, once complete. */
  completed?: string;
}

/** How long a completed session is kept to answer a retried completion. */
export const COMPLETED_TTL_SECONDS = 3600;

export interface SessionStore {
  create(s: UploadSession): Promise<void>;
  get(id: string): Promise<UploadSession | undefined>;
  /** Stores the session (also once completed); refused (UnavailableError) when `lease` was lost. */
  update(s: UploadSession, lease?: Lease): Promise<void>;
  delete(s: Pick<UploadSession, "id" | "repository">, lease?: Lease): Promise<void>;
  /** Incomplete sessions last updated before `before` (epoch ms). */
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
    if (s?.completed && s.updatedAt < Date.now() - COMPLETED_TTL_SECONDS * 1000) {
      this.sessions.delete(id);
      return undefined;
    }
    return s ? { ...s } : undefined;
  }

  async update(s: UploadSession): Promise<void> {
    if (this.sessions.has(s.id)) this.sessions.set(s.id, { ...s });
  }

  async delete(s: Pick<UploadSession, "id">): Promise<void> {
    this.sessions.delete(s.id);
  }

  async expired(before: number): Promise<UploadSession[]> {
    const cutoff = Date.now() - COMPLETED_TTL_SECONDS * 1000;
    for (const [id, s] of this.sessions) if (s.completed && s.updatedAt < cutoff) this.sessions.delete(id);
    return [...this.sessions.values()].filter((s) => !s.completed && s.updatedAt < before).map((s) => ({ ...s }));
  }
}
