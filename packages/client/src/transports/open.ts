/** Opens the source or destination a transport name designates. */
import { resolve } from "node:path";
import { dockerArchiveSource, DockerArchiveDestination } from "./docker-archive.js";
import { parseTransportName } from "./names.js";
import { OciArchiveDestination, OciLayoutDestination, ociArchiveSource, ociLayoutSource } from "./oci.js";
import { storeSource } from "./store.js";
import { type ImageDestination, type ImageSource, TransportError } from "./types.js";
// docker:// (registries): transports/docker.ts
import type { RegistryContext } from "./docker.js";

export async function openSource(spec: string, ctx: { root: string; registry?: RegistryContext }): Promise<ImageSource> {
  const t = parseTransportName(spec);
  switch (t.kind) {
    case "oci":
      return ociLayoutSource(spec, resolve(t.path), t.tag);
    case "oci-archive":
      return ociArchiveSource(spec, resolve(t.path), t.tag);
    case "docker-archive":
      return dockerArchiveSource(spec, resolve(t.path), t.ref);
    case "store": {
      const { Store } = await import("../store/store.js");
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
      return OciLayoutDestination.create(spec, resolve(t.path), t.tag);
    case "oci-archive":
      return OciArchiveDestination.create(spec, resolve(t.path), t.tag);
    case "docker-archive":
      return DockerArchiveDestination.create(spec, resolve(t.path), t.ref);
    case "store":
      throw new TransportError(`${spec}: the store is a source only (strata pull writes into it)`);
    case "docker":
      return (await import("./docker.js")).DockerDestination.create(spec, t.ref, registry);
  }
}
