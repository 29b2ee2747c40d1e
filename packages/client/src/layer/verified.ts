// The tar stream of a compressed layer blob: the blob bytes pass a size/digest verifier and then
// the decompressor. The verifier fails the stream before it ends when the blob is larger than,
// shorter than or different from its descriptor, so a consumer that sees a clean end of the tar
// stream has read the tar of exactly the expected blob.
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
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

/** Verifies and decompresses `blob`; the returned stream is the layer's tar. */
export function verifiedTar(blob: AsyncIterable<Buffer | Uint8Array | string>, c: CompressedBlob): Readable {
  const src = blob instanceof Readable ? blob : Readable.from(blob, { objectMode: false });
  const verifier = createVerifier({ digest: c.digest, size: c.size });
  const dec = decompressor(c.compression);
  pipeline(src, verifier, dec).catch((e: unknown) => dec.destroy(e instanceof Error ? e : new Error(String(e))));
  return dec;
}
