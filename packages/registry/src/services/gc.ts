/**
 * Online garbage collection. Runs while replicas keep serving pushes and pulls; one collector
 * at a time (the `gc` lock: a Redis lease for a fleet, an in-process lock plus a lock file
 * for embedded filesystem storage, see storage/filesystem-lock.ts).
 *
 * PROTOCOL
 *
 * Terms. A *link* is a repository's layer link, manifest revision link or referrer link of a
 * digest. The *cutoff* of a run is its start time S minus `gc.delaySeconds`: blobs and links
 * whose modification time is at or after the cutoff are young and never collected by the run.
 *
 * 1. Start. The collector takes the `gc` lock, then in one atomic step of the shared GC state
 *    (GcState: Redis script, or one synchronous step in the process) marks the run active,
 *    empties the *protected set*, and reads the set of manifest PUTs in flight. It waits until
 *    every one of those PUTs has ended (a PUT entry expires after PUSH_TTL_MS; a PUT running
 *    longer refuses to write further, see ManifestStore.put), so that everything they wrote is
 *    in storage before the scan. A run that cannot wait (timeout) ends without deleting.
 * 2. Retention (services/retention.ts) deletes tags beyond the configured rules (never an
 *    immutable tag), through the ordinary untag path (tag lock, tag index). A manifest whose
 *    every tag it deleted is no root below even with `gc.untagged: keep`: retention expires
 *    images, so what only they held is collected in the same run.
 * 3. Mark, from storage (the source of truth, never a cache or index): per repository the
 *    roots are the manifests its tags name and, with `gc.untagged: keep` (default), every
 *    manifest revision, else only revisions whose link is young. From each marked manifest:
 *    its config and layers, the children of an index (revisions of the same repository), and
 *    the referrers whose `subject` is the marked manifest (recursively). Marks are global:
 *    a digest marked in any repository is kept everywhere.
 * 4. Sweep, digest by digest, each under the lock `blob:<digest>` (the lock uploads take to
 *    publish the blob and PUTs take to check it): a digest in the protected set is skipped
 *    whole; else every old link of an unmarked digest is removed (its descriptor-cache entry
 *    first, so no replica's cache answers for it), and the blob itself is deleted when none of
 *    its links is left and its bytes are old. Uploads in progress (`_uploads/`) are never
 *    touched: a blob becomes a candidate only once published at its digest.
 *
 * The race rule. Every operation that makes a blob (or manifest) referenced does so under the
 * digest's `blob:` lock: it checks that the bytes are durably present (stat of the blob key,
 * never a cache), writes its link, and records the digest with `protect()`, which adds it to
 * the protected set atomically if (and only if) a run is active:
 * - a blob upload (publish and link), a cross-repository mount (check and link);
 * - a manifest PUT, for every blob and child manifest it refers to, transitively through index
 *   children (so that a child whose layers the run would sweep cannot be half kept), and for
 *   the manifest's own bytes. A PUT registers itself as in flight (beginPush) before its first
 *   check and deregisters after its last write.
 * Why a PUT that succeeds never loses a blob B to a run R with start S:
 * - If the PUT registered before R read the in-flight set, R waited for it to end before
 *   scanning, so R's mark saw its revision and tag (and with untagged=delete its young
 *   revision link): B is marked.
 * - Otherwise every protect() of the PUT ran after R became active, so B entered R's protected
 *   set under B's lock. R sweeps B under the same lock: either R's sweep of B came first and
 *   the PUT then finds B missing and fails with MANIFEST_BLOB_UNKNOWN, or the PUT came first
 *   and R skips B.
 * (The two atomic steps, "register then read the run flag" on the PUT side and "set the run
 * flag then read the in-flight set" on the collector side, cannot both miss each other.)
 * A blob uploaded or linked before S with nothing referring to it yet is fair game when older
 * than the cutoff: a manifest PUT after its removal fails with MANIFEST_BLOB_UNKNOWN, and the
 * client uploads it again. `gc.delaySeconds` (default 1 h) makes that a non-event in practice.
 *
 * Caches. A removed layer link's descriptor-cache entry (Redis for a fleet, so every replica)
 * is deleted, with its tombstone, before the link; revision links and manifest bytes cached in
 * the process (embedded mode) are forgotten through ManifestStore; fleet replicas read links
 * from storage, so a collected blob or manifest answers 404 everywhere. Tags and revisions a
 * run removes are emitted as delete events (metadata summary, webhooks).
 *
 * Processes. The shared state and the locks must be those of every process serving the
 * storage: Redis for a fleet (`strata gc --config` joins it); with embedded filesystem storage
 * the serving registry is the collector (gc.intervalSeconds), and `strata gc --data DIR`
 * refuses a directory a live registry serves (storage/filesystem-lock.ts). A collector whose
 * lease ran out stops before its next deletion (its lease signal); a deletion already sent may
 * still land, as for every fenced holder (redis/locks.ts).
 *
 * DELETE of a blob only removes the repository's link; its bytes go at the next run.
 */
import { type Digest, digestAlgorithm, digestOf, parseManifest, type ParsedManifest, tryParseDigest } from "@strata/core";
import type { Logger } from "pino";
import { Counter, Gauge, type Registry as MetricsRegistry } from "prom-client";
import { ManifestReferenceError, UnavailableError } from "../errors.js";
import { type EventBus, systemEvent } from "../events.js";
import type { Lease, Locker } from "../locks.js";
import { type FileInfo, isNotFound, type StorageDriver } from "../storage/driver.js";
import { baseName, pathFor } from "../storage/paths.js";
import type { BlobStore } from "./blobs.js";
import type { DescriptorCache } from "./cache.js";
import { walkRepositories } from "./catalog.js";
import { byteOrder, digestDirs, listAll, mapLimit } from "./manifests.js";

/** A manifest PUT's in-flight entry expires this long after it began. */
export const PUSH_TTL_MS = 120_000;
/** A manifest PUT that has run this long writes nothing further (well inside PUSH_TTL_MS). */
export const PUSH_WRITE_LIMIT_MS = 60_000;

/** The GC state shared by everyone who pushes or collects (see the protocol above). */
export interface GcState {
  /** Registers a manifest PUT in flight; the ticket ends it. */
  beginPush(): Promise<string>;
  endPush(ticket: string): Promise<void>;
  /** Adds `digest` to the protected set if a run is active (one atomic step). */
  protect(digest: Digest): Promise<void>;
  /** Marks a run active and empties the protected set; returns the pushes in flight at that instant. */
  beginRun(): Promise<string[]>;
  /** Which of `tickets` are still in flight (not ended, not expired). */
  inFlight(tickets: string[]): Promise<string[]>;
  isProtected(digest: Digest): Promise<boolean>;
  endRun(): Promise<void>;
}

/** GC state of one process (embedded mode: the collector is the serving process, or `strata gc` alone). */
export class MemoryGcState implements GcState {
  private running = false;
  private readonly protectedSet = new Set<string>();
  private readonly pushes = new Map<string, number>();
  private seq = 0;

  async beginPush(): Promise<string> {
    const t = String(++this.seq);
    this.pushes.set(t, Date.now() + PUSH_TTL_MS);
    return t;
  }
  async endPush(ticket: string): Promise<void> {
    this.pushes.delete(ticket);
  }
  async protect(digest: Digest): Promise<void> {
    if (this.running) this.protectedSet.add(digest);
  }
  async beginRun(): Promise<string[]> {
    this.running = true;
    this.protectedSet.clear();
    return [...this.pushes.keys()];
  }
  async inFlight(tickets: string[]): Promise<string[]> {
    const now = Date.now();
    return tickets.filter((t) => (this.pushes.get(t) ?? 0) > now);
  }
  async isProtected(digest: Digest): Promise<boolean> {
    return this.protectedSet.has(digest);
  }
  async endRun(): Promise<void> {
    this.running = false;
    this.protectedSet.clear();
  }
}

/** What pushes use to make references under the protocol's race rule. */
export class GcGuard {
  constructor(
    readonly locks: Locker,
    readonly state: GcState,
  ) {}

  /** Runs a manifest PUT registered as in flight; `deadline` is when it must stop writing. */
  async push<T>(fn: (deadline: number) => Promise<T>): Promise<T> {
    const deadline = Date.now() + PUSH_WRITE_LIMIT_MS;
    const ticket = await this.state.beginPush();
    try {
      return await fn(deadline);
    } finally {
      await this.state.endPush(ticket).catch(() => {});
    }
  }

  /**
   * Under `blob:<digest>`: runs `check` (which must find the content durably present, or
   * throw) and then protects the digest from a running collection.
   */
  async hold<T>(digest: Digest, check: (lease: Lease) => Promise<T>): Promise<T> {
    return this.locks.withLock(`blob:${digest}`, async (lease) => {
      const r = await check(lease);
      await this.state.protect(digest);
      return r;
    });
  }
}

/** Throws ManifestReferenceError unless the blob's bytes are stored with `size` (when given). */
export async function requireStored(blobs: BlobStore, digest: Digest, size?: number): Promise<number> {
  const stored = await blobs.globalSize(digest);
  if (stored === undefined) throw new ManifestReferenceError(digest, `blob ${digest} is not stored`);
  if (size !== undefined && stored !== size) throw new ManifestReferenceError(digest, `blob ${digest} has size ${stored}, the manifest says ${size}`);
  return stored;
}

export type GcActionKind = "blob" | "layer-link" | "revision" | "referrer-link" | "tag";

export interface GcAction {
  readonly kind: GcActionKind;
  readonly repository?: string;
  readonly digest?: Digest;
  readonly tag?: string;
  /** Bytes a deleted blob held. */
  readonly bytes?: number;
  /** Why a tag goes (the retention rule). */
  readonly reason?: string;
}

export interface GcReport {
  readonly dryRun: boolean;
  readonly startedAt: Date;
  readonly durationMs: number;
  readonly actions: GcAction[];
  readonly blobsDeleted: number;
  readonly bytesFreed: number;
  /** Candidates skipped because a push protected them during the run. */
  readonly protectedSkipped: number;
  /** Marked digests (kept). */
  readonly marked: number;
}

export interface GcOptions {
  /**
   * Grace period. Below zero (tests of the race rule only; configuration and CLI refuse it) the
   * cutoff lies ahead of the run's start, so content written during the run is a candidate too.
   */
  readonly delaySeconds: number;
  readonly untagged: "delete" | "keep";
  readonly dryRun?: boolean;
  /** How long to wait for pushes in flight at the start (default PUSH_TTL_MS + 5 s). */
  readonly pushWaitMs?: number;
}

/** Tag deletions retention asks for (services/retention.ts plugs in here). */
export interface TagPolicy {
  /** Tags to delete: computed from storage at the run's start. */
  expired(repository: string, tags: { tag: string; digest: Digest; pushedAt: Date }[], now: Date): { tag: string; reason: string }[];
}

export interface CollectorDeps {
  readonly driver: StorageDriver;
  readonly guard: GcGuard;
  readonly cache: DescriptorCache;
  /** Untags through the tag lock and index; forgets cached links and manifests of collected digests. */
  readonly manifests: {
    untag(repository: string, tag: string): Promise<void>;
    forgetRevision(repository: string, digest: Digest): Promise<void>;
    collected(digest: Digest): void;
  };
  readonly retention?: TagPolicy;
  /** Extra exclusion around a run (embedded filesystem: the lock file `strata gc` takes too). */
  readonly exclusive?: <T>(fn: () => Promise<T>) => Promise<T>;
  readonly logger?: Logger;
  readonly metrics?: GcMetrics;
  /** Receives a delete event for every tag and manifest revision a run removes (metadata, webhooks). */
  readonly events?: EventBus;
}

interface LinkRef {
  readonly kind: "layer-link" | "revision" | "referrer-link";
  readonly repository: string;
  /** The directory holding the link (what deletion removes). */
  readonly dir: string;
  /** The link key itself (what is stat'ed). */
  readonly link: string;
}

interface Scan {
  /** digest -> links naming it */
  readonly links: Map<string, LinkRef[]>;
  /** repository -> subject -> referrer digests */
  readonly referrers: Map<string, Map<string, Digest[]>>;
  /** repository -> [tag, digest, link modTime] */
  readonly tags: Map<string, { tag: string; digest: Digest; pushedAt: Date }[]>;
  /** repository -> revision digests with link modTime */
  readonly revisions: Map<string, { digest: Digest; modTime: Date }[]>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function statOrUndefined(driver: StorageDriver, key: string): Promise<FileInfo | undefined> {
  try {
    const info = await driver.stat(key);
    return info.isDir ? undefined : info;
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
}


/** Prometheus metrics of the collector. */
export class GcMetrics {
  private readonly lastRun: Gauge;
  private readonly duration: Gauge;
  private readonly blobs: Counter;
  private readonly bytes: Counter;
  private readonly runs: Counter;

  constructor(registry: MetricsRegistry) {
    const registers = [registry];
    this.lastRun = new Gauge({ name: "strata_gc_last_run_timestamp_seconds", help: "End of the last garbage collection run (Unix time)", registers });
    this.duration = new Gauge({ name: "strata_gc_last_run_duration_seconds", help: "Duration of the last garbage collection run", registers });
    this.blobs = new Counter({ name: "strata_gc_blobs_deleted_total", help: "Blobs deleted by garbage collection", registers });
    this.bytes = new Counter({ name: "strata_gc_bytes_freed_total", help: "Bytes freed by garbage collection", registers });
    this.runs = new Counter({ name: "strata_gc_runs_total", help: "Garbage collection runs by result", labelNames: ["result"], registers });
  }

  record(r: GcReport): void {
    this.lastRun.set(Date.now() / 1000);
    this.duration.set(r.durationMs / 1000);
    if (!r.dryRun) {
      this.blobs.inc(r.blobsDeleted);
      this.bytes.inc(r.bytesFreed);
    }
    this.runs.inc({ result: r.dryRun ? "dry-run" : "ok" });
  }

  failed(): void {
    this.runs.inc({ result: "failed" });
  }
}

/** Thrown when another collector holds the lock. */
export class GcBusyError extends Error {
  constructor() {
    super("another garbage collection is running");
    this.name = "GcBusyError";
  }
}

export class GarbageCollector {
  constructor(private readonly deps: CollectorDeps) {}

  /** One run; throws GcBusyError when another collector runs. */
  async run(opts: GcOptions): Promise<GcReport> {
    const { guard } = this.deps;
    if (await guard.locks.isHeld("gc")) throw new GcBusyError();
    const exclusive = this.deps.exclusive ?? ((fn) => fn());
    try {
      const report = await guard.locks.withLock("gc", (lease) => exclusive(() => this.runLocked(opts, lease)));
      this.deps.metrics?.record(report);
      this.deps.logger?.info(
        {
          dryRun: report.dryRun,
          durationMs: report.durationMs,
          blobsDeleted: report.blobsDeleted,
          bytesFreed: report.bytesFreed,
          linksDeleted: report.actions.filter((a) => a.kind !== "blob" && a.kind !== "tag").length,
          tagsDeleted: report.actions.filter((a) => a.kind === "tag").length,
          protectedSkipped: report.protectedSkipped,
        },
        "garbage collection finished",
      );
      return report;
    } catch (e) {
      this.deps.metrics?.failed();
      throw e;
    }
  }

  private async runLocked(opts: GcOptions, lease: Lease): Promise<GcReport> {
    const { guard } = this.deps;
    const started = new Date();
    const cutoff = started.getTime() - opts.delaySeconds * 1000;
    const dryRun = opts.dryRun ?? false;
    const actions: GcAction[] = [];
    let protectedSkipped = 0;
    const tickets = await guard.state.beginRun();
    try {
      // 1. wait for the pushes in flight at the start
      const waitUntil = Date.now() + (opts.pushWaitMs ?? PUSH_TTL_MS + 5000);
      let pending = tickets;
      while (pending.length > 0) {
        if (Date.now() > waitUntil) throw new UnavailableError(`garbage collection: ${pending.length} manifest pushes still in flight, nothing deleted`);
        lease.signal.throwIfAborted();
        await sleep(20);
        pending = await guard.state.inFlight(pending);
      }

      // 2. scan, then retention
      let scan = await this.scan();
      if (this.deps.retention) {
        let untagged = 0;
        for (const [repository, tags] of scan.tags) {
          for (const { tag, reason } of this.deps.retention.expired(repository, tags, started)) {
            const digest = tags.find((t) => t.tag === tag)?.digest;
            actions.push({ kind: "tag", repository, tag, digest, reason });
            if (dryRun) continue;
            lease.signal.throwIfAborted();
            await this.deps.manifests.untag(repository, tag).catch((e) => {
              if (!(e instanceof Error && e.name === "UnknownError")) throw e;
            });
            this.deps.events?.emit(systemEvent("delete", { kind: "tag", repository, tag }, "strata-gc"));
            untagged++;
          }
        }
        if (dryRun) {
          // a dry run marks as if those tags were gone
          const gone = new Set(actions.filter((a) => a.kind === "tag").map((a) => `${a.repository}:${a.tag}`));
          for (const [repository, tags] of scan.tags) scan.tags.set(repository, tags.filter((t) => !gone.has(`${repository}:${t.tag}`)));
        } else if (untagged > 0) {
          scan = await this.scan();
        }
      }

      // 3. mark. Manifests whose every tag retention deleted are no roots, whatever gc.untagged says.
      const retired = new Set<string>();
      for (const a of actions) if (a.kind === "tag" && a.digest) retired.add(`${a.repository}@${a.digest}`);
      for (const [repository, tags] of scan.tags) for (const t of tags) retired.delete(`${repository}@${t.digest}`);
      const marked = await this.mark(scan, opts.untagged, cutoff, retired);

      // 4. sweep
      const blobs = await this.scanBlobs();
      const candidates = new Set<string>();
      for (const d of blobs.keys()) if (!marked.has(d)) candidates.add(d);
      for (const d of scan.links.keys()) if (!marked.has(d)) candidates.add(d);
      let blobsDeleted = 0;
      let bytesFreed = 0;
      for (const d of [...candidates].sort(byteOrder) as Digest[]) {
        lease.signal.throwIfAborted();
        const r = await this.sweep(d, scan.links.get(d) ?? [], cutoff, dryRun, lease);
        if (r.protected) protectedSkipped++;
        actions.push(...r.actions);
        for (const a of r.actions) {
          if (a.kind === "blob") {
            blobsDeleted++;
            bytesFreed += a.bytes ?? 0;
          }
        }
      }
      return { dryRun, startedAt: started, durationMs: Date.now() - started.getTime(), actions, blobsDeleted, bytesFreed, protectedSkipped, marked: marked.size };
    } finally {
      await guard.state.endRun().catch(() => {});
    }
  }

  /** Tags, revisions, layer and referrer links of every repository, read from storage. */
  private async scan(): Promise<Scan> {
    const { driver } = this.deps;
    const scan: Scan = { links: new Map(), referrers: new Map(), tags: new Map(), revisions: new Map() };
    const addLink = (digest: Digest, ref: LinkRef) => {
      const list = scan.links.get(digest);
      if (list) list.push(ref);
      else scan.links.set(digest, [ref]);
    };
    for (const repository of await walkRepositories(driver)) {
      const tagDirs = (await listAll(driver, pathFor({ kind: "tagsRoot", name: repository }))) ?? [];
      const tags = await mapLimit(tagDirs, 16, async (dir) => {
        const tag = baseName(dir);
        const link = pathFor({ kind: "tagCurrentLink", name: repository, tag });
        const info = await statOrUndefined(driver, link);
        const digest = info ? await readDigest(driver, link) : undefined;
        return info && digest ? { tag, digest, pushedAt: info.modTime } : undefined;
      });
      scan.tags.set(
        repository,
        tags.filter((t) => t !== undefined),
      );
      const revisions = await mapLimit(await digestDirs(driver, pathFor({ kind: "manifestRevisionsRoot", name: repository })), 16, async ({ digest, dir }) => {
        const link = `${dir}/link`;
        const info = await statOrUndefined(driver, link);
        addLink(digest, { kind: "revision", repository, dir, link });
        return info ? { digest, modTime: info.modTime } : undefined;
      });
      scan.revisions.set(
        repository,
        revisions.filter((r) => r !== undefined),
      );
      for (const { digest, dir } of await digestDirs(driver, pathFor({ kind: "layersRoot", name: repository }))) {
        addLink(digest, { kind: "layer-link", repository, dir, link: `${dir}/link` });
      }
      const bySubject = new Map<string, Digest[]>();
      for (const subject of await digestDirs(driver, pathFor({ kind: "referrersRoot", name: repository }))) {
        for (const { digest, dir } of await digestDirs(driver, subject.dir)) {
          addLink(digest, { kind: "referrer-link", repository, dir, link: `${dir}/link` });
          bySubject.set(subject.digest, [...(bySubject.get(subject.digest) ?? []), digest]);
        }
      }
      scan.referrers.set(repository, bySubject);
    }
    return scan;
  }

  /** Every digest reachable from the roots (see the protocol). */
  private async mark(scan: Scan, untagged: "delete" | "keep", cutoff: number, retired: Set<string>): Promise<Set<string>> {
    const marked = new Set<string>();
    const visited = new Set<string>();
    const parsed = new Map<string, ParsedManifest | null>();
    const load = async (digest: Digest): Promise<ParsedManifest | null> => {
      if (parsed.has(digest)) return parsed.get(digest)!;
      let raw: Buffer | undefined;
      try {
        raw = await this.deps.driver.getContent(pathFor({ kind: "blobData", digest }));
      } catch (e) {
        if (!isNotFound(e)) throw e;
      }
      let m: ParsedManifest | null = null;
      if (raw && digestOf(raw, digestAlgorithm(digest)) === digest) {
        try {
          m = parseManifest(raw);
        } catch {
          m = null; // not a manifest: nothing below it
        }
      }
      parsed.set(digest, m);
      return m;
    };
    const visit = async (repository: string, digest: Digest, depth: number): Promise<void> => {
      const key = `${repository}@${digest}`;
      if (visited.has(key) || depth > 16) return;
      visited.add(key);
      marked.add(digest);
      const m = await load(digest);
      if (m) {
        if (m.kind === "manifest") for (const d of [m.config, ...m.layers]) marked.add(d.digest);
        else for (const child of m.manifests) await visit(repository, child.digest, depth + 1);
      }
      for (const r of scan.referrers.get(repository)?.get(digest) ?? []) await visit(repository, r, depth + 1);
    };
    for (const [repository, tags] of scan.tags) for (const t of tags) await visit(repository, t.digest, 0);
    for (const [repository, revisions] of scan.revisions) {
      for (const r of revisions) {
        const root = r.modTime.getTime() >= cutoff || (untagged === "keep" && !retired.has(`${repository}@${r.digest}`));
        if (root) await visit(repository, r.digest, 0);
      }
    }
    return marked;
  }

  /** Every stored blob (layers, configs, manifests) with its size and time. */
  private async scanBlobs(): Promise<Map<string, FileInfo>> {
    const { driver } = this.deps;
    const out = new Map<string, FileInfo>();
    for (const alg of (await listAll(driver, pathFor({ kind: "blobsRoot" }))) ?? []) {
      for (const prefix of (await listAll(driver, alg)) ?? []) {
        const dirs = (await listAll(driver, prefix)) ?? [];
        await mapLimit(dirs, 16, async (dir) => {
          const digest = tryParseDigest(`${baseName(alg)}:${baseName(dir)}`);
          if (!digest) return;
          const info = await statOrUndefined(driver, pathFor({ kind: "blobData", digest }));
          if (info) out.set(digest, info);
        });
      }
    }
    return out;
  }

  /** Step 4 for one unmarked digest, under its lock. */
  private async sweep(digest: Digest, links: LinkRef[], cutoff: number, dryRun: boolean, gcLease: Lease): Promise<{ actions: GcAction[]; protected: boolean }> {
    const { driver, guard, cache, manifests } = this.deps;
    return guard.locks.withLock(`blob:${digest}`, async (lease) => {
      const actions: GcAction[] = [];
      if (await guard.state.isProtected(digest)) return { actions, protected: true };
      let kept = 0;
      for (const l of links) {
        const info = await statOrUndefined(driver, l.link);
        if (!info) continue;
        if (info.modTime.getTime() >= cutoff) {
          kept++;
          continue;
        }
        actions.push({ kind: l.kind, repository: l.repository, digest });
        if (dryRun) continue;
        gcLease.signal.throwIfAborted();
        if (l.kind === "layer-link") await cache.delete(l.repository, digest);
        if (l.kind === "revision") {
          await manifests.forgetRevision(l.repository, digest);
          this.deps.events?.emit(systemEvent("delete", { kind: "manifest", repository: l.repository, digest }, "strata-gc"));
        } else {
          await deleteIfPresent(driver, l.dir, lease.signal);
        }
      }
      if (kept > 0) return { actions, protected: false };
      const blob = await statOrUndefined(driver, pathFor({ kind: "blobData", digest }));
      if (!blob || blob.modTime.getTime() >= cutoff) return { actions, protected: false };
      actions.push({ kind: "blob", digest, bytes: blob.size });
      if (!dryRun) {
        gcLease.signal.throwIfAborted();
        manifests.collected(digest);
        await deleteIfPresent(driver, pathFor({ kind: "blobDir", digest }), lease.signal);
      }
      return { actions, protected: false };
    });
  }
}

async function deleteIfPresent(driver: StorageDriver, key: string, signal?: AbortSignal): Promise<void> {
  try {
    await driver.delete(key, signal);
  } catch (e) {
    if (!isNotFound(e)) throw e;
  }
}

async function readDigest(driver: StorageDriver, key: string): Promise<Digest | undefined> {
  try {
    return tryParseDigest((await driver.getContent(key)).toString("utf8").trim());
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
}

/** One line per action, as `strata gc` prints them. */
export function formatAction(a: GcAction, dryRun: boolean): string {
  const verb = dryRun ? "would delete" : "deleted";
  switch (a.kind) {
    case "blob":
      return `${verb} blob ${a.digest} (${a.bytes} bytes)`;
    case "tag":
      return `${verb} tag ${a.repository}:${a.tag} (${a.reason})`;
    default:
      return `${verb} ${a.kind} ${a.repository} ${a.digest}`;
  }
}
