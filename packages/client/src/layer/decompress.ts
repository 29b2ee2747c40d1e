// Streaming layer decompression: gzip with zlib, zstd with Debian's `zstd -dc` process when it is
// installed (one process per layer, several times faster than JS) or fzstd's streaming decoder
// otherwise, "none" as a PassThrough. STRATA_ZSTD=js|cli forces a zstd implementation.
import { type ChildProcessByStdio, spawn } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";
import { Duplex, PassThrough, type Readable, Transform, type Writable } from "node:stream";
import { createGunzip } from "node:zlib";
import type { LayerCompression } from "@strata/core";
import { Decompress } from "fzstd";

let zstdPath: string | null | undefined;

/** Absolute path of the zstd executable on PATH, or null. */
export function findZstd(): string | null {
  if (zstdPath !== undefined) return zstdPath;
  zstdPath = null;
  for (const dir of (process.env.PATH ?? "/usr/bin:/bin").split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, "zstd");
    try {
      accessSync(p, constants.X_OK);
      zstdPath = p;
      break;
    } catch {
      // not installed here; try the next location
    }
  }
  return zstdPath;
}

/** zstd decompression through a `zstd -dc` child process. Ends only after the process exited 0. */
class ZstdProcess extends Duplex {
  private readonly child: ChildProcessByStdio<Writable, Readable, Readable>;
  private stderr = "";
  private outEnded = false;
  private exitCode: number | null | undefined;

  constructor(bin: string) {
    super();
    this.child = spawn(bin, ["-dc", "-q"], { stdio: ["pipe", "pipe", "pipe"] });
    const { stdin, stdout, stderr } = this.child;
    stderr.setEncoding("utf8");
    stderr.on("data", (d: string) => {
      if (this.stderr.length < 4096) this.stderr += d;
    });
    stdout.on("data", (d: Buffer) => {
      if (!this.push(d)) stdout.pause();
    });
    stdout.on("end", () => {
      this.outEnded = true;
      this.maybeEnd();
    });
    stdin.on("error", (e: NodeJS.ErrnoException) => {
      // EPIPE: zstd exited early; its exit status reports the cause.
      if (e.code !== "EPIPE") this.destroy(e);
    });
    this.child.on("error", (e) => this.destroy(e));
    this.child.on("close", (code, signal) => {
      this.exitCode = code ?? (signal ? -1 : null);
      this.maybeEnd();
    });
  }

  private maybeEnd(): void {
    if (!this.outEnded || this.exitCode === undefined || this.destroyed) return;
    if (this.exitCode === 0) this.push(null);
    else this.destroy(new Error(`zstd decompression failed (exit ${this.exitCode}): ${this.stderr.trim() || "corrupt input"}`));
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    if (this.child.stdin.write(chunk)) cb();
    else this.child.stdin.once("drain", () => cb());
  }

  override _final(cb: (e?: Error | null) => void): void {
    this.child.stdin.end(() => cb());
  }

  override _read(): void {
    this.child.stdout.resume();
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    if (this.exitCode === undefined) this.child.kill("SIGKILL");
    cb(err);
  }
}

/** zstd decompression in JS (fzstd streaming decoder). */
function zstdJs(): Transform {
  const out: Transform = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      try {
        dec.push(chunk);
        cb();
      } catch (e) {
        cb(new Error(`zstd decompression failed: ${(e as Error).message}`));
      }
    },
    flush(cb) {
      try {
        dec.push(new Uint8Array(0), true);
        cb();
      } catch (e) {
        cb(new Error(`zstd decompression failed: ${(e as Error).message}`));
      }
    },
  });
  const dec = new Decompress((chunk) => {
    out.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
  });
  return out;
}

/** A stream that decompresses a layer blob of the given compression into the tar bytes. */
export function decompressor(compression: LayerCompression): Duplex {
  switch (compression) {
    case "gzip":
      return createGunzip({ chunkSize: 1024 * 1024 });
    case "none":
      return new PassThrough();
    case "zstd": {
      const force = process.env.STRATA_ZSTD;
      const bin = force === "js" ? null : findZstd();
      if (force === "cli" && !bin) throw new Error("STRATA_ZSTD=cli but no zstd executable on PATH");
      return bin ? new ZstdProcess(bin) : zstdJs();
    }
    default:
      throw new Error(`unsupported layer compression ${String(compression)}`);
  }
}
