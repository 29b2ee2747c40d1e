/**
 * `strata export IMAGE|NAME (-o FILE.tar | --dir DIR)`: the flattened root filesystem of an image
 * or a container (its rw, -init and image layers), computed from the diff dirs without mounting,
 * with overlay semantics (stack.ts): whiteouts hide names below them, opaque directories hide
 * lower contents, a non-directory hides lower directories. Output order is depth first with names
 * in byte order; hardlinks inside one layer stay hardlinks; trusted.overlay.* xattrs are dropped.
 */

import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import { basename, dirname, join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { getxattr, listxattr, mknod, setxattr } from "../native.js";
import { loadImage, resolveImage } from "../store/images.js";
import type { Store } from "../store/store.js";
import { diffDirOfLink, readLayerDir, stackLinks } from "./layers.js";
import { isOpaque, isWhiteout } from "./stack.js";
import { ContainerNotFoundError, containerLayers, resolveContainer } from "./store.js";
import { encodeHeader } from "./tarwriter.js";

export interface MergedEntry {
  /** Path relative to the root, without "./" (bytes). */
  rel: Buffer;
  /** The file providing the entry. */
  abs: Buffer;
  st: fs.BigIntStats;
}

function lstatOrUndef(p: Buffer): fs.BigIntStats | undefined {
  try {
    return fs.lstatSync(p, { bigint: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return undefined;
    throw e;
  }
}

function join2(a: Buffer, b: Buffer): Buffer {
  return a.length === 0 ? b : Buffer.concat([a, Buffer.from("/"), b]);
}

/** The merged view of `layers` (diff dirs, nearest first), entries parents first. */
export function* mergedEntries(layers: readonly string[]): Generator<MergedEntry> {
  const roots = layers.map((l) => Buffer.from(l.replace(/\/+$/, "")));
  function* walk(rel: Buffer, live: number[]): Generator<MergedEntry> {
    const found = new Map<string, { layer: number; st: fs.BigIntStats; name: Buffer }>();
    const hidden = new Set<string>();
    for (const i of live) {
      const dir = rel.length ? join2(roots[i], rel) : roots[i];
      for (const name of fs.readdirSync(dir, { encoding: "buffer" })) {
        const key = name.toString("latin1");
        if (found.has(key) || hidden.has(key)) continue;
        const st = fs.lstatSync(join2(dir, name), { bigint: true });
        if (isWhiteout(st)) hidden.add(key);
        else found.set(key, { layer: i, st, name });
      }
    }
    const names = [...found.values()].sort((a, b) => Buffer.compare(a.name, b.name));
    for (const { layer, st, name } of names) {
      const r = join2(rel, name);
      const abs = join2(roots[layer], r);
      yield { rel: r, abs, st };
      if (!st.isDirectory()) continue;
      const childLive = [layer];
      if (!isOpaque(abs)) {
        for (const j of live.filter((x) => x > layer)) {
          const p = join2(roots[j], r);
          const s = lstatOrUndef(p);
          if (!s) continue;
          if (!s.isDirectory()) break;
          childLive.push(j);
          if (isOpaque(p)) break;
        }
      }
      yield* walk(r, childLive);
    }
  }
  if (roots.length)
    yield* walk(
      Buffer.alloc(0),
      roots.map((_r, i) => i),
    );
}

/** Diff dirs of IMAGE or container NAME|ID (a container when both match, like Docker). */
export async function exportLayers(store: Store, arg: string): Promise<{ kind: "container" | "image"; layers: string[] }> {
  try {
    const c = await resolveContainer(store, arg);
    const { upperDir, lowerDirs } = await containerLayers(store, c);
    return { kind: "container", layers: [upperDir, ...lowerDirs] };
  } catch (e) {
    if (!(e instanceof ContainerNotFoundError)) throw e;
  }
  const { id } = await resolveImage(store, arg);
  const img = await loadImage(store, id);
  if (!img) throw new Error(`No such image or container: ${arg}`);
  const top = img.chainIds[img.chainIds.length - 1];
  if (!top) return { kind: "image", layers: [] };
  const rec = await store.getLayer(top);
  if (!rec) throw new Error(`layer ${top} of image ${arg} is missing from the store`);
  const facts = await readLayerDir(store.paths, rec.cacheId);
  const layers: string[] = [];
  for (const l of stackLinks(facts)) layers.push(await diffDirOfLink(store.paths, l));
  return { kind: "image", layers };
}

function xattrsOf(path: Buffer): Array<[string, Buffer]> {
  let names: string[];
  try {
    names = listxattr(path);
  } catch {
    return [];
  }
  const out: Array<[string, Buffer]> = [];
  for (const n of names.filter((n) => !n.startsWith("trusted.overlay.")).sort()) {
    const v = getxattr(path, n);
    if (v !== undefined) out.push([n, v]);
  }
  return out;
}

function devMajor(d: bigint): number {
  return Number(((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn));
}
function devMinor(d: bigint): number {
  return Number((d & 0xffn) | ((d >> 12n) & ~0xffn));
}

/** The flattened tree as a tar stream (same entry encoding as commit's layer tars). */
export async function* mergedTarChunks(layers: readonly string[]): AsyncGenerator<Buffer> {
  const links = new Map<string, Buffer>();
  for (const { rel, abs, st } of mergedEntries(layers)) {
    const base = { uid: Number(st.uid), gid: Number(st.gid), mtime: Number(st.mtimeNs / 1000000000n), mode: Number(st.mode) & 0o7777 };
    const xattrs = xattrsOf(abs);
    if (st.isDirectory()) {
      yield encodeHeader({ ...base, name: Buffer.concat([rel, Buffer.from("/")]), type: "5", size: 0, xattrs });
    } else if (st.isSymbolicLink()) {
      yield encodeHeader({ ...base, name: rel, type: "2", size: 0, linkname: fs.readlinkSync(abs, { encoding: "buffer" }), xattrs });
    } else if (st.isFile()) {
      const key = `${st.dev}:${st.ino}`;
      const first = st.nlink > 1n ? links.get(key) : undefined;
      if (first) {
        yield encodeHeader({ ...base, name: rel, type: "1", size: 0, linkname: first, xattrs });
        continue;
      }
      if (st.nlink > 1n) links.set(key, rel);
      const size = Number(st.size);
      yield encodeHeader({ ...base, name: rel, type: "0", size, xattrs });
      const fh = await fs.promises.open(abs, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
      try {
        let left = size;
        while (left > 0) {
          const buf = Buffer.allocUnsafe(Math.min(1 << 20, left));
          const { bytesRead } = await fh.read(buf, 0, buf.length, null);
          if (bytesRead === 0) throw new Error(`${abs.toString()} shrank while it was being exported`);
          left -= bytesRead;
          yield buf.subarray(0, bytesRead);
        }
      } finally {
        await fh.close();
      }
      const pad = (512 - (size % 512)) % 512;
      if (pad) yield Buffer.alloc(pad);
    } else if (st.isFIFO()) {
      yield encodeHeader({ ...base, name: rel, type: "6", size: 0, xattrs });
    } else if (st.isCharacterDevice() || st.isBlockDevice()) {
      yield encodeHeader({
        ...base,
        name: rel,
        type: st.isCharacterDevice() ? "3" : "4",
        size: 0,
        devmajor: devMajor(st.rdev),
        devminor: devMinor(st.rdev),
        xattrs,
      });
    }
  }
  yield Buffer.alloc(1024);
}

/** Writes the flattened tree to a tar file (temp file beside it, renamed when complete). */
export async function exportToTar(layers: readonly string[], file: string): Promise<void> {
  const tmp = join(dirname(file), `.${basename(file)}.tmp-${randomBytes(4).toString("hex")}`);
  try {
    await pipeline(Readable.from(mergedTarChunks(layers)), fs.createWriteStream(tmp, { mode: 0o644 }));
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}

/** Writes the flattened tree into DIR (created if missing; must be empty). Owners are kept as root. */
export function exportToDir(layers: readonly string[], dir: string): void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  if (fs.readdirSync(dir).length) throw new Error(`export directory ${dir} is not empty`);
  const root = Buffer.from(dir.replace(/\/+$/, ""));
  const isRoot = process.getuid?.() === 0;
  const links = new Map<string, Buffer>();
  const dirTimes: Array<{ p: Buffer; st: fs.BigIntStats }> = [];
  const time = (st: fs.BigIntStats) => [Number(st.atimeNs) / 1e9, Number(st.mtimeNs) / 1e9] as const;
  for (const { rel, abs, st } of mergedEntries(layers)) {
    const p = Buffer.concat([root, Buffer.from("/"), rel]);
    const perm = Number(st.mode) & 0o7777;
    if (st.isDirectory()) {
      fs.mkdirSync(p, 0o700);
      dirTimes.push({ p, st });
    } else if (st.isSymbolicLink()) {
      fs.symlinkSync(fs.readlinkSync(abs, { encoding: "buffer" }), p);
    } else if (st.isFile()) {
      const key = `${st.dev}:${st.ino}`;
      const first = st.nlink > 1n ? links.get(key) : undefined;
      if (first) {
        fs.linkSync(first, p);
        continue;
      }
      if (st.nlink > 1n) links.set(key, p);
      fs.copyFileSync(abs, p);
    } else if (st.isFIFO() || st.isCharacterDevice() || st.isBlockDevice()) {
      const type = st.isFIFO() ? fs.constants.S_IFIFO : st.isCharacterDevice() ? fs.constants.S_IFCHR : fs.constants.S_IFBLK;
      mknod(p, type | perm, devMajor(st.rdev), devMinor(st.rdev));
    } else {
      continue;
    }
    if (isRoot) fs.lchownSync(p, Number(st.uid), Number(st.gid));
    for (const [n, v] of xattrsOf(abs)) {
      try {
        setxattr(p, n, v, { noFollow: true });
      } catch {
        // xattrs the target filesystem refuses are dropped
      }
    }
    if (!st.isSymbolicLink()) fs.chmodSync(p, perm);
    if (!st.isDirectory()) {
      const [a, m] = time(st);
      fs.lutimesSync(p, a, m);
    }
  }
  for (let i = dirTimes.length - 1; i >= 0; i--) {
    const [a, m] = time(dirTimes[i].st);
    fs.utimesSync(dirTimes[i].p, a, m);
  }
}
