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
