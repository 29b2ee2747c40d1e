/**
 * Image metadata for the UI and the /strata/v1 API: what each repository holds, how big it
 * is, when it was pushed and pulled. The registry records these facts itself, from its
 * events (events.ts), into a MetadataStore:
 *   - MemoryMetadataStore (embedded mode): built once from storage at first use (push times
 *     are the modification times of the revision and tag links, which the registry wrote),
 *     then kept up to date from events; pull times are saved to storage every few seconds.
 *   - RedisMetadataStore (redis/metadata.ts, fleet mode): a summary in Redis maintained on
 *     push, delete and pull by every replica, so listing never walks storage.
 *
 * Sizes are compressed sizes: the sum of the distinct blobs (config and layers) that the
 * repository's manifests reference, and for one manifest its config plus layers (for an
 * index, per platform and in total over the distinct blobs of its children).
 *
 * Listing is paginated with an opaque cursor: the name for sort=name, "<padded key>|<name>"
 * for sort=pushed and sort=size (newest and largest first).
 */
import { type Digest, MediaTypes, OciError, type ParsedManifest, parseImageConfig, parseManifest, tryParseDigest } from "@strata/core";
import type { Logger } from "pino";
import { UnknownError } from "../errors.js";
import type { EventBus, RegistryEvent } from "../events.js";
import { WorkQueue } from "../events.js";
import type { Locker } from "../locks.js";
import { isNotFound, type StorageDriver } from "../storage/driver.js";
import { baseName, pathFor } from "../storage/paths.js";
import type { BlobStore } from "./blobs.js";
import { walkRepositories } from "./catalog.js";
import { listAll, type ManifestStore } from "./manifests.js";

export interface BlobRef {
  readonly digest: string;
  readonly size: number;
}

/** One platform image of an index. */
export interface IndexChild {
  readonly digest: string;
  readonly mediaType: string;
  /** os/arch[/variant], "unknown/unknown" for attestations */
  readonly platform: string;
  /** config + layers of that child */
  readonly size: number;
  /** "attestation" for a buildx attestation manifest */
  readonly type?: string;
}

/** What the registry knows about one manifest in one repository. */
export interface ManifestFacts {
  readonly digest: string;
  readonly mediaType: string;
  /** bytes of the manifest itself */
  readonly manifestSize: number;
  readonly artifactType?: string;
  readonly subject?: string;
  /** platforms of the image (index: of its children, attestations left out) */
  readonly platforms: string[];
  /** config + layers (image manifests only; an index's children count their own) */
  readonly blobs: BlobRef[];
  readonly children?: IndexChild[];
  /** compressed size: distinct config + layer bytes (index: over all its children) */
  readonly size: number;
  /** ms since the epoch */
  readonly pushedAt: number;
}

export interface RepositorySummary {
  readonly name: string;
  readonly tagCount: number;
  /** bytes of the distinct blobs the repository's manifests reference */
  readonly size: number;
  /** ms since the epoch; the last manifest push or tag */
  readonly pushedAt: number;
}

export interface TagRecord {
  readonly digest: string;
  /** ms since the epoch */
  readonly pushedAt: number;
}

export type SortKey = "name" | "pushed" | "size";

export interface ListQuery {
  readonly q?: string;
  readonly sort: SortKey;
  readonly n: number;
  /** cursor: the `next` of the previous page */
  readonly last?: string;
}

export interface ListPage {
  readonly items: RepositorySummary[];
  readonly next?: string;
}

/** Everything the store keeps for one repository's tags and manifests (for the tag list). */
export interface RepositoryContents {
  readonly tags: Map<string, TagRecord>;
  readonly manifests: Map<string, ManifestFacts>;
  /** digest or "tag:<tag>" -> ms */
  readonly pulls: Map<string, number>;
  /** subject digest -> number of referrers */
  readonly referrers: Map<string, number>;
}

export interface MetadataStore {
  /** Records a manifest (a re-push only moves its push time) and, when given, a tag pointing at it. */
  putManifest(repository: string, facts: ManifestFacts, tag?: string): Promise<void>;
  /** Forgets a manifest and every tag pointing at it. */
  deleteManifest(repository: string, digest: string): Promise<void>;
  deleteTag(repository: string, tag: string): Promise<void>;
  /** Records pulls: repository -> key (digest or "tag:<tag>") -> ms. */
  pulled(pulls: Map<string, Map<string, number>>): Promise<void>;
  list(query: ListQuery, allow: (name: string) => boolean): Promise<ListPage>;
  summary(repository: string): Promise<RepositorySummary | undefined>;
  contents(repository: string): Promise<RepositoryContents | undefined>;
  /** Whether the store holds a complete picture (false: it must be built from storage first). */
  built(): Promise<boolean>;
  markBuilt(): Promise<void>;
  close?(): Promise<void>;
}

/** Width of the numbers in sort keys: 16 digits hold any size or ms time below 2^53. */
export function sortKey(value: number, name: string): string {
  return `${String(Math.max(0, Math.floor(value))).padStart(16, "0")}|${name}`;
}

/** A query parameter the API cannot serve: 400 UNSUPPORTED with the reason. */
export function badQuery(message: string): OciError {
  return new OciError("UNSUPPORTED", { status: 400, message });
}

export function parseSort(v: unknown): SortKey {
  if (v === undefined || v === "") return "name";
  if (v === "name" || v === "pushed" || v === "size") return v;
  throw badQuery("sort must be name, pushed or size");
}

/** Checks a cursor's shape for a sort order (a name for sort=name, key|name otherwise). */
export function checkCursor(sort: SortKey, last: string | undefined): void {
  if (last === undefined) return;
  const ok = sort === "name" ? !last.includes("|") : /^\d{16}\|./.test(last);
  if (!ok) throw badQuery(`last is not a cursor of a sort=${sort} listing`);
}

const ATTESTATION = "attestation-manifest";
const MAX_CONFIG_BYTES = 4 * 1024 * 1024;

function platformString(p: { os?: string; architecture?: string; variant?: string } | undefined): string | undefined {
  if (!p || !p.os || !p.architecture) return undefined;
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ""}`;
}

function distinctSize(blobs: readonly BlobRef[]): number {
  const seen = new Map<string, number>();
  for (const b of blobs) seen.set(b.digest, b.size);
  let total = 0;
  for (const s of seen.values()) total += s;
  return total;
}

const IMAGE_CONFIG_TYPES = new Set<string>([MediaTypes.OciConfig, MediaTypes.DockerConfig]);

/** Reads what the facts of a manifest need from storage: the manifest, and an image's config. */
export class ManifestInspector {
  constructor(
    private readonly manifests: ManifestStore,
    private readonly blobs: BlobStore,
  ) {}

  async parsed(repository: string, digest: Digest): Promise<{ m: ParsedManifest; size: number }> {
    const stored = await this.manifests.get(repository, { digest });
    return { m: parseManifest(stored.raw), size: stored.raw.length };
  }

  /** The image config JSON, or undefined for artifacts, oversized or unreadable configs. */
  async config(m: ParsedManifest): Promise<ReturnType<typeof parseImageConfig>["config"] | undefined> {
    if (m.kind !== "manifest" || !IMAGE_CONFIG_TYPES.has(m.config.mediaType) || m.config.size > MAX_CONFIG_BYTES) return undefined;
    try {
      return parseImageConfig(await this.blobs.getSmall(m.config.digest)).config;
    } catch {
      return undefined;
    }
  }

  async facts(repository: string, digest: Digest, pushedAt: number): Promise<ManifestFacts> {
    const { m, size } = await this.parsed(repository, digest);
    const base = { digest, mediaType: m.mediaType, manifestSize: size, artifactType: m.artifactType, subject: m.subject?.digest, pushedAt };
    if (m.kind === "manifest") {
      const blobs = [m.config, ...m.layers].map((d) => ({ digest: d.digest, size: d.size }));
      const cfg = await this.config(m);
      const platform = platformString(cfg);
      const artifactType = m.artifactType ?? (IMAGE_CONFIG_TYPES.has(m.config.mediaType) ? undefined : m.config.mediaType);
      return { ...base, artifactType, platforms: platform ? [platform] : [], blobs, size: distinctSize(blobs) };
    }
    const children: IndexChild[] = [];
    const all: BlobRef[] = [];
    for (const d of m.manifests) {
      let childBlobs: BlobRef[] = [];
      let platform = platformString(d.platform);
      try {
        const child = await this.parsed(repository, d.digest);
        if (child.m.kind === "manifest") {
          childBlobs = [child.m.config, ...child.m.layers].map((x) => ({ digest: x.digest, size: x.size }));
          platform ??= platformString(await this.config(child.m));
        }
      } catch (e) {
        if (!(e instanceof UnknownError)) throw e;
      }
      all.push(...childBlobs);
      const type = d.annotations?.["vnd.docker.reference.type"] === ATTESTATION ? "attestation" : undefined;
      children.push({ digest: d.digest, mediaType: d.mediaType, platform: platform ?? "unknown/unknown", size: distinctSize(childBlobs), ...(type ? { type } : {}) });
    }
    const platforms = [...new Set(children.filter((c) => c.type === undefined && c.platform !== "unknown/unknown").map((c) => c.platform))];
    return { ...base, platforms, blobs: [], children, size: distinctSize(all) };
  }
}

/** Every manifest revision digest of a repository (storage walk). */
async function revisions(driver: StorageDriver, repository: string): Promise<Digest[]> {
  const out: Digest[] = [];
  for (const alg of (await listAll(driver, pathFor({ kind: "manifestRevisionsRoot", name: repository }))) ?? []) {
    for (const dir of (await listAll(driver, alg)) ?? []) {
      const d = tryParseDigest(`${baseName(alg)}:${baseName(dir)}`);
      if (d) out.push(d);
    }
  }
  return out;
}

async function modTime(driver: StorageDriver, key: string): Promise<number | undefined> {
  try {
    return (await driver.stat(key)).modTime.getTime();
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
}

/**
 * Records every manifest and tag found in storage into `store`; push times are the link
 * files' modification times. Returns the counts recorded.
 */
export async function buildFromStorage(store: MetadataStore, driver: StorageDriver, inspector: ManifestInspector, manifests: ManifestStore): Promise<{ repositories: number; manifests: number; tags: number }> {
  let manifestCount = 0;
  let tagCount = 0;
  const repos = await walkRepositories(driver);
  for (const repo of repos) {
    const digests = await revisions(driver, repo);
    const facts = new Map<string, ManifestFacts>();
    // what events recorded already stays: their times are exact, storage's are coarser (S3: whole seconds)
    const known = await store.contents(repo);
    for (const d of digests) {
      if (known?.manifests.has(d)) continue;
      const at = await modTime(driver, pathFor({ kind: "manifestRevisionLink", name: repo, digest: d }));
      if (at === undefined) continue;
      try {
        facts.set(d, await inspector.facts(repo, d, at));
      } catch (e) {
        if (e instanceof UnknownError) continue;
        throw e;
      }
    }
    for (const f of facts.values()) await store.putManifest(repo, f);
    manifestCount += facts.size;
    let tags: string[] = [];
    try {
      tags = await manifests.tags(repo);
    } catch (e) {
      if (!(e instanceof UnknownError)) throw e;
    }
    for (const tag of tags) {
      const link = pathFor({ kind: "tagCurrentLink", name: repo, tag });
      const [at, digest] = await Promise.all([modTime(driver, link), manifests.resolve(repo, { tag }).catch(() => undefined)]);
      const f = digest ? (facts.get(digest) ?? known?.manifests.get(digest)) : undefined;
      if (at === undefined || !f || known?.tags.get(tag)?.digest === digest) continue;
      await store.putManifest(repo, { ...f, pushedAt: Math.max(f.pushedAt, at) }, tag);
      tagCount++;
    }
  }
  return { repositories: repos.length, manifests: manifestCount, tags: tagCount };
}

// ---------------------------------------------------------------------------------------
// Embedded store

interface RepoState extends RepositoryContents {
  /** blob digest -> [size, references] */
  readonly blobRefs: Map<string, [number, number]>;
  size: number;
  pushedAt: number;
}

export class MemoryMetadataStore implements MetadataStore {
  private readonly repos = new Map<string, RepoState>();
  private isBuilt = false;

  private state(repository: string): RepoState {
    let s = this.repos.get(repository);
    if (!s) {
      s = { tags: new Map(), manifests: new Map(), pulls: new Map(), referrers: new Map(), blobRefs: new Map(), size: 0, pushedAt: 0 };
      this.repos.set(repository, s);
    }
    return s;
  }

  async putManifest(repository: string, facts: ManifestFacts, tag?: string): Promise<void> {
    const s = this.state(repository);
    const old = s.manifests.get(facts.digest);
    s.manifests.set(facts.digest, old ? { ...old, pushedAt: Math.max(old.pushedAt, facts.pushedAt) } : facts);
    if (!old) {
      for (const b of facts.blobs) {
        const ref = s.blobRefs.get(b.digest);
        if (ref) ref[1]++;
        else {
          s.blobRefs.set(b.digest, [b.size, 1]);
          s.size += b.size;
        }
      }
      if (facts.subject) s.referrers.set(facts.subject, (s.referrers.get(facts.subject) ?? 0) + 1);
    }
    const prev = tag === undefined ? undefined : s.tags.get(tag);
    // a build from storage may record a tag after its (later) push event did: the later time stays
    if (tag !== undefined && !(prev?.digest === facts.digest && prev.pushedAt > facts.pushedAt)) s.tags.set(tag, { digest: facts.digest, pushedAt: facts.pushedAt });
    s.pushedAt = Math.max(s.pushedAt, facts.pushedAt);
  }

  async deleteManifest(repository: string, digest: string): Promise<void> {
    const s = this.repos.get(repository);
    const f = s?.manifests.get(digest);
    if (!s || !f) return;
    s.manifests.delete(digest);
    for (const b of f.blobs) {
      const ref = s.blobRefs.get(b.digest);
      if (ref && --ref[1] === 0) {
        s.blobRefs.delete(b.digest);
        s.size -= ref[0];
      }
    }
    if (f.subject) {
      const n = (s.referrers.get(f.subject) ?? 1) - 1;
      if (n > 0) s.referrers.set(f.subject, n);
      else s.referrers.delete(f.subject);
    }
    for (const [t, rec] of s.tags) if (rec.digest === digest) s.tags.delete(t);
    s.pulls.delete(digest);
    if (s.manifests.size === 0) this.repos.delete(repository);
  }

  async deleteTag(repository: string, tag: string): Promise<void> {
    const s = this.repos.get(repository);
    s?.tags.delete(tag);
    s?.pulls.delete(`tag:${tag}`);
  }

  async pulled(pulls: Map<string, Map<string, number>>): Promise<void> {
    for (const [repo, keys] of pulls) {
      const s = this.repos.get(repo);
      if (!s) continue;
      for (const [k, at] of keys) s.pulls.set(k, Math.max(at, s.pulls.get(k) ?? 0));
    }
  }

  async list(query: ListQuery, allow: (name: string) => boolean): Promise<ListPage> {
    const keyOf = (name: string, s: RepoState) => (query.sort === "name" ? name : sortKey(query.sort === "pushed" ? s.pushedAt : s.size, name));
    const desc = query.sort !== "name";
    const rows: [string, string, RepoState][] = [];
    for (const [name, s] of this.repos) {
      if (query.q && !name.includes(query.q)) continue;
      const key = keyOf(name, s);
      if (query.last !== undefined && (desc ? !(key < query.last) : !(key > query.last))) continue;
      rows.push([key, name, s]);
    }
    rows.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0) * (desc ? -1 : 1));
    const items: RepositorySummary[] = [];
    let next: string | undefined;
    let more = false;
    for (const [key, name, s] of rows) {
      if (!allow(name)) continue;
      if (items.length === query.n) {
        more = true;
        break;
      }
      items.push(summaryOf(name, s));
      next = key;
    }
    return { items, next: more ? next : undefined };
  }

  async summary(repository: string): Promise<RepositorySummary | undefined> {
    const s = this.repos.get(repository);
    return s ? summaryOf(repository, s) : undefined;
  }

  async contents(repository: string): Promise<RepositoryContents | undefined> {
    return this.repos.get(repository);
  }

  async built(): Promise<boolean> {
    return this.isBuilt;
  }

  async markBuilt(): Promise<void> {
    this.isBuilt = true;
  }

  /** Pull times, for saving: repository -> key -> ms. */
  pullTimes(): Record<string, Record<string, number>> {
    const out: Record<string, Record<string, number>> = {};
    for (const [name, s] of this.repos) if (s.pulls.size) out[name] = Object.fromEntries(s.pulls);
    return out;
  }
}

function summaryOf(name: string, s: RepoState): RepositorySummary {
  return { name, tagCount: s.tags.size, size: s.size, pushedAt: s.pushedAt };
}

// ---------------------------------------------------------------------------------------
// Recorder: events -> store

/** Pull times wait in memory for at most this many repositories between two writes. */
const MAX_PENDING_PULL_REPOSITORIES = 100_000;

type Work = { kind: "push"; repository: string; digest: Digest; tag?: string; at: number } | { kind: "delete"; repository: string; digest?: Digest; tag?: string };

export interface MetadataOptions {
  /** How often pending pull times are written (ms). */
  flushMs?: number;
  /** Embedded mode: where pull times are saved between restarts. */
  persistPulls?: boolean;
}

/**
 * The metadata the API serves. Subscribes to the event bus; pushes and deletes are applied
 * in order by one worker (bounded queue), pulls are coalesced and written every `flushMs`.
 */
export class MetadataService {
  private readonly queue: WorkQueue<Work>;
  private readonly unsubscribe: () => void;
  private pendingPulls = new Map<string, Map<string, number>>();
  private readonly timer: NodeJS.Timeout;
  private building: Promise<void> | undefined;
  private pullsDirty = false;
  readonly inspector: ManifestInspector;

  constructor(
    readonly store: MetadataStore,
    bus: EventBus,
    private readonly deps: { driver: StorageDriver; manifests: ManifestStore; blobs: BlobStore; locks: Locker; logger: Logger },
    private readonly opts: MetadataOptions = {},
  ) {
    this.inspector = new ManifestInspector(deps.manifests, deps.blobs);
    this.queue = new WorkQueue<Work>({
      capacity: 100_000,
      handle: (w) => this.apply(w),
      onError: (w, err) => deps.logger.warn({ repository: w.repository, err: (err as Error).message }, "metadata not recorded"),
      onDrop: (w) => deps.logger.warn({ repository: w.repository }, "metadata queue full: an update was dropped (strata index rebuild restores it)"),
    });
    this.unsubscribe = bus.subscribe((e) => this.onEvent(e));
    this.timer = setInterval(() => void this.flushPulls().catch(() => {}), opts.flushMs ?? 1000);
    this.timer.unref();
  }

  private onEvent(e: RegistryEvent): void {
    const t = e.target;
    if (t.kind === "blob") return;
    const digest = t.digest ? tryParseDigest(t.digest) : undefined;
    if (e.action === "push" && digest) this.queue.push({ kind: "push", repository: t.repository, digest, tag: t.tag, at: e.timestamp.getTime() });
    else if (e.action === "delete") this.queue.push({ kind: "delete", repository: t.repository, digest, tag: digest ? undefined : t.tag });
    else if (e.action === "pull" && digest) {
      if (this.pendingPulls.size >= MAX_PENDING_PULL_REPOSITORIES && !this.pendingPulls.has(t.repository)) return;
      let m = this.pendingPulls.get(t.repository);
      if (!m) this.pendingPulls.set(t.repository, (m = new Map()));
      const at = e.timestamp.getTime();
      m.set(digest, at);
      if (t.tag !== undefined) m.set(`tag:${t.tag}`, at);
    }
  }

  private async apply(w: Work): Promise<void> {
    if (w.kind === "push") {
      let facts: ManifestFacts;
      try {
        facts = await this.inspector.facts(w.repository, w.digest, w.at);
      } catch (e) {
        if (e instanceof UnknownError) return; // deleted since
        throw e;
      }
      await this.store.putManifest(w.repository, facts, w.tag);
    } else if (w.digest) await this.store.deleteManifest(w.repository, w.digest);
    else if (w.tag !== undefined) await this.store.deleteTag(w.repository, w.tag);
  }

  private async flushPulls(): Promise<void> {
    // until the store is built, pulls wait here (a store that is not built yet may not know the repository)
    if (this.pendingPulls.size > 0 && (await this.store.built())) {
      const batch = this.pendingPulls;
      this.pendingPulls = new Map();
      await this.store.pulled(batch);
      this.pullsDirty = true;
    }
    if (this.opts.persistPulls && this.pullsDirty && this.store instanceof MemoryMetadataStore) {
      this.pullsDirty = false;
      await this.deps.driver.putContent(pathFor({ kind: "metadataPulls" }), Buffer.from(JSON.stringify(this.store.pullTimes())));
    }
  }

  /**
   * Makes the store complete and current for this process's own requests: built from
   * storage when it never was, every update queued so far applied (up to a bound, so a
   * backlog never blocks a reader for long).
   */
  async ready(): Promise<void> {
    if (!(await this.store.built())) {
      this.building ??= this.build().finally(() => {
        this.building = undefined;
      });
      await this.building;
    }
    await this.queue.idle(2000);
    await this.flushPulls();
  }

  private async build(): Promise<void> {
    await this.deps.locks.withLock("metadata-build", async () => {
      if (await this.store.built()) return;
      const started = Date.now();
      const r = await buildFromStorage(this.store, this.deps.driver, this.inspector, this.deps.manifests);
      if (this.opts.persistPulls) await this.loadPulls();
      await this.store.markBuilt();
      this.deps.logger.info({ ...r, ms: Date.now() - started }, "metadata built from storage");
    });
  }

  private async loadPulls(): Promise<void> {
    let saved: Record<string, Record<string, number>>;
    try {
      saved = JSON.parse((await this.deps.driver.getContent(pathFor({ kind: "metadataPulls" }))).toString("utf8")) as Record<string, Record<string, number>>;
    } catch {
      return;
    }
    const pulls = new Map<string, Map<string, number>>();
    for (const [repo, keys] of Object.entries(saved ?? {})) {
      if (keys && typeof keys === "object") pulls.set(repo, new Map(Object.entries(keys).filter(([, v]) => typeof v === "number")));
    }
    await this.store.pulled(pulls);
  }

  async close(): Promise<void> {
    this.unsubscribe();
    clearInterval(this.timer);
    await this.queue.close(2000);
    await this.flushPulls().catch((e) => this.deps.logger.warn({ err: (e as Error).message }, "pull times not saved"));
    await this.store.close?.();
  }
}
