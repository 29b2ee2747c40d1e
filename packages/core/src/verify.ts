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

/**
 * The synchronous core of verification: `update` each chunk (throws SizeMismatchError as soon as
 * the bound is passed), then `end` (throws on a short or different content, returns the digest).
 */
export class Verifier {
  private readonly digester;
  private count = 0;
  private readonly limit: number | undefined;

  constructor(private readonly opts: VerifierOptions) {
    this.digester = createDigester(opts.digest ? digestAlgorithm(opts.digest) : (opts.algorithm ?? "sha256"));
    this.limit = opts.size !== undefined && opts.size >= 0 ? opts.size : opts.maxSize;
  }

  /** Bytes seen so far. */
  get bytes(): number {
    return this.count;
  }

  update(chunk: Uint8Array): void {
    this.count += chunk.length;
    if (this.limit !== undefined && this.count > this.limit) throw new SizeMismatchError(this.limit, this.count, true);
    this.digester.update(chunk);
  }

  end(): Digest {
    if (this.opts.size !== undefined && this.opts.size >= 0 && this.count !== this.opts.size) throw new SizeMismatchError(this.opts.size, this.count, false);
    const actual = this.digester.digest();
    if (this.opts.digest && actual !== this.opts.digest) throw new DigestMismatchError(this.opts.digest, actual);
    return actual;
  }
}

export class VerifyingStream extends Transform {
  private readonly verifier: Verifier;
  private result: Digest | undefined;

  constructor(opts: VerifierOptions) {
    super();
    this.verifier = new Verifier(opts);
  }

  /** Bytes seen so far. */
  get bytes(): number {
    return this.verifier.bytes;
  }

  /** The computed digest; available after the stream ended successfully. */
  get digest(): Digest {
    if (!this.result) throw new Error("digest not available before the stream ends");
    return this.result;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      this.verifier.update(chunk);
    } catch (e) {
      cb(e as Error);
      return;
    }
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    try {
      this.result = this.verifier.end();
    } catch (e) {
      cb(e as Error);
      return;
    }
    cb();
  }
}

export function createVerifier(opts: VerifierOptions): VerifyingStream {
  return new VerifyingStream(opts);
}
