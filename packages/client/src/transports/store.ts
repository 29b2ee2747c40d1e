/**
 * `store:REF`: an image of the --root store (Docker's overlay2 layout) as a source. The config
 * comes from imagedb; each layer is its original tar rebuilt from tar-split and the diff dir
 * (as `strata save` and `verify` do), checked against its diffID while it streams. The store
 * keeps no manifest, so the image is presented with uncompressed layers (digest = diffID).
 */
import { join } from "node:path";
import { Readable } from "node:stream";
import { type DiffID, type Digest, MediaTypes, parseReference, tryParseDigest } from "@strata/core";
import { tarSplitTarSize } from "../commands/save.js";
import { assembleLayer } from "../layer/assemble.js";
import { ImageNotFoundError, loadImage, resolveImage } from "../store/images.js";
import type { LayerRecord, Store } from "../store/store.js";
import { verifying } from "./files.js";
import { type BlobRef, type ImageSource, type SourceLayer, type SourceTarget, TransportError } from "./types.js";

/** The blobs the store's distribution metadata (v2metadata-by-diffid) names for a layer, newest first, as "domain/path" repositories. */
async function knownBlobs(store: Store, diffId: DiffID): Promise<{ digest: Digest; repository: string }[]> {
  const out: { digest: Digest; repository: string }[] = [];
  for (const m of (await store.getV2Metadata(diffId)).reverse()) {
    const digest = tryParseDigest(m.Digest);
    if (!digest || typeof m.SourceRepository !== "string") continue;
    try {
      const r = parseReference(m.SourceRepository);
      out.push({ digest, repository: `${r.domain}/${r.repository}` });
    } catch {
      // an entry Docker or an older strata wrote that names no repository: unusable
    }
  }
  return out;
}

class StoreSource implements ImageSource {
  private config: { raw: Buffer; digest: Digest } | undefined;
  private readonly layers = new Map<string, LayerRecord>();

  constructor(
    readonly name: string,
    private readonly store: Store,
    private readonly ref: string,
  ) {}

  async resolve(): Promise<SourceTarget> {
    let id: Digest;
    try {
      id = (await resolveImage(this.store, this.ref)).id;
    } catch (e) {
      if (e instanceof ImageNotFoundError) throw new TransportError(`${this.name}: ${e.message}`);
      throw e;
    }
    const img = await loadImage(this.store, id);
    if (!img) throw new TransportError(`${this.name}: No such image: ${this.ref}`);
    this.config = { raw: img.config.raw, digest: id };
    const layers: SourceLayer[] = [];
    for (const chainId of img.chainIds) {
      const rec = await this.store.getLayer(chainId);
      if (!rec) throw new TransportError(`${this.name}: layer ${chainId} is missing from the store`);
      const size = await tarSplitTarSize(join(this.store.paths.layer(chainId), "tar-split.json.gz"));
      this.layers.set(rec.diffId, rec);
      layers.push({ blob: { digest: rec.diffId, size, mediaType: MediaTypes.OciLayer }, compression: "none", diffId: rec.diffId, knownBlobs: await knownBlobs(this.store, rec.diffId) });
    }
    const c = img.config.config;
    return {
      kind: "image",
      image: {
        config: { digest: id, size: img.config.raw.length, mediaType: MediaTypes.DockerConfig },
        configRaw: img.config.raw,
        layers,
        platform: { os: c.os, architecture: c.architecture, ...(c.variant ? { variant: c.variant } : {}) },
      },
    };
  }

  async child(): Promise<SourceTarget> {
    throw new TransportError(`${this.name}: the store holds no index`);
  }

  async blob(ref: BlobRef): Promise<Readable> {
    if (this.config && ref.digest === this.config.digest) return Readable.from([this.config.raw]);
    const rec = this.layers.get(ref.digest);
    if (!rec) throw new TransportError(`${this.name}: no layer ${ref.digest}`);
    const diffDir = join(this.store.paths.overlayDir(rec.cacheId), "diff");
    const tarSplitPath = join(this.store.paths.layer(rec.chainId), "tar-split.json.gz");
    const check = verifying({ digest: rec.diffId, size: ref.size }, (e) => new TransportError(`${this.name}: layer ${rec.diffId} rebuilt from the store: ${e.message}`));
    const tar = assembleLayer({ diffDir, tarSplitPath });
    tar.on("error", (e) => check.destroy(new TransportError(`${this.name}: layer ${rec.diffId}: ${e.message}`)));
    return tar.pipe(check);
  }

  async close(): Promise<void> {}
}

export function storeSource(name: string, store: Store, ref: string): ImageSource {
  return new StoreSource(name, store, ref);
}
