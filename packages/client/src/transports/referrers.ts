/**
 * `strata copy --referrers` between registries: the manifests that name a copied manifest as
 * their `subject` (signatures, SBOMs, attestations) are copied too, by digest, with what they
 * reference, and so are their own referrers (up to MAX_DEPTH levels).
 *
 * Listing at the source: the referrers API (`GET /v2/<name>/referrers/<digest>`, OCI 1.1), else
 * the fallback tag `<alg>-<hex>` holding an index of them. At the destination a registry with the
 * referrers API indexes a manifest with a subject itself; otherwise (the API answers 404) the
 * fallback tag's index is written, merged with what it already lists.
 */
import { type Digest, digestAlgorithm, digestHex, MediaTypes } from "@strata/core";
import { MAX_MANIFEST_BYTES, type RegistryClient } from "../registry/client.js";
import { RegistryWriter } from "../registry/push.js";
import { copyImage } from "./copy.js";
import { DockerDestination, type RegistryContext, dockerSource, registryOf } from "./docker.js";
import { TransportError } from "./types.js";

const MAX_DEPTH = 3;
/** Referrers of one manifest copied at most. */
const MAX_REFERRERS = 1000;

interface RefDesc {
  mediaType: string;
  digest: Digest;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
}

function fallbackTag(d: Digest): string {
  return `${digestAlgorithm(d)}-${digestHex(d)}`;
}

/** The referrers of `digest` in `repository`, or [] when none (or the registry knows none). */
async function listReferrers(client: RegistryClient, repository: string, digest: Digest): Promise<{ list: RefDesc[]; api: boolean }> {
  const res = await client.request(`/v2/${repository}/referrers/${digest}`, { repository, headers: { Accept: MediaTypes.OciIndex }, small: true });
  let api = false;
  let raw: Buffer | undefined;
  if (res.ok) {
    api = true;
    raw = await res.bytes(MAX_MANIFEST_BYTES);
  } else {
    await res.body.cancel().catch(() => {});
    if (res.status !== 404) throw new TransportError(`listing the referrers of ${digest} in ${repository}: HTTP ${res.status}`);
    try {
      raw = (await client.getManifest(repository, fallbackTag(digest))).raw;
    } catch (e) {
      if ((e as { status?: number }).status === 404) return { list: [], api };
      throw e;
    }
  }
  let body: { manifests?: unknown };
  try {
    body = JSON.parse(raw.toString("utf8")) as { manifests?: unknown };
  } catch {
    throw new TransportError(`the referrers of ${digest} in ${repository} are not JSON`);
  }
  if (!Array.isArray(body.manifests)) return { list: [], api };
  const list = (body.manifests as RefDesc[]).filter((m) => m && typeof m.digest === "string" && /^sha256:[a-f0-9]{64}$/.test(m.digest) && typeof m.size === "number" && typeof m.mediaType === "string");
  if (list.length > MAX_REFERRERS) throw new TransportError(`${digest} in ${repository} has more than ${MAX_REFERRERS} referrers`);
  return { list, api };
}

export interface ReferrersCopy {
  /** Referrer manifests copied. */
  copied: number;
}

/**
 * Copies the referrers of `digests` from `src` ("domain/repo") to `dst`. `onCopied` is told each
 * referrer's digest.
 */
export async function copyReferrers(srcRef: string, dstRef: string, digests: readonly Digest[], ctx: RegistryContext, onCopied?: (d: Digest, subject: Digest) => void): Promise<ReferrersCopy> {
  const src = await registryOf(srcRef, ctx);
  const dst = await registryOf(dstRef, ctx);
  const seen = new Set<string>();
  let copied = 0;
  const visit = async (subject: Digest, depth: number): Promise<void> => {
    if (depth > MAX_DEPTH || seen.has(subject)) return;
    seen.add(subject);
    const { list } = await listReferrers(src.client, src.ref.repository, subject);
    if (list.length === 0) return;
    for (const r of list) {
      const from = await dockerSource(`docker://${srcRef}`, `${src.ref.domain}/${src.ref.repository}@${r.digest}`, ctx);
      const to = await DockerDestination.create(`docker://${dstRef}`, `${dst.ref.domain}/${dst.ref.repository}@${r.digest}`, ctx);
      await copyImage(from, to, { all: true });
      copied++;
      onCopied?.(r.digest, subject);
    }
    // a destination without the referrers API: the fallback tag lists them
    const at = await dst.client.request(`/v2/${dst.ref.repository}/referrers/${subject}`, { repository: dst.ref.repository, push: true, headers: { Accept: MediaTypes.OciIndex }, small: true });
    await at.body.cancel().catch(() => {});
    if (at.status === 404) {
      let have: RefDesc[] = [];
      try {
        const m = await dst.client.getManifest(dst.ref.repository, fallbackTag(subject));
        const parsed = JSON.parse(m.raw.toString("utf8")) as { manifests?: RefDesc[] };
        have = Array.isArray(parsed.manifests) ? parsed.manifests : [];
      } catch (e) {
        if ((e as { status?: number }).status !== 404) throw e;
      }
      const merged = [...have.filter((h) => !list.some((l) => l.digest === h.digest)), ...list];
      const raw = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaTypes.OciIndex, manifests: merged }));
      await new RegistryWriter(dst.client, dst.ref.repository).putManifest(raw, MediaTypes.OciIndex, fallbackTag(subject));
    }
    for (const r of list) await visit(r.digest, depth + 1);
  };
  for (const d of digests) await visit(d, 1);
  return { copied };
}
