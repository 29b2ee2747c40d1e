/**
 * Caches in front of storage. Every cache here is an optimisation only: a miss falls back to
 * storage, and every mutation that could make an entry wrong deletes it first.
 */

/** digest-keyed facts about blobs in repositories ("is <digest> linked into <repo>, and its size"). */
export interface DescriptorCache {
  get(repository: string, digest: string): Promise<number | undefined>;
  /** Caches a size read from storage; ignored for a short while after `delete` of the same entry. */
  set(repository: string, digest: string, size: number): Promise<void>;
  /** Caches a link just written (always taken). */
  linked(repository: string, digest: string, size: number): Promise<void>;
  /** Forgets an entry before its link is removed; late `set`s of it are then ignored. */
  delete(repository: string, digest: string): Promise<void>;
}

/** A size-bounded LRU of byte buffers (manifests by digest: immutable, so never stale). */
export class ByteLru<V extends { bytes: number }> {
  private readonly map = new Map<string, V>();
  private total = 0;

  constructor(private readonly maxBytes: number) {}

  get(key: string): V | undefined {
    const v = this.map.get(key);
    if (v !== undefined) {
      this.map.delete(key);
      this.map.set(key, v);
    }
    return v;
  }

  set(key: string, v: V): void {
    if (v.bytes > this.maxBytes) return;
    this.delete(key);
    this.map.set(key, v);
    this.total += v.bytes;
    while (this.total > this.maxBytes) {
      const oldest = this.map.keys().next().value as string;
      this.delete(oldest);
    }
  }

  delete(key: string): void {
    const v = this.map.get(key);
    if (v !== undefined) {
      this.map.delete(key);
      this.total -= v.bytes;
    }
  }
}

export class MemoryDescriptorCache implements DescriptorCache {
  private readonly lru = new ByteLru<{ size: number; bytes: number }>(16 * 1024 * 1024);
  /** key -> time until which `set` is ignored */
  private readonly tombs = new Map<string, number>();

  async get(repository: string, digest: string): Promise<number | undefined> {
    return this.lru.get(`${repository}@${digest}`)?.size;
  }

  async set(repository: string, digest: string, size: number): Promise<void> {
    const k = `${repository}@${digest}`;
    const until = this.tombs.get(k);
    if (until !== undefined) {
      if (until > Date.now()) return;
      this.tombs.delete(k);
    }
    this.lru.set(k, { size, bytes: k.length + 64 });
  }

  async linked(repository: string, digest: string, size: number): Promise<void> {
    const k = `${repository}@${digest}`;
    this.tombs.delete(k);
    this.lru.set(k, { size, bytes: k.length + 64 });
  }

  async delete(repository: string, digest: string): Promise<void> {
    const k = `${repository}@${digest}`;
    this.lru.delete(k);
    this.tombs.set(k, Date.now() + 60_000);
    if (this.tombs.size > 10_000) for (const [t, until] of this.tombs) if (until <= Date.now()) this.tombs.delete(t);
  }
}
