/**
 * Verified versions: the stored version of each blob whose bytes were last proven to match the
 * blob's digest, so that serving that same version again needs no hashing.
 *
 * What it saves: SHA-256 of every byte of a whole-blob GET, on the event loop next to the socket
 * I/O. Local files then go out zero-copy (http/sendfile.ts); object-store (S3) bodies go out
 * without hashing, relayed natively where the connections allow (http/relay.ts). Measured on a shared 2-core machine (load average 12-17; registry in S3 mode,
 * Swift s3api on loopback, 256 MiB blob): CPU time of the registry per GET 0.37-0.57 s -> 0.25-0.31 s
 * (the hash was about a third of it); `STRATA_BENCH_S3_ONLY=get npm run bench:s3`, before and
 * after alternating, 3 runs each: GET 0.40x (0.28-0.46) -> 0.65x (0.50-0.77) of raw GetObject.
 * What remains is mostly the socket write and major GCs driven by the socket read buffers.
 *
 * Contract. A version is recorded for a digest when the registry proved its bytes: a whole read
 * whose size and digest matched, or the publication of an upload whose bytes the registry itself
 * hashed while writing them (the version is asked from the store right after the write). A read
 * is served unhashed only while the store reports the very same version identity:
 * - local files: device, inode, size, modification and change time (storage/driver.ts LocalFile);
 * - object stores: object key (a pointer's physical object), ETag, size and Last-Modified of the
 *   object the GET answered with (storage/s3.ts). Every write of an object gives it a new
 *   Last-Modified and the ETag of its new content, so an object rewritten or replaced after its
 *   verification is hashed again on its next read.
 * Trusted: that the store returns the bytes of the version it names. Not trusted: the byte count,
 * which stays bounded: an unhashed body is cut (the response fails) at the first byte past the
 * blob's size and fails at its end when short (`sizeBound`). Not detected without hashing:
 * corruption that keeps a version's identity (bit rot under an unchanged ETag), and a writer with
 * access to the storage who forges another content of the same size and identity (for S3: same
 * MD5 ETag within the same second of Last-Modified); range reads were never hashed.
 *
 * Process memory only, at most `limit` digests, least recently used dropped first: another
 * replica, or this one after a restart, verifies a version again on its first whole read.
 */
import { type Readable, Transform, type TransformCallback } from "node:stream";
import { type Digest, SizeMismatchError } from "@strata/core";

export class VerifiedVersions {
  private readonly map = new Map<Digest, string>();
  constructor(private readonly limit = 50_000) {}

  /** Whether `identity` is the version last verified for `digest`; another identity forgets the entry. */
  matches(digest: Digest, identity: string): boolean {
    const known = this.map.get(digest);
    if (known === undefined) return false;
    this.map.delete(digest);
    if (known !== identity) return false;
    this.map.set(digest, known);
    return true;
  }

  add(digest: Digest, identity: string): void {
    this.map.delete(digest);
    this.map.set(digest, identity);
    if (this.map.size > this.limit) this.map.delete(this.map.keys().next().value!);
  }

  forget(digest: Digest): void {
    this.map.delete(digest);
  }
}

/** Passes exactly `size` bytes through: fails at the first byte past `size`, or at the end when short. */
class SizeBound extends Transform {
  private count = 0;

  constructor(private readonly size: number) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.count += chunk.length;
    if (this.count > this.size) cb(new SizeMismatchError(this.size, this.count, true));
    else cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    cb(this.count === this.size ? null : new SizeMismatchError(this.size, this.count, false));
  }
}

/** `src` bounded to exactly `size` bytes (see SizeBound); destroying the result releases `src`. */
export function sizeBound(src: Readable, size: number): Readable {
  const bound = new SizeBound(size);
  src.on("error", (e: Error) => bound.destroy(e));
  bound.once("close", () => src.destroy());
  return src.pipe(bound);
}
