/**
 * Streaming verification: a Transform that passes bytes through while hashing and counting,
 * and fails the stream *before it ends* when the size is exceeded or the digest differs.
 * A consumer that sees a clean end of stream has received exactly the expected content.
 */
import { Transform, type TransformCallback } from "node:stream";
import { createDigester, type Digest, type DigestAlgorithm, digestAlgorithm } from "./digest.js";

export class DigestMismatchError extends Error {
  constructor(
    readonly expected: Digest,
    readonly actual: Digest,
  ) {
    super(`digest mismatch: expected ${expected}, got ${actual}`);
    this.name = "DigestMismatchError";
  }
}

export class SizeMismatchError extends Error {
  constructor(
    readonly expected: number,
    readonly actual: number,
    readonly exceeded: boolean,
  ) {
    super(exceeded ? `content exceeds the expected size of ${expected} bytes` : `size mismatch: expected ${expected} bytes, got ${actual}`);
    this.name = "SizeMismatchError";
  }
}

export interface VerifierOptions {
  /** Expected digest; when absent only the size is checked and the digest is computed. */
  digest?: Digest;
  /** Expected exact size; -1 or undefined means unknown. */
  size?: number;
  /** Hard upper bound when the size is unknown. */
  maxSize?: number;
  /** Algorithm to use when `digest` is absent (default sha256). */
  algorithm?: DigestAlgorithm;
}

export class VerifyingStream extends Transform {
  private readonly digester;
  private count = 0;
  private result: Digest | undefined;

  constructor(private readonly opts: VerifierOptions) {
    super();
    this.digester = createDigester(opts.digest ? digestAlgorithm(opts.digest) : (opts.algorithm ?? "sha256"));
  }

  /** Bytes seen so far. */
  get bytes(): number {
    return this.count;
  }

  /** The computed digest; available after the stream ended successfully. */
  get digest(): Digest {
    if (!this.result) throw new Error("digest not available before the stream ends");
    return this.result;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.count += chunk.length;
    const limit = this.opts.size !== undefined && this.opts.size >= 0 ? this.opts.size : this.opts.maxSize;
    if (limit !== undefined && this.count > limit) {
      cb(new SizeMismatchError(limit, this.count, true));
      return;
    }
    this.digester.update(chunk);
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    if (this.opts.size !== undefined && this.opts.size >= 0 && this.count !== this.opts.size) {
      cb(new SizeMismatchError(this.opts.size, this.count, false));
      return;
    }
    const actual = this.digester.digest();
    if (this.opts.digest && actual !== this.opts.digest) {
      cb(new DigestMismatchError(this.opts.digest, actual));
      return;
    }
    this.result = actual;
    cb();
  }
}

export function createVerifier(opts: VerifierOptions): VerifyingStream {
  return new VerifyingStream(opts);
}
