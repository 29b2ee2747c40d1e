/**
 * `npm run bench:pull`: pull one image of N layers of incompressible data from a local registry
 * (Debian's docker-registry, filesystem storage) with
 *   - `strata pull` into a fresh store (download, verify, gunzip, extract, tar-split),
 *   - Debian's `podman pull` with the overlay driver into a fresh root (same work),
 *   - `skopeo copy` to an OCI layout (download and verify only, no unpack),
 * and print wall time, peak RSS and the ratios to podman and skopeo. Not a test; but the first Strata pull is
 * checked with `strata verify` (outside the timing) so a broken fast path cannot be measured.
 *
 * Environment:
 *   STRATA_BENCH_PULL_LAYERS  layers (default 5)
 *   STRATA_BENCH_PULL_MIB     MiB of random data per layer (default 64)
 *   STRATA_BENCH_RUNS         rounds; the fastest of each tool is reported (default 2)
 * Every tool runs without NODE_EXTRA_CA_CERTS (lib.ts benchEnv); what it would add is printed
 * under the table.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { buildGzipLayout } from "./layout.js";
import { benchEnv, nodeStartNote, type Peer, startDistribution } from "./lib.js";

const LAYERS = Number(process.env.STRATA_BENCH_PULL_LAYERS ?? 5);
const MIB = Number(process.env.STRATA_BENCH_PULL_MIB ?? 64);
const RUNS = Number(process.env.STRATA_BENCH_RUNS ?? 2);
// compiled to build/ts/bench/pull.js
const STRATA = fileURLToPath(new URL("../../../packages/cli/bin/strata.js", import.meta.url));

/** `dir`/oci: an OCI layout (tag v1) of LAYERS gzip layers of random data. */
function buildLayout(dir: string): void {
  buildGzipLayout(join(dir, "oci"), LAYERS, (i) => ({ [`data${i}.bin`]: randomBytes(MIB * 1024 * 1024) }), { gzipArgs: ["-1"], history: true });
}

interface Measure {
  wall: number;
  rssMiB: number;
  /** user + system CPU seconds */
  cpu: number;
}

function timed(cmd: string, args: string[]): Measure {
  const r = spawnSync("/usr/bin/time", ["-f", "%e %M %U %S", cmd, ...args], { encoding: "utf8", maxBuffer: 64 * 1024 * 1024, env: benchEnv() });
  const last = r.stderr.trim().split("\n").pop() ?? "";
  if (r.status !== 0) throw new Error(`${cmd} failed: ${r.stderr.slice(-2000)}`);
  const [wall, kb, user, sys] = last.split(" ").map(Number);
  return { wall, rssMiB: kb / 1024, cpu: user + sys };
}

async function main(): Promise<void> {
  for (const bin of ["docker-registry", "skopeo", "podman", "/usr/bin/time"]) {
    if (spawnSync("sh", ["-c", `command -v ${bin}`]).status !== 0) throw new Error(`bench:pull needs ${bin}`);
  }
  if (!existsSync(STRATA)) throw new Error("run `npm run build` first");
  const dir = mkdtempSync(join(tmpdir(), "strata-bench-pull-"));
  let registry: Peer | undefined;
  try {
    process.stderr.write(`building ${LAYERS} x ${MIB} MiB layers...\n`);
    buildLayout(dir);
    registry = await startDistribution();
    const ref = `${registry.host}/bench/pull:v1`;
    execFileSync("skopeo", ["copy", "-q", "--dest-tls-verify=false", "--preserve-digests", `oci:${join(dir, "oci")}:v1`, `docker://${ref}`]);

    const tools: { name: string; run: (out: string) => Measure }[] = [
      { name: "strata pull", run: (out) => timed(process.execPath, [STRATA, "pull", "-q", ref, "--root", out]) },
      {
        name: "podman pull (overlay)",
        run: (out) =>
          timed("podman", ["--root", join(out, "root"), "--runroot", join(out, "run"), "--storage-driver", "overlay", "pull", "-q", "--tls-verify=false", ref]),
      },
      { name: "skopeo copy (no unpack)", run: (out) => timed("skopeo", ["copy", "-q", "--src-tls-verify=false", `docker://${ref}`, `oci:${out}:v1`]) },
    ];
    const best = new Map<string, Measure>();
    for (let round = 0; round < RUNS; round++) {
      for (const t of tools) {
        const out = join(dir, `out-${round}-${t.name.split(" ")[0]}`);
        const m = t.run(out);
        if (round === 0 && t.name === "strata pull") {
          // a fast pull is only worth measuring if it is right: rebuild every layer, check every diffID
          const v = spawnSync(process.execPath, [STRATA, "verify", "--root", out], { encoding: "utf8" });
          if (v.status !== 0) throw new Error(`strata verify failed after the pull: ${v.stdout}${v.stderr}`);
        }
        rmSync(out, { recursive: true, force: true });
        const prev = best.get(t.name);
        if (!prev || m.wall < prev.wall) best.set(t.name, m);
      }
    }
    const podman = best.get("podman pull (overlay)")!;
    const skopeo = best.get("skopeo copy (no unpack)")!;
    const rows = tools.map((t) => {
      const m = best.get(t.name)!;
      return [t.name, m.wall.toFixed(2), m.cpu.toFixed(2), m.rssMiB.toFixed(0), (m.wall / podman.wall).toFixed(2), (m.wall / skopeo.wall).toFixed(2)];
    });
    const head = ["tool", "wall s", "CPU s", "peak RSS MiB", "wall / podman", "wall / skopeo"];
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
    const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
    console.log(`pull of ${LAYERS} x ${MIB} MiB incompressible gzip layers from a local docker-registry, fastest of ${RUNS}`);
    console.log(line(head));
    console.log(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`);
    for (const r of rows) console.log(line(r));
    const note = nodeStartNote();
    if (note) console.log(note);
  } finally {
    await registry?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
