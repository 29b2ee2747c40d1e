/**
 * `strata verify [IMAGE]`: rebuild every layer's tar from its diff dir and tar-split and check
 * that its sha256 is the layer's diffID (end-to-end integrity of the store on demand).
 */

import { join } from "node:path";
import { Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { type ChainID, createVerifier, type Digest } from "@strata/core";
import { type Fields, type OutputFormat, renderTemplate } from "../format.js";
import { assembleLayer } from "../layer/assemble.js";
import { listImages, loadImage, resolveImage, type StoredImage } from "../store/images.js";
import type { Store } from "../store/store.js";
import { jsonSafe } from "../terminal.js";

export interface LayerCheck {
  chainId: ChainID;
  diffId: Digest;
  ok: boolean;
  /** Bytes of the rebuilt tar (when it could be rebuilt). */
  bytes?: number;
  error?: string;
}

export interface ImageCheck {
  id: Digest;
  refs: string[];
  layers: LayerCheck[];
  ok: boolean;
}

/** Rebuilds one layer's tar and checks it against its diffID. */
export async function verifyLayer(store: Store, chainId: ChainID): Promise<LayerCheck> {
  const rec = await store.getLayer(chainId);
  if (!rec) return { chainId, diffId: chainId, ok: false, error: "layer is missing from layerdb" };
  const diffDir = join(store.paths.overlayDir(rec.cacheId), "diff");
  const tarSplitPath = join(store.paths.layer(chainId), "tar-split.json.gz");
  const verifier = createVerifier({ digest: rec.diffId });
  const sink = new Writable({
    write(_c, _e, cb) {
      cb();
    },
  });
  try {
    await pipeline(assembleLayer({ diffDir, tarSplitPath }), verifier, sink);
    return { chainId, diffId: rec.diffId, ok: true, bytes: verifier.bytes };
  } catch (e) {
    return { chainId, diffId: rec.diffId, ok: false, bytes: verifier.bytes, error: (e as Error).message };
  }
}

export async function verifyImage(store: Store, img: StoredImage): Promise<ImageCheck> {
  const layers: LayerCheck[] = [];
  for (let i = 0; i < img.chainIds.length; i++) {
    const check = await verifyLayer(store, img.chainIds[i]);
    const expected = img.config.config.rootfs.diff_ids[i];
    if (check.ok && check.diffId !== expected) {
      check.ok = false;
      check.error = `layerdb diff ${check.diffId} differs from the config's ${expected}`;
    }
    layers.push(check);
  }
  return { id: img.id, refs: [...img.repoTags, ...img.repoDigests], layers, ok: layers.every((l) => l.ok) };
}

/** Verifies one image (by reference or ID) or, without an argument, every image. */
export async function verifyStore(store: Store, image?: string): Promise<ImageCheck[]> {
  if (image) {
    const { id } = await resolveImage(store, image);
    const img = await loadImage(store, id);
    if (!img) throw new Error(`No such image: ${image}`);
    return [await verifyImage(store, img)];
  }
  const out: ImageCheck[] = [];
  for (const img of await listImages(store)) out.push(await verifyImage(store, img));
  return out;
}

/** One row per layer for `--format` templates. */
export interface VerifyRow {
  image: ImageCheck;
  layer: LayerCheck;
}

/** `--format` fields of `strata verify` (one row per layer). */
export const VERIFY_FIELDS: Fields<VerifyRow> = {
  ID: { header: "IMAGE ID", get: (r) => r.image.id.slice(7, 19) },
  Ref: { header: "IMAGE", get: (r) => r.image.refs[0] ?? "<none>" },
  DiffID: { header: "DIFF ID", get: (r) => r.layer.diffId },
  ChainID: { header: "CHAIN ID", get: (r) => r.layer.chainId },
  Status: { header: "STATUS", get: (r) => (r.layer.ok ? "OK" : "FAILED") },
  Bytes: { header: "BYTES", get: (r) => (r.layer.bytes === undefined ? "" : String(r.layer.bytes)) },
  Error: { header: "ERROR", get: (r) => r.layer.error ?? "" },
};

/** `strata verify` output: the per-image report (table), the checks as one JSON array, or a template per layer. */
export function formatVerify(checks: ImageCheck[], fmt: OutputFormat): string {
  if (fmt.kind === "json") return `${jsonSafe(checks)}\n`;
  if (fmt.kind === "table") return checks.length ? `${formatChecks(checks)}\n` : "";
  return renderTemplate(
    checks.flatMap((image) => image.layers.map((layer) => ({ image, layer }))),
    fmt,
    VERIFY_FIELDS,
  );
}

function formatChecks(checks: ImageCheck[]): string {
  const lines: string[] = [];
  for (const c of checks) {
    lines.push(`${c.refs[0] ?? c.id} (${c.id.slice(7, 19)}): ${c.ok ? "OK" : "FAILED"}`);
    for (const l of c.layers) {
      lines.push(`  ${l.diffId}  ${l.ok ? `OK (${l.bytes} bytes)` : `FAILED: ${l.error}`}`);
    }
  }
  return lines.join("\n");
}
