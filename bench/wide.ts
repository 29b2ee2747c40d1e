/**
 * `npm run bench:wide`: memory and time on a wide layer, one directory of N empty files
 * (default one million), against GNU tools on the same tree in the same run:
 *   - `strata pull` of the image (peer: GNU tar extracting the same layer tar);
 *   - `strata export -o` of the image (peer: GNU tar archiving the extracted tree);
 *   - `strata rmi` of the image (peer: `rm -rf` of a copy of the tree made by `strata export --dir`);
 *   - `strata pull` of the same layer with a wrong diffID in the config, so the extracted layer is
 *     thrown away (peer: GNU tar extracting it, then `rm -rf`).
 * Peak RSS is sampled from /proc every 50 ms; the target is <= 512 MiB for every strata row. The
 * image is served by Debian's docker-registry. Not a test.
 *
 * Environment: STRATA_BENCH_WIDE_FILES (default 1000000); STRATA_BENCH_WIDE_ONLY=failed runs only
 * the last case (the issue's: 2.5 million files with a wrong diffID).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { fileURLToPath } from "node:url";
import { createGzip } from "node:zlib";
import { http, printTable, pushMonolithic, sampleRss, startDistribution, type TableRow } from "./lib.js";

const FILES = Number(process.env.STRATA_BENCH_WIDE_FILES ?? 1_000_000);
const ONLY_FAILED = process.env.STRATA_BENCH_WIDE_ONLY === "failed";
// compiled to build/ts/bench/wide.js
const STRATA = fileURLToPath(new URL("../../../packages/cli/bin/strata.js", import.meta.url));
const MiB = 1024 * 1024;

function octal(n: number, width: number): string {
  return `${n.toString(8).padStart(width - 1, "0")}\0`;
}

function header(name: string, type: "0" | "5", mode: number): Buffer {
  const b = Buffer.alloc(512);
  b.write(name, 0, 100, "latin1");
  b.write(octal(mode, 8), 100);
  b.write(octal(0, 8), 108);
  b.write(octal(0, 8), 116);
  b.write(octal(0, 12), 124);
  b.write(octal(1_700_000_000, 12), 136);
  b.write(type, 156);
  b.write("ustar\u000000", 257, "latin1");
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const c of b) sum += c;
  b.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "latin1");
  return b;
}

/** Writes the layer tar (one directory of FILES empty files) and returns its sha256 and size. */
async function writeLayer(file: string): Promise<{ diffId: string; size: number }> {
  const hash = createHash("sha256");
  let size = 0;
  async function* blocks() {
    const batch: Buffer[] = [header("wide/", "5", 0o755)];
    for (let i = 0; i < FILES; i++) {
      batch.push(header(`wide/f${i.toString().padStart(7, "0")}`, "0", 0o644));
      if (batch.length >= 2048) yield Buffer.concat(batch.splice(0));
    }
    batch.push(Buffer.alloc(1024));
    yield Buffer.concat(batch);
  }
  const out = createWriteStream(file);
  await pipeline(
    blocks(),
    async function* (src) {
      for await (const c of src) {
        hash.update(c as Buffer);
        size += (c as Buffer).length;
        yield c;
      }
    },
    out,
  );
  return { diffId: `sha256:${hash.digest("hex")}`, size };
}

const sha256 = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

async function pushImage(base: string, repo: string, layerGz: Buffer, diffId: string): Promise<void> {
  const layerDigest = sha256(layerGz);
  await pushMonolithic(base, repo, layerGz, layerDigest);
  const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", config: {}, rootfs: { type: "layers", diff_ids: [diffId] } }));
  await pushMonolithic(base, repo, config, sha256(config));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha256(config), size: config.length },
      layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: layerDigest, size: layerGz.length }],
    }),
  );
  const r = await http("PUT", `${base}/v2/${repo}/manifests/v1`, manifest, { "Content-Type": "application/vnd.oci.image.manifest.v1+json" });
  if (r.status !== 201) throw new Error(`manifest PUT ${r.status} ${r.text}`);
}

/** Runs a command to its end; returns seconds, peak RSS (bytes) and the exit code. */
async function measure(cmd: string, args: string[], opts: { cwd?: string } = {}): Promise<{ secs: number; rss: number; code: number; stderr: string }> {
  const t = process.hrtime.bigint();
  const child: ChildProcess = spawn(cmd, args, { cwd: opts.cwd, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.on("data", (d) => {
    stderr += d;
  });
  const sampler = sampleRss(child.pid as number);
  const code = await new Promise<number>((r) => child.once("exit", (c) => r(c ?? 1)));
  const rss = sampler.stop();
  return { secs: Number(process.hrtime.bigint() - t) / 1e9, rss, code, stderr };
}

function must(what: string, r: { code: number; stderr: string }, expect = 0): void {
  if (r.code !== expect) throw new Error(`${what} exited ${r.code} (expected ${expect}): ${r.stderr.trim()}`);
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), "strata-bench-wide-"));
  const reg = await startDistribution();
  try {
    process.stderr.write(`building a layer of ${FILES} empty files in one directory...\n`);
    const tarFile = join(work, "layer.tar");
    const { diffId } = await writeLayer(tarFile);
    const gzFile = join(work, "layer.tar.gz");
    await pipeline(createReadStream(tarFile), createGzip({ level: 1 }), createWriteStream(gzFile));
    const gz = readFileSync(gzFile);
    await pushImage(reg.url, "bench/wide", gz, diffId);
    await pushImage(reg.url, "bench/wide-bad", gz, sha256(Buffer.from("not the layer")));
    const root = join(work, "root");
    const rows: TableRow[] = [];
    const row = (metric: string, s: { secs: number; rss: number }, p: { secs: number; rss: number }) => {
      rows.push({ metric: `${metric} peak RSS`, unit: "MiB", strata: s.rss / MiB, peer: p.rss / MiB, better: "lower", target: "strata <= 512 MiB" });
      rows.push({ metric: `${metric} time`, unit: "s", strata: s.secs, peer: p.secs, better: "lower" });
    };

    const gnuX = join(work, "gnu-extract");
    if (!ONLY_FAILED) {
      process.stderr.write("pull...\n");
      const pull = await measure(process.execPath, [STRATA, "pull", "-q", `${reg.host}/bench/wide:v1`, "--root", root]);
      must("strata pull", pull);
      mkdirSync(gnuX);
      const untar = await measure("tar", ["-xf", tarFile, "-C", gnuX]);
      must("tar -x", untar);
      row("pull vs tar -x", pull, untar);

      process.stderr.write("export...\n");
      const exp = await measure(process.execPath, [STRATA, "export", `${reg.host}/bench/wide:v1`, "-o", join(work, "export.tar"), "--root", root]);
      must("strata export", exp);
      const gnuC = await measure("tar", ["-cf", join(work, "gnu.tar"), "-C", gnuX, "."]);
      must("tar -c", gnuC);
      row("export -o vs tar -c", exp, gnuC);
      rmSync(join(work, "export.tar"));
      rmSync(join(work, "gnu.tar"));

      process.stderr.write("rmi...\n");
      const rmi = await measure(process.execPath, [STRATA, "rmi", `${reg.host}/bench/wide:v1`, "--root", root]);
      must("strata rmi", rmi);
      const rmrf = await measure("rm", ["-rf", gnuX]);
      must("rm -rf", rmrf);
      row("rmi vs rm -rf", rmi, rmrf);
    }

    process.stderr.write("pull with a wrong diffID...\n");
    const bad = await measure(process.execPath, [STRATA, "pull", "-q", `${reg.host}/bench/wide-bad:v1`, "--root", root]);
    must("strata pull (wrong diffID)", bad, 1);
    mkdirSync(gnuX);
    const t0 = process.hrtime.bigint();
    const x2 = await measure("tar", ["-xf", tarFile, "-C", gnuX]);
    const r2 = await measure("rm", ["-rf", gnuX]);
    const peer = { secs: Number(process.hrtime.bigint() - t0) / 1e9, rss: Math.max(x2.rss, r2.rss) };
    row("failed pull vs tar -x + rm -rf", bad, peer);

    process.stdout.write(`\nbench:wide, ${FILES} empty files in one directory (peer: GNU tar / rm)\n\n`);
    printTable("GNU", rows);
  } finally {
    await reg.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
