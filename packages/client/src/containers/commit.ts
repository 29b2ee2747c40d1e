/**
 * `strata commit NAME [REPO[:TAG]]`: "docker commit adds one layer". The rw upper dir becomes a
 * layer tar (tarwriter.ts), which goes through the layer engine exactly like a pulled layer
 * (unpackLayer: diff dir + tar-split + diffID) into a new overlay2 dir and layerdb entry whose
 * parent is the image's top chainID. The new image config is the parent config with the diffID
 * appended to rootfs.diff_ids, `created` set, and one history entry
 * {created, author?, created_by: "strata commit", comment?}. When the upper dir has no changes the
 * tar is the empty layer (1024 zero bytes): like Docker, no layer is added and the history entry
 * gets empty_layer: true. imagedb/metadata/sha256/<id>/{parent,lastUpdated} are written (0600,
 * dir 0700) and REPO:TAG is set in repositories.json.
 */
import { join } from "node:path";
import { type ChainID, chainIdOf, type DiffID, type Digest, digestHex, parseReference } from "@strata/core";
import { unpackLayer } from "../layer/unpack.js";
import { mkdirMode, writeFileAtomic } from "../store/fsutil.js";
import { referenceKeys } from "../store/images.js";
import type { LayerRecord, Store } from "../store/store.js";
import { containerLayers, resolveContainer } from "./store.js";
import { upperDirTar } from "./tarwriter.js";

/** sha256 of 1024 zero bytes: the tar of an empty directory. */
export const EMPTY_LAYER_DIFF_ID = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef";

export interface CommitOptions {
  message?: string;
  author?: string;
  /** Clock for `created` (tests). */
  now?: Date;
}

export interface CommitResult {
  imageId: Digest;
  diffId: DiffID;
  /** The new layer; undefined for an empty commit. */
  layer?: LayerRecord;
  chainId?: ChainID;
  tag?: string;
}

/** Go's time.RFC3339Nano in UTC (fraction without trailing zeros). */
export function rfc3339Nano(d: Date): string {
  const iso = d.toISOString();
  return iso.replace(/\.(\d+)Z$/, (_m, f: string) => {
    const t = f.replace(/0+$/, "");
    return t ? `.${t}Z` : "Z";
  });
}

export async function commitContainer(store: Store, arg: string, repoTag?: string, opts: CommitOptions = {}): Promise<CommitResult> {
  const c = await resolveContainer(store, arg);
  if (!c.image) throw new Error(`container ${c.id} has no recorded image (strata/containers.json)`);
  const parentRaw = await store.getImageConfig(c.image);
  if (!parentRaw) throw new Error(`image ${c.image} of container ${c.id} is no longer in the store`);
  let tagKeys: { repo: string; key: string } | undefined;
  if (repoTag) {
    const ref = parseReference(repoTag);
    if (ref.digest) throw new Error(`refusing to create a tag with a digest reference: ${repoTag}`);
    tagKeys = referenceKeys(ref);
  }
  const { upperDir } = await containerLayers(store, c);

  const pending = await store.prepareLayer();
  let unpacked: Awaited<ReturnType<typeof unpackLayer>>;
  try {
    unpacked = await unpackLayer(upperDirTar(upperDir), { diffDir: pending.diffDir, tarSplitPath: pending.tarSplitPath });
  } catch (e) {
    await store.discardLayer(pending);
    throw e;
  }
  const empty = unpacked.diffId === EMPTY_LAYER_DIFF_ID;
  const created = rfc3339Nano(opts.now ?? new Date());

  return store.withLock(async () => {
    let layer: LayerRecord | undefined;
    let chainId: ChainID | undefined;
    if (empty) {
      await store.discardLayer(pending);
    } else {
      chainId = chainIdOf(c.parent, unpacked.diffId);
      layer = await store.commitLayer(pending, { chainId, diffId: unpacked.diffId, parent: c.parent, size: unpacked.size });
    }
    const config = JSON.parse(parentRaw.toString("utf8")) as Record<string, unknown> & {
      rootfs: { type: string; diff_ids: string[] };
      history?: Array<Record<string, unknown>>;
    };
    config.created = created;
    if (opts.author) config.author = opts.author;
    if (!empty) config.rootfs.diff_ids = [...config.rootfs.diff_ids, unpacked.diffId];
    const h: Record<string, unknown> = { created };
    if (opts.author) h.author = opts.author;
    h.created_by = "strata commit";
    if (opts.message) h.comment = opts.message;
    if (empty) h.empty_layer = true;
    config.history = [...(config.history ?? []), h];
    const imageId = await store.putImageConfig(Buffer.from(JSON.stringify(config)));

    const meta = join(store.paths.imagedbMetadata, digestHex(imageId));
    await mkdirMode(store.paths.imagedbMetadata, 0o700);
    await mkdirMode(meta, 0o700);
    await writeFileAtomic(join(meta, "parent"), c.image as string, 0o600);
    await writeFileAtomic(join(meta, "lastUpdated"), rfc3339Nano(new Date()), 0o600);
    if (tagKeys) {
      const { repo, key } = tagKeys;
      await store.updateRepositories((r) => {
        r[repo] = r[repo] ?? {};
        r[repo][key] = imageId;
      });
    }
    return { imageId, diffId: unpacked.diffId, layer, chainId, tag: tagKeys?.key };
  });
}
