/**
 * PRIVATE Redis servers for failover tests, on free loopback ports in temp dirs:
 * - `startRedisGroup`: a master, one replica and three sentinels (Debian's redis-server and
 *   redis-sentinel);
 * - `startDurableRedis`: one redis-server that writes every command to its append-only file,
 *   so that it can be killed and restarted with its data.
 * Every process is one this helper spawned and only those pids are signalled; the shared Redis
 * on 6379 is never touched. Without the tools the start functions return undefined with
 * `sentinelSkipReason` set (the caller skips with that line).
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { freePort } from "./strata.js";

const execFileP = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const MASTER_NAME = "strata";

export let sentinelSkipReason = "";

function onPath(cmd: string): boolean {
  return (process.env.PATH ?? "").split(":").some((d) => d && existsSync(join(d, cmd)));
}

/** redis-cli against a port; undefined when nothing answers. */
export async function redisCli(port: number, ...args: string[]): Promise<string | undefined> {
  try {
    return (await execFileP("redis-cli", ["-h", "127.0.0.1", "-p", String(port), ...args], { timeout: 3000 })).stdout.trim();
  } catch {
    return undefined;
  }
}

async function until(what: string, ok: () => Promise<boolean>, timeoutMs: number): Promise<number> {
  const t0 = Date.now();
  while (!(await ok())) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`${what} within ${timeoutMs} ms`);
    await sleep(50);
  }
  return Date.now() - t0;
}

export interface RedisGroup {
  /** "127.0.0.1:port" of each sentinel, as redis.sentinels takes them. */
  readonly sentinels: string[];
  /** The port of the master the sentinels currently name. */
  master(): Promise<number | undefined>;
  /** The data ports (both nodes). */
  readonly nodes: number[];
  /** SIGKILL of the current master; resolves once the sentinels promoted the replica (ms taken). */
  killMaster(): Promise<{ killed: number; promoted: number; ms: number }>;
  /** Starts a node again (empty); the sentinels turn it into a replica of the current master. Resolves once it is in sync. */
  restart(port: number): Promise<void>;
  /** SENTINEL FAILOVER: the replica becomes master while both run; resolves once switched (ms taken). */
  failover(): Promise<number>;
  close(): Promise<void>;
}

export async function startRedisGroup(): Promise<RedisGroup | undefined> {
  for (const cmd of ["redis-server", "redis-sentinel", "redis-cli"]) {
    if (!onPath(cmd)) {
      sentinelSkipReason = `${cmd} is not installed (Debian packages redis-server, redis-sentinel, redis-tools)`;
      return undefined;
    }
  }
  const dir = await mkdtemp(join(tmpdir(), "strata-sentinel-"));
  const children = new Map<number, ChildProcess>();
  const spawnTracked = (port: number, cmd: string, args: string[]) => {
    const c = spawn(cmd, args, { stdio: "ignore", cwd: dir });
    children.set(port, c);
    c.once("exit", () => {
      if (children.get(port) === c) children.delete(port);
    });
  };
  const ports: number[] = [];
  while (ports.length < 5) {
    const p = await freePort();
    if (!ports.includes(p)) ports.push(p);
  }
  const [m, r, ...s] = ports;
  const node = (port: number, replicaOf?: number) => {
    const args = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir, "--dbfilename", `dump-${port}.rdb`];
    if (replicaOf) args.push("--replicaof", "127.0.0.1", String(replicaOf));
    spawnTracked(port, "redis-server", args);
  };
  const group: RedisGroup = {
    sentinels: s.map((p) => `127.0.0.1:${p}`),
    nodes: [m, r],
    async master() {
      for (const p of s) {
        const out = await redisCli(p, "sentinel", "get-master-addr-by-name", MASTER_NAME);
        const port = Number(out?.split("\n")[1]);
        if (port) return port;
      }
      return undefined;
    },
    async killMaster() {
      const killed = (await group.master())!;
      const promoted = group.nodes.find((p) => p !== killed)!;
      const c = children.get(killed);
      const exited = new Promise((res) => c?.once("exit", res));
      c?.kill("SIGKILL");
      await exited;
      const ms = await until("the sentinels did not promote the replica", async () => (await group.master()) === promoted && (await redisCli(promoted, "role"))?.startsWith("master") === true, 30_000);
      return { killed, promoted, ms };
    },
    async restart(port) {
      const master = (await group.master())!;
      node(port, master);
      await until(`node ${port} did not come back in sync`, async () => /master_link_status:up/.test((await redisCli(port, "info", "replication")) ?? ""), 30_000);
      // the sentinels must know it as a replica before the next failover
      await until("the sentinels did not see the replica", async () => {
        const out = await redisCli(s[0], "sentinel", "replicas", MASTER_NAME);
        return out !== undefined && out.includes(String(port)) && !out.includes("s_down");
      }, 30_000);
    },
    async failover() {
      const before = (await group.master())!;
      const t0 = Date.now();
      for (;;) {
        const out = await redisCli(s[0], "sentinel", "failover", MASTER_NAME);
        if (out === "OK") break;
        if (Date.now() - t0 > 30_000) throw new Error(`SENTINEL FAILOVER refused: ${out}`);
        await sleep(200);
      }
      await until("the manual failover did not switch the master", async () => {
        const now = await group.master();
        return now !== undefined && now !== before && (await redisCli(now, "role"))?.startsWith("master") === true;
      }, 30_000);
      return Date.now() - t0;
    },
    async close() {
      const all = [...children.values()];
      await Promise.all(
        all.map(
          (c) =>
            new Promise<void>((res) => {
              if (c.exitCode !== null || c.signalCode !== null) return res();
              c.once("exit", () => res());
              c.kill("SIGKILL");
            }),
        ),
      );
      await rm(dir, { recursive: true, force: true });
    },
  };
  try {
    node(m);
    node(r, m);
    await until("redis master did not start", async () => (await redisCli(m, "ping")) === "PONG", 10_000);
    await until("redis replica did not sync", async () => /master_link_status:up/.test((await redisCli(r, "info", "replication")) ?? ""), 10_000);
    for (const p of s) {
      const conf = join(dir, `sentinel-${p}.conf`);
      await writeFile(
        conf,
        [
          `port ${p}`,
          "bind 127.0.0.1",
          `dir ${dir}`,
          `sentinel monitor ${MASTER_NAME} 127.0.0.1 ${m} 2`,
          `sentinel down-after-milliseconds ${MASTER_NAME} 1000`,
          `sentinel failover-timeout ${MASTER_NAME} 4000`,
          `sentinel parallel-syncs ${MASTER_NAME} 1`,
          "",
        ].join("\n"),
      );
      spawnTracked(p, "redis-sentinel", [conf]);
    }
    await until("the sentinels did not find the replica", async () => {
      for (const p of s) {
        const out = await redisCli(p, "sentinel", "master", MASTER_NAME);
        if (!out || !/num-slaves\n1\b/.test(out) || !/num-other-sentinels\n2\b/.test(out)) return false;
      }
      return true;
    }, 30_000);
  } catch (e) {
    await group.close();
    throw e;
  }
  return group;
}

export interface DurableRedis {
  readonly port: number;
  readonly url: string;
  /** SIGKILL: requests fail at once; what was acknowledged stays in the append-only file. */
  kill(): Promise<void>;
  /** Starts it again with its data. */
  start(): Promise<void>;
  close(): Promise<void>;
}

export async function startDurableRedis(): Promise<DurableRedis | undefined> {
  if (!onPath("redis-server") || !onPath("redis-cli")) {
    sentinelSkipReason = "redis-server is not installed (Debian packages redis-server, redis-tools)";
    return undefined;
  }
  const dir = await mkdtemp(join(tmpdir(), "strata-redis-aof-"));
  const port = await freePort();
  let child: ChildProcess | undefined;
  const kill = async () => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once("exit", r));
    c.kill("SIGKILL");
    await exited;
  };
  const start = async () => {
    child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "yes", "--appendfsync", "always"], {
      stdio: "ignore",
    });
    await until("durable redis-server did not start", async () => (await redisCli(port, "ping")) === "PONG", 10_000);
  };
  await start();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    kill,
    start,
    async close() {
      await kill();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
