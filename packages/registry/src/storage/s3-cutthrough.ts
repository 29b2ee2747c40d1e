/**
 * Cut-through parts: a part of a multipart upload starts going out while its buffer is still
 * being filled. The UploadPart request is opened with the part's full size as Content-Length,
 * and its body is fed from the buffer as the writer's bytes arrive (subarrays of the buffer,
 * no copy). The buffer still holds every byte, so:
 * - when the request fails (one attempt only: a consumed stream cannot be sent again), the
 *   writer uploads the full buffer as an ordinary part (with the client's retries);
 * - when the writer ends before the part is full, `abandon()` cuts the request (the object
 *   store never sees Content-Length bytes, so no part is stored under that number) and the
 *   writer sends the bytes it has as a shorter part, or as a segment, as it would have.
 *
 * What it saves: a part no longer waits for its last byte before it starts to cross to the
 * object store, so the part in flight when a body ends is answered soon after (the client's
 * wait between its last byte and the PATCH's 202). Measured with Swift s3api on the 2-core
 * test machine, 256 MiB streamed PATCH + PUT through the registry, 16 MiB parts, 6 rounds
 * each, A/B interleaved at load 2-2.5: last byte -> 202 106-165 ms -> 56-84 ms; whole push
 * 1.36-1.64 s (best 1.36) -> 1.19-1.62 s (best 1.19); the registry's CPU unchanged (0.69-0.97
 * vs 0.69-1.07 s; fed in 64 KiB pieces it was ~0.1 s more, hence FEED_BYTES). The rest of the
 * gap to one PutObject is the store's CPU per part on a machine it shares with the registry
 * (see s3-buffers.ts for the parts' answer latency).
 */
import { Readable } from "node:stream";
import { type S3Client, UploadPartCommand } from "@aws-sdk/client-s3";
import { unsignedPayload } from "./s3-unsigned.js";

/**
 * The body is fed in pieces of at least this many bytes: each piece is one write through the
 * HTTP request's stream machinery, and the registry receives 64 KiB socket reads.
 */
const FEED_BYTES = 1024 * 1024;

export interface CutThroughTarget {
  /** A client that makes one attempt per request (the body is a stream). */
  readonly client: S3Client;
  readonly bucket: string;
  readonly uploadKey: string;
  readonly uploadId: string;
  readonly partNumber: number;
  /** The writer's signal: aborting it cuts the request as well. */
  readonly signal?: AbortSignal;
}

/** One part sent while it fills; `buf` is the part's whole buffer, `[0, sent)` already fed. */
export class CutThroughPart {
  private sent: number;
  private readonly body: Readable;
  private readonly cut = new AbortController();
  /** The ETag when the object store stored the part, undefined when the attempt failed or was cut. */
  readonly result: Promise<string | undefined>;

  constructor(
    readonly buf: Buffer,
    filled: number,
    readonly target: CutThroughTarget,
  ) {
    this.sent = filled;
    this.body = new Readable({ read() {} });
    this.body.push(buf.subarray(0, filled));
    const signal = target.signal ? AbortSignal.any([target.signal, this.cut.signal]) : this.cut.signal;
    const cmd = unsignedPayload(
      new UploadPartCommand({
        Bucket: target.bucket,
        Key: target.uploadKey,
        UploadId: target.uploadId,
        PartNumber: target.partNumber,
        Body: this.body,
        ContentLength: buf.length,
      }),
    );
    this.result = target.client.send(cmd, { abortSignal: signal }).then(
      (res) => res.ETag,
      () => undefined,
    );
  }

  get partNumber(): number {
    return this.target.partNumber;
  }

  /**
   * Feeds the buffer's bytes up to `filled` once FEED_BYTES gathered (or the buffer is full);
   * the body ends when the buffer is full.
   */
  feed(filled: number): void {
    if (filled <= this.sent || (filled - this.sent < FEED_BYTES && filled < this.buf.length)) return;
    this.body.push(this.buf.subarray(this.sent, filled));
    this.sent = filled;
    if (filled === this.buf.length) this.body.push(null);
  }

  /** Cuts the request (the part is not stored) and waits until it settled. */
  async abandon(): Promise<void> {
    this.cut.abort();
    this.body.destroy();
    await this.result;
  }
}
