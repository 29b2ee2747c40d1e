/** The benchmarks' test image: an OCI image layout of gzip layers, built with tar and gzip. */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";

const sha256 = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

/**
 * Writes an OCI image layout at `dir` (tag v1) with `count` layers; layer i holds the files
 * `files(i)` (name -> content), tarred reproducibly and gzipped with `gzipArgs`. Returns the
 * manifest digest.
 */
export function buildGzipLayout(
  dir: string,
  count: number,
  files: (i: number) => Record<string, Buffer | string>,
  opts: { gzipArgs?: string[]; history?: boolean } = {},
): string {
  const blobs = join(dir, "blobs", "sha256");
  mkdirSync(blobs, { recursive: true });
  const put = (b: Buffer) => {
    const d = sha256(b);
    writeFileSync(join(blobs, d.slice(7)), b);
    return { digest: d, size: b.length };
  };
  const layers = [];
  const diffIds = [];
  for (let i = 0; i < count; i++) {
    const src = join(dirname(dir), `src${i}`);
    mkdirSync(src);
    for (const [name, content] of Object.entries(files(i))) writeFileSync(join(src, name), content);
    const tar = execFileSync("tar", ["-C", src, "--numeric-owner", "--mtime=@1700000000", "-cf", "-", "."], { maxBuffer: 2 ** 31 });
    const gz = execFileSync("gzip", [...(opts.gzipArgs ?? []), "-n", "-c"], { input: tar, maxBuffer: 2 ** 31 });
    rmSync(src, { recursive: true });
    diffIds.push(sha256(tar));
    layers.push({ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", ...put(gz) });
  }
  const history = opts.history ? { history: diffIds.map(() => ({ created_by: "bench" })) } : {};
  const config = put(Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", config: {}, rootfs: { type: "layers", diff_ids: diffIds }, ...history })));
  const manifest = put(
    Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config }, layers })),
  );
  writeFileSync(join(dir, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');
  writeFileSync(
    join(dir, "index.json"),
    JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: "application/vnd.oci.image.manifest.v1+json", ...manifest, annotations: { "org.opencontainers.image.ref.name": "v1" } }] }),
  );
  return manifest.digest;
}
