/** `strata inspect IMAGE`: the image config and, per layer, blob digest, diffID, chainID, cache-id and size. */
import type { Digest } from "@strata/core";
import { loadImage, resolveImage } from "../store/images.js";
import type { Store } from "../store/store.js";

export interface InspectLayer {
  BlobDigest: string | null;
  DiffID: Digest;
  ChainID: Digest;
  CacheID: string | null;
  Size: number | null;
}

export interface InspectResult {
  Id: Digest;
  RepoTags: string[];
  RepoDigests: string[];
  Size: number;
  Config: unknown;
  Layers: InspectLayer[];
}

export async function inspectImage(store: Store, arg: string): Promise<InspectResult> {
  const { id } = await resolveImage(store, arg);
  const img = await loadImage(store, id);
  if (!img) throw new Error(`No such image: ${arg}`);
  const layers: InspectLayer[] = [];
  let size = 0;
  const repos = new Set([...img.repoTags, ...img.repoDigests].map((r) => r.split(/@|:(?=[^:/]*$)/)[0]));
  for (let i = 0; i < img.chainIds.length; i++) {
    const rec = await store.getLayer(img.chainIds[i]);
    const diffId = img.config.config.rootfs.diff_ids[i];
    const meta = await store.getV2Metadata(diffId);
    const blob = meta.find((m) => repos.has(m.SourceRepository)) ?? meta[meta.length - 1];
    size += rec?.size ?? 0;
    layers.push({ BlobDigest: blob?.Digest ?? null, DiffID: diffId, ChainID: img.chainIds[i], CacheID: rec?.cacheId ?? null, Size: rec?.size ?? null });
  }
  return {
    Id: img.id,
    RepoTags: img.repoTags,
    RepoDigests: img.repoDigests,
    Size: size,
    Config: JSON.parse(img.config.raw.toString("utf8")),
    Layers: layers,
  };
}
