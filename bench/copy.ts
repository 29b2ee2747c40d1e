/**
 * `npm run bench:copy`: `strata copy` against `skopeo copy` between local transports, in the
 * same run, on one image of N layers (each half random bytes, half text):
 *   - oci -> oci               blobs streamed and verified, nothing recompressed
 *   - docker-archive -> oci    uncompressed layers gzipped on the way
 *   - oci -> docker-archive    gzip layers decompressed and checked against their diffIDs
 *   - oci -> oci-archive       blobs streamed into a tar
 * Prints wall time, CPU and peak RSS (fastest of the rounds) and the ratio of Strata's wall time
 * to skopeo's. Not a test; the first Strata result of each row is read back by skopeo (outside the
 * timing) so that a broken fast path cannot be measured.
 *
 * Environment:
 *   STRATA_BENCH_COPY_LAYERS  layers (default 3)
 *   STRATA_BENCH_COPY_MIB     MiB per layer (default 32)
 *   STRATA_BENCH_RUNS         rounds; the fastest of each tool is reported (default 2)
 */
import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { buildGzipLayout } from "./layout.js";

const LAYERS = Number(process.env.STRATA_BENCH_COPY_LAYERS ?? 3);
const MIB = Number(process.env.STRATA_BENCH_COPY_MIB ?? 32);
const RUNS = Number(process.env.STRATA_BENCH_RUNS ?? 2);
// compiled to build/ts/bench/copy.js
const STRATA = fileURLToPath(new URL("../../../packages/cli/bin/strata.js", import.meta.url));

/** An OCI layout (tag v1) of LAYERS gzip layers, each half random, half text. */
function buildLayout(dir: string): void {
  const half = (MIB * 1024 * 1024) / 2;
  buildGzipLayout(dir, LAYERS, (i) => {
    const line = `layer ${i} ${"the quick brown fox jumps over the lazy dog ".repeat(2)}\n`;
    return { [`random${i}.bin`]: randomBytes(half), [`text${i}.txt`]: line.repeat(Math.ceil(half / line.length)).slice(0, half) };
  });
}

interface Measure {
  wall: number;
  rssMiB: number;
  cpu: number;
}

function timed(cmd: string, args: string[]): Measure {
  const r = spawnSync("/usr/bin/time", ["-f", "%e %M %U %S", cmd, ...args], { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  const last = r.stderr.trim().split("\n").pop() ?? "";
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed: ${r.stderr.slice(-2000)}`);
  const [wall, kb, user, sys] = last.split(" ").map(Number);
  return { wall, rssMiB: kb / 1024, cpu: user + sys };
}

async function main(): Promise<void> {
  for (const bin of ["skopeo", "tar", "gzip", "/usr/bin/time"]) {
    if (spawnSync("sh", ["-c", `command -v ${bin}`]).status !== 0) throw new Error(`bench:copy needs ${bin}`);
  }
  if (!existsSync(STRATA)) throw new Error("run `npm run build` first");
  const dir = mkdtempSync(join(tmpdir(), "strata-bench-copy-"));
  try {
    process.stderr.write(`building ${LAYERS} x ${MIB} MiB layers...\n`);
    const layout = join(dir, "layout");
    buildLayout(layout);
    const archive = join(dir, "image.docker.tar");
    execFileSync("skopeo", ["copy", "-q", `oci:${layout}:v1`, `docker-archive:${archive}:bench/copy:v1`]);
    const scenarios: { name: string; src: string; dst: (out: string) => string; readBack: (out: string) => string }[] = [
      { name: "oci -> oci", src: `oci:${layout}:v1`, dst: (o) => `oci:${o}:v1`, readBack: (o) => `oci:${o}:v1` },
      { name: "docker-archive -> oci (gzip)", src: `docker-archive:${archive}`, dst: (o) => `oci:${o}:v1`, readBack: (o) => `oci:${o}:v1` },
      { name: "oci -> docker-archive (gunzip)", src: `oci:${layout}:v1`, dst: (o) => `docker-archive:${o}.tar:bench/copy:v1`, readBack: (o) => `docker-archive:${o}.tar` },
      { name: "oci -> oci-archive", src: `oci:${layout}:v1`, dst: (o) => `oci-archive:${o}.tar:v1`, readBack: (o) => `oci-archive:${o}.tar:v1` },
    ];
    const rows: string[][] = [];
    for (const s of scenarios) {
      const best = new Map<string, Measure>();
      for (let round = 0; round < RUNS; round++) {
        for (const tool of ["strata", "skopeo"]) {
          const out = join(dir, `out-${tool}-${round}`);
          const m =
            tool === "strata" ? timed(process.execPath, [STRATA, "copy", "-q", s.src, s.dst(out)]) : timed("skopeo", ["copy", "-q", s.src, s.dst(out)]);
          if (tool === "strata" && round === 0) execFileSync("skopeo", ["copy", "-q", s.readBack(out), `oci:${join(dir, "check")}:x`]);
          rmSync(join(dir, "check"), { recursive: true, force: true });
          rmSync(out, { recursive: true, force: true });
          rmSync(`${out}.tar`, { force: true });
          const prev = best.get(tool);
          if (!prev || m.wall < prev.wall) best.set(tool, m);
        }
      }
      const st = best.get("strata")!;
      const sk = best.get("skopeo")!;
      rows.push([s.name, st.wall.toFixed(2), sk.wall.toFixed(2), (st.wall / sk.wall).toFixed(2), st.cpu.toFixed(2), sk.cpu.toFixed(2), st.rssMiB.toFixed(0), sk.rssMiB.toFixed(0)]);
    }
    const head = ["copy", "strata s", "skopeo s", "strata / skopeo", "strata CPU s", "skopeo CPU s", "strata RSS MiB", "skopeo RSS MiB"];
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
    const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
    console.log(`copy of ${LAYERS} x ${MIB} MiB layers (half random, half text), fastest of ${RUNS}`);
    console.log(line(head));
    console.log(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`);
    for (const r of rows) console.log(line(r));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
