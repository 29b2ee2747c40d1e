/**
 * Debian's dockerd for tests, the one way every test starts it: overlay2 (or the given storage
 * driver) on a given data root (a store Strata wrote, or its own), no networking of its own, its
 * socket, exec root, pid file, daemon.json and docker CLI config under `work`, and the project's
 * `scripts/runc-norlimit` runtime (runc without the rlimits this sandbox refuses).
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";

export const DOCKERD = "/usr/sbin/dockerd";
export const DOCKER = "/usr/bin/docker";
/** Statically linked tini, shipped with docker.io: a program to run in test images. */
export const TINI = "/usr/bin/docker-init";
export const RUNC_NORLIMIT = new URL("../../../../../scripts/runc-norlimit", import.meta.url).pathname;

export interface DockerdOptions {
  /** Storage driver (default overlay2). */
  storageDriver?: string;
  /** Extra daemon arguments (e.g. `--registry-mirror URL`). */
  args?: string[];
  /** The daemon's environment (default: this process's), e.g. `SSL_CERT_FILE` for a test CA. */
  env?: NodeJS.ProcessEnv;
  /** Time each docker CLI call may take (default 180 s); a call past it is killed and fails. */
  cliTimeoutMs?: number;
}

export interface DockerResult {
  stdout: string;
  stderr: string;
  code: number;
}

export interface Dockerd {
  /** The docker CLI against this daemon, with its own client config (`work/client`). */
  docker(...args: string[]): Promise<DockerResult>;
  /** The docker CLI's config directory (holds config.json after `docker login`). */
  readonly clientConfig: string;
  /** Whether the daemon answered `docker version` (false: it exited or never answered in 30 s). */
  readonly started: boolean;
  /** Why it did not start, from the last line dockerd logged ("" when it started). */
  readonly failure: string;
  /** The last 4 KiB dockerd wrote to stderr. */
  log(): string;
  /** Stops the daemon and waits for it to exit. */
  stop(): Promise<void>;
}

export async function startDockerd(root: string, work: string, opts: DockerdOptions = {}): Promise<Dockerd> {
  await mkdir(work, { recursive: true });
  const sock = join(work, "docker.sock");
  const clientConfig = join(work, "client");
  await writeFile(join(work, "daemon.json"), "{}");
  // prettier-ignore
  const args = [
    "--config-file", join(work, "daemon.json"),
    "--iptables=false", "--ip6tables=false", "--bridge=none", "--ip-forward=false", "--ip-masq=false",
    `--storage-driver=${opts.storageDriver ?? "overlay2"}`, "--data-root", root,
    "--exec-root", join(work, "exec"), "--pidfile", join(work, "docker.pid"), "-H", `unix://${sock}`,
    "--add-runtime", `runc-norlimit=${RUNC_NORLIMIT}`,
    ...(opts.args ?? []),
  ];
  const child: ChildProcess = spawn(DOCKERD, args, { stdio: ["ignore", "ignore", "pipe"], env: opts.env ?? process.env });
  let tail = "";
  child.stderr!.on("data", (c: Buffer) => {
    tail = (tail + c.toString()).slice(-4096);
  });
  const timeout = opts.cliTimeoutMs ?? 180_000;
  const docker = (...a: string[]) =>
    new Promise<DockerResult>((resolve) => {
      const cli = execFile(DOCKER, ["-H", `unix://${sock}`, "--config", clientConfig, ...a], { maxBuffer: 64 * 1024 * 1024, timeout }, (err, stdout, stderr) => {
        resolve({ stdout, stderr, code: err ? (typeof err.code === "number" ? err.code : 1) : 0 });
      });
      cli.stdin?.end();
    });
  let started = false;
  for (let i = 0; i < 300 && child.exitCode === null; i++) {
    if (existsSync(sock) && (await docker("version")).code === 0) {
      started = true;
      break;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const failure = started ? "" : `dockerd did not start here: ${tail.trim().split("\n").at(-1) ?? "no answer within 30 s"}`;
  return {
    docker,
    clientConfig,
    started,
    failure,
    log: () => tail,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await exited;
    },
  };
}
