/**
 * Runs real `strata` processes for cross-package tests: the registry as its own process
 * (exactly as `strata serve` runs in production) and CLI commands.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { get as httpsGet } from "node:https";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { stringify } from "yaml";

/** The repository root: the nearest ancestor holding packages/cli/bin/strata.js. */
export const REPO_ROOT = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "packages", "cli", "bin", "strata.js"))) {
    const up = dirname(dir);
    if (up === dir) throw new Error("repository root not found");
    dir = up;
  }
  return dir;
})();
export const STRATA_BIN = join(REPO_ROOT, "packages", "cli", "bin", "strata.js");

const execFileP = promisify(execFile);

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.unref();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      const port = typeof a === "object" && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

export interface StrataServer {
  readonly url: string;
  /** host:port, as image references use it */
  readonly host: string;
  readonly process: ChildProcess;
  readonly configFile: string;
  logs(): string;
  stop(): Promise<void>;
}

/** GET over https trusting `ca`; resolves with the status. */
function httpsStatus(url: string, ca: Buffer, client?: { cert: Buffer; key: Buffer }): Promise<number> {
  return new Promise((resolve, reject) => {
    const r = httpsGet(url, { ca, ...client }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    r.on("error", reject);
  });
}

/**
 * Starts `strata serve --config FILE` with `config` (addr is filled in) and waits for /v2/
 * (200, or 401 when auth is on). With `ca`, the server speaks HTTPS with a certificate `ca` signed
 * (`client`: the certificate to present when it requires one). `nodeArgs`: Node flags before the
 * script (V8 flags such as --optimize-for-size are refused in NODE_OPTIONS).
 */
export async function startStrata(
  config: Record<string, unknown>,
  opts: { ca?: Buffer; client?: { cert: Buffer; key: Buffer }; nodeArgs?: readonly string[] } = {},
): Promise<StrataServer> {
  const dir = await mkdtemp(join(tmpdir(), "strata-srv-"));
  const port = await freePort();
  const configFile = join(dir, "config.yml");
  await writeFile(configFile, stringify({ log: { level: "warn" }, ...config, addr: `127.0.0.1:${port}` }));
  const child = spawn(process.execPath, [...(opts.nodeArgs ?? []), STRATA_BIN, "serve", "--config", configFile], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env } });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => {
    out += d.toString();
  });
  child.stderr!.on("data", (d: Buffer) => {
    out += d.toString();
  });
  const url = `${opts.ca ? "https" : "http"}://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`strata serve exited (${child.exitCode}):\n${out}`);
    try {
      const status = opts.ca ? await httpsStatus(`${url}/v2/`, opts.ca, opts.client) : (await fetch(`${url}/v2/`)).status;
      if (status === 200 || status === 401) break;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`strata serve did not answer within 20 s:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    host: `127.0.0.1:${port}`,
    process: child,
    configFile,
    logs: () => out,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        const t = setTimeout(() => child.kill("SIGKILL"), 10_000);
        await exited;
        clearTimeout(t);
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Runs the strata CLI; resolves with stdout/stderr/exit code (never rejects on non-zero exit). */
export async function strata(
  args: string[],
  opts: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return run(process.execPath, [STRATA_BIN, ...args], opts);
}

export async function run(
  cmd: string,
  args: string[],
  opts: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      cmd,
      args,
      { env: { ...process.env, ...opts.env }, timeout: opts.timeoutMs ?? 300_000, maxBuffer: 64 * 1024 * 1024, cwd: opts.cwd },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === "number" ? ((err as { code: number }).code as number) : 1) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
    if (opts.input !== undefined) child.stdin!.end(opts.input);
  });
}

/** Throws with the output when the command fails. */
export async function mustRun(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<string> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")} failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

export function uniqueName(prefix = "t"): string {
  return `${prefix}${randomBytes(5).toString("hex")}`;
}

export { execFileP };
