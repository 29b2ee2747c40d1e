/**
 * `npm run bench:registry`: Strata (`strata serve`, filesystem storage) against Debian's
 * docker-registry (CNCF distribution 2.8, filesystem storage), side by side on loopback, in
 * the same run. Prints one table with each metric for both and the ratio.
 *
 *   push   one blob of STRATA_BENCH_MIB MiB (default 256): POST, then PUT ?digest= with the body
 *   pull   GET of that blob (each of STRATA_BENCH_RUNS blobs pushed and pulled once; medians)
 *   pull64 64 concurrent GETs of distinct 8 MiB blobs, STRATA_BENCH_RUNS rounds (median rate)
 *   manifest GET by tag and by digest with 32 connections (wrk, 2 threads, 5 s); by digest again
 *            through a Strata with token authentication (Bearer token on every request) against
 *            distribution without auth, the two measured alternately in the same minute
 *   RSS    peak server RSS while 8 uploads of 1 GiB stream concurrently (POST, PATCH, PUT)
 *
 * STRATA_BENCH_ONLY=blobs measures only push, pull and pull64 (no wrk, no RSS run).
 *
 * Needs: docker-registry and wrk (Debian packages). Not a test: it asserts only integrity.
 *
 * Blob GET, before and after zero-copy sending (http/sendfile.ts), same machine, one run each:
 *   see the table in the closing note of issue 16 (filled from this benchmark's output).
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { run, startStrata } from "../test/helpers/strata.js";
import { minimalImage, sha256 as sha } from "../test/helpers/oci-layout.js";
import { bigDigest, bigStream, http, type Peer, printTable, pushMonolithic, pushStreamed, sampleRss, startDistribution, type TableRow, time } from "./lib.js";

const MiB = 1024 * 1024;
const SIZE = Number(process.env.STRATA_BENCH_MIB ?? 256) * MiB;
const RUNS = Number(process.env.STRATA_BENCH_RUNS ?? 3);
const BIG = Number(process.env.STRATA_BENCH_BIG_MIB ?? 1024) * MiB;
const ONLY_BLOBS = process.env.STRATA_BENCH_ONLY === "blobs";
const MANY = 64;
const MANY_SIZE = 8 * MiB;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function wrk(url: string, accept: string, headers: string[] = []): Promise<number> {
  const r = await run("wrk", ["-t2", "-c32", "-d5s", "-H", `Accept: ${accept}`, ...headers.flatMap((h) => ["-H", h]), url]);
  const m = /Requests\/sec:\s+([\d.]+)/.exec(r.stdout);
  if (!m || /Non-2xx/.test(r.stdout)) throw new Error(`wrk failed: ${r.stdout}${r.stderr}`);
  return Number(m[1]);
}

interface Result {
  push: number;
  pull: number;
  pull64: number;
  tag: number;
  digest: number;
  rss: number;
}

async function measure(
  name: string,
  srv: Peer,
  blobs: { blob: Buffer; digest: string }[],
  many: { blob: Buffer; digest: string }[],
  big: { base: Buffer; digests: string[]; n: number },
): Promise<Result> {
  process.stderr.write(`${name}: push/pull ${SIZE / MiB} MiB x${RUNS}\n`);
  const pushes: number[] = [];
  const pulls: number[] = [];
  for (const [i, b] of blobs.entries()) {
    const repo = `bench/r${i}`;
    const [, tp] = await time(() => pushMonolithic(srv.url, repo, b.blob, b.digest));
    pushes.push(SIZE / MiB / tp);
    const [res, tg] = await time(() => http("GET", `${srv.url}/v2/${repo}/blobs/${b.digest}`));
    if (res.status !== 200 || res.bytes !== SIZE) throw new Error(`pull: ${res.status} ${res.bytes}`);
    pulls.push(SIZE / MiB / tg);
  }
  process.stderr.write(`${name}: ${MANY} concurrent GETs of ${MANY_SIZE / MiB} MiB x${RUNS}\n`);
  for (const b of many) await pushMonolithic(srv.url, "bench/many", b.blob, b.digest);
  const rounds: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const [all, t] = await time(() => Promise.all(many.map((b) => http("GET", `${srv.url}/v2/bench/many/blobs/${b.digest}`))));
    for (const res of all) if (res.status !== 200 || res.bytes !== MANY_SIZE) throw new Error(`pull64: ${res.status} ${res.bytes}`);
    rounds.push((MANY * MANY_SIZE) / MiB / t);
  }
  const push = median(pushes);
  const pull = median(pulls);
  const pull64 = median(rounds);
  if (ONLY_BLOBS) return { push, pull, pull64, tag: NaN, digest: NaN, rss: NaN };
  const { config, manifest } = minimalImage();
  await pushMonolithic(srv.url, "bench/m", config, sha(config));
  const put = await http("PUT", `${srv.url}/v2/bench/m/manifests/latest`, manifest, { "Content-Type": "application/vnd.oci.image.manifest.v1+json" });
  if (put.status !== 201) throw new Error(`manifest PUT ${put.status} ${put.text}`);
  process.stderr.write(`${name}: manifest GETs\n`);
  const accept = "application/vnd.oci.image.manifest.v1+json";
  const tag = await wrk(`${srv.url}/v2/bench/m/manifests/latest`, accept);
  const digest = await wrk(`${srv.url}/v2/bench/m/manifests/${sha(manifest)}`, accept);
  process.stderr.write(`${name}: 8 concurrent uploads of ${BIG / MiB} MiB\n`);
  const sampler = sampleRss(srv.pid);
  await Promise.all(big.digests.map((d, id) => pushStreamed(srv.url, `bench/big${id}`, bigStream(big.base, id, big.n), d)));
  const rss = sampler.stop() / MiB;
  return { push, pull, pull64, tag, digest, rss };
}

/**
 * Manifest GET by digest through a Strata with token authentication (its own token endpoint,
 * ES256; every request carries the Bearer token, verified from the registry's cache) against
 * distribution without auth. Both run side by side and wrk alternates between them three
 * times (best of each), so a busy machine weighs on both alike.
 */
async function tokenDigestRates(): Promise<{ strata: number; peer: number }> {
  const dir = await mkdtemp(join(tmpdir(), "bench-strata-auth-"));
  const accept = "application/vnd.oci.image.manifest.v1+json";
  const { config, manifest } = minimalImage();
  try {
    const { writeAuthFiles } = await import("@strata/registry/test-helpers/auth.js");
    const files = await writeAuthFiles(dir, { bench: "bench-pw" });
    const srv = await startStrata({
      storage: { driver: "filesystem", filesystem: { root: join(dir, "data") } },
      log: { level: "warn" },
      auth: { htpasswd: { path: files.htpasswd }, token: { signingKey: files.signingKey, service: "bench" } },
    });
    const dist = await startDistribution();
    try {
      const basic = `Basic ${Buffer.from("bench:bench-pw").toString("base64")}`;
      const tok = await http("GET", `${srv.url}/auth/token?service=bench&scope=repository:bench/m:pull,push`, undefined, { Authorization: basic });
      const token = (JSON.parse(tok.text) as { token: string }).token;
      for (const [url, auth] of [
        [srv.url, { Authorization: `Bearer ${token}` }],
        [dist.url, {}],
      ] as const) {
        const up = await http("POST", `${url}/v2/bench/m/blobs/uploads/?digest=${sha(config)}`, config, { ...auth, "Content-Type": "application/octet-stream" });
        if (up.status !== 201) await pushMonolithic(url, "bench/m", config, sha(config));
        const put = await http("PUT", `${url}/v2/bench/m/manifests/latest`, manifest, { ...auth, "Content-Type": accept });
        if (put.status !== 201) throw new Error(`manifest PUT ${put.status} ${put.text}`);
      }
      process.stderr.write("strata (token auth) and distribution (no auth), alternating: manifest GETs by digest\n");
      let strata = 0;
      let peer = 0;
      for (let i = 0; i < 3; i++) {
        strata = Math.max(strata, await wrk(`${srv.url}/v2/bench/m/manifests/${sha(manifest)}`, accept, [`Authorization: Bearer ${token}`]));
        peer = Math.max(peer, await wrk(`${dist.url}/v2/bench/m/manifests/${sha(manifest)}`, accept));
      }
      return { strata, peer };
    } finally {
      await srv.stop();
      await dist.stop();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  process.stderr.write("preparing data\n");
  const blobs = Array.from({ length: RUNS }, () => {
    const blob = randomBytes(SIZE);
    return { blob, digest: sha(blob) };
  });
  const many = Array.from({ length: MANY }, () => {
    const blob = randomBytes(MANY_SIZE);
    return { blob, digest: sha(blob) };
  });
  const n = BIG / MiB;
  const base = randomBytes(MiB);
  const digests = ONLY_BLOBS ? [] : await Promise.all(Array.from({ length: 8 }, (_, id) => bigDigest(base, id, n)));
  const big = { base, digests, n };

  const root = await mkdtemp(join(tmpdir(), "bench-strata-"));
  const strataSrv = await startStrata({ storage: { driver: "filesystem", filesystem: { root } }, log: { level: "warn" } });
  const strata: Peer = { url: strataSrv.url, host: strataSrv.host, pid: strataSrv.process.pid!, stop: () => strataSrv.stop() };
  let s: Result;
  try {
    s = await measure("strata", strata, blobs, many, big);
  } finally {
    await strata.stop();
    await rm(root, { recursive: true, force: true });
  }
  const tokenDigest = ONLY_BLOBS ? { strata: NaN, peer: NaN } : await tokenDigestRates();
  const dist = await startDistribution();
  let d: Result;
  try {
    d = await measure("distribution", dist, blobs, many, big);
  } finally {
    await dist.stop();
  }
  const rows: TableRow[] = [
    { metric: `push ${SIZE / MiB} MiB blob (POST + PUT)`, unit: "MB/s", strata: s.push, peer: d.push, better: "higher", target: ">= 1.5x" },
    { metric: `pull ${SIZE / MiB} MiB blob`, unit: "MB/s", strata: s.pull, peer: d.pull, better: "higher", target: ">= 1.0x" },
    { metric: `pull ${MANY} x ${MANY_SIZE / MiB} MiB blobs concurrently`, unit: "MB/s", strata: s.pull64, peer: d.pull64, better: "higher", target: ">= 1.0x" },
    { metric: "GET manifest by tag, 32 conns", unit: "req/s", strata: s.tag, peer: d.tag, better: "higher", target: ">= 5x" },
    { metric: "GET manifest by digest, 32 conns", unit: "req/s", strata: s.digest, peer: d.digest, better: "higher", target: ">= 5x" },
    { metric: "GET manifest by digest, token auth (peer: no auth; alternating runs)", unit: "req/s", strata: tokenDigest.strata, peer: tokenDigest.peer, better: "higher", target: ">= 5x" },
    { metric: `peak RSS, 8 x ${BIG / MiB} MiB uploads`, unit: "MB", strata: s.rss, peer: d.rss, better: "lower", target: "strata <= 200 MB" },
  ];
  printTable("distribution", ONLY_BLOBS ? rows.slice(0, 3) : rows);
}

await main();
