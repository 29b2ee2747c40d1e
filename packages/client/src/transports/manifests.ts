/** Building SourceImages from manifests, and manifests from images (shared by the transports and the copy). */
import { type Descriptor, type Digest, digestOf, layerCompression, MediaTypes, parseImageConfig, parseManifest, type ParsedImageManifest, type Platform } from "@strata/core";
import type { ManifestBytes, SourceImage, SourceLayer, SourceTarget } from "./types.js";
import { TransportError } from "./types.js";

const IMAGE_CONFIG_TYPES = new Set<string>([MediaTypes.OciConfig, MediaTypes.DockerConfig]);

/** A parsed manifest or index as a SourceTarget; `readConfig` fetches the (verified) config bytes. */
export async function targetFromManifest(m: ManifestBytes, readConfig: (d: Descriptor) => Promise<Buffer>, where: string): Promise<SourceTarget> {
  let parsed;
  try {
    parsed = parseManifest(m.raw, m.mediaType);
  } catch (e) {
    throw new TransportError(`${where}: ${(e as Error).message}`);
  }
  if (parsed.kind === "index") return { kind: "index", index: { ...m, mediaType: parsed.mediaType, parsed } };
  const configRaw = await readConfig(parsed.config);
  let diffIds: readonly Digest[] | undefined;
  let platform: Platform | undefined;
  if (IMAGE_CONFIG_TYPES.has(parsed.config.mediaType)) {
    let cfg;
    try {
      cfg = parseImageConfig(configRaw).config;
    } catch (e) {
      throw new TransportError(`${where}: ${(e as Error).message}`);
    }
    diffIds = cfg.rootfs.diff_ids;
    platform = { os: cfg.os, architecture: cfg.architecture, ...(cfg.variant ? { variant: cfg.variant } : {}) };
    if (diffIds.length !== parsed.layers.length) {
      throw new TransportError(`${where}: the manifest lists ${parsed.layers.length} layers, the config ${diffIds.length} diffIDs`);
    }
  }
  const layers: SourceLayer[] = parsed.layers.map((l, i) => ({
    blob: { digest: l.digest, size: l.size, mediaType: l.mediaType },
    compression: layerCompression(l.mediaType) ?? "none",
    diffId: diffIds?.[i] as SourceLayer["diffId"],
  }));
  const image: SourceImage = {
    manifest: { ...m, mediaType: parsed.mediaType, parsed: parsed as ParsedImageManifest },
    config: { digest: parsed.config.digest, size: parsed.config.size, mediaType: parsed.config.mediaType },
    configRaw,
    layers,
    platform,
  };
  return { kind: "image", image };
}

const DOCKER_LAYER: Record<string, string> = { gzip: MediaTypes.DockerLayerGzip, none: "application/vnd.docker.image.rootfs.diff.tar" };
const OCI_LAYER: Record<string, string> = { gzip: MediaTypes.OciLayerGzip, zstd: MediaTypes.OciLayerZstd, none: MediaTypes.OciLayer };

/** The layer media type for `compression` in a manifest of `format`. */
export function layerMediaType(format: "oci" | "docker", compression: "gzip" | "zstd" | "none"): string {
  const t = format === "docker" ? DOCKER_LAYER[compression] : OCI_LAYER[compression];
  if (!t) throw new TransportError(`a Docker schema2 manifest cannot hold ${compression} layers (use an OCI manifest)`);
  return t;
}

/** A manifest (compact JSON, fields in the order registries and skopeo write them). */
export function buildManifest(format: "oci" | "docker", config: { digest: Digest; size: number }, layers: { digest: Digest; size: number; mediaType: string }[]): ManifestBytes {
  const mediaType = format === "docker" ? MediaTypes.DockerManifest : MediaTypes.OciManifest;
  const body = {
    schemaVersion: 2,
    mediaType,
    config: { mediaType: format === "docker" ? MediaTypes.DockerConfig : MediaTypes.OciConfig, digest: config.digest, size: config.size },
    layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
  };
  const raw = Buffer.from(JSON.stringify(body));
  return { raw, mediaType, digest: digestOf(raw) };
}
