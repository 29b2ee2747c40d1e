/**
 * Image references, following distribution's grammar:
 *
 *   reference       := name [ ":" tag ] [ "@" digest ]
 *   name            := [ domain "/" ] path-component ( "/" path-component )*
 *   domain          := host [ ":" port ]          host: DNS name, IPv4, or [IPv6]
 *   path-component  := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
 *   tag             := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
 *
 * The first component is a domain when it contains "." or ":", is "localhost", or has upper
 * case; otherwise the domain is docker.io and one-component names get "library/" (familiar
 * names: `alpine` is `docker.io/library/alpine`). A repository name is at most 255 characters.
 */
import { type Digest, parseDigest } from "./digest.js";

declare const repoBrand: unique symbol;
declare const tagBrand: unique symbol;

/** A validated repository path (without domain), e.g. `library/alpine`. */
export type RepositoryName = string & { readonly [repoBrand]: true };
/** A validated tag. */
export type Tag = string & { readonly [tagBrand]: true };

export const DEFAULT_DOMAIN = "docker.io";
const LEGACY_DEFAULT_DOMAIN = "index.docker.io";
const OFFICIAL_PREFIX = "library/";
export const NAME_MAX_LENGTH = 255;

const PATH_COMPONENT = "[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
const REPOSITORY_RE = new RegExp(`^${PATH_COMPONENT}(?:/${PATH_COMPONENT})*$`);
const TAG_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const DOMAIN_COMPONENT = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const DOMAIN_RE = new RegExp(`^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[0-9A-Fa-f:.]+\\])(?::[0-9]+)?$`);

export class InvalidReferenceError extends Error {
  constructor(
    readonly input: string,
    reason: string,
  ) {
    super(`invalid reference ${JSON.stringify(input)}: ${reason}`);
    this.name = "InvalidReferenceError";
  }
}

export function isValidRepositoryName(name: string): boolean {
  return name.length > 0 && name.length <= NAME_MAX_LENGTH && REPOSITORY_RE.test(name);
}

export function parseRepositoryName(name: string): RepositoryName {
  if (!isValidRepositoryName(name))
    throw new InvalidReferenceError(name, "repository name must match [a-z0-9]+((.|_|__|-+)[a-z0-9]+)*(/...)* and be at most 255 characters");
  return name as RepositoryName;
}

export function isValidTag(tag: string): boolean {
  return TAG_RE.test(tag);
}

export function parseTag(tag: string): Tag {
  if (!isValidTag(tag)) throw new InvalidReferenceError(tag, "tag must match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}");
  return tag as Tag;
}

/** A fully qualified reference. At least one of tag/digest is set after `parseReference` (tag defaults to "latest"). */
export interface Reference {
  readonly domain: string;
  readonly repository: RepositoryName;
  readonly tag?: Tag;
  readonly digest?: Digest;
}

function splitDomain(name: string): { domain: string; path: string } {
  const slash = name.indexOf("/");
  if (slash === -1) return { domain: DEFAULT_DOMAIN, path: name };
  const first = name.slice(0, slash);
  if (first.includes(".") || first.includes(":") || first === "localhost" || first.toLowerCase() !== first) {
    return { domain: first === LEGACY_DEFAULT_DOMAIN ? DEFAULT_DOMAIN : first, path: name.slice(slash + 1) };
  }
  return { domain: DEFAULT_DOMAIN, path: name };
}

export interface ParseReferenceOptions {
  /** Add the tag "latest" when neither tag nor digest is given (default true). */
  defaultTag?: boolean;
}

/** Parses and normalises a reference (`alpine` → `docker.io/library/alpine:latest`). */
export function parseReference(input: string, opts: ParseReferenceOptions = {}): Reference {
  if (input.length === 0) throw new InvalidReferenceError(input, "empty");
  // A bare 64-hex string is an image ID, never a repository name.
  if (/^[a-f0-9]{64}$/.test(input)) throw new InvalidReferenceError(input, "cannot specify 64-byte hexadecimal strings");
  let rest = input;
  let digest: Digest | undefined;
  const at = rest.indexOf("@");
  if (at !== -1) {
    try {
      digest = parseDigest(rest.slice(at + 1));
    } catch (e) {
      throw new InvalidReferenceError(input, (e as Error).message);
    }
    rest = rest.slice(0, at);
  }
  let tag: Tag | undefined;
  const lastColon = rest.lastIndexOf(":");
  if (lastColon > rest.lastIndexOf("/")) {
    const t = rest.slice(lastColon + 1);
    if (!isValidTag(t)) throw new InvalidReferenceError(input, "invalid tag");
    tag = t as Tag;
    rest = rest.slice(0, lastColon);
  }
  const { domain, path: rawPath } = splitDomain(rest);
  if (!DOMAIN_RE.test(domain)) throw new InvalidReferenceError(input, "invalid domain");
  let path = rawPath;
  if (domain === DEFAULT_DOMAIN && !path.includes("/")) path = OFFICIAL_PREFIX + path;
  if (path !== path.toLowerCase()) throw new InvalidReferenceError(input, "repository name must be lowercase");
  if (!isValidRepositoryName(path)) throw new InvalidReferenceError(input, "invalid repository name");
  if (domain.length + 1 + path.length > NAME_MAX_LENGTH) throw new InvalidReferenceError(input, "name longer than 255 characters");
  if (tag === undefined && digest === undefined && opts.defaultTag !== false) tag = "latest" as Tag;
  return { domain, repository: path as RepositoryName, tag, digest };
}

/** `domain/repository` */
export function referenceName(ref: Reference): string {
  return `${ref.domain}/${ref.repository}`;
}

/** Docker's "familiar" name: docker.io and library/ are dropped (`docker.io/library/alpine` → `alpine`). */
export function familiarName(ref: Pick<Reference, "domain" | "repository">): string {
  if (ref.domain !== DEFAULT_DOMAIN) return `${ref.domain}/${ref.repository}`;
  return ref.repository.startsWith(OFFICIAL_PREFIX) && ref.repository.indexOf("/", OFFICIAL_PREFIX.length) === -1
    ? ref.repository.slice(OFFICIAL_PREFIX.length)
    : ref.repository;
}

/** Canonical string form: `domain/repo[:tag][@digest]`. */
export function formatReference(ref: Reference): string {
  return `${referenceName(ref)}${ref.tag ? `:${ref.tag}` : ""}${ref.digest ? `@${ref.digest}` : ""}`;
}

/** Familiar string form: `alpine:latest`, `127.0.0.1:5000/x/y@sha256:...`. */
export function formatFamiliar(ref: Reference): string {
  return `${familiarName(ref)}${ref.tag ? `:${ref.tag}` : ""}${ref.digest ? `@${ref.digest}` : ""}`;
}
