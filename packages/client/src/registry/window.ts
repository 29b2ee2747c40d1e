/**
 * An upload's resend window: at least the last `keep` bytes sent, so that a PATCH broken off can
 * be resumed from the registry's offset (registry/push.ts).
 *
 * A chunk the source will not touch again is kept by reference (no copy). A chunk of a source that
 * reuses its buffers (transports/chunks.ts) is copied into 1 MiB segments recycled across
 * uploads. Saves: what reused source buffers save (see chunks.ts) at the price of one memcpy
 * (57-132 ms of CPU-profile samples for 320 MiB under load ~9); without recycling the segments
 * would be fresh memory again.
 */

const SEGMENT = 1024 * 1024;
/** Segments no window uses (3 uploads' windows of 16 MiB), kept with their pages faulted in. */
const spare: Buffer[] = [];
const MAX_SPARE = 52;

interface Part {
  buf: Buffer;
  len: number;
  /** A recycled segment (owned), not a reference to the source's chunk. */
  owned: boolean;
}

export class ResendWindow {
  private readonly parts: Part[] = [];
  private bytes = 0;
  /** The blob offset of the first byte kept. */
  private from = 0;

  constructor(private readonly keep: number) {}

  /** Offset of the oldest byte still kept. */
  get start(): number {
    return this.from;
  }

  /** Adds the next bytes sent: by reference, or copied when the caller's buffer will be reused. */
  append(c: Buffer, copy: boolean): void {
    if (!copy) {
      this.parts.push({ buf: c, len: c.length, owned: false });
    } else {
      let at = 0;
      while (at < c.length) {
        let last = this.parts[this.parts.length - 1];
        if (!last || !last.owned || last.len === SEGMENT) {
          last = { buf: spare.pop() ?? Buffer.allocUnsafeSlow(SEGMENT), len: 0, owned: true };
          this.parts.push(last);
        }
        const n = Math.min(SEGMENT - last.len, c.length - at);
        c.copy(last.buf, last.len, at, at + n);
        last.len += n;
        at += n;
      }
    }
    this.bytes += c.length;
    while (this.parts.length > 1 && this.bytes - this.parts[0].len >= this.keep) {
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
    if (p.owned && spare.length < MAX_SPARE) spare.push(p.buf);
  }
}
