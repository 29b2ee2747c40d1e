/**
 * Storage usage and quotas. A repository's usage is the bytes of the distinct blobs linked into
 * it (layer links and manifest revisions); a quota's usage is the bytes of the distinct blobs
 * linked into any repository its globs match (a blob shared by two of them counts once).
 * Both are read from storage when asked (no counter that could drift from it).
 *
 * Enforcement (upload/uploads.ts, services/manifests.ts): a blob or manifest that would take a
 * quota's usage past `maxBytes` is refused with DENIED naming the quota, before its data is
 * accepted when its size is known up front (monolithic upload, Content-Length, manifest PUT),
 * else at the first chunk that crosses it. Content already counted by the quota (linked into
 * one of its repositories) never adds to it.
 *
 * Enforcement reads a quota's usage from storage at most once per `QUOTA_VIEW_TTL_MS` (a walk
 * of every link of its repositories: one listing per repository, which in S3 mode is one or
 * more LIST calls each), not on every request. Links this process writes are added to the view
 * at once (`linked`); links written by other replicas, and deletions anywhere, show within the
 * TTL. Deletions only lower usage, so a stale view refuses early, never lets more through; the
 * writes of other replicas within one TTL can overshoot by what they pushed in it, as concurrent
 * uploads of one replica already can (quotas are checked, not reserved). Measured (filesystem,
 * 300 repositories of 30 links under one quota, 40 blob pushes of 1 kB, load average 9): 830 ms
 * per push when every push walked the links, 48 ms with the view.
 */
import type { Digest } from "@strata/core";
import { globToRegExp } from "../auth/policy.js";
import type { QuotaRule } from "../config.js";
import { DeniedError } from "../errors.js";
import type { StorageDriver } from "../storage/driver.js";
import { pathFor } from "../storage/paths.js";
import type { BlobStore } from "./blobs.js";
import { walkRepositories } from "./catalog.js";
import { digestDirs } from "./manifests.js";

export interface RepositoryUsage {
  readonly name: string;
  readonly bytes: number;
  readonly blobs: number;
}

export interface QuotaUsage {
  readonly quota: string;
  readonly repositories: string[];
  readonly maxBytes: number;
  readonly usedBytes: number;
}

/** What quotas let a repository still add, and what they learn of this process's writes. */
export interface QuotaGate {
  allowance(repository: string, digest?: Digest): Promise<Allowance | undefined>;
  /** `digest` (of `size` bytes) was just linked into `repository` by this process. */
  linked(repository: string, digest: Digest, size: number): void;
}

/** How long a quota's usage read from storage serves enforcement. */
export const QUOTA_VIEW_TTL_MS = 5_000;

/** A quota's distinct digests and their bytes, as read at `readAt` plus this process's links since. */
interface QuotaView {
  readonly digests: Map<Digest, number>;
  bytes: number;
  readonly readAt: number;
}

/** What an upload may still add: undefined when no quota limits it. */
export interface Allowance {
  readonly bytes: number;
  readonly quota: string;
  readonly maxBytes: number;
  readonly usedBytes: number;
}

interface Compiled {
  readonly rule: QuotaRule;
  readonly name: string;
  readonly patterns: RegExp[];
}

export class UsageService implements QuotaGate {
  private readonly quotas: Compiled[];
  /** Blob sizes by digest (a digest's size never changes). */
  private readonly sizes = new Map<string, number>();
  private readonly views = new Map<Compiled, QuotaView>();
  /** Reads in flight, with the links recorded while they run (they may have missed them). */
  private readonly reading = new Map<Compiled, { view: Promise<QuotaView>; since: Map<Digest, number> }>();

  constructor(
    private readonly driver: StorageDriver,
    private readonly blobs: BlobStore,
    rules: readonly QuotaRule[],
  ) {
    this.quotas = rules.map((rule) => ({ rule, name: `quota ${rule.repositories.join(", ")}`, patterns: rule.repositories.map((g) => globToRegExp(g)) }));
  }

  private matching(repository: string): Compiled[] {
    return this.quotas.filter((q) => q.patterns.some((p) => p.test(repository)));
  }

  /** Distinct digests linked into a repository (layers and manifest revisions). */
  private async digests(repository: string): Promise<Set<Digest>> {
    const out = new Set<Digest>();
    for (const root of [pathFor({ kind: "layersRoot", name: repository }), pathFor({ kind: "manifestRevisionsRoot", name: repository })]) {
      for (const { digest } of await digestDirs(this.driver, root)) out.add(digest);
    }
    return out;
  }

  private async sizesOf(digests: Iterable<Digest>): Promise<Map<Digest, number>> {
    const out = new Map<Digest, number>();
    for (const d of digests) {
      let size = this.sizes.get(d);
      if (size === undefined) {
        size = await this.blobs.globalSize(d);
        if (size === undefined) continue; // a dangling link holds nothing
        if (this.sizes.size > 100_000) this.sizes.clear();
        this.sizes.set(d, size);
      }
      out.set(d, size);
    }
    return out;
  }

  private async bytesOf(digests: Iterable<Digest>): Promise<number> {
    let total = 0;
    for (const size of (await this.sizesOf(digests)).values()) total += size;
    return total;
  }

  /** Usage of every repository and quota. `visible` filters the repositories listed. */
  async usage(visible: (name: string) => boolean = () => true): Promise<{ repositories: RepositoryUsage[]; quotas: QuotaUsage[] }> {
    const repos = await walkRepositories(this.driver);
    const byRepo = new Map<string, Set<Digest>>();
    for (const r of repos) byRepo.set(r, await this.digests(r));
    const repositories: RepositoryUsage[] = [];
    for (const r of repos) {
      if (!visible(r)) continue;
      const ds = byRepo.get(r)!;
      repositories.push({ name: r, bytes: await this.bytesOf(ds), blobs: ds.size });
    }
    const quotas: QuotaUsage[] = [];
    for (const q of this.quotas) {
      const all = new Set<Digest>();
      for (const [r, ds] of byRepo) if (q.patterns.some((p) => p.test(r))) for (const d of ds) all.add(d);
      quotas.push({ quota: q.name, repositories: q.rule.repositories, maxBytes: q.rule.maxBytes, usedBytes: await this.bytesOf(all) });
    }
    return { repositories, quotas };
  }

  get enabled(): boolean {
    return this.quotas.length > 0;
  }

  /**
   * The tightest allowance of the quotas covering `repository` for a blob `digest` (when known):
   * undefined when no quota applies or every applicable quota already counts the blob.
   */
  async allowance(repository: string, digest?: Digest): Promise<Allowance | undefined> {
    const quotas = this.matching(repository);
    if (quotas.length === 0) return undefined;
    let tightest: Allowance | undefined;
    for (const q of quotas) {
      const view = await this.view(q);
      if (digest !== undefined && view.digests.has(digest)) continue;
      const a: Allowance = { bytes: Math.max(0, q.rule.maxBytes - view.bytes), quota: q.name, maxBytes: q.rule.maxBytes, usedBytes: view.bytes };
      if (tightest === undefined || a.bytes < tightest.bytes) tightest = a;
    }
    return tightest;
  }

  linked(repository: string, digest: Digest, size: number): void {
    for (const q of this.matching(repository)) {
      const v = this.views.get(q);
      if (v && !v.digests.has(digest)) {
        v.digests.set(digest, size);
        v.bytes += size;
      }
      this.reading.get(q)?.since.set(digest, size);
    }
  }

  /** The quota's view, read again from storage once older than the TTL (one read at a time). */
  private view(q: Compiled): Promise<QuotaView> {
    const v = this.views.get(q);
    if (v && Date.now() - v.readAt < QUOTA_VIEW_TTL_MS) return Promise.resolve(v);
    const running = this.reading.get(q);
    if (running) return running.view;
    const since = new Map<Digest, number>();
    const view = (async () => {
      const readAt = Date.now();
      const all = new Set<Digest>();
      for (const r of await walkRepositories(this.driver)) if (q.patterns.some((p) => p.test(r))) for (const d of await this.digests(r)) all.add(d);
      const digests = await this.sizesOf(all);
      for (const [d, size] of since) digests.set(d, size);
      let bytes = 0;
      for (const size of digests.values()) bytes += size;
      const fresh: QuotaView = { digests, bytes, readAt };
      this.views.set(q, fresh);
      return fresh;
    })().finally(() => this.reading.delete(q));
    this.reading.set(q, { view, since });
    return view;
  }
}

/** The refusal of an upload that needs `needed` bytes in total beyond what the quota holds. */
export function quotaDenied(a: Allowance, repository: string, needed: number): DeniedError {
  return new DeniedError(`${a.quota} (maxBytes ${a.maxBytes}) exceeded: its repositories hold ${a.usedBytes} bytes, the upload to ${repository} needs ${needed} more`);
}
