// Synchronous gzip decoding into one reused output buffer (the addon's zlib inflate), for the
// layer pipeline in worker threads: no allocation per chunk and no thread-pool round trip, where
// node:zlib's streams allocate a fresh output buffer for every chunk.
// Accepts what Node's gunzip accepts: one or more concatenated gzip members, optionally
// followed by zero bytes (padding); any other trailing byte is an error, as is input that ends
// inside a member. zlib checks each member's CRC-32 and length.
import { type InflateHandle, inflater } from "../native.js";

const OUT_SIZE = 1024 * 1024;

export class GzipFormatError extends Error {
  constructor(message: string, readonly code = "Z_DATA_ERROR") {
    super(message);
    this.name = "GzipFormatError";
  }
}

export class GzipDecoder {
  private readonly z = inflater();
  private readonly h: InflateHandle = this.z.inflateCreate();
  private readonly res = new Float64Array(3);
  private readonly out = Buffer.allocUnsafeSlow(OUT_SIZE);
  private fill = 0;
  private started = false;
  private memberEnded = false;
  private padding = false;

  /**
   * Decodes `input`, yielding views of the output buffer: each is valid only until the
   * generator is resumed (the buffer is then refilled).
   */
  *decode(input: Uint8Array): Generator<Buffer> {
    let off = 0;
    while (off < input.length) {
      if (this.memberEnded) {
        if (this.padding || input[off] === 0) {
          for (let i = off; i < input.length; i++) if (input[i] !== 0) throw new GzipFormatError("gzip: unexpected data after the end of the stream");
          this.padding = true;
          break;
        }
        this.z.inflateReset(this.h);
        this.memberEnded = false;
      }
      try {
        this.z.inflateStep(this.h, input, off, this.out, this.fill, this.res);
      } catch (e) {
        const err = e as Error & { code?: string };
        throw new GzipFormatError(err.message, err.code);
      }
      const [used, produced, ended] = this.res;
      this.started = true;
      off += used;
      this.fill += produced;
      if (ended) this.memberEnded = true;
      if (this.fill === OUT_SIZE) {
        this.fill = 0;
        yield this.out;
      } else if (used === 0 && produced === 0 && !ended) {
        throw new GzipFormatError("gzip: decoder made no progress");
      }
    }
    if (this.fill > 0) {
      const n = this.fill;
      this.fill = 0;
      yield this.out.subarray(0, n);
    }
  }

  /** Call at the end of the input: throws when it ended inside a gzip member (or was empty). */
  end(): void {
    if (!this.started || !this.memberEnded) throw new GzipFormatError("gzip: unexpected end of file", "Z_BUF_ERROR");
  }
}
