/**
 * Memory for multipart parts, shared by every writer of one S3 driver. A writer gathers a
 * part's bytes in a buffer taken from here and gives it back once the part is uploaded (or
 * the writer ends), so all uploads of a process together hold at most `capacity` bytes of
 * parts. Beyond it `take` waits, and the waiting writer's client is slowed down by TCP
 * backpressure instead of growing the heap. Given-back buffers are reused by requests of the
 * same size (no allocator churn, no fresh pages to fault in) as long as held and free buffers
 * together stay within `capacity`; they are dropped after a while without uploads.
 *
 * A request is granted anyway once no buffer came back for `maxWaitMs`: buffers held by
 * uploads whose clients stall must not block every other upload (the memory bound then holds
 * for everything but those stalled uploads' parts). While buffers keep coming back (parts
 * finishing, however slowly) waiting goes on.
 *
 * Part size follows concurrency (`partSize`): the capacity is shared out between the writers
 * that are filling parts (`join`), two parts each (one filling while the other uploads), so a
 * lone upload uses fewer, larger parts and many uploads fall back to `base`. What it saves: an
 * S3 request per part costs the object store far more than its bytes. Measured (Swift s3api,
 * 256 MiB chunked push through the registry, CPU of Swift's proxy and object server): 8 MiB
 * parts 1.50-1.96 s, 16 MiB 1.23-1.44 s, 32 MiB 1.15-1.42 s, one PutObject 0.95-1.15 s
 * (2-core test machine, load 6-7).
 *
 * Lone writer (`lonePart`): while one writer is joined and no other was for `quietMs`, the
 * limit is two parts of `lonePart` when that is above the capacity, so a single upload gets
 * the large parts without raising what many concurrent uploads may hold (uploads whose PATCHes
 * come one after another leave and join all the time; the quiet period keeps them on the
 * capacity). When a second writer joins, the limit falls back to the capacity plus one lone
 * part while lone parts are out: the newcomers wait (as any taker over the limit) until one of
 * the lone writer's large parts comes back, at most one part's upload, and not for the part it
 * is still filling (a slow client's). Free buffers beyond the limit go at the next take of
 * another size.
 * Measured (256 MiB streamed PATCH + PUT through `strata serve` on Swift s3api, best of 3
 * rounds against raw PutObject in the same rounds, interleaved pairs, load 1.4-2.4): 16 MiB
 * parts (the 32 MiB pool's share alone) 0.65-0.88x raw PutObject (medians 0.81 and 0.79 in two
 * series of 5 and 4 pairs), 32 MiB lone parts 0.81-0.95x (medians 0.86 and 0.86), better in 8
 * of 9 pairs. Kept buffers matter: dropping the large ones at each request's end (and faulting
 * fresh ones in at the next) cost 0.2-0.3 s more registry CPU per push (page faults in the copy
 * into the part, and collections). Memory (bench:s3 memory table, 8 concurrent 1 GiB uploads,
 * same machine, lone parts off -> on): streamed 167 -> 158-163 MB, chunked 178 -> 180-188 MB,
 * monolithic 195 -> 177-183 MB (bound 200 MB; one run each, run-to-run noise ~10 MB); with the
 * lone part's allowance for newcomers, 181, 186 and 187 MB (one run).
 *
 * A part's buffer comes back only when the store answered for the whole part, 50-70 ms after
 * its last byte with Swift, longer than a 16 MiB part takes to fill (~55 ms at 290 MB/s). With
 * two parts a lone upload's client therefore waits for a buffer: 210-280 ms per 256 MiB
 * streamed PATCH with 16 MiB parts (the 32 MiB pool without lone parts; parts sent while they
 * fill), 0-120 ms with a 48 MiB pool, which holds a third part: the push took 1.12-1.45 s
 * instead of 1.25-1.55 s (6 interleaved rounds each, load 1.7-2), yet CPU, not waiting, bounds
 * a push on a loaded machine: a third 16 MiB buffer gained nothing in 5 later pairs, where
 * fewer (32 MiB) parts did (above). The capacity stays 32 MiB for the memory bound: with 48 MiB,
 * 8 concurrent 1 GiB uploads peaked at 189 MB streamed, 200 MB chunked and 212 MB monolithic
 * (the pool keeps its buffers for reuse until idleMs) against 167, 178 and 194 MB with 32 MiB
 * (bound 200 MB). Pooled bytes are left out of the buffer governor's count (memory.ts,
 * pooledBufferBytes).
 */

export interface PartBuffersOptions {
  /** A request is granted anyway once no buffer came back for this long (default 10 s). */
  maxWaitMs?: number;
  /** Free buffers are dropped once the pool had nothing out for this long (default 30 s). */
  idleMs?: number;
  /** Part size a writer alone may use (two of them), above the capacity; 0 (default): none. */
  lonePart?: number;
  /** How long after two writers were last joined at once a writer counts as alone (default 1 s). */
  quietMs?: number;
}

/** Bytes held by every PartBuffers of the process (lent out or kept for reuse): live, never garbage. */
let pooled = 0;

/** What all part pools of this process hold (for the buffer governor, memory.ts). */
export function pooledBufferBytes(): number {
  return pooled;
}

interface Waiter {
  readonly size: number;
  readonly resolve: (b: Buffer) => void;
  /** Stops its timer and abort listener. */
  readonly settle: () => void;
}

export class PartBuffers {
  private used = 0;
  private readonly free: Buffer[] = [];
  private freeBytes = 0;
  private writers = 0;
  private readonly waiters: Waiter[] = [];
  private trim: NodeJS.Timeout | undefined;
  /** When a buffer last came back (or the pool last had nothing out). */
  private lastGive = Date.now();
  /** This pool's share of `pooled`. */
  private counted = 0;

  // PartBuffersOptions, defaults applied
  private readonly maxWaitMs: number;
  private readonly idleMs: number;
  readonly lonePart: number;
  private readonly quietMs: number;

  constructor(
    readonly base: number,
    readonly capacity: number,
    opts: PartBuffersOptions = {},
  ) {
    this.maxWaitMs = opts.maxWaitMs ?? 10_000;
    this.idleMs = opts.idleMs ?? 30_000;
    this.lonePart = opts.lonePart ?? 0;
    this.quietMs = opts.quietMs ?? 1000;
  }

  /** When two or more writers were last joined at once. */
  private lastCrowd = -Infinity;
  /** Buffers out that are larger than half the capacity (lone parts). */
  private bigOut = 0;

  /**
   * What the writers may hold now: two lone parts while one writer is joined and no other was
   * for `quietMs`; otherwise the capacity, plus one lone part while lone parts are out (a lone
   * writer's part that fills slowly does not hold the others back).
   */
  get limit(): number {
    return this.alone() ? this.loneLimit() : this.capacity + (this.bigOut > 0 ? this.lonePart : 0);
  }

  private alone(): boolean {
    return this.writers <= 1 && Date.now() - this.lastCrowd >= this.quietMs;
  }

  private loneLimit(): number {
    return Math.max(this.capacity, 2 * this.lonePart);
  }

  private isBig(size: number): boolean {
    return size > this.capacity / 2;
  }

  /** Bytes handed out and not given back. */
  get inUse(): number {
    return this.used;
  }

  /**
   * Counts a writer among those filling parts (see partSize) until the returned function is
   * called (at most once counts).
   */
  join(): () => void {
    this.writers++;
    if (this.writers > 1) this.lastCrowd = Date.now();
    let joined = true;
    return () => {
      if (!joined) return;
      joined = false;
      if (this.writers > 1) this.lastCrowd = Date.now();
      this.writers--;
      this.wake();
    };
  }

  /**
   * The part size for a writer now: `base` doubled while two parts for every joined writer
   * still fit in the capacity, or in two lone parts for a writer alone (at least `base`).
   */
  partSize(): number {
    const share = (this.alone() ? this.loneLimit() : this.capacity) / (2 * Math.max(1, this.writers));
    let size = this.base;
    while (size * 2 <= share) size *= 2;
    return size;
  }

  /** A buffer of exactly `size` bytes (contents undefined), once the budget allows it. */
  take(size: number, signal?: AbortSignal): Promise<Buffer> {
    signal?.throwIfAborted();
    if (this.waiters.length === 0 && this.fits(size)) {
      const buf = this.grant(size);
      this.account();
      return Promise.resolve(buf);
    }
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
        this.account();
      };
      let timer = setTimeout(expire, this.maxWaitMs);
      const onAbort = () => {
        settle();
        reject(signal!.reason);
        this.wake();
        this.account();
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.waiters.push(w);
    });
  }

  /** Returns a buffer from `take` (exactly once). */
  give(buf: Buffer): void {
    this.used -= buf.length;
    if (this.isBig(buf.length)) this.bigOut--;
    this.lastGive = Date.now();
    if (this.used + this.freeBytes + buf.length <= this.limit) {
      this.free.push(buf);
      this.freeBytes += buf.length;
    }
    this.wake();
    this.account();
    if (this.used === 0 && this.free.length > 0 && !this.trim) {
      this.trim = setTimeout(() => {
        this.trim = undefined;
        if (this.used === 0) this.dropFree();
      }, this.idleMs);
      this.trim.unref();
    }
  }

  private fits(size: number): boolean {
    return this.used === 0 || this.used + size <= this.limit;
  }

  private grant(size: number): Buffer {
    if (this.used === 0) this.lastGive = Date.now();
    this.used += size;
    if (this.isBig(size)) this.bigOut++;
    const i = this.free.findIndex((b) => b.length === size);
    if (i >= 0) {
      const [buf] = this.free.splice(i, 1);
      this.freeBytes -= size;
      return buf;
    }
    // Free buffers of other sizes go when they would push held + free memory over the limit.
    while (this.free.length > 0 && this.used + this.freeBytes > this.limit) this.freeBytes -= this.free.shift()!.length;
    return Buffer.allocUnsafe(size);
  }

  private dropFree(): void {
    this.free.length = 0;
    this.freeBytes = 0;
    this.account();
  }

  /** Brings `pooled` up to date with what this pool holds. */
  private account(): void {
    const held = this.used + this.freeBytes;
    pooled += held - this.counted;
    this.counted = held;
  }

  private wake(): void {
    while (this.waiters.length > 0 && this.fits(this.waiters[0].size)) {
      const w = this.waiters[0];
      w.settle();
      w.resolve(this.grant(w.size));
    }
  }
}
