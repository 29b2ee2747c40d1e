/** Test images built as OCI layouts (see oci-build.ts) and pushed to a distribution registry. */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pushOciLayout } from "./distribution.js";
import { type BuiltImage, type Compression, makeTar, OciLayoutBuilder } from "./oci-build.js";

export interface PushedImage extends BuiltImage {
  ref: string;
  topDigest: string;
}

/** Builds one single-platform image from `layers` and pushes it as `<host>/<repo>:<tag>`. */
export async function pushImage(
  host: string,
  repo: string,
  tag: string,
  layers: { tar: Buffer; compression?: Compression }[],
  platform: { os?: string; architecture?: string; variant?: string } = {},
  extra?: Record<string, unknown>,
): Promise<PushedImage> {
  const dir = await mkdtemp(join(tmpdir(), "strata-build-"));
  try {
    const b = new OciLayoutBuilder(dir);
    const img = await b.image({ layers, ...platform, extra });
    const { topDigest } = await b.finish(tag, [img]);
    await pushOciLayout(dir, tag, `${host}/${repo}:${tag}`);
    return { ...img, ref: `${host}/${repo}:${tag}`, topDigest };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Builds an index of several single-platform images and pushes it (skopeo --all). */
export async function pushIndex(
  host: string,
  repo: string,
  tag: string,
  images: { layers: { tar: Buffer; compression?: Compression }[]; os?: string; architecture?: string; variant?: string }[],
): Promise<{ ref: string; topDigest: string; images: BuiltImage[] }> {
  const dir = await mkdtemp(join(tmpdir(), "strata-build-"));
  try {
    const b = new OciLayoutBuilder(dir);
    const built: BuiltImage[] = [];
    for (const spec of images) built.push(await b.image(spec));
    const { topDigest } = await b.finish(tag, built, true);
    await pushOciLayout(dir, tag, `${host}/${repo}:${tag}`, { all: true });
    return { ref: `${host}/${repo}:${tag}`, topDigest, images: built };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** A small layer with a few files whose content depends on `seed`. */
export function smallLayer(seed: string): Promise<Buffer> {
  return makeTar([
    { name: `${seed}/`, type: "directory" },
    { name: `${seed}/hello.txt`, content: `hello from ${seed}\n` },
    { name: `${seed}/bin.dat`, content: randomBytes(3000) },
    { name: `${seed}/link`, type: "symlink", linkname: "hello.txt" },
  ]);
}

/** A layer with one incompressible file of `bytes`. */
export function bigLayer(seed: string, bytes: number): Promise<Buffer> {
  return makeTar([{ name: `${seed}.bin`, content: randomBytes(bytes) }]);
}
