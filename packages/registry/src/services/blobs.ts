/**
 * Blobs: content stored once by digest, made visible per repository by a link.
 * A blob is readable through a repository only while that repository links it.
 *
 * The descriptor cache only saves storage round trips: while it is unreachable (Redis down)
 * lookups go to storage and cache writes are skipped, so blob reads keep working. Only
 * `unlink` needs it, to forget the entry before the link goes (else a stale entry could
 * report the blob after its removal), and fails with it.
 *
 * Every whole-blob read is digest-checked. On a driver with local files (filesystem) or object
 * versions (S3) the check is remembered per stored version (verified.ts): a blob verified once,
 * by a whole read or when its upload was published, is served again without hashing (a local
 * file zero-copy where the connection allows, see http/sendfile.ts) for as long as its identity
 * is unchanged; any change sends it through verification again.
 */
import type { FileHandle } from "node:fs/promises";
import { Readable, Transform, type TransformCallback } from "node:stream";
import { type Digest, parseDigest, Verifier } from "@strata/core";
import { BlobRangeError, UnavailableError, UnknownError } from "../errors.js";
import { isNotFound, type ObjectRead, type StorageDriver } from "../storage/driver.js";
import { pathFor } from "../storage/paths.js";
import type { DescriptorCache } from "./cache.js";
import { sizeBound, VerifiedVersions } from "./verified.js";

export interface BlobRange {
  /** Inclusive first byte. */
  start: number;
  /** Inclusive last byte. */
  end: number;
}

/** A byte range of a verified local blob file. */
export interface VerifiedFileRange {
  readonly handle: FileHandle;
  readonly start: number;
  readonly length: number;
  /** The file's identity when it was verified. */
  readonly identity: string;
  /** The open file's identity now; it must still equal `identity` for the bytes to be served. */
  readonly reidentify: () => Promise<string | undefined>;
}

/** An object-store response that goes to the client unchanged (a verified version, see `read`). */
export interface VerifiedResponse {
  /** The store's response body, nothing read from it yet. */
  readonly response: Readable;
  /** The blob's size, exactly what the client is sent. */
  readonly size: number;
  /** The body as a stream held to `size`, for when the response cannot be sent on natively. */
  fallback(): Readable;
}

/** What a blob GET sends: a (verifying) stream, a verified file range, or a verified object-store response. */
export type BlobBody =
  | { readonly stream: Readable; readonly file?: undefined; readonly response?: undefined }
  | { readonly file: VerifiedFileRange; readonly stream?: undefined; readonly response?: undefined }
  | { readonly response: VerifiedResponse; readonly stream?: undefined; readonly file?: undefined };

/**
 * Passes a blob's bytes through while verifying them, holding the last chunk back until the
 * digest and size are proven (then `onVerified` runs): a client never receives the whole of
 * content that does not match its digest.
 */
class HoldbackVerifier extends Transform {
  private readonly verifier: Verifier;
  private held: Buffer | undefined;

  constructor(
    digest: Digest,
    size: number,
    private readonly onVerified: () => Promise<void>,
  ) {
    super();
    this.verifier = new Verifier({ digest, size });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      this.verifier.update(chunk);
    } catch (e) {
      cb(e as Error);
      return;
    }
    const out = this.held;
    this.held = chunk;
    cb(null, out);
  }

  override _flush(cb: TransformCallback): void {
    try {
      this.verifier.end();
    } catch (e) {
      cb(e as Error);
      return;
    }
    this.onVerified().then(
      () => cb(null, this.held),
      (e: unknown) => cb(e as Error),
    );
  }
}

/** `src` verified (see HoldbackVerifier); destroying the result releases `src`. */
function verified(src: Readable, digest: Digest, size: number, onVerified: () => Promise<void> = async () => {}): Readable {
  const verifier = new HoldbackVerifier(digest, size, onVerified);
  src.on("error", (e) => verifier.destroy(e));
  // A client that goes away destroys the verifier: release the file or object-store socket too.
  verifier.once("close", () => src.destroy());
  return src.pipe(verifier);
}

export class BlobStore {
  readonly verifiedVersions = new VerifiedVersions();

  constructor(
    private readonly driver: StorageDriver,
    private readonly cache: DescriptorCache,
  ) {}

  /** Size of a stored blob regardless of repository, or undefined. */
  async globalSize(digest: Digest): Promise<number | undefined> {
    try {
      const info = await this.driver.stat(pathFor({ kind: "blobData", digest }));
      return info.isDir ? undefined : info.size;
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  /** Size of a blob linked into `repository`, or undefined when it is not linked there. */
  async sizeIn(repository: string, digest: Digest): Promise<number | undefined> {
    const cached = await bestEffort(this.cache.get(repository, digest));
    if (cached !== undefined) return cached;
    try {
      await this.driver.stat(pathFor({ kind: "layerLink", name: repository, digest }));
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
    const size = await this.globalSize(digest);
    if (size !== undefined) await bestEffort(this.cache.set(repository, digest, size));
    return size;
  }

  /** Like sizeIn but throws UnknownError("blob"). */
  async stat(repository: string, digest: Digest): Promise<number> {
    const size = await this.sizeIn(repository, digest);
    if (size === undefined) throw new UnknownError("blob", digest);
    return size;
  }

  /**
   * Reads a blob. A whole-blob read is verified while streaming: the stream fails before its
   * end if storage returns other bytes than the digest names. On a driver with object versions,
   * a version verified before (verified.ts) is only held to its size.
   */
  async open(digest: Digest, size: number, range?: BlobRange, signal?: AbortSignal): Promise<Readable> {
    const key = pathFor({ kind: "blobData", digest });
    if (range) {
      if (range.start > range.end || range.end >= size) throw new BlobRangeError(size);
      return this.driver.reader(key, { offset: range.start, length: range.end - range.start + 1, signal });
    }
    if (!this.driver.readObject) return verified(await this.driver.reader(key, { signal }), digest, size);
    return this.openedObject(await this.driver.readObject(key, signal), digest, size);
  }

  /** A whole object read, verified unless its version was verified before (then held to its size). */
  private openedObject(read: ObjectRead, digest: Digest, size: number): Readable {
    const { stream, identity } = read;
    if (identity === undefined) return verified(stream, digest, size);
    if (this.verifiedVersions.matches(digest, identity)) return sizeBound(stream, size);
    return verified(stream, digest, size, async () => this.verifiedVersions.add(digest, identity));
  }

  /**
   * The body of a blob GET. On a driver with local files: a file already verified (same
   * identity) is returned as a file range; otherwise its bytes stream from the same open file,
   * a whole read verified (and remembered as verified when it succeeds), a range read as is.
   * Other drivers: `open`.
   */
  async read(digest: Digest, size: number, range?: BlobRange, signal?: AbortSignal): Promise<BlobBody> {
    if (range && (range.start > range.end || range.end >= size)) throw new BlobRangeError(size);
    if (!this.driver.openFile) {
      if (range || !this.driver.readObject) return { stream: await this.open(digest, size, range, signal) };
      // A version verified before goes out as the store sent it (held to its size).
      const read = await this.driver.readObject(pathFor({ kind: "blobData", digest }), signal);
      if (read.identity !== undefined && read.response && this.verifiedVersions.matches(digest, read.identity)) {
        return { response: { response: read.response, size, fallback: () => sizeBound(read.stream, size) } };
      }
      return { stream: this.openedObject(read, digest, size) };
    }
    const file = await this.driver.openFile(pathFor({ kind: "blobData", digest }), signal);
    const start = range?.start ?? 0;
    const length = range ? range.end - range.start + 1 : size;
    if (file.size === size && this.verifiedVersions.matches(digest, file.identity)) {
      return { file: { handle: file.handle, start, length, identity: file.identity, reidentify: () => file.identify() } };
    }
    if (length === 0 || start >= file.size) {
      await file.handle.close();
      const empty = Readable.from([]);
      return { stream: range ? empty : verified(empty, digest, size) };
    }
    const src = file.handle.createReadStream({ start, end: start + length - 1, highWaterMark: 1024 * 1024, signal, autoClose: false });
    if (range) {
      src.once("close", () => void file.handle.close().catch(() => {}));
      return { stream: src };
    }
    const stream = verified(src, digest, size, async () => {
      // Remembered only if the file was not changed while it was read.
      if ((await file.identify()) === file.identity) this.verifiedVersions.add(digest, file.identity);
    });
    stream.once("close", () => void file.handle.close().catch(() => {}));
    return { stream };
  }

  /**
   * Records the stored version of a blob whose content was just verified (upload publication):
   * one HEAD (two for a pointer) on an object store, an open and fstat on local files.
   */
  async noteVerified(digest: Digest): Promise<void> {
    const key = pathFor({ kind: "blobData", digest });
    if (this.driver.identify) {
      const identity = await this.driver.identify(key);
      if (identity !== undefined) this.verifiedVersions.add(digest, identity);
      return;
    }
    if (!this.driver.openFile) return;
    const file = await this.driver.openFile(key);
    try {
      this.verifiedVersions.add(digest, file.identity);
    } finally {
      await file.handle.close();
    }
  }

  async redirectURL(digest: Digest, method: "GET" | "HEAD", expiresInSeconds: number): Promise<string | undefined> {
    return this.driver.redirectURL?.(pathFor({ kind: "blobData", digest }), { method, expiresInSeconds });
  }

  async link(repository: string, digest: Digest, size?: number): Promise<void> {
    await this.driver.putContent(pathFor({ kind: "layerLink", name: repository, digest }), Buffer.from(digest));
    if (size !== undefined) await bestEffort(this.cache.linked(repository, digest, size));
  }

  /** Removes the repository's link; throws UnknownError("blob") when there is none. */
  async unlink(repository: string, digest: Digest): Promise<void> {
    await this.cache.delete(repository, digest);
    try {
      await this.driver.delete(pathFor({ kind: "layerDir", name: repository, digest }));
    } catch (e) {
      if (isNotFound(e)) throw new UnknownError("blob", digest);
      throw e;
    } finally {
      await this.cache.delete(repository, digest);
    }
  }

  /** Stores small content (manifests) at its digest; a no-op when already stored. */
  async putSmall(digest: Digest, bytes: Buffer): Promise<void> {
    if ((await this.globalSize(digest)) === bytes.length) return;
    await this.driver.putContent(pathFor({ kind: "blobData", digest }), bytes);
  }

  async getSmall(digest: Digest): Promise<Buffer> {
    try {
      return await this.driver.getContent(pathFor({ kind: "blobData", digest }));
    } catch (e) {
      if (isNotFound(e)) throw new UnknownError("blob", digest);
      throw e;
    }
  }

  /** Reads a link file and parses the digest it holds. */
  static async readLink(driver: StorageDriver, key: string): Promise<Digest | undefined> {
    try {
      return parseDigest((await driver.getContent(key)).toString("utf8").trim());
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }
}

/** A cache operation whose failure to reach the cache is a miss (undefined), not an error. */
async function bestEffort<T>(op: Promise<T>): Promise<T | undefined> {
  try {
    return await op;
  } catch (e) {
    if (e instanceof UnavailableError) return undefined;
    throw e;
  }
}
