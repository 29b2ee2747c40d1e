/**
 * `strata diff`: a container's changes with Docker's rules. dockerd (overlay2 driver, 20.10 and
 * later) answers `docker diff` with its naive diff (moby pkg/archive ChangesDirs): the mounted
 * container tree is compared with the mounted tree of its parent (the -init layer over the image):
 * - an entry only in the new tree is `A`, and so is everything below an added directory;
 * - an entry only in the old tree is `D` (only the topmost one: nothing below it is listed);
 * - an entry in both is `C` when lstat differs in mode (type and permissions), uid, gid or rdev,
 *   or, for non-directories, in size or mtime (equal when the seconds agree and either side has
 *   no nanoseconds), or when its security.capability xattr differs; below a new non-directory
 *   nothing of the old tree is listed;
 * - a directory with any change below it is `C`, listed before those changes.
 * Without mounting: the two trees differ only where the upper dir has entries, so only those are
 * visited, and the old tree is read through the lower diff dirs with overlay semantics. Output is
 * streamed, depth first, siblings in byte order (Docker's own order among siblings varies from
 * run to run: it iterates a Go map).
 */
import * as fs from "node:fs";
import { getxattr } from "../native.js";
import { isOpaque, isWhiteout, lookupChild, type StackEntry, visibleNames } from "./stack.js";

export type ChangeKind = "A" | "C" | "D";

export interface Change {
  kind: ChangeKind;
  /** Absolute path inside the container, e.g. "/etc/hosts". */
  path: string;
}

const CAPABILITY_XATTR = "security.capability";

function capability(path: string): Buffer | undefined {
  try {
    return getxattr(path, CAPABILITY_XATTR);
  } catch {
    return undefined;
  }
}

function sameFsTime(a: bigint, b: bigint): boolean {
  const NS = 1_000_000_000n;
  return a / NS === b / NS && (a % NS === b % NS || a % NS === 0n || b % NS === 0n);
}

/** moby's statDifferent, plus the capability check of addChanges. */
function differs(oldE: StackEntry, newPath: string, n: fs.BigIntStats): boolean {
  const o = oldE.st;
  if (o.mode !== n.mode || o.uid !== n.uid || o.gid !== n.gid || o.rdev !== n.rdev) return true;
  if (!o.isDirectory() && (!sameFsTime(o.mtimeNs, n.mtimeNs) || o.size !== n.size)) return true;
  const a = capability(oldE.path);
  const b = capability(newPath);
  return a === undefined ? b !== undefined : b === undefined || !a.equals(b);
}

function sortedNames(dir: string): string[] {
  return fs.readdirSync(dir).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
}

function childPath(rel: string, name: string): string {
  return rel === "/" ? `/${name}` : `${rel}/${name}`;
}

/** Changes of `upper` relative to `lowers` (diff dirs, nearest first), in the order described above. */
export function* overlayChanges(lowers: readonly string[], upper: string): Generator<Change> {
  // Directories on the current path whose `C` is due once something below them changes.
  const pending: { path: string; reported: boolean }[] = [];
  function* emit(c: Change): Generator<Change> {
    for (const p of pending) {
      if (p.reported) continue;
      p.reported = true;
      yield { kind: "C", path: p.path };
    }
    yield c;
  }

  /** Everything of the new tree below the added directory `rel` is `A` (the upper dir is all of it). */
  function* added(rel: string): Generator<Change> {
    for (const name of sortedNames(upper + rel)) {
      const r = childPath(rel, name);
      const st = fs.lstatSync(upper + r);
      if (isWhiteout(st)) continue;
      yield { kind: "A", path: r };
      if (st.isDirectory()) yield* added(r);
    }
  }

  /**
   * Visits the upper directory `rel`, whose old counterpart is a directory made of `oldLayers`
   * (the lower dirs where it is visible, nearest first).
   */
  function* dir(rel: string, oldLayers: readonly string[]): Generator<Change> {
    const opaque = rel !== "/" && isOpaque(upper + rel);
    const names = sortedNames(upper + rel);
    // Old entries gone from the new tree: all but the upper's own names under an opaque
    // directory, else the whited-out ones.
    const present = new Set<string>();
    const deleted = new Set<string>();
    for (const name of names) {
      const st = fs.lstatSync(upper + childPath(rel, name));
      if (!isWhiteout(st)) present.add(name);
      else if (!opaque && lookupChild(oldLayers, childPath(rel, name))) deleted.add(name);
    }
    if (opaque) for (const name of visibleNames(oldLayers, rel)) if (!present.has(name)) deleted.add(name);
    const all = [...new Set([...present, ...deleted])].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    for (const name of all) {
      const r = childPath(rel, name);
      if (deleted.has(name)) {
        yield* emit({ kind: "D", path: r });
        continue;
      }
      const abs = upper + r;
      const st = fs.lstatSync(abs, { bigint: true });
      const old = lookupChild(oldLayers, r);
      if (!old) {
        yield* emit({ kind: "A", path: r });
        if (st.isDirectory()) yield* added(r);
        continue;
      }
      const changed = differs(old, abs, st);
      if (changed) yield* emit({ kind: "C", path: r });
      if (!st.isDirectory()) continue;
      if (!old.st.isDirectory()) {
        yield* added(r);
        continue;
      }
      pending.push({ path: r, reported: changed });
      yield* dir(r, old.dirLayers);
      pending.pop();
    }
  }

  yield* dir("/", rootLayers(lowers));
}

/** The lower dirs that make up the old tree's root (down to the first opaque one). */
function rootLayers(lowers: readonly string[]): string[] {
  const out: string[] = [];
  for (const l of lowers) {
    out.push(l);
    if (isOpaque(l)) break;
  }
  return out;
}

export function formatChange(c: Change): string {
  return `${c.kind} ${c.path}`;
}

export function formatChanges(changes: Iterable<Change>): string {
  return [...changes].map(formatChange).join("\n");
}
