/**
 * An upload's resend window: at least the last `keep` bytes sent, so that a PATCH broken off can
 * be resumed from the registry's offset (registry/push.ts).
 *
 * A chunk the source will not touch again is kept by reference (no copy). A chunk of a source that
 * reuses its buffers is kept by reference too when its producer lends it (lease.ts: the file
 * reader and the registry client's bodies do), and given back when it leaves the window; any
 * other is copied into 1 MiB segments of the shared pool (lease.ts). Saves: what reused source
 * buffers save (see chunks.ts), without the memcpy into segments.
 */
import { giveBuffer, POOL_BUFFER, retain, takeBuffer } from "./lease.js";

const SEGMENT = POOL_BUFFER;

interface Part {
  buf: Buffer;
  len: number;
  /** A pooled segment (owned), not a reference to the source's chunk. */
  owned: boolean;
  /** Gives a lent chunk back to its producer. */
  release?: () => void;
}

export class ResendWindow {
  private readonly parts: Part[] = [];
  private bytes = 0;
  /** The blob offset of the first byte kept. */
  private from = 0;

  /** `keep`: the bytes to keep, or a function asked at each append (a share that changes). */
  constructor(private readonly keep: number | (() => number)) {}

  /** Offset of the oldest byte still kept. */
  get start(): number {
    return this.from;
  }

  /** Adds the next bytes sent: by reference, or copied when the caller's buffer will be reused. */
  append(c: Buffer, copy: boolean): void {
    const keep = typeof this.keep === "number" ? this.keep : this.keep();
    const release = copy ? retain(c) : undefined;
    if (!copy || release) {
      this.parts.push({ buf: c, len: c.length, owned: false, release });
    } else {
      let at = 0;
      while (at < c.length) {
        let last = this.parts[this.parts.length - 1];
        if (!last || !last.owned || last.len === SEGMENT) {
          last = { buf: takeBuffer(), len: 0, owned: true };
          this.parts.push(last);
        }
        const n = Math.min(SEGMENT - last.len, c.length - at);
        c.copy(last.buf, last.len, at, at + n);
        last.len += n;
        at += n;
      }
    }
    this.bytes += c.length;
    while (this.parts.length > 1 && this.bytes - this.parts[0].len >= keep) {
      const p = this.parts.shift()!;
      this.bytes -= p.len;
      this.from += p.len;
      this.recycle(p);
    }
  }

  /** The bytes kept from blob offset `offset` on (>= start), in order. Valid until the next append. */
  *since(offset: number): Generator<Buffer> {
    let at = this.from;
    for (const p of this.parts) {
      if (at + p.len > offset) yield p.buf.subarray(Math.max(0, offset - at), p.len);
      at += p.len;
    }
  }

  /** Gives the segments back; the window is empty afterwards. */
  release(): void {
    for (const p of this.parts.splice(0)) this.recycle(p);
    this.bytes = 0;
  }

  private recycle(p: Part): void {
    if (p.owned) giveBuffer(p.buf);
    p.release?.();
  }
}
