/**
 * Blob uploads. Bytes go to the session's upload key (never a blob key); the running digest
 * is kept as a resumable hash state in the session. On completion the digest is checked
 * and only then the data is committed and moved to the blob's content address, so a blob
 * is never visible before it is verified.
 */
import { randomUUID } from "node:crypto";
import { type Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createDigester, createVerifier, type Digest, DigestMismatchError, digestAlgorithm } from "@strata/core";
import { BadRequestError, UnknownError, UploadRangeError } from "../errors.js";
import type { Locker } from "../locks.js";
import type { BlobStore } from "../services/blobs.js";
import type { RepositoryIndex } from "../services/catalog.js";
import { type FileWriter, isNotFound, type StorageDriver } from "../storage/driver.js";
import { baseName, pathFor } from "../storage/paths.js";
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
}

export function uploadLocation(repository: string, id: string): string {
  return `/v2/${repository}/blobs/uploads/${id}`;
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export class UploadService {
  constructor(
    private readonly driver: StorageDriver,
    private readonly sessions: SessionStore,
    private readonly blobs: BlobStore,
    private readonly repos: RepositoryIndex,
    private readonly locks: Locker,
    private readonly opts: UploadOptions,
  ) {}

  async start(repository: string): Promise<UploadSession> {
    const now = Date.now();
    const s: UploadSession = { id: randomUUID(), repository, offset: 0, hashState: ResumableHash.create().save(), startedAt: now, updatedAt: now };
    await this.sessions.create(s);
    return s;
  }

  /** The live session, or UnknownError("upload") when unknown, expired or of another repository. */
  async get(repository: string, id: string): Promise<UploadSession> {
    if (!UUID_RE.test(id)) throw new UnknownError("upload", id);
    const s = await this.sessions.get(id);
    if (!s || s.repository !== repository) throw new UnknownError("upload", id);
    if (s.updatedAt < Date.now() - this.opts.ttlSeconds * 1000) {
      await this.discard(s);
      throw new UnknownError("upload", id);
    }
    return s;
  }

  /** Appends a chunk (PATCH). Returns the session after the chunk. */
  async append(repository: string, id: string, body: Readable, range?: ChunkRange, contentLength?: number): Promise<UploadSession> {
    const first = await this.get(repository, id);
    return this.locks.withLock(`upload:${first.id}`, async () => {
      const s = await this.get(repository, id);
      this.checkRange(s, range, contentLength);
      await this.write(s, body, contentLength, false);
      return s;
    });
  }

  /**
   * Completes an upload (PUT ?digest=), with an optional final chunk. Verifies the digest,
   * publishes the blob and links it into the repository.
   */
  async complete(repository: string, id: string, digest: Digest, body: Readable | undefined, range?: ChunkRange, contentLength?: number): Promise<number> {
    const first = await this.get(repository, id);
    return this.locks.withLock(`upload:${first.id}`, async () => {
      const s = await this.get(repository, id);
      if (body) this.checkRange(s, range, contentLength);
      if (body && s.offset === 0) {
        // The whole blob arrives in this request: stream it straight to its content address.
        try {
          return await this.monolithic(repository, digest, body, contentLength);
        } finally {
          await this.sessions.delete(s.id);
        }
      }
      const writer = await this.write(s, body, contentLength, true);
      let committed = false;
      try {
        if (this.opts.maxBlobBytes > 0 && s.offset > this.opts.maxBlobBytes) throw new BadRequestError("size", "blob exceeds the size limit");
        const hash = this.loadHash(s);
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
        if (!committed) await writer.commit();
      } catch (e) {
        if (!committed) await writer.cancel().catch(() => {});
        await this.discard(s);
        throw e;
      }
      const dataKey = pathFor({ kind: "uploadData", name: repository, id: s.id });
      if ((await this.blobs.globalSize(digest)) === s.offset) await this.driver.delete(dataKey).catch(() => {});
      else await this.driver.move(dataKey, pathFor({ kind: "blobData", digest }));
      await this.blobs.link(repository, digest, s.offset);
      await this.repos.added(repository);
      // commit() and move() left nothing under the upload's key: only the session remains
      await this.sessions.delete(s.id);
      return s.offset;
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
    const check = (n: number) => {
      if (limit > 0 && n > limit) throw new BadRequestError("size", "blob exceeds the size limit");
    };
    const size = await this.locks.withLock(`blob:${digest}`, async () => {
      const existing = await this.blobs.globalSize(digest);
      const verifier = createVerifier({ digest, size: contentLength, maxSize: limit > 0 ? limit : undefined });
      if (existing !== undefined) {
        await pipeline(body, verifier, new Writable({ write: (_c, _e, cb) => cb() }));
        return existing;
      }
      const writer = await this.driver.writer(key, { size: contentLength });
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
      return n;
    });
    await this.blobs.link(repository, digest, size);
    await this.repos.added(repository);
    return size;
  }

  /** Cancels an upload (DELETE). */
  async cancel(repository: string, id: string): Promise<void> {
    const s = await this.get(repository, id);
    await this.locks.withLock(`upload:${s.id}`, async () => {
      const w = await this.driver.writer(pathFor({ kind: "uploadData", name: repository, id: s.id }), { append: true }).catch(() => undefined);
      await w?.cancel();
      await this.discard(s);
    });
  }

  /** Removes sessions untouched for longer than the TTL and their data. Returns how many. */
  async purgeExpired(): Promise<number> {
    const stale = await this.sessions.expired(Date.now() - this.opts.ttlSeconds * 1000);
    for (const s of stale) {
      const w = await this.driver.writer(pathFor({ kind: "uploadData", name: s.repository, id: s.id }), { append: true }).catch(() => undefined);
      await w?.cancel().catch(() => {});
      await this.discard(s);
    }
    return stale.length + (await this.purgeOrphans());
  }

  /**
   * Removes upload data that no session knows any more (sessions lost with a restarted
   * process in embedded mode, or expired from Redis) once it is older than the TTL.
   */
  private async purgeOrphans(): Promise<number> {
    const cutoff = Date.now() - this.opts.ttlSeconds * 1000;
    let n = 0;
    for (const repository of await this.repos.repositories()) {
      let ids: string[];
      try {
        ids = (await this.driver.list(pathFor({ kind: "uploadsRoot", name: repository }), { limit: 10_000 })).keys.map(baseName);
      } catch (e) {
        if (isNotFound(e)) continue;
        throw e;
      }
      for (const id of ids) {
        if (!UUID_RE.test(id) || (await this.sessions.get(id))) continue;
        const dir = pathFor({ kind: "upload", name: repository, id });
        const info = await this.driver.stat(dir).catch(() => undefined);
        if (!info || info.modTime.getTime() >= cutoff) continue;
        const w = await this.driver.writer(pathFor({ kind: "uploadData", name: repository, id }), { append: true }).catch(() => undefined);
        await w?.cancel().catch(() => {});
        await this.driver.delete(dir).catch(() => {});
        n++;
      }
    }
    return n;
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
   * Streams `body` into the upload data, updating the session (offset, hash state) with
   * exactly the bytes that reached storage, also when the body is cut short. With
   * `keepOpen` the writer is returned un-closed for the caller to commit or cancel.
   */
  private async write(s: UploadSession, body: Readable | undefined, contentLength: number | undefined, keepOpen: true): Promise<FileWriter>;
  private async write(s: UploadSession, body: Readable | undefined, contentLength: number | undefined, keepOpen: false): Promise<undefined>;
  private async write(s: UploadSession, body: Readable | undefined, contentLength: number | undefined, keepOpen: boolean): Promise<FileWriter | undefined> {
    const key = pathFor({ kind: "uploadData", name: s.repository, id: s.id });
    const writer = await this.driver.writer(key, { append: s.offset > 0 });
    if (writer.size !== s.offset) {
      await writer.cancel().catch(() => {});
      await this.discard(s);
      throw new UnknownError("upload", s.id);
    }
    const hash = this.loadHash(s);
    const limit = this.opts.maxBlobBytes;
    let failure: unknown;
    let received = 0;
    if (body) {
      try {
        for await (const chunk of body as AsyncIterable<Buffer>) {
          received += chunk.length;
          if (limit > 0 && s.offset + chunk.length > limit) throw new BadRequestError("size", "blob exceeds the size limit");
          await writer.write(chunk);
          hash.update(chunk);
          s.offset += chunk.length;
        }
        if (contentLength !== undefined && received !== contentLength)
          throw new BadRequestError("size", `received ${received} bytes, Content-Length said ${contentLength}`);
      } catch (e) {
        failure = e;
      }
    }
    s.hashState = hash.save();
    s.updatedAt = Date.now();
    if (!keepOpen || failure) await writer.close();
    await this.sessions.update(s);
    if (failure) throw failure;
    return keepOpen ? writer : undefined;
  }

  /** Digest of committed upload data with another algorithm than the session's (e.g. sha512). */
  private async rehash(s: UploadSession, digest: Digest): Promise<Digest> {
    const d = createDigester(digestAlgorithm(digest));
    const data = await this.driver.reader(pathFor({ kind: "uploadData", name: s.repository, id: s.id }));
    for await (const chunk of data as AsyncIterable<Buffer>) d.update(chunk);
    return d.digest();
  }

  private async discard(s: UploadSession): Promise<void> {
    await this.sessions.delete(s.id);
    try {
      await this.driver.delete(pathFor({ kind: "upload", name: s.repository, id: s.id }));
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
  }
}
