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
}

let addon: MemoryAddon | undefined;

/** Returns the JavaScript heap's unused memory to the OS; blocks the event loop (see above). */
export function compactHeap(): void {
  addon ??= createRequire(import.meta.url)("../../native/build/Release/strata_memory.node") as MemoryAddon;
  addon.lowMemory();
}
