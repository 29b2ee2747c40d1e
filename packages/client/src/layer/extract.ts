// The layer extraction engine behind unpackLayer (runs in a worker thread or inline): one
// streaming pass over an uncompressed layer tar that computes the diffID, writes
// tar-split.json.gz, and extracts the entries into an overlay2 diff dir the way Docker
// Engine's overlay2 driver does (whiteouts converted, ownership, modes, mtimes, xattrs).
//
// Security model: the tar is hostile. The diff dir starts empty and only this function writes
// into it, so the engine keeps an in-memory map of every path it created and its type. A path is
// only ever created under parents that the map knows to be real directories (created by us), the
// final component is always created exclusively (O_EXCL, mkdir, symlink, link, mknod fail if it
// exists), and metadata calls never follow symlinks. So nothing outside the diff dir can be
// written, whatever symlinks, hardlinks, ".." or absolute names the tar contains.
import { createHash } from "node:crypto";
import { once } from "node:events";
import * as fs from "node:fs";
import { createGzip } from "node:zlib";
import { mknod, setxattr, startWriteback } from "../native.js";

/**
 * Durable extractions start the writeback of big files while writing them (every WRITEBACK_STEP
 * bytes, and for a last part of at least WRITEBACK_MIN when the file is complete), so the final
 * flush (flush.ts) finds little left to write.
 */
const WRITEBACK_STEP = 8 << 20;
const WRITEBACK_MIN = 1 << 20;
import { Crc64 } from "./crc64.js";
import { LayerTooLargeError, UnsafeLayerError } from "./errors.js";
import { LayerFlush } from "./flush.js";
import { type TarHeader, TarScanner } from "./tar.js";
import { fileLine, goClean, segmentLine } from "./tarsplit.js";

export { LayerTooLargeError, UnsafeLayerError } from "./errors.js";

type Kind = "dir" | "idir" | "file" | "symlink" | "fifo" | "char" | "block" | "whiteout";

const WH = ".wh.";
const WH_META = ".wh..wh.";
const WH_OPQ = ".wh..wh..opq";
const OPAQUE_XATTR = "trusted.overlay.opaque";
const WRITE_BATCH = 1 << 20;
const TRAIL_CHUNK = 1 << 20;
const LINE_BATCH = 256 * 1024;
/** Deepest path accepted. Real images stay far below; deeper trees (up to PATH_MAX allows ~2000
 * levels) break recursive removal in common tools, including Node's fs.rmSync. */
const MAX_DEPTH = 1024;
const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, S_IFCHR, S_IFBLK, S_IFIFO } = fs.constants;

function show(rel: string): string {
  return JSON.stringify(Buffer.from(rel, "latin1").toString("utf8"));
}

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false;
  return true;
}

interface DirTime {
  path: fs.PathLike;
  atime: number;
  mtime: number;
  /** Final mode, when it is applied at the end (unprivileged extraction). */
  perm?: number;
}

class Extractor {
  readonly kinds = new Map<string, Kind>();
  /** Names of entries that `kinds` does not record under their own name (whiteouts, pax globals). */
  private readonly seenOther = new Set<string>();
  private readonly dirs: DirTime[] = [];
  private readonly root: string;
  private readonly rootBuf: Buffer;
  private readonly isRoot = process.getuid?.() === 0;
  private readonly euid = process.geteuid?.() ?? -1;
  private readonly egid = process.getegid?.() ?? -1;
  private readonly umask = currentUmask();
  /** Directories created with the setgid bit (their new children inherit the directory's group). */
  private readonly sgidDirs = new Set<string>();
  size = 0;
  contentBytes = 0;
  /** What makes the layer durable at the end (flush.ts). */
  readonly flush = new LayerFlush();

  // current entry
  private cur: TarHeader | undefined;
  private curRel = "";
  private curSgidParent = false;
  /** The current entry is a whiteout whose (meaningless) content goes into tar-split as raw bytes. */
  private curRawData = false;
  private fd = -1;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private crc = new Crc64();

  // tar-split output
  private lines: string[] = [];
  private linesLen = 0;
  private position = 0;
  private trail: Buffer[] = [];
  private trailLen = 0;

  constructor(
    diffDir: string,
    private readonly out: (s: string) => void,
    private readonly maxBytes: number,
    /** Start writing big files to disk as soon as they are complete (the caller will flush). */
    private readonly writeback = false,
  ) {
    this.root = diffDir.replace(/\/+$/, "") || "/";
    this.rootBuf = Buffer.from(this.root, "utf8");
  }

  abs(rel: string): fs.PathLike {
    if (rel === ".") return this.root;
    if (isAscii(rel)) return `${this.root}/${rel}`;
    return Buffer.concat([this.rootBuf, Buffer.from(`/${rel}`, "latin1")]);
  }

  // ---- tar-split lines ----
  private line(s: string): void {
    this.lines.push(s);
    this.linesLen += s.length;
    this.position++;
    if (this.linesLen >= LINE_BATCH) this.flushLines();
  }
  flushLines(): void {
    if (this.lines.length === 0) return;
    this.out(this.lines.join(""));
    this.lines = [];
    this.linesLen = 0;
  }

  // ---- scanner handler ----
  segment(raw: Buffer): void {
    this.line(segmentLine(raw, this.position));
  }

  entry(h: TarHeader): void {
    // Duplicate names are refused like tar-split refuses them. `kinds` (needed anyway) tells
    // whether a path was an entry of its own, so no second set of every path is kept.
    const latin = h.name.toString("latin1");
    const duplicate = () => new UnsafeLayerError(`duplicate path ${show(latin)} (duplicates of file paths not supported)`);
    let rel: string | undefined;
    if (h.type === "g" || isWhiteoutName(h.name)) {
      const cn = goClean(latin);
      if (this.seenOther.has(cn)) throw duplicate();
      this.seenOther.add(cn);
    } else {
      rel = this.relOf(h.name, "entry");
      const k = this.kinds.get(rel);
      if (k !== undefined && k !== "idir" && k !== "whiteout") throw duplicate();
    }
    this.contentBytes += h.dataSize;
    if (this.contentBytes > this.maxBytes) throw new LayerTooLargeError(this.maxBytes);
    this.cur = h;
    this.crc = new Crc64();
    this.create(h, rel);
    this.curRawData = this.fd < 0 && h.dataSize > 0 && isWhiteoutName(h.name);
    // Docker extracts no file for a whiteout and so could never rebuild its content (tar-split asm
    // would open a file that is not there): record it as a file without content and keep the
    // content bytes in the raw segments that follow, so the layer tar rebuilds exactly.
    if (this.curRawData) this.line(fileLine(h.name, 0, null, this.position));
  }

  data(chunk: Buffer): void {
    if (this.curRawData) {
      this.trailing(chunk);
      return;
    }
    this.crc.update(chunk);
    if (this.fd >= 0) {
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
      if (this.pendingBytes >= WRITE_BATCH) this.flushData();
    }
  }

  entryEnd(): void {
    const h = this.cur as TarHeader;
    if (this.curRawData) {
      this.flushTrail();
      this.curRawData = false;
      this.cur = undefined;
      return;
    }
    if (this.fd >= 0) {
      this.flushData();
      const fd = this.fd;
      const perm = h.mode & 0o7777;
      // The file was created with mode `perm` (minus the umask) and owned by euid:egid (or the
      // parent's group under a setgid parent); chown/chmod only when that differs, and chmod after
      // a chown that may have cleared setuid/setgid.
      const chown = this.isRoot && (h.uid !== this.euid || h.gid !== this.egid || this.curSgidParent);
      if (chown) fs.fchownSync(fd, h.uid, h.gid);
      this.xattrs(this.curRel, h);
      if ((perm & this.umask) !== 0 || (chown && (perm & 0o6000) !== 0)) fs.fchmodSync(fd, perm);
      fs.futimesSync(fd, atimeOf(h), mtimeOf(h));
      if (this.writeback && this.fileWritten - this.wbStart >= WRITEBACK_MIN) startWriteback(fd, this.wbStart, 0);
      this.fd = -1;
      fs.closeSync(fd);
    }
    this.line(fileLine(h.name, h.size, h.size > 0 ? this.crc.digest() : null, this.position));
    this.cur = undefined;
  }

  end(): void {}

  trailing(chunk: Buffer): void {
    let c = chunk;
    while (c.length > 0) {
      const take = Math.min(TRAIL_CHUNK - this.trailLen, c.length);
      this.trail.push(Buffer.from(c.subarray(0, take)));
      this.trailLen += take;
      c = c.subarray(take);
      if (this.trailLen === TRAIL_CHUNK) this.flushTrail();
    }
  }

  private flushTrail(): void {
    if (this.trailLen === 0) return;
    this.segment(Buffer.concat(this.trail));
    this.trail = [];
    this.trailLen = 0;
  }

  /** After the whole stream: trailing bytes, the closing empty segment, directory mtimes. */
  finish(): void {
    this.flushTrail();
    this.line(segmentLine(Buffer.alloc(0), this.position));
    this.flushLines();
    for (const d of this.dirs) {
      if (d.perm !== undefined) fs.chmodSync(d.path, d.perm);
      fs.utimesSync(d.path, d.atime, d.mtime);
    }
  }

  /** Releases an open file descriptor after an error. */
  abort(): void {
    if (this.fd >= 0) {
      try {
        fs.closeSync(this.fd);
      } catch {
        // already closed by a failed write; nothing left to release
      }
      this.fd = -1;
    }
  }

  flushData(): void {
    if (this.pendingBytes === 0) return;
    const bufs = this.pending;
    const total = this.pendingBytes;
    this.pending = [];
    this.pendingBytes = 0;
    let written = fs.writevSync(this.fd, bufs);
    // Short writes: finish the rest buffer by buffer.
    if (written < total) {
      const rest = Buffer.concat(bufs).subarray(written);
      let off = 0;
      while (off < rest.length) {
        written = fs.writeSync(this.fd, rest, off, rest.length - off);
        off += written;
      }
    }
    this.fileWritten += total;
    if (this.writeback && this.fileWritten - this.wbStart >= WRITEBACK_STEP) {
      startWriteback(this.fd, this.wbStart, this.fileWritten - this.wbStart);
      this.wbStart = this.fileWritten;
    }
  }

  /** Bytes written to the current file, and where its not yet started writeback begins. */
  private fileWritten = 0;
  private wbStart = 0;

  // ---- extraction ----

  /** Cleans an entry or hardlink name to a path relative to the diff dir ("." for the root). */
  private relOf(name: Buffer, what: string): string {
    const latin = name.toString("latin1");
    let c = goClean(latin);
    if (c.startsWith("/")) c = c.slice(1) || ".";
    if (c === ".." || c.startsWith("../")) throw new UnsafeLayerError(`${what} ${show(latin)} is outside the layer directory`);
    return c;
  }

  /** Makes sure `rel` is a directory created by this extraction, creating missing ancestors like Docker (0755, root). */
  private ensureDir(rel: string): void {
    const missing: string[] = [];
    let cur = rel;
    while (cur !== ".") {
      const k = this.kinds.get(cur);
      if (k === "dir" || k === "idir") break;
      if (k !== undefined) throw new UnsafeLayerError(`path component ${show(cur)} is a ${k}, not a directory`);
      missing.push(cur);
      const i = cur.lastIndexOf("/");
      cur = i < 0 ? "." : cur.slice(0, i);
    }
    for (let j = missing.length - 1; j >= 0; j--) {
      const d = missing[j];
      const i = d.lastIndexOf("/");
      if ((i < 0 ? d : d.slice(i + 1)).startsWith(WH)) throw new UnsafeLayerError(`directory name ${show(d)} uses the reserved whiteout prefix`);
      const p = this.abs(d);
      fs.mkdirSync(p, 0o755);
      this.flush.add(p);
      if (this.isRoot) fs.lchownSync(p, 0, 0);
      fs.chmodSync(p, 0o755);
      this.kinds.set(d, "idir");
    }
  }

  private xattrs(rel: string, h: TarHeader): void {
    if (h.xattrs.length === 0) return;
    const p = this.abs(rel);
    for (const [name, value] of h.xattrs) {
      if (name.startsWith("trusted.overlay.")) throw new UnsafeLayerError(`xattr ${name} on ${show(rel)} is reserved for overlayfs`);
      try {
        setxattr(p as string | Buffer, name, value, { noFollow: true });
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        // Docker ignores these (filesystems or object types without xattr support).
        if (code !== "ENOTSUP" && code !== "EOPNOTSUPP" && code !== "EPERM") throw e;
      }
    }
  }

  private create(h: TarHeader, cleaned?: string): void {
    if (h.type === "g") return; // pax global header: nothing to extract
    const rel = cleaned ?? this.relOf(h.name, "entry");
    if (rel === ".") {
      if (h.type === "5") return; // Docker leaves the diff dir itself alone
      throw new UnsafeLayerError("a non-directory entry names the layer root");
    }
    let depth = 1;
    for (let k = rel.indexOf("/"); k >= 0; k = rel.indexOf("/", k + 1)) depth++;
    if (depth > MAX_DEPTH) throw new UnsafeLayerError(`path ${show(rel.slice(0, 200))}... is deeper than ${MAX_DEPTH} components`);
    const i = rel.lastIndexOf("/");
    const parent = i < 0 ? "." : rel.slice(0, i);
    const base = i < 0 ? rel : rel.slice(i + 1);
    this.ensureDir(parent);
    if (h.uid < 0 || h.gid < 0 || h.uid > 0xffffffff || h.gid > 0xffffffff) throw new UnsafeLayerError(`bad owner on ${show(rel)}`);

    if (base.startsWith(WH)) {
      if (base === WH_OPQ) {
        setxattr(this.abs(parent) as string | Buffer, OPAQUE_XATTR, Buffer.from("y"), { noFollow: true });
        return;
      }
      if (base.startsWith(WH_META)) throw new UnsafeLayerError(`unsupported whiteout metadata entry ${show(rel)}`);
      const orig = base.slice(WH.length);
      if (orig === "" || orig === "." || orig === "..") throw new UnsafeLayerError(`invalid whiteout ${show(rel)}`);
      const origRel = parent === "." ? orig : `${parent}/${orig}`;
      if (this.kinds.has(origRel)) throw new UnsafeLayerError(`whiteout ${show(rel)} collides with ${show(origRel)} in the same layer`);
      const p = this.abs(origRel);
      mknod(p as string | Buffer, S_IFCHR, 0, 0);
      this.flush.wholeFilesystem();
      if (this.isRoot) fs.lchownSync(p, h.uid, h.gid);
      this.kinds.set(origRel, "whiteout");
      return;
    }

    const existing = this.kinds.get(rel);
    if (existing !== undefined && !(h.type === "5" && (existing === "dir" || existing === "idir"))) {
      throw new UnsafeLayerError(`entry ${show(rel)} collides with an earlier ${existing === "whiteout" ? "whiteout" : "entry"}`);
    }
    const p = this.abs(rel);
    const perm = h.mode & 0o7777;
    const atime = atimeOf(h);

    switch (h.type) {
      case "0": {
        this.fd = fs.openSync(p, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, perm);
        this.flush.add(p);
        this.fileWritten = this.wbStart = 0;
        this.curRel = rel;
        this.curSgidParent = this.sgidDirs.has(parent);
        this.kinds.set(rel, "file");
        this.size += h.dataSize;
        return; // metadata after the content, in entryEnd
      }
      case "5": {
        if (existing === undefined) fs.mkdirSync(p, 0o700);
        if (existing === undefined) this.flush.add(p);
        this.kinds.set(rel, "dir");
        if (this.isRoot) fs.lchownSync(p, h.uid, h.gid);
        this.xattrs(rel, h);
        // Without root (no CAP_DAC_OVERRIDE) a directory must stay writable until its entries are
        // in, so its exact mode is applied at the end.
        const writable = this.isRoot || (perm & 0o700) === 0o700;
        fs.chmodSync(p, writable ? perm : perm | 0o700);
        if (perm & 0o2000) this.sgidDirs.add(rel);
        else this.sgidDirs.delete(rel);
        this.dirs.push({ path: p, atime, mtime: mtimeOf(h), perm: writable ? undefined : perm });
        return;
      }
      case "2": {
        const target = h.linkname.toString("latin1");
        fs.symlinkSync(isAscii(target) ? target : h.linkname, p);
        this.flush.wholeFilesystem();
        this.kinds.set(rel, "symlink");
        this.size += h.linkname.length;
        if (this.isRoot) fs.lchownSync(p, h.uid, h.gid);
        this.xattrs(rel, h);
        fs.lutimesSync(p, atime, mtimeOf(h));
        return;
      }
      case "1": {
        const trel = this.relOf(h.linkname, "hardlink target");
        const tk = this.kinds.get(trel);
        if (tk === undefined) throw new UnsafeLayerError(`hardlink ${show(rel)} -> ${show(trel)}: target is not an earlier entry of this layer`);
        if (tk === "dir" || tk === "idir" || tk === "whiteout") throw new UnsafeLayerError(`hardlink ${show(rel)} -> ${show(trel)}: target is a ${tk}`);
        fs.linkSync(this.abs(trel), p);
        this.kinds.set(rel, tk);
        if (this.isRoot) fs.lchownSync(p, h.uid, h.gid);
        this.xattrs(rel, h);
        if (tk !== "symlink") {
          fs.chmodSync(p, perm);
          fs.utimesSync(p, atime, mtimeOf(h));
        }
        return;
      }
      case "3":
      case "4":
      case "6": {
        const kind: Kind = h.type === "3" ? "char" : h.type === "4" ? "block" : "fifo";
        if (kind !== "fifo" && !this.isRoot) throw new UnsafeLayerError(`device node ${show(rel)} refused: not running as root`);
        const ftype = kind === "char" ? S_IFCHR : kind === "block" ? S_IFBLK : S_IFIFO;
        mknod(p as string | Buffer, ftype | perm, kind === "fifo" ? 0 : h.devmajor, kind === "fifo" ? 0 : h.devminor);
        this.flush.wholeFilesystem();
        this.kinds.set(rel, kind);
        if (this.isRoot) fs.lchownSync(p, h.uid, h.gid);
        this.xattrs(rel, h);
        fs.chmodSync(p, perm);
        fs.utimesSync(p, atime, mtimeOf(h));
        return;
      }
      default:
        throw new UnsafeLayerError(`unsupported tar entry type ${JSON.stringify(h.type)} for ${show(rel)}`);
    }
  }
}

/** The process umask, from /proc (reading it with process.umask() is deprecated). */
function currentUmask(): number {
  try {
    const m = /^Umask:\s*([0-7]+)$/m.exec(fs.readFileSync("/proc/self/status", "latin1"));
    if (m) return Number.parseInt(m[1], 8);
  } catch {
    // no /proc: assume the common default below
  }
  return 0o022;
}

/** Latest time utimensat is given: Go's time.Unix(0, 1<<63-1), the end of Docker's range. */
const MAX_TIME = 9223372036.854776;

/** Docker's boundTime: a time before the epoch or past MAX_TIME becomes the epoch. */
function boundTime(t: number): number {
  return t < 0 || t > MAX_TIME ? 0 : t;
}

/** The mtime to set, bounded like Docker. */
function mtimeOf(h: TarHeader): number {
  return boundTime(h.mtime);
}

/** The atime to set: the later of atime and mtime (Docker: never before the mtime), bounded. */
function atimeOf(h: TarHeader): number {
  return boundTime(h.atime !== undefined && h.atime > h.mtime ? h.atime : h.mtime);
}

function isWhiteoutName(name: Buffer): boolean {
  const clean = goClean(name.toString("latin1"));
  return clean.slice(clean.lastIndexOf("/") + 1).startsWith(WH);
}

/**
 * Extracts an uncompressed layer tar into `diffDir` (an existing empty directory) and writes its
 * tar-split.json.gz, in one streaming pass. Throws on malformed or hostile input; the caller then
 * deletes the diff dir (this function removes its partial tar-split file).
 */

export interface ExtractOptions {
  diffDir: string;
  tarSplitPath: string;
  maxBytes?: number;
  /** Write out file data before taking the next chunk, so no chunk is referenced after it was consumed (lets the caller reuse chunk buffers). */
  releaseChunks?: boolean;
  /**
   * Make everything written durable before returning: the layer's files (flush.ts: an fsync of each
   * when they are few, else syncfs of the filesystem), then the tar-split file (blocks the thread;
   * meant for worker threads).
   */
  durable?: boolean;
}

export interface ExtractResult {
  /** sha256 of the tar stream, hex. */
  diffIdHex: string;
  size: number;
  tarSize: number;
}

/**
 * Consumes the tar bytes from `source`, extracting into `diffDir` and writing tar-split.json.gz.
 * On error the partial tar-split file is removed (the caller removes the diff dir).
 */
export async function extractLayer(source: AsyncIterable<Buffer | string>, opts: ExtractOptions): Promise<ExtractResult> {
  const maxBytes = opts.maxBytes ?? Number.MAX_SAFE_INTEGER;
  const gz = createGzip();
  const file = fs.createWriteStream(opts.tarSplitPath);
  const fileDone = new Promise<void>((resolve, reject) => {
    file.on("finish", resolve);
    file.on("error", reject);
    gz.on("error", reject);
  });
  fileDone.catch(() => {});
  gz.pipe(file);

  const hash = createHash("sha256");
  const ex = new Extractor(opts.diffDir, (s) => gz.write(s), maxBytes, opts.durable === true);
  const scanner = new TarScanner(ex);
  let tarSize = 0;
  try {
    for await (const chunk of source) {
      const buf = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
      tarSize += buf.length;
      if (tarSize > maxBytes) throw new LayerTooLargeError(maxBytes);
      hash.update(buf);
      scanner.push(buf);
      if (opts.releaseChunks) ex.flushData();
      if (gz.writableNeedDrain) await once(gz, "drain");
    }
    scanner.finish();
    ex.finish();
    gz.end();
    await fileDone;
    if (opts.durable) {
      // the layer first (flush.ts: its own files' fsyncs, or syncfs), then the tar-split
      ex.flush.run(opts.diffDir);
      const fd = fs.openSync(opts.tarSplitPath, "r");
      try {
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
    }
  } catch (e) {
    ex.abort();
    gz.destroy();
    if (!file.closed) {
      const closed = new Promise<void>((r) => file.once("close", () => r()));
      file.destroy();
      await closed;
    }
    fs.rmSync(opts.tarSplitPath, { force: true });
    throw e;
  }
  return { diffIdHex: hash.digest("hex"), size: ex.size, tarSize };
}
