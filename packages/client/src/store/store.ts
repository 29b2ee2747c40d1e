/**
 * Docker's overlay2 image store (see paths.ts for the tree), written atomically.
 *
 * Lifecycle of a layer:
 *   prepareLayer()  -> overlay2/.strata-tmp-<pid>-<rand>/diff (0755) and a layerdb write-set dir
 *   (caller extracts into diffDir and writes tar-split at tarSplitPath)
 *   flushLayer()     -> syncfs of the extracted files (no lock needed), or markFlushed() when
 *                      the extractor made them durable itself
 *   stageLayer()    -> no lock needed: link/work written inside the temp dir, diff/parent/
 *                      size/cache-id in the write-set, all fsynced (commitLayer does it if not done)
 *   commitLayer()   -> under the store lock: lower written inside the temp dir; temp dir renamed
 *                      to overlay2/<cache-id>; l/<link> symlink; parent's `committed`;
 *                      the write-set renamed to layerdb/sha256/<chainID> LAST.
 * A layerdb entry therefore exists only for a complete layer. `recover()` (under the lock) removes
 * what a killed process left: temp dirs of dead pids, write-sets, half-deleted `-removing` entries,
 * overlay2 dirs no layerdb entry or mount references, and dangling `l/` links.
 *
 * Mutations of shared files (layerdb, imagedb, repositories.json, distribution) happen under
 * `withLock`; extraction into private temp dirs does not need it.
 *
 * Leases: a pull commits its layers one lock section at a time and records the image only in a
 * last one, so between them its layers belong to no image. `commitLayer` therefore records the
 * chainID in this Store's lease file, `<root>/strata/leases/<pid>-<random>` (one chainID a line,
 * written under the lock), and `putImageConfig` drops the chainIDs the stored config covers.
 * Removal of unused layers (`leasedLayers`) treats the chainIDs (and their ancestors) in the lease
 * of every live pid as used; a lease of a dead pid is void and removed. `reuseLayer` lets a caller
 * check for a present layer and lease it in one lock section before it relies on it. As a last line,
 * `putImageConfig` refuses a config whose layers are not all in layerdb, so a layer removed under
 * a pull's feet fails that pull instead of recording an image with missing layers.
 */
import { randomBytes } from "node:crypto";
import { lstat, mkdir, readdir, readFile, readlink, rename, rm, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type ChainID, chainIds, type DiffID, type Digest, digestHex, digestOf, parseChainID, parseDiffID, parseDigest, parseImageConfig } from "@strata/core";
import { allSettled, fsyncPath, isErrno, mkdirMode, mkdirsSync, randomId, removeTree, randomLinkId, readSmall, syncFilesystem, writeFileAtomic, writeFileSynced } from "./fsutil.js";
import { StoreLock } from "./lock.js";
import { StorePaths } from "./paths.js";

export interface LayerRecord {
  readonly chainId: ChainID;
  readonly diffId: DiffID;
  readonly parent?: ChainID;
  readonly size: number;
  readonly cacheId: string;
}

export interface PendingLayer {
  /** overlay2/.strata-tmp-... : becomes overlay2/<cacheId>. */
  readonly dir: string;
  /** Where the layer's files are extracted. */
  readonly diffDir: string;
  /** layerdb/tmp/write-set-... : becomes layerdb/sha256/<chainID>. */
  readonly writeSet: string;
  /** Where the extractor writes tar-split.json.gz. */
  readonly tarSplitPath: string;
  readonly cacheId: string;
}

export interface V2Metadata {
  Digest: string;
  SourceRepository: string;
  HMAC: string;
}

/** repositories.json: repo -> ("<repo>:<tag>" | "<repo>@<digest>") -> "sha256:<imageID>". */
export type Repositories = Record<string, Record<string, string>>;

const TMP_PREFIX = ".strata-tmp-";
const MAX_V2_METADATA = 50;

function pidOfTemp(name: string, prefix: string): number | undefined {
  const m = new RegExp(`^${prefix.replace(/[.]/g, "\\.")}(\\d+)-`).exec(name);
  return m ? Number(m[1]) : undefined;
}

/**
 * Fault injection for the crash tests only: with STRATA_TEST_FAULT="<point>:<n>" the process
 * kills itself with SIGKILL the n-th time it passes <point> (a real kill -9 at a known step).
 */
const FAULT = /^([a-z-]+):(\d+)$/.exec(process.env.STRATA_TEST_FAULT ?? "");
let faultCount = 0;
export async function faultPoint(name: string): Promise<void> {
  if (!FAULT || FAULT[1] !== name) return;
  if (++faultCount === Number(FAULT[2])) {
    process.kill(process.pid, "SIGKILL");
    await new Promise(() => {});
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return isErrno(e, "EPERM");
  }
}

/** Go's json.Marshal of a map: keys sorted, compact. */
/** Compact JSON with object keys sorted, as Docker encodes repositories.json. */
export function sortedJson(value: unknown): string {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return JSON.stringify(value);
  const obj = value as Record<string, unknown>;
  return `{${Object.keys(obj)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${sortedJson(obj[k])}`)
    .join(",")}}`;
}

export class Store {
  readonly paths: StorePaths;
  readonly lock: StoreLock;
  private readonly flushed = new WeakSet<PendingLayer>();
  /** chainIDs this Store holds for work in progress (mirrored in `leaseFile`). */
  private readonly leased = new Set<string>();
  private readonly leaseFile: string;

  private constructor(readonly root: string) {
    this.paths = new StorePaths(root);
    this.lock = new StoreLock(this.paths.lockFile);
    this.leaseFile = join(this.paths.leases, `${process.pid}-${randomBytes(6).toString("hex")}`);
  }

  /** Opens (creating when needed) the store at `root`. */
  static async open(root: string): Promise<Store> {
    const s = new Store(root);
    const p = s.paths;
    try {
      mkdirsSync(root, 0o711);
      for (const d of [join(root, "image"), p.image, join(p.image, "imagedb"), join(p.image, "imagedb", "content"), p.imagedbContent]) mkdirsSync(d, 0o700);
      for (const d of [join(p.image, "layerdb"), p.layerdb, p.layerdbTmp]) mkdirsSync(d, 0o700);
      for (const d of [join(p.image, "distribution"), p.diffIdByDigest, p.v2MetadataByDiffId]) mkdirsSync(d, 0o755);
    } catch (e) {
      throw new Error(`cannot create a store at ${root}: ${(e as Error).message}`, { cause: e });
    }
    try {
      await lstat(p.overlay);
    } catch {
      await mkdirMode(p.overlay, 0o710);
    }
    try {
      await lstat(p.links);
    } catch {
      await mkdirMode(p.links, 0o700);
    }
    return s;
  }

  /**
   * Opens the store at `root` without creating anything, for commands that only use what is
   * there: fails with a clear message when `root` holds no store.
   */
  static async openExisting(root: string): Promise<Store> {
    const s = new Store(root);
    const st = await lstat(s.paths.imagedbContent).catch(() => undefined);
    if (!st?.isDirectory()) throw new Error(`no image store at ${root} (nothing pulled there yet; --root or STRATA_ROOT names the store)`);
    return s;
  }

  withLock<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    return this.lock.with(fn, signal);
  }

  // ---------------------------------------------------------------------------------------
  // Layers

  async getLayer(chainId: ChainID): Promise<LayerRecord | undefined> {
    const dir = this.paths.layer(chainId);
    const diff = await readSmall(join(dir, "diff"));
    if (diff === undefined) return undefined;
    const cacheId = await readSmall(join(dir, "cache-id"));
    const size = await readSmall(join(dir, "size"));
    const parent = await readSmall(join(dir, "parent"));
    if (cacheId === undefined || size === undefined) throw new Error(`layer ${chainId} in ${this.root} is incomplete`);
    return { chainId, diffId: parseDiffID(diff), parent: parent ? parseChainID(parent) : undefined, size: Number(size), cacheId };
  }

  async hasLayer(chainId: ChainID): Promise<boolean> {
    return (await readSmall(join(this.paths.layer(chainId), "diff"))) !== undefined;
  }

  /** Every layer chainID in layerdb. */
  async listLayers(): Promise<ChainID[]> {
    const names = await readdir(this.paths.layerdb).catch(() => [] as string[]);
    return names.filter((n) => /^[0-9a-f]{64}$/.test(n)).map((n) => parseChainID(`sha256:${n}`));
  }

  /** Creates private temp dirs for extracting one layer. */
  async prepareLayer(): Promise<PendingLayer> {
    const rand = randomBytes(6).toString("hex");
    const dir = join(this.paths.overlay, `${TMP_PREFIX}${process.pid}-${rand}`);
    await mkdirMode(dir, 0o710);
    const diffDir = join(dir, "diff");
    await mkdirMode(diffDir, 0o755);
    const writeSet = join(this.paths.layerdbTmp, `write-set-${process.pid}-${rand}`);
    await mkdirMode(writeSet, 0o700);
    return { dir, diffDir, writeSet, tarSplitPath: join(writeSet, "tar-split.json.gz"), cacheId: randomId() };
  }

  /**
   * Flushes an extracted layer to disk (syncfs of the filesystem holding it). `commitLayer` does
   * it when it was not done; calling it first, outside the lock, lets other work go on meanwhile.
   */
  async flushLayer(p: PendingLayer): Promise<void> {
    await this.syncLayers();
    await fsyncPath(p.tarSplitPath);
    this.flushed.add(p);
  }

  /** Records that the extractor already made `p` durable (its files and tar-split), so commit need not flush it. */
  markFlushed(p: PendingLayer): void {
    this.flushed.add(p);
  }

  private syncRunning: Promise<void> | undefined;
  private syncQueued: Promise<void> | undefined;

  /**
   * syncfs of the filesystem holding overlay2/, as a group commit: a caller waits for a syncfs
   * that STARTS after its call (so it covers everything the caller wrote before), and every
   * caller arriving while one runs shares the single next one.
   */
  private syncLayers(): Promise<void> {
    if (this.syncQueued) return this.syncQueued;
    const start = (): Promise<void> => {
      const run: Promise<void> = syncFilesystem(this.paths.overlay).finally(() => {
        if (this.syncRunning === run) this.syncRunning = undefined;
      });
      this.syncRunning = run;
      return run;
    };
    if (!this.syncRunning) return start();
    const queued = this.syncRunning
      .catch(() => {})
      .then(() => {
        this.syncQueued = undefined;
        return start();
      });
    this.syncQueued = queued;
    return queued;
  }

  async discardLayer(p: PendingLayer): Promise<void> {
    removeTree(p.dir);
    removeTree(p.writeSet);
  }

  // ---- staged commit --------------------------------------------------------------------
  // Saves: a layer's commit (under the lock, strictly parent first, so on the pull's critical
  // path) used to make 13 fsyncs one after another; the files that do not depend on the parent
  // being committed (write-set diff/parent/size/cache-id, the dir's link and work) are now
  // written and fsynced by `stageLayer` as soon as the layer is unpacked, concurrently (ext4
  // commits concurrent fsyncs in one journal transaction), and the commit keeps 3 to 5 rounds of
  // fsync. Measured on the 2-core bench machine, pull of 5 x 64 MiB layers at load ~12, 6 runs
  // each: from the last layer unpacked to the image recorded, median 94 ms before, 63 ms after.
  //
  // Crash contract (unchanged): layerdb/sha256/<chainID> appears (its rename, then fsync of
  // layerdb) only after everything it names is durable: its own files (fsynced by stageLayer),
  // the layer's files and tar-split (syncfs by flushLayer or the extractor), overlay2/<cache-id>
  // with link/lower/work (fsynced, the dir fsynced before its rename into place, overlay2
  // fsynced after it) and l/<link> (l/ fsynced). A crash before that rename leaves only temp
  // dirs of a dead pid or an unreferenced overlay2 dir, both removed by `recover()`.

  private readonly staged = new WeakMap<PendingLayer, { link: string; diffId: DiffID; parent?: ChainID; size: number }>();

  /**
   * Writes and makes durable the parts of a flushed layer's overlay2 dir and layerdb write-set
   * that need nothing from its parent: no lock needed (the dirs are private to this process).
   * `commitLayer` does it when it was not done; the caller must then commit with the same
   * diffId, parent and size.
   */
  async stageLayer(p: PendingLayer, meta: { diffId: DiffID; parent?: ChainID; size: number }): Promise<void> {
    if (this.staged.has(p)) throw new Error("layer already staged");
    if (!this.flushed.has(p)) await this.flushLayer(p);
    const link = randomLinkId();
    const ws = p.writeSet;
    await allSettled([
      writeFileSynced(join(p.dir, "link"), link, 0o644),
      meta.parent ? mkdirMode(join(p.dir, "work"), 0o700) : undefined,
      writeFileSynced(join(ws, "diff"), meta.diffId, 0o644),
      meta.parent ? writeFileSynced(join(ws, "parent"), meta.parent, 0o644) : undefined,
      writeFileSynced(join(ws, "size"), String(meta.size), 0o644),
      writeFileSynced(join(ws, "cache-id"), p.cacheId, 0o644),
    ]);
    await allSettled([fsyncPath(p.dir), fsyncPath(ws)]);
    this.staged.set(p, { link, ...meta });
  }

  /**
   * Makes a prepared, flushed layer part of the store. Caller holds the lock. When the chainID is already
   * present (another pull won the race) the pending dirs are discarded and the existing record
   * returned.
   */
  async commitLayer(p: PendingLayer, meta: { chainId: ChainID; diffId: DiffID; parent?: ChainID; size: number }): Promise<LayerRecord> {
    const existing = await this.getLayer(meta.chainId);
    if (existing) {
      await this.discardLayer(p);
      await this.holdLayers([meta.chainId]);
      return existing;
    }
    if (!this.staged.has(p)) await this.stageLayer(p, meta);
    const staged = this.staged.get(p)!;
    if (staged.diffId !== meta.diffId || staged.parent !== meta.parent || staged.size !== meta.size) {
      throw new Error(`layer ${meta.chainId} was staged with other metadata than it is committed with`);
    }
    let parentDir: string | undefined;
    if (meta.parent) {
      const parent = await this.getLayer(meta.parent);
      if (!parent) throw new Error(`parent layer ${meta.parent} of ${meta.chainId} is not in the store (removed meanwhile, e.g. by a concurrent prune or rmi); try again`);
      parentDir = this.paths.overlayDir(parent.cacheId);
      const parentLink = await readSmall(join(parentDir, "link"));
      if (!parentLink) throw new Error(`layer directory of ${meta.parent} has no link`);
      const parentLower = await readSmall(join(parentDir, "lower"));
      await writeFileSynced(join(p.dir, "lower"), parentLower ? `l/${parentLink}:${parentLower}` : `l/${parentLink}`, 0o644);
      await fsyncPath(p.dir);
    }

    const finalDir = this.paths.overlayDir(p.cacheId);
    await rename(p.dir, finalDir);
    const linkPath = join(this.paths.links, staged.link);
    await allSettled([
      fsyncPath(this.paths.overlay),
      symlink(join("..", p.cacheId, "diff"), linkPath).then(() => fsyncPath(this.paths.links)),
      parentDir ? writeFileSynced(join(parentDir, "committed"), "", 0o600) : undefined,
    ]);

    await this.holdLayers([meta.chainId]);
    await rename(p.writeSet, this.paths.layer(meta.chainId));
    await fsyncPath(this.paths.layerdb);
    return { chainId: meta.chainId, diffId: meta.diffId, parent: meta.parent, size: meta.size, cacheId: p.cacheId };
  }

  /**
   * Removes layers Docker-style (caller holds the lock, has checked nothing references them, and
   * lists children before parents). Order, so that a crash at any point leaves a store that
   * `images`/`verify` read and the next `recover()` finishes:
   *   1. each layerdb/sha256/<chainID>, in the order given, is renamed to
   *      `<hex>-<random>-removing`: from then on the layer exists for no reader (listLayers and
   *      getLayer skip the name, and so does Docker, which removes such entries itself); children
   *      first, so no remaining entry ever names a renamed one as its parent;
   *   2. layerdb is fsynced (the renames are durable before any layer data goes);
   *   3. per layer: the `l/<link>` short link, then overlay2/<cache-id>, then the renamed entry.
   * `recover()` completes 3 for every `-removing` entry it finds.
   */
  async deleteLayers(chainIds: readonly ChainID[]): Promise<LayerRecord[]> {
    const doomed: { rec: LayerRecord; removing: string }[] = [];
    for (const chainId of chainIds) {
      const rec = await this.getLayer(chainId);
      if (!rec) continue;
      const removing = join(this.paths.layerdb, `${digestHex(chainId)}-${randomId()}-removing`);
      await rename(this.paths.layer(chainId), removing);
      doomed.push({ rec, removing });
      await faultPoint("layer-renamed");
    }
    if (doomed.length === 0) return [];
    await fsyncPath(this.paths.layerdb);
    for (const d of doomed) {
      await this.removeOverlayDir(d.rec.cacheId);
      await faultPoint("layer-dir-removed");
      removeTree(d.removing);
    }
    return doomed.map((d) => d.rec);
  }

  /** Removes one layer (see deleteLayers). */
  async deleteLayer(chainId: ChainID): Promise<void> {
    await this.deleteLayers([chainId]);
  }

  private async removeOverlayDir(cacheId: string): Promise<void> {
    if (!/^[0-9a-f]{64}(-init)?$/.test(cacheId)) throw new Error(`refusing to remove overlay2 dir ${JSON.stringify(cacheId)}`);
    const dir = this.paths.overlayDir(cacheId);
    const link = await readSmall(join(dir, "link"));
    if (link && /^[A-Z2-7]{26}$/.test(link)) await rm(join(this.paths.links, link), { force: true });
    removeTree(dir);
  }

  /**
   * Leases `chains` (and so their ancestors) for this Store until an image config covering them
   * is stored, or this process ends. Caller holds the lock.
   */
  async holdLayers(chains: readonly ChainID[]): Promise<void> {
    const before = this.leased.size;
    for (const c of chains) this.leased.add(c);
    if (this.leased.size !== before) await this.writeLease();
  }

  /**
   * Under the lock: whether `chainId` is in layerdb and, when it is, leases it (see holdLayers).
   * A pull deciding to reuse a present layer asks this instead of hasLayer, so that no prune or
   * rmi removes the layer before the pull's image holds it.
   */
  async reuseLayer(chainId: ChainID, signal?: AbortSignal): Promise<boolean> {
    return this.withLock(async () => {
      if (!(await this.hasLayer(chainId))) return false;
      await this.holdLayers([chainId]);
      return true;
    }, signal);
  }

  /** Drops `chains` from this Store's lease. Caller holds the lock. */
  async releaseLayers(chains: readonly ChainID[]): Promise<void> {
    let changed = false;
    for (const c of chains) changed = this.leased.delete(c) || changed;
    if (changed) await this.writeLease();
  }

  private async writeLease(): Promise<void> {
    if (this.leased.size === 0) {
      await rm(this.leaseFile, { force: true });
      return;
    }
    // Not fsynced: a lease means nothing after a crash (its pid is gone).
    await mkdir(this.paths.leases, { recursive: true, mode: 0o700 });
    const tmp = `${this.leaseFile}.tmp`;
    await writeFile(tmp, `${[...this.leased].join("\n")}\n`, { mode: 0o600 });
    await rename(tmp, this.leaseFile);
  }

  /**
   * chainIDs leased by live processes (this one included); leases of dead pids are removed.
   * Caller holds the lock.
   */
  async leasedLayers(): Promise<ChainID[]> {
    const out: ChainID[] = [];
    for (const name of await readdir(this.paths.leases).catch(() => [] as string[])) {
      const path = join(this.paths.leases, name);
      const pid = /^(\d+)-[0-9a-f]+(\.tmp)?$/.exec(name)?.[1];
      if (pid === undefined || (Number(pid) !== process.pid && !alive(Number(pid)))) {
        await rm(path, { force: true });
        continue;
      }
      if (name.endsWith(".tmp")) continue;
      const text = (await readFile(path, "utf8").catch(() => "")).slice(0, 1 << 20);
      for (const line of text.split("\n")) {
        if (!/^sha256:[0-9a-f]{64}$/.test(line)) continue;
        out.push(parseChainID(line));
      }
    }
    return out;
  }

  /** chainIDs referenced by containers (layerdb/mounts/<id>/parent). */
  async mountParents(): Promise<ChainID[]> {
    const ids = await readdir(this.paths.mounts).catch(() => [] as string[]);
    const out: ChainID[] = [];
    for (const id of ids) {
      const parent = await readSmall(join(this.paths.mounts, id, "parent"));
      if (parent) out.push(parseChainID(parent));
    }
    return out;
  }

  /** Cleans what an interrupted process left behind (caller holds the lock). */
  async recover(): Promise<string[]> {
    const removed: string[] = [];
    // 1. temp overlay dirs and write-sets of processes that are gone
    for (const name of await readdir(this.paths.overlay).catch(() => [] as string[])) {
      const pid = pidOfTemp(name, TMP_PREFIX);
      if (pid !== undefined && (pid === process.pid ? false : !alive(pid))) {
        removeTree(join(this.paths.overlay, name));
        removed.push(`overlay2/${name}`);
      }
    }
    for (const name of await readdir(this.paths.layerdbTmp).catch(() => [] as string[])) {
      const pid = pidOfTemp(name, "write-set-");
      if (pid === undefined || (pid !== process.pid && !alive(pid))) {
        removeTree(join(this.paths.layerdbTmp, name));
        removed.push(`layerdb/tmp/${name}`);
      }
    }
    // 2. half-deleted layerdb entries
    for (const name of await readdir(this.paths.layerdb).catch(() => [] as string[])) {
      if (!name.endsWith("-removing")) continue;
      const cacheId = await readSmall(join(this.paths.layerdb, name, "cache-id"));
      if (cacheId) await this.removeOverlayDir(cacheId);
      removeTree(join(this.paths.layerdb, name));
      removed.push(`layerdb/sha256/${name}`);
    }
    // 3. overlay2 dirs that nothing references (renamed into place, entry never committed;
    //    a container's -init or rw dir whose layerdb/mounts entry was never written)
    const referenced = new Set<string>();
    for (const chain of await this.listLayers()) {
      const c = await readSmall(join(this.paths.layer(chain), "cache-id"));
      if (c) referenced.add(c);
    }
    for (const id of await readdir(this.paths.mounts).catch(() => [] as string[])) {
      const m = await readSmall(join(this.paths.mounts, id, "mount-id"));
      const i = await readSmall(join(this.paths.mounts, id, "init-id"));
      if (m) referenced.add(m);
      if (i) referenced.add(i);
    }
    for (const name of await readdir(this.paths.overlay).catch(() => [] as string[])) {
      if (/^[0-9a-f]{64}(-init)?$/.test(name) && !referenced.has(name)) {
        await this.removeOverlayDir(name);
        removed.push(`overlay2/${name}`);
      }
    }
    // 4. dangling l/ links
    for (const name of await readdir(this.paths.links).catch(() => [] as string[])) {
      const p = join(this.paths.links, name);
      try {
        const target = await readlink(p);
        await lstat(join(this.paths.links, target));
      } catch {
        await rm(p, { force: true });
        removed.push(`overlay2/l/${name}`);
      }
    }
    return removed;
  }

  // ---------------------------------------------------------------------------------------
  // Images

  /**
   * Stores a config blob verbatim (mode 0600) and returns the image ID. Every layer of its rootfs
   * must be in layerdb (an image is never recorded with a missing layer, e.g. one a concurrent
   * prune removed after a pull found it present); the chainIDs are then dropped from this Store's
   * lease. Caller holds the lock.
   */
  async putImageConfig(raw: Buffer): Promise<Digest> {
    const id = digestOf(raw, "sha256");
    const chains = chainIds(parseImageConfig(raw).config.rootfs.diff_ids);
    for (const c of chains) {
      if (!(await this.hasLayer(c))) throw new Error(`layer ${c} of image ${id} is not in the store (removed while the image was being written, e.g. by a concurrent prune); try again`);
    }
    const path = this.paths.imageConfig(id);
    const existing = await readFile(path).catch(() => undefined);
    if (!existing?.equals(raw)) await writeFileAtomic(path, raw, 0o600);
    await this.releaseLayers(chains);
    return id;
  }

  async getImageConfig(id: Digest): Promise<Buffer | undefined> {
    return readFile(this.paths.imageConfig(id)).catch((e) => {
      if (isErrno(e, "ENOENT")) return undefined;
      throw e;
    });
  }

  async listImageIds(): Promise<Digest[]> {
    const names = await readdir(this.paths.imagedbContent).catch(() => [] as string[]);
    return names.filter((n) => /^[0-9a-f]{64}$/.test(n)).map((n) => parseDigest(`sha256:${n}`));
  }

  /**
   * Removes images' metadata dirs and configs: per image the metadata dir, then the config (the
   * config last: an image is listed while its config exists, and its metadata is optional to
   * every reader); then one fsync of imagedb, so that the images are durably gone before any of
   * their layers is removed. Caller holds the lock.
   */
  async deleteImageConfigs(ids: readonly Digest[]): Promise<void> {
    for (const id of ids) {
      await rm(join(this.paths.imagedbMetadata, digestHex(id)), { recursive: true, force: true });
      await faultPoint("image-metadata-removed");
      await rm(this.paths.imageConfig(id), { force: true });
      await faultPoint("image-config-removed");
    }
    if (ids.length) await fsyncPath(this.paths.imagedbContent);
  }

  /** Removes one image's config (see deleteImageConfigs). */
  async deleteImageConfig(id: Digest): Promise<void> {
    await this.deleteImageConfigs([id]);
  }

  // ---------------------------------------------------------------------------------------
  // repositories.json

  async readRepositories(): Promise<Repositories> {
    let text: string;
    try {
      text = await readFile(this.paths.repositories, "utf8");
    } catch (e) {
      if (isErrno(e, "ENOENT")) return {};
      throw e;
    }
    if (text.trim() === "") return {};
    const parsed = JSON.parse(text) as { Repositories?: Repositories };
    return parsed.Repositories ?? {};
  }

  /** Read-modify-write of repositories.json (caller holds the lock). */
  async updateRepositories(fn: (repos: Repositories) => void): Promise<void> {
    const repos = await this.readRepositories();
    fn(repos);
    for (const [k, v] of Object.entries(repos)) if (Object.keys(v).length === 0) delete repos[k];
    await writeFileAtomic(this.paths.repositories, sortedJson({ Repositories: repos }), 0o600);
  }

  // ---------------------------------------------------------------------------------------
  // distribution metadata

  async getV2Metadata(diffId: DiffID): Promise<V2Metadata[]> {
    const text = await readSmall(join(this.paths.v2MetadataByDiffId, digestHex(diffId)));
    if (!text) return [];
    try {
      const v = JSON.parse(text) as V2Metadata[];
      return Array.isArray(v) ? v : [];
    } catch {
      return [];
    }
  }

  /**
   * Records that `blob` (compressed) from `sourceRepository` has `diffId`, the way Docker does:
   * an equal entry is moved to the end, at most 50 entries are kept; diffid-by-digest points the
   * blob at the diffID. Caller holds the lock.
   */
  async addV2Metadata(diffId: DiffID, blob: Digest, sourceRepository: string): Promise<void> {
    const entry: V2Metadata = { Digest: blob, SourceRepository: sourceRepository, HMAC: "" };
    const old = await this.getV2Metadata(diffId);
    let list = old.filter((m) => !(m.Digest === entry.Digest && m.SourceRepository === entry.SourceRepository && m.HMAC === entry.HMAC));
    list.push(entry);
    if (list.length > MAX_V2_METADATA) list = list.slice(list.length - MAX_V2_METADATA);
    const json = `[${list.map((m) => `{"Digest":${JSON.stringify(m.Digest)},"SourceRepository":${JSON.stringify(m.SourceRepository)},"HMAC":${JSON.stringify(m.HMAC)}}`).join(",")}]`;
    await allSettled([
      writeFileAtomic(join(this.paths.v2MetadataByDiffId, digestHex(diffId)), json, 0o644),
      writeFileAtomic(join(this.paths.diffIdByDigest, digestHex(blob)), diffId, 0o644),
    ]);
  }

  /**
   * `addV2Metadata` for several layers, concurrently (their fsyncs share journal commits); the
   * entries of one diffID in order, as its file is read, modified and rewritten. Caller holds the lock.
   */
  async addV2MetadataAll(entries: readonly { diffId: DiffID; blob: Digest; sourceRepository: string }[]): Promise<void> {
    const byDiffId = new Map<string, { diffId: DiffID; blob: Digest; sourceRepository: string }[]>();
    for (const e of entries) byDiffId.set(e.diffId, [...(byDiffId.get(e.diffId) ?? []), e]);
    await allSettled(
      [...byDiffId.values()].map(async (group) => {
        for (const e of group) await this.addV2Metadata(e.diffId, e.blob, e.sourceRepository);
      }),
    );
  }

  async getDiffIdByDigest(blob: Digest): Promise<DiffID | undefined> {
    const v = await readSmall(join(this.paths.diffIdByDigest, digestHex(blob)));
    return v ? parseDiffID(v) : undefined;
  }
}
