// Worker-thread side of unpackLayer. A worker runs one extraction at a time and is reused.
// Protocol (main -> worker): {type:"start", opts} then {type:"chunk", data: Uint8Array}... and
// {type:"end"} or {type:"abort"}; (worker -> main): {type:"ack", bytes} after each chunk is
// processed (transferring the chunk's buffer back), then {type:"done", result} or {type:"error", error:{name,message,code,errno,syscall,path}}.
import { parentPort } from "node:worker_threads";
import { type ExtractOptions, extractLayer } from "./extract.js";

const port = parentPort;
if (!port) throw new Error("unpack-worker must run in a worker thread");

interface Job {
  queue: Array<Buffer | null>;
  aborted: boolean;
  wake?: () => void;
}
let job: Job | undefined;

async function* source(j: Job): AsyncGenerator<Buffer> {
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
    port?.postMessage({ type: "ack", bytes: c.length, buf: c.buffer }, [c.buffer as ArrayBuffer]);
  }
}

port.on("message", (m: { type: string; data?: Uint8Array; opts?: ExtractOptions }) => {
  if (m.type === "start" && m.opts) {
    const j: Job = { queue: [], aborted: false };
    job = j;
    extractLayer(source(j), { ...m.opts, releaseChunks: true }).then(
      (result) => {
        job = undefined;
        port.postMessage({ type: "done", result });
      },
      (e: NodeJS.ErrnoException) => {
        job = undefined;
        port.postMessage({
          type: "error",
          error: { name: e?.name, message: e?.message ?? String(e), code: e?.code, errno: e?.errno, syscall: e?.syscall, path: e?.path },
        });
      },
    );
    return;
  }
  const j = job;
  if (!j) return;
  if (m.type === "chunk" && m.data) j.queue.push(Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength));
  else if (m.type === "end") j.queue.push(null);
  else if (m.type === "abort") j.aborted = true;
  const w = j.wake;
  j.wake = undefined;
  w?.();
});
