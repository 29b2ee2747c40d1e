/**
 * `strata push IMAGE [DEST]`: an image of the --root store to a registry, i.e. `strata copy
 * store:IMAGE docker://DEST` (DEST defaults to IMAGE's name). The store keeps uncompressed
 * layers: each is rebuilt from its tar-split and diff, checked against its diffID and gzipped
 * (reproducibly) unless the registry already has it. Docker schema2 manifest by default, OCI
 * with `--format oci`.
 *
 * Afterwards, as docker push does, the image's RepoDigests name the pushed manifest
 * (`repo@digest` in repositories.json), and the store's distribution metadata
 * (v2metadata-by-diffid) notes which blob holds each layer in the destination repository, so the
 * next push of the same layers finds them with a HEAD (or mounts them) instead of rebuilding them.
 */
import { resolve } from "node:path";
import { type DiffID, type Digest, familiarName, parseManifest, parseReference } from "@strata/core";
import { debug } from "../debug.js";
import { loadImage, resolveImage } from "../store/images.js";
import { Store } from "../store/store.js";
import { registryOf } from "../transports/docker.js";
import type { CopyResult } from "../transports/copy.js";
import { TransportUsageError } from "../transports/types.js";
import { copyCommand } from "./copy.js";

export interface PushOptions {
  root: string;
  format: "docker" | "oci";
  maxConcurrent?: number;
  insecureRegistries?: string[];
  output: "text" | "json" | "quiet";
}

export async function pushCommand(image: string, dest: string | undefined, o: PushOptions): Promise<CopyResult> {
  let target = dest ?? image;
  try {
    const r = parseReference(target);
    if (!dest && r.digest) throw new TransportUsageError(`${image}: name a destination (an image named by digest cannot be pushed to a tag)`);
    // the name as Docker spells it, with the registry's host kept
    target = `${r.domain}/${r.repository}${r.tag ? `:${r.tag}` : ""}${r.digest ? `@${r.digest}` : ""}`;
  } catch (e) {
    if (e instanceof TransportUsageError) throw e;
    throw new TransportUsageError(`invalid destination ${JSON.stringify(target)}: ${(e as Error).message}`);
  }
  const registry = { format: o.format, insecureRegistries: o.insecureRegistries };
  const r = await copyCommand(`store:${image}`, `docker://${target}`, { root: o.root, maxConcurrent: o.maxConcurrent, output: o.output, registry, verb: "push" });
  try {
    await recordPushedLayers(o.root, image, target, r.digest, o.insecureRegistries);
  } catch (e) {
    // the push is complete; the metadata only saves work next time
    debug(`push: distribution metadata not recorded: ${(e as Error).message}`);
  }
  return r;
}

/**
 * Records the push in the store as docker push does: the image's RepoDigests get
 * `<repo>@<digest>` (repositories.json: `"<repo>@<digest>": "<image id>"`, the entry pull writes),
 * and each layer of `image` notes the blob the pushed manifest names in `target`'s repository.
 */
async function recordPushedLayers(root: string, image: string, target: string, digest: Digest, insecureRegistries: string[] | undefined): Promise<void> {
  const { ref, client } = await registryOf(target, { insecureRegistries });
  const store = await Store.openExisting(resolve(root));
  const id = (await resolveImage(store, image)).id;
  const repo = familiarName(ref);
  await store.withLock(() =>
    store.updateRepositories((repos) => {
      repos[repo] ??= {};
      repos[repo][`${repo}@${digest}`] = id;
    }),
  );
  const m = await client.getManifest(ref.repository, digest);
  const parsed = parseManifest(m.raw, m.contentType);
  if (parsed.kind !== "manifest") return;
  const img = await loadImage(store, id);
  const diffIds = img?.config.config.rootfs.diff_ids ?? [];
  if (diffIds.length !== parsed.layers.length) return;
  await store.withLock(async () => {
    for (let i = 0; i < diffIds.length; i++) await store.addV2Metadata(diffIds[i] as DiffID, parsed.layers[i].digest, repo);
  });
}
