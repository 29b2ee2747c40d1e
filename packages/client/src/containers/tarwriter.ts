/**
 * A deterministic layer tar from an overlay upper dir, in the form the OCI image spec and Docker's
 * overlay2 driver use for a layer diff:
 * - entries depth first, names compared as bytes, a directory before its contents; the upper dir
 *   itself is not an entry; names are relative without "./" and directories end with "/";
 * - a 0:0 character device (overlay whiteout) becomes an empty regular file `<dir>/.wh.<name>`
 *   (mode 0600, owner and mtime kept); a directory with trusted.overlay.opaque=y is followed by
 *   an empty regular file `<dir>/.wh..wh..opq` (the directory's mode, owner and mtime);
 * - regular files sharing an inode: the first (in walk order) carries the data, later ones are
 *   hardlinks to it; sockets are skipped;
 * - ustar headers with empty user/group names and whole-second mtimes; a PAX 'x' header (records
 *   sorted by key) carries what ustar cannot hold: long or non-ASCII names and link targets, ids,
 *   sizes and times out of octal range, and extended attributes as SCHILY.xattr.<name>
 *   (trusted.overlay.* excluded; they belong to the overlay, not the layer);
 * - the archive ends with two zero blocks and no record padding (like Go's archive/tar), so an
 *   empty upper dir gives 1024 zero bytes, the well-known empty layer.
 */
import * as fs from "node:fs";
import { Readable } from "node:stream";
import { getxattr, listxattr } from "../native.js";
import { isOpaque, isWhiteout } from "./stack.js";

const BLOCK = 512;
const MAX_OCTAL8 = 0o7777777;
const MAX_OCTAL12 = 0o77777777777;
const READ_CHUNK = 1 << 20;

interface Hdr {
  name: Buffer;
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  linkname?: Buffer;
  devmajor?: number;
  devminor?: number;
  xattrs?: Array<[string, Buffer]>;
}

function isAsciiBuf(b: Buffer): boolean {
  for (const c of b) if (c > 0x7f || c === 0) return false;
  return true;
}

function octal(b: Buffer, off: number, width: number, n: number): void {
  b.write(`${n.toString(8).padStart(width - 1, "0")}\0`, off, width, "latin1");
}

/** Splits a name into ustar prefix + name, or undefined when it cannot be represented. */
function ustarSplit(name: Buffer): { prefix: Buffer; name: Buffer } | undefined {
  if (!isAsciiBuf(name)) return undefined;
  if (name.length <= 100) return { prefix: Buffer.alloc(0), name };
  if (name.length > 256) return undefined;
  // The prefix ends at a slash: the longest prefix <= 155 that leaves a non-empty name <= 100.
  for (let i = Math.min(name.length - 1, 155); i > 0; i--) {
    if (name[i] !== 0x2f) continue;
    const rest = name.length - i - 1;
    if (rest === 0) continue;
    if (rest > 100) return undefined;
    return { prefix: name.subarray(0, i), name: name.subarray(i + 1) };
  }
  return undefined;
}

function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from("\n")]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

function rawHeader(h: Omit<Hdr, "xattrs"> & { prefix?: Buffer }): Buffer {
  const b = Buffer.alloc(BLOCK);
  h.name.copy(b, 0, 0, Math.min(100, h.name.length));
  octal(b, 100, 8, h.mode);
  octal(b, 108, 8, h.uid);
  octal(b, 116, 8, h.gid);
  octal(b, 124, 12, h.size);
  octal(b, 136, 12, h.mtime);
  b.write(h.type, 156, 1, "latin1");
  if (h.linkname) h.linkname.copy(b, 157, 0, Math.min(100, h.linkname.length));
  b.write("ustar\u000000", 257, 8, "latin1");
  if (h.type === "3" || h.type === "4") {
    octal(b, 329, 8, h.devmajor ?? 0);
    octal(b, 337, 8, h.devminor ?? 0);
  }
  if (h.prefix?.length) h.prefix.copy(b, 345, 0, Math.min(155, h.prefix.length));
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += b[i];
  b.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, 8, "latin1");
  return b;
}

function padTo(n: number): Buffer {
  return Buffer.alloc((BLOCK - (n % BLOCK)) % BLOCK);
}

/** The header blocks (PAX header first when needed) of one entry. */
export function encodeHeader(h: Hdr): Buffer {
  const pax: Array<[string, Buffer]> = [];
  const split = ustarSplit(h.name);
  if (!split) pax.push(["path", h.name]);
  if (h.linkname && (h.linkname.length > 100 || !isAsciiBuf(h.linkname))) pax.push(["linkpath", h.linkname]);
  if (h.uid > MAX_OCTAL8) pax.push(["uid", Buffer.from(String(h.uid))]);
  if (h.gid > MAX_OCTAL8) pax.push(["gid", Buffer.from(String(h.gid))]);
  if (h.size > MAX_OCTAL12) pax.push(["size", Buffer.from(String(h.size))]);
  if (h.mtime < 0 || h.mtime > MAX_OCTAL12) pax.push(["mtime", Buffer.from(String(h.mtime))]);
  for (const [k, v] of h.xattrs ?? []) pax.push([`SCHILY.xattr.${k}`, v]);
  const main = rawHeader({
    name: split ? split.name : h.name.subarray(0, 100),
    prefix: split?.prefix,
    type: h.type,
    mode: h.mode,
    uid: h.uid > MAX_OCTAL8 ? 0 : h.uid,
    gid: h.gid > MAX_OCTAL8 ? 0 : h.gid,
    size: h.size > MAX_OCTAL12 ? 0 : h.size,
    mtime: h.mtime < 0 || h.mtime > MAX_OCTAL12 ? 0 : h.mtime,
    linkname: h.linkname,
    devmajor: h.devmajor,
    devminor: h.devminor,
  });
  if (pax.length === 0) return main;
  pax.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const body = Buffer.concat(pax.map(([k, v]) => paxRecord(k, v)));
  // Like Go: "<dir>/PaxHeaders.0/<base>", kept to 100 bytes.
  const nameStr = h.name.toString("latin1").replace(/\/$/, "");
  const slash = nameStr.lastIndexOf("/");
  const paxName = Buffer.from(`${slash >= 0 ? `${nameStr.slice(0, slash)}/` : ""}PaxHeaders.0/${nameStr.slice(slash + 1)}`, "latin1").subarray(0, 100);
  const xh = rawHeader({
    name: isAsciiBuf(paxName) ? paxName : Buffer.from("PaxHeaders.0/entry"),
    type: "x",
    mode: 0,
    uid: 0,
    gid: 0,
    size: body.length,
    mtime: 0,
  });
  return Buffer.concat([xh, body, padTo(body.length), main]);
}

function devMajor(d: bigint): number {
  return Number(((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn));
}
function devMinor(d: bigint): number {
  return Number((d & 0xffn) | ((d >> 12n) & ~0xffn));
}

/** The upper dir uses an overlay feature whose changes cannot be expressed as a layer tar. */
export class UnsupportedUpperError extends Error {
  readonly code = "EUPPERUNSUPPORTED";
  constructor(path: string, xattr: string) {
    super(`cannot archive ${path}: it carries ${xattr} (an overlay mounted with redirect_dir or metacopy); its changes are not a plain layer diff`);
    this.name = "UnsupportedUpperError";
  }
}

const UNSUPPORTED_OVERLAY_XATTRS = ["trusted.overlay.redirect", "trusted.overlay.metacopy"];

function xattrsOf(path: Buffer): Array<[string, Buffer]> {
  let names: string[];
  try {
    names = listxattr(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOTSUP" || code === "EOPNOTSUPP") return [];
    throw e;
  }
  for (const bad of UNSUPPORTED_OVERLAY_XATTRS) if (names.includes(bad)) throw new UnsupportedUpperError(path.toString(), bad);
  const out: Array<[string, Buffer]> = [];
  for (const n of names.filter((n) => !n.startsWith("trusted.overlay.")).sort()) {
    const v = getxattr(path, n);
    if (v !== undefined) out.push([n, v]);
  }
  return out;
}

function join2(a: Buffer, b: Buffer): Buffer {
  return a.length === 0 ? b : Buffer.concat([a, Buffer.from("/"), b]);
}

async function* fileData(path: Buffer, size: number): AsyncGenerator<Buffer> {
  const fh = await fs.promises.open(path, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  try {
    let left = size;
    while (left > 0) {
      const buf = Buffer.allocUnsafe(Math.min(READ_CHUNK, left));
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) throw new Error(`${path.toString()} shrank while it was being archived`);
      left -= bytesRead;
      yield bytesRead === buf.length ? buf : buf.subarray(0, bytesRead);
    }
  } finally {
    await fh.close();
  }
  const pad = padTo(size);
  if (pad.length) yield pad;
}

/** The layer tar of an overlay upper dir as a byte stream (see the file comment for the format). */
export async function* upperDirTarChunks(dir: string): AsyncGenerator<Buffer> {
  const root = Buffer.from(dir.replace(/\/+$/, ""));
  const links = new Map<bigint, Buffer>();
  const sorted = (abs: Buffer) => fs.readdirSync(abs, { encoding: "buffer" }).sort(Buffer.compare);
  async function* walk(rel: Buffer): AsyncGenerator<Buffer> {
    for (const name of sorted(rel.length ? join2(root, rel) : root)) {
      const r = join2(rel, name);
      const abs = join2(root, r);
      const st = fs.lstatSync(abs, { bigint: true });
      const base = { uid: Number(st.uid), gid: Number(st.gid), mtime: Number(st.mtimeNs / 1000000000n), mode: Number(st.mode) & 0o7777 };
      if (st.isCharacterDevice() && st.rdev === 0n) {
        yield encodeHeader({ ...base, name: join2(rel, Buffer.concat([Buffer.from(".wh."), name])), type: "0", mode: 0o600, size: 0 });
      } else if (st.isDirectory()) {
        yield encodeHeader({ ...base, name: Buffer.concat([r, Buffer.from("/")]), type: "5", size: 0, xattrs: xattrsOf(abs) });
        if (isOpaque(abs)) yield encodeHeader({ ...base, name: join2(r, Buffer.from(".wh..wh..opq")), type: "0", size: 0 });
        yield* walk(r);
      } else if (st.isSymbolicLink()) {
        yield encodeHeader({ ...base, name: r, type: "2", size: 0, linkname: fs.readlinkSync(abs, { encoding: "buffer" }), xattrs: xattrsOf(abs) });
      } else if (st.isFile()) {
        const first = st.nlink > 1n ? links.get(st.ino) : undefined;
        if (first) {
          yield encodeHeader({ ...base, name: r, type: "1", size: 0, linkname: first, xattrs: xattrsOf(abs) });
          continue;
        }
        if (st.nlink > 1n) links.set(st.ino, r);
        const size = Number(st.size);
        yield encodeHeader({ ...base, name: r, type: "0", size, xattrs: xattrsOf(abs) });
        yield* fileData(abs, size);
      } else if (st.isFIFO()) {
        yield encodeHeader({ ...base, name: r, type: "6", size: 0, xattrs: xattrsOf(abs) });
      } else if (st.isCharacterDevice() || st.isBlockDevice()) {
        yield encodeHeader({
          ...base,
          name: r,
          type: st.isCharacterDevice() ? "3" : "4",
          size: 0,
          devmajor: devMajor(st.rdev),
          devminor: devMinor(st.rdev),
          xattrs: xattrsOf(abs),
        });
      }
      // sockets are not archived
    }
  }
  yield* walk(Buffer.alloc(0));
  yield Buffer.alloc(2 * BLOCK);
}

export function upperDirTar(dir: string): Readable {
  return Readable.from(upperDirTarChunks(dir), { objectMode: false });
}

export { isWhiteout };
