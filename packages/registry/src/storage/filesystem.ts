/**
 * A driver over a local directory: key "/v2/x" is the file `<root>/v2/x`, "directories" are
 * real directories.
 *
 * Files that are not objects carry a "~" in their name, which no key component can contain,
 * so `list` (which shows only names obeying the key grammar) and `stat`/`reader` (which only
 * ever see valid keys) never expose them:
 * - `~tmp~<name>~<random>`: putContent's temporary file, renamed over `<name>` once synced.
 * - `~partial~<name>`: a writer's bytes, renamed over `<name>` by commit; it stays after
 *   close() (or a crash) for an appending writer and is removed by cancel().
 * Both live in the key's own directory so that the final rename never crosses filesystems.
 *
 * - `~del~<name>~<random>`: a key being deleted. delete renames the key out of the way first
 *   (atomic), then removes the renamed tree, so a concurrent write below the key either lands
 *   before the rename (and is deleted with it) or after it (in a fresh directory); a crash
 *   between the two steps leaves only an invisible `~del~` entry.
 *
 * delete (and move, for the source) removes directories left empty, up to the root, so that
 * an emptied "directory" disappears as it does in object stores. Operations that create a
 * file retry when a concurrent removal takes its directory away at any step.
 *
 * A full disk or exhausted quota (ENOSPC, EDQUOT) is a StorageFullError.
 */
import { randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { type FileHandle, lstat, mkdir, open, readdir, readFile, rename, rm, rmdir, stat, unlink } from "node:fs/promises";
import path from "node:path";
import { Readable } from "node:stream";
import { checkedDriver } from "./base.js";
import type { FileInfo, FileWriter, ListOptions, ListResult, ReadOptions, StorageDriver, WriterOptions } from "./driver.js";
import { listPage, PathNotFoundError, StorageError, StorageFullError } from "./driver.js";

const NAME = "filesystem";
/** Names that can be key components; everything else in a directory is driver-private. */
const VISIBLE = /^[A-Za-z0-9._-]+$/;
/** Writer staging buffer: small chunks are gathered into writes of this size. */
const STAGE = 1024 * 1024;
/** Chunks at least this large are written straight from the caller's buffer. */
const DIRECT = 256 * 1024;
const READ_CHUNK = 1024 * 1024;

const errno = (e: unknown): string | undefined => (e as NodeJS.ErrnoException | null)?.code;
const isAbort = (e: unknown) => (e as Error | null)?.name === "AbortError";

/** Attempts of an operation whose directory a concurrent delete keeps taking away. */
const ATTEMPTS = 10;

/**
 * Maps an fs error: a missing path (or a file where a directory was expected) is
 * PathNotFoundError, no space left is StorageFullError.
 */
function mapError(key: string, e: unknown, notFound = ["ENOENT", "ENOTDIR"]): Error {
  if (e instanceof StorageError || isAbort(e)) return e as Error;
  const code = errno(e);
  if (code && notFound.includes(code)) return new PathNotFoundError(NAME, key);
  if (code === "ENOSPC" || code === "EDQUOT") return new StorageFullError(NAME, key, { cause: e });
  return new StorageError(NAME, key, (e as Error).message ?? String(e), { cause: e });
}

/**
 * Makes a directory's entries durable; filesystems that cannot sync directories are tolerated,
 * and so is a directory a concurrent delete removed meanwhile (the entry went with it).
 */
async function syncDir(dir: string): Promise<void> {
  let fh: FileHandle | undefined;
  try {
    fh = await open(dir, "r");
    await fh.sync();
  } catch (e) {
    if (!["EINVAL", "EISDIR", "EBADF", "EPERM", "ENOENT"].includes(errno(e) ?? "")) throw e;
  } finally {
    await fh?.close();
  }
}

/**
 * mkdir -p that makes the directories it created durable: each new directory's entry is
 * synced in its parent, so a file later renamed into `dir` (and its own directory synced)
 * cannot be lost with its directory after a crash.
 */
async function mkdirDurable(dir: string): Promise<void> {
  const first = await mkdir(dir, { recursive: true });
  if (first === undefined) return;
  const parents = [path.dirname(first)];
  for (let d = dir; d !== first && d.length > first.length; d = path.dirname(d)) parents.push(path.dirname(d));
  await Promise.all(parents.map(syncDir));
}

/** Runs `fn` (which creates something in `dir`) after mkdir -p, again if `dir` vanished meanwhile. */
async function inDir<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    await mkdirDurable(dir);
    try {
      return await fn();
    } catch (e) {
      if (errno(e) !== "ENOENT" || attempt >= 4) throw e;
    }
  }
}

async function writeAll(fh: FileHandle, data: Uint8Array, position: number): Promise<void> {
  let off = 0;
  while (off < data.byteLength) {
    const { bytesWritten } = await fh.write(data, off, data.byteLength - off, position + off);
    off += bytesWritten;
  }
}

function emptyStream(): Readable {
  return new Readable({
    read() {
      this.push(null);
    },
  });
}

export function filesystemDriver(root: string): StorageDriver {
  const base = path.resolve(root);
  const fsPath = (key: string) => path.join(base, key);
  const partialOf = (p: string) => path.join(path.dirname(p), `~partial~${path.basename(p)}`);

  /** Removes `dir` and its ancestors below the root while they are empty. */
  const prune = async (dir: string) => {
    while (dir.startsWith(base + path.sep)) {
      try {
        await rmdir(dir);
      } catch {
        return;
      }
      dir = path.dirname(dir);
    }
  };

  const driver: StorageDriver = {
    name: NAME,

    async getContent(key, signal) {
      signal?.throwIfAborted();
      try {
        return await readFile(fsPath(key), { signal });
      } catch (e) {
        throw mapError(key, e, ["ENOENT", "ENOTDIR", "EISDIR"]);
      }
    },

    async putContent(key, content, signal) {
      signal?.throwIfAborted();
      const p = fsPath(key);
      const dir = path.dirname(p);
      for (let attempt = 0; ; attempt++) {
        const tmp = path.join(dir, `~tmp~${path.basename(p)}~${randomBytes(8).toString("hex")}`);
        try {
          const fh = await inDir(dir, () => open(tmp, "wx"));
          try {
            await writeAll(fh, content, 0);
            await fh.datasync();
          } finally {
            await fh.close();
          }
          signal?.throwIfAborted();
          await rename(tmp, p);
          await syncDir(dir);
          return;
        } catch (e) {
          await unlink(tmp).catch(() => {});
          // A concurrent delete took the directory (and the temporary file) away: write again.
          if (errno(e) === "ENOENT" && attempt < ATTEMPTS) continue;
          throw mapError(key, e, []);
        }
      }
    },

    async reader(key, opts: ReadOptions = {}) {
      const { signal } = opts;
      signal?.throwIfAborted();
      const offset = opts.offset ?? 0;
      if (!Number.isSafeInteger(offset) || offset < 0) throw new RangeError(`invalid offset ${offset}`);
      if (opts.length !== undefined && (!Number.isSafeInteger(opts.length) || opts.length < 0)) throw new RangeError(`invalid length ${opts.length}`);
      let fh: FileHandle;
      try {
        fh = await open(fsPath(key), "r");
      } catch (e) {
        throw mapError(key, e);
      }
      let size: number;
      try {
        const st = await fh.stat();
        if (st.isDirectory()) throw new PathNotFoundError(NAME, key);
        size = st.size;
        signal?.throwIfAborted();
      } catch (e) {
        await fh.close();
        throw mapError(key, e);
      }
      if (offset >= size || opts.length === 0) {
        await fh.close();
        return emptyStream();
      }
      const end = opts.length === undefined ? size - 1 : Math.min(size, offset + opts.length) - 1;
      return createReadStream("", { fd: fh, start: offset, end, signal, highWaterMark: READ_CHUNK });
    },

    async writer(key, opts: WriterOptions = {}) {
      opts.signal?.throwIfAborted();
      const p = fsPath(key);
      const partial = partialOf(p);
      try {
        if (opts.append) {
          const fh = await open(partial, "r+");
          try {
            const { size } = await fh.stat();
            return new FsWriter(key, p, partial, fh, size, opts.signal, prune);
          } catch (e) {
            await fh.close();
            throw e;
          }
        }
        const fh = await inDir(path.dirname(p), () => open(partial, "w"));
        return new FsWriter(key, p, partial, fh, 0, opts.signal, prune);
      } catch (e) {
        throw mapError(key, e, opts.append ? ["ENOENT", "ENOTDIR"] : []);
      }
    },

    async stat(key, signal): Promise<FileInfo> {
      signal?.throwIfAborted();
      try {
        const st = await stat(fsPath(key));
        const isDir = st.isDirectory();
        return { path: key, size: isDir ? 0 : st.size, modTime: st.mtime, isDir };
      } catch (e) {
        throw mapError(key, e);
      }
    },

    async list(key, opts: ListOptions = {}): Promise<ListResult> {
      opts.signal?.throwIfAborted();
      let names: string[];
      try {
        names = await readdir(fsPath(key));
      } catch (e) {
        throw mapError(key, e);
      }
      // Visible names are ASCII, so UTF-16 code unit order is byte order.
      const all = names
        .filter((n) => VISIBLE.test(n))
        .map((n) => `${key}/${n}`)
        .sort();
      return listPage(all, opts);
    },

    async move(source, dest, signal) {
      signal?.throwIfAborted();
      const src = fsPath(source);
      const dst = fsPath(dest);
      try {
        await lstat(src);
      } catch (e) {
        throw mapError(source, e);
      }
      if (src === dst) return;
      if (dst.startsWith(src + path.sep)) throw new StorageError(NAME, dest, "cannot move a key below itself");
      const dstDir = path.dirname(dst);
      try {
        try {
          await inDir(dstDir, () => rename(src, dst));
        } catch (e) {
          // A directory (or a file over a directory) cannot be renamed over: replace it.
          if (!["ENOTEMPTY", "EEXIST", "EISDIR", "ENOTDIR"].includes(errno(e) ?? "")) throw e;
          await rm(dst, { recursive: true, force: true });
          await inDir(dstDir, () => rename(src, dst));
        }
        await syncDir(dstDir);
      } catch (e) {
        throw mapError(source, e, ["ENOENT"]);
      }
      if (path.dirname(src) !== dstDir) await prune(path.dirname(src));
    },

    async delete(key, signal) {
      signal?.throwIfAborted();
      const p = fsPath(key);
      const trash = path.join(path.dirname(p), `~del~${path.basename(p)}~${randomBytes(8).toString("hex")}`);
      try {
        await rename(p, trash);
      } catch (e) {
        throw mapError(key, e);
      }
      try {
        await rm(trash, { recursive: true, force: true });
      } catch (e) {
        throw mapError(key, e, []);
      }
      await prune(path.dirname(p));
    },
  };
  return checkedDriver(driver);
}

/**
 * Writes to the key's partial file at explicit positions. Chunks below DIRECT bytes are copied
 * into a staging buffer and written a megabyte at a time; larger ones go straight to the file.
 * Nothing is synced until close() or commit().
 */
/** Bytes between background flushes of written data to disk (so commit's final sync is short). */
const SYNC_EVERY = 32 * 1024 * 1024;

/**
 * Writes are pipelined: a full staging buffer is handed to the kernel while the next one fills
 * (two buffers, at most one write in flight), and every SYNC_EVERY bytes a datasync starts in
 * the background so that disk writeback overlaps with receiving. Errors of background work
 * surface at the next write, close or commit.
 */
class FsWriter implements FileWriter {
  #fh: FileHandle;
  /** Bytes handed to the kernel (written or in flight). */
  #written: number;
  #stage: Buffer | undefined;
  #spare: Buffer | undefined;
  #staged = 0;
  #done = false;
  #inflight: Promise<void> | undefined;
  #syncing: Promise<void> | undefined;
  #sinceSync = 0;
  #error: unknown;

  constructor(
    readonly key: string,
    readonly target: string,
    readonly partial: string,
    fh: FileHandle,
    written: number,
    readonly signal: AbortSignal | undefined,
    readonly prune: (dir: string) => Promise<void>,
  ) {
    this.#fh = fh;
    this.#written = written;
  }

  get size(): number {
    return this.#written + this.#staged;
  }

  #live(): void {
    if (this.#done) throw new StorageError(NAME, this.key, "writer already closed");
    if (this.#error !== undefined) throw mapError(this.key, this.#error, []);
  }

  /** Waits for the write in flight; rethrows its error. */
  async #settle(): Promise<void> {
    if (this.#inflight) {
      const p = this.#inflight;
      this.#inflight = undefined;
      await p;
    }
    if (this.#error !== undefined) throw this.#error;
  }

  /** Hands the full staging buffer to the kernel (after the previous write settled) and swaps in the spare. */
  async #rotate(): Promise<void> {
    await this.#settle();
    const buf = this.#stage!;
    const full = buf.subarray(0, this.#staged);
    this.#stage = this.#spare;
    this.#spare = undefined;
    this.#staged = 0;
    this.#issue(full, () => {
      this.#spare = buf;
    });
  }

  /** Starts writing `data` at the current end; the previous write must have settled. */
  #issue(data: Buffer, onDone?: () => void): void {
    const at = this.#written;
    this.#written += data.byteLength;
    this.#sinceSync += data.byteLength;
    this.#inflight = writeAll(this.#fh, data, at).then(
      () => {
        onDone?.();
        if (this.#sinceSync >= SYNC_EVERY && !this.#syncing) {
          this.#sinceSync = 0;
          this.#syncing = this.#fh.datasync().then(
            () => {
              this.#syncing = undefined;
            },
            (e) => {
              this.#syncing = undefined;
              this.#error ??= e;
            },
          );
        }
      },
      (e) => {
        this.#error ??= e;
      },
    );
  }

  async #flush(): Promise<void> {
    if (this.#staged > 0) await this.#rotate();
    await this.#settle();
    await this.#syncing;
    if (this.#error !== undefined) throw this.#error;
  }

  async write(chunk: Uint8Array): Promise<void> {
    this.#live();
    this.signal?.throwIfAborted();
    const n = chunk.byteLength;
    try {
      if (n >= DIRECT) {
        await this.#flush();
        await writeAll(this.#fh, chunk, this.#written);
        this.#written += n;
        return;
      }
      if (this.#staged + n > STAGE) await this.#rotate();
      this.#stage ??= Buffer.allocUnsafe(STAGE);
      this.#stage.set(chunk, this.#staged);
      this.#staged += n;
    } catch (e) {
      throw mapError(this.key, e, []);
    }
  }

  async close(): Promise<void> {
    this.#live();
    this.#done = true;
    try {
      await this.#flush();
      await this.#fh.datasync();
    } catch (e) {
      throw mapError(this.key, e, []);
    } finally {
      await this.#fh.close();
    }
  }

  async commit(): Promise<void> {
    this.#live();
    this.signal?.throwIfAborted();
    this.#done = true;
    try {
      try {
        await this.#flush();
        await this.#fh.datasync();
      } finally {
        await this.#fh.close();
      }
      await rename(this.partial, this.target);
      await syncDir(path.dirname(this.target));
    } catch (e) {
      throw mapError(this.key, e, []);
    }
  }

  async cancel(): Promise<void> {
    const wasOpen = !this.#done;
    this.#done = true;
    await this.#inflight?.catch(() => {});
    await this.#syncing?.catch(() => {});
    if (wasOpen) await this.#fh.close().catch(() => {});
    try {
      await rm(this.partial, { force: true });
    } catch (e) {
      throw mapError(this.key, e, []);
    }
    await this.prune(path.dirname(this.target));
  }
}
