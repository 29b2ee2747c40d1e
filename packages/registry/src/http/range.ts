/** Single byte ranges of blob GETs (RFC 9110 section 14). */
import { BlobRangeError } from "../errors.js";
import type { BlobRange } from "../services/blobs.js";

/**
 * Parses a single `Range: bytes=a-b | a- | -n` against a blob of `size` bytes. A unit other
 * than bytes is ignored (undefined: serve the whole blob), as RFC 9110 requires.
 */
export function parseRange(header: string, size: number): BlobRange | undefined {
  const h = header.trim();
  if (!/^bytes=/i.test(h)) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/i.exec(h);
  if (!m || (m[1] === "" && m[2] === "")) throw new BlobRangeError(size);
  if (m[1] === "") {
    const n = Number(m[2]);
    if (n === 0 || size === 0) throw new BlobRangeError(size);
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || start > end) throw new BlobRangeError(size);
  return { start, end };
}
