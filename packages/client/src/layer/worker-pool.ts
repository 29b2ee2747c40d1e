// The pool of layer unpack workers (unpack-worker.ts), kept apart from the unpack code so that
// starting workers costs the caller nothing but the threads: this module imports only
// node:worker_threads, where unpack.ts loads the extractor, the registry client and core's
// digests (~40 ms of module loading on the main thread). `strata pull` starts the workers
// first, before it loads the store and core (zod) and the pull code, so the workers' own start
// (~50 ms of CPU each: a V8 isolate, their modules) runs on another core meanwhile. Measured on
// the 2-core bench machine under load 9 (5 tiny layers): the pull's code starts ~100-200 ms
// earlier relative to worker readiness than with the workers started after the store opened.
// Idle workers are kept for reuse (module loading and JIT warm-up are paid once per worker).
import { Worker } from "node:worker_threads";

const idle: Worker[] = [];
const MAX_IDLE = 4;

function newWorker(): Worker {
  return new Worker(new URL("./unpack-worker.js", import.meta.url), {
    // the worker needs no flags, and some of the parent's (--input-type, --eval) are invalid for it
    execArgv: [],
  });
}

/** An idle worker (referenced again), or a new one. */
export function acquireWorker(): Worker {
  const w = idle.pop();
  if (w) {
    w.ref();
    return w;
  }
  return newWorker();
}

/**
 * Starts up to `n` workers now (idle, reused by the next unpacks), so their start-up (a thread,
 * module loading) overlaps the caller's own work instead of delaying the first layer.
 */
export function prewarmUnpackWorkers(n: number): void {
  if (process.env.STRATA_UNPACK_INLINE === "1") return;
  for (let i = idle.length; i < Math.min(n, MAX_IDLE); i++) releaseWorker(newWorker(), true);
}

/** Stops the idle workers (they stop in their own threads, meanwhile the caller goes on). */
export function stopIdleUnpackWorkers(): void {
  for (const w of idle.splice(0)) void w.terminate();
}

/** Returns a worker after a job: kept idle (unreferenced) when healthy and the pool has room, else terminated. */
export function releaseWorker(w: Worker, healthy: boolean): void {
  w.removeAllListeners("message");
  w.removeAllListeners("error");
  w.removeAllListeners("exit");
  if (healthy && idle.length < MAX_IDLE) {
    // an idle worker must not keep the process alive; discard it if it dies while idle
    w.on("error", () => {});
    w.on("exit", () => {
      const i = idle.indexOf(w);
      if (i >= 0) idle.splice(i, 1);
    });
    w.unref();
    idle.push(w);
  } else {
    void w.terminate();
  }
}
