/**
 * `npm run bench:proxy`: Strata as a pull-through cache vs distribution's proxy mode
 * (Debian's docker-registry with `proxy.remoteurl`), both in front of the same upstream
 * docker-registry holding one image of N layers of random data, measured in the same run.
 *
 * A pull here is what a client does: GET the manifest, then GET every blob, all at once; each
 * body is read to its end and its digest checked. Rows:
 *   - cold first byte: from sending the largest layer's GET to its first body byte, on an empty cache
 *   - cold pull: the whole pull on an empty cache (each mirror fetches from the upstream)
 *   - warm pull: the same pull again (served from the cache)
 * The upstream can be slowed to a given rate (as a remote registry would be) by a stub in front
 * of it, so that "serving while fetching" is visible.
 *
 * Environment:
 *   STRATA_BENCH_PROXY_LAYERS  layers (default 5)
 *   STRATA_BENCH_PROXY_MIB     MiB per layer (default 16)
 *   STRATA_BENCH_PROXY_RATE    upstream MiB/s for blob bodies (default 64; 0 = unthrottled)
 *   STRATA_BENCH_RUNS          rounds; the best of each is reported (default 1)
 */
import { createHash, randomBytes } from "node:crypto";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildOciLayout } from "../test/helpers/oci-layout.js";
import { freePort, mustRun, startStrata } from "../test/helpers/strata.js";
import { startStub } from "../test/helpers/upstream.js";
import { printTable, startDistribution, type TableRow } from "./lib.js";

const LAYERS = Number(process.env.STRATA_BENCH_PROXY_LAYERS ?? 5);
const MIB = Number(process.env.STRATA_BENCH_PROXY_MIB ?? 16);
const RATE = Number(process.env.STRATA_BENCH_PROXY_RATE ?? 64);
const RUNS = Number(process.env.STRATA_BENCH_RUNS ?? 1);

interface Mirror {
  url: string;
  stop(): Promise<void>;
}

/** docker-registry in proxy mode in front of `remote`. */
async function distributionProxy(remote: string): Promise<Mirror> {
  const dir = await mkdtemp(join(tmpdir(), "bench-proxy-dist-"));
  const port = await freePort();
  const cfg = join(dir, "config.yml");
  await writeFile(
    cfg,
    `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${dir}/data\nhttp:\n  addr: 127.0.0.1:${port}\nproxy:\n  remoteurl: ${remote}\n`,
  );
  const child = spawn("docker-registry", ["serve", cfg], { stdio: "ignore" });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${url}/v2/`)).status < 500) break;
    } catch {
      if (i > 200) throw new Error("docker-registry (proxy) did not start");
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return {
    url,
    async stop() {
      child.kill("SIGTERM");
      await new Promise((r) => child.once("exit", r));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function strataProxy(remote: string): Promise<Mirror> {
  const root = mkdtempSync(join(tmpdir(), "bench-proxy-strata-"));
  const s = await startStrata({ storage: { driver: "filesystem", filesystem: { root } }, proxy: { remoteurl: remote } });
  return {
    url: s.url,
    async stop() {
      await s.stop();
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/** GET with node:http; resolves with time to first body byte and to the end (s), and the body's digest. */
function get(url: string, accept?: string): Promise<{ first: number; total: number; digest: string; body?: Buffer }> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const s = (t: bigint) => Number(t - t0) / 1e9;
    const req = request(url, { headers: accept ? { Accept: accept } : {} }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        reject(new Error(`GET ${url}: ${res.statusCode}`));
        return;
      }
      const h = createHash("sha256");
      let first = -1;
      const keep: Buffer[] = [];
      res.on("data", (c: Buffer) => {
        if (first < 0) first = s(process.hrtime.bigint());
        h.update(c);
        if (accept) keep.push(c);
      });
      res.on("end", () => resolve({ first, total: s(process.hrtime.bigint()), digest: `sha256:${h.digest("hex")}`, body: accept ? Buffer.concat(keep) : undefined }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

/** One pull: manifest, then every blob at once. Returns the largest layer's first byte and the total time. */
async function pull(base: string, repo: string, largest: string): Promise<{ first: number; total: number }> {
  const t0 = process.hrtime.bigint();
  const m = await get(`${base}/v2/${repo}/manifests/v1`, "application/vnd.oci.image.manifest.v1+json");
  const manifest = JSON.parse(m.body!.toString()) as { config: { digest: string }; layers: { digest: string }[] };
  const digests = [manifest.config.digest, ...manifest.layers.map((l) => l.digest)];
  const results = await Promise.all(digests.map((d) => get(`${base}/v2/${repo}/blobs/${d}`).then((r) => ({ d, r }))));
  for (const { d, r } of results) if (r.digest !== d) throw new Error(`${base}: blob ${d} came back as ${r.digest}`);
  return { first: results.find((x) => x.d === largest)!.r.first, total: Number(process.hrtime.bigint() - t0) / 1e9 };
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), "strata-bench-proxy-"));
  const upstream = await startDistribution();
  const stub = await startStub(upstream.url);
  try {
    process.stderr.write(`building and pushing ${LAYERS} x ${MIB} MiB layers...\n`);
    const sizes = Array.from({ length: LAYERS }, (_, i) => MIB * 1024 * 1024 - i * 4096);
    const image = await buildOciLayout(
      join(work, "img"),
      "v1",
      sizes.map((n, i) => [{ type: "file" as const, path: `data${i}.bin`, content: randomBytes(n) }]),
    );
    await mustRun("skopeo", ["copy", "-q", "--dest-tls-verify=false", "--preserve-digests", `oci:${image.dir}:v1`, `docker://${upstream.host}/bench/proxy:v1`]);
    const largest = [...image.layers].sort((a, b) => b.size - a.size)[0].digest;
    if (RATE > 0) {
      stub.mode = "throttle";
      stub.rate = RATE * 1024 * 1024;
    }
    const best: Record<string, { first: number; cold: number; warm: number }> = {};
    for (let round = 0; round < RUNS; round++) {
      for (const [name, start] of [
        ["strata", strataProxy],
        ["distribution", distributionProxy],
      ] as const) {
        const mirror = await start(stub.url);
        try {
          const cold = await pull(mirror.url, "bench/proxy", largest);
          const warm = await pull(mirror.url, "bench/proxy", largest);
          const b = best[name];
          best[name] = b ? { first: Math.min(b.first, cold.first), cold: Math.min(b.cold, cold.total), warm: Math.min(b.warm, warm.total) } : { first: cold.first, cold: cold.total, warm: warm.total };
        } finally {
          await mirror.stop();
        }
      }
    }
    const s = best.strata;
    const d = best.distribution;
    const mib = sizes.reduce((a, b) => a + b, 0) / 1024 / 1024;
    console.log(
      `pull of ${LAYERS} x ${MIB} MiB layers through a pull-through cache; upstream ${RATE > 0 ? `throttled to ${RATE} MiB/s per blob` : "unthrottled"}; best of ${RUNS}`,
    );
    const rows: TableRow[] = [
      { metric: "cold: first byte of the largest layer", unit: "ms", strata: s.first * 1000, peer: d.first * 1000, better: "lower", target: "<= 0.5x" },
      { metric: "cold pull", unit: "s", strata: s.cold, peer: d.cold, better: "lower" },
      { metric: "warm pull", unit: "MiB/s", strata: mib / s.warm, peer: mib / d.warm, better: "higher", target: ">= 1x" },
    ];
    printTable("distribution proxy", rows);
  } finally {
    await stub.close();
    await upstream.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
