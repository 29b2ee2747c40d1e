/**
 * Builds OCI image layouts on disk for tests: layers are real tar streams (tar-stream) with
 * the entries a test asks for (files, dirs, symlinks, hardlinks, whiteouts), gzipped.
 */
import { createHash } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import tar from "tar-stream";

type Headers = Parameters<ReturnType<typeof tar.pack>["entry"]>[0];

export type Entry =
  | { type: "file"; path: string; content: string | Buffer; mode?: number; uid?: number; gid?: number }
  | { type: "dir"; path: string; mode?: number }
  | { type: "symlink"; path: string; target: string }
  | { type: "link"; path: string; target: string }
  | { type: "whiteout"; path: string }
  | { type: "opaque"; dir: string };

const MTIME = new Date(1_700_000_000_000);

export async function layerTar(entries: Entry[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on("data", (c) => {
    chunks.push(c as Buffer);
  });
  const done = new Promise<void>((r) => pack.on("end", () => r()));
  const add = (h: Headers, body: Buffer = Buffer.alloc(0)) =>
    new Promise<void>((resolve, reject) => {
      pack.entry({ mtime: MTIME, uid: 0, gid: 0, ...h }, body, (err) => (err ? reject(err) : resolve()));
    });
  for (const e of entries) {
    switch (e.type) {
      case "file": {
        const body = Buffer.isBuffer(e.content) ? e.content : Buffer.from(e.content);
        await add({ name: e.path, type: "file", mode: e.mode ?? 0o644, uid: e.uid ?? 0, gid: e.gid ?? 0, size: body.length }, body);
        break;
      }
      case "dir":
        await add({ name: `${e.path}/`, type: "directory", mode: e.mode ?? 0o755 });
        break;
      case "symlink":
        await add({ name: e.path, type: "symlink", linkname: e.target, mode: 0o777 });
        break;
      case "link":
        await add({ name: e.path, type: "link", linkname: e.target, mode: 0o644 });
        break;
      case "whiteout": {
        const i = e.path.lastIndexOf("/");
        await add({ name: `${e.path.slice(0, i + 1)}.wh.${e.path.slice(i + 1)}`, type: "file", mode: 0o644, size: 0 }, Buffer.alloc(0));
        break;
      }
      case "opaque":
        await add({ name: `${e.dir}/.wh..wh..opq`, type: "file", mode: 0o644, size: 0 }, Buffer.alloc(0));
        break;
    }
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

export const sha256 = (b: Buffer | string) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

/**
 * The smallest valid image for pushing by hand: a config with no diff_ids beyond `layers`
 * (uncompressed tar blobs, referenced as such) and an OCI manifest over it.
 */
export function minimalImage(layers: Buffer[] = []): { config: Buffer; manifest: Buffer } {
  const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: layers.map((l) => sha256(l)) } }));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha256(config), size: config.length },
      layers: layers.map((l) => ({ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: sha256(l), size: l.length })),
    }),
  );
  return { config, manifest };
}

export interface BuiltImage {
  dir: string;
  tag: string;
  manifestDigest: string;
  manifest: Buffer;
  config: Buffer;
  layers: { digest: string; diffId: string; size: number }[];
}

/** Writes an OCI layout with one image made of `layers` (each a list of entries). */
export async function buildOciLayout(dir: string, tag: string, layers: Entry[][], opts: { architecture?: string; os?: string } = {}): Promise<BuiltImage> {
  await mkdir(join(dir, "blobs", "sha256"), { recursive: true });
  const put = async (b: Buffer) => {
    const d = sha256(b);
    await writeFile(join(dir, "blobs", "sha256", d.slice(7)), b);
    return d;
  };
  const built: BuiltImage["layers"] = [];
  for (const entries of layers) {
    const t = await layerTar(entries);
    const gz = gzipSync(t);
    built.push({ digest: await put(gz), diffId: sha256(t), size: gz.length });
  }
  const config = Buffer.from(
    JSON.stringify({
      architecture: opts.architecture ?? "amd64",
      os: opts.os ?? "linux",
      created: "2023-11-14T22:13:20Z",
      config: { Env: ["PATH=/usr/bin:/bin"], Cmd: ["/bin/sh"] },
      rootfs: { type: "layers", diff_ids: built.map((l) => l.diffId) },
      history: built.map((_, i) => ({ created: "2023-11-14T22:13:20Z", created_by: `layer ${i + 1}` })),
    }),
  );
  const configDigest = await put(config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: configDigest, size: config.length },
      layers: built.map((l) => ({ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: l.digest, size: l.size })),
    }),
  );
  const manifestDigest = await put(manifest);
  await writeFile(join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  await writeFile(
    join(dir, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          digest: manifestDigest,
          size: manifest.length,
          annotations: { "org.opencontainers.image.ref.name": tag },
        },
      ],
    }),
  );
  return { dir, tag, manifestDigest, manifest, config, layers: built };
}

/** A three-layer image exercising whiteouts and an opaque directory. */
export function whiteoutImageLayers(): Entry[][] {
  return [
    [
      { type: "dir", path: "etc" },
      { type: "file", path: "etc/keep.conf", content: "keep\n" },
      { type: "file", path: "etc/remove-me.conf", content: "bye\n" },
      { type: "dir", path: "opq" },
      { type: "file", path: "opq/hidden.txt", content: "hidden by layer 3\n" },
      { type: "dir", path: "bin" },
      { type: "file", path: "bin/tool", content: "#!/bin/sh\necho tool\n", mode: 0o755 },
      { type: "symlink", path: "bin/alias", target: "tool" },
      { type: "link", path: "bin/tool-hardlink", target: "bin/tool" },
    ],
    [
      { type: "dir", path: "etc" },
      { type: "whiteout", path: "etc/remove-me.conf" },
      { type: "file", path: "etc/added.conf", content: "added\n" },
    ],
    [
      { type: "dir", path: "opq" },
      { type: "opaque", dir: "opq" },
      { type: "file", path: "opq/visible.txt", content: "layer 3\n" },
    ],
  ];
}
