/**
 * Limits of a pull-through cache: what the mirror fetched is recorded with its size, the
 * repositories it was linked into and the time it was last pulled; a periodic sweep evicts
 * content not pulled for `evictAfterDays`, then the least recently pulled content until the
 * mirrored bytes are within `maxBytes`.
 *
 * Eviction frees storage: the mirror's links (tags pointing at an evicted manifest, its
 * revision links, blob links) are removed and the blob data is deleted. With `allowPush` the
 * data of a blob is kept (a pushed repository may link the same digest); its links still go.
 * An evicted item is fetched again on its next pull.
 *
 * The record lives in storage (`proxyCache` key) so that restarts and replicas share it:
 * each replica keeps the pulls it served in memory and merges them in at every sweep, under
 * the lock "proxy-cache". A blob is evicted under its `blob:<digest>` lock, so never while it
 * is being fetched.
 */
import type { Digest } from "@strata/core";
import { tryParseDigest } from "@strata/core";
import type { Logger } from "pino";
import { Counter, Gauge, type Registry } from "prom-client";
import type { ProxyConfig } from "../config.js";
import { UnknownError } from "../errors.js";
import type { Locker } from "../locks.js";
import { isNotFound, type StorageDriver } from "../storage/driver.js";
import { pathFor } from "../storage/paths.js";
import type { BlobStore } from "./blobs.js";
import type { ManifestStore } from "./manifests.js";

export interface CacheEntry {
  size: number;
  /** In this replica's pending pulls only: the mirror stored it (else a pull of content the record may not hold). */
  stored?: boolean;
  /** ms since the epoch */
  at: number;
  kind: "blob" | "manifest";
  repos: string[];
}

const DAY_MS = 86_400_000;
/** The stored record is read only up to this size (a larger one is treated as absent). */
const RECORD_MAX = 256 * 1024 * 1024;

export class MirrorCache {
  /** Pulls and stores seen by this replica since the last sweep. */
  private pending = new Map<string, CacheEntry>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private readonly evicted: Counter<"kind">;
  private readonly bytes: Gauge;

  constructor(
    private readonly config: ProxyConfig,
    private readonly deps: { driver: StorageDriver; blobs: BlobStore; manifests: ManifestStore; locks: Locker; logger: Logger; metrics: Registry },
  ) {
    this.evicted = new Counter({ name: "strata_proxy_evicted_bytes_total", help: "Bytes evicted from the pull-through cache", labelNames: ["kind"], registers: [deps.metrics] });
    this.bytes = new Gauge({ name: "strata_proxy_cache_bytes", help: "Bytes held by the pull-through cache (as of the last sweep)", registers: [deps.metrics] });
  }

  /**
   * Records that `digest` was pulled from `repository`, or (`stored`) that the mirror stored it
   * there. Pulls of content the mirror did not store (pushed with allowPush) never enter the record.
   */
  touch(repository: string, digest: Digest, size: number, kind: "blob" | "manifest", stored: boolean): void {
    const e = this.pending.get(digest);
    if (e) {
      e.at = Date.now();
      if (stored && !e.repos.includes(repository)) e.repos.push(repository);
      if (kind === "manifest") e.kind = kind;
      e.stored ||= stored;
      return;
    }
    this.pending.set(digest, { size, at: Date.now(), kind, repos: stored ? [repository] : [], stored });
  }

  start(): void {
    const ms = this.config.cache.intervalSeconds * 1000;
    this.timer = setInterval(() => void this.sweep().catch((e) => this.deps.logger.warn({ err: (e as Error).message }, "pull-through cache sweep failed")), ms);
    this.timer.unref();
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.running?.catch(() => {});
    await this.flush().catch(() => {});
  }

  /** Merges this replica's pulls into the stored record and evicts what the limits say. */
  sweep(): Promise<void> {
    this.running ??= this.deps.locks
      .withLock("proxy-cache", () => this.sweepLocked())
      .finally(() => {
        this.running = undefined;
      });
    return this.running;
  }

  private async flush(): Promise<void> {
    if (this.pending.size === 0) return;
    await this.deps.locks.withLock("proxy-cache", async () => {
      const record = await this.load();
      this.merge(record);
      await this.save(record);
    });
  }

  private merge(record: Map<string, CacheEntry>): void {
    const pending = this.pending;
    this.pending = new Map();
    for (const [d, p] of pending) {
      const e = record.get(d);
      if (!e) {
        if (p.stored) record.set(d, { size: p.size, at: p.at, kind: p.kind, repos: p.repos });
      } else {
        e.at = Math.max(e.at, p.at);
        for (const r of p.repos) if (!e.repos.includes(r)) e.repos.push(r);
        if (p.kind === "manifest") e.kind = "manifest";
      }
    }
  }

  private async sweepLocked(): Promise<void> {
    const record = await this.load();
    this.merge(record);
    const { maxBytes, evictAfterDays } = this.config.cache;
    const now = Date.now();
    const oldest = [...record.entries()].sort((a, b) => a[1].at - b[1].at);
    let total = oldest.reduce((n, [, e]) => n + e.size, 0);
    for (const [digest, e] of oldest) {
      const expired = evictAfterDays > 0 && now - e.at > evictAfterDays * DAY_MS;
      const over = maxBytes > 0 && total > maxBytes;
      if (!expired && !over) break;
      // pulled again since the sweep began: keep it
      if (this.pending.has(digest)) continue;
      try {
        await this.evict(digest as Digest, e);
      } catch (err) {
        this.deps.logger.warn({ digest, err: (err as Error).message }, "pull-through cache: eviction failed");
        continue;
      }
      record.delete(digest);
      total -= e.size;
      this.evicted.inc({ kind: e.kind }, e.size);
    }
    this.bytes.set(total);
    await this.save(record);
  }

  private async evict(digest: Digest, e: CacheEntry): Promise<void> {
    await this.deps.locks.withLock(`blob:${digest}`, async (lease) => {
      for (const repo of e.repos) {
        if (e.kind === "manifest") await ignoreUnknown(this.deps.manifests.delete(repo, digest));
        await ignoreUnknown(this.deps.blobs.unlink(repo, digest));
      }
      if (this.config.allowPush) return;
      try {
        await this.deps.driver.delete(pathFor({ kind: "blobDir", digest }), lease.signal);
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    });
    this.deps.logger.info({ digest, size: e.size, repositories: e.repos }, "pull-through cache: evicted");
  }

  private async load(): Promise<Map<string, CacheEntry>> {
    const key = pathFor({ kind: "proxyCache" });
    const out = new Map<string, CacheEntry>();
    let raw: Buffer;
    try {
      const info = await this.deps.driver.stat(key);
      if (info.size > RECORD_MAX) throw new Error(`${key} is larger than ${RECORD_MAX} bytes`);
      raw = await this.deps.driver.getContent(key);
    } catch (e) {
      if (isNotFound(e)) return out;
      throw e;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw.toString("utf8"));
    } catch {
      this.deps.logger.warn({ key }, "pull-through cache record unreadable; starting a new one");
      return out;
    }
    if (!parsed || typeof parsed !== "object") return out;
    for (const [d, v] of Object.entries(parsed as Record<string, Partial<CacheEntry>>)) {
      if (!tryParseDigest(d) || !v || typeof v.size !== "number" || typeof v.at !== "number" || !Array.isArray(v.repos)) continue;
      out.set(d, { size: v.size, at: v.at, kind: v.kind === "manifest" ? "manifest" : "blob", repos: v.repos.filter((r): r is string => typeof r === "string") });
    }
    return out;
  }

  private async save(record: Map<string, CacheEntry>): Promise<void> {
    await this.deps.driver.putContent(pathFor({ kind: "proxyCache" }), Buffer.from(JSON.stringify(Object.fromEntries(record))));
  }
}

async function ignoreUnknown(p: Promise<void>): Promise<void> {
  try {
    await p;
  } catch (e) {
    if (!(e instanceof UnknownError)) throw e;
  }
}
