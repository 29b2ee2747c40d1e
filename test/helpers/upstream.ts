/**
 * Upstreams for the pull-through cache tests: Debian's docker-registry (CNCF distribution 2.8)
 * with its access log captured, and a small HTTP stub in front of it that can throttle blob
 * bodies, corrupt them, or answer 429/500 instead of forwarding.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, request as httpRequest, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./strata.js";

export interface Peer {
  readonly host: string;
  readonly url: string;
  /** Access log lines (combined log format) so far. */
  accessLog(): string[];
  /** Stops the process; `start()` runs it again on the same port with the same storage. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops it and removes its storage. */
  destroy(): Promise<void>;
}

/** docker-registry on a free loopback port, access log on. */
export async function startPeer(): Promise<Peer> {
  const dir = await mkdtemp(join(tmpdir(), "strata-peer-"));
  const port = await freePort();
  const cfg = join(dir, "config.yml");
  await writeFile(
    cfg,
    [
      "version: 0.1",
      "log: {level: error}",
      `storage: {filesystem: {rootdirectory: ${dir}/data}, delete: {enabled: true}}`,
      `http: {addr: "127.0.0.1:${port}"}`,
      "",
    ].join("\n"),
  );
  let child: ChildProcess | undefined;
  let out = "";
  const url = `http://127.0.0.1:${port}`;
  const start = async () => {
    child = spawn("docker-registry", ["serve", cfg], { stdio: ["ignore", "pipe", "pipe"] });
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
    });
    child.stderr!.on("data", (d: Buffer) => {
      out += d.toString();
    });
    for (let i = 0; ; i++) {
      if (child.exitCode !== null) throw new Error(`docker-registry exited: ${out}`);
      try {
        const r = await fetch(`${url}/v2/`);
        await r.body?.cancel();
        break;
      } catch {
        if (i > 200) throw new Error(`docker-registry did not start: ${out}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  };
  const stop = async () => {
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child!.once("exit", r));
      child.kill("SIGTERM");
      await exited;
    }
  };
  await start();
  return {
    host: `127.0.0.1:${port}`,
    url,
    accessLog: () => out.split("\n").filter((l) => /"(GET|HEAD|PUT|POST|PATCH|DELETE) \//.test(l)),
    stop,
    start,
    async destroy() {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export type StubMode = "pass" | "429" | "500" | "throttle" | "corrupt" | "hang";

export interface Stub {
  readonly url: string;
  readonly host: string;
  mode: StubMode;
  /** Bytes per second of blob bodies in "throttle" mode. */
  rate: number;
  /** When the last blob body forwarded finished (ms since the epoch). */
  blobEnds: number[];
  /** Requests seen: "METHOD path". */
  requests: string[];
  close(): Promise<void>;
}

/** An HTTP stub forwarding to `target` (http://host:port), faulting as `mode` says. */
export async function startStub(target: string): Promise<Stub> {
  const t = new URL(target);
  const stub: Stub = {
    url: "",
    host: "",
    mode: "pass",
    rate: 1024 * 1024,
    blobEnds: [],
    requests: [],
    close: async () => {},
  };
  const server: Server = createServer((req, res) => {
    stub.requests.push(`${req.method} ${req.url}`);
    const isBlob = /\/blobs\/sha256:/.test(req.url ?? "");
    if (stub.mode === "429" || stub.mode === "500") {
      res.writeHead(stub.mode === "429" ? 429 : 500, { "Content-Type": "application/json", "Retry-After": "60" });
      res.end(JSON.stringify({ errors: [{ code: stub.mode === "429" ? "TOOMANYREQUESTS" : "UNKNOWN", message: "stub fault" }] }));
      return;
    }
    if (stub.mode === "hang") return; // never answers
    const up = httpRequest({ host: t.hostname, port: t.port, method: req.method, path: req.url, headers: { ...req.headers, host: t.host } }, (ures) => {
      res.writeHead(ures.statusCode ?? 502, ures.headers);
      if (!isBlob || req.method !== "GET" || ures.statusCode !== 200 || stub.mode === "pass") {
        ures.pipe(res);
        return;
      }
      const corrupt = stub.mode === "corrupt";
      let flipped = false;
      const chunkSize = 64 * 1024;
      const queue: Buffer[] = [];
      let ended = false;
      let pumping = false;
      const pump = async () => {
        if (pumping) return;
        pumping = true;
        while (queue.length) {
          let c = queue.shift()!;
          if (corrupt && !flipped && c.length > 0) {
            c = Buffer.from(c);
            c[c.length - 1] ^= 0xff;
            flipped = true;
          }
          for (let i = 0; i < c.length; i += chunkSize) {
            res.write(c.subarray(i, i + chunkSize));
            if (stub.mode === "throttle") await new Promise((r) => setTimeout(r, (chunkSize / stub.rate) * 1000));
          }
        }
        pumping = false;
        if (ended) {
          res.end();
          stub.blobEnds.push(Date.now());
        }
      };
      ures.on("data", (c: Buffer) => {
        queue.push(c);
        void pump();
      });
      ures.on("end", () => {
        ended = true;
        void pump();
      });
    });
    up.on("error", () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  Object.assign(stub, {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  });
  return stub;
}

export const sha256hex = (b: Buffer) => createHash("sha256").update(b).digest("hex");
