/**
 * Manifests, tags and referrers of a repository. Manifest bytes are stored as blobs (by
 * digest, once) and linked into the repository as revisions; tags are links to revisions;
 * a manifest with a `subject` is also linked under the subject's referrers.
 */
import {
  type Descriptor,
  type Digest,
  type DigestAlgorithm,
  DigestMismatchError,
  digestAlgorithm,
  digestOf,
  type ParsedManifest,
  parseManifest,
  tryParseDigest,
} from "@strata/core";
import { DeniedError, ManifestReferenceError, UnavailableError, UnknownError } from "../errors.js";
import type { Lease, Locker } from "../locks.js";
import { isNotFound, type StorageDriver } from "../storage/driver.js";
import { baseName, pathFor } from "../storage/paths.js";
import { BlobStore } from "./blobs.js";
import { ByteLru } from "./cache.js";
import { type GcGuard, requireStored } from "./gc.js";
import type { ImmutableTags } from "./retention.js";
import { type QuotaGate, quotaDenied } from "./usage.js";

export interface StoredManifest {
  readonly digest: Digest;
  readonly mediaType: string;
  readonly raw: Buffer;
}

export interface PutManifestResult {
  readonly digest: Digest;
  readonly subject?: Digest;
  readonly mediaType: string;
}

/**
 * Where tags are listed from: storage itself in embedded mode, an index in Redis for a fleet.
 * A tag exists exactly when its `current/link` does (the link write and the link delete are
 * the commit points of tagging and untagging); anything else below `tags/<tag>/` is debris of
 * an interrupted write or delete and never makes a tag.
 */
export interface TagIndex {
  /** The repository's tags in byte order, or undefined when the repository is unknown. */
  tags(repository: string): Promise<string[] | undefined>;
  /**
   * Runs `write`, the storage change that makes `tag` exist (`present`) or not, and brings the
   * index in line, such that a crash at any instant leaves an index that converges to storage.
   * Called under the tag's lock.
   */
  change(repository: string, tag: string, present: boolean, lease: Lease, write: () => Promise<void>): Promise<void>;
}

export interface Page<T> {
  items: T[];
  /** The last item, when more items follow it. */
  next?: string;
}

export function paginate(sorted: string[], n: number | undefined, last: string | undefined): Page<string> {
  let items = last === undefined ? sorted : sorted.filter((t) => t > last);
  if (n === undefined) return { items };
  const more = items.length > n;
  items = items.slice(0, n);
  return { items, next: more && items.length > 0 ? items[items.length - 1] : undefined };
}

export class ManifestStore {
  private readonly lru: ByteLru<StoredManifest & { bytes: number }>;

  /**
   * Tag and revision links read from storage, kept only when this process is the sole writer
   * (embedded mode): every write and delete of a link below goes through this class and
   * updates the map first. Replicas sharing storage pass `cacheLinks: false`.
   */
  private readonly links: Map<string, Digest | undefined> | undefined;

  constructor(
    private readonly driver: StorageDriver,
    private readonly blobs: BlobStore,
    private readonly tagIndex: TagIndex,
    private readonly locks: Locker,
    private readonly guard: GcGuard,
    cacheBytes: number,
    opts: { cacheLinks: boolean; immutable?: ImmutableTags; quota?: QuotaGate } = { cacheLinks: false },
  ) {
    this.lru = new ByteLru(cacheBytes);
    this.links = opts.cacheLinks ? new Map() : undefined;
    this.immutable = opts.immutable;
    this.quota = opts.quota;
  }

  private readonly immutable: ImmutableTags | undefined;
  private readonly quota: QuotaGate | undefined;

  private async readLink(key: string): Promise<Digest | undefined> {
    if (this.links?.has(key)) return this.links.get(key);
    const d = await BlobStore.readLink(this.driver, key);
    if (this.links) {
      if (this.links.size > 100_000) this.links.clear();
      this.links.set(key, d);
    }
    return d;
  }

  private async writeLink(key: string, digest: Digest, signal?: AbortSignal): Promise<void> {
    this.links?.delete(key);
    await this.driver.putContent(key, Buffer.from(digest), signal);
    this.links?.set(key, digest);
  }

  /** Deletes a link's directory (tag or revision); the cached link below it is forgotten first. */
  private async deleteLinkDir(dir: string): Promise<void> {
    if (this.links) for (const k of this.links.keys()) if (k.startsWith(`${dir}/`)) this.links.delete(k);
    await this.driver.delete(dir);
  }

  /** Resolves a tag or digest reference to a digest in the repository. */
  async resolve(repository: string, reference: { tag?: string; digest?: Digest }): Promise<Digest> {
    if (reference.digest) {
      const linked = await this.readLink(pathFor({ kind: "manifestRevisionLink", name: repository, digest: reference.digest }));
      if (!linked) throw new UnknownError("manifest", reference.digest);
      return reference.digest;
    }
    const tag = reference.tag!;
    const d = await this.readLink(pathFor({ kind: "tagCurrentLink", name: repository, tag }));
    if (!d) throw new UnknownError("manifest", tag);
    return d;
  }

  async get(repository: string, reference: { tag?: string; digest?: Digest }): Promise<StoredManifest> {
    const digest = await this.resolve(repository, reference);
    return this.load(digest);
  }

  private async load(digest: Digest): Promise<StoredManifest> {
    const hit = this.lru.get(digest);
    if (hit) return hit;
    let raw: Buffer;
    try {
      raw = await this.blobs.getSmall(digest);
    } catch (e) {
      if (e instanceof UnknownError) throw new UnknownError("manifest", digest);
      throw e;
    }
    if (digestOf(raw, digestAlgorithm(digest)) !== digest) throw new Error(`stored manifest ${digest} is corrupt`);
    const m: StoredManifest = { digest, raw, mediaType: parseManifest(raw).mediaType };
    this.lru.set(digest, { ...m, bytes: raw.length + 200 });
    return m;
  }

  /**
   * Validates and stores a manifest. `reference` is the tag or digest it was PUT under;
   * a digest reference must equal the digest of the bytes (DigestMismatchError otherwise).
   * `mirrored`: content of a pull-through cache, whose blobs and children are fetched on
   * demand, so they need not be in the repository yet.
   */
  async put(
    repository: string,
    reference: { tag?: string; digest?: Digest },
    raw: Buffer,
    contentType: string | undefined,
    opts: { mirrored?: boolean } = {},
  ): Promise<PutManifestResult> {
    const m = parseManifest(raw, contentType);
    const algorithm: DigestAlgorithm = reference.digest ? digestAlgorithm(reference.digest) : "sha256";
    const digest = digestOf(raw, algorithm);
    if (reference.digest && reference.digest !== digest) throw new DigestMismatchError(reference.digest, digest);
    // A refused tag move must leave nothing behind (tag() checks again under the tag's lock).
    if (reference.tag) await this.checkImmutable(repository, reference.tag, digest);
    const allow = opts.mirrored ? undefined : await this.quota?.allowance(repository, digest);
    if (allow && raw.length > allow.bytes) throw quotaDenied(allow, repository, raw.length);
    // In flight for the collector from before the first check until after the last write (services/gc.ts).
    return this.guard.push(async (deadline) => {
      const inTime = () => {
        if (Date.now() > deadline) throw new UnavailableError(`manifest push of ${digest} took too long`);
      };
      if (!opts.mirrored) await this.checkReferences(repository, m, new Set(), 0);
      inTime();
      await this.guard.hold(digest, async () => {
        await this.blobs.putSmall(digest, raw);
        inTime();
        await this.writeLink(pathFor({ kind: "manifestRevisionLink", name: repository, digest }), digest);
        this.quota?.linked(repository, digest, raw.length);
      });
      if (m.subject) {
        const desc = referrerDescriptor(m, digest, raw.length);
        inTime();
        await this.driver.putContent(pathFor({ kind: "referrerLink", name: repository, subject: m.subject.digest, digest }), Buffer.from(JSON.stringify(desc)));
      }
      if (reference.tag) {
        inTime();
        await this.tag(repository, reference.tag, digest);
      }
      this.lru.set(digest, { digest, raw, mediaType: m.mediaType, bytes: raw.length + 200 });
      return { digest, subject: m.subject?.digest, mediaType: m.mediaType };
    });
  }

  /**
   * Checks that every blob and child manifest `m` refers to is in the repository and durably
   * stored, each under its blob lock, protecting it from a running collection; index children
   * are followed down to their blobs (the collector's race rule, services/gc.ts).
   */
  private async checkReferences(repository: string, m: ParsedManifest, seen: Set<string>, depth: number): Promise<void> {
    if (m.kind === "manifest") {
      const refs = [m.config, ...m.layers].filter((d) => {
        if (d.urls && d.urls.length > 0 && (d.mediaType.includes("foreign") || d.mediaType.includes("nondistributable"))) return false;
        if (seen.has(d.digest)) return false;
        seen.add(d.digest);
        return true;
      });
      // one blob lock at a time per task: never two held together, so no lock order to keep
      await mapLimit(refs, 8, (d) =>
        this.guard.hold(d.digest, async () => {
          const size = await this.blobs.sizeIn(repository, d.digest);
          if (size === undefined) {
            if (await this.hasRevision(repository, d.digest)) return void (await requireStored(this.blobs, d.digest)); // a manifest used as a blob
            throw new ManifestReferenceError(d.digest, `blob ${d.digest} is not in repository ${repository}`);
          }
          if (size !== d.size) throw new ManifestReferenceError(d.digest, `blob ${d.digest} has size ${size}, the manifest says ${d.size}`);
          await requireStored(this.blobs, d.digest, d.size);
        }),
      );
    } else {
      for (const d of m.manifests) {
        if (seen.has(d.digest)) continue;
        seen.add(d.digest);
        const child = await this.guard.hold(d.digest, async () => {
          if (!(await this.hasRevision(repository, d.digest)))
            throw new ManifestReferenceError(d.digest, `manifest ${d.digest} is not in repository ${repository}`);
          await requireStored(this.blobs, d.digest);
          try {
            return parseManifest((await this.load(d.digest)).raw);
          } catch (e) {
            if (e instanceof UnknownError) throw new ManifestReferenceError(d.digest, `manifest ${d.digest} is not stored`);
            return undefined; // a child that is not a manifest refers to nothing
          }
        });
        if (child && depth < 8) await this.checkReferences(repository, child, seen, depth + 1);
      }
    }
  }

  /** Removes a revision link the collector found unreachable (no-op when gone). */
  async forgetRevision(repository: string, digest: Digest): Promise<void> {
    try {
      await this.deleteLinkDir(pathFor({ kind: "manifestRevisionDir", name: repository, digest }));
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
  }

  /** Forgets the cached bytes of a manifest the collector deleted. */
  collected(digest: Digest): void {
    this.lru.delete(digest);
  }

  async hasRevision(repository: string, digest: Digest): Promise<boolean> {
    return (await this.readLink(pathFor({ kind: "manifestRevisionLink", name: repository, digest }))) !== undefined;
  }

  /**
   * Points a tag at a manifest: one atomic write of its link. Concurrent pushes of one tag are
   * serialised (last one wins whole).
   */
  async tag(repository: string, tag: string, digest: Digest): Promise<void> {
    const link = pathFor({ kind: "tagCurrentLink", name: repository, tag });
    await this.locks.withLock(`tag:${repository}:${tag}`, async (lease) => {
      if (await this.checkImmutable(repository, tag, digest)) return;
      await this.tagIndex.change(repository, tag, true, lease, () => this.writeLink(link, digest, lease.signal));
    });
  }

  /**
   * Throws DeniedError when `tag` is immutable and names another manifest; true when it is
   * immutable and already names `digest` (nothing to write).
   */
  private async checkImmutable(repository: string, tag: string, digest: Digest): Promise<boolean> {
    const rule = this.immutable?.ruleFor(repository, tag);
    if (rule === undefined) return false;
    const current = await BlobStore.readLink(this.driver, pathFor({ kind: "tagCurrentLink", name: repository, tag }));
    if (current === undefined) return false;
    if (current === digest) return true;
    throw new DeniedError(`tag ${repository}:${tag} is immutable (${rule}): it points at ${current} and cannot be moved`);
  }

  /**
   * Deletes a tag; throws UnknownError("manifest") when it does not exist. Removing the link
   * is the commit point (the driver then prunes the emptied directories); directories an
   * interrupted write or delete left without a link are removed too.
   */
  async untag(repository: string, tag: string): Promise<void> {
    const link = pathFor({ kind: "tagCurrentLink", name: repository, tag });
    const rule = this.immutable?.ruleFor(repository, tag);
    if (rule !== undefined && (await tagLinkExists(this.driver, repository, tag))) throw new DeniedError(`tag ${repository}:${tag} is immutable (${rule}) and cannot be deleted`);
    await this.locks.withLock(`tag:${repository}:${tag}`, (lease) =>
      this.tagIndex.change(repository, tag, false, lease, async () => {
        this.links?.delete(link);
        try {
          await this.driver.delete(link, lease.signal);
          return;
        } catch (e) {
          if (!isNotFound(e)) throw e;
        }
        await this.driver.delete(pathFor({ kind: "tag", name: repository, tag }), lease.signal).catch(() => {});
        throw new UnknownError("manifest", tag);
      }),
    );
  }

  /** Deletes a manifest revision, every tag of the repository pointing at it, and its referrer link. */
  async delete(repository: string, digest: Digest): Promise<void> {
    const m = await this.get(repository, { digest });
    const pointing: string[] = [];
    for (const tag of (await this.tagIndex.tags(repository)) ?? []) {
      const d = await this.readLink(pathFor({ kind: "tagCurrentLink", name: repository, tag }));
      if (d !== digest) continue;
      const rule = this.immutable?.ruleFor(repository, tag);
      if (rule !== undefined) throw new DeniedError(`manifest ${digest} is tagged ${repository}:${tag}, which is immutable (${rule})`);
      pointing.push(tag);
    }
    for (const tag of pointing) await this.untag(repository, tag);
    let parsed: ParsedManifest | undefined;
    try {
      parsed = parseManifest(m.raw);
    } catch {
      parsed = undefined;
    }
    if (parsed?.subject) {
      try {
        await this.driver.delete(pathFor({ kind: "referrerDir", name: repository, subject: parsed.subject.digest, digest }));
      } catch (e) {
        if (!isNotFound(e)) throw e;
      }
    }
    try {
      await this.deleteLinkDir(pathFor({ kind: "manifestRevisionDir", name: repository, digest }));
    } catch (e) {
      if (isNotFound(e)) throw new UnknownError("manifest", digest);
      throw e;
    }
  }

  async tags(repository: string): Promise<string[]> {
    const tags = await this.tagIndex.tags(repository);
    if (tags === undefined) throw new UnknownError("repository", repository);
    return tags;
  }

  /** Descriptors of the manifests whose subject is `subject`, optionally filtered by artifactType. */
  async referrers(repository: string, subject: Digest, artifactType?: string): Promise<Descriptor[]> {
    const out: Descriptor[] = [];
    for (const algKey of (await listAll(this.driver, pathFor({ kind: "referrersOf", name: repository, subject }))) ?? []) {
      for (const dir of (await listAll(this.driver, algKey)) ?? []) {
        let desc: Descriptor;
        try {
          desc = JSON.parse((await this.driver.getContent(`${dir}/link`)).toString("utf8")) as Descriptor;
        } catch (e) {
          if (isNotFound(e)) continue;
          throw e;
        }
        if (artifactType === undefined || desc.artifactType === artifactType) out.push(desc);
      }
    }
    return out.sort((a, b) => (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0));
  }
}

function referrerDescriptor(m: ParsedManifest, digest: Digest, size: number): Descriptor {
  const artifactType = m.artifactType ?? (m.kind === "manifest" ? m.config.mediaType : undefined);
  const desc: Descriptor = { mediaType: m.mediaType, digest, size };
  if (artifactType) desc.artifactType = artifactType;
  if (m.annotations) desc.annotations = m.annotations;
  return desc;
}

/** Whether a tag's link exists in storage (the tag is committed). */
export async function tagLinkExists(driver: StorageDriver, repository: string, tag: string): Promise<boolean> {
  try {
    return !(await driver.stat(pathFor({ kind: "tagCurrentLink", name: repository, tag }))).isDir;
  } catch (e) {
    if (isNotFound(e)) return false;
    throw e;
  }
}

/** `fn` over `items` with at most `n` running at once; results in order. */
export async function mapLimit<T, R>(items: readonly T[], n: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  return out;
}

/** Tag index read straight from storage (embedded mode): the tag directories whose link exists. */
export class StorageTagIndex implements TagIndex {
  constructor(private readonly driver: StorageDriver) {}

  async tags(repository: string): Promise<string[] | undefined> {
    const keys = await listAll(this.driver, pathFor({ kind: "tagsRoot", name: repository }));
    if (keys === undefined) return (await this.repositoryExists(repository)) ? [] : undefined;
    const names = keys.map(baseName);
    const committed = await mapLimit(names, 16, (t) => tagLinkExists(this.driver, repository, t));
    return names.filter((_, i) => committed[i]).sort(byteOrder);
  }

  private async repositoryExists(repository: string): Promise<boolean> {
    try {
      await this.driver.stat(pathFor({ kind: "repository", name: repository }));
      return true;
    } catch (e) {
      if (isNotFound(e)) return false;
      throw e;
    }
  }

  async change(_repository: string, _tag: string, _present: boolean, _lease: Lease, write: () => Promise<void>): Promise<void> {
    await write();
  }
}

export function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** The `<root>/<alg>/<hex>` directories below `root` (revisions, layers, referrers), with the digest each names. */
export async function digestDirs(driver: StorageDriver, root: string): Promise<{ digest: Digest; dir: string }[]> {
  const out: { digest: Digest; dir: string }[] = [];
  for (const alg of (await listAll(driver, root)) ?? []) {
    for (const dir of (await listAll(driver, alg)) ?? []) {
      const digest = tryParseDigest(`${baseName(alg)}:${baseName(dir)}`);
      if (digest) out.push({ digest, dir });
    }
  }
  return out;
}

/** Every child key of `key` (all pages), or undefined when `key` does not exist. */
export async function listAll(driver: StorageDriver, key: string): Promise<string[] | undefined> {
  const out: string[] = [];
  let after: string | undefined;
  for (;;) {
    let page: { keys: string[]; truncated: boolean };
    try {
      page = await driver.list(key, { after, limit: 1000 });
    } catch (e) {
      if (isNotFound(e)) return out.length ? out : undefined;
      throw e;
    }
    out.push(...page.keys);
    if (!page.truncated || page.keys.length === 0) return out;
    after = page.keys[page.keys.length - 1];
  }
}
