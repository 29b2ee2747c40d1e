/**
 * HTTP fuzzer against a real `strata serve`: mutated and hostile requests (methods, paths,
 * repository names, digests, query parameters, headers, Content-Range, bodies, framing) over
 * raw sockets, from a fixed seed (printed; STRATA_FUZZ_SEED replays another). Asserts that no
 * response is a server error (>= 500), that every request gets an answer in time, and that
 * the process never dies. Runs against filesystem storage, and S3 + Redis when
 * STRATA_TEST_BACKENDS includes s3.
 *
 * STRATA_FUZZ_SECONDS: seconds per backend (default 20; 600 for the long run).
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fleetConfig } from "../helpers/fleet.js";
import { minimalImage, sha256 as sha } from "../helpers/oci-layout.js";
import { type StrataServer, startStrata } from "../helpers/strata.js";

const SECONDS = Number(process.env.STRATA_FUZZ_SECONDS ?? 20);
const SEED = Number(process.env.STRATA_FUZZ_SEED ?? 0x5eed2026);
const WORKERS = 8;
const REQUEST_TIMEOUT_MS = 20_000;
const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX = "application/vnd.oci.image.index.v1+json";

/** mulberry32: a small seeded PRNG, so that a run can be replayed. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)];
  const chance = (p: number) => next() < p;
  const bytes = (n: number) => {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = int(256);
    return b;
  };
  return { next, int, pick, chance, bytes };
}
type Rng = ReturnType<typeof prng>;

interface FuzzRequest {
  method: string;
  target: string;
  headers: [string, string][];
  body?: Buffer;
  chunked?: boolean;
  /** Send only part of the body and hang up (no answer expected). */
  abort?: boolean;
}

interface World {
  repo: string;
  digests: string[];
  manifests: Buffer[];
  uploads: string[];
  tags: string[];
}

const HEX64 = "0123456789abcdef";

function names(r: Rng, w: World): string {
  return r.pick([
    () => w.repo,
    () => `fuzz/${r.pick(["a", "b", "c"])}`,
    () => "a/../../x",
    () => "a//b",
    () => "%00",
    () => `a${"b".repeat(300)}`,
    () => "UPPER/case",
    () => "..",
    () => "a/.",
    () => "_uploads",
    () => `${w.repo}/_manifests`,
    () => "a%2Fb",
    () => "%2e%2e/%2e%2e/etc",
    () => "é/ü",
    () => "a/b/",
    () => "-a",
    () => "a__b",
    () => "a.-b",
    () => r.bytes(r.int(20)).toString("latin1").replace(/[\s?#/]/g, "x"),
    () => encodeURIComponent(r.bytes(8).toString("latin1")),
    () => Array.from({ length: r.int(40) }, () => "a").join("/"),
  ])();
}

function digest(r: Rng, w: World): string {
  const hex = (n: number) => Array.from({ length: n }, () => HEX64[r.int(16)]).join("");
  return r.pick([
    () => r.pick(w.digests),
    () => r.pick(w.digests),
    () => `sha256:${hex(64)}`,
    () => `sha512:${hex(128)}`,
    () => `sha256:${hex(63)}`,
    () => `sha256:${hex(64).toUpperCase()}`,
    () => `md5:${hex(32)}`,
    () => "sha256:",
    () => "sha256:../../etc/passwd",
    () => `sha256:${"g".repeat(64)}`,
    () => `sha256+b64u:${hex(64)}`,
    () => `SHA256:${hex(64)}`,
    () => `sha256:${hex(64)}%00`,
    () => `sha256:${hex(5000)}`,
    () => "",
    () => `sha384:${hex(96)}`,
  ])();
}

function reference(r: Rng, w: World): string {
  return r.pick([
    () => r.pick(w.tags),
    () => digest(r, w),
    () => ".INVALID_MANIFEST_NAME",
    () => "-bad",
    () => "a".repeat(129),
    () => "a".repeat(128),
    () => "_ok",
    () => "t%40g",
    () => "%00",
    () => `v${r.int(5)}`,
    () => "latest",
  ])();
}

function query(r: Rng, w: World): string {
  const params: string[] = [];
  const n = r.int(4);
  for (let i = 0; i < n; i++) {
    const key = r.pick(["digest", "mount", "from", "n", "last", "artifactType", "digest", "x", "%00", ""]);
    const value = r.pick([
      () => digest(r, w),
      () => names(r, w),
      () => String(r.int(100000)),
      () => "-1",
      () => "99999999999999999999999",
      () => "1e3",
      () => "",
      () => "%00",
      () => encodeURIComponent(r.bytes(6).toString("latin1")),
      () => reference(r, w),
    ])();
    params.push(`${key}=${value}`);
  }
  return params.length ? `?${params.join("&")}` : r.pick(["", "?", "?&&", "?=="]);
}

function manifestBody(r: Rng, w: World): Buffer {
  const layers = Array.from({ length: r.int(3) }, () => ({
    mediaType: r.pick(["application/vnd.oci.image.layer.v1.tar", "application/vnd.oci.image.layer.v1.tar+gzip", "x/y", ""]),
    digest: digest(r, w),
    size: r.pick([0, 1, -1, 1e20, 3.5, r.int(1 << 20)]),
  }));
  const base: Record<string, unknown> = r.pick([
    () => JSON.parse(r.pick(w.manifests).toString()) as Record<string, unknown>,
    () => ({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: digest(r, w), size: r.int(5000) }, layers }),
    () => ({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_MANIFEST, digest: digest(r, w), size: r.int(5000) }] }),
    () => ({ schemaVersion: r.pick([1, 3, "2", null]) }),
  ])();
  if (r.chance(0.3)) base.subject = { mediaType: OCI_MANIFEST, digest: digest(r, w), size: r.int(5000) };
  if (r.chance(0.2)) base.annotations = { [r.bytes(4).toString("hex")]: r.pick(["x", 5, null]) };
  if (r.chance(0.1)) base.layers = "nope";
  let text = JSON.stringify(base);
  if (r.chance(0.1)) text = `${"[".repeat(5000)}${"]".repeat(5000)}`;
  if (r.chance(0.1)) text = text.slice(0, r.int(text.length));
  return Buffer.from(text);
}

function body(r: Rng, w: World): Buffer | undefined {
  return r.pick([
    () => undefined,
    () => Buffer.alloc(0),
    () => r.bytes(r.int(64)),
    () => randomBytes(r.int(256 * 1024)),
    () => randomBytes(r.pick([1, 2, 3]) * 1024 * 1024),
    () => manifestBody(r, w),
  ])();
}

function headers(r: Rng, w: World, b: Buffer | undefined): [string, string][] {
  const h: [string, string][] = [];
  if (r.chance(0.5)) h.push(["Content-Type", r.pick([OCI_MANIFEST, OCI_INDEX, "application/octet-stream", "application/vnd.docker.distribution.manifest.v2+json", "text/plain", "", "x/\u00ff"])]);
  if (r.chance(0.3)) {
    const len = b?.length ?? 0;
    h.push(["Content-Range", r.pick([`0-${Math.max(0, len - 1)}`, `bytes 0-${len}`, "5-2", "-1-4", "0-99999999999999999999", "abc", `0-${len - 1}/*`, "", `${r.int(1 << 20)}-${r.int(1 << 21)}`])]);
  }
  if (r.chance(0.3)) h.push(["Range", r.pick(["bytes=0-", "bytes=-0", "bytes=5-2", "bytes=0-0", "bytes=-5", "items=0-1", "bytes=0-1,3-4", "bytes=99999999999999999999-", "bytes=", `bytes=${r.int(1000)}-${r.int(2000)}`])]);
  if (r.chance(0.3)) h.push(["Accept", r.pick([OCI_MANIFEST, OCI_INDEX, "*/*", "", "a/b;q=0", `${OCI_MANIFEST}, ${OCI_INDEX}`, "\u00ff"])]);
  if (r.chance(0.1)) h.push(["If-None-Match", `"${digest(r, w)}"`]);
  if (r.chance(0.05)) h.push(["Expect", "100-continue"]);
  if (r.chance(0.05)) h.push(["X-Junk", "a".repeat(r.int(8000))]);
  if (r.chance(0.05)) h.push(["Authorization", "Basic Zm9vOmJhcg=="]);
  return h;
}

/** A valid registry operation on existing state, sometimes with one field spoiled. */
function structured(r: Rng, w: World): FuzzRequest {
  const repo = r.pick([w.repo, "fuzz/b", "fuzz/c/d"]);
  const spoil = r.chance(0.4);
  const h = (extra: [string, string][] = []): [string, string][] => (spoil ? [...extra, ...headers(r, w, undefined)] : extra);
  const blob = randomBytes(r.pick([0, 1, 100, 5000, 70_000]));
  const ops: (() => FuzzRequest)[] = [
    () => ({ method: "POST", target: `/v2/${repo}/blobs/uploads/?digest=${spoil ? digest(r, w) : sha(blob)}`, headers: h(), body: blob, chunked: r.chance(0.5) }),
    () => ({ method: "POST", target: `/v2/${repo}/blobs/uploads/?mount=${r.pick(w.digests)}&from=${spoil ? names(r, w) : w.repo}`, headers: h() }),
    () => ({ method: "POST", target: `/v2/${repo}/blobs/uploads/`, headers: h() }),
    () => ({ method: "PATCH", target: `/v2/${w.repo}/blobs/uploads/${r.pick(w.uploads)}`, headers: h([["Content-Type", "application/octet-stream"]]), body: blob, chunked: r.chance(0.5) }),
    () => ({ method: "PUT", target: `/v2/${w.repo}/blobs/uploads/${r.pick(w.uploads)}?digest=${spoil ? digest(r, w) : sha(blob)}`, headers: h(), body: r.chance(0.5) ? blob : undefined }),
    () => ({ method: "GET", target: `/v2/${w.repo}/blobs/uploads/${r.pick(w.uploads)}`, headers: h() }),
    () => ({ method: "DELETE", target: `/v2/${w.repo}/blobs/uploads/${r.pick(w.uploads)}`, headers: h() }),
    () => ({ method: "PUT", target: `/v2/${repo}/manifests/${r.pick(w.tags)}`, headers: [["Content-Type", OCI_MANIFEST]], body: spoil ? manifestBody(r, w) : r.pick(w.manifests) }),
    () => ({ method: r.pick(["GET", "HEAD"]), target: `/v2/${repo}/manifests/${reference(r, w)}`, headers: h([["Accept", `${OCI_MANIFEST}, ${OCI_INDEX}`]]) }),
    () => ({ method: r.pick(["GET", "HEAD"]), target: `/v2/${repo}/blobs/${r.pick(w.digests)}`, headers: h() }),
    () => ({ method: "DELETE", target: `/v2/${repo}/blobs/${r.pick(w.digests)}`, headers: h() }),
    () => ({ method: "DELETE", target: `/v2/${repo}/manifests/${r.chance(0.5) ? r.pick(w.tags) : r.pick(w.digests)}`, headers: h() }),
    () => ({ method: "GET", target: `/v2/${repo}/tags/list${r.chance(0.5) ? `?n=${r.int(5)}&last=${r.pick(w.tags)}` : ""}`, headers: h() }),
    () => ({ method: "GET", target: `/v2/${repo}/referrers/${r.pick(w.digests)}${r.chance(0.3) ? "?artifactType=a/b" : ""}`, headers: h() }),
    () => ({ method: "GET", target: `/v2/_catalog?n=${r.int(5)}`, headers: h() }),
  ];
  return r.pick(ops)();
}

function generate(r: Rng, w: World): FuzzRequest {
  if (r.chance(0.5)) return structured(r, w);
  const method = r.pick(["GET", "GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "GET", "PUT", "POST", "PATCH", "OPTIONS", "FOO", "TRACE"]);
  const name = names(r, w);
  const path = r.pick([
    () => "/v2/",
    () => "/v2",
    () => `/v2/${name}/blobs/${digest(r, w)}`,
    () => `/v2/${name}/blobs/uploads/`,
    () => `/v2/${name}/blobs/uploads/${r.pick(w.uploads)}`,
    () => `/v2/${name}/blobs/uploads/${r.pick(["00000000-0000-0000-0000-000000000000", "x", "../x", "%00", r.bytes(16).toString("hex")])}`,
    () => `/v2/${name}/manifests/${reference(r, w)}`,
    () => `/v2/${name}/tags/list`,
    () => `/v2/${name}/referrers/${digest(r, w)}`,
    () => "/v2/_catalog",
    () => r.pick(["/healthz", "/readyz", "/metrics", "/", "//v2//", "/v2/../v2/", "/%2e%2e/"]),
  ])();
  const b = method === "GET" || method === "HEAD" ? (r.chance(0.05) ? r.bytes(10) : undefined) : body(r, w);
  return { method, target: path + query(r, w), headers: headers(r, w, b), body: b, chunked: b !== undefined && r.chance(0.3), abort: b !== undefined && b.length > 0 && r.chance(0.03) };
}

/** Methods Node's HTTP parser knows; others are refused before the registry sees them. */
const PARSER_METHODS = new Set(["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS", "TRACE"]);

/** Whether the request line is valid HTTP/1.1 (else the parser may close without an answer). */
function wellFormed(req: FuzzRequest): boolean {
  return PARSER_METHODS.has(req.method) && /^[\x21-\x7e]+$/.test(req.target);
}

interface Answer {
  status: number;
  headers: Record<string, string>;
}

/** One request on its own connection; resolves with the status line and headers (the body is read and dropped). */
function send(port: number, req: FuzzRequest): Promise<Answer | "aborted" | "timeout" | "reset"> {
  return new Promise((resolve) => {
    const s = connect(port, "127.0.0.1");
    let buf = Buffer.alloc(0);
    let done = false;
    const finish = (v: Answer | "aborted" | "timeout" | "reset") => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => finish("timeout"), REQUEST_TIMEOUT_MS);
    s.on("error", () => finish(req.abort ? "aborted" : "reset"));
    s.on("close", () => finish(req.abort ? "aborted" : "reset"));
    s.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      let end = buf.indexOf("\r\n\r\n");
      // Skip interim "100 Continue" answers.
      while (end >= 0 && /^HTTP\/1\.[01] 100 /.test(buf.subarray(0, 16).toString("latin1"))) {
        buf = buf.subarray(end + 4);
        end = buf.indexOf("\r\n\r\n");
      }
      if (end < 0) return;
      const lines = buf.subarray(0, end).toString("latin1").split("\r\n");
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0])?.[1] ?? 0);
      const h: Record<string, string> = {};
      for (const l of lines.slice(1)) {
        const i = l.indexOf(":");
        if (i > 0) h[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
      }
      finish({ status, headers: h });
    });
    const head = [`${req.method} ${req.target} HTTP/1.1`, "Host: fuzz", "Connection: close", ...req.headers.map(([k, v]) => `${k}: ${v}`)];
    const b = req.body;
    if (b !== undefined) head.push(req.chunked ? "Transfer-Encoding: chunked" : `Content-Length: ${b.length}`);
    s.write(`${head.join("\r\n")}\r\n\r\n`, "latin1");
    if (b === undefined) return;
    const payload = req.abort ? b.subarray(0, Math.floor(b.length / 2)) : b;
    if (req.chunked) {
      for (let i = 0; i < payload.length; i += 65536) {
        const c = payload.subarray(i, i + 65536);
        s.write(`${c.length.toString(16)}\r\n`);
        s.write(c);
        s.write("\r\n");
      }
      if (!req.abort) s.write("0\r\n\r\n");
    } else {
      s.write(payload);
    }
    if (req.abort) setTimeout(() => finish("aborted"), 20);
  });
}

/** A small image, an open upload and a tag, so that requests hit existing state too. */
async function seedWorld(srv: StrataServer): Promise<World> {
  const repo = "fuzz/app";
  const layer = randomBytes(100_000);
  const img = minimalImage([layer]);
  for (const b of [layer, img.config]) {
    const r = await fetch(`${srv.url}/v2/${repo}/blobs/uploads/?digest=${sha(b)}`, { method: "POST", body: b });
    assert.equal(r.status, 201);
  }
  const m = await fetch(`${srv.url}/v2/${repo}/manifests/v1`, { method: "PUT", body: img.manifest, headers: { "Content-Type": OCI_MANIFEST } });
  assert.equal(m.status, 201);
  const uploads: string[] = [];
  for (let i = 0; i < 4; i++) {
    const u = await fetch(`${srv.url}/v2/${repo}/blobs/uploads/`, { method: "POST" });
    uploads.push(u.headers.get("location")!.split("/").pop()!);
  }
  return { repo, digests: [sha(layer), sha(img.config), sha(img.manifest)], manifests: [img.manifest], uploads, tags: ["v1", "latest", "v2"] };
}

interface Report {
  requests: number;
  statuses: Map<number, number>;
  failures: string[];
}

async function fuzz(srv: StrataServer, seconds: number, seed: number): Promise<Report> {
  const world = await seedWorld(srv);
  const port = Number(new URL(srv.url).port);
  const report: Report = { requests: 0, statuses: new Map(), failures: [] };
  const deadline = Date.now() + seconds * 1000;
  const worker = async (id: number) => {
    const r = prng(seed + id);
    for (let i = 0; Date.now() < deadline; i++) {
      const req = generate(r, world);
      const a = await send(port, req);
      report.requests++;
      const what = `worker ${id} request ${i}: ${req.method} ${req.target.slice(0, 200)} [${req.headers.map(([k, v]) => `${k}: ${v.slice(0, 60)}`).join("; ")}] body ${req.body?.length ?? "-"}${req.chunked ? " chunked" : ""}`;
      if (a === "aborted") continue;
      if (a === "timeout" || (a === "reset" && wellFormed(req))) {
        report.failures.push(`${a}: ${what}`);
        continue;
      }
      if (a === "reset") continue; // Node's HTTP parser refuses it and hangs up: fine
      report.statuses.set(a.status, (report.statuses.get(a.status) ?? 0) + 1);
      if (a.status >= 500 || a.status === 0) report.failures.push(`${a.status}: ${what}`);
      // Real state changes now and then, so that later requests meet new uploads and tags.
      if (a.status === 202 && a.headers.location?.includes("/blobs/uploads/") && world.uploads.length < 64) {
        world.uploads.push(a.headers.location.split("/").pop()!.split("?")[0]);
      }
    }
  };
  await Promise.all(Array.from({ length: WORKERS }, (_, id) => worker(id)));
  return report;
}

function summary(name: string, seed: number, r: Report): string {
  const statuses = [...r.statuses].sort((a, b) => a[0] - b[0]).map(([s, n]) => `${s}:${n}`).join(" ");
  return `fuzz ${name}: seed ${seed} (STRATA_FUZZ_SEED), ${SECONDS} s, ${r.requests} requests, ${r.failures.length} failures; statuses ${statuses}`;
}

const withS3 = (process.env.STRATA_TEST_BACKENDS ?? "").split(",").includes("s3");

describe("HTTP fuzzing a running strata serve", { concurrency: 1 }, () => {
  const run = async (name: string, config: Record<string, unknown>) => {
    const srv = await startStrata({ ...config, limits: { blobMaxBytes: 8 * 1024 * 1024 }, log: { level: "warn" } });
    try {
      const report = await fuzz(srv, SECONDS, SEED);
      const line = summary(name, SEED, report);
      process.stdout.write(`# ${line}\n`);
      assert.equal(srv.process.exitCode, null, `strata serve died:\n${srv.logs().slice(-4000)}`);
      assert.equal(srv.process.signalCode, null, `strata serve was killed:\n${srv.logs().slice(-4000)}`);
      assert.equal((await fetch(`${srv.url}/v2/`)).status, 200, "still serving after the run");
      assert.deepEqual(report.failures.slice(0, 20), [], `${line}\n${srv.logs().slice(-4000)}`);
    } finally {
      await srv.stop();
    }
  };

  it("filesystem storage: no server error, no hang, no crash", async () => {
    const root = await mkdtemp(join(tmpdir(), "strata-fuzz-"));
    try {
      await run("filesystem", { storage: { driver: "filesystem", filesystem: { root } } });
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it("S3 storage with Redis: no server error, no hang, no crash", { skip: withS3 ? false : "needs STRATA_TEST_BACKENDS to include s3 (CI sets it)" }, async () => {
    const fleet = await fleetConfig();
    try {
      await run("s3+redis", fleet.config);
    } finally {
      await fleet.cleanup();
    }
  });
});
