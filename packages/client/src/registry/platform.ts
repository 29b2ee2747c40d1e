/**
 * Choosing one image manifest from an OCI index or Docker manifest list for a platform.
 * Entries without a platform (and attestation entries marked unknown/unknown) never match.
 * Among several matches an exact variant match wins, else the first in index order.
 */
import { type Descriptor, formatPlatform, type ParsedIndex, type Platform, platformMatches } from "@strata/core";

export class NoMatchingPlatformError extends Error {
  constructor(
    readonly wanted: Platform,
    readonly available: string[],
  ) {
    super(`no matching manifest for ${formatPlatform(wanted)} in the manifest list entries (available: ${available.length ? available.join(", ") : "none"})`);
    this.name = "NoMatchingPlatformError";
  }
}

export function selectPlatform(index: Pick<ParsedIndex, "manifests">, wanted: Platform): Descriptor {
  const candidates = index.manifests.filter((m) => m.platform && m.platform.os !== "unknown" && platformMatches(wanted, m.platform));
  if (candidates.length === 0) {
    const available = index.manifests.filter((m) => m.platform && m.platform.os !== "unknown").map((m) => formatPlatform(m.platform!));
    throw new NoMatchingPlatformError(wanted, available);
  }
  if (wanted.variant === undefined) {
    // Prefer an entry without a variant or, for arm64, v8 (the host default), else the first.
    return candidates.find((m) => m.platform!.variant === undefined) ?? candidates[0];
  }
  return candidates.find((m) => m.platform!.variant === wanted.variant) ?? candidates[0];
}
