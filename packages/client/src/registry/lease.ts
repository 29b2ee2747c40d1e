/**
 * The client's pool of 1 MiB I/O buffers and the lending of their chunks.
 *
 * Lending: a producer that reads into reused pool buffers (transports/chunks.ts `fileChunks`,
 * rawhttp.ts response bodies) lets a consumer keep a chunk past the iterator's next `next()`
 * (`retain`) and reads into another buffer until the consumer gives it back. The upload's resend
 * window (window.ts) keeps the last 16 MiB sent this way instead of copying every byte into
 * segments of its own. Saves a memcpy of every uploaded byte and ~8 MiB of RSS per copy:
 * `strata copy` CPU 1.10 -> 1.01 s (OCI layout -> registry), 1.06 -> 1.01 s (registry ->
 * registry), medians of 5 interleaved runs.
 *
 * Arenas: the buffers are cut from 8 MiB arenas of 2 MiB-aligned memory advised for transparent
 * huge pages (the client addon's `hugeArena`, native/src/hugepages.c; plain memory without the
 * addon), so the first touch of the ~100 MiB the windows and readers of a copy hold costs one page
 * fault per 2 MiB instead of one per 4 KiB (faults are expensive in this VM: 10% of the copy's
 * CPU samples were in exc_page_fault). `strata copy` page faults 30169 -> 7429, CPU 1.40 ->
 * 1.08 s (OCI layout -> registry), 1.46 -> 1.09 s (registry -> registry), medians of 3
 * interleaved runs.
 *
 * Figures: 5 x 64 MiB gzip layers to a fresh distribution 2.8 on loopback (the bench:push image),
 * 2 cores shared with other work at load 9-15; before both, CPU was 1.39 s and 1.60 s.
 *
 * Contract: `retain(chunk)` is called before the producer's next `next()`; it returns the
 * function that gives the chunk back (idempotent), or undefined when the chunk's producer does
 * not lend (then the caller copies it). A producer never writes into a buffer while a chunk of
 * it is retained. A chunk of a pool buffer never spans two of them.
 */
import { hugeArena } from "../native.js";

/** Size of the pooled buffers. */
export const POOL_BUFFER = 1024 * 1024;
/** Pool buffers per arena (4 huge pages). */
const PER_ARENA = 8;
/** Buffers kept for reuse (the windows of three uploads and their readers). */
const MAX_SPARE = 56;
const spare: Buffer[] = [];
/** The pool buffers cut from each arena, by slot (byteOffset / POOL_BUFFER). */
const arenas = new WeakMap<ArrayBufferLike, Buffer[]>();
/** The producer lending the chunks of each pool buffer. */
const lenders = new WeakMap<Buffer, Lender>();

function grow(): void {
  const ab = hugeArena(PER_ARENA * POOL_BUFFER) ?? Buffer.allocUnsafeSlow(PER_ARENA * POOL_BUFFER).buffer;
  const slots: Buffer[] = [];
  for (let i = 0; i < PER_ARENA; i++) slots.push(Buffer.from(ab, i * POOL_BUFFER, POOL_BUFFER));
  arenas.set(ab, slots);
  // taken lowest address first
  for (let i = PER_ARENA - 1; i >= 0; i--) spare.push(slots[i]);
}

/** Buffers taken and not given back. */
let out = 0;

/** A pool buffer (contents undefined). */
export function takeBuffer(): Buffer {
  if (spare.length === 0) grow();
  out++;
  return spare.pop()!;
}

/** Gives a buffer from `takeBuffer` back; the caller must not touch it afterwards. */
export function giveBuffer(b: Buffer): void {
  lenders.delete(b);
  if (spare.includes(b)) return;
  out--;
  if (spare.length < MAX_SPARE) spare.push(b);
}

/** Pool buffers taken and not given back (tests: what a finished exchange still holds). */
export function buffersOut(): number {
  return out;
}

/** The pool buffer `chunk` lies in, or undefined when it is not from the pool. */
export function poolBufferOf(chunk: Uint8Array): Buffer | undefined {
  return arenas.get(chunk.buffer)?.[Math.floor(chunk.byteOffset / POOL_BUFFER)];
}

export interface Lender {
  /** A consumer keeps a chunk of pool buffer `b`. */
  retain(b: Buffer): void;
  /** It gave one back. */
  release(b: Buffer): void;
}

/** Marks the chunks of pool buffer `b` as lent by `lender`. */
export function lendable(b: Buffer, lender: Lender): void {
  lenders.set(b, lender);
}

/** Keeps `chunk` past the producer's next `next()`; undefined when its producer does not lend. */
export function retain(chunk: Buffer): (() => void) | undefined {
  const b = poolBufferOf(chunk);
  const lender = b && lenders.get(b);
  if (!b || !lender) return undefined;
  lender.retain(b);
  let given = false;
  return () => {
    if (given) return;
    given = true;
    lender.release(b);
  };
}
