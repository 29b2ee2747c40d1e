/**
 * Image transports as two small roles. A copy reads from an ImageSource and writes to an
 * ImageDestination; neither knows the other's kind (OCI layout, archive, store, registry).
 *
 * Contracts:
 * - Every byte an ImageSource hands out is verified: `blob()` streams fail before their end when
 *   the content differs from the digest/size asked for, manifests are checked against their
 *   descriptors before they are returned.
 * - An ImageDestination verifies what it is given while it writes (digest and size) and makes
 *   nothing visible until `commit()`; `abort()` removes everything the copy wrote.
 */
import type { Readable } from "node:stream";
import type { DiffID, Digest, LayerCompression, ParsedImageManifest, ParsedIndex, Platform } from "@strata/core";

/** A blob by content: `size` is -1 when the source does not know it before reading. */
export interface BlobRef {
  readonly digest: Digest;
  readonly size: number;
  readonly mediaType: string;
}

export interface SourceLayer {
  /** The blob as the source keeps it. */
  readonly blob: BlobRef;
  readonly compression: LayerCompression;
  /** From the image config (absent for artifacts whose config is not an image config). */
  readonly diffId?: DiffID;
  /**
   * Compressed (gzip) blobs known to hold this layer and the registry repositories
   * ("domain/path") they came from (the store's distribution metadata), so a registry
   * destination can reuse one instead of uploading the layer again.
   */
  readonly knownBlobs?: readonly { readonly digest: Digest; readonly repository: string }[];
}

export interface ManifestBytes {
  readonly raw: Buffer;
  readonly mediaType: string;
  readonly digest: Digest;
}

export interface SourceImage {
  /** The manifest exactly as the source stores it; absent when the source keeps none (docker-archive, store). */
  readonly manifest?: ManifestBytes & { readonly parsed: ParsedImageManifest };
  readonly config: BlobRef;
  /** The config bytes (already verified against `config`). */
  readonly configRaw: Buffer;
  readonly layers: readonly SourceLayer[];
  readonly platform?: Platform;
}

export type SourceTarget = { readonly kind: "index"; readonly index: ManifestBytes & { readonly parsed: ParsedIndex } } | { readonly kind: "image"; readonly image: SourceImage };

export interface ImageSource {
  /** The transport name as given (for messages). */
  readonly name: string;
  /** A registry source: "domain/repository", so a destination on the same registry can mount its blobs. */
  readonly sourceRepository?: string;
  /** What the source reference names: an index or one image. */
  resolve(): Promise<SourceTarget>;
  /** A manifest an index names (image manifest or nested index), verified against `desc`. */
  child(desc: { digest: Digest; size: number; mediaType: string }): Promise<SourceTarget>;
  /** A blob's bytes; the stream errors before its end unless they match `ref`. */
  blob(ref: BlobRef): Promise<Readable>;
  /**
   * Optional: the same bytes as chunks of reused buffers (transports/chunks.ts): a chunk is valid
   * until the iterator's next `next()`; the iteration throws before its end unless they match `ref`.
   * `signal`: aborting it ends a read not needed any more (a request still waiting is cut).
   */
  blobChunks?(ref: BlobRef, signal?: AbortSignal): Promise<AsyncIterable<Buffer>>;
  close(): Promise<void>;
}

export interface PutBlobExpectation {
  /** When given, the content must have this digest (and `size` when >= 0): checked while writing. */
  readonly digest?: Digest;
  readonly size?: number;
  readonly mediaType: string;
  /** Told the bytes read so far, as they go out. */
  readonly onProgress?: (bytes: number) => void;
  /**
   * The same content produced again from its start (a layer recompressed from its source: the
   * compressor is deterministic), for a destination whose upload broke off where it cannot
   * resume: it may start over from this instead of keeping the bytes sent (see
   * ImageDestination.putBlobChunks' `reread`). Without `digest`, what counts is the content of
   * the attempt that completes.
   */
  readonly reread?: () => Promise<Readable>;
}

/**
 * A registry (`docker://`) implements this role with the client's HTTP stack:
 *   hasBlob     HEAD /v2/<name>/blobs/<digest>; when `hints.sourceRepository` is on the same
 *               registry, POST /v2/<name>/blobs/uploads/?mount=<digest>&from=<repo> first (201: there)
 *   putBlob     POST an upload session, stream the bytes (PATCH chunks or one PUT), close it with
 *               PUT ?digest=<expected or computed>; check Docker-Content-Digest against it
 *   putManifest PUT /v2/<name>/manifests/<digest> for children, /<tag> for the top one, with the
 *               manifest's media type; check Docker-Content-Digest = sha256 of the bytes sent
 *   commit      nothing left: the top manifest PUT is the commit point
 *   abort       DELETE the upload sessions still open (pushed blobs stay; unreferenced, the
 *               registry's garbage collection takes them)
 * with `layers: "keep"`, `manifestFormat: "docker"` (schema2 by default, "oci" on request) and
 * `acceptsIndex: true`.
 */
export interface ImageDestination {
  readonly name: string;
  /**
   * What the destination stores as layers: `keep` stores blobs as they come (compressed or not);
   * `uncompressed` needs plain tars whose digest is the diffID (docker-archive).
   */
  readonly layers: "keep" | "uncompressed";
  /** The manifest format used when a manifest must be built (the source keeps none). */
  readonly manifestFormat: "oci" | "docker";
  /** Whether it can hold an index (multi-platform image). */
  readonly acceptsIndex: boolean;
  /**
   * Whether the blob is already there, so the copy can skip it. A registry answers this with
   * HEAD, or by mounting it from `hints.sourceRepository` on the same registry (then it says
   * which repository it came from).
   */
  hasBlob(ref: BlobRef, hints?: { sourceRepository?: string }): Promise<boolean | { mountedFrom: string }>;
  /**
   * Streams a blob in. With `expect.digest` the bytes are verified (digest, and size when >= 0)
   * while they are written; without it the digest is computed. Nothing is visible at the
   * destination unless the whole blob arrived and matched. Resolves with what was stored.
   */
  putBlob(data: Readable, expect: PutBlobExpectation): Promise<{ digest: Digest; size: number }>;
  /**
   * Optional: `putBlob` for `ImageSource.blobChunks(ref)` of a `ref` with a known size (or for
   * bytes the source already verified, such as `SourceImage.configRaw`): the chunks are verified
   * against `ref` (the iteration fails before its end otherwise), so they are counted, not hashed
   * again; each is used before the next is asked for, or copied. `reread`: a new read of the same
   * blob from byte 0, verified the same way (a source that can be read again): an upload broken
   * off then starts over from it instead of keeping the bytes sent for a resume. `present`: this
   * destination's `hasBlob(ref)`, run beside the upload's start (the session opened and the first
   * chunk asked for while it is answered); when it finds the blob, nothing is sent, the upload is
   * dropped and the result carries that answer as `present`.
   */
  putBlobChunks?(
    chunks: AsyncIterable<Buffer>,
    ref: BlobRef,
    onProgress?: (bytes: number) => void,
    reread?: () => Promise<AsyncIterable<Buffer>>,
    present?: Promise<boolean | { mountedFrom: string }>,
  ): Promise<{ digest: Digest; size: number; present?: true | { mountedFrom: string } }>;
  /** Optional: one of `knownBlobs` made present at the destination (found or mounted), with its size; undefined when none could be. */
  reuseBlob?(knownBlobs: NonNullable<SourceLayer["knownBlobs"]>): Promise<{ digest: Digest; size: number; mountedFrom?: string } | undefined>;
  /**
   * Stores a manifest or index (exact bytes). `top` marks the one the destination reference
   * names (tagged); the others are children of an index. Resolves with its digest.
   */
  putManifest(m: { raw: Buffer; mediaType: string }, opts: { top: boolean }): Promise<Digest>;
  /** Makes the copy visible (index.json, archive rename, registry: nothing left to do). */
  commit(): Promise<void>;
  /** Removes everything this copy wrote. Safe after a failed or partial copy. */
  abort(): Promise<void>;
}

/** A copy failure caused by bad input (a lying archive, a missing image), not by a bug. */
export class TransportError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "TransportError";
  }
}

/** A usage error (bad transport name, impossible option combination): exit code 2. */
export class TransportUsageError extends Error {
  readonly exitCode = 2;
  constructor(message: string) {
    super(message);
    this.name = "TransportUsageError";
  }
}
