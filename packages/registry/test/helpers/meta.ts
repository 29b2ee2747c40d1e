/**
 * Images with real configs (platform, history, entrypoint, env, labels) for the metadata
 * API tests, and the sizes and platforms a reader of those manifests computes from them.
 */
import { randomUUID } from "node:crypto";
import type { Registry } from "../../src/app.js";
import type { ManifestFacts } from "../../src/services/metadata.js";
import type { Harness } from "./http.js";
import { type Descriptor, descriptorOf, json, MediaTypes, ociIndexBytes, ociManifestBytes, pushBlob, pushManifest, randomBlob, sha256 } from "./oci.js";

export interface TestImage {
  config: Buffer;
  configJson: Record<string, unknown>;
  layers: Buffer[];
  manifest: Buffer;
  digest: string;
  desc: Descriptor;
  /** config + layers, distinct */
  blobs: Map<string, number>;
}

export interface ImageSpec {
  os?: string;
  architecture?: string;
  variant?: string;
  layerSizes?: number[];
  /** layers reused from another image (same bytes) */
  shared?: Buffer[];
}

/** Builds and pushes an image whose config has a history line per layer plus one empty-layer line. */
export async function pushTestImage(h: Harness, repo: string, reference: string | undefined, spec: ImageSpec = {}): Promise<TestImage> {
  const layers = [...(spec.shared ?? []), ...(spec.layerSizes ?? [1000, 3000]).map((n) => randomBlob(n))];
  const history = [
    { created: "2024-01-02T03:04:05Z", created_by: "/bin/sh -c #(nop) ENV PATH=/usr/bin", empty_layer: true },
    ...layers.map((l, i) => ({ created: `2024-01-02T03:04:0${i + 6}Z`, created_by: `RUN make layer-${i} # ${l.length} bytes` })),
  ];
  const configJson: Record<string, unknown> = {
    architecture: spec.architecture ?? "amd64",
    os: spec.os ?? "linux",
    ...(spec.variant ? { variant: spec.variant } : {}),
    created: "2024-01-02T03:04:10Z",
    author: "Strata Tests <tests@strata.invalid>",
    config: {
      Entrypoint: ["/usr/bin/app", "--serve"],
      Cmd: ["--port", "8080"],
      Env: ["PATH=/usr/bin", `NONCE=${randomUUID()}`],
      WorkingDir: "/srv",
      User: "1000:1000",
      ExposedPorts: { "8080/tcp": {} },
      Labels: { "org.opencontainers.image.title": "test app", "com.example.team": "registry" },
    },
    rootfs: { type: "layers", diff_ids: layers.map((l) => sha256(l)) },
    history,
  };
  const config = json(configJson);
  const configDesc = descriptorOf(config, MediaTypes.OciConfig);
  await pushBlob(h, repo, config);
  const layerDescs: Descriptor[] = [];
  for (const l of layers) {
    await pushBlob(h, repo, l);
    layerDescs.push(descriptorOf(l, MediaTypes.OciLayerGzip));
  }
  const manifest = ociManifestBytes(configDesc, layerDescs);
  const digest = sha256(manifest);
  await pushManifest(h, repo, reference ?? digest, manifest, MediaTypes.OciManifest);
  const blobs = new Map<string, number>([[configDesc.digest, config.length]]);
  for (const d of layerDescs) blobs.set(d.digest, d.size);
  return { config, configJson, layers, manifest, digest, desc: { mediaType: MediaTypes.OciManifest, digest, size: manifest.length }, blobs };
}

export interface TestIndex {
  images: TestImage[];
  manifest: Buffer;
  digest: string;
  attestation: TestImage;
}

/** Pushes two platform images sharing a layer, an attestation manifest, and an index over them. */
export async function pushTestIndex(h: Harness, repo: string, tag: string): Promise<TestIndex> {
  const common = randomBlob(2048);
  const amd = await pushTestImage(h, repo, undefined, { architecture: "amd64", shared: [common], layerSizes: [700] });
  const arm = await pushTestImage(h, repo, undefined, { architecture: "arm64", variant: "v8", shared: [common], layerSizes: [900, 100] });
  const att = await pushTestImage(h, repo, undefined, { architecture: "unknown", os: "unknown", layerSizes: [50] });
  const manifest = ociIndexBytes([
    { ...amd.desc, platform: { architecture: "amd64", os: "linux" } },
    { ...arm.desc, platform: { architecture: "arm64", os: "linux", variant: "v8" } as Descriptor["platform"] },
    { ...att.desc, platform: { architecture: "unknown", os: "unknown" }, annotations: { "vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": amd.digest } },
  ]);
  await pushManifest(h, repo, tag, manifest, MediaTypes.OciIndex);
  return { images: [amd, arm], attestation: att, manifest, digest: sha256(manifest) };
}

export function sum(m: Map<string, number>): number {
  let t = 0;
  for (const v of m.values()) t += v;
  return t;
}

export function union(...maps: Map<string, number>[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of maps) for (const [k, v] of m) out.set(k, v);
  return out;
}

/** Pushes an artifact manifest (empty config, one layer) whose subject is `subject`. */
export async function pushReferrer(h: Harness, repo: string, subject: Descriptor, artifactType: string): Promise<{ digest: string; blobs: Map<string, number> }> {
  const empty = Buffer.from("{}");
  await pushBlob(h, repo, empty);
  const payload = randomBlob(300);
  await pushBlob(h, repo, payload);
  const manifest = ociManifestBytes(descriptorOf(empty, MediaTypes.OciEmpty), [descriptorOf(payload, "application/octet-stream")], { artifactType, subject });
  const digest = sha256(manifest);
  await pushManifest(h, repo, digest, manifest, MediaTypes.OciManifest);
  return { digest, blobs: new Map([[sha256(empty), 2], [sha256(payload), 300]]) };
}

export const scaleName = (i: number) => `scale/r${String(i).padStart(5, "0")}`;
/** distinct for i < 10,000, not in name order */
export const scaleSize = (i: number) => ((i * 7919) % 10007) * 1000 + i;
export const scalePushedAt = (i: number, n = 10_000) => 1_700_000_000_000 + ((i * 104_729) % n) * 1000;

/** Records N repositories, each with one tagged manifest, straight into the registry's store. */
export async function fillRepositories(reg: Registry, n: number): Promise<void> {
  const store = reg.services.metadata.store;
  for (let start = 0; start < n; start += 500) {
    await Promise.all(
      Array.from({ length: Math.min(500, n - start) }, (_, k) => {
        const i = start + k;
        const facts: ManifestFacts = {
          digest: `sha256:${i.toString(16).padStart(64, "0")}`,
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          manifestSize: 400,
          platforms: ["linux/amd64"],
          blobs: [{ digest: `sha256:${(i + 1_000_000).toString(16).padStart(64, "0")}`, size: scaleSize(i) }],
          size: scaleSize(i),
          pushedAt: scalePushedAt(i, n),
        };
        return store.putManifest(scaleName(i), facts, "latest");
      }),
    );
  }
  await store.markBuilt();
}

