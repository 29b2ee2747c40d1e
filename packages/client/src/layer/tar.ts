// A raw tar block scanner that keeps every byte. It parses what Go's archive/tar (as used by
// Docker and tar-split) parses: 512-byte v7/ustar/GNU/star headers with checksums, octal and
// base-256 numbers, GNU 'L'/'K' long names, pax 'x' records (path, linkpath, uid, gid, size,
// mtime, atime, SCHILY.xattr.*) and pax 'g' global headers (reported as entries of their own),
// and reports the bytes that are not file content as "raw" segments, split exactly where
// tar-split splits them: everything read before an entry's content (previous padding, meta
// headers and their data, the header) is one segment; the end-of-archive blocks (with the
// padding before them) are one segment; bytes after the end-of-archive marker are "trailing".

import { TarFormatError } from "./errors.js";

export { TarFormatError } from "./errors.js";

/** Largest GNU long name / pax header data accepted (Go's archive/tar limit). */
export const MAX_META_SIZE = 1 << 20;

export interface TarHeader {
  /** Type flag as in the tar (after Go's legacy rule: '\0'/'0' with a trailing '/' becomes '5', '\0' becomes '0'). */
  type: string;
  /** Raw name bytes (GNU long name or pax path applied), not cleaned. */
  name: Buffer;
  linkname: Buffer;
  /** Size as recorded (header or pax `size`). */
  size: number;
  /** Number of content bytes that follow in the stream (0 for header-only types). */
  dataSize: number;
  mode: number;
  uid: number;
  gid: number;
  /** Seconds since the epoch (fractional from pax). */
  mtime: number;
  atime?: number;
  devmajor: number;
  devminor: number;
  /** From pax SCHILY.xattr.<name> records: [name, value]. */
  xattrs: Array<[string, Buffer]>;
  /** Pax records that the scanner saw for this entry (keys and values as latin1 strings). */
  pax?: Map<string, string>;
}

export interface TarScanHandler {
  /** Raw non-content bytes (headers, meta data, padding, end-of-archive blocks). */
  segment(raw: Buffer): void;
  /** An entry's header; its `dataSize` content bytes follow through `data`, then `entryEnd`. */
  entry(h: TarHeader): void;
  data(chunk: Buffer): void;
  entryEnd(): void;
  /** The end-of-archive marker was read (or the stream ended cleanly at a header boundary). */
  end(): void;
  /** Bytes after the end-of-archive marker. */
  trailing(chunk: Buffer): void;
}

const ZERO_BLOCK = Buffer.alloc(512);
const HEADER_ONLY = new Set(["1", "2", "3", "4", "5", "6"]);

function cstr(b: Buffer, off: number, len: number): Buffer {
  const end = off + len;
  const i = b.indexOf(0, off);
  return b.subarray(off, i >= 0 && i < end ? i : end);
}

function parseOctal(b: Buffer): number {
  let s = 0;
  let e = b.length;
  while (s < e && (b[s] === 0x20 || b[s] === 0)) s++;
  while (e > s && (b[e - 1] === 0x20 || b[e - 1] === 0)) e--;
  if (s === e) return 0;
  const z = b.indexOf(0, s);
  if (z >= 0 && z < e) e = z;
  let x = 0;
  for (let i = s; i < e; i++) {
    const c = b[i] - 0x30;
    if (c < 0 || c > 7) throw new TarFormatError("bad octal number in header");
    x = x * 8 + c;
  }
  if (x > Number.MAX_SAFE_INTEGER) throw new TarFormatError("number too large");
  return x;
}

function parseNumeric(b: Buffer): number {
  if (b.length > 0 && b[0] & 0x80) {
    const inv = b[0] & 0x40 ? 0xff : 0;
    let x = 0n;
    for (let i = 0; i < b.length; i++) {
      let c = b[i] ^ inv;
      if (i === 0) c &= 0x7f;
      if (x >> 56n > 0n) throw new TarFormatError("base-256 number overflow");
      x = (x << 8n) | BigInt(c);
    }
    if (x >> 63n > 0n) throw new TarFormatError("base-256 number overflow");
    const v = inv ? -x - 1n : x;
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) throw new TarFormatError("number too large");
    return Number(v);
  }
  return parseOctal(b);
}

function checksumOk(blk: Buffer): boolean {
  let stored: number;
  try {
    stored = parseOctal(blk.subarray(148, 156));
  } catch {
    return false;
  }
  let u = 0;
  let s = 0;
  for (let i = 0; i < 512; i++) {
    const c = i >= 148 && i < 156 ? 0x20 : blk[i];
    u += c;
    s += c < 128 ? c : c - 256;
  }
  return stored === u || stored === s;
}

type Format = "v7" | "ustar" | "gnu" | "star";

function formatOf(blk: Buffer): Format {
  const magic = blk.toString("latin1", 257, 263);
  const version = blk.toString("latin1", 263, 265);
  const trailer = blk.toString("latin1", 508, 512);
  if (magic === "ustar\0" && trailer === "tar\0") return "star";
  if (magic === "ustar\0") return "ustar";
  if (magic === "ustar " && version === " \0") return "gnu";
  return "v7";
}

/** Go's archive/tar: the seconds of a pax time must fit an int64 (the time is bounded later, when set). */
function parsePaxTime(v: string): number {
  const m = /^(-?)(\d+)(?:\.(\d*))?$/.exec(v);
  if (!m) throw new TarFormatError(`bad pax time ${JSON.stringify(v)}`);
  if (BigInt(m[2]) > (m[1] ? 1n << 63n : (1n << 63n) - 1n)) throw new TarFormatError(`pax time ${JSON.stringify(v.slice(0, 40))} out of range`);
  const secs = Number(m[2]);
  const frac = m[3] ? Number(`0.${m[3].slice(0, 9)}`) : 0;
  return m[1] ? -(secs + frac) : secs + frac;
}

function parsePaxInt(v: string): number {
  if (!/^[-+]?\d+$/.test(v)) throw new TarFormatError(`bad pax number ${JSON.stringify(v)}`);
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw new TarFormatError("pax number too large");
  return n;
}

/** Parses pax extended header data ("%d %s=%s\n" records) as Go's archive/tar does. */
export function parsePax(data: Buffer): Map<string, string> {
  const s = data.toString("latin1");
  const out = new Map<string, string>();
  let rest = s;
  while (rest.length > 0) {
    const sp = rest.indexOf(" ");
    if (sp <= 0 || !/^\d+$/.test(rest.slice(0, sp))) throw new TarFormatError("bad pax record");
    const n = Number(rest.slice(0, sp));
    if (n < 5 || rest.length < n || sp + 1 >= n - 1) throw new TarFormatError("bad pax record length");
    const rec = rest.slice(sp + 1, n - 1);
    if (rest[n - 1] !== "\n") throw new TarFormatError("pax record without newline");
    const eq = rec.indexOf("=");
    if (eq <= 0) throw new TarFormatError("bad pax record key");
    const k = rec.slice(0, eq);
    const v = rec.slice(eq + 1);
    if (k === "path" || k === "linkpath" || k === "uname" || k === "gname" ? v.includes("\0") : k.includes("\0")) {
      throw new TarFormatError("NUL in pax record");
    }
    if (k.startsWith("GNU.sparse.")) throw new TarFormatError("sparse files are not supported");
    out.set(k, v);
    rest = rest.slice(n);
  }
  return out;
}

enum St {
  Header,
  Meta,
  Data,
  Pad,
  Trailing,
  Failed,
}

/**
 * Push-based scanner: call push() with consecutive chunks, then finish() at end of stream.
 * Handler callbacks run synchronously inside push()/finish().
 */
export class TarScanner {
  private st = St.Header;
  private readonly blk = Buffer.alloc(512);
  private filled = 0;
  private raw: Buffer[] = [];
  private zeroSeen = false;
  private remaining = 0;
  private pad = 0;
  private metaType = "";
  private metaHeader: Buffer | undefined;
  private metaBuf: Buffer | undefined;
  private metaFilled = 0;
  private longName: Buffer | undefined;
  private longLink: Buffer | undefined;
  private pax: Map<string, string> | undefined;
  private ended = false;

  constructor(private readonly h: TarScanHandler) {}

  /** True once the end-of-archive marker has been read. */
  get atEnd(): boolean {
    return this.ended;
  }

  push(chunk: Buffer): void {
    let off = 0;
    const n = chunk.length;
    while (off < n) {
      switch (this.st) {
        case St.Header: {
          const take = Math.min(512 - this.filled, n - off);
          chunk.copy(this.blk, this.filled, off, off + take);
          this.filled += take;
          off += take;
          if (this.filled === 512) {
            this.filled = 0;
            this.onBlock();
          }
          break;
        }
        case St.Meta: {
          const buf = this.metaBuf as Buffer;
          const take = Math.min(buf.length - this.metaFilled, n - off);
          chunk.copy(buf, this.metaFilled, off, off + take);
          this.metaFilled += take;
          off += take;
          if (this.metaFilled === buf.length) this.onMetaDone();
          break;
        }
        case St.Data: {
          const take = Math.min(this.remaining, n - off);
          this.h.data(chunk.subarray(off, off + take));
          this.remaining -= take;
          off += take;
          if (this.remaining === 0) this.endData();
          break;
        }
        case St.Pad: {
          const take = Math.min(this.pad, n - off);
          this.raw.push(Buffer.from(chunk.subarray(off, off + take)));
          this.pad -= take;
          off += take;
          if (this.pad === 0) this.st = St.Header;
          break;
        }
        case St.Trailing:
          this.h.trailing(off === 0 ? chunk : chunk.subarray(off));
          off = n;
          break;
        case St.Failed:
          throw new TarFormatError("scanner used after an error");
      }
    }
  }

  /** Declares the end of the stream; throws if it ended inside an entry. */
  finish(): void {
    if (this.st === St.Trailing) return;
    const cleanBoundary =
      (this.st === St.Header && this.filled === 0 && !this.metaHeader && !this.longName && !this.longLink && !this.pax) ||
      (this.st === St.Pad && this.pad > 0 && this.padStartedEmpty());
    if (!cleanBoundary) {
      this.st = St.Failed;
      throw new TarFormatError("unexpected end of stream");
    }
    this.flushRaw();
    this.ended = true;
    this.st = St.Trailing;
    this.h.end();
  }

  private padStart = 0;
  private padStartedEmpty(): boolean {
    return this.pad === this.padStart;
  }

  private flushRaw(): void {
    if (this.raw.length === 0) return;
    const b = this.raw.length === 1 ? this.raw[0] : Buffer.concat(this.raw);
    this.raw = [];
    this.h.segment(b);
  }

  private onBlock(): void {
    const blk = this.blk;
    this.raw.push(Buffer.from(blk));
    if (blk.equals(ZERO_BLOCK)) {
      if (this.zeroSeen) {
        this.flushRaw();
        this.ended = true;
        this.st = St.Trailing;
        this.h.end();
        return;
      }
      this.zeroSeen = true;
      return;
    }
    if (this.zeroSeen) throw new TarFormatError("zero block followed by a non-zero block");
    if (!checksumOk(blk)) throw new TarFormatError("header checksum mismatch");
    const format = formatOf(blk);
    let type = String.fromCharCode(blk[156]);
    let name = cstr(blk, 0, 100);
    let linkname = cstr(blk, 157, 100);
    let size = parseNumeric(blk.subarray(124, 136));
    const mode = parseNumeric(blk.subarray(100, 108));
    let uid = parseNumeric(blk.subarray(108, 116));
    let gid = parseNumeric(blk.subarray(116, 124));
    let mtime = parseNumeric(blk.subarray(136, 148));
    let atime: number | undefined;
    let devmajor = 0;
    let devminor = 0;
    if (format !== "v7") {
      devmajor = parseNumeric(blk.subarray(329, 337));
      devminor = parseNumeric(blk.subarray(337, 345));
      let prefix: Buffer | undefined;
      if (format === "ustar") prefix = cstr(blk, 345, 155);
      else if (format === "star") {
        prefix = cstr(blk, 345, 131);
        atime = parseNumeric(blk.subarray(476, 488));
      } else if (blk[345] !== 0) atime = parseNumeric(blk.subarray(345, 357));
      if (prefix && prefix.length > 0) name = Buffer.concat([prefix, Buffer.from("/"), name]);
    }
    if (size < 0) throw new TarFormatError("negative size");

    if (type === "L" || type === "K" || type === "x" || type === "g") {
      if (size > MAX_META_SIZE) throw new TarFormatError(`${type} header data too large (${size} bytes)`);
      this.metaType = type;
      this.metaHeader = Buffer.from(name);
      this.metaBuf = Buffer.alloc(size);
      this.metaFilled = 0;
      if (size === 0) this.onMetaDone();
      else this.st = St.Meta;
      return;
    }

    const pax = this.pax;
    const xattrs: Array<[string, Buffer]> = [];
    if (pax) {
      for (const [k, v] of pax) {
        if (v === "") continue;
        switch (k) {
          case "path":
            name = Buffer.from(v, "latin1");
            break;
          case "linkpath":
            linkname = Buffer.from(v, "latin1");
            break;
          case "uid":
            uid = parsePaxInt(v);
            break;
          case "gid":
            gid = parsePaxInt(v);
            break;
          case "mtime":
            mtime = parsePaxTime(v);
            break;
          case "atime":
            atime = parsePaxTime(v);
            break;
          case "ctime":
            parsePaxTime(v);
            break;
          case "size":
            size = parsePaxInt(v);
            break;
          default:
            if (k.startsWith("SCHILY.xattr.")) {
              const xn = Buffer.from(k.slice("SCHILY.xattr.".length), "latin1");
              xattrs.push([xn.toString("utf8"), Buffer.from(v, "latin1")]);
            }
        }
      }
    }
    if (this.longName) name = cstr(this.longName, 0, this.longName.length);
    if (this.longLink) linkname = cstr(this.longLink, 0, this.longLink.length);
    if (type === "\0") type = name.length > 0 && name[name.length - 1] === 0x2f ? "5" : "0";
    if (size < 0) throw new TarFormatError("negative size");
    this.longName = undefined;
    this.longLink = undefined;
    this.pax = undefined;
    const dataSize = HEADER_ONLY.has(type) ? 0 : size;
    const h: TarHeader = { type, name, linkname, size, dataSize, mode, uid, gid, mtime, atime, devmajor, devminor, xattrs, pax };
    this.flushRaw();
    this.h.entry(h);
    this.remaining = dataSize;
    this.lastDataSize = dataSize;
    if (dataSize === 0) this.endData();
    else this.st = St.Data;
  }

  private onMetaDone(): void {
    const data = this.metaBuf as Buffer;
    const hname = this.metaHeader as Buffer;
    this.raw.push(data);
    this.metaBuf = undefined;
    this.metaHeader = undefined;
    const type = this.metaType;
    if (type === "L") this.longName = data;
    else if (type === "K") this.longLink = data;
    else if (type === "x") this.pax = parsePax(data);
    else {
      // Global pax header: Go's reader returns it as an entry of its own (size 0), with its
      // own name (or the pax path of a preceding 'x'), and does not apply it to later entries.
      const g = parsePax(data);
      const pathRec = this.pax?.get("path");
      this.pax = undefined;
      const h: TarHeader = {
        type: "g",
        name: pathRec ? Buffer.from(pathRec, "latin1") : hname,
        linkname: Buffer.alloc(0),
        size: 0,
        dataSize: 0,
        mode: 0,
        uid: 0,
        gid: 0,
        mtime: 0,
        devmajor: 0,
        devminor: 0,
        xattrs: [],
        pax: g,
      };
      this.flushRaw();
      this.h.entry(h);
      this.h.entryEnd();
    }
    this.startPad(data.length);
  }

  private endData(): void {
    this.h.entryEnd();
    this.startPad(this.lastDataSize);
  }

  private lastDataSize = 0;

  private startPad(n: number): void {
    const p = (512 - (n % 512)) % 512;
    this.pad = p;
    this.padStart = p;
    this.st = p > 0 ? St.Pad : St.Header;
  }
}
