/**
 * Reading a layer stack the way overlayfs presents it, without mounting: diff dirs are given
 * nearest first; a character device 0:0 is a whiteout (hides the name in lower layers), a
 * directory with `trusted.overlay.opaque=y` hides everything below it in lower layers, and a
 * non-directory hides any lower directory of the same name.
 */
import * as fs from "node:fs";
import { getxattr } from "../native.js";

export const OPAQUE_XATTR = "trusted.overlay.opaque";

export function isWhiteout(st: fs.Stats | fs.BigIntStats): boolean {
  return st.isCharacterDevice() && Number(st.rdev) === 0;
}

export function isOpaque(path: fs.PathLike): boolean {
  try {
    const v = getxattr(path as string | Buffer, OPAQUE_XATTR);
    return v !== undefined && v.length === 1 && v[0] === 0x79;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOTSUP" || code === "EOPNOTSUPP" || code === "ENOENT") return false;
    throw e;
  }
}

function lstatOrUndef(p: fs.PathLike): fs.Stats | undefined {
  try {
    return fs.lstatSync(p);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return undefined;
    throw e;
  }
}

/** lstat (bigint), or undefined when nothing is there. */
export function lstatBig(p: fs.PathLike): fs.BigIntStats | undefined {
  try {
    return fs.lstatSync(p, { bigint: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return undefined;
    throw e;
  }
}

/** An entry of a merged view: the file providing it and, for a directory, the layers merged into it. */
export interface StackEntry {
  /** Absolute path of the providing file. */
  path: string;
  st: fs.BigIntStats;
  /** For a directory: the layers (nearest first) whose directory at this path is visible. */
  dirLayers: string[];
}

/**
 * The entry visible at `rel` ("/a/b") given the layers in which its parent directory is visible
 * (nearest first): the nearest entry wins, a whiteout hides the name, and a directory is merged
 * with the directories below it until an opaque one or a non-directory.
 */
export function lookupChild(parentLayers: readonly string[], rel: string): StackEntry | undefined {
  let found: StackEntry | undefined;
  for (const layer of parentLayers) {
    const p = layer + rel;
    const st = lstatBig(p);
    if (!st) continue;
    if (isWhiteout(st) || (found && !st.isDirectory())) break;
    if (!found) found = { path: p, st, dirLayers: [] };
    if (!st.isDirectory()) break;
    found.dirLayers.push(layer);
    if (isOpaque(p)) break;
  }
  return found;
}

/** Names visible in the merged directory `rel` made of `dirLayers` (as lookupChild gives them). */
export function visibleNames(dirLayers: readonly string[], rel: string): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const layer of dirLayers) {
    const dir = layer + rel;
    for (const name of fs.readdirSync(dir)) {
      if (seen.has(name)) continue;
      seen.add(name);
      if (!isWhiteout(fs.lstatSync(`${dir}/${name}`))) out.push(name);
    }
  }
  return out;
}

/**
 * The entry visible at `rel` ("/a/b") in the merged view of `layers` (nearest first), or
 * undefined when it does not exist. Symlinks are not followed.
 */
export function lookupInStack(layers: readonly string[], rel: string): { layer: string; st: fs.Stats } | undefined {
  const parts = rel.split("/").filter(Boolean);
  // Layers in which the current directory is (still) visible.
  let live = [...layers];
  for (let i = 0; i < parts.length; i++) {
    const sub = `/${parts.slice(0, i + 1).join("/")}`;
    const next: string[] = [];
    let found: { layer: string; st: fs.Stats } | undefined;
    for (const layer of live) {
      const st = lstatOrUndef(layer + sub);
      if (!st) continue;
      if (isWhiteout(st)) break;
      if (!found) found = { layer, st };
      if (!st.isDirectory()) break;
      if (found.st.isDirectory()) next.push(layer);
      if (isOpaque(layer + sub)) break;
    }
    if (!found) return undefined;
    if (i === parts.length - 1) return found;
    if (!found.st.isDirectory()) return undefined;
    live = next;
  }
  return layers.length ? { layer: layers[0], st: fs.lstatSync(layers[0]) } : undefined;
}
