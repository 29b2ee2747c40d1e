// The tar stream of a layer blob downloaded from a registry, for the fast unpack path (a worker
// thread's job, or the caller's thread when it unpacks inline): the blob's chunks arrive in the
// HTTP client's reused buffers, are verified (size and digest) and, for gzip, decoded by the
// addon's inflater into one reused output buffer, so no chunk is copied or allocated per read.
import { Verifier } from "@strata/core/verify";
import { nativeAvailable } from "../native.js";
import type { RegistryClient } from "../registry/client.js";
import { GzipDecoder } from "./gunzip.js";
// verified.ts (stream decompressors, fzstd) is imported only for the blobs that need it
import type { CompressedBlob } from "./verified.js";

export interface RemoteTarHooks {
  signal?: AbortSignal;
  /** Told the blob bytes read so far, at most every 100 ms, and once more (done) at the end of the blob. */
  onRead?: (bytes: number, done: boolean) => void;
  /** Told the offset whenever the download resumes after a network failure. */
  onResume?: (offset: number) => void;
}

/**
 * Downloads `blob` from `repository` and yields its tar bytes: verified against its size and
 * digest, and decoded. Every chunk yielded is valid only until the next is asked for (extract
 * with releaseChunks). The verifier's verdict comes before the end of the tar stream; when
 * decoding fails, the rest of the blob is still read and a size/digest mismatch reported in
 * preference (it is the cause).
 */
export async function* remoteTar(client: RegistryClient, repository: string, blob: CompressedBlob, hooks: RemoteTarHooks = {}): AsyncGenerator<Buffer> {
  const chunks = client.blobChunks(repository, blob, { signal: hooks.signal, onResume: hooks.onResume });
  let n = 0;
  let reported = 0;
  /** The next chunk of the blob, counted and reported (at most every 100 ms). */
  const read = async (): Promise<Buffer | undefined> => {
    const r = await chunks.next();
    if (r.done) return undefined;
    n += r.value.length;
    const now = Date.now();
    if (now - reported >= 100) {
      reported = now;
      hooks.onRead?.(n, false);
    }
    return r.value;
  };
  const verifier = new Verifier({ digest: blob.digest, size: blob.size });
  const next = async (): Promise<Buffer | undefined> => {
    const c = await read();
    if (c !== undefined) verifier.update(c);
    return c;
  };
  const verdict = async (cause: unknown): Promise<unknown> => {
    try {
      while ((await next()) !== undefined);
      verifier.end();
    } catch (e) {
      return e;
    }
    return cause;
  };
  try {
    if (blob.compression === "zstd" || (blob.compression === "gzip" && !nativeAvailable())) {
      // zstd (or gzip without the native addon): verifiedTar verifies and runs the stream
      // decompressor, fed with copies (it may hold on to its input)
      const copies = async function* () {
        for (let c = await read(); c !== undefined; c = await read()) yield Buffer.from(c);
        hooks.onRead?.(n, true);
      };
      const { verifiedTar } = await import("./verified.js");
      yield* verifiedTar(copies(), blob);
      return;
    }
    const dec = blob.compression === "gzip" ? new GzipDecoder() : undefined;
    for (let c = await next(); c !== undefined; c = await next()) {
      if (!dec) {
        yield c;
        continue;
      }
      const outs = dec.decode(c);
      for (;;) {
        let r: IteratorResult<Buffer>;
        try {
          r = outs.next();
        } catch (e) {
          throw await verdict(e);
        }
        if (r.done) break;
        yield r.value;
      }
    }
    hooks.onRead?.(n, true);
    verifier.end();
    try {
      dec?.end();
    } catch (e) {
      throw await verdict(e);
    }
  } finally {
    await chunks.return(undefined);
  }
}
