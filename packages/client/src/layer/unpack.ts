// unpackLayer: one streaming pass over a layer tar (or, with `compressed`, over the layer blob,
// verified and decompressed on the way) that computes the diffID,
// writes tar-split.json.gz, and extracts the entries into an overlay2 diff dir the way Docker
// Engine's overlay2 driver does (see extract.ts for the rules and the security model).
// The work runs in a worker thread, so the synchronous file-system calls, hashing and CRCs do not
// block the caller's event loop and several layers unpack on several cores.
// unpackRemoteLayer goes one step further: the worker also downloads the blob (see
// remote-tar.ts), so a layer's bytes never cross threads. The workers (at most one per core, a
// worker running several jobs when more layers unpack at once) are kept idle for reuse
// (worker-pool.ts), can be started ahead of need (prewarmUnpackWorkers) and stopped (stopIdleUnpackWorkers).
// With `callerThread` (pull), one remote layer at a time unpacks on the calling thread instead,
// which blocks its event loop while it does (caller-slot.ts), and the pool keeps one worker fewer.
import * as fs from "node:fs";
import type { Readable } from "node:stream";
// subpaths: importing this module (to start workers early) should not load all of core
import { type DiffID, type Digest, parseDiffID } from "@strata/core/digest";
import { DigestMismatchError, SizeMismatchError } from "@strata/core/verify";
import { RegistryClient, RegistryError, type RegistrySession } from "../registry/client.js";
import { LayerTooLargeError, TarFormatError, UnsafeLayerError } from "./errors.js";
// Only types from the extractor and the stream decompressors: this thread loads them (extract.ts,
// tar.ts, verified.ts with fzstd, ~80 KB of source, ~15 ms of CPU) only to unpack inline; a pull
// unpacks in workers and never needs them here.
import type { ExtractResult } from "./extract.js";
import type { CompressedBlob } from "./verified.js";
import { claimCallerSlot } from "./caller-slot.js";
import { acquireWorker, releaseWorker, unpackWorkersBusy } from "./worker-pool.js";

export { prewarmUnpackWorkers, stopIdleUnpackWorkers, unpackWorkerJobs } from "./worker-pool.js";

export { LayerTooLargeError, UnsafeLayerError } from "./errors.js";

export interface UnpackResult {
  diffId: DiffID;
  /** Docker layerdb `size`: regular-file bytes (each inode once) plus symlink target lengths. */
  size: number;
  /** Bytes of the uncompressed tar stream. */
  tarSize: number;
}

export interface UnpackOptions {
  /** Existing empty directory that receives the layer's files. */
  diffDir: string;
  /** Where tar-split.json.gz is written (created or truncated). */
  tarSplitPath: string;
  /** Bound on the uncompressed tar stream size (and so on everything extracted). */
  maxBytes?: number;
  signal?: AbortSignal;
  /** Run on the calling thread instead of a worker thread (also with STRATA_UNPACK_INLINE=1). */
  inline?: boolean;
  /**
   * The input is the layer blob, not the tar: it is checked against this size and digest
   * (DigestMismatchError, SizeMismatchError, raised before the tar stream ends, so nothing of a
   * wrong blob is reported as unpacked) and decompressed, in the worker thread.
   */
  compressed?: CompressedBlob;
  /** Told the input bytes read so far after each chunk, and once more (done) at the end of the input. */
  onRead?: (bytes: number, done: boolean) => void;
  /** Flush the layer's files and tar-split to disk before resolving (see ExtractOptions.durable). */
  durable?: boolean;
}

/**
 * A layer blob still in a registry: the worker thread that unpacks it also downloads it (with
 * the session's auth, retries and Range resume), so the blob's bytes never cross threads.
 */
export interface RemoteLayer {
  session: RegistrySession;
  repository: string;
  blob: CompressedBlob;
}

export interface RemoteUnpackOptions extends Omit<UnpackOptions, "compressed"> {
  /** Told the offset whenever the download resumes after a network failure. */
  onResume?: (offset: number) => void;
  /**
   * The calling thread is one of the unpack executors (caller-slot.ts): the layer unpacks on it
   * when no other layer does, else in a worker of a pool one worker smaller.
   */
  callerThread?: boolean;
  /**
   * With `callerThread`, when the layer gets the calling thread while no worker has a job: it
   * is split across two threads (caller-slot.ts): this thread downloads, verifies and
   * decompresses the blob, a worker extracts the tar. For the last layer of a pull, which
   * otherwise unpacks on one core while the other idles.
   */
  split?: boolean;
}

const MESSAGE_SIZE = 1024 * 1024;
/** Bytes posted to a worker and not yet consumed: a tar stream, and a blob or a split layer's tar. */
const MAX_IN_FLIGHT = 16 << 20;
const MAX_IN_FLIGHT_BLOB = 4 << 20;

function abortError(signal: AbortSignal): Error {
  const r = signal.reason;
  if (r instanceof Error) return r;
  const e = new Error("The operation was aborted");
  e.name = "AbortError";
  return e;
}

/** Rebuilds an error reported by the worker, keeping its class and errno properties. */
function reviveError(x: {
  name?: string;
  message: string;
  code?: string;
  errno?: number;
  syscall?: string;
  path?: string;
  expected?: unknown;
  actual?: unknown;
  exceeded?: unknown;
  status?: number;
}): Error {
  let e: Error;
  if (x.name === "DigestMismatchError") {
    e = new DigestMismatchError(x.expected as Digest, x.actual as Digest);
    e.message = x.message;
  } else if (x.name === "SizeMismatchError") {
    e = new SizeMismatchError(Number(x.expected), Number(x.actual), x.exceeded === true);
    e.message = x.message;
  } else if (x.name === "UnsafeLayerError") {
    e = new UnsafeLayerError("");
    e.message = x.message;
  } else if (x.name === "LayerTooLargeError") {
    e = new LayerTooLargeError(0);
    e.message = x.message;
  } else if (x.name === "RegistryError") {
    e = new RegistryError(x.message, x.status, x.code);
  } else if (x.name === "TarFormatError") {
    e = new TarFormatError("");
    e.message = x.message;
  } else {
    e = new Error(x.message);
    if (x.name) e.name = x.name;
    const ee = e as NodeJS.ErrnoException;
    if (x.code !== undefined) ee.code = x.code;
    if (x.errno !== undefined) ee.errno = x.errno;
    if (x.syscall !== undefined) ee.syscall = x.syscall;
    if (x.path !== undefined) ee.path = x.path;
  }
  return e;
}

async function inSource(tar: Readable, signal: AbortSignal | undefined): Promise<AsyncIterable<Buffer | string>> {
  if (!signal) return tar as AsyncIterable<Buffer | string>;
  const { addAbortSignal } = await import("node:stream");
  addAbortSignal(signal, tar);
  return tar as AsyncIterable<Buffer | string>;
}

async function* counted(src: AsyncIterable<Buffer | string>, onRead: (bytes: number, done: boolean) => void): AsyncGenerator<Buffer | string> {
  let n = 0;
  for await (const c of src) {
    n += c.length;
    onRead(n, false);
    yield c;
  }
  onRead(n, true);
}

let nextJobId = 1;

/** What a worker reports about one job. */
type WorkerMessage = { id: number; type: string; bytes?: number; done?: boolean; offset?: number; buf?: ArrayBuffer; result?: ExtractResult; error?: Parameters<typeof reviveError>[0] };

async function unpackInWorker(
  input: { tar: Readable } | { remote: RemoteLayer } | { chunks: AsyncIterable<Buffer> },
  opts: UnpackOptions & Pick<RemoteUnpackOptions, "onResume" | "callerThread">,
): Promise<ExtractResult> {
  const maxBytes = opts.maxBytes ?? Number.MAX_SAFE_INTEGER;
  const worker = acquireWorker(opts.callerThread);
  // the worker may run other jobs at once: this job's messages carry its id
  const id = nextJobId++;
  const free: ArrayBuffer[] = [];
  let inFlight = 0;
  let ackWaiter: (() => void) | undefined;
  let settled = false;
  let healthy = true;
  const wakeFeeder = () => {
    const w = ackWaiter;
    ackWaiter = undefined;
    w?.();
  };
  let onMessage!: (m: WorkerMessage) => void;
  let onError!: (e: Error) => void;
  let onExit!: (code: number) => void;
  const outcome = new Promise<ExtractResult>((resolve, reject) => {
    onMessage = (m: WorkerMessage) => {
      if (m.id !== id) return;
      if (m.type === "read") {
        opts.onRead?.(m.bytes ?? 0, m.done === true);
        return;
      } else if (m.type === "resume") {
        opts.onResume?.(m.offset ?? 0);
        return;
      } else if (m.type === "ack") {
        inFlight -= m.bytes ?? 0;
        if (m.buf && m.buf.byteLength === MESSAGE_SIZE && free.length < 20) free.push(m.buf);
      } else if (m.type === "done") {
        settled = true;
        resolve(m.result as ExtractResult);
      } else if (m.type === "error") {
        settled = true;
        reject(reviveError(m.error as Parameters<typeof reviveError>[0]));
      }
      wakeFeeder();
    };
    onError = (e: Error) => {
      settled = true;
      healthy = false;
      reject(e);
      wakeFeeder();
    };
    onExit = (code: number) => {
      healthy = false;
      if (!settled) {
        settled = true;
        reject(new Error(`layer unpack worker exited with code ${code}`));
      }
      wakeFeeder();
    };
    worker.on("message", onMessage);
    worker.on("error", onError);
    worker.on("exit", onExit);
  });
  const release = () => {
    worker.off("message", onMessage);
    worker.off("error", onError);
    worker.off("exit", onExit);
    releaseWorker(worker, healthy);
  };
  outcome.catch(() => {});
  const remote = "remote" in input ? input.remote : undefined;
  worker.postMessage({
    id,
    type: "start",
    opts: { diffDir: opts.diffDir, tarSplitPath: opts.tarSplitPath, maxBytes, durable: opts.durable },
    compressed: remote ? remote.blob : opts.compressed,
    remote: remote ? { session: remote.session, repository: remote.repository } : undefined,
  });
  if (remote) {
    // the worker downloads: wait for its verdict, and pass an abort on
    const onAbort = () => worker.postMessage({ id, type: "abort" });
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    if (opts.signal?.aborted) onAbort();
    try {
      return await outcome;
    } catch (e) {
      fs.rmSync(opts.tarSplitPath, { force: true });
      if (opts.signal?.aborted) throw abortError(opts.signal);
      throw e;
    } finally {
      opts.signal?.removeEventListener("abort", onAbort);
      release();
    }
  }
  // a tar stream, or chunks that are each valid only until the next is asked for (copied below)
  const src = "chunks" in input ? input.chunks : await inSource((input as { tar: Readable }).tar, opts.signal);
  // a split layer's tar comes as fast as this thread inflates: a few MiB ahead keep the worker busy
  const maxInFlight = "chunks" in input ? MAX_IN_FLIGHT_BLOB : MAX_IN_FLIGHT;

  // Message buffers travel to the worker and back (transferred, not copied).
  const newBuf = (): Buffer => {
    const ab = free.pop();
    return ab ? Buffer.from(ab, 0, MESSAGE_SIZE) : Buffer.allocUnsafeSlow(MESSAGE_SIZE);
  };
  // A blob's chunks are not copied here but transferred in batches (the worker joins them): a
  // chunk that owns its whole ArrayBuffer (as socket reads do) is moved, any other is copied.
  const batched = opts.compressed !== undefined;
  let buf = batched ? Buffer.alloc(0) : newBuf();
  let fill = 0;
  let batch: Uint8Array[] = [];
  let transfer: ArrayBuffer[] = [];
  const post = () => {
    if (fill === 0) return;
    if (batched) {
      worker.postMessage({ id, type: "chunks", data: batch }, transfer);
      batch = [];
      transfer = [];
    } else {
      const data = new Uint8Array(buf.buffer, buf.byteOffset, fill);
      worker.postMessage({ id, type: "chunk", data }, [buf.buffer as ArrayBuffer]);
      buf = newBuf();
    }
    inFlight += fill;
    fill = 0;
  };
  let tarSize = 0;
  try {
    for await (const chunk of src) {
      const c = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
      tarSize += c.length;
      opts.onRead?.(tarSize, false);
      // (a blob's size is bounded by its verifier in the worker, its tar's by the extractor)
      if (!opts.compressed && tarSize > maxBytes) throw new LayerTooLargeError(maxBytes);
      if (settled) break; // the worker finished early (an error); reported below
      if (batched) {
        const own = c.byteOffset === 0 && c.byteLength === c.buffer.byteLength && c.buffer instanceof ArrayBuffer;
        const u = own ? c : new Uint8Array(c);
        batch.push(u);
        transfer.push(u.buffer as ArrayBuffer);
        fill += u.byteLength;
        if (fill >= MESSAGE_SIZE) post();
        while (inFlight > MAX_IN_FLIGHT_BLOB && !settled) await new Promise<void>((r) => (ackWaiter = r));
        continue;
      }
      let off = 0;
      while (off < c.length) {
        const take = Math.min(MESSAGE_SIZE - fill, c.length - off);
        c.copy(buf, fill, off, off + take);
        fill += take;
        off += take;
        if (fill === MESSAGE_SIZE) post();
      }
      while (inFlight > maxInFlight && !settled) await new Promise<void>((r) => (ackWaiter = r));
    }
    if (opts.signal?.aborted) throw abortError(opts.signal);
    if (!settled) opts.onRead?.(tarSize, true);
    if (!settled) {
      post();
      worker.postMessage({ id, type: "end" });
    }
    return await outcome;
  } catch (e) {
    if (!settled) {
      // Let the worker clean up (open file, partial tar-split) before reporting.
      worker.postMessage({ id, type: "abort" });
      await outcome.catch(() => {});
    }
    fs.rmSync(opts.tarSplitPath, { force: true });
    throw e;
  } finally {
    if (!settled) await outcome.catch(() => {});
    release();
  }
}

/** Checks what every unpack needs before it starts; true when it runs on the calling thread. */
function runsInline(opts: Pick<UnpackOptions, "diffDir" | "signal" | "inline">): boolean {
  if (fs.readdirSync(opts.diffDir).length !== 0) throw new Error(`diff dir ${opts.diffDir} is not empty`);
  if (opts.signal?.aborted) throw abortError(opts.signal);
  return opts.inline ?? process.env.STRATA_UNPACK_INLINE === "1";
}

function unpackResult(r: ExtractResult): UnpackResult {
  return { diffId: parseDiffID(`sha256:${r.diffIdHex}`), size: r.size, tarSize: r.tarSize };
}

/**
 * Extracts a layer tar (with `opts.compressed`: a layer blob) into `diffDir` (an existing empty directory) and writes its
 * tar-split.json.gz, in one streaming pass. Throws on malformed or hostile input
 * (UnsafeLayerError, LayerTooLargeError, TarFormatError); the caller then deletes the diff dir
 * (this function removes its partial tar-split file).
 */
export async function unpackLayer(tar: Readable, opts: UnpackOptions): Promise<UnpackResult> {
  let r: ExtractResult;
  if (runsInline(opts)) {
    let src = await inSource(tar, opts.signal);
    if (opts.onRead) src = counted(src, opts.onRead);
    const { extractLayer } = await import("./extract.js");
    const { verifiedTar } = await import("./verified.js");
    r = await extractLayer(opts.compressed ? verifiedTar(src, opts.compressed) : src, opts);
  } else {
    r = await unpackInWorker({ tar }, opts);
  }
  return unpackResult(r);
}

/**
 * Downloads a layer blob from a registry and unpacks it like `unpackLayer` with `compressed`
 * (verified against `remote.blob`, decompressed, extracted into `diffDir`), all in one worker
 * thread (on the calling thread when inline, or with `callerThread` while its slot is free).
 */
export async function unpackRemoteLayer(remote: RemoteLayer, opts: RemoteUnpackOptions): Promise<UnpackResult> {
  let r: ExtractResult;
  const inline = runsInline(opts);
  const slot = !inline && opts.callerThread ? claimCallerSlot() : undefined;
  if (inline || slot) {
    try {
      // the workers' path (remote-tar.ts: no copy or allocation per chunk), on this thread
      const client = RegistryClient.fromSession(remote.session, opts.signal);
      // split: this thread's share ends at the tar bytes, a worker extracts them (caller-slot.ts)
      const split = slot !== undefined && opts.split === true && !unpackWorkersBusy();
      const [{ remoteTar }, extract] = await Promise.all([import("./remote-tar.js"), split ? undefined : import("./extract.js")]);
      const tar = remoteTar(client, remote.repository, remote.blob, { signal: opts.signal, onRead: opts.onRead, onResume: opts.onResume });
      r = extract ? await extract.extractLayer(tar, { ...opts, releaseChunks: true }) : await unpackInWorker({ chunks: tar }, { ...opts, onRead: undefined });
    } finally {
      slot?.release();
    }
  } else {
    r = await unpackInWorker({ remote }, opts);
  }
  return unpackResult(r);
}
