/**
 * Storage driver for S3-compatible object storage (AWS S3, MinIO, Ceph RGW, Swift s3api, R2).
 *
 * Keys: driver key "/a/b" is object "<prefix>/a/b" (or "a/b" without a prefix). Directories
 * do not exist in S3; a directory is any key prefix "<key>/" with objects below it, listed
 * with ListObjectsV2 and Delimiter "/". Objects whose last component is outside the key
 * grammar (the writers' state and segment objects, see s3-writer.ts) are internal and never listed.
 *
 * Atomicity: PutObject, CopyObject and CompleteMultipartUpload replace an object atomically
 * for readers. Objects written in parts are pointers to a physical object (s3-pointers.ts):
 * `move` of a pointer rewrites the pointer; `move` of an ordinary object is a server-side copy
 * followed by a delete of the source. Conditional writes (If-None-Match) are not used: Swift's
 * s3api does not implement them.
 */
import { PassThrough, Readable } from "node:stream";
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  type GetObjectCommandOutput,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
  UploadPartCopyCommand,
} from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import type { S3Config } from "../config.js";
import { checkedDriver } from "./base.js";
import type { FileInfo, FileWriter, ListOptions, ListResult, ObjectRead, ReadOptions, StorageDriver, WriterOptions } from "./driver.js";
import { PathNotFoundError, StorageError } from "./driver.js";
import { classifyS3Error, createS3Client, DRIVER_NAME, ensureBucket, errorName, s3Call, statusOf } from "./s3-client.js";
import { MAX_SINGLE_PUT, S3PutWriter } from "./s3-putwriter.js";
import { PartBuffers } from "./s3-buffers.js";
import { ParkedWriters } from "./s3-parked.js";
import { deleteWriterObjects, INTERNAL_MARK, MIN_PART_SIZE, S3Writer } from "./s3-writer.js";
import {
  isPhysicalKey,
  OWNER_SUFFIX,
  ownerRecordOf,
  PHYSICAL_DIR,
  physicalPrefixOf,
  type Pointer,
  pointerFrom,
  pointerMetadata,
  writtenFor,
} from "./s3-pointers.js";

export { createS3Client, ensureBucket } from "./s3-client.js";
export { INTERNAL_MARK } from "./s3-writer.js";

/** The S3 driver: a StorageDriver plus S3-only maintenance operations. */
export interface S3StorageDriver extends StorageDriver {
  readonly client: S3Client;
  readonly bucket: string;
  /** Creates the configured bucket unless it exists. */
  ensureBucket(): Promise<void>;
  /**
   * Aborts every multipart upload under the driver's prefix that was started before
   * `olderThan` and that `spare` (given its driver key) does not keep, and deletes its
   * writer's internal objects. Returns how many were aborted.
   * (Closed writers that never filled a part own only internal objects; deleting their upload
   * directory removes it.)
   */
  abortStaleMultipartUploads(olderThan: Date, spare?: (key: string) => Promise<boolean>): Promise<number>;
  /**
   * Deletes physical objects (see s3-pointers.ts) older than `olderThan` that no pointer
   * uses any more, and owner records that old whose physical object does not exist. Returns
   * how many physical objects were deleted.
   */
  sweepOrphans(olderThan: Date): Promise<number>;
}

const COMPONENT = /^[A-Za-z0-9._-]+$/;
/** Largest object CopyObject can copy in one request. */
const MAX_SINGLE_COPY = 5 * 1024 * 1024 * 1024;
const COPY_PART_SIZE = 512 * 1024 * 1024;
const COPY_CONCURRENCY = 4;
const DELETE_BATCH = 1000;
/** Bytes a reader buffers ahead of its consumer. */
const READ_AHEAD = 4 * 1024 * 1024;

/**
 * Identity of an object version: its key, ETag, size and Last-Modified. S3 gives every write of
 * an object a new Last-Modified and the ETag of the new content, so a replaced object has
 * another identity (see services/verified.ts for what a matching identity is trusted for).
 */
function versionOf(objectKey: string, res: { ETag?: string; ContentLength?: number; LastModified?: Date }): string | undefined {
  if (!res.ETag || !res.LastModified || res.ContentLength === undefined) return undefined;
  return `${objectKey}|${res.ETag}|${res.ContentLength}|${res.LastModified.getTime()}`;
}

/** Runs `fn` over items with at most `n` at a time. */
async function parallel<T>(items: readonly T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let i = 0;
  const worker = async () => {
    while (i < items.length) await fn(items[i++]);
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
}

class S3DriverImpl {
  readonly name = DRIVER_NAME;
  readonly client: S3Client;
  /** One attempt per request: for part bodies that are streams (s3-cutthrough.ts). */
  private readonly streamClient: S3Client;
  readonly bucket: string;
  private readonly root: string;
  private multiDelete = true;
  private readonly buffers: PartBuffers;
  private readonly parked = new ParkedWriters();

  constructor(private readonly cfg: S3Config) {
    this.client = createS3Client(cfg);
    this.streamClient = createS3Client({ ...cfg, maxAttempts: 1 });
    this.bucket = cfg.bucket;
    this.root = cfg.prefix ? `${cfg.prefix}/` : "";
    this.buffers = new PartBuffers(Math.max(MIN_PART_SIZE, cfg.partSize), Math.max(cfg.partBufferBytes, cfg.partSize), { lonePart: cfg.lonePartSize });
  }

  /** Object key of a driver key ("/a/b" -> "<prefix>/a/b"). */
  objectKey(key: string): string {
    return this.root + key.slice(1);
  }

  private driverKey(objectKey: string): string {
    return `/${objectKey.slice(this.root.length)}`;
  }

  async ensureBucket(): Promise<void> {
    await ensureBucket(this.cfg, this.client);
  }

  async getContent(key: string, signal?: AbortSignal): Promise<Buffer> {
    let res = await s3Call(key, signal, () =>
      this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }), { abortSignal: signal }),
    );
    const pointer = pointerFrom(res.Metadata);
    if (pointer) {
      (res.Body as Readable | undefined)?.destroy?.();
      res = await s3Call(key, signal, () => this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: pointer.target }), { abortSignal: signal }));
    }
    return s3Call(key, signal, async () => {
      const chunks: Buffer[] = [];
      for await (const c of res.Body as AsyncIterable<Uint8Array>) chunks.push(Buffer.from(c.buffer, c.byteOffset, c.byteLength));
      return Buffer.concat(chunks);
    });
  }

  async putContent(key: string, content: Uint8Array, signal?: AbortSignal): Promise<void> {
    await s3Call(key, signal, () =>
      this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key), Body: content, ContentLength: content.byteLength }), {
        abortSignal: signal,
      }),
    );
  }

  async reader(key: string, opts: ReadOptions = {}): Promise<Readable> {
    const { signal } = opts;
    signal?.throwIfAborted();
    const offset = opts.offset ?? 0;
    const length = opts.length;
    if (length === 0) {
      if ((await this.stat(key, signal)).isDir) throw new PathNotFoundError(DRIVER_NAME, key);
      return Readable.from([]);
    }
    let range: string | undefined;
    if (length !== undefined) range = `bytes=${offset}-${offset + length - 1}`;
    else if (offset > 0) range = `bytes=${offset}-`;
    const got = await this.getFollowing(key, range, signal);
    return got ? this.piped(got.body, key, signal) : Readable.from([]);
  }

  /**
   * The whole content of `key` and the identity of the object version it comes from (see
   * `versionOf`); undefined identity when S3 gave no ETag or Last-Modified.
   */
  async readObject(key: string, signal?: AbortSignal): Promise<ObjectRead> {
    signal?.throwIfAborted();
    const got = await this.getFollowing(key, undefined, signal);
    if (!got) return { stream: Readable.from([]), size: 0, identity: undefined };
    const { res, body } = got;
    let stream: Readable | undefined;
    const piped = () => (stream ??= this.piped(body, key, signal));
    return {
      get stream() {
        return piped();
      },
      response: body,
      size: res.ContentLength ?? 0,
      identity: versionOf(got.objectKey, res),
    };
  }

  /** The identity `readObject` would report for `key` now, or undefined when it has none. */
  async identify(key: string, signal?: AbortSignal): Promise<string | undefined> {
    const objectKey = this.objectKey(key);
    let at = objectKey;
    let head = await this.headObject(key, objectKey, signal);
    const pointer = pointerFrom(head?.Metadata);
    if (pointer) {
      at = pointer.target;
      head = await this.headObject(key, at, signal);
    }
    return head ? versionOf(at, head) : undefined;
  }

  /**
   * GetObject of `key`, following a pointer to its physical object; undefined when the range
   * starts at or past the end of the content.
   */
  private async getFollowing(key: string, range: string | undefined, signal?: AbortSignal): Promise<{ body: Readable; res: GetObjectCommandOutput; objectKey: string } | undefined> {
    const objectKey = this.objectKey(key);
    const get = async (k: string): Promise<{ body?: Readable; res?: GetObjectCommandOutput; pointer?: Pointer }> => {
      try {
        const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: k, Range: range }), { abortSignal: signal });
        const pointer = k === objectKey ? pointerFrom(res.Metadata) : undefined;
        if (pointer) (res.Body as Readable).destroy();
        return pointer ? { pointer } : { body: res.Body as Readable, res };
      } catch (e) {
        // 416: the object exists and the range starts at or past its end (a pointer's body is
        // empty, so a ranged read of a pointer lands here too).
        if (statusOf(e) === 416 || errorName(e) === "InvalidRange") {
          const pointer = k === objectKey ? await this.pointerAt(key, signal) : undefined;
          return pointer ? { pointer } : {};
        }
        throw classifyS3Error(e, key, signal);
      }
    };
    let at = objectKey;
    let got = await get(objectKey);
    if (got.pointer) {
      at = got.pointer.target;
      got = await get(at);
    }
    return got.body && got.res ? { body: got.body, res: got.res, objectKey: at } : undefined;
  }

  /** `body` behind a read-ahead buffer, its errors classified, released with the result. */
  private piped(body: Readable, key: string, signal?: AbortSignal): Readable {
    const out = new PassThrough({ highWaterMark: READ_AHEAD });
    body.on("error", (e) => out.destroy(classifyS3Error(e, key, signal)));
    body.pipe(out);
    if (signal) {
      const onAbort = () => {
        body.destroy();
        out.destroy(signal.reason instanceof Error ? signal.reason : new Error("aborted"));
      };
      signal.addEventListener("abort", onAbort, { once: true });
      out.once("close", () => signal.removeEventListener("abort", onAbort));
    }
    out.once("close", () => body.destroy());
    return out;
  }

  async writer(key: string, opts: WriterOptions = {}): Promise<FileWriter> {
    opts.signal?.throwIfAborted();
    const ctx = {
      client: this.client,
      streamClient: this.streamClient,
      bucket: this.bucket,
      partSize: this.cfg.partSize,
      buffers: this.buffers,
      key,
      objectKey: this.objectKey(key),
      root: this.root,
      signal: opts.signal,
      expect: opts.expect,
      parked: this.parked,
      move: (source: string, dest: string, signal?: AbortSignal) => this.move(source, dest, signal),
    };
    if (!opts.append && opts.size !== undefined && opts.size > 0 && opts.size <= MAX_SINGLE_PUT) {
      return new S3PutWriter(this.client, this.bucket, ctx.objectKey, key, opts.size, opts.signal);
    }
    return opts.append ? S3Writer.resume(ctx) : S3Writer.fresh(ctx);
  }

  async stat(key: string, signal?: AbortSignal): Promise<FileInfo> {
    try {
      const res = await s3Call(key, signal, () =>
        this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }), { abortSignal: signal }),
      );
      const size = pointerFrom(res.Metadata)?.size ?? res.ContentLength ?? 0;
      return { path: key, size, modTime: res.LastModified ?? new Date(0), isDir: false };
    } catch (e) {
      if (!(e instanceof PathNotFoundError)) throw e;
    }
    const res = await s3Call(key, signal, () =>
      this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: `${this.objectKey(key)}/`, MaxKeys: 1 }), { abortSignal: signal }),
    );
    const first = res.Contents?.[0];
    if (!first) throw new PathNotFoundError(DRIVER_NAME, key);
    return { path: key, size: 0, modTime: first.LastModified ?? new Date(0), isDir: true };
  }

  /**
   * Direct children in byte order of their keys. S3 orders a sub-"directory" by "name/",
   * which sorts after siblings "name-x" and "name.x" although "name" sorts before them; so a
   * child is only returned once no unseen directory can still sort before it.
   */
  async list(key: string, opts: ListOptions = {}): Promise<ListResult> {
    const { signal, after } = opts;
    const limit = opts.limit ?? Number.POSITIVE_INFINITY;
    const base = `${this.objectKey(key)}/`;
    const startAfter = after !== undefined && after > `${key}/` ? this.objectKey(after) : undefined;
    const out: string[] = [];
    const pending = new Set<string>(); // child names seen but not yet safe to emit
    let sawAny = false;
    let token: string | undefined;
    let more = true;
    while (more && out.length <= limit) {
      const res = await s3Call(key, signal, () =>
        this.client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: base,
            Delimiter: "/",
            StartAfter: token === undefined ? startAfter : undefined,
            ContinuationToken: token,
            MaxKeys: Number.isFinite(limit) ? Math.min(1000, Math.max(limit - out.length + 2, 2)) : 1000,
          }),
          { abortSignal: signal },
        ),
      );
      let last = "";
      for (const p of res.CommonPrefixes ?? []) {
        if (!p.Prefix) continue;
        sawAny = true;
        if (p.Prefix > last) last = p.Prefix;
        pending.add(p.Prefix.slice(base.length, -1));
      }
      for (const c of res.Contents ?? []) {
        if (!c.Key) continue;
        sawAny = true;
        if (c.Key > last) last = c.Key;
        pending.add(c.Key.slice(base.length));
      }
      more = res.IsTruncated === true && res.NextContinuationToken !== undefined;
      token = res.NextContinuationToken;
      // Names below `bound` can no longer be preceded by an unseen entry.
      let bound: string | undefined;
      if (more && last) {
        const lastName = last.slice(base.length).replace(/\/$/, "");
        for (let i = 1; i < lastName.length; i++) {
          if (lastName[i] < "/") {
            bound = lastName.slice(0, i);
            break;
          }
        }
      }
      const ready = [...pending].filter((n) => bound === undefined || n < bound).sort();
      for (const n of ready) {
        pending.delete(n);
        if (!COMPONENT.test(n)) continue;
        const full = `${key}/${n}`;
        if (after !== undefined && full <= after) continue;
        out.push(full);
      }
    }
    if (!sawAny) {
      if (after === undefined) throw new PathNotFoundError(DRIVER_NAME, key);
      await this.stat(key, signal).then((st) => {
        if (!st.isDir) throw new PathNotFoundError(DRIVER_NAME, key);
      });
    }
    // The loop stops at limit + 1 children or at the end of the listing.
    return { keys: out.slice(0, Number.isFinite(limit) ? limit : undefined), truncated: out.length > limit };
  }

  async move(source: string, dest: string, signal?: AbortSignal): Promise<void> {
    const src = this.objectKey(source);
    const dst = this.objectKey(dest);
    const head = await s3Call(source, signal, () => this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: src }), { abortSignal: signal }));
    const pointer = pointerFrom(head.Metadata);
    if (pointer) {
      // Owner record first, then the new pointer, then the old one goes (see s3-pointers.ts).
      const owner = Buffer.from(dest);
      await s3Call(dest, signal, () =>
        this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: ownerRecordOf(pointer.target), Body: owner, ContentLength: owner.length }), {
          abortSignal: signal,
        }),
      );
      await s3Call(dest, signal, () =>
        this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: dst, Body: Buffer.alloc(0), ContentLength: 0, Metadata: pointerMetadata(pointer) }), {
          abortSignal: signal,
        }),
      );
      await s3Call(source, signal, () => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: src }), { abortSignal: signal }));
      return;
    }
    const size = head.ContentLength ?? 0;
    const copySource = `${this.bucket}/${src.split("/").map(encodeURIComponent).join("/")}`;
    if (size <= MAX_SINGLE_COPY) {
      await s3Call(dest, signal, () =>
        this.client.send(new CopyObjectCommand({ Bucket: this.bucket, Key: dst, CopySource: copySource }), { abortSignal: signal }),
      );
    } else {
      await this.multipartCopy(dest, dst, copySource, size, signal);
    }
    await s3Call(source, signal, () => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: src }), { abortSignal: signal }));
  }

  private async multipartCopy(dest: string, dst: string, copySource: string, size: number, signal?: AbortSignal): Promise<void> {
    const created = await s3Call(dest, signal, () =>
      this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: dst }), { abortSignal: signal }),
    );
    const uploadId = created.UploadId;
    if (!uploadId) throw new StorageError(DRIVER_NAME, dest, "CreateMultipartUpload returned no upload id");
    const ranges: { n: number; start: number; end: number }[] = [];
    for (let start = 0, n = 1; start < size; start += COPY_PART_SIZE, n++) ranges.push({ n, start, end: Math.min(size, start + COPY_PART_SIZE) - 1 });
    const parts: { PartNumber: number; ETag: string }[] = [];
    try {
      await parallel(ranges, COPY_CONCURRENCY, async (r) => {
        const res = await s3Call(dest, signal, () =>
          this.client.send(
            new UploadPartCopyCommand({
              Bucket: this.bucket,
              Key: dst,
              UploadId: uploadId,
              PartNumber: r.n,
              CopySource: copySource,
              CopySourceRange: `bytes=${r.start}-${r.end}`,
            }),
            { abortSignal: signal },
          ),
        );
        const etag = res.CopyPartResult?.ETag;
        if (!etag) throw new StorageError(DRIVER_NAME, dest, `UploadPartCopy ${r.n} returned no ETag`);
        parts.push({ PartNumber: r.n, ETag: etag });
      });
      parts.sort((a, b) => a.PartNumber - b.PartNumber);
      await s3Call(dest, signal, () =>
        this.client.send(new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key: dst, UploadId: uploadId, MultipartUpload: { Parts: parts } }), {
          abortSignal: signal,
        }),
      );
    } catch (e) {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: dst, UploadId: uploadId })).catch(() => {});
      throw e;
    }
  }

  /**
   * Removes the key, everything below it, its writer's internal objects and its unfinished
   * multipart uploads; a pointer's physical object goes with the pointer that owns it.
   */
  async delete(key: string, signal?: AbortSignal): Promise<void> {
    const ok = this.objectKey(key);
    const below = `${ok}/`;
    const phys = physicalPrefixOf(this.root, key);
    const [self, internal, children, uploads, physUploads] = await Promise.all([
      this.headObject(key, ok, signal),
      this.listObjects(key, ok + INTERNAL_MARK, signal),
      this.listObjects(key, below, signal),
      this.listUploads(ok, signal),
      this.listUploads(phys, signal),
    ]);
    const mine = [
      ...uploads.filter((u) => u.key === ok || u.key.startsWith(below)),
      ...physUploads.filter((u) => u.key.startsWith(`${phys}~`) || u.key.startsWith(`${phys}/`)),
    ];
    if (!self && internal.length === 0 && children.length === 0 && mine.length === 0) throw new PathNotFoundError(DRIVER_NAME, key);
    // Owner records of aborted physical uploads (an interrupted commitTo() may have written one).
    const abortedRecords: string[] = [];
    await parallel(mine, 4, async (u) => {
      await s3Call(key, signal, () =>
        this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: u.key, UploadId: u.uploadId }), { abortSignal: signal }),
      ).then(
        () => {
          if (isPhysicalKey(this.root, u.key)) abortedRecords.push(ownerRecordOf(u.key));
        },
        (e) => {
          if (errorName((e as { cause?: unknown }).cause) !== "NoSuchUpload") throw e;
        },
      );
    });
    // Pointers: `self` was read with its metadata; children with an empty body may be pointers.
    const pointers: { at: string; pointer: Pointer }[] = [];
    const selfPointer = self ? pointerFrom(self.Metadata) : undefined;
    if (selfPointer) pointers.push({ at: ok, pointer: selfPointer });
    await parallel(
      children.filter((c) => c.size === 0),
      8,
      async (c) => {
        const pointer = pointerFrom((await this.headObject(key, c.key, signal))?.Metadata);
        if (pointer) pointers.push({ at: c.key, pointer });
      },
    );
    const owned: string[] = [];
    await parallel(pointers, 8, async ({ at, pointer }) => {
      if ((await this.ownerOf(key, pointer.target, signal)) === at) owned.push(pointer.target, ownerRecordOf(pointer.target));
    });
    const doomed = [...(self ? [ok] : []), ...internal.map((o) => o.key), ...children.map((c) => c.key), ...owned, ...abortedRecords];
    await this.deleteObjects(key, doomed, signal);
  }

  /** HeadObject, or undefined when the object does not exist. */
  private async headObject(
    key: string,
    objectKey: string,
    signal?: AbortSignal,
  ): Promise<{ Metadata?: Record<string, string>; ContentLength?: number; ETag?: string; LastModified?: Date } | undefined> {
    try {
      return await s3Call(key, signal, () => this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: objectKey }), { abortSignal: signal }));
    } catch (e) {
      if (e instanceof PathNotFoundError) return undefined;
      throw e;
    }
  }

  /** The pointer stored at driver key `key`, if it is one. */
  private async pointerAt(key: string, signal?: AbortSignal): Promise<Pointer | undefined> {
    return pointerFrom((await this.headObject(key, this.objectKey(key), signal))?.Metadata);
  }

  /** Every object whose key starts with `prefix`, with its size. */
  private async listObjects(key: string, prefix: string, signal?: AbortSignal): Promise<{ key: string; size: number; modified?: Date }[]> {
    const out: { key: string; size: number; modified?: Date }[] = [];
    let token: string | undefined;
    do {
      const res = await s3Call(key, signal, () =>
        this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }), { abortSignal: signal }),
      );
      for (const c of res.Contents ?? []) if (c.Key) out.push({ key: c.Key, size: c.Size ?? 0, modified: c.LastModified });
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token);
    return out;
  }

  /** Object key of the pointer that owns physical object `physical` (see s3-pointers.ts). */
  private async ownerOf(key: string, physical: string, signal?: AbortSignal): Promise<string> {
    try {
      const owner = (await this.getRaw(key, ownerRecordOf(physical), signal)).toString("utf8");
      return this.objectKey(owner);
    } catch (e) {
      if (!(e instanceof PathNotFoundError)) throw e;
      return this.objectKey(writtenFor(this.root, physical));
    }
  }

  private async getRaw(key: string, objectKey: string, signal?: AbortSignal): Promise<Buffer> {
    const res = await s3Call(key, signal, () => this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: objectKey }), { abortSignal: signal }));
    return s3Call(key, signal, async () => {
      const chunks: Buffer[] = [];
      for await (const c of res.Body as AsyncIterable<Uint8Array>) chunks.push(Buffer.from(c.buffer, c.byteOffset, c.byteLength));
      return Buffer.concat(chunks);
    });
  }

  async sweepOrphans(olderThan: Date): Promise<number> {
    const base = `${this.root}${PHYSICAL_DIR}/`;
    const key = "/";
    const all = await this.listObjects(key, base);
    const objects = all.filter((o) => isPhysicalKey(this.root, o.key) && o.modified !== undefined && o.modified < olderThan);
    // Owner records of physical objects that never came to be (a commitTo() cut short before
    // its completion, then aborted: see s3-writer.ts).
    const present = new Set(all.map((o) => o.key));
    const stray = all.filter(
      (o) => o.key.endsWith(OWNER_SUFFIX) && o.modified !== undefined && o.modified < olderThan && !present.has(o.key.slice(0, -OWNER_SUFFIX.length)),
    );
    if (stray.length) await this.deleteObjects(key, stray.map((o) => o.key));
    let n = 0;
    await parallel(objects, 4, async (o) => {
      const candidates = new Set([await this.ownerOf(key, o.key), this.objectKey(writtenFor(this.root, o.key))]);
      for (const c of candidates) {
        if (pointerFrom((await this.headObject(key, c))?.Metadata)?.target === o.key) return;
      }
      await this.deleteObjects(key, [o.key, ownerRecordOf(o.key)]);
      n++;
    });
    return n;
  }

  private async deleteObjects(key: string, keys: string[], signal?: AbortSignal): Promise<void> {
    for (let i = 0; i < keys.length; i += DELETE_BATCH) {
      const batch = keys.slice(i, i + DELETE_BATCH);
      if (this.multiDelete && batch.length > 1) {
        try {
          const res = await this.client.send(
            new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } }),
            { abortSignal: signal },
          );
          const errors = (res.Errors ?? []).filter((e) => e.Code !== "NoSuchKey");
          if (errors.length) {
            throw new StorageError(
              DRIVER_NAME,
              key,
              `DeleteObjects failed for ${errors.length} objects: ${errors[0].Code} ${errors[0].Message ?? ""} (${errors[0].Key})`,
            );
          }
          continue;
        } catch (e) {
          if (e instanceof StorageError) throw e;
          const name = errorName(e);
          // Servers without multi-delete answer NotImplemented (501) or reject the request.
          if (name === "NotImplemented" || statusOf(e) === 501 || (statusOf(e) === 400 && name !== "RequestTimeout")) {
            this.multiDelete = false;
          } else {
            throw classifyS3Error(e, key, signal);
          }
        }
      }
      await parallel(batch, 8, (k) =>
        s3Call(key, signal, () => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: k }), { abortSignal: signal })).then(() => {}),
      );
    }
  }

  /** Unfinished multipart uploads whose object key starts with `prefix`. */
  private async listUploads(prefix: string, signal?: AbortSignal): Promise<{ key: string; uploadId: string; initiated?: Date }[]> {
    const out: { key: string; uploadId: string; initiated?: Date }[] = [];
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      const res = await s3Call(prefix, signal, () =>
        this.client.send(new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: prefix, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }), {
          abortSignal: signal,
        }),
      );
      for (const u of res.Uploads ?? []) if (u.Key && u.UploadId) out.push({ key: u.Key, uploadId: u.UploadId, initiated: u.Initiated });
      if (!res.IsTruncated) break;
      keyMarker = res.NextKeyMarker;
      uploadIdMarker = res.NextUploadIdMarker;
      if (keyMarker === undefined) break;
    }
    return out;
  }

  async abortStaleMultipartUploads(olderThan: Date, spare?: (key: string) => Promise<boolean>): Promise<number> {
    const uploads = await this.listUploads(this.root);
    const stale = uploads.filter((u) => u.initiated !== undefined && u.initiated < olderThan);
    let n = 0;
    await parallel(stale, 4, async (u) => {
      // A physical object's upload belongs to the writer of the key in its name.
      const key = isPhysicalKey(this.root, u.key) ? writtenFor(this.root, u.key) : this.driverKey(u.key);
      if (await spare?.(key)) return;
      try {
        await s3Call(key, undefined, () => this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: u.key, UploadId: u.uploadId })));
        n++;
        // the owner record an interrupted commitTo() may have written (s3-writer.ts)
        if (isPhysicalKey(this.root, u.key)) await this.deleteObjects(key, [ownerRecordOf(u.key)]);
      } catch (e) {
        if (errorName((e as { cause?: unknown }).cause) !== "NoSuchUpload") throw e;
      }
      await deleteWriterObjects(this.client, this.bucket, key, this.objectKey(key));
    });
    return n;
  }

  async redirectURL(key: string, opts: { method: "GET" | "HEAD"; expiresInSeconds: number }): Promise<string | undefined> {
    if (!this.cfg.redirect) return undefined;
    const pointer = await this.pointerAt(key);
    const input = { Bucket: this.bucket, Key: pointer?.target ?? this.objectKey(key) };
    const cmd = opts.method === "HEAD" ? new HeadObjectCommand(input) : new GetObjectCommand(input);
    return s3Call(key, undefined, () => getSignedUrl(this.client, cmd, { expiresIn: opts.expiresInSeconds }));
  }

  async close(): Promise<void> {
    this.client.destroy();
    this.streamClient.destroy();
  }
}

/** An S3 driver for the config, wrapped by checkedDriver. Does not create the bucket. */
export function s3Driver(cfg: S3Config): S3StorageDriver {
  const impl = new S3DriverImpl(cfg);
  const checked = checkedDriver(impl);
  return Object.assign(checked, {
    client: impl.client,
    bucket: impl.bucket,
    ensureBucket: () => impl.ensureBucket(),
    abortStaleMultipartUploads: (olderThan: Date, spare?: (key: string) => Promise<boolean>) => impl.abortStaleMultipartUploads(olderThan, spare),
    sweepOrphans: (olderThan: Date) => impl.sweepOrphans(olderThan),
  });
}

/** Deletes orphaned physical objects for a config without keeping a driver around. */
export async function sweepOrphans(cfg: S3Config, olderThan: Date): Promise<number> {
  const impl = new S3DriverImpl(cfg);
  try {
    return await impl.sweepOrphans(olderThan);
  } finally {
    await impl.close();
  }
}

/** Aborts stale multipart uploads for a config without keeping a driver around. */
export async function abortStaleMultipartUploads(cfg: S3Config, olderThan: Date, spare?: (key: string) => Promise<boolean>): Promise<number> {
  const impl = new S3DriverImpl(cfg);
  try {
    return await impl.abortStaleMultipartUploads(olderThan, spare);
  } finally {
    await impl.close();
  }
}
