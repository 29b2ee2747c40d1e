/**
 * File helpers of the transports: blobs written through a temp file (verified while written,
 * fsynced, renamed into place), bounded reads, and streams checked against a digest and size.
 */
import { randomBytes } from "node:crypto";
import { createReadStream, type ReadStream } from "node:fs";
import { type FileHandle, open, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { Readable, Transform, type TransformCallback, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { type Digest, SizeMismatchError, Verifier } from "@strata/core";

/**
 * On a `verifying` stream: what it checks its bytes against. A consumer that would verify the
 * same digest again may rely on it instead (the stream fails before its end on a mismatch).
 */
export const VERIFIED_AS = Symbol("strata.verifiedAs");

/** Largest manifest, index, config or archive manifest.json read into memory. */
export const MAX_METADATA_BYTES = 16 * 1024 * 1024;

/**
 * A stream checked against `digest` (and `size` when >= 0): fails before its end when the content
 * differs. `describe` turns the verifier's error into the message the user sees.
 */
export function verifying(opts: { digest?: Digest; size?: number }, describe?: (e: Error) => Error): Transform & { readonly digest: Digest | undefined; readonly bytes: number } {
  const v = new Verifier({ digest: opts.digest, size: opts.size !== undefined && opts.size >= 0 ? opts.size : undefined });
  let result: Digest | undefined;
  const t = new Transform({
    transform(chunk: Buffer, _e, cb: TransformCallback) {
      try {
        v.update(chunk);
      } catch (e) {
        cb(describe ? describe(e as Error) : (e as Error));
        return;
      }
      cb(null, chunk);
    },
    flush(cb) {
      try {
        result = v.end();
      } catch (e) {
        cb(describe ? describe(e as Error) : (e as Error));
        return;
      }
      cb();
    },
  });
  Object.defineProperty(t, "digest", { get: () => result });
  Object.defineProperty(t, VERIFIED_AS, { value: { digest: opts.digest, size: opts.size !== undefined && opts.size >= 0 ? opts.size : undefined } });
  Object.defineProperty(t, "bytes", { get: () => v.bytes });
  return t as Transform & { readonly digest: Digest | undefined; readonly bytes: number };
}

/**
 * Whether `data` is a `verifying` stream for `expect.digest` (and for `expect.size` when that is
 * given): it then fails before its end unless its bytes are exactly those.
 */
export function alreadyVerified(data: Readable, expect: { digest?: Digest; size?: number }): boolean {
  const v = (data as { [VERIFIED_AS]?: { digest?: Digest; size?: number } })[VERIFIED_AS];
  if (!v || expect.digest === undefined || v.digest !== expect.digest) return false;
  const size = expect.size !== undefined && expect.size >= 0 ? expect.size : undefined;
  return size === undefined || v.size === size;
}

/**
 * The check for bytes read from `data` that must match `expect`: a verifier, or, when `data` is
 * itself a verifying stream for the same digest (it fails before its end otherwise), a count of
 * the bytes only (no second hash).
 */
export function checkFor(data: Readable, expect: { digest?: Digest; size?: number }): Transform & { readonly digest: Digest | undefined; readonly bytes: number } {
  return expect.digest && alreadyVerified(data, expect) ? counting(expect.digest, expect.size) : verifying(expect);
}

/** Passes bytes through, failing when they are more or fewer than `size` (when >= 0). */
function counting(digest: Digest, size: number | undefined): Transform & { readonly digest: Digest; readonly bytes: number } {
  let n = 0;
  const limit = size !== undefined && size >= 0 ? size : undefined;
  const t = new Transform({
    transform(chunk: Buffer, _e, cb: TransformCallback) {
      n += chunk.length;
      if (limit !== undefined && n > limit) cb(new SizeMismatchError(limit, n, true));
      else cb(null, chunk);
    },
    flush(cb) {
      cb(limit !== undefined && n !== limit ? new SizeMismatchError(limit, n, false) : null);
    },
  });
  Object.defineProperty(t, "digest", { get: () => digest });
  Object.defineProperty(t, "bytes", { get: () => n });
  return t as Transform & { readonly digest: Digest; readonly bytes: number };
}

/** Reads a whole stream, failing once it passes `max` bytes. */
export async function readBounded(stream: Readable, max: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of stream) {
    n += (c as Buffer).length;
    if (n > max) {
      stream.destroy();
      throw new Error(`${what} is larger than ${max} bytes`);
    }
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

/** A byte range of a file as a stream (`end` exclusive). */
export function fileRange(path: string, start: number, end: number): ReadStream | Readable {
  if (end <= start) return Readable.from([]);
  return createReadStream(path, { start, end: end - 1, highWaterMark: 1 << 20 });
}

/**
 * Writes `data` into `dir` as a temp file, verifying it on the way (digest and size when
 * expected, else computing the digest) and hands back its path and digest. The caller renames it
 * into place (or removes it); on any failure the temp file is gone. With `sync` the file is
 * fsynced before this resolves; without, the caller makes it durable later (one syncfs of the
 * filesystem before anything refers to it).
 */
export async function writeVerifiedTemp(dir: string, data: Readable, expect: { digest?: Digest; size?: number }, opts: { sync: boolean }): Promise<{ tmp: string; digest: Digest; size: number }> {
  const tmp = join(dir, `.strata-tmp-${process.pid}-${randomBytes(6).toString("hex")}`);
  const fh = await open(tmp, "wx", 0o644);
  const check = checkFor(data, expect);
  try {
    await pipeline(data, check, fileSink(fh, opts.sync));
    await fh.close();
  } catch (e) {
    await fh.close().catch(() => {});
    await rm(tmp, { force: true });
    throw e;
  }
  return { tmp, digest: check.digest as Digest, size: check.bytes };
}

/** A Writable into an open file handle; with `sync` it fsyncs the file before it finishes (the handle stays open). */
export function fileSink(fh: FileHandle, sync = true): Writable {
  return new Writable({
    highWaterMark: 1 << 20,
    writev(chunks, cb) {
      fh.writev(chunks.map((c) => c.chunk as Buffer)).then(
        () => cb(),
        (e) => cb(e),
      );
    },
    final(cb) {
      if (!sync) {
        cb();
        return;
      }
      fh.sync().then(
        () => cb(),
        (e) => cb(e),
      );
    },
  });
}

/** Renames a verified temp file to `path`. */
export async function placeFile(tmp: string, path: string): Promise<void> {
  await rename(tmp, path);
}
