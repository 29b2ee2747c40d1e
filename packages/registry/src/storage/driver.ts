/**
 * The storage driver contract. A driver stores opaque byte objects under slash-separated
 * keys and knows nothing about registries; keys come only from `paths.ts`.
 *
 * Keys: absolute, "/"-separated, components of [A-Za-z0-9._-] (no empty, "." or ".."
 * component), e.g. "/v2/blobs/sha256/ab/ab12.../data". Every driver is wrapped by
 * `checkedDriver` (base.ts) which rejects other keys, so drivers only do raw I/O.
 *
 * Contracts every driver honours (checked by the shared conformance suite):
 * - `getContent`/`reader` of a missing key throw PathNotFoundError; never an empty result.
 * - `putContent` is atomic: a concurrent reader sees the old content or the new, never a mix.
 * - A writer's data is readable at its key only after `commit()`. `close()` without commit
 *   keeps what was written so that `writer(key, {append: true})` can continue from `size`.
 *   `cancel()` removes everything the writer (and earlier appended writers) wrote.
 * - `move` is atomic for readers of the destination, replaces an existing destination, and
 *   removes the source.
 * - `list` returns the direct children of a "directory" key as full keys, sorted by byte
 *   order, paginated with `after` (exclusive) and `limit`; a missing key throws PathNotFoundError.
 * - `delete` removes a key and everything below it; a missing key throws PathNotFoundError.
 * - Every operation honours its AbortSignal where one is given.
 */
import type { FileHandle } from "node:fs/promises";
import type { Readable } from "node:stream";

export interface FileInfo {
  readonly path: string;
  /** Bytes; 0 for directories. */
  readonly size: number;
  readonly modTime: Date;
  readonly isDir: boolean;
}

export interface ReadOptions {
  /** First byte to read (default 0). Reading at or past the end yields an empty stream. */
  readonly offset?: number;
  /** Maximum number of bytes to read (default: to the end). */
  readonly length?: number;
  readonly signal?: AbortSignal;
}

export interface WriterOptions {
  /** Continue a writer that was closed without commit. */
  readonly append?: boolean;
  /**
   * The exact number of bytes that will be written, when known. A driver may then stream the
   * content in one request; such a writer cannot be resumed (close() fails). Ignored with append.
   */
  readonly size?: number;
  /**
   * How many bytes this session is expected to write (a chunk's Content-Length), when known.
   * A hint only: a driver may skip work that a session ending sooner would waste.
   */
  readonly expect?: number;
  readonly signal?: AbortSignal;
}

export interface ListOptions {
  /** Return only children whose key sorts strictly after this full key. */
  readonly after?: string;
  /** At most this many keys. */
  readonly limit?: number;
  readonly signal?: AbortSignal;
}

export interface ListResult {
  readonly keys: string[];
  /** Whether more children follow the last returned key. */
  readonly truncated: boolean;
}

/** One page of `sorted` (all children, in byte order) as `list` returns it for `opts`. */
export function listPage(sorted: readonly string[], opts: Pick<ListOptions, "after" | "limit">): ListResult {
  const after = opts.after;
  const rest = after === undefined ? sorted : sorted.filter((k) => k > after);
  const limit = opts.limit ?? rest.length;
  return { keys: rest.slice(0, limit), truncated: rest.length > limit };
}

export interface CommitToOptions {
  /** Resolves true when the content must not be published after all (see FileWriter.commitTo). */
  readonly unless?: Promise<boolean>;
}

/** A resumable writer. Methods must not be called concurrently. */
export interface FileWriter {
  /** Bytes written so far, including earlier appended sessions. */
  readonly size: number;
  /**
   * Appends `chunk`. The writer may keep a reference to it until it is committed, closed or
   * cancelled (no defensive copy on the hot path): callers must not modify a chunk once passed.
   */
  write(chunk: Uint8Array): Promise<void>;
  /** Persists what was written without publishing it; the writer is unusable afterwards. */
  close(): Promise<void>;
  /** Makes the content readable at the key (durably); the writer is unusable afterwards. */
  commit(): Promise<void>;
  /** Discards everything written; the writer is unusable afterwards. */
  cancel(): Promise<void>;
  /**
   * Optional (drivers that can do it cheaper than commit() + move()): makes the content
   * readable at `dest` instead of the writer's key, replacing what `dest` held; the writer's key
   * holds nothing afterwards, and the writer is unusable. Nothing is readable at `dest` before
   * all of the content is. After a failure or a crash at any point, the content is either whole
   * at `dest`, or where commit() or the last close() left it at the writer's key (so that
   * `writer(key, {append: true})` resumes it, or finds it committed there): never lost, never
   * partial. With `unless`, whose answer the driver may await while it prepares the commit:
   * when it resolves true, the content is discarded instead (as by cancel()), `dest` keeps what
   * it held, and commitTo resolves false; otherwise it resolves true once published.
   */
  commitTo?(dest: string, opts?: CommitToOptions): Promise<boolean>;
}

/**
 * A key's file held open (local-file drivers only), for zero-copy sending. `identity` names
 * the exact file version: device, inode, size, modification and change time in nanoseconds;
 * any write, truncation or replacement of the file changes it.
 */
export interface LocalFile {
  readonly handle: FileHandle;
  readonly size: number;
  readonly identity: string;
  /** The identity of the open file now (undefined once it is no regular file). */
  identify(): Promise<string | undefined>;
}

/**
 * A key's whole content from an object store, with the identity of the object version it comes
 * from (undefined when the store gave none): a rewrite of the object gives it another identity
 * (services/verified.ts states what that is trusted for).
 */
export interface ObjectRead {
  /** The content, buffered ahead and its errors classified (created on first access). */
  readonly stream: Readable;
  /**
   * The store's own response body, nothing read from it, for a caller that sends it on
   * unchanged (http/relay.ts) instead of reading `stream`: a caller takes one of the two.
   */
  readonly response?: Readable;
  /** The size the store announced for the version. */
  readonly size: number;
  readonly identity: string | undefined;
}

export interface StorageDriver {
  readonly name: string;
  getContent(key: string, signal?: AbortSignal): Promise<Buffer>;
  putContent(key: string, content: Uint8Array, signal?: AbortSignal): Promise<void>;
  reader(key: string, opts?: ReadOptions): Promise<Readable>;
  writer(key: string, opts?: WriterOptions): Promise<FileWriter>;
  stat(key: string, signal?: AbortSignal): Promise<FileInfo>;
  list(key: string, opts?: ListOptions): Promise<ListResult>;
  move(source: string, dest: string, signal?: AbortSignal): Promise<void>;
  delete(key: string, signal?: AbortSignal): Promise<void>;
  /** A URL a client may fetch the key from directly, or undefined when the driver has none. */
  redirectURL?(key: string, opts: { method: "GET" | "HEAD"; expiresInSeconds: number }): Promise<string | undefined>;
  /** Local-file drivers: opens the key's file for reading (PathNotFoundError when missing); the caller closes `handle`. */
  openFile?(key: string, signal?: AbortSignal): Promise<LocalFile>;
  /** Object-store drivers: reads the key's whole content with its version's identity (PathNotFoundError when missing). */
  readObject?(key: string, signal?: AbortSignal): Promise<ObjectRead>;
  /** Object-store drivers: the identity `readObject` would report for the key now (undefined when missing or unknown). */
  identify?(key: string, signal?: AbortSignal): Promise<string | undefined>;
  /** Releases connections and handles. */
  close?(): Promise<void>;
}

export class StorageError extends Error {
  constructor(
    readonly driver: string,
    readonly key: string,
    message: string,
    opts?: { cause?: unknown },
  ) {
    super(`${driver}: ${message}: ${key}`, opts);
    this.name = "StorageError";
  }
}

export class PathNotFoundError extends StorageError {
  constructor(driver: string, key: string) {
    super(driver, key, "path not found");
    this.name = "PathNotFoundError";
  }
}

export class InvalidPathError extends StorageError {
  constructor(driver: string, key: string) {
    super(driver, key, "invalid path");
    this.name = "InvalidPathError";
  }
}

/** The backing service could not be reached or failed (maps to 503). */
export class StorageUnavailableError extends StorageError {
  constructor(driver: string, key: string, message: string, opts?: { cause?: unknown }) {
    super(driver, key, message, opts);
    this.name = "StorageUnavailableError";
  }
}

/** The backing store has no space (or quota) left for a write (ENOSPC, EDQUOT). */
export class StorageFullError extends StorageError {
  constructor(driver: string, key: string, opts?: { cause?: unknown }) {
    super(driver, key, "storage full", opts);
    this.name = "StorageFullError";
  }
}

export function isNotFound(e: unknown): e is PathNotFoundError {
  return e instanceof PathNotFoundError;
}
