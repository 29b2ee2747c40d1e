// The pool of layer unpack workers (unpack-worker.ts), kept apart from the unpack code so that
// starting workers costs the caller nothing but the threads: this module imports only
// node:worker_threads and node:os, where unpack.ts loads the extractor, the registry client and
// core's digests. `strata pull` starts the workers first, before it loads the store, core
// and the pull code, so the workers' own start runs on another core meanwhile.
//
// At most one worker per core: a worker costs ~50 ms of CPU to start (a V8 isolate, ~30 ms, and
// its modules, ~20 ms) and the unpack work is CPU-bound (two SHA-256 passes, inflate, CRC-64),
// so more workers than cores only add start-up. When more layers unpack at once than there are
// workers (pull's default of 3 on a 2-core machine), a worker runs several jobs, interleaved
// at their network reads.
// Saves, measured on the 2-core bench machine: a pull of 5 tiny layers 0.56 -> 0.47 s of CPU
// (median wall 0.69 -> 0.54 s, 6 runs each, load 10-11, with the early start above); a pull of
// 5 x 64 MiB layers with 2 workers against 3: median 3.12 against 3.38 s wall, 1.23 against
// 1.31 s CPU (8 runs each, alternating, load 10-12).
// Idle workers are kept for reuse (module loading and JIT warm-up are paid once per worker).
// STRATA_UNPACK_WORKERS=<n> overrides the number of cores (tests run several jobs per worker).
// A caller that unpacks on its own thread too (pull, caller-slot.ts) asks for one worker fewer
// than cores (at least one), so that all its threads together are one per core.
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";

interface Entry {
  worker: Worker;
  /** Jobs running on it; an idle worker (0) does not keep the process alive. */
  jobs: number;
}

const live: Entry[] = [];
const MAX_IDLE = 4;
/** Jobs handed to workers since the process started (acquireWorker calls). */
let jobsStarted = 0;

/** Whether any worker is running a job now. */
export function unpackWorkersBusy(): boolean {
  return live.some((e) => e.jobs > 0);
}

/** How many unpack jobs have run in worker threads so far (for debug output and tests). */
export function unpackWorkerJobs(): number {
  return jobsStarted;
}

/**
 * Most workers at once: STRATA_UNPACK_WORKERS, else the number of cores (one fewer, at least
 * one, when the calling thread unpacks too).
 */
function maxWorkers(callerThread = false): number {
  const n = Number(process.env.STRATA_UNPACK_WORKERS);
  if (Number.isInteger(n) && n > 0) return n;
  return Math.max(1, availableParallelism() - (callerThread ? 1 : 0));
}

function spawnWorker(): Entry {
  const worker = new Worker(new URL("./unpack-worker.js", import.meta.url), {
    // the worker needs no flags, and some of the parent's (--input-type, --eval) are invalid for it
    execArgv: [],
  });
  const e: Entry = { worker, jobs: 0 };
  // the jobs listen for their own failures; a worker that dies (idle or not) leaves the pool
  worker.on("error", () => {});
  worker.on("exit", () => drop(e));
  worker.unref();
  live.push(e);
  return e;
}

function drop(e: Entry): void {
  const i = live.indexOf(e);
  if (i >= 0) live.splice(i, 1);
}

/**
 * A worker for one more job: an idle one, else a new one while fewer than one per core run,
 * else the one with the fewest jobs. Give it back with releaseWorker.
 */
export function acquireWorker(callerThread = false): Worker {
  let e = live.find((x) => x.jobs === 0);
  if (!e && live.length < maxWorkers(callerThread)) e = spawnWorker();
  e ??= live.reduce((a, b) => (b.jobs < a.jobs ? b : a));
  jobsStarted++;
  if (e.jobs++ === 0) e.worker.ref();
  return e.worker;
}

/**
 * Starts workers for `n` jobs now (at most one per core; idle, reused by the next unpacks), so
 * their start-up (a thread, module loading) overlaps the caller's own work instead of delaying
 * the first layer. With `callerThread`, the caller runs one of the jobs itself (caller-slot.ts).
 */
export function prewarmUnpackWorkers(n: number, opts: { callerThread?: boolean } = {}): void {
  if (process.env.STRATA_UNPACK_INLINE === "1") return;
  const callerThread = opts.callerThread === true;
  const want = Math.min(callerThread ? n - 1 : n, maxWorkers(callerThread), MAX_IDLE);
  while (live.length < want) spawnWorker();
}

/** Stops the idle workers (they stop in their own threads, meanwhile the caller goes on). */
export function stopIdleUnpackWorkers(): void {
  for (const e of live.filter((x) => x.jobs === 0)) {
    drop(e);
    void e.worker.terminate();
  }
}

/**
 * Gives back a worker after a job (its listeners removed by the job). An unhealthy worker is
 * stopped (its other jobs fail through their own exit listeners); a healthy one without jobs
 * stays idle while the pool has room.
 */
export function releaseWorker(w: Worker, healthy: boolean): void {
  const e = live.find((x) => x.worker === w);
  if (!e || !healthy) {
    if (e) drop(e);
    void w.terminate();
    return;
  }
  if (--e.jobs > 0) return;
  if (live.filter((x) => x.jobs === 0).length > MAX_IDLE) {
    drop(e);
    void w.terminate();
  } else {
    w.unref();
  }
}
