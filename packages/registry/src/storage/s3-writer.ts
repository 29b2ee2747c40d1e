/**
 * The S3 driver's resumable writer. Bytes map onto one S3 multipart upload created for the
 * writer's key:
 * - Written bytes are buffered until a part of at least the part size is full; full parts are
 *   uploaded in the background (a few at a time) while the caller keeps writing.
 * - `commit()` uploads the rest as the last part and completes the upload, which makes the
 *   object appear at the key atomically. A writer that never filled a part commits with one
 *   PutObject instead.
 * - `close()` waits for the uploaded parts and stores the unfilled rest (< one part) as a small
 *   "tail" object at `key + TAIL_SUFFIX`, with the upload id and part count as metadata. A
 *   later `writer(key, {append: true})`, in any process, reads the tail, lists the upload's
 *   parts and continues with an exact size. The tail key is never a valid driver key, so
 *   callers never see it (lists skip it).
 * - `cancel()` aborts the multipart upload and deletes the tail.
 */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  ListPartsCommand,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
} from "@aws-sdk/client-s3";
import type { FileWriter } from "./driver.js";
import { PathNotFoundError, StorageError } from "./driver.js";
import { DRIVER_NAME, errorName, s3Call } from "./s3-client.js";

/** Suffix of a writer's tail object. "~" is outside the key grammar's component characters. */
export const TAIL_SUFFIX = "~strata-tail";
/** S3's smallest allowed part (all parts but the last). */
export const MIN_PART_SIZE = 5 * 1024 * 1024;
const MAX_PART_SIZE = 5 * 1024 * 1024 * 1024;
/** Parts uploaded concurrently by one writer. */
const PART_CONCURRENCY = 4;
/** The part size doubles every this many parts, so that 1000 parts (Swift's default limit) hold ~30 GiB. */
const PARTS_PER_SIZE_STEP = 250;

interface Part {
  readonly PartNumber: number;
  readonly ETag: string;
  readonly Size: number;
}

export interface WriterContext {
  readonly client: S3Client;
  readonly bucket: string;
  readonly partSize: number;
  /** The driver key (for errors). */
  readonly key: string;
  /** The object key in the bucket. */
  readonly objectKey: string;
  readonly signal?: AbortSignal;
}

/** The part size for part `partNumber` (1-based). */
export function partSizeFor(base: number, partNumber: number): number {
  const step = Math.floor((partNumber - 1) / PARTS_PER_SIZE_STEP);
  return Math.min(MAX_PART_SIZE, Math.max(MIN_PART_SIZE, base) * 2 ** Math.min(step, 10));
}

async function readBody(body: unknown): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of body as AsyncIterable<Uint8Array>) chunks.push(Buffer.from(c.buffer, c.byteOffset, c.byteLength));
  return Buffer.concat(chunks);
}

export class S3Writer implements FileWriter {
  private uploadId: string | undefined;
  private readonly parts: Part[] = [];
  private nextPart = 1;
  private buffered: Buffer[] = [];
  private bufferedLen = 0;
  private total = 0;
  private readonly inflight = new Set<Promise<void>>();
  private failure: unknown;
  private done = false;

  private constructor(private readonly ctx: WriterContext) {}

  get size(): number {
    return this.total;
  }

  private get tailKey(): string {
    return this.ctx.objectKey + TAIL_SUFFIX;
  }

  /** A new writer; nothing touches the bucket until a part fills or the writer ends. */
  static fresh(ctx: WriterContext): S3Writer {
    return new S3Writer(ctx);
  }

  /** Continues the state a closed writer left for the same key; empty when there is none. */
  static async resume(ctx: WriterContext): Promise<S3Writer> {
    const w = new S3Writer(ctx);
    const { client, bucket, key, signal } = ctx;
    let tail: Buffer;
    let meta: Record<string, string>;
    try {
      const res = await s3Call(key, signal, () => client.send(new GetObjectCommand({ Bucket: bucket, Key: w.tailKey }), { abortSignal: signal }));
      meta = res.Metadata ?? {};
      tail = await s3Call(key, signal, () => readBody(res.Body));
    } catch (e) {
      if (e instanceof PathNotFoundError) return w;
      throw e;
    }
    const uploadId = meta["upload-id"] ?? "";
    const partCount = Number(meta["part-count"] ?? "0");
    const expected = Number(meta.size ?? "NaN");
    if (uploadId) {
      const listed: Part[] = [];
      let marker: string | undefined;
      for (;;) {
        const res = await s3Call(key, signal, () =>
          client.send(new ListPartsCommand({ Bucket: bucket, Key: ctx.objectKey, UploadId: uploadId, PartNumberMarker: marker }), { abortSignal: signal }),
        );
        for (const p of res.Parts ?? []) {
          if (p.PartNumber !== undefined && p.ETag !== undefined && p.Size !== undefined) listed.push({ PartNumber: p.PartNumber, ETag: p.ETag, Size: p.Size });
        }
        if (!res.IsTruncated || res.NextPartNumberMarker === undefined) break;
        marker = String(res.NextPartNumberMarker);
      }
      listed.sort((a, b) => a.PartNumber - b.PartNumber);
      // Parts past the recorded count come from a writer that died before close(); they are
      // overwritten (same part numbers) or dropped at completion.
      const kept = listed.filter((p) => p.PartNumber <= partCount);
      if (kept.length !== partCount || kept.some((p, i) => p.PartNumber !== i + 1)) {
        throw new StorageError(DRIVER_NAME, key, `resumable upload state is inconsistent (recorded ${partCount} parts, found ${kept.length})`);
      }
      w.uploadId = uploadId;
      w.parts.push(...kept);
      w.nextPart = partCount + 1;
    }
    w.buffered = tail.length ? [tail] : [];
    w.bufferedLen = tail.length;
    w.total = w.parts.reduce((n, p) => n + p.Size, 0) + tail.length;
    if (Number.isFinite(expected) && expected !== w.total) {
      throw new StorageError(DRIVER_NAME, key, `resumable upload state is inconsistent (recorded ${expected} bytes, found ${w.total})`);
    }
    return w;
  }

  private check(): void {
    if (this.done) throw new StorageError(DRIVER_NAME, this.ctx.key, "writer already closed");
    if (this.failure !== undefined) throw this.failure;
    this.ctx.signal?.throwIfAborted();
  }

  async write(chunk: Uint8Array): Promise<void> {
    this.check();
    if (chunk.byteLength === 0) return;
    // Copy: the caller may reuse its buffer once write() resolves.
    this.buffered.push(Buffer.from(chunk));
    this.bufferedLen += chunk.byteLength;
    this.total += chunk.byteLength;
    while (this.bufferedLen >= partSizeFor(this.ctx.partSize, this.nextPart)) {
      const n = partSizeFor(this.ctx.partSize, this.nextPart);
      await this.startPart(this.take(n));
      this.check();
    }
  }

  /** Removes the first n buffered bytes. */
  private take(n: number): Buffer {
    const all = this.buffered.length === 1 ? this.buffered[0] : Buffer.concat(this.buffered, this.bufferedLen);
    const head = all.subarray(0, n);
    const rest = all.subarray(n);
    this.buffered = rest.length ? [rest] : [];
    this.bufferedLen = rest.length;
    return head;
  }

  private async ensureUpload(): Promise<string> {
    if (this.uploadId === undefined) {
      const { client, bucket, objectKey, key, signal } = this.ctx;
      const res = await s3Call(key, signal, () => client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: objectKey }), { abortSignal: signal }));
      if (!res.UploadId) throw new StorageError(DRIVER_NAME, key, "CreateMultipartUpload returned no upload id");
      this.uploadId = res.UploadId;
    }
    return this.uploadId;
  }

  /** Uploads one part in the background, waiting while too many are in flight. */
  private async startPart(body: Buffer): Promise<void> {
    const uploadId = await this.ensureUpload();
    while (this.inflight.size >= PART_CONCURRENCY) await Promise.race(this.inflight);
    const partNumber = this.nextPart++;
    const { client, bucket, objectKey, key, signal } = this.ctx;
    const p: Promise<void> = s3Call(key, signal, () =>
      client.send(
        new UploadPartCommand({ Bucket: bucket, Key: objectKey, UploadId: uploadId, PartNumber: partNumber, Body: body, ContentLength: body.length }),
        {
          abortSignal: signal,
        },
      ),
    ).then(
      (res) => {
        if (!res.ETag) throw new StorageError(DRIVER_NAME, key, `UploadPart ${partNumber} returned no ETag`);
        this.parts.push({ PartNumber: partNumber, ETag: res.ETag, Size: body.length });
      },
      (e) => {
        this.failure ??= e;
      },
    );
    const tracked = p.finally(() => this.inflight.delete(tracked));
    this.inflight.add(tracked);
  }

  private async drain(): Promise<void> {
    while (this.inflight.size) await Promise.all(this.inflight);
    if (this.failure !== undefined) throw this.failure;
  }

  async close(): Promise<void> {
    this.check();
    this.done = true;
    await this.drain();
    const { client, bucket, key, signal } = this.ctx;
    const tail = this.take(this.bufferedLen);
    await s3Call(key, signal, () =>
      client.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: this.tailKey,
          Body: tail,
          ContentLength: tail.length,
          Metadata: { "upload-id": this.uploadId ?? "", "part-count": String(this.parts.length), size: String(this.total) },
        }),
        { abortSignal: signal },
      ),
    );
  }

  async commit(): Promise<void> {
    this.check();
    this.done = true;
    const { client, bucket, objectKey, key, signal } = this.ctx;
    if (this.uploadId === undefined) {
      const body = this.take(this.bufferedLen);
      await s3Call(key, signal, () =>
        client.send(new PutObjectCommand({ Bucket: bucket, Key: objectKey, Body: body, ContentLength: body.length }), { abortSignal: signal }),
      );
    } else {
      if (this.bufferedLen > 0) await this.startPart(this.take(this.bufferedLen));
      await this.drain();
      const parts = [...this.parts].sort((a, b) => a.PartNumber - b.PartNumber).map((p) => ({ PartNumber: p.PartNumber, ETag: p.ETag }));
      const uploadId = this.uploadId;
      await s3Call(key, signal, () =>
        client.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: objectKey, UploadId: uploadId, MultipartUpload: { Parts: parts } }), {
          abortSignal: signal,
        }),
      );
    }
    await this.deleteTail();
  }

  async cancel(): Promise<void> {
    if (this.done && this.failure === undefined) throw new StorageError(DRIVER_NAME, this.ctx.key, "writer already closed");
    this.done = true;
    while (this.inflight.size) await Promise.allSettled(this.inflight);
    this.buffered = [];
    this.bufferedLen = 0;
    const { client, bucket, objectKey, key } = this.ctx;
    if (this.uploadId !== undefined) {
      const uploadId = this.uploadId;
      try {
        await s3Call(key, undefined, () => client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: objectKey, UploadId: uploadId })));
      } catch (e) {
        // Already completed or aborted elsewhere: nothing left to remove.
        if (errorName((e as { cause?: unknown }).cause) !== "NoSuchUpload") throw e;
      }
    }
    await this.deleteTail();
  }

  private async deleteTail(): Promise<void> {
    const { client, bucket, key } = this.ctx;
    await s3Call(key, undefined, () => client.send(new DeleteObjectCommand({ Bucket: bucket, Key: this.tailKey })));
  }
}
