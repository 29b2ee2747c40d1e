/**
 * Manifests, indexes and image configs. Parsers keep the exact bytes they were given: a
 * digest is always computed over the bytes as received, never over a re-serialisation.
 */
import { type Digest, type DigestAlgorithm, digestOf, InvalidDigestError } from "./digest.js";
import { checkImageConfig, checkImageManifest, checkIndex, type Descriptor, type ImageConfig, type Platform, ShapeError } from "./manifest-check.js";
import { baseMediaType, MediaTypes } from "./mediatypes.js";

export type { Descriptor, HistoryEntry, ImageConfig, ImageManifestBody, IndexBody, Platform } from "./manifest-check.js";

export class InvalidManifestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "InvalidManifestError";
  }
}

interface ParsedBase {
  /** The exact bytes received. */
  readonly raw: Buffer;
  /** Media type from the body, else from the Content-Type it arrived with. */
  readonly mediaType: string;
  readonly artifactType?: string;
  readonly subject?: Descriptor;
  readonly annotations?: Record<string, string>;
}

export interface ParsedImageManifest extends ParsedBase {
  readonly kind: "manifest";
  readonly config: Descriptor;
  readonly layers: readonly Descriptor[];
}

export interface ParsedIndex extends ParsedBase {
  readonly kind: "index";
  readonly manifests: readonly Descriptor[];
}

export type ParsedManifest = ParsedImageManifest | ParsedIndex;

/** `check(json)`, a ShapeError turned into InvalidManifestError(`${what}: ${path}: ${message}`). */
function checked<T>(check: (v: unknown) => T, json: unknown, what: string): T {
  try {
    return check(json);
  } catch (e) {
    if (e instanceof ShapeError) throw new InvalidManifestError(`${what}: ${e.message}`);
    throw e;
  }
}

/**
 * Deepest nesting of arrays and objects accepted in a manifest, index or image config. Real ones
 * nest a handful of levels; the bound keeps every later recursive walk of the parsed value
 * (JSON.stringify in inspect, commit, save) far from the stack's limit.
 */
export const MAX_JSON_DEPTH = 1000;

/** The nesting depth of JSON text, scanning no further than `max + 1` levels (strings skipped). */
export function jsonDepth(text: string, max = MAX_JSON_DEPTH): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > deepest) {
        deepest = depth;
        if (deepest > max) return deepest;
      }
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return deepest;
}

/** JSON.parse with the nesting bound checked first. */
function parseBoundedJson(text: string, what: string): unknown {
  if (jsonDepth(text) > MAX_JSON_DEPTH) throw new InvalidManifestError(`${what} nests arrays and objects more than ${MAX_JSON_DEPTH} levels deep`);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new InvalidManifestError(`${what} is not valid JSON: ${(e as Error).message}`);
  }
}

/**
 * Parses a manifest or index. `contentType` is the Content-Type it arrived with (optional).
 * Throws InvalidManifestError for bad JSON, unknown media types, a body mediaType that
 * contradicts the Content-Type, or a schema violation.
 */
export function parseManifest(raw: Uint8Array, contentType?: string): ParsedManifest {
  const bytes = Buffer.isBuffer(raw) ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  const json = parseBoundedJson(bytes.toString("utf8"), "manifest");
  if (json === null || typeof json !== "object" || Array.isArray(json)) throw new InvalidManifestError("manifest must be a JSON object");
  const obj = json as Record<string, unknown>;
  const ct = contentType ? baseMediaType(contentType) : "";
  const bodyMt = typeof obj.mediaType === "string" ? obj.mediaType : undefined;
  if (obj.mediaType !== undefined && bodyMt === undefined) throw new InvalidManifestError("mediaType must be a string");
  let mediaType = bodyMt ?? ct;
  if (bodyMt && ct && ct !== bodyMt && ct !== "application/json" && ct !== "application/octet-stream") {
    throw new InvalidManifestError(`Content-Type ${ct} does not match the manifest's mediaType ${bodyMt}`);
  }
  if (!mediaType || mediaType === "application/json" || mediaType === "application/octet-stream") {
    if (Array.isArray(obj.manifests)) mediaType = MediaTypes.OciIndex;
    else if (obj.config !== undefined) mediaType = MediaTypes.OciManifest;
    else throw new InvalidManifestError("cannot determine the manifest's media type");
  }
  switch (mediaType) {
    case MediaTypes.OciManifest:
    case MediaTypes.DockerManifest: {
      const data = checked(checkImageManifest, obj, "invalid image manifest");
      if (mediaType === MediaTypes.DockerManifest && data.mediaType !== MediaTypes.DockerManifest) {
        throw new InvalidManifestError("Docker schema2 manifests must carry their mediaType");
      }
      return {
        kind: "manifest",
        raw: bytes,
        mediaType,
        artifactType: data.artifactType,
        subject: data.subject,
        annotations: data.annotations,
        config: data.config,
        layers: data.layers,
      };
    }
    case MediaTypes.OciIndex:
    case MediaTypes.DockerManifestList: {
      const data = checked(checkIndex, obj, "invalid index");
      return {
        kind: "index",
        raw: bytes,
        mediaType,
        artifactType: data.artifactType,
        subject: data.subject,
        annotations: data.annotations,
        manifests: data.manifests,
      };
    }
    default:
      throw new InvalidManifestError(`unsupported manifest media type ${JSON.stringify(mediaType)}`);
  }
}

/** Digest of a parsed manifest's raw bytes. */
export function manifestDigest(m: Pick<ParsedBase, "raw">, algorithm: DigestAlgorithm = "sha256"): Digest {
  return digestOf(m.raw, algorithm);
}

// ---------------------------------------------------------------------------------------
// Image config

export interface ParsedImageConfig {
  readonly raw: Buffer;
  readonly config: ImageConfig;
}

export function parseImageConfig(raw: Uint8Array): ParsedImageConfig {
  const bytes = Buffer.isBuffer(raw) ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  const json = parseBoundedJson(bytes.toString("utf8"), "image config");
  return { raw: bytes, config: checked(checkImageConfig, json, "invalid image config") };
}

// ---------------------------------------------------------------------------------------
// Platforms

/** `os/arch[/variant]` */
export function parsePlatform(s: string): Platform {
  const parts = s.split("/");
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => p.length === 0))
    throw new Error(`invalid platform ${JSON.stringify(s)}: expected os/arch[/variant]`);
  return parts.length === 3 ? { os: parts[0], architecture: parts[1], variant: parts[2] } : { os: parts[0], architecture: parts[1] };
}

export function formatPlatform(p: Platform): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ""}`;
}

/** The platform of this Node process in OCI terms. */
export function hostPlatform(): Platform {
  const archMap: Record<string, string> = { x64: "amd64", arm64: "arm64", arm: "arm", ia32: "386", ppc64: "ppc64le", s390x: "s390x", riscv64: "riscv64" };
  const architecture = archMap[process.arch] ?? process.arch;
  const p: Platform = { os: process.platform === "win32" ? "windows" : process.platform, architecture };
  if (architecture === "arm64") p.variant = "v8";
  return p;
}

/** Variant normalisation as containerd does it: arm64 defaults to v8, arm to v7; bare numbers get a "v". */
function normVariant(p: Platform): string | undefined {
  if (p.architecture === "arm64" && (p.variant === undefined || p.variant === "v8" || p.variant === "8")) return "v8";
  if (p.architecture === "arm") {
    if (p.variant === undefined || p.variant === "7") return "v7";
    if (p.variant === "5" || p.variant === "6" || p.variant === "8") return `v${p.variant}`;
  }
  return p.variant;
}

/** Whether a candidate platform satisfies the wanted one (variant compared only when wanted says one). */
export function platformMatches(want: Platform, have: Platform | undefined): boolean {
  if (!have) return false;
  if (want.os !== have.os || want.architecture !== have.architecture) return false;
  if (want.variant === undefined) return true;
  return normVariant(want) === normVariant(have);
}

export { InvalidDigestError };
