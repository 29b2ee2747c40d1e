/**
 * Adds an OCI 1.1 artifact (a "signature": empty config, one small layer, `subject` = an image of
 * the layout) to an OCI layout, tagged "sig", and the referrers fallback index of the subject
 * (tag `sha256-<hex>`, as a registry without the referrers API keeps it), tagged so too.
 */
import { createHash } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";

const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
export const SIG_TYPE = "application/vnd.example.signature.v1";

export async function addSignature(layout: string, subject: { digest: string; size: number; mediaType?: string }): Promise<{ digest: string; size: number; fallbackTag: string }> {
  const put = async (b: Buffer) => {
    const hex = createHash("sha256").update(b).digest("hex");
    await writeFile(join(layout, "blobs", "sha256", hex), b);
    return { digest: `sha256:${hex}`, size: b.length };
  };
  const empty = await put(Buffer.from("{}"));
  const sig = await put(Buffer.from(`signed ${subject.digest}\n`));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType: SIG_TYPE,
      config: { mediaType: "application/vnd.oci.empty.v1+json", ...empty },
      layers: [{ mediaType: SIG_TYPE, ...sig }],
      subject: { mediaType: subject.mediaType ?? OCI_MANIFEST, digest: subject.digest, size: subject.size },
    }),
  );
  const m = await put(manifest);
  const fallbackTag = `sha256-${subject.digest.slice(7)}`;
  const fallback = await put(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_MANIFEST, ...m, artifactType: SIG_TYPE }] })));
  const idx = JSON.parse(await readFile(join(layout, "index.json"), "utf8")) as { manifests: unknown[] };
  idx.manifests.push({ mediaType: OCI_MANIFEST, ...m, annotations: { "org.opencontainers.image.ref.name": "sig" } });
  idx.manifests.push({ mediaType: OCI_INDEX, ...fallback, annotations: { "org.opencontainers.image.ref.name": fallbackTag } });
  await writeFile(join(layout, "index.json"), JSON.stringify(idx));
  return { ...m, fallbackTag };
}
