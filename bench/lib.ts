/** Shared pieces of the benchmarks: peers, sampling, and the result table. */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { get as httpGet, request } from "node:http";
import { get as httpsGet, request as httpsRequest } from "node:https";
import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import { freePort } from "../test/helpers/strata.js";

/**
 * The environment every benchmark runs its tools in: this process's, without
 * NODE_EXTRA_CA_CERTS. These machines set that variable globally (to the system CA bundle), and
 * Node then parses every certificate in it when any process starts, before its first line of
 * JavaScript (callgrind: `node -e 0` is 89 M instructions without it, 506 M with it; ~60 ms of
 * CPU), where the Go peers (skopeo, podman, docker, distribution) read CA files only at their
 * first TLS connection. The benchmarks speak plain HTTP on loopback, so no tool needs it; what it
 * would add to every strata run is printed by `nodeStartNote` under each table.
 */
export function benchEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  delete env.NODE_EXTRA_CA_CERTS;
  return env;
}

/**
 * A line for under a table when this environment sets NODE_EXTRA_CA_CERTS: the start-up it
 * costs a Node process here (`node -e 0` with and without it, fastest of 5 each), which every
 * strata row would add if run with it. Empty when the variable is not set.
 */
export function nodeStartNote(): string {
  const file = process.env.NODE_EXTRA_CA_CERTS;
  if (!file) return "";
  const best = (env: NodeJS.ProcessEnv): number => {
    let min = Number.POSITIVE_INFINITY;
    for (let i = 0; i < 5; i++) {
      const t0 = process.hrtime.bigint();
      spawnSync(process.execPath, ["-e", "0"], { env, stdio: "ignore" });
      min = Math.min(min, Number(process.hrtime.bigint() - t0) / 1e9);
    }
    return min;
  };
  const without = best(benchEnv());
  const withIt = best(process.env);
  return `(rows run without NODE_EXTRA_CA_CERTS=${file}, which this environment sets: with it, every Node process starts ${(withIt - without).toFixed(2)} s later here, \`node -e 0\` ${withIt.toFixed(2)} s against ${without.toFixed(2)} s; the Go tools read CA files only for TLS)`;
}

export interface Peer {
  readonly url: string;
  readonly host: string;
  readonly pid: number;
  stop(): Promise<void>;
}

/** Status of a GET (HTTPS: the certificate is not checked; the benchmarks make their own). */
function statusOf(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const get = url.startsWith("https:") ? httpsGet : httpGet;
    const req = get(url, { rejectUnauthorized: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("error", reject);
  });
}

async function waitFor(url: string, child: ChildProcess, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode}`);
    try {
      if ((await statusOf(url)) < 500) return;
    } catch {
      /* not yet */
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} did not start`);
}

/**
 * Starts Debian's docker-registry (CNCF distribution 2.8) on a free port with filesystem
 * storage; `dataRoot` is its storage root (default: a new empty one); with `tls` it serves HTTPS.
 */
export async function startDistribution(dataRoot?: string, tls?: { cert: string; key: string }): Promise<Peer> {
  const dir = await mkdtemp(join(tmpdir(), "bench-distribution-"));
  const port = await freePort();
  const cfg = join(dir, "config.yml");
  await writeFile(
    cfg,
    `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${dataRoot ?? `${dir}/data`}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:${port}\n` +
      (tls ? `  tls:\n    certificate: ${tls.cert}\n    key: ${tls.key}\n` : ""),
  );
  const child = spawn("docker-registry", ["serve", cfg], { stdio: "ignore" });
  const url = `${tls ? "https" : "http"}://127.0.0.1:${port}`;
  await waitFor(`${url}/v2/`, child, "docker-registry");
  return {
    url,
    host: `127.0.0.1:${port}`,
    pid: child.pid!,
    async stop() {
      child.kill("SIGTERM");
      await new Promise((r) => child.once("exit", r));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Resident set size of a process in bytes (Linux /proc). */
export function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) * 1024 : 0;
}

/** Samples a process's RSS every `everyMs` until `stop()`; returns the peak. */
export function sampleRss(pid: number, everyMs = 50): { stop(): number } {
  let peak = rssOf(pid);
  const t = setInterval(() => {
    try {
      peak = Math.max(peak, rssOf(pid));
    } catch {
      /* exited */
    }
  }, everyMs);
  return {
    stop() {
      clearInterval(t);
      return peak;
    },
  };
}

export interface TableRow {
  metric: string;
  unit: string;
  strata: number;
  peer: number;
  /** "higher" when bigger is better (throughput), "lower" for time and memory. */
  better: "higher" | "lower";
  target?: string;
}

/** Prints rows as a Markdown table with the strata/peer ratio. */
export function printTable(peerName: string, rows: TableRow[]): void {
  const fmt = (n: number) => (Number.isInteger(n) && n < 100 ? String(n) : n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2));
  const lines = [`| metric | unit | strata | ${peerName} | strata/${peerName} | target |`, "|---|---|---:|---:|---:|---|"];
  for (const r of rows) {
    const ratio = r.strata / r.peer;
    lines.push(`| ${r.metric} | ${r.unit} | ${fmt(r.strata)} | ${fmt(r.peer)} | ${Number.isFinite(ratio) ? `${ratio.toFixed(2)}x` : "-"} | ${r.target ?? ""} |`);
  }
  process.stdout.write(`${lines.join("\n")}\n`);
}

export async function time<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t = process.hrtime.bigint();
  const v = await fn();
  return [v, Number(process.hrtime.bigint() - t) / 1e9];
}

/**
 * One HTTP(S) request; the response body is counted (and its first 64 KiB kept as text). HTTPS
 * certificates are not checked (the benchmarks make their own).
 */
export function http(
  method: string,
  url: string,
  body?: Buffer | Readable,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; bytes: number; text: string }> {
  return new Promise((resolve, reject) => {
    const send = url.startsWith("https:") ? httpsRequest : request;
    const opts = { method, rejectUnauthorized: false, headers: { ...(Buffer.isBuffer(body) ? { "Content-Length": String(body.length) } : {}), ...headers } };
    const req = send(url, opts, (res) => {
      let bytes = 0;
      const small: Buffer[] = [];
      res.on("data", (c: Buffer) => {
        bytes += c.length;
        if (bytes < 65536) small.push(c);
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, bytes, text: Buffer.concat(small).toString() }));
      res.on("error", reject);
    });
    req.on("error", reject);
    if (body === undefined) req.end();
    else if (Buffer.isBuffer(body)) req.end(body);
    else body.pipe(req);
  });
}

/** Monolithic push: POST to start, then PUT ?digest= with the whole body. */
export async function pushMonolithic(base: string, repo: string, blob: Buffer, digest: string): Promise<void> {
  const start = await http("POST", `${base}/v2/${repo}/blobs/uploads/`);
  if (start.status !== 202) throw new Error(`POST ${start.status} ${start.text}`);
  const loc = new URL(String(start.headers.location), base);
  loc.searchParams.set("digest", digest);
  const put = await http("PUT", loc.toString(), blob, { "Content-Type": "application/octet-stream" });
  if (put.status !== 201) throw new Error(`PUT ${put.status} ${put.text}`);
}


/** A deterministic 1 GiB-ish stream: `n` chunks of a 1 MiB base buffer stamped with (id, i). */
export function bigStream(base: Buffer, id: number, n: number): Readable {
  let i = 0;
  return new Readable({
    read() {
      if (i === n) return this.push(null);
      const c = Buffer.from(base);
      c.writeUInt32BE(id, 0);
      c.writeUInt32BE(i++, 4);
      this.push(c);
    },
  });
}

export async function bigDigest(base: Buffer, id: number, n: number): Promise<string> {
  const h = createHash("sha256");
  for await (const c of bigStream(base, id, n)) h.update(c as Buffer);
  return `sha256:${h.digest("hex")}`;
}

export async function pushStreamed(base: string, repo: string, body: Readable, digest: string): Promise<void> {
  const start = await http("POST", `${base}/v2/${repo}/blobs/uploads/`);
  const patch = await http("PATCH", new URL(String(start.headers.location), base).toString(), body, {
    "Content-Type": "application/octet-stream",
    "Transfer-Encoding": "chunked",
  });
  if (patch.status !== 202) throw new Error(`PATCH ${patch.status} ${patch.text}`);
  const loc = new URL(String(patch.headers.location), base);
  loc.searchParams.set("digest", digest);
  const put = await http("PUT", loc.toString(), Buffer.alloc(0));
  if (put.status !== 201) throw new Error(`PUT ${put.status} ${put.text}`);
}

/**
 * Chunked push (OCI "chunked upload"): PATCH requests of `chunkBytes` each (Content-Length and
 * Content-Range, the last one shorter), each streamed from `body`, then PUT ?digest=.
 */
export async function pushChunked(base: string, repo: string, body: Readable, size: number, chunkBytes: number, digest: string): Promise<void> {
  const start = await http("POST", `${base}/v2/${repo}/blobs/uploads/`);
  if (start.status !== 202) throw new Error(`POST ${start.status} ${start.text}`);
  let loc = new URL(String(start.headers.location), base);
  const source = body[Symbol.asyncIterator]();
  let pending: Buffer | undefined;
  for (let off = 0; off < size; ) {
    const len = Math.min(chunkBytes, size - off);
    let left = len;
    const piece = Readable.from(
      (async function* () {
        while (left > 0) {
          const c = pending ?? ((await source.next()).value as Buffer | undefined);
          pending = undefined;
          if (!c) throw new Error("body ended early");
          const take = c.subarray(0, Math.min(left, c.length));
          if (take.length < c.length) pending = c.subarray(take.length);
          left -= take.length;
          yield take;
        }
      })(),
      { objectMode: false },
    );
    const patch = await http("PATCH", loc.toString(), piece, {
      "Content-Type": "application/octet-stream",
      "Content-Length": String(len),
      "Content-Range": `${off}-${off + len - 1}`,
    });
    if (patch.status !== 202) throw new Error(`PATCH ${patch.status} ${patch.text}`);
    loc = new URL(String(patch.headers.location), base);
    off += len;
  }
  loc.searchParams.set("digest", digest);
  const put = await http("PUT", loc.toString(), Buffer.alloc(0));
  if (put.status !== 201) throw new Error(`PUT ${put.status} ${put.text}`);
}

/** Monolithic push of a streamed body of known size: POST to start, then PUT ?digest= with Content-Length. */
export async function pushStreamedSized(base: string, repo: string, body: Readable, size: number, digest: string): Promise<void> {
  const start = await http("POST", `${base}/v2/${repo}/blobs/uploads/`);
  if (start.status !== 202) throw new Error(`POST ${start.status} ${start.text}`);
  const loc = new URL(String(start.headers.location), base);
  loc.searchParams.set("digest", digest);
  const put = await http("PUT", loc.toString(), body, { "Content-Type": "application/octet-stream", "Content-Length": String(size) });
  if (put.status !== 201) throw new Error(`PUT ${put.status} ${put.text}`);
}
