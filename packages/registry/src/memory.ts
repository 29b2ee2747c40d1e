/**
 * Start-up compaction: once `strata serve` has built the registry (every module loaded, the
 * configuration parsed, storage and Redis probed) and before it listens, V8 is asked to return
 * its unused heap to the operating system (native/memory.cc: collections with compaction, the
 * young generation shrunk, free pages released). Loading and compiling the modules leaves
 * about 10 MB of garbage and grown heap pages that an idle server would otherwise keep
 * resident until load makes V8 collect.
 *
 * What it saves: idle RSS of `strata serve` in S3 mode with Redis (--max-semi-space-size=2),
 * measured right after start: 89-93 -> 77-81 MB (heap 33 -> 22 MiB) on the 2-core test machine
 * at load 13 (the idle row of bench/s3.ts's memory table, 1 GiB runs at load 8-12: 88 -> 81 MB;
 * the upload peaks stay within run-to-run noise); it costs 0.1-0.9 s of start-up, spent before
 * the port opens.
 */
import { createRequire } from "node:module";

interface MemoryAddon {
  lowMemory(): void;
  pressure(): void;
}

let addon: MemoryAddon | undefined;
const load = () => (addon ??= createRequire(import.meta.url)("../../native/build/Release/strata_memory.node") as MemoryAddon);

/** Returns the JavaScript heap's unused memory to the OS; blocks the event loop (see above). */
export function compactHeap(): void {
  load().lowMemory();
}

/** Collections the buffer governor asked for (process total). */
export const governorStats = { collections: 0 };

/**
 * Buffer governor: every `everyMs` it reads the bytes held by ArrayBuffers (Buffers), and when
 * they exceed `limitBytes` it tells V8 that memory is under pressure (native/memory.cc
 * `pressure`: an incremental collection starts at once), at most once per `everyMs`.
 *
 * Why: request bodies arrive as 64 KiB Buffers that live until the upload path has copied them
 * on. Those that waited in a stream's queue long enough to be promoted to the old generation
 * are freed only by a full collection, which V8 starts on its own only after about 64 MB more
 * external memory, so with 8 fast uploads the dead Buffers alone reach tens of MB.
 *
 * Measured (bench:s3 memory table, 8 concurrent 1 GiB uploads, S3 mode, limit 48 MiB against
 * none, one run each, load 8-10): peak RSS of 64 MiB PATCHes 168 -> 157 MB, monolithic PUTs
 * 188 -> 163 MB; aggregate throughput 59 -> 91 and 156 -> 143 MiB/s (within this load's noise).
 * Costs one process.memoryUsage() per `everyMs`, and a collection only while over the limit.
 *
 * `pooled`: bytes of Buffers kept alive in pools (S3 part buffers), which no collection frees.
 * The Buffers outside them may hold the limit less the pooled bytes, and at least a third of the
 * limit: a full pool at or above the limit would otherwise ask for a collection every `everyMs`.
 * Measured (a 48 MiB part pool, one 256 MiB streamed PATCH to S3, limit 48 MiB): 11-35
 * collections and 1.43-1.58 s of registry CPU per push, where a 32 MiB pool had 1-4 and 0.82-1.22 s.
 */
export function governBuffers(limitBytes: number, everyMs = 100, pooled: () => number = () => 0): () => void {
  let a: MemoryAddon;
  try {
    a = load();
  } catch {
    return () => {};
  }
  const timer = setInterval(() => {
    const held = pooled();
    if (process.memoryUsage().arrayBuffers - held <= Math.max(limitBytes - held, limitBytes / 3)) return;
    governorStats.collections++;
    a.pressure();
  }, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
