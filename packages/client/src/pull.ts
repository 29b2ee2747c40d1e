/**
 * `pull`: fetch an image from a registry into the Docker overlay2 store, in named steps:
 *
 * 1. `resolve`: the manifest (an index resolved to this platform's), the layer-count limit, the
 *    config (verified, size-bounded) and its agreement with the manifest;
 * 2. `plan`: the store opened and recovered, the layers it already has found ("Already exists");
 * 3. `unpackLayer` (for each missing layer, at most `maxConcurrent` at once): in a worker thread
 *    the blob is downloaded (resumable), its size and digest verified, decompressed and
 *    extracted (overlay2 diff dir, tar-split, diffID, size); the diffID must equal the config's;
 * 4. `fetchLayers` commits each layer to layerdb strictly in order, parent first;
 * 5. `commitImage`: only after every layer is committed, the image config, the distribution
 *    metadata and repositories.json.
 *
 * Any failure aborts the other layers and removes their temp dirs.
 */
import {
  type ChainID,
  chainIds,
  type Descriptor,
  type DiffID,
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
  type Reference,
} from "@strata/core";
import pLimit from "p-limit";
import { prewarmUnpackWorkers, stopIdleUnpackWorkers, unpackRemoteLayer } from "./layer/unpack.js";
import { type ProgressReporter, shortId, silentProgress } from "./progress.js";
import type { Credentials } from "./registry/auth.js";
import { type FetchedManifest, MAX_CONFIG_BYTES, RegistryClient, type RegistrySession, type Timeouts } from "./registry/client.js";
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

/** What `resolve` learns from the registry: the image manifest and config, checked. */
interface Resolved {
  /** The manifest or index the reference named (its digest goes into repositories.json). */
  top: FetchedManifest;
  manifest: ParsedImageManifest;
  configRaw: Buffer;
  platform: Platform;
  diffIds: DiffID[];
  chains: ChainID[];
  compressions: LayerCompression[];
}

/** One pull's state shared by its steps. */
interface Pull {
  ref: Reference;
  opts: PullOptions;
  progress: ProgressReporter;
  client: RegistryClient;
  /** Aborted when the caller aborts or a layer fails (the other layers stop). */
  signal: AbortSignal;
  fail(e: unknown): void;
}

export async function pull(input: string, opts: PullOptions): Promise<PullResult> {
  const ref = parseReference(input);
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
    const p: Pull = {
      ref,
      opts,
      progress: opts.progress ?? silentProgress,
      client,
      signal,
      fail: (e) => {
        if (!signal.aborted) ac.abort(e);
      },
    };
    p.progress.event({ type: "start", reference: formatFamiliar(ref), repository: ref.repository, tagOrDigest: ref.digest ?? ref.tag ?? "latest" });
    // the unpack workers start while the manifest and config are fetched
    prewarmUnpackWorkers(Math.max(1, opts.maxConcurrent ?? 3), { callerThread: true });
    const resolved = await resolve(p);
    const { store, exists } = await plan(p, resolved);
    const layers = await fetchLayers(p, resolved, store, exists);
    return await commitImage(p, resolved, store, layers);
  } finally {
    opts.signal?.removeEventListener("abort", onOuterAbort);
  }
}

/** Step 1: the manifest (through an index to this platform's), the layer-count limit, the config and its agreement with the manifest. */
async function resolve(p: Pull): Promise<Resolved> {
  const { ref, client, signal, opts } = p;
  const repo = ref.repository;
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

  const configRaw = await client.readBlob(repo, manifest.config, MAX_CONFIG_BYTES, signal);
  const config = parseImageConfig(configRaw).config;
  const platform: Platform = { os: config.os, architecture: config.architecture, ...(config.variant ? { variant: config.variant } : {}) };
  if (!fromIndex && opts.platform && !platformMatches(opts.platform, platform)) {
    throw new PullError(
      `image ${formatFamiliar(ref)} is for ${formatPlatform(platform)}, which does not match the requested platform ${formatPlatform(opts.platform)}`,
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
  return { top, manifest, configRaw, platform, diffIds, chains: chainIds(diffIds), compressions };
}

/** Step 2: the store, its leftovers recovered, and which layers it already has (every layer below the highest present chain). */
async function plan(p: Pull, r: Resolved): Promise<{ store: Store; exists: boolean[] }> {
  const store = await Store.open(p.opts.root);
  const exists: boolean[] = r.manifest.layers.map(() => false);
  // One lock section for the recovery and the search for the highest present chain (leased when
  // found, as reuseLayer does), not one per chain: the first blob request waits for this step.
  // Measured on the 2-core bench machine (fresh store, 5 layers, load 12, 16 runs each): this
  // step took 10 ms at best with six lock sections, 5 ms with one (medians ~29 ms both, noise).
  await store.withLock(async () => {
    await store.recover();
    for (let i = r.chains.length - 1; i >= 0; i--) {
      if (await store.hasLayer(r.chains[i])) {
        await store.holdLayers([r.chains[i]]);
        for (let j = 0; j <= i; j++) exists[j] = true;
        break;
      }
    }
  }, p.signal);
  p.progress.event({ type: "layers", layers: r.manifest.layers.map((l, i) => ({ id: shortId(l.digest), size: l.size, exists: exists[i] })) });
  return { store, exists };
}

/**
 * Steps 3 and 4: every missing layer fetched and unpacked (`unpackLayer`, at most `maxConcurrent`
 * at once) and committed to layerdb strictly in order, parent first. The first failure aborts the
 * others; then every uncommitted layer is discarded and that failure (or the caller's abort) thrown.
 */
async function fetchLayers(p: Pull, r: Resolved, store: Store, exists: boolean[]): Promise<PulledLayer[]> {
  const { signal } = p;
  const layers = r.manifest.layers;
  // the workers continue this client's session (challenge and tokens)
  const session = p.client.session();
  const limit = pLimit(Math.max(1, p.opts.maxConcurrent ?? 3));
  const pendings = new Set<PendingLayer>();
  let firstError: unknown;
  const results: PulledLayer[] = [];
  let previous: Promise<unknown> = Promise.resolve();
  const commits: Promise<void>[] = [];
  const last = exists.lastIndexOf(false);
  for (let i = 0; i < layers.length; i++) {
    const desc = layers[i];
    const row = { digest: desc.digest, mediaType: desc.mediaType, diffId: r.diffIds[i], chainId: r.chains[i] };
    if (exists[i]) {
      const rec = await store.getLayer(r.chains[i]);
      results[i] = { ...row, cacheId: rec?.cacheId ?? "", size: rec?.size ?? 0, status: "exists" };
      continue;
    }
    p.progress.event({ type: "layer", id: shortId(desc.digest), status: "waiting" });
    const unpacked = limit(() => unpackLayer(p, r, store, session, i, pendings, i === last));
    const parentCommitted = previous;
    const commit = (async () => {
      const { pending, size } = await unpacked;
      await parentCommitted;
      if (signal.aborted) throw signal.reason;
      const parent = i > 0 ? r.chains[i - 1] : undefined;
      const rec = await store.withLock(() => store.commitLayer(pending, { chainId: r.chains[i], diffId: r.diffIds[i], parent, size }), signal);
      pendings.delete(pending);
      results[i] = { ...row, cacheId: rec.cacheId, size: rec.size, status: "pulled" };
      p.progress.event({ type: "layer", id: shortId(desc.digest), status: "complete" });
    })();
    commit.catch((e) => {
      if (firstError === undefined) firstError = e;
      p.fail(e);
    });
    commits.push(commit);
    previous = commit;
  }
  await Promise.allSettled(commits);
  // no layer is left to unpack: the workers shut down while the image is recorded
  stopIdleUnpackWorkers();
  if (firstError !== undefined || signal.aborted) {
    for (const pending of pendings) await store.discardLayer(pending).catch(() => {});
    // An abort from the caller is reported as such, not as the layer errors it caused.
    if (p.opts.signal?.aborted) throw p.opts.signal.reason ?? new PullError("pull aborted");
    throw firstError ?? signal.reason;
  }
  return results;
}

/** Step 3 for one layer: in a worker, the blob downloaded (resumable), verified, decompressed and extracted; its diffID checked. */
async function unpackLayer(
  p: Pull,
  r: Resolved,
  store: Store,
  session: RegistrySession,
  i: number,
  pendings: Set<PendingLayer>,
  last: boolean,
): Promise<{ pending: PendingLayer; size: number }> {
  const { signal, progress } = p;
  const desc: Descriptor = r.manifest.layers[i];
  const id = shortId(desc.digest);
  try {
    if (signal.aborted) throw signal.reason;
    const pending = await store.prepareLayer();
    pendings.add(pending);
    progress.event({ type: "layer", id, status: "downloading", current: 0, total: desc.size });
    let reported = 0;
    const result = await unpackRemoteLayer(
      { session, repository: p.ref.repository, blob: { compression: r.compressions[i], digest: desc.digest, size: desc.size } },
      {
        diffDir: pending.diffDir,
        tarSplitPath: pending.tarSplitPath,
        maxBytes: p.opts.maxLayerBytes,
        signal,
        // the worker flushes the layer to disk itself (syncfs there, not a child process here)
        durable: true,
        // one layer at a time unpacks on this thread, which otherwise only waits (caller-slot.ts)
        callerThread: true,
        // nothing starts after the last layer: on this thread it shares its work with a worker
        split: last,
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
    if (result.diffId !== r.diffIds[i]) {
      throw new PullError(`layer ${desc.digest}: diffID mismatch: the config lists ${r.diffIds[i]} but the content is ${result.diffId}`);
    }
    store.markFlushed(pending);
    // what the commit writes that needs no parent is written now, while other layers download
    await store.stageLayer(pending, { diffId: result.diffId, parent: i > 0 ? r.chains[i - 1] : undefined, size: result.size });
    return { pending, size: result.size };
  } catch (e) {
    progress.event({ type: "layer", id, status: "failed" });
    throw wrapLayerError(desc, e, signal);
  }
}

/** Step 5: the image config, the distribution metadata and the references (repositories.json), under the store lock. */
async function commitImage(p: Pull, r: Resolved, store: Store, layers: PulledLayer[]): Promise<PullResult> {
  const { ref } = p;
  const familiarRepo = familiarName(ref);
  const topDigest = r.top.digest;
  let upToDate = layers.every((l) => l.status === "exists");
  const imageId = await store.withLock(async () => {
    const before = await store.readRepositories();
    // the config and the distribution metadata concurrently (their fsyncs share journal
    // commits), both durable before repositories.json names the image
    const config = store.putImageConfig(r.configRaw);
    const metadata = store.addV2MetadataAll(layers.map((l, i) => ({ diffId: r.diffIds[i], blob: l.digest, sourceRepository: familiarRepo })));
    await Promise.allSettled([config, metadata]);
    const id = await config;
    await metadata;
    const tagKey = ref.tag && !ref.digest ? `${familiarRepo}:${ref.tag}` : undefined;
    const digestKey = `${familiarRepo}@${topDigest}`;
    if (upToDate) {
      const entries = before[familiarRepo] ?? {};
      upToDate = entries[digestKey] === id && (tagKey === undefined || entries[tagKey] === id);
    }
    await store.updateRepositories((repos) => {
      repos[familiarRepo] ??= {};
      if (tagKey) repos[familiarRepo][tagKey] = id;
      repos[familiarRepo][digestKey] = id;
    });
    return id;
  }, p.signal);
  return {
    reference: formatFamiliar(ref),
    repository: familiarRepo,
    imageId,
    manifestDigest: topDigest,
    platform: formatPlatform(r.platform),
    layers,
    upToDate,
  };
}

function wrapLayerError(desc: Descriptor, e: unknown, signal: AbortSignal): unknown {
  if (e instanceof PullError) return e;
  if (signal.aborted && e === signal.reason) return e;
  const msg = e instanceof Error ? e.message : String(e);
  return new PullError(`layer ${desc.digest}: ${msg}`, { cause: e });
}
