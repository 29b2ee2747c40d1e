/**
 * `strata push IMAGE [DEST]`: an image of the --root store to a registry, i.e. `strata copy
 * store:IMAGE docker://DEST` (DEST defaults to IMAGE's name). The store keeps uncompressed
 * layers: each is rebuilt from its tar-split and diff, checked against its diffID and gzipped
 * (reproducibly) unless the registry already has it. Docker schema2 manifest by default, OCI
 * with `--format oci`.
 */
import { parseReference } from "@strata/core";
import type { CopyResult } from "../transports/copy.js";
import { TransportUsageError } from "../transports/types.js";
import { copyCommand } from "./copy.js";

export interface PushOptions {
  root: string;
  format: "docker" | "oci";
  maxConcurrent?: number;
  insecureRegistries?: string[];
  output: "text" | "json" | "quiet";
}

export async function pushCommand(image: string, dest: string | undefined, o: PushOptions): Promise<CopyResult> {
  let target = dest ?? image;
  try {
    const r = parseReference(target);
    if (!dest && r.digest) throw new TransportUsageError(`${image}: name a destination (an image named by digest cannot be pushed to a tag)`);
    // the name as Docker spells it, with the registry's host kept
    target = `${r.domain}/${r.repository}${r.tag ? `:${r.tag}` : ""}${r.digest ? `@${r.digest}` : ""}`;
  } catch (e) {
    if (e instanceof TransportUsageError) throw e;
    throw new TransportUsageError(`invalid destination ${JSON.stringify(target)}: ${(e as Error).message}`);
  }
  return copyCommand(`store:${image}`, `docker://${target}`, {
    root: o.root,
    maxConcurrent: o.maxConcurrent,
    output: o.output,
    registry: { format: o.format, insecureRegistries: o.insecureRegistries },
  });
}
