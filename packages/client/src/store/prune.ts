/**
 * Store-wide lifecycle: `image prune` (dangling images, or with `all` every image no container
 * uses, then every layer nothing holds) and `system df` (what the store holds, what is shared,
 * what a prune could free), as Docker computes them.
 *
 * Who holds what:
 *   - an image holds the layers of its rootfs (chainIDs, so every ancestor too);
 *   - a container holds its image and the layer its rw layer sits on (layerdb/mounts/<id>/parent)
 *     with its ancestors; a read-only mount of an image (strata/ro/<image>/merged) holds the image;
 *   - a child image (imagedb/metadata/sha256/<child>/parent) holds its parent image;
 *   - a live process's lease (Store.holdLayers: a pull between its layer commits and its image)
 *     holds those layers with their ancestors.
 * Everything runs under the store lock, so a pull's lock sections and a prune never interleave
 * within one step; see store.ts for the lease that covers a pull across its steps.
 */
import { lstat, readdir } from "node:fs/promises";
import { join } from "node:path";
import { type ChainID, type Digest, digestHex } from "@strata/core";
import { type Container, isContainerMounted, listContainers, readOnlyTarget } from "../containers/store.js";
import { isMountPoint } from "../containers/mount.js";
import { readSmall } from "./fsutil.js";
import { deleteImageRecords, listImages, removeLayersExcept, referencedChains, type StoredImage } from "./images.js";
import type { LayerRecord, Store } from "./store.js";

interface Graph {
  images: StoredImage[];
  /** image ID -> its parent image ID (images made by commit). */
  parents: Map<string, string>;
  layers: Map<string, LayerRecord>;
  containers: Container[];
  /** Images a container or a read-only mount uses. */
  activeImages: Set<string>;
}

async function loadGraph(store: Store): Promise<Graph> {
  const images = await listImages(store);
  const parents = new Map<string, string>();
  for (const img of images) {
    const p = await readSmall(join(store.paths.imagedbMetadata, digestHex(img.id), "parent"));
    if (p) parents.set(img.id, p.trim());
  }
  const layers = new Map<string, LayerRecord>();
  for (const c of await store.listLayers()) {
    const rec = await store.getLayer(c).catch(() => undefined);
    if (rec) layers.set(c, rec);
  }
  const containers = await listContainers(store);
  const activeImages = new Set<string>();
  for (const c of containers) {
    if (c.image) activeImages.add(c.image);
    // a container without strata metadata: the images whose top layer it sits on
    else for (const img of images) if (img.chainIds.at(-1) === c.parent) activeImages.add(img.id);
  }
  for (const img of images) if (isMountPoint(readOnlyTarget(store, img.id))) activeImages.add(img.id);
  return { images, parents, layers, containers, activeImages };
}

export interface PruneResult {
  /** References removed ("repo:tag", "repo@digest"). */
  untagged: string[];
  /** Image IDs removed. */
  deletedImages: Digest[];
  /** Layers removed (chainIDs). */
  deletedLayers: ChainID[];
  /** Sum of the layerdb sizes of the removed layers. */
  reclaimed: number;
}

/** Images a prune removes now: unused, childless, and (unless `all`) without a tag. */
function candidates(g: Graph, all: boolean): StoredImage[] {
  const hasChild = new Set(g.parents.values());
  return g.images.filter((img) => !g.activeImages.has(img.id) && !hasChild.has(img.id) && (all || img.repoTags.length === 0));
}

/**
 * `strata image prune [--all]`: removes dangling images (no tag; digest references go with
 * them) or, with `all`, every image no container uses, repeating while removing a child image
 * leaves its parent prunable; then removes every layer no image, container or lease holds
 * (which also finishes an rmi or prune a crash interrupted). Runs under the store lock.
 */
export async function pruneImages(store: Store, opts: { all?: boolean } = {}): Promise<PruneResult> {
  return store.withLock(async () => {
    await store.recover();
    // every config readable, before anything changes (an unreadable one fails the prune)
    await referencedChains(store);
    const result: PruneResult = { untagged: [], deletedImages: [], deletedLayers: [], reclaimed: 0 };
    for (;;) {
      const todo = candidates(await loadGraph(store), opts.all ?? false);
      if (todo.length === 0) break;
      result.untagged.push(...(await deleteImageRecords(store, todo.map((i) => i.id))));
      result.deletedImages.push(...todo.map((i) => i.id));
    }
    await removeLayersExcept(store, await referencedChains(store), (rec) => {
      result.deletedLayers.push(rec.chainId);
      result.reclaimed += rec.size;
    });
    return result;
  });
}

export interface UsageRow {
  type: "Images" | "Layers" | "Containers";
  total: number;
  active: number;
  /** Bytes, each layer counted once. */
  size: number;
  /** Bytes of layers held by more than one image (Layers: by more than one image or container). */
  shared: number;
  reclaimable: number;
}

/**
 * Bytes of a directory tree as Docker counts a layer's size: every non-directory's st_size
 * (a symlink's is its target's length), each inode once.
 */
export async function treeSize(dir: string): Promise<number> {
  const seen = new Set<string>();
  let total = 0;
  const stack = [dir];
  while (stack.length) {
    const d = stack.pop() as string;
    const entries = await readdir(d, { withFileTypes: true }).catch(() => []);
    for (const e of entries) {
      const p = join(d, e.name);
      if (e.isDirectory()) {
        stack.push(p);
        continue;
      }
      const st = await lstat(p, { bigint: true }).catch(() => undefined);
      if (!st || st.size === 0n) continue;
      const key = `${st.dev}:${st.ino}`;
      if (seen.has(key)) continue;
      seen.add(key);
      total += Number(st.size);
    }
  }
  return total;
}

/**
 * `strata system df`: one row each for images, layers and containers.
 *   Images: size = every image's layers counted once; shared = layers of two or more images;
 *           active = images a container (or read-only mount) uses; reclaimable = size minus the
 *           layers of active images (what `image prune --all` frees).
 *   Layers: every layerdb entry; active = held by an image, a container or a lease;
 *           shared = held by two or more images/containers; reclaimable = held by nothing.
 *   Containers: size = bytes in their rw layers; active = mounted; reclaimable = not mounted.
 */
export async function diskUsage(store: Store): Promise<UsageRow[]> {
  const g = await loadGraph(store);
  const sizeOf = (c: string) => g.layers.get(c)?.size ?? 0;
  const users = new Map<string, number>();
  const imageLayers = new Set<string>();
  const activeLayers = new Set<string>();
  for (const img of g.images) {
    for (const c of new Set(img.chainIds)) {
      users.set(c, (users.get(c) ?? 0) + 1);
      imageLayers.add(c);
      if (g.activeImages.has(img.id)) activeLayers.add(c);
    }
  }
  const sum = (set: Iterable<string>) => [...set].reduce((n, c) => n + sizeOf(c), 0);
  const imagesSize = sum(imageLayers);
  const imagesShared = sum([...imageLayers].filter((c) => (users.get(c) ?? 0) > 1));
  const images: UsageRow = {
    type: "Images",
    total: g.images.length,
    active: g.images.filter((i) => g.activeImages.has(i.id)).length,
    size: imagesSize,
    shared: imagesShared,
    reclaimable: imagesSize - sum(activeLayers),
  };

  // containers hold their parent chain with its ancestors; count them as users too
  const layerUsers = new Map(users);
  for (const c of g.containers) {
    for (let p: string | undefined = c.parent; p; p = g.layers.get(p)?.parent) layerUsers.set(p, (layerUsers.get(p) ?? 0) + 1);
  }
  const held = await referencedChains(store);
  const layers: UsageRow = {
    type: "Layers",
    total: g.layers.size,
    active: [...g.layers.keys()].filter((c) => held.has(c)).length,
    size: sum(g.layers.keys()),
    shared: sum([...g.layers.keys()].filter((c) => (layerUsers.get(c) ?? 0) > 1)),
    reclaimable: sum([...g.layers.keys()].filter((c) => !held.has(c))),
  };

  let cSize = 0;
  let cReclaimable = 0;
  let mounted = 0;
  for (const c of g.containers) {
    const n = await treeSize(join(store.paths.overlayDir(c.mountId), "diff"));
    cSize += n;
    if (isContainerMounted(store, c)) mounted++;
    else cReclaimable += n;
  }
  const containers: UsageRow = { type: "Containers", total: g.containers.length, active: mounted, size: cSize, shared: 0, reclaimable: cReclaimable };
  return [images, layers, containers];
}

/** One image's share of the store, as `docker system df -v` reports it. */
export interface ImageUsage {
  /** Bytes of all its layers. */
  size: number;
  /** Bytes of its layers another image also holds. */
  shared: number;
  /** Containers created from it. */
  containers: number;
}

/** One container's rw layer, as `docker system df -v` reports it. */
export interface ContainerUsage {
  id: string;
  name: string;
  /** The image argument it was created from (else its image ID). */
  image: string;
  created: string;
  /** Bytes in its rw layer. */
  size: number;
  mounted: boolean;
}

/** `strata system df -v`: every image's size, shared and unique bytes and containers; every container's rw bytes. */
export async function diskUsageVerbose(store: Store): Promise<{ images: Map<string, ImageUsage>; containers: ContainerUsage[] }> {
  const g = await loadGraph(store);
  const users = new Map<string, number>();
  for (const img of g.images) for (const c of new Set(img.chainIds)) users.set(c, (users.get(c) ?? 0) + 1);
  const images = new Map<string, ImageUsage>();
  for (const img of g.images) {
    let size = 0;
    let shared = 0;
    for (const c of new Set(img.chainIds)) {
      const n = g.layers.get(c)?.size ?? 0;
      size += n;
      if ((users.get(c) ?? 0) > 1) shared += n;
    }
    images.set(img.id, { size, shared, containers: g.containers.filter((c) => c.image === img.id).length });
  }
  const containers: ContainerUsage[] = [];
  for (const c of g.containers) {
    const size = await treeSize(join(store.paths.overlayDir(c.mountId), "diff"));
    containers.push({ id: c.id, name: c.name, image: c.imageName ?? c.image ?? "", created: c.created ?? "", size, mounted: isContainerMounted(store, c) });
  }
  return { images, containers };
}
