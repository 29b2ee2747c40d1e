/**
 * Storage usage and quotas. A repository's usage is the bytes of the distinct blobs linked into
 * it (layer links and manifest revisions); a quota's usage is the bytes of the distinct blobs
 * linked into any repository its globs match (a blob shared by two of them counts once).
 * Both are read from storage when asked (no counter that could drift from it).
 *
 * Enforcement (upload/uploads.ts): a blob that would take a quota's usage past `maxBytes` is
 * refused with DENIED naming the quota, before its data is accepted when its size is known
 * up front (monolithic upload, Content-Length), else at the first chunk that crosses it. A blob
 * already counted by the quota (linked into one of its repositories) never adds to it.
 */
import { type Digest, tryParseDigest } from "@strata/core";
import { globToRegExp } from "../auth/policy.js";
import type { QuotaRule } from "../config.js";
import { DeniedError } from "../errors.js";
import type { StorageDriver } from "../storage/driver.js";
import { baseName, pathFor } from "../storage/paths.js";
import type { BlobStore } from "./blobs.js";
import { walkRepositories } from "./catalog.js";
import { listAll } from "./manifests.js";

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

export class UsageService {
  private readonly quotas: Compiled[];
  /** Blob sizes by digest (a digest's size never changes). */
  private readonly sizes = new Map<string, number>();

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
      for (const alg of (await listAll(this.driver, root)) ?? []) {
        for (const dir of (await listAll(this.driver, alg)) ?? []) {
          const d = tryParseDigest(`${baseName(alg)}:${baseName(dir)}`);
          if (d) out.add(d);
        }
      }
    }
    return out;
  }

  private async bytesOf(digests: Iterable<Digest>): Promise<number> {
    let total = 0;
    for (const d of digests) {
      let size = this.sizes.get(d);
      if (size === undefined) {
        size = await this.blobs.globalSize(d);
        if (size === undefined) continue; // a dangling link holds nothing
        if (this.sizes.size > 100_000) this.sizes.clear();
        this.sizes.set(d, size);
      }
      total += size;
    }
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
    const repos = await walkRepositories(this.driver);
    let tightest: Allowance | undefined;
    for (const q of quotas) {
      const all = new Set<Digest>();
      for (const r of repos) if (q.patterns.some((p) => p.test(r))) for (const d of await this.digests(r)) all.add(d);
      if (digest !== undefined && all.has(digest)) continue;
      const used = await this.bytesOf(all);
      const a: Allowance = { bytes: Math.max(0, q.rule.maxBytes - used), quota: q.name, maxBytes: q.rule.maxBytes, usedBytes: used };
      if (tightest === undefined || a.bytes < tightest.bytes) tightest = a;
    }
    return tightest;
  }
}

/** The refusal of an upload that needs `needed` bytes in total beyond what the quota holds. */
export function quotaDenied(a: Allowance, repository: string, needed: number): DeniedError {
  return new DeniedError(`${a.quota} (maxBytes ${a.maxBytes}) exceeded: its repositories hold ${a.usedBytes} bytes, the upload to ${repository} needs ${needed} more`);
}
