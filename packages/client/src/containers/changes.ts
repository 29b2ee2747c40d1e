/**
 * `strata diff`: the changes a container's rw layer makes to the layers below it, with Docker's
 * overlay semantics (moby pkg/archive OverlayChanges):
 * - the upper dir is walked depth first, names in byte order, and each entry becomes a change;
 * - a 0:0 character device is `D` of its path;
 * - an opaque directory is `D` when some lower layer has that path (and not as a whiteout, nor
 *   below a whited-out directory), otherwise it is treated like any other entry;
 * - any other entry is `C` when some lower layer has the path (stat, following symlinks), else
 *   `A`; a directory whose size, mode and mtime equal the lower one's is not reported itself;
 * - before an `A` or `D`, every ancestor directory not reported yet is reported as `C`.
 */
import * as fs from "node:fs";
import { join } from "node:path";
import { isOpaque, isWhiteout } from "./stack.js";

export type ChangeKind = "A" | "C" | "D";

export interface Change {
  kind: ChangeKind;
  /** Absolute path inside the container, e.g. "/etc/hosts". */
  path: string;
}

function statOrUndef(p: string): fs.Stats | undefined {
  try {
    return fs.statSync(p);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR" || code === "ELOOP") return undefined;
    throw e;
  }
}

function parentOf(p: string): string {
  const i = p.lastIndexOf("/");
  return i <= 0 ? "/" : p.slice(0, i);
}

function sameTime(a: fs.BigIntStats, b: fs.BigIntStats): boolean {
  if (a.mtimeNs === b.mtimeNs) return true;
  const sa = a.mtimeNs / 1000000000n;
  const sb = b.mtimeNs / 1000000000n;
  return sa === sb && (a.mtimeNs % 1000000000n === 0n || b.mtimeNs % 1000000000n === 0n);
}

function deletedPath(layers: readonly string[], upper: string, rel: string, st: fs.Stats): string | undefined {
  if (isWhiteout(st)) return rel;
  if (!st.isDirectory() || !isOpaque(join(upper, rel))) return undefined;
  for (const layer of layers) {
    const ls = statOrUndef(join(layer, rel));
    if (ls) return isWhiteout(ls) ? undefined : rel;
    for (let dir = parentOf(rel); dir !== "/"; dir = parentOf(dir)) {
      const ds = statOrUndef(join(layer, dir));
      if (ds && isWhiteout(ds)) return undefined;
    }
  }
  return undefined;
}

function sortedNames(dir: string): string[] {
  return fs.readdirSync(dir).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
}

/** Changes of `upper` relative to `lowers` (diff dirs, nearest first), in Docker's order. */
export function overlayChanges(lowers: readonly string[], upper: string): Change[] {
  const changes: Change[] = [];
  const changedDirs = new Set<string>();
  const visit = (rel: string): void => {
    const abs = join(upper, rel);
    const st = fs.lstatSync(abs);
    let record = true;
    let kind: ChangeKind = "A";
    let path = rel;
    const del = deletedPath(lowers, upper, rel, st);
    if (del !== undefined) {
      kind = "D";
      path = del;
    } else {
      for (const layer of lowers) {
        const ls = statOrUndef(join(layer, rel));
        if (!ls) continue;
        if (ls.isDirectory() && st.isDirectory()) {
          const a = fs.lstatSync(abs, { bigint: true });
          const b = fs.statSync(join(layer, rel), { bigint: true });
          if (a.size === b.size && a.mode === b.mode && sameTime(a, b)) record = false;
        }
        kind = "C";
        break;
      }
    }
    if (record) {
      if (st.isDirectory()) changedDirs.add(rel);
      if (kind === "A" || kind === "D") {
        const tail: Change[] = [];
        for (let p = parentOf(path); p !== "/"; p = parentOf(p)) {
          if (!changedDirs.has(p)) {
            tail.unshift({ kind: "C", path: p });
            changedDirs.add(p);
          }
        }
        changes.push(...tail);
      }
      changes.push({ kind, path });
    }
    if (st.isDirectory()) for (const n of sortedNames(abs)) visit(rel === "/" ? `/${n}` : `${rel}/${n}`);
  };
  for (const n of sortedNames(upper)) visit(`/${n}`);
  return changes;
}

export function formatChanges(changes: readonly Change[]): string {
  return changes.map((c) => `${c.kind} ${c.path}`).join("\n");
}
