/**
 * Pull-through cache: a registry with `proxy` serves repositories of upstream registries,
 * fetching what it does not hold and keeping it.
 *
 * Contracts:
 * - Routing: `?ns=<host>` picks the upstream with that `ns`; else a name starting with an
 *   upstream's `prefix` picks it (the prefix is removed upstream); else the default upstream
 *   (`remoteurl`, or the `ns: docker.io` upstream). An `ns` that neither an upstream nor the
 *   default stands for is not mirrored. Content of a non-default upstream is kept
 *   under `<ns>/<name>` or its prefixed name, so upstreams never share a repository.
 *   Docker Hub (`ns: docker.io`, or remoteurl registry-1.docker.io) gets `library/` before
 *   single-component names.
 * - Manifests by digest and blobs are immutable: fetched once, verified, stored, then served
 *   from storage until evicted.
 * - A tag's answer is trusted for `ttlSeconds` after it was fetched or last confirmed (the
 *   time its link was written). After that a HEAD upstream confirms it (the link is rewritten)
 *   or brings the new manifest. When the upstream fails, is rate limited or unreachable, the
 *   cached answer is served with a `Warning` header and a log line: never an error while a
 *   cached copy exists.
 * - Blobs stream while they are cached: the first request's client gets the bytes as they
 *   arrive while they are written to storage; the last chunk is released only after the
 *   digest matched and the blob was committed, so a mismatch (or any upstream failure) aborts
 *   every client's response before its end and stores nothing.
 * - One upstream fetch per blob or manifest: concurrent requests in this process join the
 *   running fetch (a request joining after bytes were sent, or a client reading too slowly,
 *   continues from storage once the blob landed); across replicas the fetch holds the lock
 *   `blob:<digest>` and other replicas wait for it, then serve from storage.
 */
import { PassThrough, type Readable } from "node:stream";
import { type Digest, isValidRepositoryName, parseManifest, Verifier } from "@strata/core";
import type { Logger } from "pino";
import { Counter, type Registry } from "prom-client";
import type { ProxyConfig } from "../config.js";
import { UnknownError, UnavailableError } from "../errors.js";
import type { Locker } from "../locks.js";
import { UpstreamClient, UpstreamError, type UpstreamManifest } from "../proxy/upstream.js";
import { type FileWriter, isNotFound, type StorageDriver } from "../storage/driver.js";
import { pathFor } from "../storage/paths.js";
import type { BlobStore } from "./blobs.js";
import type { RepositoryIndex } from "./catalog.js";
import { byteOrder, type ManifestStore, type StoredManifest } from "./manifests.js";

/** A live client may lag this far behind the upstream before it continues from storage instead. */
const SUBSCRIBER_LAG_BYTES = 4 * 1024 * 1024;
/** Clients fed live by one fetch; more wait for storage (memory per fetch <= this x the lag). */
const LIVE_SUBSCRIBERS = 16;
/** How long a replica waits for another replica's fetch of the same blob. */
const PEER_WAIT_MS = 15 * 60_000;

const DOCKER_HUB_HOSTS = new Set(["registry-1.docker.io", "index.docker.io", "docker.io", "registry.hub.docker.com"]);

export interface Route {
  readonly upstream: UpstreamClient;
  /** The repository name in storage. */
  readonly local: string;
  /** The repository name upstream. */
  readonly remote: string;
}

export interface ProxyManifest {
  readonly manifest: StoredManifest;
  /** Set when a cached answer is served because the upstream could not confirm it. */
  readonly warning?: string;
}

/** What a blob request gets: a stream of the whole blob (its size when known), or the size only (HEAD). */
export interface ProxyBlob {
  readonly size?: number;
  readonly stream?: Readable;
}

interface Subscriber {
  readonly out: PassThrough;
  delivered: number;
  live: boolean;
}

/** One upstream fetch of a blob and the clients reading it. */
class BlobFlight {
  readonly subs = new Set<Subscriber>();
  /** Bytes handed to live subscribers so far (all of them got the same). */
  sent = 0;
  /** The whole blob arrived and matched its digest (live subscribers have all of it). */
  verified = false;
  size: number | undefined;
  readonly ready: Promise<void>;
  readonly landed: Promise<void>;
  resolveReady!: () => void;
  rejectReady!: (e: unknown) => void;
  resolveLanded!: () => void;
  rejectLanded!: (e: unknown) => void;

  constructor() {
    this.ready = new Promise((res, rej) => {
      this.resolveReady = res;
      this.rejectReady = rej;
    });
    this.landed = new Promise((res, rej) => {
      this.resolveLanded = res;
      this.rejectLanded = rej;
    });
    this.ready.catch(() => {});
    this.landed.catch(() => {});
  }

  deliver(chunk: Buffer): void {
    for (const s of this.subs) {
      if (!s.live) continue;
      if (s.out.destroyed) {
        this.subs.delete(s);
        continue;
      }
      if (s.out.writableLength > SUBSCRIBER_LAG_BYTES) {
        s.live = false;
        continue;
      }
      s.out.write(chunk);
      s.delivered += chunk.length;
    }
    this.sent += chunk.length;
  }

  /** Ends the live subscribers that received the whole blob (once it is verified). */
  endComplete(): void {
    for (const s of this.subs) if (s.live && !s.out.destroyed && s.delivered === this.sent) s.out.end();
  }
}

export interface ProxyDeps {
  driver: StorageDriver;
  blobs: BlobStore;
  manifests: ManifestStore;
  repositories: RepositoryIndex;
  locks: Locker;
  logger: Logger;
  metrics: Registry;
  /** limits.blobMaxBytes (0: unlimited). */
  maxBlobBytes?: number;
  /**
   * Called with every digest served or stored (for the cache's recency); `stored`: the mirror
   * put it there (fetched it, or linked a blob it held into another repository).
   */
  touch?: (repository: string, digest: Digest, size: number, kind: "blob" | "manifest", stored: boolean) => void;
}

export class ProxyService {
  private readonly byNs = new Map<string, { client: UpstreamClient; hub: boolean }>();
  private readonly byPrefix: { prefix: string; client: UpstreamClient; hub: boolean }[] = [];
  private readonly fallback: { client: UpstreamClient; hub: boolean } | undefined;
  private readonly flights = new Map<string, BlobFlight>();
  private readonly manifestFlights = new Map<string, Promise<ProxyManifest>>();
  private readonly hits: Counter<"kind">;
  private readonly misses: Counter<"kind">;
  private readonly upstreamBytes: Counter;
  private readonly upstreamErrors: Counter<"reason">;
  private readonly staleServed: Counter;

  constructor(
    readonly config: ProxyConfig,
    private readonly deps: ProxyDeps,
  ) {
    const timeoutMs = config.timeoutSeconds * 1000;
    for (const u of config.upstreams) {
      const client = new UpstreamClient({ url: u.url, username: u.username, password: u.password, timeoutMs });
      const hub = u.ns === "docker.io" || DOCKER_HUB_HOSTS.has(new URL(u.url).hostname);
      if (u.ns !== undefined) this.byNs.set(u.ns.toLowerCase(), { client, hub });
      if (u.prefix !== undefined) this.byPrefix.push({ prefix: u.prefix, client, hub });
    }
    this.byPrefix.sort((a, b) => b.prefix.length - a.prefix.length);
    if (config.remoteurl) {
      const client = new UpstreamClient({ url: config.remoteurl, username: config.username, password: config.password, timeoutMs });
      this.fallback = { client, hub: DOCKER_HUB_HOSTS.has(new URL(config.remoteurl).hostname) };
    } else {
      this.fallback = this.byNs.get("docker.io");
    }
    const registers = [deps.metrics];
    this.hits = new Counter({ name: "strata_proxy_hits_total", help: "Pull-through cache hits", labelNames: ["kind"], registers });
    this.misses = new Counter({ name: "strata_proxy_misses_total", help: "Pull-through cache misses (fetched upstream)", labelNames: ["kind"], registers });
    this.upstreamBytes = new Counter({ name: "strata_proxy_upstream_bytes_total", help: "Bytes received from upstream registries", registers });
    this.upstreamErrors = new Counter({ name: "strata_proxy_upstream_errors_total", help: "Failed upstream exchanges", labelNames: ["reason"], registers });
    this.staleServed = new Counter({ name: "strata_proxy_stale_served_total", help: "Cached tag answers served because the upstream could not confirm them", registers });
  }

  /** Releases the upstreams' pooled connections. */
  close(): void {
    for (const u of new Set([...this.byNs.values(), ...this.byPrefix, ...(this.fallback ? [this.fallback] : [])])) u.client.close();
  }

  /** Whether pushes, deletes and uploads are refused. */
  get readOnly(): boolean {
    return !this.config.allowPush;
  }

  /** Where `name` (with the request's `ns` query parameter) comes from; undefined: not mirrored. */
  route(name: string, ns: string | undefined): Route | undefined {
    let pick: { client: UpstreamClient; hub: boolean } | undefined;
    let local = name;
    let remote = name;
    const byNs = ns ? this.byNs.get(ns.toLowerCase()) : undefined;
    if (byNs) {
      pick = byNs;
      if (byNs !== this.fallback) local = `${ns!.toLowerCase()}/${name}`;
    } else if (ns && !this.servesNs(ns.toLowerCase())) {
      // a mirror request for a registry no upstream stands for: never another registry's content
      return undefined;
    } else {
      const p = this.byPrefix.find((x) => name.startsWith(x.prefix));
      if (p) {
        pick = p;
        remote = name.slice(p.prefix.length);
      } else pick = this.fallback;
    }
    if (!pick || !isValidRepositoryName(local) || !isValidRepositoryName(remote)) return undefined;
    if (pick.hub && !remote.includes("/")) remote = `library/${remote}`;
    return { upstream: pick.client, local, remote };
  }

  /** Whether `ns` names the default upstream (remoteurl's host, or docker.io for Docker Hub). */
  private servesNs(ns: string): boolean {
    if (!this.fallback) return false;
    if (this.fallback.hub && ns === "docker.io") return true;
    return this.fallback.client.host.toLowerCase() === ns;
  }

  // ---- manifests ----

  async manifest(route: Route, ref: { tag?: string; digest?: Digest }): Promise<ProxyManifest> {
    const cached = await this.cachedManifest(route.local, ref);
    if (cached && (ref.digest || (await this.tagFresh(route.local, ref.tag!)))) {
      this.hits.inc({ kind: ref.digest ? "manifest" : "tag" });
      this.deps.touch?.(route.local, cached.digest, cached.raw.length, "manifest", false);
      return { manifest: cached };
    }
    const key = `${route.local}:${ref.digest ?? ref.tag}`;
    let flight = this.manifestFlights.get(key);
    if (!flight) {
      flight = this.deps.locks
        .withLock(`proxy-manifest:${key}`, () => this.refreshManifest(route, ref))
        .finally(() => this.manifestFlights.delete(key));
      this.manifestFlights.set(key, flight);
    }
    return flight;
  }

  private async cachedManifest(local: string, ref: { tag?: string; digest?: Digest }): Promise<StoredManifest | undefined> {
    try {
      return await this.deps.manifests.get(local, ref);
    } catch (e) {
      if (e instanceof UnknownError) return undefined;
      throw e;
    }
  }

  /** Whether the tag's link was written (fetched or confirmed) within ttlSeconds. */
  private async tagFresh(local: string, tag: string): Promise<boolean> {
    try {
      const info = await this.deps.driver.stat(pathFor({ kind: "tagCurrentLink", name: local, tag }));
      return Date.now() - info.modTime.getTime() < this.config.ttlSeconds * 1000;
    } catch (e) {
      if (isNotFound(e)) return false;
      throw e;
    }
  }

  /** Under the manifest's lock: fetch, or revalidate a stale tag (another replica may have just done it). */
  private async refreshManifest(route: Route, ref: { tag?: string; digest?: Digest }): Promise<ProxyManifest> {
    const cached = await this.cachedManifest(route.local, ref);
    if (cached && (ref.digest || (await this.tagFresh(route.local, ref.tag!)))) {
      this.hits.inc({ kind: ref.digest ? "manifest" : "tag" });
      this.deps.touch?.(route.local, cached.digest, cached.raw.length, "manifest", false);
      return { manifest: cached };
    }
    const what = `${route.remote}:${ref.digest ?? ref.tag}`;
    if (!cached) {
      this.misses.inc({ kind: ref.digest ? "manifest" : "tag" });
      const got = await this.upstreamCall(() => route.upstream.manifest(route.remote, ref.digest ?? ref.tag!, "GET"), what, "manifest");
      return { manifest: await this.storeManifest(route, ref, got as UpstreamManifest) };
    }
    // A tag past its TTL: ask the upstream what it points at now.
    try {
      const head = await route.upstream.manifest(route.remote, ref.tag!, "HEAD", { quick: true });
      if (head.digest === cached.digest) {
        await this.deps.manifests.tag(route.local, ref.tag!, cached.digest);
        this.hits.inc({ kind: "tag" });
        this.deps.touch?.(route.local, cached.digest, cached.raw.length, "manifest", false);
        return { manifest: cached };
      }
      this.misses.inc({ kind: "tag" });
      const got = (await route.upstream.manifest(route.remote, head.digest, "GET")) as UpstreamManifest;
      return { manifest: await this.storeManifest(route, ref, got) };
    } catch (e) {
      if (e instanceof UpstreamError && e.notFound) {
        // not (or no longer) upstream: a pushed tag (allowPush) or one deleted there; the cached
        // answer stands for another TTL
        await this.deps.manifests.tag(route.local, ref.tag!, cached.digest).catch(() => {});
        this.hits.inc({ kind: "tag" });
        return { manifest: cached };
      }
      const reason = e instanceof UpstreamError ? e.message : `${(e as Error).message}`;
      this.countError(e);
      this.staleServed.inc();
      this.deps.logger.warn({ repository: route.local, tag: ref.tag, upstream: route.upstream.host, err: reason }, "upstream could not revalidate a tag; serving the cached answer");
      return { manifest: cached, warning: `110 - "upstream ${route.upstream.host} could not revalidate the tag; the cached answer is served"` };
    }
  }

  private async storeManifest(route: Route, ref: { tag?: string; digest?: Digest }, got: UpstreamManifest): Promise<StoredManifest> {
    this.upstreamBytes.inc(got.raw.length);
    let parsed;
    try {
      parsed = parseManifest(got.raw, got.mediaType || undefined);
    } catch (e) {
      throw new UpstreamError(`upstream ${route.upstream.host} sent an invalid manifest for ${route.remote}: ${(e as Error).message}`);
    }
    await this.deps.manifests.put(route.local, { digest: got.digest }, got.raw, got.mediaType || undefined, { mirrored: true });
    if (ref.tag) await this.deps.manifests.tag(route.local, ref.tag, got.digest);
    await this.deps.repositories.added(route.local);
    this.deps.touch?.(route.local, got.digest, got.raw.length, "manifest", true);
    return { digest: got.digest, mediaType: parsed.mediaType, raw: got.raw };
  }

  /**
   * The upstream's tags of the repository, merged with those cached here; only the cached ones
   * when the upstream cannot answer (undefined when there are none either).
   */
  async tags(route: Route): Promise<{ tags: string[]; warning?: string } | undefined> {
    let local: string[] | undefined;
    try {
      local = await this.deps.manifests.tags(route.local);
    } catch (e) {
      if (!(e instanceof UnknownError)) throw e;
    }
    try {
      const remote = await route.upstream.tags(route.remote);
      return { tags: [...new Set([...remote, ...(local ?? [])])].sort(byteOrder) };
    } catch (e) {
      if (e instanceof UpstreamError && e.notFound) return local ? { tags: local } : undefined;
      this.countError(e);
      if (!local) throw e;
      return { tags: local, warning: `110 - "upstream ${route.upstream.host} did not answer; cached tags only"` };
    }
  }

  // ---- blobs ----

  /** A blob this repository holds was served from storage. */
  served(local: string, digest: Digest, size: number): void {
    this.hits.inc({ kind: "blob" });
    this.deps.touch?.(local, digest, size, "blob", false);
  }

  /**
   * A blob the repository does not hold. HEAD: its size (asked upstream when not stored
   * anywhere here). GET: a stream of the whole blob, fed by the one fetch of it (or from
   * storage once it landed). `whole`: wait until it landed and return only its size (for
   * range requests, which are then served from storage).
   */
  async blob(route: Route, digest: Digest, mode: "head" | "get" | "wait"): Promise<ProxyBlob> {
    const stored = await this.deps.blobs.globalSize(digest);
    if (stored !== undefined) {
      // Content-addressed and verified when stored: link it into this repository too. With
      // pushes allowed the stored blob may be another repository's private content: the
      // upstream must have it in this repository first.
      if (this.config.allowPush) await this.upstreamCall(() => route.upstream.blobSize(route.remote, digest), `${route.remote}@${digest}`, "blob");
      await this.deps.blobs.link(route.local, digest, stored);
      this.hits.inc({ kind: "blob" });
      this.deps.touch?.(route.local, digest, stored, "blob", true);
      return { size: stored };
    }
    if (mode === "head") {
      const size = await this.upstreamCall(() => route.upstream.blobSize(route.remote, digest), `${route.remote}@${digest}`, "blob");
      return { size };
    }
    let flight = this.flights.get(digest);
    if (!flight) {
      this.misses.inc({ kind: "blob" });
      const f = new BlobFlight();
      flight = f;
      this.flights.set(digest, f);
      this.fetchBlob(route, digest, f)
        .then(
          () => f.resolveLanded(),
          (e) => {
            f.rejectReady(e);
            f.rejectLanded(e);
            // a client that has the whole verified blob keeps it; the others are cut short
            for (const s of f.subs) if (!s.out.writableEnded) s.out.destroy(e as Error);
          },
        )
        .finally(() => this.flights.delete(digest));
    }
    const f = flight;
    if (mode === "wait") {
      await f.ready;
      await f.landed;
      return { size: f.size };
    }
    // Joined before any byte was sent: fed live; else continued from storage once landed.
    const live = f.sent === 0 && [...f.subs].filter((x) => x.live).length < LIVE_SUBSCRIBERS;
    const sub: Subscriber = { out: new PassThrough(), delivered: 0, live };
    // its failure reaches the client through the response pipeline (or nobody, before one exists)
    sub.out.on("error", () => {});
    f.subs.add(sub);
    sub.out.once("close", () => f.subs.delete(sub));
    try {
      await f.ready;
    } catch (e) {
      f.subs.delete(sub);
      sub.out.destroy();
      throw e;
    }
    f.landed.then(
      () => this.finishFromStorage(sub, digest, f.size),
      () => {},
    );
    return { size: f.size, stream: sub.out };
  }

  /** After the blob landed: ends a subscriber that got everything, else continues it from storage. */
  private finishFromStorage(sub: Subscriber, digest: Digest, size: number | undefined): void {
    if (sub.out.destroyed || sub.out.writableEnded) return;
    const total = size ?? sub.delivered;
    if (sub.live && sub.delivered === total) {
      sub.out.end();
      return;
    }
    sub.live = false;
    const rest = sub.delivered < total ? { start: sub.delivered, end: total - 1 } : undefined;
    if (!rest) {
      sub.out.end();
      return;
    }
    this.deps.blobs.open(digest, total, rest).then(
      (src) => {
        src.once("error", (e) => sub.out.destroy(e));
        sub.out.once("close", () => src.destroy());
        src.pipe(sub.out);
      },
      (e) => sub.out.destroy(e as Error),
    );
  }

  /** The one fetch of a blob: under its lock (or after another replica's), streamed to storage and to live subscribers. */
  private async fetchBlob(route: Route, digest: Digest, flight: BlobFlight): Promise<void> {
    const deadline = Date.now() + PEER_WAIT_MS;
    for (;;) {
      const stored = await this.deps.blobs.globalSize(digest);
      if (stored !== undefined) return this.landedElsewhere(route, digest, flight, stored);
      if (!(await this.deps.locks.isHeld(`blob:${digest}`))) break;
      if (Date.now() > deadline) throw new UnavailableError(`another replica is still fetching ${digest}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    await this.deps.locks.withLock(`blob:${digest}`, async (lease) => {
      const stored = await this.deps.blobs.globalSize(digest);
      if (stored !== undefined) return this.landedElsewhere(route, digest, flight, stored);
      const up = await this.upstreamCall(() => route.upstream.blob(route.remote, digest, lease.signal), `${route.remote}@${digest}`, "blob");
      const max = this.deps.maxBlobBytes ?? 0;
      if (max > 0 && up.size !== undefined && up.size > max) {
        up.body.destroy();
        throw new UpstreamError(`blob ${digest} (${up.size} bytes) exceeds limits.blobMaxBytes`);
      }
      flight.size = up.size;
      flight.resolveReady();
      const key = pathFor({ kind: "blobData", digest });
      // The writer opens while the first bytes already go out to the clients.
      const opening = this.deps.driver.writer(key, { size: up.size, signal: lease.signal });
      opening.catch(() => {});
      let writer: FileWriter | undefined;
      const verifier = new Verifier({ digest, size: up.size ?? -1, maxSize: max > 0 ? max : undefined });
      let held: Buffer | undefined;
      let committed = false;
      try {
        // Every byte but the last goes out at once; the chunk that completes the blob (the
        // latest chunk, when the size is unknown) waits for the digest check.
        for await (const chunk of up.body as AsyncIterable<Buffer>) {
          verifier.update(chunk);
          this.upstreamBytes.inc(chunk.length);
          if (held) flight.deliver(held);
          held = undefined;
          if (up.size !== undefined && verifier.bytes < up.size) flight.deliver(chunk);
          else held = chunk;
          writer ??= await opening;
          await writer.write(chunk);
        }
        verifier.end();
        writer ??= await opening;
        // verified: the clients may have the end now, while the blob is made durable
        if (held) flight.deliver(held);
        held = undefined;
        flight.verified = true;
        if (up.size !== undefined) flight.endComplete();
        await writer.commit();
        committed = true;
      } catch (e) {
        up.body.destroy();
        if (!committed) await (writer ?? (await opening.catch(() => undefined)))?.cancel().catch(() => {});
        this.countError(e);
        this.deps.logger.warn({ repository: route.local, digest, upstream: route.upstream.host, err: (e as Error).message }, "blob fetch from upstream failed; nothing stored");
        throw e;
      }
      const size = verifier.bytes;
      flight.size = size;
      await this.deps.blobs.link(route.local, digest, size);
      await this.deps.repositories.added(route.local);
      this.deps.touch?.(route.local, digest, size, "blob", true);
    });
  }

  private async landedElsewhere(route: Route, digest: Digest, flight: BlobFlight, size: number): Promise<void> {
    await this.deps.blobs.link(route.local, digest, size);
    flight.size = size;
    for (const s of flight.subs) s.live = false;
    flight.resolveReady();
  }

  private async upstreamCall<T>(fn: () => Promise<T>, what: string, kind: "blob" | "manifest"): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      if (e instanceof UpstreamError && e.notFound) throw new UnknownError(kind, what);
      this.countError(e);
      throw e;
    }
  }

  private countError(e: unknown): void {
    const status = e instanceof UpstreamError ? e.status : undefined;
    const reason = status === 429 ? "rate_limited" : status !== undefined && status >= 500 ? "server_error" : status !== undefined ? "refused" : e instanceof UpstreamError ? "unreachable" : "other";
    this.upstreamErrors.inc({ reason });
  }
}
