/**
 * Blob uploads. Bytes go to the session's upload key (never a blob key); the running digest
 * is kept as a resumable hash state in the session. On completion the digest is checked
 * and only then the data is committed and moved to the blob's content address (or, where the
 * driver's writer can, committed straight to it: FileWriter.commitTo), so a blob is never
 * visible before it is verified.
 *
 * Crash and failure behaviour (every step of one upload runs under its lock, see locks.ts):
 * - A chunk is persisted (writer.close) before the session is advanced. When the session
 *   update fails after that (Redis down or failing over, the lease lost), the new offset and
 *   hash state are written to the upload's `progress` key in storage and the request fails;
 *   the next request finds the data one step ahead of the session and rolls it forward.
 *   Data ahead of the session with no matching progress record (a kill in that window) makes
 *   the upload unknown: never a wrong byte count.
 * - Completion (PUT) never advances the session before the blob is published, so it can be
 *   retried: a retry after an interruption finds the data already committed or the blob
 *   already published, checks that the bytes are the ones the digest names, and finishes.
 *   A completed session is kept for a while, so a PUT retried after a success whose answer
 *   was lost is answered 201 as well.
 * - Sessions expire by last activity; the purger removes the data of expired sessions (never
 *   while the upload's lock is held, i.e. while a chunk is arriving) and, after a grace
 *   period, upload data in any repository that no session owns any more.
 */
import { randomUUID } from "node:crypto";
import { type Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createDigester, createVerifier, type Digest, DigestMismatchError, digestAlgorithm } from "@strata/core";
import { BadRequestError, UnavailableError, UnknownError, UploadRangeError } from "../errors.js";
import type { Lease, Locker } from "../locks.js";
import type { BlobStore } from "../services/blobs.js";
import { type GcState, requireStored } from "../services/gc.js";
import { type Allowance, type QuotaGate, quotaDenied } from "../services/usage.js";
import { type RepositoryIndex, walkUploads } from "../services/catalog.js";
import { type FileWriter, isNotFound, type StorageDriver, StorageUnavailableError } from "../storage/driver.js";
import { blobOfDataKey, pathFor, uploadOfDataKey } from "../storage/paths.js";
import { IncompatibleHashStateError, ResumableHash } from "./hashstate.js";
import type { SessionStore, UploadSession } from "./sessions.js";

export interface ChunkRange {
  /** Inclusive first byte offset the client says this chunk starts at. */
  start: number;
  /** Inclusive last byte offset, when given. */
  end?: number;
}

export interface UploadOptions {
  ttlSeconds: number;
  /** 0 = unlimited */
  maxBlobBytes: number;
  /** Upload data no session owns is purged once untouched for this long. */
  orphanGraceSeconds: number;
  /** Quotas (services/usage.ts); absent: none. */
  quota?: QuotaGate;
}

export function uploadLocation(repository: string, id: string): string {
  return `/v2/${repository}/blobs/uploads/${id}`;
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

interface Progress {
  offset: number;
  hashState: string;
}

const isUnavailable = (e: unknown) => e instanceof UnavailableError || e instanceof StorageUnavailableError;

export class UploadService {
  constructor(
    private readonly driver: StorageDriver,
    private readonly sessions: SessionStore,
    private readonly blobs: BlobStore,
    private readonly repos: RepositoryIndex,
    private readonly locks: Locker,
    private readonly gc: GcState,
    private readonly opts: UploadOptions,
  ) {}

  async start(repository: string): Promise<UploadSession> {
    const now = Date.now();
    const s: UploadSession = { id: randomUUID(), repository, offset: 0, hashState: ResumableHash.create().save(), startedAt: now, updatedAt: now };
    await this.sessions.create(s);
    return s;
  }

  /** The session (also a completed one), or UnknownError("upload") when unknown, expired or of another repository. */
  private async find(repository: string, id: string): Promise<UploadSession> {
    if (!UUID_RE.test(id)) throw new UnknownError("upload", id);
    const s = await this.sessions.get(id);
    if (!s || s.repository !== repository) throw new UnknownError("upload", id);
    if (!s.completed && s.updatedAt < Date.now() - this.opts.ttlSeconds * 1000 && !(await this.locks.isHeld(`upload:${id}`))) {
      throw new UnknownError("upload", id);
    }
    return s;
  }

  /** The live session, or UnknownError("upload") when unknown, expired, complete or of another repository. */
  async get(repository: string, id: string): Promise<UploadSession> {
    const s = await this.find(repository, id);
    if (s.completed) throw new UnknownError("upload", id);
    return s;
  }

  /**
   * The session for a status request (GET), rolled forward first when a failed session update
   * left a progress record ahead of it.
   */
  async status(repository: string, id: string): Promise<UploadSession> {
    const s = await this.get(repository, id);
    const progress = await this.readProgress(s);
    if (!progress || progress.offset <= s.offset) return s;
    return this.locks.withLock(`upload:${id}`, async (lease) => {
      const cur = await this.get(repository, id);
      const writer = await this.openWriter(cur, lease, 0);
      if (!writer) return this.forget(cur, lease);
      await writer.close();
      return cur;
    });
  }

  /** Appends a chunk (PATCH). Returns the session after the chunk. */
  async append(repository: string, id: string, body: Readable, range?: ChunkRange, contentLength?: number): Promise<UploadSession> {
    await this.get(repository, id);
    return this.locks.withLock(`upload:${id}`, async (lease) => {
      const s = await this.get(repository, id);
      const writer = await this.openWriter(s, lease, contentLength);
      if (!writer) return this.forget(s, lease);
      let allow: Allowance | undefined;
      try {
        this.checkRange(s, range, contentLength);
        allow = await this.opts.quota?.allowance(repository);
        if (allow && contentLength !== undefined && s.offset + contentLength > allow.bytes) throw quotaDenied(allow, repository, s.offset + contentLength);
      } catch (e) {
        await writer.close();
        throw e;
      }
      const hash = this.loadHash(s);
      const failure = await this.receive(s, writer, hash, body, contentLength, allow);
      await this.persist(s, writer, hash, lease);
      if (failure) throw failure;
      return s;
    });
  }

  /**
   * Completes an upload (PUT ?digest=), with an optional final chunk. Verifies the digest,
   * publishes the blob and links it into the repository. Returns the blob's size.
   */
  async complete(repository: string, id: string, digest: Digest, body: Readable | undefined, range?: ChunkRange, contentLength?: number): Promise<number> {
    const first = await this.find(repository, id);
    if (first.completed) return this.completedAgain(first, digest, body);
    return this.locks.withLock(`upload:${id}`, async (lease) => {
      const s = await this.find(repository, id);
      if (s.completed) return this.completedAgain(s, digest, body);
      if (body) this.checkRange(s, range, contentLength);
      if (body && s.offset === 0) {
        // The whole blob arrives in this request: stream it straight to its content address.
        const size = await this.monolithic(repository, digest, body, contentLength);
        await this.markCompleted(s, digest, size, lease);
        return size;
      }
      const writer = await this.openWriter(s, lease, body ? contentLength : 0);
      if (!writer) return this.finishInterrupted(s, digest, body, contentLength, lease);
      const hash = this.loadHash(s);
      let allow: Allowance | undefined;
      try {
        allow = await this.opts.quota?.allowance(repository, digest);
        const total = s.offset + (contentLength ?? 0);
        if (allow && total > allow.bytes) throw quotaDenied(allow, repository, total);
      } catch (e) {
        await writer.close();
        throw e;
      }
      if (body) {
        const failure = await this.receive(s, writer, hash, body, contentLength, allow);
        if (failure) {
          // Keep what arrived, so that the client can resume from there.
          await this.persist(s, writer, hash, lease);
          throw failure;
        }
      }
      // From here on `s` holds the final size in memory only: the stored session still names
      // the data as it was before this request, so that this request can be repeated.
      let committed = false;
      try {
        if (this.opts.maxBlobBytes > 0 && s.offset > this.opts.maxBlobBytes) throw new BadRequestError("size", "blob exceeds the size limit");
        let actual: Digest;
        if (hash.algorithm === digestAlgorithm(digest)) {
          actual = hash.digest();
        } else {
          // Another algorithm than the running hash: publish the data at its upload key
          // (never a blob key) and hash it from there.
          await writer.commit();
          committed = true;
          actual = await this.rehash(s, digest);
        }
        if (actual !== digest) throw new DigestMismatchError(digest, actual);
        if (!committed && !writer.commitTo) await writer.commit();
      } catch (e) {
        if (isUnavailable(e)) throw e;
        if (!committed) await writer.cancel().catch(() => {});
        await this.discard(s, lease);
        throw e;
      }
      if (!committed && writer.commitTo) return this.publishDirect(s, digest, writer, lease);
      return this.publish(s, digest, s.offset, lease);
    });
  }

  /**
   * A whole blob in one request with its digest known up front (POST ?digest=, or PUT with the
   * entire body): written through a writer at the blob's own key, which publishes nothing
   * until commit(), and committed only after the digest matched. Uploads of one digest are
   * serialised; when the blob is already stored the body is only verified.
   */
  async monolithic(repository: string, digest: Digest, body: Readable, contentLength?: number): Promise<number> {
    const key = pathFor({ kind: "blobData", digest });
    const limit = this.opts.maxBlobBytes;
    const allow = await this.opts.quota?.allowance(repository, digest);
    if (allow && contentLength !== undefined && contentLength > allow.bytes) throw quotaDenied(allow, repository, contentLength);
    const check = (n: number) => {
      if (limit > 0 && n > limit) throw new BadRequestError("size", "blob exceeds the size limit");
      if (allow && n > allow.bytes) throw quotaDenied(allow, repository, n);
    };
    const size = await this.locks.withLock(`blob:${digest}`, async (lease) => {
      const existing = await this.blobs.globalSize(digest);
      const verifier = createVerifier({ digest, size: contentLength, maxSize: limit > 0 ? limit : undefined });
      if (existing !== undefined) {
        if (allow && existing > allow.bytes) throw quotaDenied(allow, repository, existing);
        await pipeline(body, verifier, new Writable({ write: (_c, _e, cb) => cb() }));
        await this.linkHeld(repository, digest, existing);
        return existing;
      }
      const writer = await this.driver.writer(key, { size: contentLength, signal: lease.signal });
      const hash = ResumableHash.create(digestAlgorithm(digest));
      let n = 0;
      try {
        for await (const chunk of body as AsyncIterable<Buffer>) {
          n += chunk.length;
          check(n);
          await writer.write(chunk);
          hash.update(chunk);
        }
        if (contentLength !== undefined && n !== contentLength) throw new BadRequestError("size", `received ${n} bytes, Content-Length said ${contentLength}`);
        const actual = hash.digest();
        if (actual !== digest) throw new DigestMismatchError(digest, actual);
      } catch (e) {
        await writer.cancel().catch(() => {});
        throw e;
      }
      await writer.commit();
      await this.blobs.noteVerified(digest).catch(() => {});
      await this.linkHeld(repository, digest, n);
      return n;
    });
    await this.repos.added(repository);
    return size;
  }

  /**
   * Links a stored blob into a repository; called under the blob's lock, after the bytes were
   * found or written, and protects the blob from a running collection (services/gc.ts).
   */
  private async linkHeld(repository: string, digest: Digest, size: number): Promise<void> {
    await this.blobs.link(repository, digest, size);
    this.opts.quota?.linked(repository, digest, size);
    await this.gc.protect(digest);
  }

  /**
   * Cross-repository mount of a blob the caller may read (its size given): under the blob's
   * lock, checks the bytes are still stored, links and protects them. Undefined when the blob
   * went meanwhile (the client then uploads it).
   */
  async mount(repository: string, digest: Digest, size: number): Promise<number | undefined> {
    const allow = await this.opts.quota?.allowance(repository, digest);
    if (allow && size > allow.bytes) throw quotaDenied(allow, repository, size);
    const linked = await this.locks.withLock(`blob:${digest}`, async () => {
      const stored = await requireStored(this.blobs, digest, size).catch(() => undefined);
      if (stored === undefined) return undefined;
      await this.linkHeld(repository, digest, stored);
      return stored;
    });
    if (linked !== undefined) await this.repos.added(repository);
    return linked;
  }

  /** Cancels an upload (DELETE). */
  async cancel(repository: string, id: string): Promise<void> {
    const s = await this.get(repository, id);
    await this.locks.withLock(`upload:${s.id}`, (lease) => this.discard(s, lease));
  }

  /**
   * One purge pass. Removes sessions untouched for longer than the TTL with their data (never
   * an upload whose lock is held: a chunk is arriving), then upload data in any repository that
   * no live session owns, once untouched for the grace period. Returns how many uploads went.
   */
  async purge(): Promise<number> {
    let n = 0;
    for (const stale of await this.sessions.expired(Date.now() - this.opts.ttlSeconds * 1000)) {
      if (await this.locks.isHeld(`upload:${stale.id}`)) continue;
      await this.locks.withLock(`upload:${stale.id}`, async (lease) => {
        const s = await this.sessions.get(stale.id);
        if (s && (s.completed || s.updatedAt >= Date.now() - this.opts.ttlSeconds * 1000)) return;
        await this.discard(s ?? stale, lease);
        n++;
      });
    }
    const graceCutoff = Date.now() - this.opts.orphanGraceSeconds * 1000;
    for (const { repository, id } of await walkUploads(this.driver)) {
      if (!UUID_RE.test(id) || (await this.isLive(id))) continue;
      const info = await this.driver.stat(pathFor({ kind: "upload", name: repository, id })).catch(() => undefined);
      if (!info || info.modTime.getTime() >= graceCutoff) continue;
      await this.locks.withLock(`upload:${id}`, async (lease) => {
        if (await this.hasLiveSession(id)) return;
        await this.deleteData(repository, id, lease);
        n++;
      });
    }
    return n;
  }

  /**
   * Whether an object store's unfinished multipart upload at `key` may still be written to:
   * upload data of a live session or whose lock is held, blob data whose writer holds the
   * blob's lock. (Everything else is debris of a crash, for the purger to abort.)
   */
  async writerMayBeLive(key: string): Promise<boolean> {
    const upload = uploadOfDataKey(key);
    if (upload) return UUID_RE.test(upload.id) && (await this.isLive(upload.id));
    const digest = blobOfDataKey(key);
    return digest !== undefined && (await this.locks.isHeld(`blob:${digest}`));
  }

  private async isLive(id: string): Promise<boolean> {
    return (await this.hasLiveSession(id)) || (await this.locks.isHeld(`upload:${id}`));
  }

  private async hasLiveSession(id: string): Promise<boolean> {
    const s = await this.sessions.get(id);
    return s !== undefined && !s.completed;
  }

  private checkRange(s: UploadSession, range: ChunkRange | undefined, contentLength: number | undefined): void {
    if (!range) return;
    const loc = uploadLocation(s.repository, s.id);
    if (range.start !== s.offset) throw new UploadRangeError(s.offset, loc, `chunk starts at ${range.start}, upload holds ${s.offset} bytes`);
    if (range.end !== undefined) {
      if (range.end < range.start) throw new UploadRangeError(s.offset, loc, "invalid Content-Range");
      if (contentLength !== undefined && contentLength !== range.end - range.start + 1) {
        throw new UploadRangeError(s.offset, loc, "Content-Length does not match Content-Range");
      }
    }
  }

  private loadHash(s: UploadSession): ResumableHash {
    try {
      return ResumableHash.load(s.hashState);
    } catch (e) {
      if (e instanceof IncompatibleHashStateError) throw new UnknownError("upload", s.id);
      throw e;
    }
  }

  /**
   * Opens the upload's data for appending, matching the session: when a progress record shows
   * a persisted chunk the session missed, the session is rolled forward. Undefined when the
   * data does not match the session (the caller decides what that means). `expect`: the bytes
   * this request will write, when known (WriterOptions.expect).
   */
  private async openWriter(s: UploadSession, lease: Lease, expect?: number): Promise<FileWriter | undefined> {
    const key = pathFor({ kind: "uploadData", name: s.repository, id: s.id });
    let writer: FileWriter;
    try {
      writer = await this.driver.writer(key, { append: true, expect, signal: lease.signal });
    } catch (e) {
      if (isUnavailable(e)) throw e;
      if (!isNotFound(e) || s.offset > 0) return undefined; // committed, or state unreadable
      writer = await this.driver.writer(key, { expect, signal: lease.signal });
    }
    if (writer.size === s.offset) return writer;
    const progress = await this.readProgress(s);
    if (progress && progress.offset === writer.size) {
      s.offset = progress.offset;
      s.hashState = progress.hashState;
      s.updatedAt = Date.now();
      await this.sessions.update(s, lease);
      await this.driver.delete(pathFor({ kind: "uploadProgress", name: s.repository, id: s.id })).catch(() => {});
      return writer;
    }
    await writer.cancel().catch(() => {});
    return undefined;
  }

  /**
   * Streams `body` into the writer and the hash, advancing `s.offset` by exactly the bytes that
   * reached the writer. Returns the error that cut the body short, if any (the bytes before
   * it are kept).
   */
  private async receive(s: UploadSession, writer: FileWriter, hash: ResumableHash, body: Readable, contentLength: number | undefined, allow?: Allowance): Promise<unknown> {
    const limit = this.opts.maxBlobBytes;
    let received = 0;
    try {
      for await (const chunk of body as AsyncIterable<Buffer>) {
        received += chunk.length;
        if (limit > 0 && s.offset + chunk.length > limit) throw new BadRequestError("size", "blob exceeds the size limit");
        if (allow && s.offset + chunk.length > allow.bytes) throw quotaDenied(allow, s.repository, s.offset + chunk.length);
        await writer.write(chunk);
        hash.update(chunk);
        s.offset += chunk.length;
      }
      if (contentLength !== undefined && received !== contentLength) throw new BadRequestError("size", `received ${received} bytes, Content-Length said ${contentLength}`);
    } catch (e) {
      return e;
    }
    return undefined;
  }

  /**
   * Persists the writer, then advances the stored session to it. If the session cannot be
   * stored, a progress record in storage lets the next request roll it forward.
   */
  private async persist(s: UploadSession, writer: FileWriter, hash: ResumableHash, lease: Lease): Promise<void> {
    // A holder that lost its lease persists nothing: the writer refuses (its signal aborted).
    await writer.close();
    s.hashState = hash.save();
    s.updatedAt = Date.now();
    try {
      await this.sessions.update(s, lease);
    } catch (e) {
      if (!lease.signal.aborted) {
        const progress: Progress = { offset: s.offset, hashState: s.hashState };
        await this.driver.putContent(pathFor({ kind: "uploadProgress", name: s.repository, id: s.id }), Buffer.from(JSON.stringify(progress))).catch(() => {});
      }
      throw e;
    }
  }

  private async readProgress(s: UploadSession): Promise<Progress | undefined> {
    try {
      const p = JSON.parse((await this.driver.getContent(pathFor({ kind: "uploadProgress", name: s.repository, id: s.id }))).toString("utf8")) as Progress;
      return Number.isSafeInteger(p.offset) && typeof p.hashState === "string" ? p : undefined;
    } catch (e) {
      if (isNotFound(e) || e instanceof SyntaxError) return undefined;
      throw e;
    }
  }

  /**
   * Moves verified, committed upload data to the blob's address (unless the blob is already
   * stored), links it and marks the session completed.
   */
  private async publish(s: UploadSession, digest: Digest, size: number, lease: Lease): Promise<number> {
    const dataKey = pathFor({ kind: "uploadData", name: s.repository, id: s.id });
    await this.locks.withLock(`blob:${digest}`, async (blobLease) => {
      if ((await this.blobs.globalSize(digest)) === size) await this.driver.delete(dataKey, blobLease.signal).catch(() => {});
      else {
        await this.driver.move(dataKey, pathFor({ kind: "blobData", digest }), blobLease.signal);
        await this.blobs.noteVerified(digest).catch(() => {});
      }
      await this.linkHeld(s.repository, digest, size);
    });
    await this.repos.added(s.repository);
    await this.markCompleted(s, digest, size, lease);
    return size;
  }

  /**
   * publish() for verified upload data still in its writer, on a driver whose writer can commit
   * straight to another key (FileWriter.commitTo): under the blob's lock, the data is committed
   * at the blob's address (or discarded when the blob is already stored), then linked. A crash
   * or failure part-way leaves the data where the last close() left it or committed at its
   * upload key (a retried PUT then finishes as after an interrupted commit), or the whole blob
   * at its address (a retry links it); never a partial blob.
   *
   * What it saves (S3): the pointer at the upload key and its move (HEAD, owner record,
   * pointer, DELETE); with the owner record and the check for a stored blob beside the
   * completion and the identity note beside the link, the closing PUT of a 256 MiB chunked
   * push makes 11 S3 requests in 6 sequential steps instead of 14 in 13. Measured (Swift s3api, `STRATA_BENCH_ONLY=speed
   * STRATA_BENCH_RUNS=5 node build/ts/bench/s3.js`, HTTP traced per request, 2-core machine,
   * load 2-6, two runs each, interleaved): closing PUT 187-310 ms (medians 220, 241) ->
   * 142-209 ms (medians 154, 194), of which CompleteMultipartUpload alone 62-107 ms.
   */
  private async publishDirect(s: UploadSession, digest: Digest, writer: FileWriter, lease: Lease): Promise<number> {
    const size = s.offset;
    await this.locks.withLock(`blob:${digest}`, async () => {
      // whether the blob is stored already, asked while the writer completes its data
      const stored = this.blobs.globalSize(digest).then((n) => n === size);
      stored.catch(() => {}); // the writer awaits it, or failed before
      let published: boolean;
      try {
        published = await writer.commitTo!(pathFor({ kind: "blobData", digest }), { unless: stored });
      } catch (e) {
        if (isUnavailable(e)) throw e;
        await this.discard(s, lease);
        throw e;
      }
      if (published) await Promise.all([this.blobs.noteVerified(digest).catch(() => {}), this.linkHeld(s.repository, digest, size)]);
      else await this.linkHeld(s.repository, digest, size);
    });
    await this.repos.added(s.repository);
    await this.markCompleted(s, digest, size, lease);
    return size;
  }

  private async markCompleted(s: UploadSession, digest: Digest, size: number, lease: Lease): Promise<void> {
    await this.sessions.update({ ...s, offset: size, completed: digest, updatedAt: Date.now() }, lease);
  }

  /** A PUT repeated after its upload completed: the same digest is answered as before. */
  private async completedAgain(s: UploadSession, digest: Digest, body: Readable | undefined): Promise<number> {
    if (s.completed !== digest) throw new UnknownError("upload", s.id);
    body?.resume();
    return s.offset;
  }

  /**
   * A completion whose data no longer matches the session: an earlier attempt of this PUT was
   * interrupted after committing the data, after publishing the blob, or after linking it. The
   * request proves which bytes it completes with (the session's hash state plus its body must
   * give the digest); then the committed data is re-verified and published, or the already
   * published blob is linked. Anything else leaves the upload unknown.
   */
  private async finishInterrupted(s: UploadSession, digest: Digest, body: Readable | undefined, contentLength: number | undefined, lease: Lease): Promise<number> {
    const hash = this.loadHash(s);
    let size = s.offset;
    if (body) {
      for await (const chunk of body as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (this.opts.maxBlobBytes > 0 && size > this.opts.maxBlobBytes) throw new BadRequestError("size", "blob exceeds the size limit");
        hash.update(chunk);
      }
      if (contentLength !== undefined && size - s.offset !== contentLength) throw new BadRequestError("size", `received ${size - s.offset} bytes, Content-Length said ${contentLength}`);
    }
    if (hash.algorithm === digestAlgorithm(digest) && hash.digest() === digest) {
      const dataKey = pathFor({ kind: "uploadData", name: s.repository, id: s.id });
      const committed = await this.driver.stat(dataKey).then(
        (i) => (i.isDir ? undefined : i.size),
        (e) => {
          if (isNotFound(e)) return undefined;
          throw e;
        },
      );
      const provable = (committed === size && (await this.rehash(s, digest)) === digest) || (await this.blobs.globalSize(digest)) === size;
      if (provable) {
        await this.publish(s, digest, size, lease);
        await this.deleteData(s.repository, s.id, lease).catch(() => {}); // what the interrupted attempt left
        return size;
      }
    }
    return this.forget(s, lease);
  }

  /** Drops an upload whose data and session disagree; always throws UnknownError("upload"). */
  private async forget(s: UploadSession, lease: Lease): Promise<never> {
    await this.discard(s, lease);
    throw new UnknownError("upload", s.id);
  }

  /** Digest of committed upload data with another algorithm than the session's (e.g. sha512). */
  private async rehash(s: UploadSession, digest: Digest): Promise<Digest> {
    const d = createDigester(digestAlgorithm(digest));
    const data = await this.driver.reader(pathFor({ kind: "uploadData", name: s.repository, id: s.id }));
    for await (const chunk of data as AsyncIterable<Buffer>) d.update(chunk);
    return d.digest();
  }

  /** Removes an upload's data (an unfinished writer's too), then its session: a crash in between leaves a session for the purger. */
  private async discard(s: Pick<UploadSession, "id" | "repository">, lease: Lease): Promise<void> {
    await this.deleteData(s.repository, s.id, lease);
    await this.sessions.delete(s, lease);
  }

  private async deleteData(repository: string, id: string, lease: Lease): Promise<void> {
    const w = await this.driver.writer(pathFor({ kind: "uploadData", name: repository, id }), { append: true, signal: lease.signal }).catch(() => undefined);
    await w?.cancel().catch(() => {});
    try {
      await this.driver.delete(pathFor({ kind: "upload", name: repository, id }), lease.signal);
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
  }
}
