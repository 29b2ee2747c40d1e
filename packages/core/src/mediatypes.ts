/** Media types of the OCI image spec and Docker image manifest v2 schema 2. */
export const MediaTypes = {
  OciManifest: "application/vnd.oci.image.manifest.v1+json",
  OciIndex: "application/vnd.oci.image.index.v1+json",
  OciConfig: "application/vnd.oci.image.config.v1+json",
  OciLayer: "application/vnd.oci.image.layer.v1.tar",
  OciLayerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  OciLayerZstd: "application/vnd.oci.image.layer.v1.tar+zstd",
  OciLayerNondistributable: "application/vnd.oci.image.layer.nondistributable.v1.tar",
  OciLayerNondistributableGzip: "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
  OciLayerNondistributableZstd: "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
  OciEmpty: "application/vnd.oci.empty.v1+json",
  DockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  DockerManifestList: "application/vnd.docker.distribution.manifest.list.v2+json",
  DockerConfig: "application/vnd.docker.container.image.v1+json",
  DockerLayerGzip: "application/vnd.docker.image.rootfs.diff.tar.gzip",
  DockerLayerForeignGzip: "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
  DockerPluginConfig: "application/vnd.docker.plugin.v1+json",
} as const;

export type LayerCompression = "gzip" | "zstd" | "none";

/** The compression of a layer media type, or undefined when it is not a known layer type. */
export function layerCompression(mt: string): LayerCompression | undefined {
  switch (mt) {
    case MediaTypes.OciLayerGzip:
    case MediaTypes.OciLayerNondistributableGzip:
    case MediaTypes.DockerLayerGzip:
    case MediaTypes.DockerLayerForeignGzip:
      return "gzip";
    case MediaTypes.OciLayerZstd:
    case MediaTypes.OciLayerNondistributableZstd:
      return "zstd";
    case MediaTypes.OciLayer:
    case MediaTypes.OciLayerNondistributable:
      return "none";
    default:
      return undefined;
  }
}

/** Strips parameters (`; charset=...`) and lowercases a Content-Type value. */
export function baseMediaType(contentType: string | undefined): string {
  return (contentType ?? "").split(";")[0].trim().toLowerCase();
}
