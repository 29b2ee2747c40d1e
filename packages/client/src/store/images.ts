/**
 * Image-level views over the store: resolving a user's IMAGE argument, listing images with
 * their references, and removing images with the layers nothing else references (Docker's rmi).
 */
import { type ChainID, chainIds, type Digest, familiarName, type ParsedImageConfig, parseImageConfig, parseReference, type Reference } from "@strata/core";
import { faultPoint, type LayerRecord, type Repositories, type Store } from "./store.js";

export interface StoredImage {
  readonly id: Digest;
  /** The config: `raw` bytes as stored (imagedb content) and the parsed `config`. */
  readonly config: ParsedImageConfig;
  readonly chainIds: ChainID[];
  /** "<repo>:<tag>" references. */
  readonly repoTags: string[];
  /** "<repo>@<digest>" references. */
  readonly repoDigests: string[];
}

export class ImageNotFoundError extends Error {
  constructor(what: string) {
    super(`No such image: ${what}`);
    this.name = "ImageNotFoundError";
  }
}

/** The repositories.json key and entry name for a reference. */
export function referenceKeys(ref: Reference): { repo: string; key: string } {
  const repo = familiarName(ref);
  return { repo, key: ref.digest ? `${repo}@${ref.digest}` : `${repo}:${ref.tag ?? "latest"}` };
}

function refsOf(repos: Repositories, id: Digest): { tags: string[]; digests: string[] } {
  const tags: string[] = [];
  const digests: string[] = [];
  for (const entries of Object.values(repos)) {
    for (const [k, v] of Object.entries(entries)) {
      if (v !== id) continue;
      if (k.includes("@")) digests.push(k);
      else tags.push(k);
    }
  }
  return { tags: tags.sort(), digests: digests.sort() };
}

export async function loadImage(store: Store, id: Digest, repos?: Repositories): Promise<StoredImage | undefined> {
  const raw = await store.getImageConfig(id);
  if (!raw) return undefined;
  const config = parseImageConfig(raw);
  const r = refsOf(repos ?? (await store.readRepositories()), id);
  return { id, config, chainIds: chainIds(config.config.rootfs.diff_ids), repoTags: r.tags, repoDigests: r.digests };
}

export async function listImages(store: Store): Promise<StoredImage[]> {
  const repos = await store.readRepositories();
  const out: StoredImage[] = [];
  for (const id of await store.listImageIds()) {
    const img = await loadImage(store, id, repos).catch(() => undefined);
    if (img) out.push(img);
  }
  return out;
}

export interface ResolvedImage {
  id: Digest;
  /** Set when the argument was a reference (not an ID). */
  ref?: { repo: string; key: string };
}

/** Resolves IMAGE: a full or short image ID (with or without sha256:), or a reference. */
export async function resolveImage(store: Store, arg: string): Promise<ResolvedImage> {
  const idMatch = /^(?:sha256:)?([0-9a-f]{4,64})$/.exec(arg);
  if (idMatch) {
    const hits = (await store.listImageIds()).filter((id) => id.slice(7).startsWith(idMatch[1]));
    if (hits.length === 1) return { id: hits[0] };
    if (hits.length > 1) throw new Error(`ambiguous image ID prefix ${arg}: matches ${hits.length} images`);
  }
  let ref: Reference;
  try {
    ref = parseReference(arg);
  } catch {
    throw new ImageNotFoundError(arg);
  }
  const keys = referenceKeys(ref);
  const repos = await store.readRepositories();
  const id = repos[keys.repo]?.[keys.key];
  if (!id) throw new ImageNotFoundError(arg);
  if (!(await store.getImageConfig(id as Digest))) throw new ImageNotFoundError(arg);
  return { id: id as Digest, ref: keys };
}

/** Sum of the layerdb sizes of an image's layers. */
export async function imageSize(store: Store, img: StoredImage): Promise<number> {
  let total = 0;
  for (const c of img.chainIds) total += (await store.getLayer(c))?.size ?? 0;
  return total;
}

/**
 * Every chainID still needed by an image (other than `exclude`), a container, or a live lease
 * (a pull in progress), ancestors included. An image whose config cannot be read is an error
 * (its layers are unknown, so nothing could safely be called unused).
 */
export async function referencedChains(store: Store, exclude?: ReadonlySet<string>): Promise<Set<string>> {
  const used = new Set<string>();
  for (const id of await store.listImageIds()) {
    if (exclude?.has(id)) continue;
    let img: StoredImage | undefined;
    try {
      img = await loadImage(store, id);
    } catch (e) {
      throw new Error(`image ${id} has an unreadable config (${(e as Error).message}); remove it with rmi first`, { cause: e });
    }
    for (const c of img?.chainIds ?? []) used.add(c);
  }
  for (let c of [...(await store.mountParents()), ...(await store.leasedLayers())]) {
    while (!used.has(c)) {
      used.add(c);
      const rec = await store.getLayer(c);
      if (!rec?.parent) break;
      c = rec.parent;
    }
  }
  return used;
}

/**
 * Removes every layer in layerdb that `used` does not hold, children before parents
 * (Store.deleteLayer gives the per-layer order). Returns the removed layers. Caller holds the lock.
 */
export async function removeLayersExcept(store: Store, used: ReadonlySet<string>, onRemoved?: (rec: LayerRecord) => void): Promise<LayerRecord[]> {
  const records = new Map<string, LayerRecord>();
  for (const c of await store.listLayers()) {
    if (used.has(c)) continue;
    const rec = await store.getLayer(c).catch(() => undefined);
    if (rec) records.set(c, rec);
  }
  // depth of each candidate among the candidates: a child is removed before its parent
  const depth = (rec: LayerRecord): number => {
    let d = 0;
    for (let p = rec.parent; p && records.has(p); p = records.get(p)?.parent) d++;
    return d;
  };
  const order = [...records.values()].sort((a, b) => depth(b) - depth(a));
  const removed = await store.deleteLayers(order.map((r) => r.chainId));
  for (const rec of removed) onRemoved?.(rec);
  return removed;
}

/**
 * Deletes image records (caller holds the lock and has checked that they may go). Order, so
 * that a crash at any point leaves a store `images`/`verify` read: (1) their references leave
 * repositories.json (one atomic replace): an image is at worst a dangling image; (2) per image
 * its imagedb metadata dir, then its imagedb content file, and imagedb is fsynced: the images
 * are gone and their layers, unless another image, container or lease holds them, are unused
 * ones that the next prune removes. Layers are not removed here (see removeLayersExcept).
 * Returns the references removed.
 */
export async function deleteImageRecords(store: Store, ids: readonly Digest[]): Promise<string[]> {
  const doomed = new Set<string>(ids);
  const untagged: string[] = [];
  await store.updateRepositories((r) => {
    for (const entries of Object.values(r)) {
      for (const [k, v] of Object.entries(entries)) {
        if (doomed.has(v)) {
          delete entries[k];
          untagged.push(k);
        }
      }
    }
  });
  await faultPoint("image-untagged");
  await store.deleteImageConfigs(ids);
  return untagged;
}

export interface RemoveResult {
  untagged: string[];
  deleted: string[];
}

/**
 * Docker's `rmi`: a reference argument untags first (and, once no tag of that repository is
 * left, its digest references); the image is deleted only when no reference remains. An ID
 * argument deletes the image with all its references (refused when they span several
 * repositories unless `force`). Deleting an image a container uses (layerdb/mounts/<id>/parent is
 * its top chainID) is refused unless `force`; its layers then stay for the container. Deleting
 * releases layers top-down while nothing else uses them.
 * Caller holds the store lock.
 */
/** Removes `key` (and, once no tag of `repo` is left for the image, its digest references). */
function untagIn(r: Repositories, repo: string, key: string, id: Digest, untagged: string[]): void {
  delete r[repo]?.[key];
  untagged.push(key);
  if (key.includes("@")) return;
  const entries = r[repo] ?? {};
  const tagLeft = Object.entries(entries).some(([k, v]) => v === id && !k.includes("@"));
  if (tagLeft) return;
  for (const [k, v] of Object.entries(entries)) {
    if (v === id && k.includes("@")) {
      delete entries[k];
      untagged.push(k);
    }
  }
}

export async function removeImage(store: Store, arg: string, opts: { force?: boolean } = {}): Promise<RemoveResult> {
  const resolved = await resolveImage(store, arg);
  const result: RemoveResult = { untagged: [], deleted: [] };
  const id = resolved.id;
  const repos = await store.readRepositories();
  // Would the image itself go? Then no container may be using it (unless forced).
  let deletes = true;
  if (resolved.ref) {
    const copy = structuredClone(repos);
    untagIn(copy, resolved.ref.repo, resolved.ref.key, id, []);
    const left = refsOf(copy, id);
    deletes = left.tags.length + left.digests.length === 0;
  } else {
    const left = refsOf(repos, id);
    const repoNames = new Set([...left.tags, ...left.digests].map((k) => k.split(/[@]|:(?=[^:/]*$)/)[0]));
    if (repoNames.size > 1 && !opts.force) {
      throw new Error(`conflict: unable to delete ${id.slice(7, 19)} (must be forced) - image is referenced in multiple repositories`);
    }
  }
  if (deletes && !opts.force) {
    const img = await loadImage(store, id, repos).catch(() => undefined);
    const top = img?.chainIds.at(-1);
    if (top && (await store.mountParents()).includes(top)) {
      throw new Error(`conflict: unable to remove ${arg} (must be forced) - a container is using image ${id.slice(7, 19)}`);
    }
  }
  if (resolved.ref) {
    const { repo, key } = resolved.ref;
    await store.updateRepositories((r) => untagIn(r, repo, key, id, result.untagged));
    if (!deletes) return result;
  } else {
    await store.updateRepositories((r) => {
      for (const entries of Object.values(r)) {
        for (const [k, v] of Object.entries(entries)) {
          if (v === id) {
            delete entries[k];
            result.untagged.push(k);
          }
        }
      }
    });
  }
  const img = await loadImage(store, id).catch(() => undefined);
  if (!img) {
    // an unreadable config: the record goes; its layers are unknown and left to `image prune`
    if (await store.getImageConfig(id)) {
      await store.deleteImageConfig(id);
      result.deleted.push(id);
    }
    return result;
  }
  const used = await referencedChains(store, new Set([id]));
  await store.deleteImageConfig(id);
  result.deleted.push(id);
  // only this image's own layers that nothing else holds (top-down: children first)
  for (let i = img.chainIds.length - 1; i >= 0; i--) {
    const c = img.chainIds[i];
    if (used.has(c)) break;
    if (!(await store.hasLayer(c))) continue;
    await store.deleteLayer(c);
    result.deleted.push(c);
  }
  return result;
}
