/**
 * PRIVATE dependency servers for fault tests: a redis-server and a Swift (s3api) server that
 * belong to one test alone, on ports picked at run time, so that a test may stop, kill, freeze
 * or restart them. The shared services (Redis on 6379, Swift on 9000) are never touched here.
 *
 * Every process is tracked by its own pid (Redis: the child spawned here; Swift: the pid files
 * scripts/s3-server.sh writes in the server's own directory) and only those pids are signalled.
 * A missing tool makes the start function return undefined with `skipReason` set; the caller
 * skips with that one line.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { freePort, REPO_ROOT } from "./strata.js";

const execFileP = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function onPath(cmd: string): boolean {
  return (process.env.PATH ?? "").split(":").some((d) => d && existsSync(join(d, cmd)));
}

/** Whether nothing listens on 127.0.0.1:port (by binding it for a moment). */
function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.unref();
    s.once("error", () => resolve(false));
    s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
  });
}

async function waitUntil(what: string, ok: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`${what} within ${timeoutMs} ms`);
    await sleep(50);
  }
}

export interface PrivateRedis {
  readonly port: number;
  readonly url: string;
  /** Whether the server process runs (it may still be frozen). */
  readonly running: boolean;
  /** Stops the server (SIGKILL: an outage, not a shutdown); its data is gone. */
  stop(): Promise<void>;
  /** Starts a fresh server on the same port. */
  start(): Promise<void>;
  /** SIGSTOP / SIGCONT: the port accepts connections but nothing answers. */
  freeze(): void;
  thaw(): void;
  /** Stops it for good. */
  close(): Promise<void>;
}

export let skipReason = "";

/** A private redis-server on a free port, or undefined (skipReason set) without redis-server. */
export async function startPrivateRedis(): Promise<PrivateRedis | undefined> {
  if (!onPath("redis-server")) {
    skipReason = "redis-server is not installed (Debian package redis-server)";
    return undefined;
  }
  const port = await freePort();
  let child: ChildProcess | undefined;
  const ping = () =>
    execFileP("redis-cli", ["-h", "127.0.0.1", "-p", String(port), "ping"], { timeout: 2000 }).then(
      (r) => r.stdout.trim() === "PONG",
      () => false,
    );
  const start = async () => {
    if (child) throw new Error("private redis already runs");
    const c = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], { stdio: "ignore" });
    child = c;
    c.once("exit", () => {
      if (child === c) child = undefined;
    });
    await waitUntil("private redis-server did not answer", ping, 10_000);
  };
  const stop = async () => {
    const c = child;
    if (!c) return;
    child = undefined;
    if (c.exitCode === null && c.signalCode === null) {
      const exited = new Promise((r) => c.once("exit", r));
      c.kill("SIGCONT");
      c.kill("SIGKILL");
      await exited;
    }
  };
  await start();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    get running() {
      return child !== undefined;
    },
    stop,
    start,
    freeze: () => void child?.kill("SIGSTOP"),
    thaw: () => void child?.kill("SIGCONT"),
    close: stop,
  };
}

export interface PrivateS3 {
  readonly port: number;
  readonly endpoint: string;
  /** A storage.s3 config for a bucket on this server (the bucket is not created). */
  config(bucket: string, extra?: Record<string, unknown>): Record<string, unknown>;
  /** Stops every Swift process of this server (data stays on disk). */
  stop(): Promise<void>;
  /** (Re)starts it with the data it had. */
  start(): Promise<void>;
  /** SIGKILL of the proxy alone: requests in flight are cut, new ones are refused. */
  killProxy(): Promise<void>;
  /** SIGSTOP / SIGCONT of the proxy: connections are accepted, nothing answers. */
  freeze(): void;
  thaw(): void;
  /** Stops it and removes its directory. */
  close(): Promise<void>;
}

/** Five ports PORT, PORT+20..PORT+23 (scripts/s3-server.sh's layout), all free right now. */
async function freeS3Ports(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const base = 20_000 + Math.floor(Math.random() * 30_000);
    let ok = true;
    for (const p of [base, base + 20, base + 21, base + 22, base + 23]) if (!(await portFree(p))) ok = false;
    if (ok) return base;
  }
  throw new Error("no free port range for a private S3 server");
}

/**
 * A private Swift (s3api) server in a temp dir, started with scripts/s3-server.sh, or undefined
 * (skipReason set) when Swift is not installed. Credentials: test:tester / testing.
 */
export async function startPrivateS3(): Promise<PrivateS3 | undefined> {
  const missing = ["swift-proxy-server", "swift-object-server", "swift-container-server", "swift-account-server", "memcached"].filter((c) => !onPath(c));
  if (missing.length) {
    skipReason = `Swift is not installed (missing ${missing.join(", ")}; Debian packages swift-proxy swift-object swift-container swift-account memcached)`;
    return undefined;
  }
  const port = await freeS3Ports();
  const dir = await mkdtemp(join(tmpdir(), "strata-private-s3-"));
  const script = join(REPO_ROOT, "scripts", "s3-server.sh");
  const pidOf = (svc: string): number | undefined => {
    try {
      return Number(readFileSync(join(dir, "run", `${svc}.pid`), "utf8").trim()) || undefined;
    } catch {
      return undefined;
    }
  };
  const signal = (svc: string, sig: NodeJS.Signals) => {
    const pid = pidOf(svc);
    if (pid === undefined) return false;
    try {
      process.kill(pid, sig);
      return true;
    } catch {
      return false;
    }
  };
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  const start = async () => {
    await execFileP("bash", [script, "start", dir, String(port)], { timeout: 120_000 });
  };
  const stop = async () => {
    const pids = ["proxy", "object", "container", "account", "memcached"].map(pidOf).filter((p): p is number => p !== undefined);
    // A frozen process would not act on the script's SIGTERM.
    signal("proxy", "SIGCONT");
    await execFileP("bash", [script, "stop", dir, String(port)], { timeout: 30_000 });
    await waitUntil("private Swift did not stop", async () => !pids.some(alive), 15_000).catch(() => {
      for (const p of pids.filter(alive)) process.kill(p, "SIGKILL");
    });
  };
  try {
    await start();
  } catch (e) {
    await stop().catch(() => {});
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
  const endpoint = `http://127.0.0.1:${port}`;
  return {
    port,
    endpoint,
    config: (bucket, extra = {}) => ({
      endpoint,
      bucket,
      forcePathStyle: true,
      accessKeyId: "test:tester",
      secretAccessKey: "testing",
      ...extra,
    }),
    stop,
    start,
    async killProxy() {
      const pid = pidOf("proxy");
      if (pid === undefined || !signal("proxy", "SIGKILL")) return;
      await waitUntil("private Swift proxy did not die", async () => !alive(pid), 10_000);
      // The script's stop would otherwise signal this pid again, which may belong to another process by then.
      await rm(join(dir, "run", "proxy.pid"), { force: true });
    },
    freeze: () => void signal("proxy", "SIGSTOP"),
    thaw: () => void signal("proxy", "SIGCONT"),
    async close() {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
