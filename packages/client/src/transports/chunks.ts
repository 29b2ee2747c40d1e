/**
 * Blob bytes as chunks of a few reused buffers, verified as they pass (`ImageSource.blobChunks`).
 *
 * Saves: a stream source hands out a fresh 1 MiB buffer per read (fs.ReadStream; the registry
 * client's `blobStream` copies each socket chunk out of its reused buffers), so every byte copied
 * lands in new memory: page faults on first touch and garbage collection of the external memory.
 * Measured on `strata copy` of 5 x 64 MiB from an OCI layout to distribution (one run each, load
 * ~9 on 2 cores): user CPU 0.73 s -> 0.51 s, garbage collection in the CPU profile 282 ms -> 66 ms.
 *
 * Contract: a chunk is valid only until the iterator's next `next()` call (its buffer is then
 * reused); the iteration throws before its end unless the bytes match the digest and size asked
 * for, so a consumer that acts on the end (closing an upload) never acts on unverified bytes.
 */
import { type FileHandle, open } from "node:fs/promises";
import { type Digest, Verifier } from "@strata/core";
import { giveBuffer, lendable, takeBuffer } from "../registry/lease.js";

export interface ChunkExpectation {
  readonly digest: Digest;
  /** -1: unknown. */
  readonly size: number;
}

/**
 * `chunks` passed through a verifier for `expect`; `describe` turns a mismatch into the error
 * thrown (before the iteration ends).
 */
export async function* verifiedChunks(chunks: AsyncIterable<Buffer>, expect: ChunkExpectation, describe: (e: Error) => Error): AsyncGenerator<Buffer> {
  const v = new Verifier({ digest: expect.digest, size: expect.size >= 0 ? expect.size : undefined });
  for await (const c of chunks) {
    try {
      v.update(c);
    } catch (e) {
      throw describe(e as Error);
    }
    yield c;
  }
  try {
    v.end();
  } catch (e) {
    throw describe(e as Error);
  }
}

/**
 * The bytes `[start, start + length)` of the file at `path`, verified against `expect`, read into
 * two alternating buffers: the read of the next chunk runs while the consumer handles this one.
 * Chunks are lent (registry/lease.ts): a buffer a consumer retained is replaced by another one
 * from the pool, and goes back to the pool when given back.
 */
export async function* fileChunks(path: string, start: number, length: number, expect: ChunkExpectation, describe: (e: Error) => Error): AsyncGenerator<Buffer> {
  const fh: FileHandle = await open(path, "r");
  /** Chunks retained per buffer (registry/lease.ts). */
  const held = new Map<Buffer, number>();
  let bufs: Buffer[] = [];
  const lender = {
    retain: (b: Buffer) => held.set(b, (held.get(b) ?? 0) + 1),
    release: (b: Buffer) => {
      const n = (held.get(b) ?? 1) - 1;
      if (n > 0) {
        held.set(b, n);
        return;
      }
      held.delete(b);
      // a buffer still in the reader's pair is its own again; any other goes back to the pool
      if (!bufs.includes(b)) giveBuffer(b);
    },
  };
  const fresh = (): Buffer => {
    const b = takeBuffer();
    lendable(b, lender);
    return b;
  };
  bufs = [fresh(), fresh()];
  const v = new Verifier({ digest: expect.digest, size: expect.size >= 0 ? expect.size : undefined });
  const readAt = (b: Buffer, at: number): Promise<number> =>
    at >= length ? Promise.resolve(0) : fh.read(b, 0, Math.min(b.length, length - at), start + at).then((r) => r.bytesRead);
  let pending: Promise<number> | undefined;
  try {
    let pos = 0;
    let i = 0;
    pending = readAt(bufs[0], 0);
    for (;;) {
      const n = await pending;
      pending = undefined;
      if (n === 0) break;
      const chunk = bufs[i].subarray(0, n);
      pos += n;
      try {
        v.update(chunk);
      } catch (e) {
        throw describe(e as Error);
      }
      i ^= 1;
      // the other buffer was handed out last time; the consumer asked for more, so it is free
      // unless the consumer retained its chunk
      if (held.has(bufs[i])) bufs[i] = fresh();
      pending = readAt(bufs[i], pos);
      yield chunk;
    }
    try {
      v.end();
    } catch (e) {
      throw describe(e as Error);
    }
  } finally {
    // a read still in flight writes into its buffer: the buffers go back only once it is done
    await pending?.catch(() => {});
    await fh.close().catch(() => {});
    const mine = bufs;
    bufs = [];
    for (const b of mine) if (!held.has(b)) giveBuffer(b);
  }
}
