/**
 * The workload and the checks of the kill -9 suite (kill.test.ts), usable against any running
 * `strata serve`: concurrent workers push blobs (chunked and monolithic), manifests, tags,
 * re-tags and tag deletes, recording in a model what was acknowledged and what was in flight
 * when the server died; `verify` then checks a restarted server against that model.
 *
 * Each worker owns its own repository and tags, so every tag has one writer and its expected
 * state is exact: the last acknowledged write, or (when a write was in flight at the kill)
 * either that or the in-flight one.
 */
import { createHash, randomBytes } from "node:crypto";
import { rm } from "node:fs/promises";
import { dirname } from "node:path";
import type { StrataServer } from "../helpers/strata.js";

export const MiB = 1024 * 1024;
export const sha = (b: Buffer | string) => `sha256:${createHash("sha256").update(b).digest("hex")}`;
const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";

/** kill -9 of a `strata serve`, then its config directory goes (srv.stop() would wait for an exit that already happened). */
export async function kill9(srv: StrataServer): Promise<void> {
  if (srv.process.exitCode === null && srv.process.signalCode === null) {
    const exited = new Promise((r) => srv.process.once("exit", r));
    srv.process.kill("SIGKILL");
    await exited;
  }
  await rm(dirname(srv.configFile), { recursive: true, force: true });
}

/** A small seeded PRNG (mulberry32): the seed reproduces every choice of the workload. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface Res {
  status: number;
  headers: Headers;
  body: Buffer;
}

export async function call(url: string, init: RequestInit & { timeoutMs?: number } = {}): Promise<Res> {
  const r = await fetch(url, { ...init, signal: AbortSignal.timeout(init.timeoutMs ?? 60_000) });
  return { status: r.status, headers: r.headers, body: Buffer.from(await r.arrayBuffer()) };
}

/** A chunked upload the server may have been killed in the middle of. */
export interface Upload {
  repo: string;
  data: Buffer;
  digest: string;
  location?: string;
  /** Bytes the server acknowledged. */
  acked: number;
  /** The completing PUT was sent (its final chunk starts at `acked`). */
  completing: boolean;
}

interface TagState {
  repo: string;
  tag: string;
  /** The manifest digest the last acknowledged write left (null: deleted or never written). */
  acked: string | null;
  /** A write in flight at the kill: its digest, or null for a delete. */
  pending?: string | null;
}

export interface Violation {
  what: string;
  detail: string;
}

export class Model {
  /** "<repo>@<digest>" -> size, acknowledged blobs. */
  readonly blobs = new Map<string, number>();
  /** Blobs in flight at the kill: visible afterwards only whole. */
  readonly pendingBlobs: { repo: string; digest: string; data: Buffer }[] = [];
  /** "<repo>@<digest>" -> bytes, acknowledged manifests. */
  readonly manifests = new Map<string, Buffer>();
  readonly pendingManifests: { repo: string; digest: string; bytes: Buffer }[] = [];
  readonly tags = new Map<string, TagState>();
  /** Chunked uploads interrupted by the kill. */
  interrupted: Upload[] = [];
  /** Blob digests known per repository, for building manifests. */
  readonly repoBlobs = new Map<string, string[]>();

  tag(repo: string, tag: string): TagState {
    const k = `${repo}:${tag}`;
    let t = this.tags.get(k);
    if (!t) {
      t = { repo, tag, acked: null };
      this.tags.set(k, t);
    }
    return t;
  }

  blobAcked(repo: string, digest: string, size: number): void {
    this.blobs.set(`${repo}@${digest}`, size);
    const list = this.repoBlobs.get(repo) ?? [];
    if (!list.includes(digest)) list.push(digest);
    this.repoBlobs.set(repo, list);
  }
}

export interface WorkloadOptions {
  base: string;
  repo: string;
  rand: () => number;
  /** Chunk sizes to draw from (bytes). */
  chunkSizes: number[];
  /** "tags": mostly tag writes and deletes (their crash windows are short, so a kill must find many in flight). */
  mix: "all" | "tags";
  stop: () => boolean;
}

/** A network failure (the server died) rather than an answer. */
class Cut extends Error {}

async function req(url: string, init: RequestInit = {}): Promise<Res> {
  try {
    return await call(url, init);
  } catch (e) {
    throw new Cut((e as Error).message);
  }
}

function expect(r: Res, status: number, what: string): void {
  if (r.status !== status) throw new Error(`${what}: expected ${status}, got ${r.status} ${r.body.toString("utf8").slice(0, 300)}`);
}

const pick = <T>(rand: () => number, xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];

/** Runs one worker until `stop()` or until the server dies; unexpected answers are violations. */
export async function runWorker(model: Model, o: WorkloadOptions, violations: Violation[]): Promise<number> {
  const tags = ["a", "b", "c", "latest"];
  let ops = 0;
  while (!o.stop()) {
    const x = o.rand();
    try {
      if ((model.repoBlobs.get(o.repo)?.length ?? 0) < 2) await chunked(model, o);
      else if (o.mix === "tags") {
        if (x < 0.45) await retag(model, o, pick(o.rand, tags));
        else if (x < 0.8) await untag(model, o, pick(o.rand, tags));
        else await manifest(model, o, pick(o.rand, tags));
      } else if (x < 0.3) await chunked(model, o);
      else if (x < 0.45) await monolithic(model, o);
      else if (x < 0.7) await manifest(model, o, pick(o.rand, tags));
      else if (x < 0.8) await retag(model, o, pick(o.rand, tags));
      else if (x < 0.9) await untag(model, o, pick(o.rand, tags));
      else await manifest(model, o, undefined);
      ops++;
    } catch (e) {
      if (e instanceof Cut) return ops;
      violations.push({ what: "unexpected answer while the server ran", detail: (e as Error).message });
      return ops;
    }
  }
  return ops;
}

async function chunked(model: Model, o: WorkloadOptions): Promise<void> {
  const sizes = Array.from({ length: 1 + Math.floor(o.rand() * 3) }, () => pick(o.rand, o.chunkSizes));
  const data = randomBytes(sizes.reduce((a, b) => a + b, 0));
  const u: Upload = { repo: o.repo, data, digest: sha(data), acked: 0, completing: false };
  try {
    let r = await req(`${o.base}/v2/${o.repo}/blobs/uploads/`, { method: "POST" });
    expect(r, 202, "POST upload");
    u.location = r.headers.get("location")!;
    // all chunks but the last as PATCHes, the last with the PUT
    for (const size of sizes.slice(0, -1)) {
      const chunk = data.subarray(u.acked, u.acked + size);
      r = await req(new URL(u.location, o.base).href, {
        method: "PATCH",
        body: chunk,
        headers: { "Content-Type": "application/octet-stream", "Content-Range": `${u.acked}-${u.acked + size - 1}` },
      });
      expect(r, 202, "PATCH");
      u.acked += size;
      u.location = r.headers.get("location")!;
    }
    u.completing = true;
    const put = new URL(u.location, o.base);
    put.searchParams.set("digest", u.digest);
    r = await req(put.href, {
      method: "PUT",
      body: data.subarray(u.acked),
      headers: { "Content-Type": "application/octet-stream", "Content-Range": `${u.acked}-${data.length - 1}` },
    });
    expect(r, 201, "PUT upload");
    model.blobAcked(o.repo, u.digest, data.length);
  } catch (e) {
    if (e instanceof Cut) {
      if (u.location) model.interrupted.push(u);
      model.pendingBlobs.push({ repo: o.repo, digest: u.digest, data });
    }
    throw e;
  }
}

async function monolithic(model: Model, o: WorkloadOptions): Promise<void> {
  const data = randomBytes(pick(o.rand, o.chunkSizes));
  const digest = sha(data);
  try {
    const r = await req(`${o.base}/v2/${o.repo}/blobs/uploads/?digest=${digest}`, { method: "POST", body: data, headers: { "Content-Type": "application/octet-stream" } });
    expect(r, 201, "monolithic POST");
    model.blobAcked(o.repo, digest, data.length);
  } catch (e) {
    if (e instanceof Cut) model.pendingBlobs.push({ repo: o.repo, digest, data });
    throw e;
  }
}

function buildManifest(model: Model, o: WorkloadOptions): Buffer {
  const blobs = model.repoBlobs.get(o.repo)!;
  const desc = (d: string, mediaType: string) => ({ mediaType, digest: d, size: model.blobs.get(`${o.repo}@${d}`)! });
  const layers = Array.from({ length: 1 + Math.floor(o.rand() * 2) }, () => desc(pick(o.rand, blobs), "application/vnd.oci.image.layer.v1.tar"));
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: desc(pick(o.rand, blobs), "application/vnd.oci.image.config.v1+json"),
      layers,
      annotations: { nonce: randomBytes(8).toString("hex") },
    }),
  );
}

async function putManifest(model: Model, o: WorkloadOptions, ref: string, bytes: Buffer): Promise<void> {
  const digest = sha(bytes);
  const t = ref.startsWith("sha256:") ? undefined : model.tag(o.repo, ref);
  if (t) t.pending = digest;
  try {
    const r = await req(`${o.base}/v2/${o.repo}/manifests/${ref}`, { method: "PUT", body: bytes, headers: { "Content-Type": OCI_MANIFEST } });
    expect(r, 201, `PUT manifest ${ref}`);
    model.manifests.set(`${o.repo}@${digest}`, bytes);
    if (t) {
      t.acked = digest;
      t.pending = undefined;
    }
  } catch (e) {
    if (e instanceof Cut) model.pendingManifests.push({ repo: o.repo, digest, bytes });
    throw e;
  }
}

async function manifest(model: Model, o: WorkloadOptions, tag: string | undefined): Promise<void> {
  const bytes = buildManifest(model, o);
  await putManifest(model, o, tag ?? sha(bytes), bytes);
}

async function retag(model: Model, o: WorkloadOptions, tag: string): Promise<void> {
  const mine = [...model.manifests.entries()].filter(([k]) => k.startsWith(`${o.repo}@`));
  if (mine.length === 0) return manifest(model, o, tag);
  await putManifest(model, o, tag, pick(o.rand, mine)[1]);
}

async function untag(model: Model, o: WorkloadOptions, tag: string): Promise<void> {
  const t = model.tag(o.repo, tag);
  t.pending = null;
  const r = await req(`${o.base}/v2/${o.repo}/manifests/${tag}`, { method: "DELETE" });
  if (t.acked === null) expect(r, 404, `DELETE of missing tag ${tag}`);
  else expect(r, 202, `DELETE tag ${tag}`);
  t.acked = null;
  t.pending = undefined;
}

/**
 * Checks a (restarted) server against the model, then folds what it found for in-flight writes
 * into the model, so the workload can go on. Returns the violations.
 */
export async function verify(model: Model, base: string, repos: string[]): Promise<Violation[]> {
  const v: Violation[] = [];
  for (const repo of repos) {
    const l = await call(`${base}/v2/${repo}/tags/list`);
    const listed = new Set<string>(l.status === 200 ? (JSON.parse(l.body.toString()) as { tags: string[] }).tags : []);
    if (l.status !== 200 && l.status !== 404) v.push({ what: "tags/list failed", detail: `${repo}: ${l.status}` });
    const known = [...model.tags.values()].filter((t) => t.repo === repo);
    const names = new Set([...known.map((t) => t.tag), ...listed]);
    for (const tag of names) {
      const r = await call(`${base}/v2/${repo}/manifests/${tag}`, { headers: { Accept: OCI_MANIFEST } });
      const resolved = r.status === 200 ? sha(r.body) : null;
      if (r.status !== 200 && r.status !== 404) v.push({ what: "tag GET failed", detail: `${repo}:${tag} ${r.status}` });
      if (listed.has(tag) && resolved === null) v.push({ what: "phantom tag (listed, GET 404)", detail: `${repo}:${tag}` });
      if (!listed.has(tag) && resolved !== null) v.push({ what: "missing tag (resolves, not listed)", detail: `${repo}:${tag}` });
      const t = model.tag(repo, tag);
      const allowed = t.pending === undefined ? [t.acked] : [t.acked, t.pending];
      if (!allowed.includes(resolved)) v.push({ what: "tag has a state no write left", detail: `${repo}:${tag} is ${resolved}, expected one of ${JSON.stringify(allowed)}` });
      t.acked = resolved;
      t.pending = undefined;
    }
  }
  for (const [key, size] of model.blobs) {
    const [repo, digest] = key.split("@");
    const r = await call(`${base}/v2/${repo}/blobs/${digest}`);
    if (r.status !== 200 || r.body.length !== size || sha(r.body) !== digest) v.push({ what: "acknowledged blob lost or wrong", detail: `${key}: ${r.status}, ${r.body.length} bytes` });
  }
  for (const p of model.pendingBlobs) {
    const r = await call(`${base}/v2/${p.repo}/blobs/${p.digest}`);
    if (r.status === 200) {
      if (!r.body.equals(p.data)) v.push({ what: "partial or wrong blob visible", detail: `${p.repo}@${p.digest}: ${r.body.length} of ${p.data.length} bytes` });
      else model.blobAcked(p.repo, p.digest, p.data.length);
    } else if (r.status !== 404) v.push({ what: "blob GET failed", detail: `${p.repo}@${p.digest}: ${r.status}` });
  }
  model.pendingBlobs.length = 0;
  for (const [key, bytes] of model.manifests) {
    const [repo, digest] = key.split("@");
    const r = await call(`${base}/v2/${repo}/manifests/${digest}`, { headers: { Accept: OCI_MANIFEST } });
    if (r.status !== 200 || !r.body.equals(bytes)) v.push({ what: "acknowledged manifest lost or wrong", detail: `${key}: ${r.status}` });
  }
  for (const p of model.pendingManifests) {
    const r = await call(`${base}/v2/${p.repo}/manifests/${p.digest}`, { headers: { Accept: OCI_MANIFEST } });
    if (r.status === 200 && !r.body.equals(p.bytes)) v.push({ what: "wrong manifest visible", detail: `${p.repo}@${p.digest}` });
    if (r.status === 200) model.manifests.set(`${p.repo}@${p.digest}`, p.bytes);
  }
  model.pendingManifests.length = 0;
  return v;
}

export interface ResumeResult {
  /** Interrupted uploads completed after the restart (status, PATCH from the offset, PUT). */
  completed: number;
  /** Interrupted uploads the restarted server no longer knew (404). */
  unknown: number;
}

/**
 * Continues every upload interrupted by the kill, as a client would: a completing PUT is simply
 * sent again; otherwise GET the status, send the bytes from the offset the server holds and
 * complete. `sessionsSurvive`: upload sessions outlive the process (Redis), so every interrupted
 * upload must be known after the restart.
 */
export async function resumeUploads(model: Model, base: string, sessionsSurvive: boolean, v: Violation[]): Promise<ResumeResult> {
  const out: ResumeResult = { completed: 0, unknown: 0 };
  const complete = async (location: string, offset: number, u: Upload): Promise<Res> => {
    const put = new URL(location, base);
    put.searchParams.set("digest", u.digest);
    return call(put.href, {
      method: "PUT",
      body: u.data.subarray(offset),
      headers: { "Content-Type": "application/octet-stream", "Content-Range": `${offset}-${u.data.length - 1}` },
    });
  };
  for (const u of model.interrupted) {
    let r: Res;
    if (u.completing) {
      r = await complete(u.location!, u.acked, u);
    } else {
      const st = await call(new URL(u.location!, base).href);
      if (st.status !== 204) {
        r = st;
      } else {
        const range = st.headers.get("range")!;
        const held = range === "0-0" ? 0 : Number(range.split("-")[1]) + 1; // chunks are never 1 byte
        if (held < u.acked) v.push({ what: "acknowledged chunk lost", detail: `${u.location}: holds ${held}, ${u.acked} were acknowledged` });
        r = await complete(st.headers.get("location") ?? u.location!, held, u);
      }
    }
    if (r.status === 201) {
      model.blobAcked(u.repo, u.digest, u.data.length);
      out.completed++;
    } else if (r.status === 404) {
      out.unknown++;
      if (sessionsSurvive && u.completing) v.push({ what: "retried completing PUT answered 404", detail: `${u.repo} ${u.location}` });
    } else {
      v.push({ what: "resumed upload failed", detail: `${u.location}: ${r.status} ${r.body.toString().slice(0, 200)}` });
    }
  }
  model.interrupted = [];
  return out;
}
