/**
 * Caches in front of storage. Every cache here is an optimisation only: a miss falls back to
 * storage, and every mutation that could make an entry wrong deletes it first.
 */

/** digest-keyed facts about blobs in repositories ("is <digest> linked into <repo>, and its size"). */
export interface DescriptorCache {
  get(repository: string, digest: string): Promise<number | undefined>;
  set(repository: string, digest: string, size: number): Promise<void>;
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

  async get(repository: string, digest: string): Promise<number | undefined> {
    return this.lru.get(`${repository}@${digest}`)?.size;
  }

  async set(repository: string, digest: string, size: number): Promise<void> {
    this.lru.set(`${repository}@${digest}`, { size, bytes: repository.length + digest.length + 64 });
  }

  async delete(repository: string, digest: string): Promise<void> {
    this.lru.delete(`${repository}@${digest}`);
  }
}
