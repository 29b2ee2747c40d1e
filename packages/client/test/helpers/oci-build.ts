/**
 * Builds OCI image layouts for tests: layer tars (made with tar-stream), compressed with gzip,
 * zstd (the zstd CLI) or left uncompressed; image configs; manifests; an optional index.
 * The layout can then be pushed with skopeo (see distribution.ts).
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import tar from "tar-stream";

export interface FileSpec {
  name: string;
  type?: "file" | "directory" | "symlink";
  content?: string | Buffer;
  mode?: number;
  linkname?: string;
}

export type Compression = "gzip" | "zstd" | "none";

export function sha256(data: Buffer | string): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

/** A tar of the given entries (mtime fixed), ending with the end-of-archive blocks. */
export async function makeTar(files: FileSpec[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = new Promise<void>((resolve, reject) => {
    pack.on("data", (c: unknown) => chunks.push(c as Buffer));
    pack.on("end", resolve);
    pack.on("error", reject);
  });
  for (const f of files) {
    const type = f.type ?? "file";
    const header = {
      name: f.name,
      type,
      mode: f.mode ?? (type === "directory" ? 0o755 : 0o644),
      mtime: new Date(1700000000 * 1000),
      uid: 0,
      gid: 0,
      linkname: f.linkname,
    };
    await new Promise<void>((resolve, reject) => {
      if (type === "file") pack.entry(header, f.content ?? "", (e) => (e ? reject(e) : resolve()));
      else {
        pack.entry(header, (e) => (e ? reject(e) : resolve()));
      }
    });
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

export function compress(data: Buffer, c: Compression): Buffer {
  if (c === "gzip") return gzipSync(data);
  if (c === "zstd") return execFileSync("zstd", ["-q", "-c", "-3"], { input: data, maxBuffer: 1 << 30 });
  return data;
}

const LAYER_MT: Record<Compression, string> = {
  gzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  zstd: "application/vnd.oci.image.layer.v1.tar+zstd",
  none: "application/vnd.oci.image.layer.v1.tar",
};

export interface ImageSpec {
  layers: { tar: Buffer; compression?: Compression }[];
  os?: string;
  architecture?: string;
  variant?: string;
  /** Extra config fields (e.g. { config: { Cmd: [...] } }). */
  extra?: Record<string, unknown>;
}

export interface BuiltImage {
  manifestDigest: string;
  manifestSize: number;
  configDigest: string;
  diffIds: string[];
  blobDigests: string[];
  platform: { os: string; architecture: string; variant?: string };
}

export class OciLayoutBuilder {
  constructor(readonly dir: string) {}

  private async blob(data: Buffer | string): Promise<{ digest: string; size: number }> {
    const buf = Buffer.isBuffer(data) ? data : Buffer.from(data);
    const digest = sha256(buf);
    await mkdir(join(this.dir, "blobs", "sha256"), { recursive: true });
    await writeFile(join(this.dir, "blobs", "sha256", digest.slice(7)), buf);
    return { digest, size: buf.length };
  }

  async image(spec: ImageSpec): Promise<BuiltImage> {
    const diffIds: string[] = [];
    const layers: { mediaType: string; digest: string; size: number }[] = [];
    for (const l of spec.layers) {
      const c = l.compression ?? "gzip";
      diffIds.push(sha256(l.tar));
      const b = await this.blob(compress(l.tar, c));
      layers.push({ mediaType: LAYER_MT[c], digest: b.digest, size: b.size });
    }
    const platform = { os: spec.os ?? "linux", architecture: spec.architecture ?? "amd64", ...(spec.variant ? { variant: spec.variant } : {}) };
    const config = {
      created: "2023-11-14T22:13:20Z",
      ...platform,
      config: { Cmd: ["/bin/sh"] },
      rootfs: { type: "layers", diff_ids: diffIds },
      history: diffIds.map(() => ({ created: "2023-11-14T22:13:20Z", created_by: "test" })),
      ...spec.extra,
    };
    const cfg = await this.blob(`${JSON.stringify(config)}\n`);
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: cfg.digest, size: cfg.size },
      layers,
    });
    const m = await this.blob(manifest);
    return { manifestDigest: m.digest, manifestSize: m.size, configDigest: cfg.digest, diffIds, blobDigests: layers.map((l) => l.digest), platform };
  }

  /** Writes index.json naming one image (or an image index of several) as `tag`. */
  async finish(tag: string, images: BuiltImage[], asIndex = false): Promise<{ topDigest: string }> {
    let top: { mediaType: string; digest: string; size: number };
    if (asIndex) {
      const idx = JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.index.v1+json",
        manifests: images.map((i) => ({
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          digest: i.manifestDigest,
          size: i.manifestSize,
          platform: i.platform,
        })),
      });
      const b = await this.blob(idx);
      top = { mediaType: "application/vnd.oci.image.index.v1+json", ...b };
    } else {
      top = { mediaType: "application/vnd.oci.image.manifest.v1+json", digest: images[0].manifestDigest, size: images[0].manifestSize };
    }
    await writeFile(join(this.dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
    await writeFile(
      join(this.dir, "index.json"),
      JSON.stringify({ schemaVersion: 2, manifests: [{ ...top, annotations: { "org.opencontainers.image.ref.name": tag } }] }),
    );
    return { topDigest: top.digest };
  }
}
