/**
 * A writer for content whose exact size is known up front: the bytes stream to S3 in ONE
 * PutObject request while they arrive (no multipart, no buffering of the whole object).
 *
 * Publication still happens only at commit(): an S3 PUT creates the object only once it has
 * received all Content-Length bytes, and this writer holds back the final chunk until
 * commit(). cancel() (or any failure) aborts the request before that, so nothing appears.
 * Not resumable: close() is refused; callers that may need to resume use the multipart writer.
 */
import { PassThrough } from "node:stream";
import { PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { type FileWriter, StorageError } from "./driver.js";
import { DRIVER_NAME, s3Call } from "./s3-client.js";

/** The largest object a single PutObject may create. */
export const MAX_SINGLE_PUT = 5 * 1024 * 1024 * 1024;

/**
 * Bytes queued between the caller and the PutObject request (the request body's buffer). 1 MiB
 * (was 4 MiB) keeps the socket to S3 fed and bounds what each monolithic upload holds: with 8
 * concurrent uploads 8 MiB in all instead of 32 MiB. Measured (bench:s3, 8 concurrent
 * monolithic PUTs, --max-semi-space-size=2, one run each): 512 MiB at load 6-9, peak RSS
 * 191 -> 164 MB; 1 GiB at load 4-5, 196 -> 203 MB (throughput 400 -> 667 MiB/s, so more
 * collected-but-not-yet-freed socket buffers): the peak follows GC timing more than this buffer.
 */
const BODY_BUFFER = 1024 * 1024;

export class S3PutWriter implements FileWriter {
  private readonly body = new PassThrough({ highWaterMark: BODY_BUFFER });
  private readonly abort = new AbortController();
  private readonly request: Promise<unknown>;
  private written = 0;
  private held: Buffer | undefined;
  private failure: unknown;
  private done = false;

  constructor(
    client: S3Client,
    bucket: string,
    objectKey: string,
    private readonly key: string,
    private readonly expected: number,
    signal?: AbortSignal,
  ) {
    const onAbort = () => this.abort.abort(signal?.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    this.request = s3Call(key, this.abort.signal, () =>
      client.send(new PutObjectCommand({ Bucket: bucket, Key: objectKey, Body: this.body, ContentLength: expected }), { abortSignal: this.abort.signal }),
    ).finally(() => signal?.removeEventListener("abort", onAbort));
    this.request.catch((e) => {
      this.failure ??= e;
      this.body.destroy();
    });
  }

  get size(): number {
    return this.written;
  }

  private check(): void {
    if (this.done) throw new StorageError(DRIVER_NAME, this.key, "writer already closed");
    if (this.failure !== undefined) throw this.failure;
  }

  private async push(chunk: Buffer): Promise<void> {
    if (this.body.write(chunk)) return;
    await new Promise<void>((resolve, reject) => {
      const onDrain = () => {
        this.body.off("close", onClose);
        resolve();
      };
      const onClose = () => {
        this.body.off("drain", onDrain);
        reject(this.failure ?? new StorageError(DRIVER_NAME, this.key, "upload stream closed"));
      };
      this.body.once("drain", onDrain);
      this.body.once("close", onClose);
    });
  }

  async write(chunk: Uint8Array): Promise<void> {
    this.check();
    if (chunk.byteLength === 0) return;
    if (this.written + chunk.byteLength > this.expected) {
      throw new StorageError(DRIVER_NAME, this.key, `more than the announced ${this.expected} bytes written`);
    }
    const copy = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    this.written += copy.length;
    if (this.held) await this.push(this.held);
    // The chunk that completes the object waits for commit(): without it S3 creates nothing.
    this.held = copy;
    if (this.written < this.expected) {
      this.held = undefined;
      await this.push(copy);
    }
  }

  async close(): Promise<void> {
    await this.cancel();
    throw new StorageError(DRIVER_NAME, this.key, "a sized writer cannot be resumed");
  }

  async commit(): Promise<void> {
    this.check();
    if (this.written !== this.expected) throw new StorageError(DRIVER_NAME, this.key, `wrote ${this.written} of the announced ${this.expected} bytes`);
    this.done = true;
    if (this.held) this.body.write(this.held);
    this.held = undefined;
    this.body.end();
    await this.request;
  }

  async cancel(): Promise<void> {
    if (this.done && this.failure === undefined) return;
    this.done = true;
    this.held = undefined;
    this.abort.abort();
    this.body.destroy();
    await this.request.catch(() => {});
  }
}
