// Worker-thread side of unpackLayer. A worker runs one or more extractions at a time (each a job
// with an id chosen by the caller, carried by every message below) and is reused.
// Protocol (main -> worker): {type:"start", opts, compressed?} then {type:"chunk", data: Uint8Array}
// (or, for a blob, {type:"chunks", data: Uint8Array[]}, joined into one chunk)...
// and {type:"end"} or {type:"abort"}; (worker -> main): {type:"ack", bytes, buf?} after each chunk
// is consumed (transferring the chunk's buffer back when it may be reused: only for an
// uncompressed stream, as the decompressor may still hold a compressed chunk), then
// {type:"done", result} or {type:"error", error:{name,message,code,errno,syscall,path,expected,actual,exceeded}}.
// With `compressed`, the chunks are the layer blob: the worker verifies its size and digest and
// decompresses it (verifiedTar) before extracting.
// With `remote` (and `compressed`) no chunks come: the worker downloads the blob itself with a
// RegistryClient continuing the caller's session (see remote-tar.ts), and reports {type:"read", bytes, done} (at most
// every 100 ms, and at the end of the blob) and {type:"resume", offset}; {type:"abort"} cancels.
import { parentPort } from "node:worker_threads";
import { RegistryClient, type RegistrySession } from "../registry/client.js";
import { type ExtractOptions, extractLayer } from "./extract.js";
import { remoteTar } from "./remote-tar.js";
// verified.ts (stream decompressors, fzstd) is imported only by the jobs that need it: a worker
// starts faster without it, and the common case (a gzip or plain layer from a registry) does not.
import type { CompressedBlob } from "./verified.js";

const port = parentPort;
if (!port) throw new Error("unpack-worker must run in a worker thread");

interface Job {
  id: number;
  queue: Array<Buffer | null>;
  aborted: boolean;
  wake?: () => void;
  /** Cancels the download of a remote job. */
  download?: AbortController;
}
const jobs = new Map<number, Job>();

// One client per session, kept while jobs use the same one (its keep-alive connections are reused).
let cached: { key: string; client: RegistryClient } | undefined;
function clientFor(session: RegistrySession): RegistryClient {
  const key = JSON.stringify(session);
  if (cached?.key !== key) cached = { key, client: RegistryClient.fromSession(session) };
  return cached.client;
}

async function* source(j: Job, reuse: boolean): AsyncGenerator<Buffer> {
  for (;;) {
    while (j.queue.length === 0 && !j.aborted) await new Promise<void>((r) => (j.wake = r));
    if (j.aborted) {
      const e = new Error("The operation was aborted");
      e.name = "AbortError";
      throw e;
    }
    const c = j.queue.shift();
    if (c === null || c === undefined) return;
    yield c;
    // extractLayer runs with releaseChunks, so the buffer is free again: hand it back for reuse
    if (reuse) port?.postMessage({ id: j.id, type: "ack", bytes: c.length, buf: c.buffer }, [c.buffer as ArrayBuffer]);
    else port?.postMessage({ id: j.id, type: "ack", bytes: c.length });
  }
}

/** A remote job's tar stream (remote-tar.ts), reported to the caller and cancelled by its abort. */
function jobTar(j: Job, remote: { session: RegistrySession; repository: string }, blob: CompressedBlob): AsyncGenerator<Buffer> {
  const ac = new AbortController();
  j.download = ac;
  if (j.aborted) ac.abort();
  return remoteTar(clientFor(remote.session), remote.repository, blob, {
    signal: ac.signal,
    onRead: (bytes, done) => port?.postMessage({ id: j.id, type: "read", bytes, done }),
    onResume: (offset) => port?.postMessage({ id: j.id, type: "resume", offset }),
  });
}

port.on("message", (m: {
  id: number;
  type: string;
  data?: Uint8Array | Uint8Array[];
  opts?: ExtractOptions;
  compressed?: CompressedBlob;
  remote?: { session: RegistrySession; repository: string };
}) => {
  if (m.type === "start" && m.opts) {
    const j: Job = { id: m.id, queue: [], aborted: false };
    jobs.set(j.id, j);
    const opts = m.opts;
    const compressed = m.compressed;
    const run = m.remote && compressed
      ? extractLayer(jobTar(j, m.remote, compressed), { ...opts, releaseChunks: true })
      : compressed
        ? import("./verified.js").then(({ verifiedTar }) => extractLayer(verifiedTar(source(j, false), compressed), { ...opts, releaseChunks: false }))
        : extractLayer(source(j, true), { ...opts, releaseChunks: true });
    // A reader still waiting for chunks of a finished job (the blob reader reads ahead) stops.
    const finish = () => {
      jobs.delete(j.id);
      j.aborted = true;
      j.queue.length = 0;
      const w = j.wake;
      j.wake = undefined;
      w?.();
    };
    run.then(
      (result) => {
        finish();
        port.postMessage({ id: j.id, type: "done", result });
      },
      (e: NodeJS.ErrnoException & { expected?: unknown; actual?: unknown; exceeded?: unknown; status?: number }) => {
        finish();
        port.postMessage({
          id: j.id,
          type: "error",
          error: {
            name: e?.name,
            message: e?.message ?? String(e),
            code: e?.code,
            errno: e?.errno,
            syscall: e?.syscall,
            path: e?.path,
            expected: e?.expected,
            actual: e?.actual,
            exceeded: e?.exceeded,
            status: e?.status,
          },
        });
      },
    );
    return;
  }
  const j = jobs.get(m.id);
  if (!j) return;
  if (m.type === "chunk" && m.data && !Array.isArray(m.data)) j.queue.push(Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength));
  else if (m.type === "chunks" && Array.isArray(m.data)) j.queue.push(m.data.length === 1 ? Buffer.from(m.data[0].buffer) : Buffer.concat(m.data));
  else if (m.type === "end") j.queue.push(null);
  else if (m.type === "abort") {
    j.aborted = true;
    j.download?.abort();
  }
  const w = j.wake;
  j.wake = undefined;
  w?.();
});
