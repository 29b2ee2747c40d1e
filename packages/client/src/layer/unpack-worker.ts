// Worker-thread side of unpackLayer: receives the tar bytes as messages, runs extractLayer, and
// reports the result. Protocol (main -> worker): {type:"chunk", data: Uint8Array} | {type:"end"} |
// {type:"abort"}; (worker -> main): {type:"ack", bytes} after each chunk is processed,
// {type:"done", result} or {type:"error", error:{name,message,code,errno,syscall,path}}.
import { parentPort, workerData } from "node:worker_threads";
import { type ExtractOptions, extractLayer } from "./extract.js";

const port = parentPort;
if (!port) throw new Error("unpack-worker must run in a worker thread");

const queue: Array<Buffer | null> = [];
let aborted = false;
let wake: (() => void) | undefined;

port.on("message", (m: { type: string; data?: Uint8Array }) => {
  if (m.type === "chunk" && m.data) queue.push(Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength));
  else if (m.type === "end") queue.push(null);
  else if (m.type === "abort") aborted = true;
  const w = wake;
  wake = undefined;
  w?.();
});

async function* source(): AsyncGenerator<Buffer> {
  for (;;) {
    while (queue.length === 0 && !aborted) await new Promise<void>((r) => (wake = r));
    if (aborted) {
      const e = new Error("The operation was aborted");
      e.name = "AbortError";
      throw e;
    }
    const c = queue.shift();
    if (c === null || c === undefined) return;
    yield c;
    port?.postMessage({ type: "ack", bytes: c.length });
  }
}

extractLayer(source(), workerData as ExtractOptions).then(
  (result) => port.postMessage({ type: "done", result }),
  (e: NodeJS.ErrnoException) =>
    port.postMessage({
      type: "error",
      error: { name: e?.name, message: e?.message ?? String(e), code: e?.code, errno: e?.errno, syscall: e?.syscall, path: e?.path },
    }),
);
