/**
 * `docker://REF`: an image in a registry, as an ImageSource (manifests and blobs through the pull
 * client, every byte verified) and as an ImageDestination (registry/push.ts; the mapping is
 * described on ImageDestination in types.ts).
 *
 * Credentials are the ones `strata login` stored for the registry (Docker's config.json or its
 * credential helper), under the pull client's rules. Plain HTTP for loopback hosts and for hosts
 * named in `insecureRegistries`.
 */
import type { Readable } from "node:stream";
import { type Digest, digestOf, parseReference, type Reference } from "@strata/core";
import { getCredentials } from "../credentials/docker-config.js";
import { type Credentials } from "../registry/auth.js";
import { RegistryClient, RegistryError } from "../registry/client.js";
import { RegistryWriter } from "../registry/push.js";
import { verifiedChunks } from "./chunks.js";
import { alreadyVerified, verifying } from "./files.js";
import { targetFromManifest } from "./manifests.js";
import { type BlobRef, type ImageDestination, type ImageSource, type PutBlobExpectation, type SourceTarget, TransportError, TransportUsageError } from "./types.js";

const GZIP_MAGIC = Buffer.from([0x1f, 0x8b]);

export interface RegistryContext {
  insecureRegistries?: readonly string[];
  /** Overrides the stored credentials (tests, `--creds`). */
  credentials?: Credentials;
  /** The destination writes Docker schema2 manifests when it builds one (default) or OCI ones. */
  format?: "docker" | "oci";
}

function parseRef(name: string, ref: string): Reference {
  try {
    return parseReference(ref);
  } catch (e) {
    throw new TransportUsageError(`${name}: ${(e as Error).message}`);
  }
}

async function clientFor(ref: Reference, ctx: RegistryContext): Promise<RegistryClient> {
  let credentials = ctx.credentials;
  if (!credentials) {
    try {
      credentials = await getCredentials(ref.domain);
    } catch (e) {
      throw new TransportError(`credentials for ${ref.domain}: ${(e as Error).message}`);
    }
  }
  return new RegistryClient({ domain: ref.domain, insecureRegistries: ctx.insecureRegistries, credentials });
}

/** "domain/repository": how a source names itself for cross-repository mounts. */
function fullName(ref: Reference): string {
  return `${ref.domain}/${ref.repository}`;
}

class DockerSource implements ImageSource {
  readonly sourceRepository: string;
  constructor(
    readonly name: string,
    private readonly ref: Reference,
    private readonly client: RegistryClient,
  ) {
    this.sourceRepository = fullName(ref);
  }

  private readConfig = (d: { digest: Digest; size: number }) => this.client.readBlob(this.ref.repository, d);

  async resolve(): Promise<SourceTarget> {
    const reference = this.ref.digest ?? this.ref.tag ?? "latest";
    const m = await this.client.getManifest(this.ref.repository, reference);
    return targetFromManifest({ raw: m.raw, mediaType: m.contentType, digest: m.digest }, this.readConfig, this.name);
  }

  async child(desc: { digest: Digest; size: number; mediaType: string }): Promise<SourceTarget> {
    const m = await this.client.getManifest(this.ref.repository, desc.digest);
    if (m.raw.length !== desc.size) throw new TransportError(`${this.name}: manifest ${desc.digest} has ${m.raw.length} bytes, the index says ${desc.size}`);
    return targetFromManifest({ raw: m.raw, mediaType: m.contentType || desc.mediaType, digest: m.digest }, this.readConfig, this.name);
  }

  async blob(ref: BlobRef): Promise<Readable> {
    const check = verifying({ digest: ref.digest, size: ref.size }, (e) => new TransportError(`${this.name}: blob ${ref.digest}: ${e.message}`));
    const src = this.client.blobStream(this.ref.repository, ref);
    src.on("error", (e) => check.destroy(e));
    return src.pipe(check);
  }

  async blobChunks(ref: BlobRef, signal?: AbortSignal): Promise<AsyncIterable<Buffer>> {
    return verifiedChunks(this.client.blobChunks(this.ref.repository, ref, { signal }), ref, (e) => new TransportError(`${this.name}: blob ${ref.digest}: ${e.message}`));
  }

  async close(): Promise<void> {}
}

export class DockerDestination implements ImageDestination {
  readonly layers = "keep" as const;
  readonly acceptsIndex = true;
  readonly manifestFormat: "docker" | "oci";
  private readonly writer: RegistryWriter;

  private constructor(
    readonly name: string,
    private readonly ref: Reference,
    client: RegistryClient,
    format: "docker" | "oci",
  ) {
    this.writer = new RegistryWriter(client, ref.repository);
    this.manifestFormat = format;
  }

  static async create(name: string, refText: string, ctx: RegistryContext = {}): Promise<DockerDestination> {
    const ref = parseRef(name, refText);
    return new DockerDestination(name, ref, await clientFor(ref, ctx), ctx.format ?? "docker");
  }

  async hasBlob(ref: BlobRef, hints?: { sourceRepository?: string }): Promise<boolean | { mountedFrom: string }> {
    if (await this.writer.hasBlob(ref.digest, ref.size)) return true;
    const from = hints?.sourceRepository;
    const prefix = `${this.ref.domain}/`;
    if (from && from.startsWith(prefix) && from !== fullName(this.ref)) {
      const repo = from.slice(prefix.length);
      return (await this.writer.mount(ref.digest, repo)) ? { mountedFrom: repo } : false;
    }
    return false;
  }

  async reuseBlob(known: readonly { digest: Digest; repository: string }[]): Promise<{ digest: Digest; size: number; mountedFrom?: string } | undefined> {
    const prefix = `${this.ref.domain}/`;
    const here = fullName(this.ref);
    // blobs from this registry only (at most 4 tried, as many registries limit mount attempts)
    for (const k of known.filter((k) => k.repository.startsWith(prefix)).slice(0, 4)) {
      let size = await this.writer.statBlob(k.digest);
      let mountedFrom: string | undefined;
      if (size === undefined && k.repository !== here && (await this.writer.mount(k.digest, k.repository.slice(prefix.length)))) {
        mountedFrom = k.repository.slice(prefix.length);
        size = await this.writer.statBlob(k.digest);
      }
      // the store's metadata does not say how a blob was compressed: only a gzip one can stand for the layer
      if (size !== undefined && (await this.writer.startsWith(k.digest, GZIP_MAGIC))) return { digest: k.digest, size, ...(mountedFrom ? { mountedFrom } : {}) };
    }
    return undefined;
  }

  async putBlob(data: Readable, expect: PutBlobExpectation): Promise<{ digest: Digest; size: number }> {
    const known = expect.size !== undefined && expect.size >= 0 ? expect.size : undefined;
    // a source's verifying stream for exactly this blob fails before its end unless it matches
    const preverified = known !== undefined && alreadyVerified(data, { digest: expect.digest, size: known });
    return this.writer.uploadBlob(data, { digest: expect.digest, size: expect.size, preverified, onProgress: expect.onProgress, reread: expect.reread });
  }

  async putBlobChunks(
    chunks: AsyncIterable<Buffer>,
    expect: BlobRef,
    onProgress?: (bytes: number) => void,
    reread?: () => Promise<AsyncIterable<Buffer>>,
    present?: Promise<boolean | { mountedFrom: string }>,
  ): Promise<{ digest: Digest; size: number; present?: true | { mountedFrom: string } }> {
    return this.writer.uploadBlob(chunks, { digest: expect.digest, size: expect.size, preverified: true, reusedChunks: true, onProgress, reread, present });
  }

  async putManifest(m: { raw: Buffer; mediaType: string }, opts: { top: boolean }): Promise<Digest> {
    const digest = digestOf(m.raw);
    // children by digest; the top one by the reference's tag (or digest)
    const reference = opts.top ? (this.ref.digest ?? this.ref.tag ?? "latest") : digest;
    if (opts.top && this.ref.digest && this.ref.digest !== digest) {
      throw new TransportError(`${this.name}: the image's manifest is ${digest}, not the digest named`);
    }
    return this.writer.putManifest(m.raw, m.mediaType, reference);
  }

  async commit(): Promise<void> {
    await this.writer.settle();
  }

  async abort(): Promise<void> {
    await this.writer.settle();
    await this.writer.abortAll();
  }
}

/** A client for the registry a `docker://` reference (without the prefix) names, with the reference parsed. */
export async function registryOf(refText: string, ctx: RegistryContext = {}): Promise<{ ref: Reference; client: RegistryClient }> {
  const ref = parseRef(`docker://${refText}`, refText);
  return { ref, client: await clientFor(ref, ctx) };
}

export async function dockerSource(name: string, refText: string, ctx: RegistryContext = {}): Promise<ImageSource> {
  const ref = parseRef(name, refText);
  return new DockerSource(name, ref, await clientFor(ref, ctx));
}

export { RegistryError };
