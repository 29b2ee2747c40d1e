// The tar stream of a compressed layer blob: the blob bytes pass a size/digest verifier and then
// the decompressor. The verifier fails the stream before it ends when the blob is larger than,
// shorter than or different from its descriptor, so a consumer that sees a clean end of the tar
// stream has read the tar of exactly the expected blob. When decompression fails, the rest of
// the blob is still verified and a size/digest mismatch is reported in preference (it is the
// cause: a damaged blob usually also fails to decompress).
import { Readable } from "node:stream";
import type { Digest, LayerCompression } from "@strata/core";
// the subpath keeps the worker thread from loading all of core (zod, parsers)
import { createVerifier } from "@strata/core/verify";
import { decompressor } from "./decompress.js";

/** What a layer blob must be: its descriptor's digest and size, and its compression. */
export interface CompressedBlob {
  compression: LayerCompression;
  digest: Digest;
  size: number;
}

/** Verifies and decompresses `blob`, yielding the layer's tar bytes. */
export async function* verifiedTar(blob: AsyncIterable<Buffer | Uint8Array | string>, c: CompressedBlob): AsyncGenerator<Buffer> {
  const src = blob instanceof Readable ? blob : Readable.from(blob, { objectMode: false });
  const verifier = createVerifier({ digest: c.digest, size: c.size });
  const dec = decompressor(c.compression);
  let verifyError: Error | undefined;
  const verdict = new Promise<Error | undefined>((resolve) => {
    verifier.on("error", (e) => {
      verifyError = e;
      resolve(e);
      dec.destroy(e);
    });
    verifier.on("end", () => resolve(undefined));
  });
  src.on("error", (e) => verifier.destroy(e));
  src.pipe(verifier).pipe(dec);
  try {
    for await (const chunk of dec) yield chunk as Buffer;
  } catch (e) {
    if (e === verifyError) throw e;
    // decompression failed: read the rest of the blob through the verifier for its verdict
    verifier.unpipe(dec);
    verifier.resume();
    throw (await verdict) ?? e;
  } finally {
    src.destroy();
    verifier.destroy();
    dec.destroy();
  }
}
