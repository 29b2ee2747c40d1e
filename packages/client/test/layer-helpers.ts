// Test helpers for the layer engine: a diff-tree lister in the docker-golden fixture's
// docker-trees.txt format, and a tiny raw tar writer for building hostile tars.
import * as fs from "node:fs";
import { getxattr, listxattr } from "../src/native.js";

export const GOLDEN = new URL("../../../../test/fixtures/docker-golden/edge/", import.meta.url).pathname;

function devMajor(d: bigint): number {
  return Number(((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn));
}
function devMinor(d: bigint): number {
  return Number((d & 0xffn) | ((d >> 12n) & ~0xffn));
}

function fmtXattrValue(v: Buffer): string {
  const s = v.toString("latin1");
  if (/^[\x20-\x7e]*$/.test(s) && !/[,=\\]/.test(s)) return s;
  return `0x${v.toString("hex")}`;
}

/**
 * Lists a diff dir as rows of docker-trees.txt (without the tree column): path, type, mode, uid,
 * gid, size, target, rdev, nlink, hlgroup, mtime (1700000000 when exactly the fixture's tar
 * mtime, else *), xattrs.
 */
export function listTree(root: string, tarMtime = 1700000000n): string[][] {
  const entries: Array<{ rel: Buffer; st: fs.BigIntStats }> = [];
  const walk = (relParts: Buffer[]): void => {
    const rel = relParts.length ? Buffer.from(relParts.map((b) => b.toString("latin1")).join("/"), "latin1") : Buffer.from(".");
    const abs = relParts.length ? Buffer.concat([Buffer.from(`${root}/`), rel]) : Buffer.from(root);
    const st = fs.lstatSync(abs, { bigint: true });
    entries.push({ rel, st });
    if (st.isDirectory()) {
      for (const name of fs.readdirSync(abs, { encoding: "buffer" })) walk([...relParts, name]);
    }
  };
  walk([]);
  const pathOf = (e: { rel: Buffer }) => e.rel;
  entries.sort((a, b) => Buffer.compare(pathOf(a), pathOf(b)));
  const groups = new Map<bigint, Buffer>();
  for (const e of entries) {
    if (e.st.isFile() && e.st.nlink > 1n && !groups.has(e.st.ino)) groups.set(e.st.ino, e.rel);
  }
  return entries.map(({ rel, st }) => {
    const abs = rel.toString() === "." ? root : Buffer.concat([Buffer.from(`${root}/`), rel]);
    const type = fileTypeOf(st);
    const mode = (Number(st.mode) & 0o7777).toString(8).padStart(4, "0");
    const rdev = type === "char" || type === "block" ? `${devMajor(st.rdev)}:${devMinor(st.rdev)}` : "-";
    const names = listxattr(abs).sort();
    const xattrs = names.length ? names.map((n) => `${n}=${fmtXattrValue(getxattr(abs, n) ?? Buffer.alloc(0))}`).join(",") : "-";
    return [
      rel.toString("utf8"),
      type,
      mode,
      String(st.uid),
      String(st.gid),
      type === "file" ? String(st.size) : "-",
      type === "symlink" ? fs.readlinkSync(abs, { encoding: "buffer" }).toString("utf8") : "-",
      rdev,
      String(st.nlink),
      type === "file" && st.nlink > 1n ? (groups.get(st.ino) as Buffer).toString("utf8") : "-",
      st.mtimeNs === tarMtime * 1000000000n ? String(tarMtime) : "*",
      xattrs,
    ];
  });
}

/** The docker-trees.txt `type` of an lstat result. */
export function fileTypeOf(st: fs.Stats | fs.BigIntStats): string {
  if (st.isDirectory()) return "dir";
  if (st.isFile()) return "file";
  if (st.isSymbolicLink()) return "symlink";
  if (st.isCharacterDevice()) return "char";
  if (st.isBlockDevice()) return "block";
  if (st.isFIFO()) return "fifo";
  return "other";
}

/** Rows of docker-trees.txt for one tree, without the tree column. */
export function goldenTree(tree: string): string[][] {
  return fs
    .readFileSync(`${GOLDEN}docker-trees.txt`, "utf8")
    .split("\n")
    .filter((l) => l && !l.startsWith("#"))
    .map((l) => l.split("\t"))
    .filter((f) => f[0] === tree)
    .map((f) => f.slice(1));
}

export interface TarEntrySpec {
  name: string | Buffer;
  type?: string; // '0' file, '1' hardlink, '2' symlink, '3' char, '4' block, '5' dir, '6' fifo, 'x'/'g'/'L'/'K' meta
  data?: Buffer | string;
  /** Size field to write (defaults to the data length). */
  size?: number;
  linkname?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  devmajor?: number;
  devminor?: number;
  /** pax records written in an 'x' header before the entry. */
  pax?: Record<string, string>;
}

function octal(n: number, width: number): string {
  return `${n.toString(8).padStart(width - 1, "0")}\0`;
}

/** One 512-byte ustar header. */
export function tarHeader(e: TarEntrySpec): Buffer {
  const b = Buffer.alloc(512);
  const name = typeof e.name === "string" ? Buffer.from(e.name) : e.name;
  name.copy(b, 0, 0, Math.min(100, name.length));
  const type = e.type ?? "0";
  const data = e.data === undefined ? Buffer.alloc(0) : Buffer.from(e.data);
  const size = e.size ?? data.length;
  b.write(octal(e.mode ?? (type === "5" ? 0o755 : 0o644), 8), 100, "latin1");
  b.write(octal(e.uid ?? 0, 8), 108, "latin1");
  b.write(octal(e.gid ?? 0, 8), 116, "latin1");
  b.write(octal(size, 12), 124, "latin1");
  b.write(octal(e.mtime ?? 1700000000, 12), 136, "latin1");
  b.write(type, 156, "latin1");
  if (e.linkname) Buffer.from(e.linkname).copy(b, 157, 0, 100);
  b.write("ustar\u000000", 257, "latin1");
  b.write(octal(e.devmajor ?? 0, 8), 329, "latin1");
  b.write(octal(e.devminor ?? 0, 8), 337, "latin1");
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += b[i];
  b.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "latin1");
  return b;
}

function padded(data: Buffer): Buffer {
  const pad = (512 - (data.length % 512)) % 512;
  return Buffer.concat([data, Buffer.alloc(pad)]);
}

/** A complete tar (entries, two zero blocks, padding to 10240 bytes). */
export function buildTar(entries: TarEntrySpec[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    if (e.pax) {
      let body = "";
      for (const [k, v] of Object.entries(e.pax)) {
        const rec = ` ${k}=${v}\n`;
        let len = Buffer.byteLength(rec) + 1;
        while (String(len).length + Buffer.byteLength(rec) !== len) len = String(len).length + Buffer.byteLength(rec);
        body += `${len}${rec}`;
      }
      const pb = Buffer.from(body);
      parts.push(tarHeader({ name: "PaxHeaders/x", type: "x", size: pb.length }), padded(pb));
    }
    const data = e.data === undefined ? Buffer.alloc(0) : Buffer.from(e.data);
    parts.push(tarHeader(e));
    if (data.length) parts.push(padded(data));
  }
  parts.push(Buffer.alloc(1024));
  const body = Buffer.concat(parts);
  return Buffer.concat([body, Buffer.alloc((10240 - (body.length % 10240)) % 10240)]);
}
