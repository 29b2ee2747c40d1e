/**
 * `strata copy SRC DST` (and `strata push`, which is a copy from the store): copies an image
 * between transports (transports/). Output:
 * - text: a line per layer status change (`<id>: Pushed`, `Layer already exists`, `Mounted from
 *   REPO` for push; `Copied`, `Already exists`, ... for copy), as bars on a terminal
 *   (progress.ts, as `strata pull` shows them), then the digest;
 * - `--format json`: one JSON object per line: each blob (`status` copied, exists or mounted),
 *   each manifest, then `done`;
 * - `--quiet`: nothing.
 */
import { type Digest, parseReference, type Platform } from "@strata/core";
import { type ProgressReporter, shortId } from "../progress.js";
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
  /** The words of the text output: docker push's or a copy's (default). */
  verb?: "push" | "copy";
  /** The text output's renderer (default: bars on a terminal, lines otherwise). */
  progress?: ProgressReporter;
}

/** Text output: each layer's copy as progress statuses (the config is not shown, as docker push does not). */
function progressEvents(e: CopyEvent, verb: "push" | "copy", progress: ProgressReporter): void {
  if (e.kind === "manifest" || e.role !== "layer") return;
  const id = shortId(e.source);
  if (e.kind === "blob-start") progress.event({ type: "layer", id, status: "preparing" });
  else if (e.kind === "blob-progress") progress.event({ type: "layer", id, status: verb === "push" ? "pushing" : "copying", current: e.current, total: e.total });
  else if (e.status === "mounted") progress.event({ type: "layer", id, status: "mounted", from: e.from });
  else if (e.status === "exists") progress.event({ type: "layer", id, status: verb === "push" ? "layer-exists" : "exists" });
  else progress.event({ type: "layer", id, status: verb === "push" ? "pushed" : "copied" });
}

async function defaultProgress(): Promise<ProgressReporter> {
  const { PlainProgress, TtyProgress } = await import("../progress.js");
  return process.stdout.isTTY ? new TtyProgress(process.stdout) : new PlainProgress(process.stdout);
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
  const verb = o.verb ?? "copy";
  const progress = o.output === "text" ? (o.progress ?? (await defaultProgress())) : undefined;
  if (progress && verb === "push" && dst.startsWith("docker://")) {
    const ref = parseReference(dst.slice("docker://".length));
    progress.event({ type: "message", text: `The push refers to repository [${ref.domain}/${ref.repository}]` });
  }
  let top: { digest: Digest; size: number } | undefined;
  const onEvent = (e: CopyEvent) => {
    if (e.kind === "manifest") copiedManifests.push(e.digest);
    if (e.kind === "manifest" && e.top) top = { digest: e.digest, size: e.size };
    if (progress) progressEvents(e, verb, progress);
    else if (o.output === "json" && (e.kind === "blob" || e.kind === "manifest")) print(`${jsonSafe({ event: e.kind, ...e, kind: undefined })}\n`);
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
    progress?.stop();
  }
  if (o.referrers) {
    // referrers (signatures, SBOMs) of what was copied: transports/referrers.ts
    const { copyReferrers } = await import("../transports/referrers.js");
    await copyReferrers(src.slice("docker://".length), dst.slice("docker://".length), copiedManifests, o.registry ?? {}, (d, subject) => {
      if (o.output === "text") print(`Copied referrer ${d} of ${subject.slice(0, 19)}\n`);
      else if (o.output === "json") print(`${jsonSafe({ event: "referrer", digest: d, subject })}\n`);
    });
  }
  if (o.output === "text" && verb === "push" && dst.startsWith("docker://")) {
    // docker push's last line: TAG: digest: DIGEST size: N
    const ref = parseReference(dst.slice("docker://".length));
    print(`${ref.tag ?? ref.digest ?? "latest"}: digest: ${r.digest} size: ${top?.size ?? 0}\n`);
  } else if (o.output === "text") print(`Copied ${src} to ${dst}: ${r.digest}\n`);
  else if (o.output === "json") print(`${jsonSafe({ event: "done", source: src, destination: dst, digest: r.digest, mediaType: r.mediaType, images: r.images })}\n`);
  return r;
}
