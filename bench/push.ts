/**
 * `npm run bench:push`: `strata copy` to and between registries against `skopeo copy`, in the
 * same run, on one image of N gzip layers of random data (incompressible: the registry path,
 * not compression, is measured):
 *   - oci -> registry          blobs read from an OCI layout, uploaded (POST + PATCH/PUT)
 *   - registry -> registry     blobs streamed from one registry to another, nothing on disk
 *   - store -> registry        `strata push --root` of the image pulled into a store (layers rebuilt
 *                              from tar-split and gzipped) against `docker push` of the same image
 *                              pulled by a private dockerd (root and Debian's docker.io; skipped
 *                              with one line otherwise)
 * Registries are Debian's docker-registry (distribution 2.8), a fresh one per measured run so
 * that no blob is there already and nothing can be mounted. Prints the median wall time, CPU
 * and peak RSS of RUNS rounds and the ratio of Strata's wall time to skopeo's. Not a test; the
 * first Strata result of each row is read back by skopeo (outside the timing) and its manifest
 * digest compared.
 *
 * The "floor s" column of the copy rows is the destination's own share, measured in the same
 * rounds: this process uploads the image from memory (every blob at once, POST + PUT each,
 * then the manifest), so no source is read and nothing verified. No client copies the image to
 * that registry on this machine faster; each tool's wall time less the floor is its own cost.
 *
 * Environment:
 *   STRATA_BENCH_PUSH_LAYERS  layers (default 5)
 *   STRATA_BENCH_PUSH_MIB     MiB per layer (default 64)
 *   STRATA_BENCH_RUNS         rounds; medians reported (default 3)
 * Every tool runs without NODE_EXTRA_CA_CERTS (lib.ts benchEnv); what it would add is printed
 * under the table.
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { buildGzipLayout } from "./layout.js";
import { benchEnv, http, nodeStartNote, pushMonolithic } from "./lib.js";
import { type Distribution, startDistribution } from "@strata/client/test-helpers/distribution.js";

const LAYERS = Number(process.env.STRATA_BENCH_PUSH_LAYERS ?? 5);
const MIB = Number(process.env.STRATA_BENCH_PUSH_MIB ?? 64);
const RUNS = Number(process.env.STRATA_BENCH_RUNS ?? 3);
// compiled to build/ts/bench/push.js
const STRATA = fileURLToPath(new URL("../../../packages/cli/bin/strata.js", import.meta.url));

const sha256 = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

/** An OCI layout (tag v1) of LAYERS gzip layers of random data; returns the manifest digest. */
function buildLayout(dir: string): string {
  return buildGzipLayout(dir, LAYERS, (i) => ({ [`random${i}.bin`]: randomBytes(MIB * 1024 * 1024) }), { gzipArgs: ["-1"] });
}

interface Measure {
  wall: number;
  rssMiB: number;
  cpu: number;
}

function timed(cmd: string, args: string[], env?: NodeJS.ProcessEnv): Measure {
  const r = spawnSync("/usr/bin/time", ["-f", "%e %M %U %S", cmd, ...args], { encoding: "utf8", maxBuffer: 64 * 1024 * 1024, env });
  const last = r.stderr.trim().split("\n").pop() ?? "";
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed: ${r.stderr.slice(-2000)}`);
  const [wall, kb, user, sys] = last.split(" ").map(Number);
  return { wall, rssMiB: kb / 1024, cpu: user + sys };
}

/**
 * The destination's floor (see the header): the layout's image uploaded from memory to `base`
 * as bench/dst:v1, blobs all at once; the wall time and this process's CPU.
 */
async function floorUpload(layout: string, manifestDigest: string, base: string): Promise<Measure> {
  const blob = (digest: string) => readFileSync(join(layout, "blobs", "sha256", digest.slice("sha256:".length)));
  const raw = blob(manifestDigest);
  const manifest = JSON.parse(raw.toString()) as { mediaType: string; config: { digest: string }; layers: { digest: string }[] };
  const digests = [manifest.config.digest, ...manifest.layers.map((l) => l.digest)];
  const bodies = digests.map(blob);
  const cpu0 = process.cpuUsage();
  const t = performance.now();
  await Promise.all(digests.map((d, i) => pushMonolithic(base, "bench/dst", bodies[i], d)));
  const put = await http("PUT", `${base}/v2/bench/dst/manifests/v1`, raw, { "Content-Type": manifest.mediaType });
  if (put.status !== 201) throw new Error(`floor: manifest PUT ${put.status} ${put.text}`);
  const wall = (performance.now() - t) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return { wall, rssMiB: 0, cpu: (cpu.user + cpu.system) / 1e6 };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const DOCKERD = "/usr/sbin/dockerd";
const DOCKER = "/usr/bin/docker";
const RUNC_NORLIMIT = fileURLToPath(new URL("../../../scripts/runc-norlimit", import.meta.url));

/** A private dockerd on a socket in `dir` (its own data root), or why not. */
async function startDockerd(dir: string): Promise<{ sock: string; stop(): Promise<void> } | string> {
  if (process.getuid?.() !== 0) return "needs root";
  if (!existsSync(DOCKERD) || !existsSync(DOCKER)) return "needs dockerd and docker (Debian package docker.io)";
  const sock = join(dir, "docker.sock");
  const args = ["--iptables=false", "--ip6tables=false", "--bridge=none", "--ip-forward=false", "--ip-masq=false", "--storage-driver=overlay2"];
  args.push("--data-root", join(dir, "root"), "--exec-root", join(dir, "exec"), "--pidfile", join(dir, "docker.pid"), "-H", `unix://${sock}`, "--add-runtime", `runc-norlimit=${RUNC_NORLIMIT}`);
  const child: ChildProcess = spawn(DOCKERD, args, { stdio: "ignore" });
  for (let i = 0; i < 300; i++) {
    if (existsSync(sock) && spawnSync(DOCKER, ["-H", `unix://${sock}`, "version"], { stdio: "ignore" }).status === 0) {
      return {
        sock,
        stop: async () => {
          if (child.exitCode !== null) return;
          const exited = new Promise((r) => child.once("exit", r));
          child.kill("SIGTERM");
          await exited;
        },
      };
    }
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill("SIGKILL");
  return "dockerd did not start";
}

async function main(): Promise<void> {
  for (const bin of ["skopeo", "docker-registry", "tar", "gzip", "/usr/bin/time"]) {
    if (spawnSync("sh", ["-c", `command -v ${bin}`]).status !== 0) throw new Error(`bench:push needs ${bin}`);
  }
  if (!existsSync(STRATA)) throw new Error("run `npm run build` first");
  const dir = mkdtempSync(join(tmpdir(), "strata-bench-push-"));
  // skopeo keeps a blob-info cache (mount candidates) per user: a private one, so no run helps another
  const home = join(dir, "home");
  const env = benchEnv({ HOME: home, DOCKER_CONFIG: join(dir, "docker") });
  mkdirSync(home, { recursive: true });
  let source: Distribution | undefined;
  try {
    process.stderr.write(`building ${LAYERS} x ${MIB} MiB layers...\n`);
    const layout = join(dir, "layout");
    const digest = buildLayout(layout);
    source = await startDistribution();
    execFileSync("skopeo", ["copy", "-q", "--preserve-digests", "--dest-tls-verify=false", `oci:${layout}:v1`, `docker://${source.host}/bench/src:v1`], { env });
    const scenarios: { name: string; src: string }[] = [
      { name: "oci -> registry", src: `oci:${layout}:v1` },
      { name: "registry -> registry", src: `docker://${source.host}/bench/src:v1` },
    ];
    const rows: string[][] = [];
    const row = (name: string, runs: Map<string, Measure[]>, peer: string) => {
      const med = (tool: string, k: keyof Measure) => median(runs.get(tool)!.map((m) => m[k]));
      rows.push([
        `${name} (vs ${peer})`,
        med("strata", "wall").toFixed(2),
        med(peer, "wall").toFixed(2),
        (med("strata", "wall") / med(peer, "wall")).toFixed(2),
        runs.has("floor") ? med("floor", "wall").toFixed(2) : "-",
        med("strata", "cpu").toFixed(2),
        med(peer, "cpu").toFixed(2),
        med("strata", "rssMiB").toFixed(0),
        med(peer, "rssMiB").toFixed(0),
      ]);
    };
    for (const s of scenarios) {
      const runs = new Map<string, Measure[]>([
        ["strata", []],
        ["skopeo", []],
        ["floor", []],
      ]);
      for (let round = 0; round < RUNS; round++) {
        for (const tool of ["strata", "skopeo", "floor"]) {
          const dest = await startDistribution();
          try {
            const to = `docker://${dest.host}/bench/dst:v1`;
            const m =
              tool === "strata"
                ? timed(process.execPath, [STRATA, "copy", "-q", s.src, to], env)
                : tool === "skopeo"
                  ? timed("skopeo", ["copy", "-q", "--preserve-digests", "--src-tls-verify=false", "--dest-tls-verify=false", s.src, to], env)
                  : await floorUpload(layout, digest, `http://${dest.host}`);
            if (tool === "strata" && round === 0) {
              const raw = execFileSync("skopeo", ["inspect", "--raw", "--tls-verify=false", to], { env });
              if (sha256(raw) !== digest) throw new Error(`${s.name}: strata's manifest digest differs`);
              execFileSync("skopeo", ["copy", "-q", "--src-tls-verify=false", to, `oci:${join(dir, "check")}:x`], { env });
              rmSync(join(dir, "check"), { recursive: true, force: true });
            }
            runs.get(tool)!.push(m);
          } finally {
            await dest.stop();
          }
        }
      }
      row(s.name, runs, "skopeo");
    }
    // store -> registry: strata push against docker push of the same image
    const dockerDir = join(dir, "dockerd");
    mkdirSync(dockerDir);
    const dockerd = await startDockerd(dockerDir);
    let skipped: string | undefined;
    if (typeof dockerd === "string") skipped = dockerd;
    else {
      try {
        const srcRef = `${source.host}/bench/src:v1`;
        const store = join(dir, "store");
        execFileSync(process.execPath, [STRATA, "pull", "-q", "--root", store, srcRef], { env, stdio: "ignore" });
        const docker = (...args: string[]): [string, string[]] => [DOCKER, ["-H", `unix://${dockerd.sock}`, ...args]];
        execFileSync(...docker("pull", "-q", srcRef), { stdio: "ignore" });
        const runs = new Map<string, Measure[]>([
          ["strata", []],
          ["docker", []],
        ]);
        for (let round = 0; round < RUNS; round++) {
          for (const tool of ["strata", "docker"]) {
            const dest = await startDistribution();
            try {
              const to = `${dest.host}/bench/pushed:v1`;
              if (tool === "docker") execFileSync(...docker("tag", srcRef, to));
              const m = tool === "strata" ? timed(process.execPath, [STRATA, "push", "-q", "--root", store, srcRef, to], env) : timed(...docker("push", "-q", to), env);
              if (tool === "docker") execFileSync(...docker("rmi", to), { stdio: "ignore" });
              if (tool === "strata" && round === 0) execFileSync("skopeo", ["copy", "-q", "--src-tls-verify=false", `docker://${to}`, `oci:${join(dir, "check")}:x`], { env });
              rmSync(join(dir, "check"), { recursive: true, force: true });
              runs.get(tool)!.push(m);
            } finally {
              await dest.stop();
            }
          }
        }
        row("store -> registry (push)", runs, "docker");
      } finally {
        await dockerd.stop();
      }
    }
    const head = ["copy", "strata s", "peer s", "strata / peer", "floor s", "strata CPU s", "peer CPU s", "strata RSS MiB", "peer RSS MiB"];
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
    const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
    console.log(`copy of ${LAYERS} x ${MIB} MiB gzip layers (random data) to distribution 2.8 on loopback, median of ${RUNS}`);
    console.log(line(head));
    console.log(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`);
    for (const r of rows) console.log(line(r));
    if (skipped) console.log(`store -> registry (strata push vs docker push): skipped: ${skipped}`);
    const note = nodeStartNote();
    if (note) console.log(note);
  } finally {
    await source?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
