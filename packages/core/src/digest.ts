/**
 * Content digests (OCI image-spec "digest" grammar), parsed once at the edge.
 *
 *   digest    ::= algorithm ":" encoded
 *   algorithm ::= [a-z0-9]+ ([+._-] [a-z0-9]+)*
 *   encoded   ::= [a-zA-Z0-9=_-]+
 *
 * Only the registered algorithms sha256 (64 lowercase hex) and sha512 (128 lowercase hex)
 * are accepted; every other string is rejected by `parseDigest`. Values of the branded types
 * below exist only after a successful parse, so code that receives a `Digest` never re-checks it.
 */
import { createHash, type Hash } from "node:crypto";

declare const digestBrand: unique symbol;
declare const diffIdBrand: unique symbol;
declare const chainIdBrand: unique symbol;

/** A validated `sha256:<hex>` or `sha512:<hex>` string. */
export type Digest = string & { readonly [digestBrand]: true };
/** The digest of an uncompressed layer tar (config `rootfs.diff_ids`). */
export type DiffID = Digest & { readonly [diffIdBrand]: true };
/** A layer's identity together with all its parents (see chainid.ts). */
export type ChainID = Digest & { readonly [chainIdBrand]: true };

export type DigestAlgorithm = "sha256" | "sha512";

export const DIGEST_HEX_LENGTH: Record<DigestAlgorithm, number> = { sha256: 64, sha512: 128 };

const GRAMMAR = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

export class InvalidDigestError extends Error {
  constructor(
    readonly input: string,
    reason: string,
  ) {
    super(`invalid digest ${JSON.stringify(input.length > 200 ? `${input.slice(0, 200)}...` : input)}: ${reason}`);
    this.name = "InvalidDigestError";
  }
}

export class UnsupportedDigestError extends InvalidDigestError {
  constructor(input: string, algorithm: string) {
    super(input, `unsupported algorithm ${JSON.stringify(algorithm)}`);
    this.name = "UnsupportedDigestError";
  }
}

export function isSupportedAlgorithm(a: string): a is DigestAlgorithm {
  return a === "sha256" || a === "sha512";
}

/** Parses and validates a digest; throws InvalidDigestError (or UnsupportedDigestError). */
export function parseDigest(input: unknown): Digest {
  if (typeof input !== "string") throw new InvalidDigestError(String(input), "not a string");
  if (!GRAMMAR.test(input)) throw new InvalidDigestError(input, "does not match the digest grammar");
  const colon = input.indexOf(":");
  const algorithm = input.slice(0, colon);
  const encoded = input.slice(colon + 1);
  if (!isSupportedAlgorithm(algorithm)) throw new UnsupportedDigestError(input, algorithm);
  const want = DIGEST_HEX_LENGTH[algorithm];
  if (encoded.length !== want || !/^[0-9a-f]+$/.test(encoded)) {
    throw new InvalidDigestError(input, `${algorithm} needs ${want} lowercase hex characters`);
  }
  return input as Digest;
}

/** Like parseDigest but returns undefined instead of throwing. */
export function tryParseDigest(input: unknown): Digest | undefined {
  try {
    return parseDigest(input);
  } catch {
    return undefined;
  }
}

export function parseDiffID(input: unknown): DiffID {
  return parseDigest(input) as DiffID;
}

export function parseChainID(input: unknown): ChainID {
  return parseDigest(input) as ChainID;
}

export function digestAlgorithm(d: Digest): DigestAlgorithm {
  return d.slice(0, d.indexOf(":")) as DigestAlgorithm;
}

/** The encoded (hex) part of a digest. */
export function digestHex(d: Digest): string {
  return d.slice(d.indexOf(":") + 1);
}

/** Builds a digest from an algorithm and a hex string (validated). */
export function digestFrom(algorithm: DigestAlgorithm, hex: string): Digest {
  return parseDigest(`${algorithm}:${hex}`);
}

/** Digest of a complete buffer. */
export function digestOf(data: Uint8Array | string, algorithm: DigestAlgorithm = "sha256"): Digest {
  return `${algorithm}:${createHash(algorithm).update(data).digest("hex")}` as Digest;
}

/** An incremental digester; `digest()` may be called once. */
export interface Digester {
  readonly algorithm: DigestAlgorithm;
  update(chunk: Uint8Array): void;
  digest(): Digest;
}

export function createDigester(algorithm: DigestAlgorithm = "sha256"): Digester {
  const h: Hash = createHash(algorithm);
  return {
    algorithm,
    update(chunk) {
      h.update(chunk);
    },
    digest() {
      return `${algorithm}:${h.digest("hex")}` as Digest;
    },
  };
}
