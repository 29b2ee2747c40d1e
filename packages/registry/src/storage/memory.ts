/**
 * An in-process driver for tests and embedded use: committed objects live in a Map keyed by
 * their full key, "directories" exist implicitly while some object lies below them. Writers
 * keep their bytes apart from the objects until commit; a closed writer's bytes wait in a
 * separate map for an appending writer. Stored buffers are never handed out for mutation:
 * content is copied in on write and out by getContent.
 */
import { addAbortSignal, Readable } from "node:stream";
import { checkedDriver } from "./base.js";
import type { FileInfo, FileWriter, ListOptions, ListResult, ReadOptions, StorageDriver, WriterOptions } from "./driver.js";
import { listPage, PathNotFoundError, StorageError } from "./driver.js";

const NAME = "inmemory";
const CHUNK = 64 * 1024;

interface Entry {
  readonly data: Buffer;
  readonly modTime: Date;
}

/** Whether `key` is `dir` itself or lies below it. */
const within = (key: string, dir: string) => key === dir || key.startsWith(dir + "/");

export function memoryDriver(): StorageDriver {
  const files = new Map<string, Entry>();
  /** Bytes of writers closed without commit, by key. */
  const partials = new Map<string, Buffer[]>();

  const entry = (key: string): Entry => {
    const e = files.get(key);
    if (!e) throw new PathNotFoundError(NAME, key);
    return e;
  };

  /** Direct children of `key`, unsorted; empty when nothing lies below it. */
  const children = (key: string): Set<string> => {
    const prefix = key + "/";
    const out = new Set<string>();
    for (const k of files.keys()) {
      if (!k.startsWith(prefix)) continue;
      const slash = k.indexOf("/", prefix.length);
      out.add(slash < 0 ? k : k.slice(0, slash));
    }
    return out;
  };

  const driver: StorageDriver = {
    name: NAME,

    async getContent(key, signal) {
      signal?.throwIfAborted();
      return Buffer.from(entry(key).data);
    },

    async putContent(key, content, signal) {
      signal?.throwIfAborted();
      files.set(key, { data: Buffer.from(content), modTime: new Date() });
    },

    async reader(key, opts: ReadOptions = {}) {
      opts.signal?.throwIfAborted();
      const { data } = entry(key);
      const start = Math.min(opts.offset ?? 0, data.length);
      const end = opts.length === undefined ? data.length : Math.min(data.length, start + opts.length);
      const view = data.subarray(start, end);
      function* chunks() {
        for (let i = 0; i < view.length; i += CHUNK) yield view.subarray(i, i + CHUNK);
      }
      const stream = Readable.from(chunks(), { objectMode: false });
      return opts.signal ? addAbortSignal(opts.signal, stream) : stream;
    },

    async writer(key, opts: WriterOptions = {}) {
      opts.signal?.throwIfAborted();
      let chunks: Buffer[];
      if (opts.append) {
        const earlier = partials.get(key);
        if (!earlier) throw new PathNotFoundError(NAME, key);
        chunks = earlier;
      } else {
        chunks = [];
      }
      partials.delete(key);
      return new MemoryWriter(key, chunks, opts.signal, {
        keep: (c) => partials.set(key, c),
        publish: (data) => files.set(key, { data, modTime: new Date() }),
      });
    },

    async stat(key, signal): Promise<FileInfo> {
      signal?.throwIfAborted();
      const e = files.get(key);
      if (e) return { path: key, size: e.data.length, modTime: e.modTime, isDir: false };
      let modTime = 0;
      for (const [k, v] of files) if (k.startsWith(key + "/")) modTime = Math.max(modTime, v.modTime.getTime());
      if (modTime === 0) throw new PathNotFoundError(NAME, key);
      return { path: key, size: 0, modTime: new Date(modTime), isDir: true };
    },

    async list(key, opts: ListOptions = {}): Promise<ListResult> {
      opts.signal?.throwIfAborted();
      const all = [...children(key)];
      if (all.length === 0) throw new PathNotFoundError(NAME, key);
      // Keys are ASCII, so UTF-16 code unit order is byte order.
      all.sort();
      return listPage(all, opts);
    },

    async move(source, dest, signal) {
      signal?.throwIfAborted();
      if (source === dest) {
        entry(source);
        return;
      }
      const moving = [...files].filter(([k]) => within(k, source));
      if (moving.length === 0) throw new PathNotFoundError(NAME, source);
      if (within(dest, source)) throw new StorageError(NAME, dest, "cannot move a key below itself");
      for (const k of [...files.keys()]) if (within(k, dest)) files.delete(k);
      for (const [k, v] of moving) {
        files.delete(k);
        files.set(dest + k.slice(source.length), v);
      }
    },

    async delete(key, signal) {
      signal?.throwIfAborted();
      let found = false;
      for (const k of [...files.keys()]) {
        if (within(k, key)) {
          files.delete(k);
          found = true;
        }
      }
      if (!found) throw new PathNotFoundError(NAME, key);
      for (const k of [...partials.keys()]) if (k.startsWith(key + "/")) partials.delete(k);
    },
  };
  return checkedDriver(driver);
}

class MemoryWriter implements FileWriter {
  #chunks: Buffer[];
  #size: number;
  #done = false;

  constructor(
    readonly key: string,
    chunks: Buffer[],
    readonly signal: AbortSignal | undefined,
    readonly sink: { keep(chunks: Buffer[]): void; publish(data: Buffer): void },
  ) {
    this.#chunks = chunks;
    this.#size = chunks.reduce((n, c) => n + c.length, 0);
  }

  get size(): number {
    return this.#size;
  }

  #live(): void {
    if (this.#done) throw new StorageError(NAME, this.key, "writer already closed");
  }

  async write(chunk: Uint8Array): Promise<void> {
    this.#live();
    this.signal?.throwIfAborted();
    this.#chunks.push(Buffer.from(chunk));
    this.#size += chunk.byteLength;
  }

  async close(): Promise<void> {
    this.#live();
    this.#done = true;
    this.sink.keep(this.#chunks);
  }

  async commit(): Promise<void> {
    this.#live();
    this.signal?.throwIfAborted();
    this.#done = true;
    this.sink.publish(Buffer.concat(this.#chunks, this.#size));
  }

  async cancel(): Promise<void> {
    this.#done = true;
    this.#chunks = [];
  }
}
