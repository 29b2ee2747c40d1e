/**
 * Random access to the regular files of a tar archive (docker-archive, oci-archive): the headers
 * are read with positioned reads, skipping content, so indexing an archive costs one small read
 * per entry. Understands ustar/GNU headers, GNU long names ('L') and pax `path`/`size` records.
 * Names are cleaned (leading "./" and "/" dropped); an entry whose name leaves the archive root is
 * not indexed. A later entry of the same name replaces an earlier one (as tar extraction would).
 */
import { open } from "node:fs/promises";
import type { Readable } from "node:stream";
import { parsePax } from "../layer/tar.js";
import { goClean } from "../layer/tarsplit.js";
import { fileRange } from "./files.js";

/** Files indexed at most (an image archive has a few per layer). */
const MAX_ENTRIES = 100_000;

export interface TarEntry {
  readonly name: string;
  /** Offset of the content in the file. */
  readonly offset: number;
  readonly size: number;
}

export class TarIndex {
  private constructor(
    readonly path: string,
    private readonly entries: Map<string, TarEntry>,
  ) {}

  static async open(path: string): Promise<TarIndex> {
    const fh = await open(path, "r");
    const entries = new Map<string, TarEntry>();
    try {
      const fileSize = (await fh.stat()).size;
      const blk = Buffer.alloc(512);
      let pos = 0;
      let longName: string | undefined;
      let paxPath: string | undefined;
      let paxSize: number | undefined;
      for (;;) {
        if (pos + 512 > fileSize) {
          if (pos === fileSize) break; // tolerated: no end-of-archive blocks
          throw new Error("truncated tar header");
        }
        await readFully(fh, blk, pos);
        pos += 512;
        if (blk.every((b) => b === 0)) break;
        if (!checksumOk(blk)) throw new Error(`tar header checksum mismatch at offset ${pos - 512}`);
        const type = String.fromCharCode(blk[156]);
        let size = octal(blk.subarray(124, 136));
        if (paxSize !== undefined && type !== "x" && type !== "g") size = paxSize;
        if (size < 0 || pos + size > fileSize) throw new Error(`tar entry at offset ${pos - 512} runs past the end of the file`);
        const dataAt = pos;
        pos += Math.ceil(size / 512) * 512;
        if (type === "L" || type === "x") {
          if (size > 1 << 20) throw new Error("tar meta header too large");
          const data = Buffer.alloc(size);
          await readFully(fh, data, dataAt);
          if (type === "L") longName = data.toString("utf8").replace(/\0.*$/s, "");
          else {
            const pax = parsePax(data);
            paxPath = pax.get("path") !== undefined ? Buffer.from(pax.get("path") as string, "latin1").toString("utf8") : undefined;
            const s = pax.get("size");
            paxSize = s !== undefined ? Number(s) : undefined;
          }
          continue;
        }
        let name = longName ?? paxPath ?? headerName(blk);
        longName = undefined;
        paxPath = undefined;
        paxSize = undefined;
        if (type !== "0" && type !== "\0") continue;
        name = goClean(name.replace(/^\/+/, ""));
        if (name === "." || name === ".." || name.startsWith("../")) continue;
        entries.set(name, { name, offset: dataAt, size });
        if (entries.size > MAX_ENTRIES) throw new Error(`more than ${MAX_ENTRIES} files in the archive`);
      }
    } finally {
      await fh.close();
    }
    return new TarIndex(path, entries);
  }

  get(name: string): TarEntry | undefined {
    const c = goClean(name.replace(/^\/+/, ""));
    return this.entries.get(c);
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  stream(e: TarEntry): Readable {
    return fileRange(this.path, e.offset, e.offset + e.size);
  }

  /** The first `n` bytes of an entry (fewer when it is shorter). */
  async head(e: TarEntry, n: number): Promise<Buffer> {
    const fh = await open(this.path, "r");
    try {
      const buf = Buffer.alloc(Math.min(n, e.size));
      await readFully(fh, buf, e.offset);
      return buf;
    } finally {
      await fh.close();
    }
  }
}

async function readFully(fh: Awaited<ReturnType<typeof open>>, buf: Buffer, position: number): Promise<void> {
  let off = 0;
  while (off < buf.length) {
    const { bytesRead } = await fh.read(buf, off, buf.length - off, position + off);
    if (bytesRead === 0) throw new Error("unexpected end of tar file");
    off += bytesRead;
  }
}

function headerName(blk: Buffer): string {
  const cstr = (off: number, len: number) => {
    const s = blk.subarray(off, off + len);
    const z = s.indexOf(0);
    return (z === -1 ? s : s.subarray(0, z)).toString("utf8");
  };
  const name = cstr(0, 100);
  const magic = blk.subarray(257, 263).toString("latin1");
  const prefix = magic === "ustar\0" ? cstr(345, 155) : "";
  return prefix ? `${prefix}/${name}` : name;
}

/** Octal (or GNU base-256) numeric field. */
function octal(f: Buffer): number {
  if (f[0] & 0x80) {
    let n = f[0] & 0x7f;
    for (let i = 1; i < f.length; i++) n = n * 256 + f[i];
    return n;
  }
  const s = f.toString("latin1").replace(/[\0 ]+$/, "").replace(/^[\0 ]+/, "");
  if (s === "") return 0;
  if (!/^[0-7]+$/.test(s)) throw new Error("invalid number in tar header");
  return Number.parseInt(s, 8);
}

function checksumOk(blk: Buffer): boolean {
  const want = octal(blk.subarray(148, 156));
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : blk[i];
  return sum === want;
}
