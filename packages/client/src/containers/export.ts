/**
 * `strata export IMAGE|NAME (-o FILE.tar | --dir DIR)`: the flattened root filesystem of an image
 * or a container (its rw, -init and image layers), computed from the diff dirs without mounting,
 * with overlay semantics (stack.ts): whiteouts hide names below them, opaque directories hide
 * lower contents, a non-directory hides lower directories. Output order is depth first with names
 * in byte order; hardlinks inside one layer stay hardlinks; trusted.overlay.* xattrs are dropped.
 * The tree is walked streaming (see mergedEntries), so a layer of millions of files costs no more
 * memory than the names of its largest directory.
 */

import * as fs from "node:fs";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { getxattr, listxattr, mknod, setxattr } from "../native.js";
import { createOutputFile, mkdirsSync } from "../store/fsutil.js";
import { loadImage, resolveImage } from "../store/images.js";
import type { Store } from "../store/store.js";
import { diffDirOfLink, readLayerDir, stackLinks } from "./layers.js";
import { isOpaque, isWhiteout, lstatBig } from "./stack.js";
import { ContainerNotFoundError, containerLayers, resolveContainer } from "./store.js";
import { encodeHeader } from "./tarwriter.js";

export interface MergedEntry {
  /** Path relative to the root, without "./" (bytes). */
  rel: Buffer;
  /** The file providing the entry. */
  abs: Buffer;
  st: fs.BigIntStats;
  /** Set on the second report of a directory, once everything below it was reported. */
  done?: true;
}

/** a + "/" + b, both raw bytes held in latin1 strings. */
function joinRel(a: string, b: string): string {
  return a.length === 0 ? b : `${a}/${b}`;
}

/**
 * The merged view of `layers` (diff dirs, nearest first), entries parents first, names in byte
 * order; each directory is reported again (`done`) after its contents. Memory holds the names of
 * the directories on the current path only (as one-byte strings, with the index of the layer
 * providing each name), never the tree, and no stat is kept beyond the entry being reported.
 */
export function* mergedEntries(layers: readonly string[]): Generator<MergedEntry> {
  const roots = layers.map((l) => Buffer.from(l.replace(/\/+$/, "")));
  const abs = (i: number, rel: string) => (rel.length ? Buffer.concat([roots[i], Buffer.from(`/${rel}`, "latin1")]) : roots[i]);
  /** Calls `fn` with each name of a directory (read as latin1 strings, streaming) and whether it is a whiteout. */
  function eachName(dirPath: Buffer, fn: (name: string, whiteout: boolean) => void, childPath: (name: string) => Buffer): void {
    const dir = fs.opendirSync(dirPath, { encoding: "latin1", bufferSize: 256 });
    try {
      for (let d = dir.readSync(); d !== null; d = dir.readSync()) fn(d.name, d.isCharacterDevice() && isWhiteout(fs.lstatSync(childPath(d.name))));
    } finally {
      dir.closeSync();
    }
  }
  function* walk(rel: string, live: number[]): Generator<MergedEntry> {
    // One layer: its names (whiteouts hide nothing). Several: name -> providing layer, a
    // whiteout keeping its name with layer -1 to hide it further down.
    let names: string[] = [];
    let provider: Map<string, number> | undefined;
    if (live.length === 1) {
      const only = live[0];
      eachName(
        abs(only, rel),
        (name, wh) => {
          if (!wh) names.push(name);
        },
        (name) => abs(only, joinRel(rel, name)),
      );
    } else {
      const map = new Map<string, number>();
      for (const i of live) {
        eachName(
          abs(i, rel),
          (name, wh) => {
            if (!map.has(name)) map.set(name, wh ? -1 : i);
          },
          (name) => abs(i, joinRel(rel, name)),
        );
      }
      names = [...map.keys()].filter((n) => map.get(n) !== -1);
      provider = map;
    }
    names.sort();
    for (const name of names) {
      const layer = provider ? (provider.get(name) as number) : live[0];
      const r = joinRel(rel, name);
      const a = abs(layer, r);
      const st = fs.lstatSync(a, { bigint: true });
      const relBuf = Buffer.from(r, "latin1");
      yield { rel: relBuf, abs: a, st };
      if (!st.isDirectory()) continue;
      const childLive = [layer];
      if (!isOpaque(a)) {
        for (const j of live.filter((x) => x > layer)) {
          const s2 = lstatBig(abs(j, r));
          if (!s2) continue;
          if (!s2.isDirectory()) break;
          childLive.push(j);
          if (isOpaque(abs(j, r))) break;
        }
      }
      yield* walk(r, childLive);
      yield { rel: relBuf, abs: a, st, done: true };
    }
  }
  if (roots.length)
    yield* walk(
      "",
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

/** Headers and small files are gathered into chunks of about this size before they are yielded. */
const CHUNK = 256 * 1024;

/** The flattened tree as a tar stream (same entry encoding as commit's layer tars). */
export async function* mergedTarChunks(layers: readonly string[]): AsyncGenerator<Buffer> {
  const links = new Map<string, Buffer>();
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  const add = (b: Buffer) => {
    pending.push(b);
    pendingBytes += b.length;
  };
  const take = () => {
    const out = pending.length === 1 ? pending[0] : Buffer.concat(pending);
    pending = [];
    pendingBytes = 0;
    return out;
  };
  for (const { rel, abs, st, done } of mergedEntries(layers)) {
    if (done) continue;
    if (pendingBytes >= CHUNK) yield take();
    const base = { uid: Number(st.uid), gid: Number(st.gid), mtime: Number(st.mtimeNs / 1000000000n), mode: Number(st.mode) & 0o7777 };
    const xattrs = xattrsOf(abs);
    if (st.isDirectory()) {
      add(encodeHeader({ ...base, name: Buffer.concat([rel, Buffer.from("/")]), type: "5", size: 0, xattrs }));
    } else if (st.isSymbolicLink()) {
      add(encodeHeader({ ...base, name: rel, type: "2", size: 0, linkname: fs.readlinkSync(abs, { encoding: "buffer" }), xattrs }));
    } else if (st.isFile()) {
      const key = `${st.dev}:${st.ino}`;
      const first = st.nlink > 1n ? links.get(key) : undefined;
      if (first) {
        add(encodeHeader({ ...base, name: rel, type: "1", size: 0, linkname: first, xattrs }));
        continue;
      }
      if (st.nlink > 1n) links.set(key, rel);
      const size = Number(st.size);
      add(encodeHeader({ ...base, name: rel, type: "0", size, xattrs }));
      if (size === 0) continue;
      const fh = await fs.promises.open(abs, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
      try {
        let left = size;
        while (left > 0) {
          const buf = Buffer.allocUnsafe(Math.min(1 << 20, left));
          const { bytesRead } = await fh.read(buf, 0, buf.length, null);
          if (bytesRead === 0) throw new Error(`${abs.toString()} shrank while it was being exported`);
          left -= bytesRead;
          add(buf.subarray(0, bytesRead));
          if (pendingBytes >= CHUNK) yield take();
        }
      } finally {
        await fh.close();
      }
      const pad = (512 - (size % 512)) % 512;
      if (pad) add(Buffer.alloc(pad));
    } else if (st.isFIFO()) {
      add(encodeHeader({ ...base, name: rel, type: "6", size: 0, xattrs }));
    } else if (st.isCharacterDevice() || st.isBlockDevice()) {
      add(
        encodeHeader({
          ...base,
          name: rel,
          type: st.isCharacterDevice() ? "3" : "4",
          size: 0,
          devmajor: devMajor(st.rdev),
          devminor: devMinor(st.rdev),
          xattrs,
        }),
      );
    }
  }
  add(Buffer.alloc(1024));
  yield take();
}

/** Writes the flattened tree to a tar file (temp file beside it, renamed when complete). */
export async function exportToTar(layers: readonly string[], file: string): Promise<void> {
  const out = await createOutputFile(file);
  try {
    await pipeline(Readable.from(mergedTarChunks(layers)), out.stream);
    await out.commit();
  } catch (e) {
    await out.discard();
    throw e;
  }
}

export interface DirExport {
  /** Device nodes left out (see exportToDir). */
  skippedDevices: number;
}

/**
 * Writes the flattened tree into DIR (created if missing; must be empty), which is made 0700
 * like containerd's rootfs directories: the image's setuid files and device nodes are then
 * reachable by DIR's owner only. Owners are kept when running as root. Device nodes are created
 * only by root into a root-owned DIR (a device node is a door to the hardware for whoever can
 * reach it); otherwise they are counted in `skippedDevices`. Directory modes and times are
 * applied once their contents are written.
 */
export function exportToDir(layers: readonly string[], dir: string): DirExport {
  try {
    mkdirsSync(dir, 0o700);
  } catch (e) {
    throw new Error(`cannot create ${dir}: ${(e as Error).message}`, { cause: e });
  }
  if (fs.readdirSync(dir).length) throw new Error(`export directory ${dir} is not empty`);
  fs.chmodSync(dir, 0o700);
  const isRoot = process.getuid?.() === 0;
  const devicesAllowed = isRoot && fs.statSync(dir).uid === 0;
  const root = Buffer.from(dir.replace(/\/+$/, ""));
  const links = new Map<string, Buffer>();
  const time = (st: fs.BigIntStats) => [Number(st.atimeNs) / 1e9, Number(st.mtimeNs) / 1e9] as const;
  let skippedDevices = 0;
  for (const { rel, abs, st, done } of mergedEntries(layers)) {
    const p = Buffer.concat([root, Buffer.from("/"), rel]);
    const perm = Number(st.mode) & 0o7777;
    if (done) {
      fs.chmodSync(p, perm);
      fs.utimesSync(p, ...time(st));
      continue;
    }
    if (st.isDirectory()) {
      fs.mkdirSync(p, 0o700);
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
    } else if (st.isFIFO()) {
      mknod(p, fs.constants.S_IFIFO | perm, 0, 0);
    } else if (st.isCharacterDevice() || st.isBlockDevice()) {
      if (!devicesAllowed) {
        skippedDevices++;
        continue;
      }
      mknod(p, (st.isCharacterDevice() ? fs.constants.S_IFCHR : fs.constants.S_IFBLK) | perm, devMajor(st.rdev), devMinor(st.rdev));
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
    if (st.isDirectory()) continue; // mode and times once its contents are in
    if (!st.isSymbolicLink()) fs.chmodSync(p, perm);
    fs.lutimesSync(p, ...time(st));
  }
  return { skippedDevices };
}
