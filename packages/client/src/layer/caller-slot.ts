// The calling thread as one of the layer unpack executors, for `pull` (unpackRemoteLayer with
// `callerThread`): while no other layer unpacks on it, a remote layer is downloaded and unpacked on
// the calling thread itself (remote-tar.ts and extract.ts, as with STRATA_UNPACK_INLINE=1) instead
// of in a worker, and the worker pool keeps one worker fewer (worker-pool.ts: cores - 1, at least
// one). During a pull the calling thread only waits for the layers and commits them, so its core
// is otherwise idle; a worker costs ~0.18 s of CPU to start (a V8 isolate, Node's bootstrap, its
// modules: measured with perf on the 2-core bench machine), the calling thread has those already.
// Saves, measured on the 2-core bench machine, pull of 5 x 64 MiB layers (bench:pull's image),
// 7 runs each alternating with skopeo copy, load 9-11: median CPU 2.00 -> 1.76 s, median wall
// 2.87 -> 2.40 s (skopeo copy 1.72 s in the same runs).
// The last layer of a pull is split when it gets the slot while no worker has a job
// (unpackRemoteLayer with `split`): this thread downloads, verifies and decompresses the blob
// (remote-tar.ts) and posts the tar bytes to a worker that extracts them (extract.ts), so both
// cores work on it instead of one (measured per 64 MiB layer on the bench machine: download,
// blob digest and inflate ~120 ms, extraction with its digest, CRC-64 and writes ~85 ms).
// Only then: a worker still busy with other layers would have the extraction on top of them.
// Saves, measured on the 2-core bench machine (load 1.5-2.5, interleaved with the split turned
// off): a pull of one 128 MiB layer, median wall 0.55 -> 0.48 s over 5 runs each (skopeo copy
// 0.85 s); on bench:pull's 5 x 64 MiB image the split happens in about half of the pulls (else a
// worker still has layers when the last one starts) and then shortens the last layer from
// ~195 ms to ~155 ms, which the medians of 8 runs each do not separate (0.94 s both).
// Contract: at most one job holds the slot; the holder releases it when its unpack settles.

let busy = false;

/** The slot when it is free (the caller then unpacks on this thread and releases it after), else undefined. */
export function claimCallerSlot(): { release(): void } | undefined {
  if (busy) return undefined;
  busy = true;
  let released = false;
  return {
    release() {
      if (released) return;
      released = true;
      busy = false;
    },
  };
}
