/**
 * `strata copy SRC DST`: copies an image between transports (transports/). Output: a line per
 * blob and manifest (text), one JSON object per line (`--format json`), or nothing (`--quiet`).
 */
import type { Digest, Platform } from "@strata/core";
import { jsonSafe, print } from "../terminal.js";
import { type CopyEvent, copyImage, type CopyResult } from "../transports/copy.js";
import { openDestination, openSource } from "../transports/open.js";
import { TransportUsageError } from "../transports/types.js";
import type { RegistryContext } from "../transports/docker.js";

export interface CopyCommandOptions {
  root: string;
  all?: boolean;
  platform?: Platform;
  preserveDigests?: boolean;
  destCompress?: "gzip" | "zstd";
  maxConcurrent?: number;
  output: "text" | "json" | "quiet";
  /** docker:// transports: insecure registries, manifest format (push). */
  registry?: RegistryContext;
  /** Also copy the referrers of every manifest copied (registry to registry). */
  referrers?: boolean;
}

function short(d: string): string {
  return d.slice(0, 19);
}

function eventLine(e: CopyEvent): string {
  if (e.kind === "manifest") return `Writing ${e.top ? "manifest" : "child manifest"} ${e.digest}\n`;
  const what = e.role === "config" ? "config" : "blob";
  return e.status === "exists" ? `Skipping ${what} ${short(e.digest)}: already at the destination\n` : `Copied ${what} ${short(e.digest)} (${e.size} bytes)\n`;
}

export async function copyCommand(src: string, dst: string, o: CopyCommandOptions): Promise<CopyResult> {
  if (o.all && o.platform) throw new TransportUsageError("--all and --platform cannot be used together");
  if (o.referrers && !(src.startsWith("docker://") && dst.startsWith("docker://"))) throw new TransportUsageError("--referrers copies between registries: docker:// on both sides");
  const copiedManifests: Digest[] = [];
  const source = await openSource(src, { root: o.root, registry: o.registry });
  let dest;
  try {
    dest = await openDestination(dst, o.registry);
  } catch (e) {
    await source.close();
    throw e;
  }
  const onEvent = (e: CopyEvent) => {
    if (e.kind === "manifest") copiedManifests.push(e.digest);
    if (o.output === "text") print(eventLine(e));
    else if (o.output === "json") print(`${jsonSafe({ event: e.kind, ...e, kind: undefined })}\n`);
  };
  // an interrupted copy removes what it wrote before the process exits
  const d = dest;
  const onSignal = (sig: NodeJS.Signals) => {
    void d.abort().finally(() => process.exit(sig === "SIGINT" ? 130 : 143));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  let r: CopyResult;
  try {
    r = await copyImage(source, dest, {
      all: o.all,
      platform: o.platform,
      preserveDigests: o.preserveDigests,
      destCompress: o.destCompress,
      maxConcurrent: o.maxConcurrent,
      onEvent,
    });
  } finally {
    process.removeListener("SIGINT", onSignal);
    process.removeListener("SIGTERM", onSignal);
  }
  if (o.referrers) {
    // referrers (signatures, SBOMs) of what was copied: transports/referrers.ts
    const { copyReferrers } = await import("../transports/referrers.js");
    await copyReferrers(src.slice("docker://".length), dst.slice("docker://".length), copiedManifests, o.registry ?? {}, (d, subject) => {
      if (o.output === "text") print(`Copied referrer ${d} of ${short(subject)}\n`);
      else if (o.output === "json") print(`${jsonSafe({ event: "referrer", digest: d, subject })}\n`);
    });
  }
  if (o.output === "text") print(`Copied ${src} to ${dst}: ${r.digest}\n`);
  else if (o.output === "json") print(`${jsonSafe({ event: "done", source: src, destination: dst, digest: r.digest, mediaType: r.mediaType, images: r.images })}\n`);
  return r;
}
