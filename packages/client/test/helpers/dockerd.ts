/**
 * Debian's dockerd for tests: overlay2 on a given data root (a store Strata wrote, or its own),
 * no networking of its own, its socket, exec root and pid file under `work`, and the project's
 * `scripts/runc-norlimit` runtime (runc without the rlimits this sandbox refuses).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { run } from "./distribution.js";

export const DOCKERD = "/usr/sbin/dockerd";
export const DOCKER = "/usr/bin/docker";
/** Statically linked tini, shipped with docker.io: a program to run in test images. */
export const TINI = "/usr/bin/docker-init";
export const RUNC_NORLIMIT = new URL("../../../../../scripts/runc-norlimit", import.meta.url).pathname;

export interface Dockerd {
  /** The docker CLI against this daemon. */
  docker(...args: string[]): ReturnType<typeof run>;
  /** Whether the daemon answered `docker version` (false: it exited or never answered in 30 s). */
  readonly started: boolean;
  /** Stops the daemon and waits for it to exit. */
  stop(): Promise<void>;
}

export async function startDockerd(root: string, work: string): Promise<Dockerd> {
  await mkdir(work, { recursive: true });
  const sock = join(work, "docker.sock");
  const child: ChildProcess = spawn(
    DOCKERD,
    [
      "--iptables=false",
      "--ip6tables=false",
      "--bridge=none",
      "--ip-forward=false",
      "--ip-masq=false",
      "--storage-driver=overlay2",
      "--data-root",
      root,
      "--exec-root",
      join(work, "exec"),
      "--pidfile",
      join(work, "docker.pid"),
      "-H",
      `unix://${sock}`,
      "--add-runtime",
      `runc-norlimit=${RUNC_NORLIMIT}`,
    ],
    { stdio: "ignore" },
  );
  const docker = (...args: string[]) => run(DOCKER, ["-H", `unix://${sock}`, ...args]);
  let started = false;
  for (let i = 0; i < 300 && child.exitCode === null; i++) {
    if (existsSync(sock) && (await docker("version")).code === 0) {
      started = true;
      break;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    docker,
    started,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await exited;
    },
  };
}
