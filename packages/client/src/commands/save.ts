/**
 * `strata save IMAGE... -o FILE`: a `docker save` archive (the Docker 1.x "docker-archive" format):
 *
 *   manifest.json        [{"Config":"<id>.json","RepoTags":[...]|null,"Layers":["<dir>/layer.tar",...]}]
 *   repositories         {"<repo>":{"<tag>":"<top layer dir>"}}   (tagged references only)
 *   <id>.json            the image config, verbatim
 *   <dir>/VERSION        "1.0"
 *   <dir>/json           {"id","parent"?,"created"}
 *   <dir>/layer.tar      the layer tar rebuilt from diff + tar-split, checked against its diffID
 *
 * A layer dir name is the hex of sha256("<parent dir> <chainID>") so equal chains share a dir.
 * The archive is written to a temp file beside FILE and renamed when complete.
 */

import { createReadStream } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import { createVerifier, type Digest, digestHex, digestOf } from "@strata/core";
import tar from "tar-stream";
import { assembleLayer } from "../layer/assemble.js";
import { createOutputFile } from "../store/fsutil.js";
import { loadImage, resolveImage, type StoredImage } from "../store/images.js";
import type { Store } from "../store/store.js";

/** Size in bytes of the tar a tar-split file rebuilds (segments plus file sizes). */
export async function tarSplitTarSize(path: string): Promise<number> {
  let total = 0;
  const rl = createInterface({ input: createReadStream(path).pipe(createGunzip()), crlfDelay: Number.POSITIVE_INFINITY });
  for await (const line of rl) {
    if (!line) continue;
    const e = JSON.parse(line) as { type: number; size?: number; payload?: string | null };
    if (e.type === 2) total += e.payload ? Buffer.from(e.payload, "base64").length : 0;
    else if (e.type === 1) total += e.size ?? 0;
  }
  return total;
}

function addEntry(pack: tar.Pack, name: string, data: string | Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    pack.entry({ name, mtime: new Date(0), mode: 0o644 }, data, (err) => (err ? reject(err) : resolve()));
  });
}

export async function saveImages(store: Store, images: string[], output: string): Promise<{ images: Digest[] }> {
  const selected: { img: StoredImage; tag?: string }[] = [];
  for (const arg of images) {
    const r = await resolveImage(store, arg);
    const img = await loadImage(store, r.id);
    if (!img) throw new Error(`No such image: ${arg}`);
    selected.push({ img, tag: r.ref && !r.ref.key.includes("@") ? r.ref.key : undefined });
  }
  const out = await createOutputFile(output);
  const pack = tar.pack();
  const writing = pipeline(pack, out.stream);
  writing.catch(() => {}); // awaited below; a failure also fails the entry being added
  try {
    const manifest: { Config: string; RepoTags: string[] | null; Layers: string[] }[] = [];
    const repositories: Record<string, Record<string, string>> = {};
    const written = new Set<string>();
    for (const { img, tag } of selected) {
      const configName = `${digestHex(img.id)}.json`;
      if (!written.has(configName)) {
        await addEntry(pack, configName, (await store.getImageConfig(img.id))!);
        written.add(configName);
      }
      const layerPaths: string[] = [];
      let parentDir: string | undefined;
      for (const chainId of img.chainIds) {
        const dir = digestHex(digestOf(`${parentDir ?? ""} ${chainId}`));
        if (!written.has(dir)) {
          const rec = await store.getLayer(chainId);
          if (!rec) throw new Error(`layer ${chainId} of image ${img.id} is missing from the store`);
          await addEntry(pack, `${dir}/VERSION`, "1.0");
          const json: Record<string, string> = { id: dir };
          if (parentDir) json.parent = parentDir;
          json.created = img.config.config.created ?? "1970-01-01T00:00:00Z";
          await addEntry(pack, `${dir}/json`, JSON.stringify(json));
          const tarSplitPath = join(store.paths.layer(chainId), "tar-split.json.gz");
          const size = await tarSplitTarSize(tarSplitPath);
          const diffDir = join(store.paths.overlayDir(rec.cacheId), "diff");
          await new Promise<void>((resolve, reject) => {
            const entry = pack.entry({ name: `${dir}/layer.tar`, size, mtime: new Date(0), mode: 0o644 }, (err) => (err ? reject(err) : resolve()));
            pipeline(assembleLayer({ diffDir, tarSplitPath }), createVerifier({ digest: rec.diffId, size }), entry).catch((e) => {
              reject(new Error(`layer ${rec.diffId}: ${(e as Error).message}`));
            });
          });
          written.add(dir);
        }
        layerPaths.push(`${dir}/layer.tar`);
        parentDir = dir;
      }
      const existing = manifest.find((m) => m.Config === configName);
      if (existing) {
        if (tag) existing.RepoTags = [...(existing.RepoTags ?? []), tag];
      } else {
        manifest.push({ Config: configName, RepoTags: tag ? [tag] : null, Layers: layerPaths });
      }
      if (tag && parentDir) {
        const colon = tag.lastIndexOf(":");
        const repo = tag.slice(0, colon);
        repositories[repo] ??= {};
        repositories[repo][tag.slice(colon + 1)] = parentDir;
      }
    }
    await addEntry(pack, "manifest.json", JSON.stringify(manifest));
    if (Object.keys(repositories).length > 0) await addEntry(pack, "repositories", JSON.stringify(repositories));
    pack.finalize();
    await writing;
    await out.commit();
  } catch (e) {
    pack.destroy(e as Error);
    await writing.catch(() => {});
    await out.discard();
    throw e;
  }
  return { images: selected.map((s) => s.img.id) };
}
