/**
 * Memory for multipart parts, shared by every writer of one S3 driver. A writer gathers a
 * part's bytes in a buffer taken from here and gives it back once the part is uploaded (or
 * the writer ends), so all uploads of a process together hold at most `capacity` bytes of
 * parts. Beyond it `take` waits, and the waiting writer's client is slowed down by TCP
 * backpressure instead of growing the heap. Buffers of the base part size are reused (no
 * allocator churn); they are dropped after a while without uploads.
 *
 * A request is granted anyway once no buffer came back for `maxWaitMs`: buffers held by
 * uploads whose clients stall must not block every other upload (the memory bound then holds
 * for everything but those stalled uploads' parts). While buffers keep coming back (parts
 * finishing, however slowly) waiting goes on.
 */

interface Waiter {
  readonly size: number;
  readonly resolve: (b: Buffer) => void;
  /** Stops its timer and abort listener. */
  readonly settle: () => void;
}

export class PartBuffers {
  private used = 0;
  private readonly free: Buffer[] = [];
  private readonly waiters: Waiter[] = [];
  private trim: NodeJS.Timeout | undefined;
  /** When a buffer last came back (or the pool last had nothing out). */
  private lastGive = Date.now();

  constructor(
    readonly base: number,
    readonly capacity: number,
    private readonly maxWaitMs = 10_000,
    private readonly idleMs = 30_000,
  ) {}

  /** Bytes handed out and not given back. */
  get inUse(): number {
    return this.used;
  }

  /** A buffer of exactly `size` bytes (contents undefined), once the budget allows it. */
  take(size: number, signal?: AbortSignal): Promise<Buffer> {
    signal?.throwIfAborted();
    if (this.waiters.length === 0 && this.fits(size)) return Promise.resolve(this.grant(size));
    return new Promise<Buffer>((resolve, reject) => {
      const settle = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        const i = this.waiters.indexOf(w);
        if (i >= 0) this.waiters.splice(i, 1);
      };
      const w: Waiter = { size, resolve, settle };
      const expire = () => {
        const quiet = Date.now() - this.lastGive;
        if (quiet < this.maxWaitMs) {
          timer = setTimeout(expire, this.maxWaitMs - quiet);
          return;
        }
        settle();
        resolve(this.grant(size));
        this.wake();
      };
      let timer = setTimeout(expire, this.maxWaitMs);
      const onAbort = () => {
        settle();
        reject(signal!.reason);
        this.wake();
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.waiters.push(w);
    });
  }

  /** Returns a buffer from `take` (exactly once). */
  give(buf: Buffer): void {
    this.used -= buf.length;
    this.lastGive = Date.now();
    if (buf.length === this.base && (this.free.length + 1) * this.base <= this.capacity) this.free.push(buf);
    this.wake();
    if (this.used === 0 && this.free.length > 0 && !this.trim) {
      this.trim = setTimeout(() => {
        this.trim = undefined;
        if (this.used === 0) this.free.length = 0;
      }, this.idleMs);
      this.trim.unref();
    }
  }

  private fits(size: number): boolean {
    return this.used === 0 || this.used + size <= this.capacity;
  }

  private grant(size: number): Buffer {
    if (this.used === 0) this.lastGive = Date.now();
    this.used += size;
    return (size === this.base ? this.free.pop() : undefined) ?? Buffer.allocUnsafe(size);
  }

  private wake(): void {
    while (this.waiters.length > 0 && this.fits(this.waiters[0].size)) {
      const w = this.waiters[0];
      w.settle();
      w.resolve(this.grant(w.size));
    }
  }
}
