// assembleLayer: rebuilds a layer's exact original tar bytes from its diff dir and tar-split
// (what `tar-split asm` does), checking each file's size and CRC-64 on the way.
import * as fs from "node:fs";
import { createInterface } from "node:readline";
import { Readable } from "node:stream";
import { createGunzip } from "node:zlib";
import { Crc64 } from "./crc64.js";
import { FILE, goClean, parseTarSplitLine } from "./tarsplit.js";

export class LayerIntegrityError extends Error {
  readonly code = "ELAYERINTEGRITY";
  constructor(message: string) {
    super(message);
    this.name = "LayerIntegrityError";
  }
}

const READ_CHUNK = 1 << 20;

function pathIn(diffDir: string, name: Buffer): string | Buffer {
  let c = goClean(name.toString("latin1"));
  if (c.startsWith("/")) c = c.slice(1) || ".";
  if (c === "." || c === ".." || c.startsWith("../")) throw new LayerIntegrityError(`tar-split names ${JSON.stringify(name.toString())} outside the diff dir`);
  const root = diffDir.replace(/\/+$/, "");
  return /^[\x00-\x7f]*$/.test(c) ? `${root}/${c}` : Buffer.concat([Buffer.from(root), Buffer.from(`/${c}`, "latin1")]);
}

async function* assemble(diffDir: string, tarSplitPath: string): AsyncGenerator<Buffer> {
  const input = fs.createReadStream(tarSplitPath).pipe(createGunzip());
  const lines = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
  const buf = Buffer.allocUnsafe(READ_CHUNK);
  for await (const line of lines) {
    if (line === "") continue;
    const e = parseTarSplitLine(line);
    if (e.type !== FILE) {
      if (e.payload && e.payload.length > 0) yield e.payload;
      continue;
    }
    if (e.size === 0) continue;
    // A header-only entry (hardlink, symlink, device, fifo, directory) whose header still carries
    // a size is recorded with that size but no content: its payload is the CRC of zero bytes.
    // Nothing followed it in the original tar (tar-split asm would wrongly copy the file here).
    if (e.payload && e.payload.length === 8 && e.payload.every((b) => b === 0)) continue;
    const name = e.name ?? Buffer.alloc(0);
    const p = pathIn(diffDir, name);
    const fd = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
    try {
      const st = fs.fstatSync(fd);
      if (!st.isFile()) throw new LayerIntegrityError(`${name.toString()}: not a regular file in the diff dir`);
      if (st.size !== e.size) throw new LayerIntegrityError(`${name.toString()}: size ${st.size} in the diff dir, ${e.size} in tar-split`);
      const crc = new Crc64();
      let left = e.size;
      while (left > 0) {
        const n = fs.readSync(fd, buf, 0, Math.min(READ_CHUNK, left), null);
        if (n === 0) throw new LayerIntegrityError(`${name.toString()}: file shorter than recorded`);
        const chunk = Buffer.from(buf.subarray(0, n));
        crc.update(chunk);
        left -= n;
        yield chunk;
      }
      if (!e.payload || !crc.digest().equals(e.payload)) throw new LayerIntegrityError(`${name.toString()}: CRC-64 mismatch (file changed since the pull)`);
    } finally {
      fs.closeSync(fd);
    }
  }
}

/**
 * Rebuilds the original layer tar from `diffDir` and its tar-split.json.gz. The stream errors with
 * a LayerIntegrityError when a file's size or CRC-64 differs from what tar-split recorded.
 */
export function assembleLayer(opts: { diffDir: string; tarSplitPath: string }): Readable {
  return Readable.from(assemble(opts.diffDir, opts.tarSplitPath), { objectMode: false });
}
