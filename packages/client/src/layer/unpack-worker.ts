// Worker-thread side of unpackLayer. A worker runs one extraction at a time and is reused.
// Protocol (main -> worker): {type:"start", opts, compressed?} then {type:"chunk", data: Uint8Array}
// (or, for a blob, {type:"chunks", data: Uint8Array[]}, joined into one chunk)...
// and {type:"end"} or {type:"abort"}; (worker -> main): {type:"ack", bytes, buf?} after each chunk
// is consumed (transferring the chunk's buffer back when it may be reused: only for an
// uncompressed stream, as the decompressor may still hold a compressed chunk), then
// {type:"done", result} or {type:"error", error:{name,message,code,errno,syscall,path,expected,actual,exceeded}}.
// With `compressed`, the chunks are the layer blob: the worker verifies its size and digest and
// decompresses it (verifiedTar) before extracting.
import { parentPort } from "node:worker_threads";
import { type ExtractOptions, extractLayer } from "./extract.js";
import { type CompressedBlob, verifiedTar } from "./verified.js";

const port = parentPort;
if (!port) throw new Error("unpack-worker must run in a worker thread");

interface Job {
  queue: Array<Buffer | null>;
  aborted: boolean;
  wake?: () => void;
}
let job: Job | undefined;

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
    if (reuse) port?.postMessage({ type: "ack", bytes: c.length, buf: c.buffer }, [c.buffer as ArrayBuffer]);
    else port?.postMessage({ type: "ack", bytes: c.length });
  }
}

port.on("message", (m: { type: string; data?: Uint8Array | Uint8Array[]; opts?: ExtractOptions; compressed?: CompressedBlob }) => {
  if (m.type === "start" && m.opts) {
    const j: Job = { queue: [], aborted: false };
    job = j;
    const run = m.compressed
      ? extractLayer(verifiedTar(source(j, false), m.compressed), { ...m.opts, releaseChunks: false })
      : extractLayer(source(j, true), { ...m.opts, releaseChunks: true });
    // A reader still waiting for chunks of a finished job (the blob reader reads ahead) stops.
    const finish = () => {
      job = undefined;
      j.aborted = true;
      j.queue.length = 0;
      const w = j.wake;
      j.wake = undefined;
      w?.();
    };
    run.then(
      (result) => {
        finish();
        port.postMessage({ type: "done", result });
      },
      (e: NodeJS.ErrnoException & { expected?: unknown; actual?: unknown; exceeded?: unknown }) => {
        finish();
        port.postMessage({
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
          },
        });
      },
    );
    return;
  }
  const j = job;
  if (!j) return;
  if (m.type === "chunk" && m.data && !Array.isArray(m.data)) j.queue.push(Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength));
  else if (m.type === "chunks" && Array.isArray(m.data)) j.queue.push(m.data.length === 1 ? Buffer.from(m.data[0].buffer) : Buffer.concat(m.data));
  else if (m.type === "end") j.queue.push(null);
  else if (m.type === "abort") j.aborted = true;
  const w = j.wake;
  j.wake = undefined;
  w?.();
});
