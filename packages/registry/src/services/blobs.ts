/**
 * Blobs: content stored once by digest, made visible per repository by a link.
 * A blob is readable through a repository only while that repository links it.
 *
 * The descriptor cache only saves storage round trips: while it is unreachable (Redis down)
 * lookups go to storage and cache writes are skipped, so blob reads keep working. Only
 * `unlink` needs it, to forget the entry before the link goes (else a stale entry could
 * report the blob after its removal), and fails with it.
 */
import type { Readable } from "node:stream";
import { createVerifier, type Digest, parseDigest } from "@strata/core";
import { BlobRangeError, UnavailableError, UnknownError } from "../errors.js";
import { isNotFound, type StorageDriver } from "../storage/driver.js";
import { pathFor } from "../storage/paths.js";
import type { DescriptorCache } from "./cache.js";

export interface BlobRange {
  /** Inclusive first byte. */
  start: number;
  /** Inclusive last byte. */
  end: number;
}

export class BlobStore {
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
   * end if storage returns other bytes than the digest names.
   */
  async open(digest: Digest, size: number, range?: BlobRange, signal?: AbortSignal): Promise<Readable> {
    if (range) {
      if (range.start > range.end || range.end >= size) throw new BlobRangeError(size);
      return this.driver.reader(pathFor({ kind: "blobData", digest }), { offset: range.start, length: range.end - range.start + 1, signal });
    }
    const src = await this.driver.reader(pathFor({ kind: "blobData", digest }), { signal });
    const verifier = createVerifier({ digest, size });
    src.on("error", (e) => verifier.destroy(e));
    // A client that goes away destroys the verifier: release the file or object-store socket too.
    verifier.once("close", () => src.destroy());
    return src.pipe(verifier);
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
