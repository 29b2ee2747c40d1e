/**
 * `npm run bench:s3`: throughput of one large blob against an S3-compatible server, raw SDK
 * calls next to the Strata S3 driver (and, via `benchStrataHttp`, the registry over HTTP).
 *
 * Environment:
 *   STRATA_BENCH_S3_ENDPOINT  server (default STRATA_TEST_S3_ENDPOINT or http://127.0.0.1:9000;
 *                             a local one is started with scripts/s3-server.sh when silent)
 *   STRATA_BENCH_S3_ACCESS_KEY / STRATA_BENCH_S3_SECRET_KEY  (default the local Swift's test:tester / testing)
 *   STRATA_BENCH_S3_MIB       blob size in MiB (default 256)
 *   STRATA_BENCH_S3_PART_MIB  storage.s3.partSize in MiB for the driver and lib-storage (default: the config default)
 *   STRATA_BENCH_S3_LONE_MIB  storage.s3.lonePartSize in MiB (default: the config default; 0 turns lone parts off)
 *   STRATA_BENCH_RUNS         rounds of all measurements, the fastest of each is reported (default 3)
 *   STRATA_BENCH_BIG_MIB      size of each of the 8 concurrent uploads of the memory table (default 1024)
 *   STRATA_BENCH_S3_ONLY=get  only blob GET: raw GetObject and the Strata HTTP pull (with the pushes
 *                             they need), no driver rows, no chunked push, no memory table
 *   STRATA_BENCH_PATCH_MIB    size of each PATCH of the memory table's chunked mode (default 64)
 *   STRATA_BENCH_RSS_MODES    memory table modes, comma-separated (default streamed,chunked,monolithic)
 *   STRATA_BENCH_ONLY         "speed": the throughput table only; "rss": the memory table only
 *   STRATA_BENCH_SERVE_FLAGS  Node flags of the measured `strata serve` (default SERVE_NODE_FLAGS)
 *   STRATA_BENCH_SEND         `http.send` of the measured `strata serve` (default its default, auto;
 *                             `stream` sends verified S3 bodies through JavaScript streams instead
 *                             of the native relay, http/relay.ts)
 *
 * The measured `strata serve` runs with the Node flags of deploy/Dockerfile (SERVE_NODE_FLAGS).
 * A second table gives the peak RSS of the `strata serve` process (S3 mode, with Redis) while
 * 8 uploads stream into it at once, chunked (PATCH, Transfer-Encoding: chunked) and monolithic
 * (PUT with Content-Length), measured in the same run.
 *
 * Not a test: it prints a table and asserts nothing but the integrity of the bytes.
 */
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import {
  AbortMultipartUploadCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { startStrata } from "../test/helpers/strata.js";
import { bigDigest, bigStream, http, pushChunked, pushMonolithic, pushStreamed, pushStreamedSized, rssOf, sampleRss } from "./lib.js";
import { type S3Config, s3Schema } from "@strata/registry";
import { createS3Client, ensureBucket, type S3StorageDriver, s3Driver } from "@strata/registry/s3";

const MiB = 1024 * 1024;
const ONLY_GET = process.env.STRATA_BENCH_S3_ONLY === "get";

/**
 * Node flags `strata serve` runs with in deploy/Dockerfile, given to the measured server too
 * (on its command line: V8 flags such as --optimize-for-size are refused in NODE_OPTIONS).
 * --max-semi-space-size=2 (MiB, V8's default grows it to 16) keeps the young generation small,
 * so the 64 KiB socket read buffers of fast uploads are collected sooner. Measured (8 concurrent
 * uploads, S3 mode, peak RSS): 1 GiB each, monolithic 218-234 -> 192-204 MB, chunked 189-210 ->
 * 174-193 MB; 384 MiB each, 224-232 -> 180 MB and 192-215 -> 160 MB; throughput unchanged.
 * --heap-growing-percent=200: V8 counts Buffers allocated since the last full collection against
 * the old generation's headroom (1.1-1.6x the live ~21 MB by default), so the dead request
 * Buffers of one fast upload started a full collection every ~10 MB; with 3x, 256 MiB S3 push,
 * server CPU: chunked 1.33-2.13 -> 0.76-1.10 s, monolithic 1.38-2.13 -> 0.65-1.08 s (load 6-7).
 */
export const SERVE_NODE_FLAGS: readonly string[] = ["--max-semi-space-size=2", "--heap-growing-percent=200"];

/** startStrata with SERVE_NODE_FLAGS (or STRATA_BENCH_SERVE_FLAGS) on the server's command line. */
async function startServe(config: Parameters<typeof startStrata>[0]): ReturnType<typeof startStrata> {
  const flags = process.env.STRATA_BENCH_SERVE_FLAGS;
  return startStrata(config, { nodeArgs: flags === undefined ? SERVE_NODE_FLAGS : flags.split(/\s+/).filter(Boolean) });
}

export interface Row {
  /** What was measured. */
  name: string;
  /** "write" rows are compared with raw PutObject, "read" rows with raw GetObject. */
  kind: "write" | "read";
  bytes: number;
  seconds: number;
  /** The row this one is compared with (default: raw PutObject for writes, raw GetObject for reads). */
  base?: string;
}

/** The raw rows measured in the HTTP rounds, which the HTTP rows are compared with. */
const HTTP_RAW_PUT = "raw PutObject (in the HTTP rounds)";
const HTTP_RAW_GET = "raw GetObject (in the HTTP rounds)";

/** What a measurement may use: the server, a bucket of its own, and the blob. */
export interface BenchContext {
  readonly cfg: S3Config;
  readonly client: S3Client;
  readonly driver: S3StorageDriver;
  readonly blob: Buffer;
  readonly blobSha256: string;
  readonly runs: number;
}

/**
 * Strata push and pull over HTTP with the registry in S3 mode (the bucket exists): ctx.blob
 * pushed monolithically (POST + PUT with the body) and chunked (one streamed PATCH, then
 * PUT ?digest=, which completes the upload: a pointer rewrite, no copy), and pulled back.
 * Every round also times a raw PutObject and GetObject of the same size, and the HTTP rows are
 * compared with those: on a shared machine the load of the object-level rounds (run earlier)
 * may differ from this phase's.
 */
export async function benchStrataHttp(ctx: BenchContext): Promise<Row[]> {
  const keyPrefix = `strata-bench:${randomBytes(4).toString("hex")}:`;
  const redisUrl = process.env.STRATA_TEST_REDIS_URL || "redis://127.0.0.1:6379";
  const send = process.env.STRATA_BENCH_SEND ? { http: { send: process.env.STRATA_BENCH_SEND } } : {};
  const srv = await startServe({ storage: { driver: "s3", s3: ctx.cfg }, redis: { url: redisUrl, keyPrefix }, log: { level: "warn" }, ...send });
  let push = Infinity;
  let chunked = Infinity;
  let pull = Infinity;
  let rawPut = Infinity;
  let rawGet = Infinity;
  const { client, cfg } = ctx;
  try {
    for (let i = 0; i < ctx.runs; i++) {
      // a distinct blob per round, so that every push really stores its bytes
      const blob = Buffer.from(ctx.blob);
      blob.writeUInt32BE(i + 1, 0);
      rawPut = Math.min(rawPut, await timed(() => client.send(new PutObjectCommand({ Bucket: cfg.bucket, Key: "raw/http-put", Body: blob, ContentLength: blob.length })).then(() => {})));
      rawGet = Math.min(
        rawGet,
        await timed(async () => {
          const res = await client.send(new GetObjectCommand({ Bucket: cfg.bucket, Key: "raw/http-put" }));
          const got = await drain(res.Body as AsyncIterable<Uint8Array>);
          if (got.bytes !== blob.length) throw new Error(`raw GetObject returned ${got.bytes} bytes`);
        }),
      );
      await client.send(new DeleteObjectCommand({ Bucket: cfg.bucket, Key: "raw/http-put" }));
      const digest = `sha256:${createHash("sha256").update(blob).digest("hex")}`;
      push = Math.min(push, await timed(() => pushMonolithic(srv.url, `bench/s3-${i}`, blob, digest)));
      const other = Buffer.from(blob);
      other.writeUInt32BE(0xffff0000 + i, 4);
      const otherDigest = `sha256:${createHash("sha256").update(other).digest("hex")}`;
      const pieces = Array.from({ length: Math.ceil(other.length / MiB) }, (_, j) => other.subarray(j * MiB, (j + 1) * MiB));
      if (!ONLY_GET) chunked = Math.min(chunked, await timed(() => pushStreamed(srv.url, `bench/s3c-${i}`, Readable.from(pieces), otherDigest)));
      pull = Math.min(
        pull,
        await timed(async () => {
          const res = await http("GET", `${srv.url}/v2/bench/s3-${i}/blobs/${digest}`);
          if (res.status !== 200 || res.bytes !== blob.length) throw new Error(`strata pull: ${res.status}, ${res.bytes} bytes`);
        }),
      );
    }
  } finally {
    await srv.stop();
  }
  const n = ctx.blob.length;
  const rows: Row[] = [
    { name: HTTP_RAW_PUT, kind: "write", bytes: n, seconds: rawPut, base: HTTP_RAW_PUT },
    { name: HTTP_RAW_GET, kind: "read", bytes: n, seconds: rawGet, base: HTTP_RAW_GET },
    { name: "strata HTTP push (POST + PUT with the blob)", kind: "write", bytes: n, seconds: push, base: HTTP_RAW_PUT },
    { name: "strata HTTP chunked push (streamed PATCH + PUT)", kind: "write", bytes: n, seconds: chunked, base: HTTP_RAW_PUT },
    {
      name: `strata HTTP pull (GET blob${process.env.STRATA_BENCH_SEND ? `, http.send ${process.env.STRATA_BENCH_SEND}` : ""})`,
      kind: "read",
      bytes: n,
      seconds: pull,
      base: HTTP_RAW_GET,
    },
  ];
  return rows.filter((r) => Number.isFinite(r.seconds));
}

interface RssRow {
  name: string;
  bytes: number;
  seconds: number;
  peakRss: number;
}

/** The memory table's upload modes (STRATA_BENCH_RSS_MODES selects among them). */
const RSS_MODES = ["streamed", "chunked", "monolithic"] as const;

/**
 * Peak RSS of strata serve (S3 mode) while 8 uploads of `bigMiB` stream in at once: one streamed
 * PATCH (chunked transfer coding), PATCHes of `patchMiB` with Content-Range, and a monolithic
 * PUT; idle is the RSS before the first upload.
 */
export async function benchRss(ctx: BenchContext, bigMiB: number, patchMiB = 64, modes: readonly string[] = RSS_MODES): Promise<RssRow[]> {
  const keyPrefix = `strata-bench:${randomBytes(4).toString("hex")}:`;
  const redisUrl = process.env.STRATA_TEST_REDIS_URL || "redis://127.0.0.1:6379";
  const srv = await startServe({ storage: { driver: "s3", s3: ctx.cfg }, redis: { url: redisUrl, keyPrefix }, log: { level: "warn" } });
  const base = randomBytes(MiB);
  const n = bigMiB;
  const ids = Array.from({ length: 8 }, (_, i) => i);
  const digests = await Promise.all(ids.map((id) => bigDigest(base, id, n)));
  const rows: RssRow[] = [{ name: "idle (started, before the uploads)", bytes: 0, seconds: 0, peakRss: rssOf(srv.process.pid!) }];
  try {
    const measure = async (name: string, push: (id: number) => Promise<void>) => {
      const sampler = sampleRss(srv.process.pid!);
      const seconds = await timed(() => Promise.all(ids.map(push)).then(() => {}));
      rows.push({ name, bytes: 8 * n * MiB, seconds, peakRss: sampler.stop() });
    };
    if (modes.includes("streamed")) {
      await measure("streamed PATCH (Transfer-Encoding: chunked)", (id) => pushStreamed(srv.url, `bench/rss-s${id}`, bigStream(base, id, n), digests[id]));
    }
    if (modes.includes("chunked")) {
      await measure(`chunked PATCH (${patchMiB} MiB each, Content-Range)`, (id) =>
        pushChunked(srv.url, `bench/rss-c${id}`, bigStream(base, id, n), n * MiB, patchMiB * MiB, digests[id]),
      );
    }
    if (modes.includes("monolithic")) {
      await measure("monolithic PUT (Content-Length)", (id) => pushStreamedSized(srv.url, `bench/rss-m${id}`, bigStream(base, id, n), n * MiB, digests[id]));
    }
  } finally {
    await srv.stop();
  }
  return rows;
}

function rssTable(rows: RssRow[], bigMiB: number): string {
  const lines = [
    `| 8 concurrent uploads of ${bigMiB} MiB, S3 mode | peak RSS of strata serve (MB) | aggregate MiB/s | target |`,
    "|:---|---:|---:|:---|",
    ...rows.map((r) =>
      r.bytes === 0
        ? `| ${r.name} | ${(r.peakRss / 1e6).toFixed(0)} | - | <= 100 MB |`
        : `| ${r.name} | ${(r.peakRss / 1e6).toFixed(0)} | ${(r.bytes / MiB / r.seconds).toFixed(1)} | <= 200 MB |`,
    ),
  ];
  return lines.join("\n");
}

function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "scripts", "s3-server.sh"))) {
    const up = dirname(dir);
    if (up === dir) throw new Error("scripts/s3-server.sh not found");
    dir = up;
  }
  return dir;
}

async function timed(fn: () => Promise<void>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

/** The blob as a stream of `chunk`-sized pieces, as an HTTP body would arrive. */
function chunks(blob: Buffer, chunk: number): Readable {
  return Readable.from(
    (function* () {
      for (let off = 0; off < blob.length; off += chunk) yield blob.subarray(off, Math.min(blob.length, off + chunk));
    })(),
    { objectMode: false },
  );
}

async function drain(stream: AsyncIterable<Uint8Array>, hash = false): Promise<{ bytes: number; sha256?: string }> {
  const h = hash ? createHash("sha256") : undefined;
  let bytes = 0;
  for await (const c of stream) {
    bytes += c.byteLength;
    h?.update(c);
  }
  return { bytes, sha256: h?.digest("hex") };
}

/**
 * Every measurement once per round, rounds repeated ctx.runs times, the fastest of each kept:
 * interleaving gives raw and driver operations the same share of a noisy machine.
 */
async function objectRows(ctx: BenchContext): Promise<Row[]> {
  const { client, cfg, blob, driver, runs } = ctx;
  const n = blob.length;
  const upload = "/v2/repositories/bench/_uploads/u/data";
  const blobKey = "/v2/blobs/sha256/ab/abcd/data";
  const del = (Key: string) => client.send(new DeleteObjectCommand({ Bucket: cfg.bucket, Key })).then(() => {});
  const driverWrite = async () => {
    const w = await driver.writer(upload);
    for (let off = 0; off < n; off += MiB) await w.write(blob.subarray(off, Math.min(n, off + MiB)));
    await w.commit();
  };
  const ops: { name: string; kind: Row["kind"]; run: () => Promise<number> }[] = [
    {
      name: "raw PutObject (one request)",
      kind: "write",
      run: () => timed(() => client.send(new PutObjectCommand({ Bucket: cfg.bucket, Key: "raw/put", Body: blob, ContentLength: n })).then(() => {})),
    },
    {
      name: "raw GetObject",
      kind: "read",
      run: async () => {
        const s = await timed(async () => {
          const res = await client.send(new GetObjectCommand({ Bucket: cfg.bucket, Key: "raw/put" }));
          const got = await drain(res.Body as AsyncIterable<Uint8Array>);
          if (got.bytes !== n) throw new Error(`raw GetObject returned ${got.bytes} bytes`);
        });
        await del("raw/put");
        return s;
      },
    },
    {
      name: `raw lib-storage Upload (${cfg.partSize / MiB} MiB parts, 4 in flight)`,
      kind: "write",
      run: async () => {
        const s = await timed(() =>
          new Upload({ client, params: { Bucket: cfg.bucket, Key: "raw/upload", Body: chunks(blob, MiB) }, partSize: cfg.partSize, queueSize: 4 })
            .done()
            .then(() => {}),
        );
        await del("raw/upload");
        return s;
      },
    },
    {
      name: "driver writer + commit (1 MiB writes)",
      kind: "write",
      run: async () => {
        const s = await timed(driverWrite);
        await driver.delete(upload);
        return s;
      },
    },
    {
      name: "driver push = writer + commit + move",
      kind: "write",
      run: async () => {
        let move = 0;
        const s = await timed(async () => {
          await driverWrite();
          move = await timed(() => driver.move(upload, blobKey));
        });
        moveTimes.push(move);
        return s;
      },
    },
    {
      name: "raw GetObject of the moved blob's bytes",
      kind: "read",
      run: () =>
        timed(async () => {
          // The blob key holds a pointer to the object the upload's parts were completed into.
          const head = await client.send(new HeadObjectCommand({ Bucket: cfg.bucket, Key: blobKey.slice(1) }));
          const Key = head.Metadata?.["strata-target"] ?? blobKey.slice(1);
          const res = await client.send(new GetObjectCommand({ Bucket: cfg.bucket, Key }));
          const got = await drain(res.Body as AsyncIterable<Uint8Array>);
          if (got.bytes !== n) throw new Error(`raw GetObject returned ${got.bytes} bytes`);
        }),
    },
    {
      name: "driver reader",
      kind: "read",
      run: async () => {
        const s = await timed(async () => {
          const got = await drain(await driver.reader(blobKey));
          if (got.bytes !== n) throw new Error(`driver reader returned ${got.bytes} bytes`);
        });
        const check = await drain(await driver.reader(blobKey), true);
        if (check.sha256 !== ctx.blobSha256) throw new Error("driver round trip changed the bytes");
        await driver.delete("/v2");
        return s;
      },
    },
  ];
  const moveTimes: number[] = [];
  const bestOf = new Map<string, number>();
  if (ONLY_GET) ops.splice(0, ops.length, ...ops.filter((op) => op.name.startsWith("raw PutObject") || op.name === "raw GetObject"));
  for (let r = 0; r < runs; r++) {
    for (const op of ops) {
      const s = await op.run();
      bestOf.set(op.name, Math.min(bestOf.get(op.name) ?? Number.POSITIVE_INFINITY, s));
    }
  }
  const rows: Row[] = ops.map((op) => ({ name: op.name, kind: op.kind, bytes: n, seconds: bestOf.get(op.name)! }));
  if (moveTimes.length) rows.splice(rows.findIndex((r) => r.name.startsWith("driver push")) + 1, 0, {
    name: "  of which: move upload -> blob (pointer rewrite)",
    kind: "write",
    bytes: n,
    seconds: Math.min(...moveTimes),
  });
  return rows;
}

/**
 * Markdown table; writes are compared with raw PutObject and raw Upload, reads with raw GetObject
 * (rows with a `base` with that row instead: the HTTP rows with the raw calls of their rounds).
 */
function table(rows: Row[]): string {
  const put = rows.find((r) => r.name.startsWith("raw PutObject"));
  const upload = rows.find((r) => r.name.startsWith("raw lib-storage Upload"));
  const get = rows.find((r) => r.name === "raw GetObject");
  const mibs = (r: Row) => r.bytes / MiB / r.seconds;
  const ratio = (r: Row, b: Row | undefined) => (b ? (mibs(r) / mibs(b)).toFixed(2) : "-");
  const lines = [["operation", "MiB", "seconds", "MiB/s", "x raw PutObject / GetObject", "x raw Upload"]];
  for (const r of rows) {
    const write = r.kind === "write";
    const base = r.base ? rows.find((b) => b.name === r.base) : write ? put : get;
    lines.push([r.name, (r.bytes / MiB).toFixed(0), r.seconds.toFixed(2), mibs(r).toFixed(1), ratio(r, base), write ? ratio(r, upload) : "-"]);
  }
  const widths = lines[0].map((_, i) => Math.max(...lines.map((l) => l[i].length)));
  const fmt = (l: string[]) => `| ${l.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(" | ")} |`;
  const rule = `|${widths.map((w, i) => (i === 0 ? `:${"-".repeat(w + 1)}` : `${"-".repeat(w + 1)}:`)).join("|")}|`;
  return [fmt(lines[0]), rule, ...lines.slice(1).map(fmt)].join("\n");
}

async function dropBucket(client: S3Client, bucket: string): Promise<void> {
  let token: string | undefined;
  do {
    const res = await client.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
    for (const c of res.Contents ?? []) await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: c.Key! }));
    token = res.IsTruncated ? res.NextContinuationToken : undefined;
  } while (token);
  const ups = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
  for (const u of ups.Uploads ?? []) await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: u.Key!, UploadId: u.UploadId! }));
  await client.send(new DeleteBucketCommand({ Bucket: bucket }));
}

async function main(): Promise<void> {
  const endpoint = process.env.STRATA_BENCH_S3_ENDPOINT || process.env.STRATA_TEST_S3_ENDPOINT || "http://127.0.0.1:9000";
  const cfg = s3Schema.parse({
    endpoint,
    bucket: `strata-bench-${Date.now().toString(36)}`,
    forcePathStyle: true,
    accessKeyId: process.env.STRATA_BENCH_S3_ACCESS_KEY || "test:tester",
    secretAccessKey: process.env.STRATA_BENCH_S3_SECRET_KEY || "testing",
    ...(process.env.STRATA_BENCH_S3_PART_MIB ? { partSize: Number(process.env.STRATA_BENCH_S3_PART_MIB) * MiB } : {}),
    ...(process.env.STRATA_BENCH_S3_LONE_MIB ? { lonePartSize: Number(process.env.STRATA_BENCH_S3_LONE_MIB) * MiB } : {}),
  });
  try {
    await ensureBucket(cfg);
  } catch (e) {
    const url = new URL(endpoint);
    if ((e as Error).name !== "StorageUnavailableError" || !["127.0.0.1", "localhost"].includes(url.hostname)) throw e;
    console.error(`no S3 server at ${endpoint}; starting one with scripts/s3-server.sh`);
    execFileSync("bash", [join(repoRoot(), "scripts", "s3-server.sh"), "start", join(process.env.TMPDIR || "/tmp", `strata-s3-${url.port}`), url.port], {
      stdio: "inherit",
    });
    await ensureBucket(cfg);
  }
  const size = Number(process.env.STRATA_BENCH_S3_MIB || 256) * MiB;
  const runs = Number(process.env.STRATA_BENCH_RUNS || 3);
  const blob = randomBytes(size);
  const client = createS3Client(cfg);
  const driver = s3Driver(cfg);
  const ctx: BenchContext = { cfg, client, driver, blob, blobSha256: createHash("sha256").update(blob).digest("hex"), runs };
  console.log(
    `S3 benchmark: ${size / MiB} MiB random blob, endpoint ${endpoint}, part size ${cfg.partSize / MiB} MiB, best of ${runs} rounds, node ${process.version}`,
  );
  const only = process.env.STRATA_BENCH_ONLY;
  try {
    if (only !== "rss") {
      console.log(table([...(await objectRows(ctx)), ...(await benchStrataHttp(ctx))]));
      console.log();
    }
    if (only !== "speed" && !ONLY_GET) {
      const bigMiB = Number(process.env.STRATA_BENCH_BIG_MIB || 1024);
      const patchMiB = Number(process.env.STRATA_BENCH_PATCH_MIB || 64);
      const modes = (process.env.STRATA_BENCH_RSS_MODES || RSS_MODES.join(",")).split(",");
      console.log(rssTable(await benchRss(ctx, bigMiB, patchMiB, modes), bigMiB));
    }
  } finally {
    await driver.close?.();
    await dropBucket(client, cfg.bucket).catch((e) => console.error(`bucket cleanup failed: ${(e as Error).message}`));
    client.destroy();
  }
}

// Run when executed (the measurement functions may also be imported).
if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
