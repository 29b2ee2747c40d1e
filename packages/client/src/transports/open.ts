/**
 * Opens the source or destination a transport name designates. Each transport's module is
 * imported when it is named (a short-lived CLI loads only what it uses: an OCI layout to a
 * registry skips tar-stream, zstd and the store's layer code, about 20 files).
 */
import { resolve } from "node:path";
import { parseTransportName } from "./names.js";
import { type ImageDestination, type ImageSource, TransportError } from "./types.js";
import type { RegistryContext } from "./docker.js";

export async function openSource(spec: string, ctx: { root: string; registry?: RegistryContext }): Promise<ImageSource> {
  const t = parseTransportName(spec);
  switch (t.kind) {
    case "oci":
      return (await import("./oci.js")).ociLayoutSource(spec, resolve(t.path), t.tag);
    case "oci-archive":
      return (await import("./oci.js")).ociArchiveSource(spec, resolve(t.path), t.tag);
    case "docker-archive":
      return (await import("./docker-archive.js")).dockerArchiveSource(spec, resolve(t.path), t.ref);
    case "store": {
      const [{ Store }, { storeSource }] = await Promise.all([import("../store/store.js"), import("./store.js")]);
      return storeSource(spec, await Store.openExisting(resolve(ctx.root)), t.ref);
    }
    case "docker":
      return (await import("./docker.js")).dockerSource(spec, t.ref, ctx.registry);
  }
}

export async function openDestination(spec: string, registry?: RegistryContext): Promise<ImageDestination> {
  const t = parseTransportName(spec);
  switch (t.kind) {
    case "oci":
      return (await import("./oci.js")).OciLayoutDestination.create(spec, resolve(t.path), t.tag);
    case "oci-archive":
      return (await import("./oci.js")).OciArchiveDestination.create(spec, resolve(t.path), t.tag);
    case "docker-archive":
      return (await import("./docker-archive.js")).DockerArchiveDestination.create(spec, resolve(t.path), t.ref);
    case "store":
      throw new TransportError(`${spec}: the store is a source only (strata pull writes into it)`);
    case "docker":
      return (await import("./docker.js")).DockerDestination.create(spec, t.ref, registry);
  }
}
