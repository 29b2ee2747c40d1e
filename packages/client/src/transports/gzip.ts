/**
 * Reproducible compression of layer tars.
 *
 * gzip: a raw deflate stream from Node's zlib at level 6 between a fixed 10-byte header (no
 * name, no comment, mtime 0, XFL 0, OS 3) and the CRC-32/size trailer. The input is cut into
 * 1 MiB blocks whatever its chunking; a block whose bytes look random (order-0 entropy above 7.9
 * bits per byte: already compressed data) is stored (level 0) instead of compressed, switching
 * with deflateParams at the block boundary (zlib applies params() to raw deflate streams only,
 * hence the hand-written gzip framing). The output is a function of the input bytes only, so the
 * same tar always gives the same blob (with the same zlib).
 * zstd: the zstd CLI at a fixed level.
 */
import { spawn } from "node:child_process";
import { Duplex } from "node:stream";
import * as zlib from "node:zlib";
import { findZstd } from "../layer/decompress.js";

export const GZIP_LEVEL = 6;
export const ZSTD_LEVEL = 3;
const BLOCK = 1 << 20;
const STORE_ENTROPY = 7.9;

/** Order-0 entropy (bits per byte) of every 4th byte of `b`. */
export function sampledEntropy(b: Buffer): number {
  const counts = new Uint32Array(256);
  let n = 0;
  for (let i = 0; i < b.length; i += 4) {
    counts[b[i]]++;
    n++;
  }
  if (n === 0) return 0;
  let h = 0;
  for (let i = 0; i < 256; i++) {
    const c = counts[i];
    if (c) {
      const p = c / n;
      h -= p * Math.log2(p);
    }
  }
  return h;
}

const HEADER = Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);

/** CRC-32 (gzip's): zlib.crc32 where Node has it (20.15+), else a table. */
const crc32: (data: Uint8Array, value: number) => number =
  typeof (zlib as { crc32?: unknown }).crc32 === "function" ? (zlib as unknown as { crc32: (d: Uint8Array, v: number) => number }).crc32 : crc32Table;

let TABLE: Uint32Array | undefined;
export function crc32Table(data: Uint8Array, value: number): number {
  if (!TABLE) {
    TABLE = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      TABLE[n] = c >>> 0;
    }
  }
  let c = ~value >>> 0;
  for (let i = 0; i < data.length; i++) c = TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

class AdaptiveGzip extends Duplex {
  private readonly gz: zlib.DeflateRaw = zlib.createDeflateRaw({ level: GZIP_LEVEL, chunkSize: 1 << 20 });
  private level = GZIP_LEVEL;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private crc = 0;
  private size = 0;

  constructor() {
    super();
    this.push(HEADER);
    this.gz.on("data", (d: Buffer) => {
      if (!this.push(d)) this.gz.pause();
    });
    this.gz.on("end", () => {
      const trailer = Buffer.alloc(8);
      trailer.writeUInt32LE(this.crc >>> 0, 0);
      trailer.writeUInt32LE(this.size % 0x100000000, 4);
      this.push(trailer);
      this.push(null);
    });
    this.gz.on("error", (e) => this.destroy(e));
  }

  override _read(): void {
    this.gz.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    this.drainBlocks(false).then(() => cb(), cb);
  }

  override _final(cb: (e?: Error | null) => void): void {
    this.drainBlocks(true).then(() => {
      this.gz.end();
      cb();
    }, cb);
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    this.gz.destroy();
    cb(err);
  }

  /** Feeds every complete block (and, at the end, the rest) to zlib, at the level its content calls for. */
  private async drainBlocks(final: boolean): Promise<void> {
    while (this.pendingBytes >= BLOCK || (final && this.pendingBytes > 0)) {
      const all = this.pending.length === 1 ? this.pending[0] : Buffer.concat(this.pending);
      const n = Math.min(BLOCK, all.length);
      const block = all.subarray(0, n);
      const rest = all.subarray(n);
      this.pending = rest.length ? [rest] : [];
      this.pendingBytes = rest.length;
      const want = sampledEntropy(block) > STORE_ENTROPY ? 0 : GZIP_LEVEL;
      if (want !== this.level) {
        await new Promise<void>((resolve) => this.gz.params(want, zlib.constants.Z_DEFAULT_STRATEGY, () => resolve()));
        this.level = want;
      }
      this.crc = crc32(block, this.crc);
      this.size += block.length;
      if (!this.gz.write(block)) await new Promise<void>((resolve) => this.gz.once("drain", resolve));
    }
  }
}

export function compressor(kind: "gzip" | "zstd"): Duplex {
  if (kind === "gzip") return new AdaptiveGzip();
  const bin = findZstd();
  if (!bin) throw new Error("--dest-compress zstd needs the zstd executable (Debian package zstd)");
  const child = spawn(bin, ["-q", "-c", `-${ZSTD_LEVEL}`, "--no-progress"], { stdio: ["pipe", "pipe", "ignore"] });
  const d = Duplex.from({ writable: child.stdin, readable: child.stdout });
  child.on("exit", (code) => {
    if (code !== 0) d.destroy(new Error(`zstd exited with status ${code}`));
  });
  return d;
}
