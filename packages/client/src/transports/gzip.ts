/**
 * Reproducible compression of layer tars. gzip: Node's zlib at a fixed level; zlib writes a
 * fixed 10-byte header (no file name, no comment, mtime 0, OS 3), so the same tar always gives
 * the same blob with the same build of Node. zstd: the zstd CLI at a fixed level, no checksum
 * options varying per run.
 */
import { spawn } from "node:child_process";
import { Duplex } from "node:stream";
import { constants, createGzip } from "node:zlib";
import { findZstd } from "../layer/decompress.js";

export const GZIP_LEVEL = 6;
export const ZSTD_LEVEL = 3;

export function compressor(kind: "gzip" | "zstd"): Duplex {
  if (kind === "gzip") return createGzip({ level: GZIP_LEVEL, strategy: constants.Z_DEFAULT_STRATEGY, chunkSize: 1 << 20 });
  const bin = findZstd();
  if (!bin) throw new Error("--dest-compress zstd needs the zstd executable (Debian package zstd)");
  const child = spawn(bin, ["-q", "-c", `-${ZSTD_LEVEL}`, "--no-progress"], { stdio: ["pipe", "pipe", "ignore"] });
  const d = Duplex.from({ writable: child.stdin, readable: child.stdout });
  child.on("exit", (code) => {
    if (code !== 0) d.destroy(new Error(`zstd exited with status ${code}`));
  });
  return d;
}
