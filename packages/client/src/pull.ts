/**
 * `pull`: fetch an image from a registry into the Docker overlay2 store.
 *
 * One streaming pass per layer: unpackRemoteLayer, which in a worker thread downloads the blob
 * (resumable) and runs the size/digest verifier, the decompressor and the extraction (overlay2
 * diff dir, tar-split, diffID, size). The computed
 * diffID must equal the config's `rootfs.diff_ids[i]`. Layers download and extract concurrently
 * (bounded by `maxConcurrent`) and are committed to layerdb strictly in order, parent first. A
 * layer whose chainID is already in the store is skipped ("Already exists"). Only after every
 * layer is committed are the image config, the distribution metadata and repositories.json
 * written. Any failure aborts the other layers and removes their temp dirs.
 */
import {
  type ChainID,
  chainIds,
  type Descriptor,
  type Digest,
  familiarName,
  formatFamiliar,
  formatPlatform,
  hostPlatform,
  type LayerCompression,
  layerCompression,
  type ParsedImageManifest,
  type Platform,
  parseImageConfig,
  parseManifest,
  parseReference,
  platformMatches,
} from "@strata/core";
import { prewarmUnpackWorkers, stopIdleUnpackWorkers, unpackRemoteLayer } from "./layer/unpack.js";
import { type ProgressReporter, shortId, silentProgress } from "./progress.js";
import type { Credentials } from "./registry/auth.js";
import { MAX_CONFIG_BYTES, RegistryClient, type Timeouts } from "./registry/client.js";
import { selectPlatform } from "./registry/platform.js";
import type { RetryPolicy } from "./registry/retry.js";
import { type PendingLayer, Store } from "./store/store.js";

export interface PullOptions {
  /** Store root (Docker data root layout). */
  root: string;
  /** Wanted platform; default: the host's. When given explicitly, a single-platform image must match it. */
  platform?: Platform;
  /** Layers downloaded/extracted at once (default 3). */
  maxConcurrent?: number;
  insecureRegistries?: readonly string[];
  credentials?: Credentials;
  progress?: ProgressReporter;
  signal?: AbortSignal;
  retry?: Partial<RetryPolicy>;
  /** Upper bound on one layer's extracted bytes (passed to the extractor). */
  maxLayerBytes?: number;
  /** Registry connection idle timeout (default 60 s). */
  idleTimeoutMs?: number;
  /** Time limits of registry requests (see registry/client.ts DEFAULT_TIMEOUTS). */
  timeouts?: Partial<Timeouts>;
}

export interface PulledLayer {
  /** Compressed blob digest (manifest). */
  digest: Digest;
  mediaType: string;
  diffId: Digest;
  chainId: ChainID;
  cacheId: string;
  /** layerdb `size`. */
  size: number;
  status: "pulled" | "exists";
}

export interface PullResult {
  /** Familiar reference as pulled (`127.0.0.1:5000/golden/edge:v1`). */
  reference: string;
  /** Familiar repository name (repositories.json key). */
  repository: string;
  imageId: Digest;
  /** Digest of the manifest (or index) the reference resolved to. */
  manifestDigest: Digest;
  platform: string;
  layers: PulledLayer[];
  /** True when nothing had to be downloaded and the reference already pointed at the image. */
  upToDate: boolean;
}

/**
 * Most layers an image may have: Docker Engine's layer store refuses a chain deeper than 125
 * (`maxLayerDepth`, so that a container's init and read-write layers still fit overlay's 128
 * lower directories). Checked on the manifest, before anything else is downloaded.
 */
export const MAX_LAYERS = 125;

export class PullError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "PullError";
  }
}

class Semaphore {
  private waiters: (() => void)[] = [];
  constructor(private free: number) {}
  async acquire(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return;
    }
    await new Promise<void>((r) => this.waiters.push(r));
  }
  release(): void {
    const w = this.waiters.shift();
    if (w) w();
    else this.free++;
  }
}


export async function pull(input: string, opts: PullOptions): Promise<PullResult> {
  const ref = parseReference(input);
  const progress = opts.progress ?? silentProgress;
  const ac = new AbortController();
  const onOuterAbort = () => ac.abort(opts.signal?.reason ?? new Error("pull aborted"));
  if (opts.signal?.aborted) onOuterAbort();
  opts.signal?.addEventListener("abort", onOuterAbort, { once: true });
  const signal = ac.signal;
  try {
    const client = new RegistryClient({
      domain: ref.domain,
      insecureRegistries: opts.insecureRegistries,
      credentials: opts.credentials,
      retry: opts.retry,
      idleTimeoutMs: opts.idleTimeoutMs,
      timeouts: opts.timeouts,
      signal,
    });
    const repo = ref.repository;
    const familiarRepo = familiarName(ref);
    progress.event({ type: "start", reference: formatFamiliar(ref), repository: repo, tagOrDigest: ref.digest ?? ref.tag ?? "latest" });
    // the unpack workers start while the manifest and config are fetched
    prewarmUnpackWorkers(Math.max(1, opts.maxConcurrent ?? 3));

    // 1. manifest (index -> platform)
    const top = await client.getManifest(repo, ref.digest ?? ref.tag ?? "latest", signal);
    const topParsed = parseManifest(top.raw, top.contentType);
    let manifest: ParsedImageManifest;
    let fromIndex = false;
    if (topParsed.kind === "index") {
      fromIndex = true;
      const desc = selectPlatform(topParsed, opts.platform ?? hostPlatform());
      const child = await client.getManifest(repo, desc.digest, signal);
      const parsed = parseManifest(child.raw, child.contentType);
      if (parsed.kind !== "manifest") throw new PullError(`${formatFamiliar(ref)}: index entry ${desc.digest} is not an image manifest`);
      manifest = parsed;
    } else {
      manifest = topParsed;
    }
    if (manifest.layers.length > MAX_LAYERS) {
      throw new PullError(`${formatFamiliar(ref)} has ${manifest.layers.length} layers, more than the ${MAX_LAYERS} Docker allows`);
    }

    // 2. config
    const configRaw = await client.readBlob(repo, manifest.config, MAX_CONFIG_BYTES, signal);
    const config = parseImageConfig(configRaw).config;
    const imagePlatform: Platform = { os: config.os, architecture: config.architecture, ...(config.variant ? { variant: config.variant } : {}) };
    if (!fromIndex && opts.platform && !platformMatches(opts.platform, imagePlatform)) {
      throw new PullError(
        `image ${formatFamiliar(ref)} is for ${formatPlatform(imagePlatform)}, which does not match the requested platform ${formatPlatform(opts.platform)}`,
      );
    }
    const diffIds = config.rootfs.diff_ids;
    const layers = manifest.layers;
    if (layers.length !== diffIds.length) {
      throw new PullError(`${formatFamiliar(ref)}: manifest has ${layers.length} layers but the config lists ${diffIds.length} diff_ids`);
    }
    const compressions: LayerCompression[] = layers.map((l) => {
      const c = layerCompression(l.mediaType);
      if (!c) throw new PullError(`${formatFamiliar(ref)}: unsupported layer media type ${l.mediaType} (${l.digest})`);
      return c;
    });
    const chains = chainIds(diffIds);

    // 3. store: recover leftovers, find what exists
    const store = await Store.open(opts.root);
    await store.withLock(() => store.recover(), signal);
    const exists: boolean[] = layers.map(() => false);
    for (let i = chains.length - 1; i >= 0; i--) {
      if (await store.hasLayer(chains[i])) {
        for (let j = 0; j <= i; j++) exists[j] = true;
        break;
      }
    }
    progress.event({ type: "layers", layers: layers.map((l, i) => ({ id: shortId(l.digest), size: l.size, exists: exists[i] })) });

    // 4. layers: concurrent download+extract, ordered commit (the workers continue this client's session)
    const session = client.session();
    const sem = new Semaphore(Math.max(1, opts.maxConcurrent ?? 3));
    const pendings = new Set<PendingLayer>();
    let firstError: unknown;
    const fail = (e: unknown) => {
      if (firstError === undefined) firstError = e;
      if (!signal.aborted) ac.abort(e);
    };
    const extract = async (i: number): Promise<{ pending: PendingLayer; size: number }> => {
      const desc: Descriptor = layers[i];
      const id = shortId(desc.digest);
      progress.event({ type: "layer", id, status: "waiting" });
      await sem.acquire();
      let held = true;
      const release = () => {
        if (held) sem.release();
        held = false;
      };
      let pending: PendingLayer | undefined;
      try {
        if (signal.aborted) throw signal.reason;
        pending = await store.prepareLayer();
        pendings.add(pending);
        progress.event({ type: "layer", id, status: "downloading", current: 0, total: desc.size });
        let reported = 0;
        // The worker downloads the blob, verifies its size and digest, decompresses and extracts it.
        const result = await unpackRemoteLayer(
          { session, repository: repo, blob: { compression: compressions[i], digest: desc.digest, size: desc.size } },
          {
            diffDir: pending.diffDir,
            tarSplitPath: pending.tarSplitPath,
            maxBytes: opts.maxLayerBytes,
            signal,
            // the worker flushes the layer to disk itself (syncfs there, not a child process here)
            durable: true,
            onResume: (offset) => progress.event({ type: "resume", id, offset }),
            // progress at most every 100 ms, and when the whole blob is downloaded
            onRead: (n, done) => {
              const now = Date.now();
              if (!done && now - reported < 100) return;
              reported = now;
              progress.event({ type: "layer", id, status: done ? "extracting" : "downloading", current: n, total: desc.size });
            },
          },
        );
        if (result.diffId !== diffIds[i]) {
          throw new PullError(`layer ${desc.digest}: diffID mismatch: the config lists ${diffIds[i]} but the content is ${result.diffId}`);
        }
        release();
        store.markFlushed(pending);
        return { pending, size: result.size };
      } catch (e) {
        progress.event({ type: "layer", id, status: "failed" });
        throw wrapLayerError(desc, e, signal);
      } finally {
        release();
      }
    };

    const results: PulledLayer[] = [];
    let prev: Promise<unknown> = Promise.resolve();
    const commits: Promise<void>[] = [];
    for (let i = 0; i < layers.length; i++) {
      const desc = layers[i];
      if (exists[i]) {
        const rec = await store.getLayer(chains[i]);
        results[i] = {
          digest: desc.digest,
          mediaType: desc.mediaType,
          diffId: diffIds[i],
          chainId: chains[i],
          cacheId: rec?.cacheId ?? "",
          size: rec?.size ?? 0,
          status: "exists",
        };
        continue;
      }
      const extracted = extract(i);
      const before = prev;
      const commit = (async () => {
        const { pending, size } = await extracted;
        await before;
        if (signal.aborted) throw signal.reason;
        const rec = await store.withLock(
          () => store.commitLayer(pending, { chainId: chains[i], diffId: diffIds[i], parent: i > 0 ? chains[i - 1] : undefined, size }),
          signal,
        );
        pendings.delete(pending);
        results[i] = {
          digest: desc.digest,
          mediaType: desc.mediaType,
          diffId: diffIds[i],
          chainId: chains[i],
          cacheId: rec.cacheId,
          size: rec.size,
          status: "pulled",
        };
        progress.event({ type: "layer", id: shortId(desc.digest), status: "complete" });
      })();
      commit.catch(fail);
      commits.push(commit);
      prev = commit;
    }
    await Promise.allSettled(commits);
    // no layer is left to unpack: the workers shut down while the image is recorded
    stopIdleUnpackWorkers();
    if (firstError !== undefined || signal.aborted) {
      for (const p of pendings) await store.discardLayer(p).catch(() => {});
      // An abort from the caller is reported as such, not as the layer errors it caused.
      if (opts.signal?.aborted) throw opts.signal.reason ?? new PullError("pull aborted");
      throw firstError ?? signal.reason;
    }

    // 5. image config, distribution metadata, references
    const topDigest = top.digest;
    const reference = formatFamiliar(ref);
    let upToDate = results.every((r) => r.status === "exists");
    const imageId = await store.withLock(async () => {
      const before = await store.readRepositories();
      const id = await store.putImageConfig(configRaw);
      for (let i = 0; i < layers.length; i++) await store.addV2Metadata(diffIds[i], layers[i].digest, familiarRepo);
      const tagKey = ref.tag && !ref.digest ? `${familiarRepo}:${ref.tag}` : undefined;
      const digestKey = `${familiarRepo}@${topDigest}`;
      if (upToDate) {
        const entries = before[familiarRepo] ?? {};
        upToDate = entries[digestKey] === id && (tagKey === undefined || entries[tagKey] === id);
      }
      await store.updateRepositories((r) => {
        r[familiarRepo] ??= {};
        if (tagKey) r[familiarRepo][tagKey] = id;
        r[familiarRepo][digestKey] = id;
      });
      return id;
    }, signal);

    return {
      reference,
      repository: familiarRepo,
      imageId,
      manifestDigest: topDigest,
      platform: formatPlatform(imagePlatform),
      layers: results,
      upToDate,
    };
  } finally {
    opts.signal?.removeEventListener("abort", onOuterAbort);
  }
}

function wrapLayerError(desc: Descriptor, e: unknown, signal: AbortSignal): unknown {
  if (e instanceof PullError) return e;
  if (signal.aborted && e === signal.reason) return e;
  const msg = e instanceof Error ? e.message : String(e);
  return new PullError(`layer ${desc.digest}: ${msg}`, { cause: e });
}
