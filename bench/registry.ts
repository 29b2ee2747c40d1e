/**
 * `npm run bench:registry`: Strata (`strata serve`, filesystem storage) against Debian's
 * docker-registry (CNCF distribution 2.8, filesystem storage), side by side on loopback, in
 * the same run. Prints one table with each metric for both and the ratio.
 *
 *   push   one blob of STRATA_BENCH_MIB MiB (default 256): POST, then PUT ?digest= with the body
 *   pull   GET of that blob (STRATA_BENCH_RUNS blobs, each pulled once; median), by node:http
 *          and again by curl (a client cheaper than either server)
 *   pull64 64 concurrent GETs of distinct 8 MiB blobs, STRATA_BENCH_RUNS rounds (median rate)
 *          Both pulls alternate between Strata and distribution, both running, in one phase.
 *   manifest GET by tag and by digest with 32 connections (wrk, 2 threads, 5 s); by digest again
 *            through a Strata with token authentication (Bearer token on every request) against
 *            distribution without auth, the two measured alternately in the same minute
 *   RSS    peak server RSS while 8 uploads of 1 GiB stream concurrently (POST, PATCH, PUT)
 *   tls    GET of the big blob over HTTPS by curl, both servers with one self-signed certificate
 *   load   32 pushers of 8 MiB blobs and 32 pullers for STRATA_BENCH_LOAD_SECONDS (30), one
 *          server at a time: errors, throughput, p99 latency (bench/load.ts)
 *
 * STRATA_BENCH_ONLY=blobs measures only push, pull and pull64 (no wrk, no RSS run);
 * STRATA_BENCH_ONLY=tls and STRATA_BENCH_ONLY=load only those parts.
 *
 * Needs: docker-registry, wrk and curl (Debian packages). Not a test: it asserts only integrity.
 *
 * Blob GET before and after native sending (packages/registry/src/http/sendfile.ts), this
 * benchmark with STRATA_BENCH_ONLY=blobs on a shared 2-core machine (strata/distribution):
 *   256 MiB node client 0.31-0.32x -> 1.01-1.21x, curl 0.23-0.24x -> 1.09-1.40x;
 *   64 x 8 MiB 0.55-0.89x -> 1.30-2.02x.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { run, startStrata } from "../test/helpers/strata.js";
import { minimalImage, sha256 as sha } from "../test/helpers/oci-layout.js";
import { bigDigest, bigStream, http, type Peer, printTable, pushMonolithic, pushStreamed, sampleRss, startDistribution, type TableRow, time } from "./lib.js";
import { curlTls, type LoadResult, loadProfile, seedLoad, testCertificate } from "./load.js";

const MiB = 1024 * 1024;
const SIZE = Number(process.env.STRATA_BENCH_MIB ?? 256) * MiB;
const RUNS = Number(process.env.STRATA_BENCH_RUNS ?? 3);
const BIG = Number(process.env.STRATA_BENCH_BIG_MIB ?? 1024) * MiB;
const ONLY = process.env.STRATA_BENCH_ONLY;
const ONLY_BLOBS = ONLY === "blobs";
const LOAD_SECONDS = Number(process.env.STRATA_BENCH_LOAD_SECONDS ?? 30);
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

interface Blob {
  blob: Buffer;
  digest: string;
}

interface Rest {
  tag: number;
  digest: number;
  rss: number;
}

/** Pushes every blob (the big ones timed, median MB/s); leaves them stored for the pulls. */
async function pushes(name: string, srv: Peer, blobs: Blob[], many: Blob[]): Promise<number> {
  process.stderr.write(`${name}: push ${SIZE / MiB} MiB x${RUNS}, ${MANY} x ${MANY_SIZE / MiB} MiB\n`);
  const rates: number[] = [];
  for (const [i, b] of blobs.entries()) {
    const [, tp] = await time(() => pushMonolithic(srv.url, `bench/r${i}`, b.blob, b.digest));
    rates.push(SIZE / MiB / tp);
  }
  for (const b of many) await pushMonolithic(srv.url, "bench/many", b.blob, b.digest);
  return median(rates);
}

async function pullOne(srv: Peer, i: number, b: Blob): Promise<number> {
  const [res, t] = await time(() => http("GET", `${srv.url}/v2/bench/r${i}/blobs/${b.digest}`));
  if (res.status !== 200 || res.bytes !== SIZE) throw new Error(`pull: ${res.status} ${res.bytes}`);
  return SIZE / MiB / t;
}

async function pullMany(srv: Peer, many: Blob[]): Promise<number> {
  const [all, t] = await time(() => Promise.all(many.map((b) => http("GET", `${srv.url}/v2/bench/many/blobs/${b.digest}`))));
  for (const res of all) if (res.status !== 200 || res.bytes !== MANY_SIZE) throw new Error(`pull64: ${res.status} ${res.bytes}`);
  return (MANY * MANY_SIZE) / MiB / t;
}

/** GET of a big blob by curl (output discarded): a client cheaper than the server it measures. */
async function curlOne(srv: Peer, i: number, b: Blob): Promise<number> {
  const r = await run("curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download} %{time_total}", `${srv.url}/v2/bench/r${i}/blobs/${b.digest}`]);
  const [code, bytes, secs] = r.stdout.trim().split(" ");
  if (code !== "200" || Number(bytes) !== SIZE) throw new Error(`curl pull: ${r.stdout} ${r.stderr}`);
  return SIZE / MiB / Number(secs);
}

/**
 * Blob GETs, Strata and distribution alternating request by request (both running, each pair
 * led by the other server in turn, after one unmeasured GET each), so that load from elsewhere
 * on the machine and the client's warm-up weigh on both alike; medians.
 */
async function pulls(strata: Peer, dist: Peer, blobs: Blob[], many: Blob[]) {
  process.stderr.write(`alternating: GET ${SIZE / MiB} MiB x${RUNS} (node and curl), ${MANY} concurrent GETs of ${MANY_SIZE / MiB} MiB x${RUNS}\n`);
  type Rates = { one: number[]; curl: number[]; many: number[] };
  const r: Record<"strata" | "dist", Rates> = { strata: { one: [], curl: [], many: [] }, dist: { one: [], curl: [], many: [] } };
  const peers = [["strata", strata], ["dist", dist]] as const;
  const inTurn = (k: number) => (k % 2 ? [...peers].reverse() : peers);
  for (const [, p] of peers) await http("GET", `${p.url}/v2/bench/many/blobs/${many[0].digest}`);
  for (const [i, b] of blobs.entries()) for (const [n, p] of inTurn(i)) r[n].one.push(await pullOne(p, i, b));
  for (const [i, b] of blobs.entries()) for (const [n, p] of inTurn(i + 1)) r[n].curl.push(await curlOne(p, i, b));
  for (let k = 0; k < RUNS; k++) for (const [n, p] of inTurn(k)) r[n].many.push(await pullMany(p, many));
  const med = (x: Rates) => ({ pull: median(x.one), curl: median(x.curl), pull64: median(x.many) });
  return { strata: med(r.strata), dist: med(r.dist) };
}

async function measureRest(name: string, srv: Peer, big: { base: Buffer; digests: string[]; n: number }): Promise<Rest> {
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
  return { tag, digest, rss };
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

/** Big-blob GET over HTTPS, Strata and distribution alternating (curl -k), medians in MB/s. */
async function tlsPulls(): Promise<{ strata: number; dist: number }> {
  const cert = await testCertificate();
  const root = await mkdtemp(join(tmpdir(), "bench-strata-tls-"));
  try {
    const s = await startStrata(
      { storage: { driver: "filesystem", filesystem: { root } }, log: { level: "warn" }, tls: { certificate: cert.cert, key: cert.key } },
      { ca: await readFile(cert.cert) },
    );
    const dist = await startDistribution(undefined, { cert: cert.cert, key: cert.key });
    try {
      const blob = randomBytes(SIZE);
      const d = sha(blob);
      const peers = [
        ["strata", s.url],
        ["dist", dist.url],
      ] as const;
      for (const [, url] of peers) await pushMonolithic(url, "bench/tls", blob, d);
      process.stderr.write(`alternating over HTTPS: GET ${SIZE / MiB} MiB x${RUNS} (curl)\n`);
      const r: Record<"strata" | "dist", number[]> = { strata: [], dist: [] };
      for (let i = 0; i < RUNS; i++) for (const [n, url] of i % 2 ? [...peers].reverse() : peers) r[n].push(await curlTls(`${url}/v2/bench/tls/blobs/${d}`, SIZE));
      return { strata: median(r.strata), dist: median(r.dist) };
    } finally {
      await s.stop();
      await dist.stop();
    }
  } finally {
    await rm(root, { recursive: true, force: true });
    await cert.dispose();
  }
}

/** The mixed load against each server alone (Strata first, then distribution). */
async function loads(): Promise<{ strata: LoadResult; dist: LoadResult }> {
  const root = await mkdtemp(join(tmpdir(), "bench-strata-load-"));
  try {
    const s = await startStrata({ storage: { driver: "filesystem", filesystem: { root } }, log: { level: "warn" } });
    const strata: Peer = { url: s.url, host: s.host, pid: s.process.pid!, stop: () => s.stop() };
    let sr: LoadResult;
    try {
      process.stderr.write(`strata: load, 32 pushers + 32 pullers of 8 MiB for ${LOAD_SECONDS} s\n`);
      sr = await loadProfile(strata, await seedLoad(strata), LOAD_SECONDS);
    } finally {
      await strata.stop();
    }
    const dist = await startDistribution();
    try {
      process.stderr.write(`distribution: load, 32 pushers + 32 pullers of 8 MiB for ${LOAD_SECONDS} s\n`);
      return { strata: sr, dist: await loadProfile(dist, await seedLoad(dist), LOAD_SECONDS) };
    } finally {
      await dist.stop();
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

function loadRows(l: { strata: LoadResult; dist: LoadResult }): TableRow[] {
  const t = `load ${LOAD_SECONDS} s, 32 pushers + 32 pullers of 8 MiB`;
  return [
    { metric: `${t}: errors`, unit: "count", strata: l.strata.errors, peer: l.dist.errors, better: "lower", target: "0" },
    { metric: `${t}: push throughput`, unit: "MB/s", strata: l.strata.pushMBs, peer: l.dist.pushMBs, better: "higher", target: ">= 1.0x" },
    { metric: `${t}: pull throughput`, unit: "MB/s", strata: l.strata.pullMBs, peer: l.dist.pullMBs, better: "higher", target: ">= 1.0x" },
    { metric: `${t}: push p99`, unit: "ms", strata: l.strata.pushP99, peer: l.dist.pushP99, better: "lower", target: "" },
    { metric: `${t}: pull p99`, unit: "ms", strata: l.strata.pullP99, peer: l.dist.pullP99, better: "lower", target: "" },
  ];
}

function tlsRow(t: { strata: number; dist: number }): TableRow {
  return { metric: `pull ${SIZE / MiB} MiB blob over HTTPS, curl client`, unit: "MB/s", strata: t.strata, peer: t.dist, better: "higher", target: ">= 0.8x" };
}

async function main(): Promise<void> {
  if (ONLY === "tls") return printTable("distribution", [tlsRow(await tlsPulls())]);
  if (ONLY === "load") return printTable("distribution", loadRows(await loads()));
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
  const none: Rest = { tag: NaN, digest: NaN, rss: NaN };
  let push: { strata: number; dist: number };
  let pulled: Awaited<ReturnType<typeof pulls>>;
  let s: Rest;
  let d: Rest;
  let tokenDigest = { strata: NaN, peer: NaN };
  try {
    const dist = await startDistribution();
    try {
      push = { strata: await pushes("strata", strata, blobs, many), dist: await pushes("distribution", dist, blobs, many) };
      pulled = await pulls(strata, dist, blobs, many);
      s = ONLY_BLOBS ? none : await measureRest("strata", strata, big);
      d = ONLY_BLOBS ? none : await measureRest("distribution", dist, big);
    } finally {
      await dist.stop();
    }
  } finally {
    await strata.stop();
    await rm(root, { recursive: true, force: true });
  }
  if (!ONLY_BLOBS) tokenDigest = await tokenDigestRates();
  const tls = ONLY_BLOBS ? undefined : await tlsPulls();
  const load = ONLY_BLOBS ? undefined : await loads();
  const rows: TableRow[] = [
    { metric: `push ${SIZE / MiB} MiB blob (POST + PUT)`, unit: "MB/s", strata: push.strata, peer: push.dist, better: "higher", target: ">= 1.5x" },
    { metric: `pull ${SIZE / MiB} MiB blob`, unit: "MB/s", strata: pulled.strata.pull, peer: pulled.dist.pull, better: "higher", target: ">= 1.0x" },
    { metric: `pull ${SIZE / MiB} MiB blob, curl client`, unit: "MB/s", strata: pulled.strata.curl, peer: pulled.dist.curl, better: "higher", target: ">= 1.0x" },
    { metric: `pull ${MANY} x ${MANY_SIZE / MiB} MiB blobs concurrently`, unit: "MB/s", strata: pulled.strata.pull64, peer: pulled.dist.pull64, better: "higher", target: ">= 1.0x" },
    { metric: "GET manifest by tag, 32 conns", unit: "req/s", strata: s.tag, peer: d.tag, better: "higher", target: ">= 5x" },
    { metric: "GET manifest by digest, 32 conns", unit: "req/s", strata: s.digest, peer: d.digest, better: "higher", target: ">= 5x" },
    { metric: "GET manifest by digest, token auth (peer: no auth; alternating runs)", unit: "req/s", strata: tokenDigest.strata, peer: tokenDigest.peer, better: "higher", target: ">= 5x" },
    { metric: `peak RSS, 8 x ${BIG / MiB} MiB uploads`, unit: "MB", strata: s.rss, peer: d.rss, better: "lower", target: "strata <= 200 MB" },
  ];
  if (tls) rows.splice(4, 0, tlsRow(tls));
  if (load) rows.push(...loadRows(load));
  printTable("distribution", ONLY_BLOBS ? rows.slice(0, 4) : rows);
}

await main();
