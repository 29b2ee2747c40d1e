/**
 * Transport names on the command line (skopeo's spelling):
 *   oci:DIR[:TAG]   oci-archive:FILE[:TAG]   docker-archive:FILE[:REF]   store:REF   docker://REF
 * DIR and FILE end at the first ":" (they cannot contain one); a TAG is an OCI ref name.
 */
import { TransportUsageError } from "./types.js";

export type TransportName =
  | { kind: "oci"; path: string; tag?: string }
  | { kind: "oci-archive"; path: string; tag?: string }
  | { kind: "docker-archive"; path: string; ref?: string }
  | { kind: "store"; ref: string }
  | { kind: "docker"; ref: string };

// OCI image layout ref names as skopeo accepts them
const REF_NAME = /^[A-Za-z0-9._-]+(?:[:@/+][A-Za-z0-9._-]+)*$/;

function pathAndRest(spec: string, rest: string): { path: string; extra?: string } {
  const colon = rest.indexOf(":");
  const path = colon === -1 ? rest : rest.slice(0, colon);
  const extra = colon === -1 ? undefined : rest.slice(colon + 1);
  if (path === "") throw new TransportUsageError(`${spec}: no path given`);
  if (extra === "") throw new TransportUsageError(`${spec}: empty name after the path`);
  return { path, extra };
}

export function parseTransportName(spec: string): TransportName {
  if (spec.startsWith("docker://")) {
    const ref = spec.slice("docker://".length);
    if (!ref) throw new TransportUsageError(`${spec}: no image reference given`);
    return { kind: "docker", ref };
  }
  const colon = spec.indexOf(":");
  const transport = colon === -1 ? "" : spec.slice(0, colon);
  const rest = spec.slice(colon + 1);
  switch (transport) {
    case "oci":
    case "oci-archive": {
      const { path, extra } = pathAndRest(spec, rest);
      if (extra !== undefined && !REF_NAME.test(extra)) throw new TransportUsageError(`${spec}: invalid image name ${JSON.stringify(extra)} in the layout`);
      return { kind: transport, path, tag: extra };
    }
    case "docker-archive": {
      const { path, extra } = pathAndRest(spec, rest);
      return { kind: "docker-archive", path, ref: extra };
    }
    case "store":
      if (!rest) throw new TransportUsageError(`${spec}: no image given`);
      return { kind: "store", ref: rest };
    default:
      throw new TransportUsageError(
        `invalid image name ${JSON.stringify(spec)}: expected TRANSPORT:NAME with a transport among oci:, oci-archive:, docker-archive:, store:, docker://`,
      );
  }
}
