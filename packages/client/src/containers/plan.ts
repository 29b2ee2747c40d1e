/**
 * Overlay mount planning as pure data (no filesystem access, no syscalls): given the facts of a
 * layer stack, returns what to pass to mount(2) and from which directory. The executor
 * (mount.ts) performs a plan; planning is unit-testable without root.
 *
 * Option strings follow Docker's overlay2 driver: lowerdirs are the `l/<link>` short links,
 * nearest layer first. The string is first built with absolute paths; when it would not fit in
 * one page (the kernel copies mount data into a single page, so at most pageSize - 1 bytes), it is
 * rebuilt with paths relative to `<root>/overlay2` and the mount must run with that working
 * directory (Docker's way; about 134 layers fit with an upper dir). Beyond that, Strata mounts
 * from a private directory `<root>/strata/lowers/<key>/` holding one short symlink per layer
 * (`0`, `1`, ... `dr` in base 36 -> `<root>/overlay2/l/<link>`; `U`/`W` -> upper diff/work; `P` ->
 * the pad dir), so up to overlayfs' own limit of 500 layers fit in a page; the executor creates
 * those symlinks, mounts, and removes them (the kernel resolves lower dirs at mount time). If
 * even that does not fit, or the stack is deeper than overlayfs allows, planning fails with a
 * MountPlanError before anything is mounted.
 */
import { createHash } from "node:crypto";
import { posix } from "node:path";

/** overlayfs' own limit on the number of lower layers (OVL_MAX_STACK). */
export const OVERLAY_MAX_LOWERS = 500;
/** Docker's limit on the depth of a layer chain; Strata accepts deeper stacks while they fit. */
export const DOCKER_MAX_DEPTH = 128;
export const DEFAULT_PAGE_SIZE = 4096;
/**
 * Options always set: no inode index, and neither redirect_dir nor metacopy, so that every change
 * in an upper dir is a plain file, directory, 0:0 whiteout or opaque directory (what `diff`,
 * `commit` and `export` understand), whatever the kernel's defaults are.
 */
export const DEFAULT_OVERLAY_FEATURES: readonly string[] = ["index=off", "redirect_dir=off", "metacopy=off"];

export interface MountFacts {
  /** Store root (`<root>/overlay2` holds the layer dirs and `l/`). Absolute. */
  root: string;
  /** Link names (the contents of each layer's `link` file), nearest layer first. */
  lowerLinks: readonly string[];
  /** The read-write layer's dir name under overlay2 (a mount-id or init-id); absent for a read-only mount. */
  upper?: string;
  /** Absolute mount point. */
  target: string;
  /**
   * Extra lower dir (absolute) appended below the links: overlayfs needs at least two lower dirs
   * when there is no upper dir, so a one-layer read-only mount adds an empty directory.
   */
  padLower?: string;
  pageSize?: number;
  features?: readonly string[];
}

export interface MountPlan {
  type: "overlay";
  source: "overlay";
  target: string;
  /** The full `-o` option string. */
  options: string;
  /** Working directory the mount must run from (relative paths in `options`), when set. */
  cwd?: string;
  /** Number of lower dirs in `options`. */
  lowers: number;
  readOnly: boolean;
  /** Symlinks the executor creates in `cwd` (= `dir`) before mounting and removes afterwards. */
  shortLinks?: { dir: string; links: Array<[name: string, target: string]> };
}

export class MountPlanError extends Error {
  readonly code = "EMOUNTPLAN";
  constructor(message: string) {
    super(message);
    this.name = "MountPlanError";
  }
}

const LINK_RE = /^[A-Z2-7]{26}$/;

function build(f: MountFacts, lowers: string[], upperDir: string | undefined, workDir: string | undefined): string {
  const parts = [...(f.features ?? DEFAULT_OVERLAY_FEATURES), `lowerdir=${lowers.join(":")}`];
  if (upperDir !== undefined && workDir !== undefined) parts.push(`upperdir=${upperDir}`, `workdir=${workDir}`);
  return parts.join(",");
}

/** Plans one overlay mount. Throws MountPlanError when the stack cannot be mounted. */
export function planMount(f: MountFacts): MountPlan {
  const pageSize = f.pageSize ?? DEFAULT_PAGE_SIZE;
  if (!posix.isAbsolute(f.root) || !posix.isAbsolute(f.target)) throw new MountPlanError("store root and mount target must be absolute paths");
  if (f.lowerLinks.length === 0) throw new MountPlanError("nothing to mount: no lower layers");
  for (const l of f.lowerLinks) if (!LINK_RE.test(l)) throw new MountPlanError(`invalid layer link ${JSON.stringify(l)}`);
  if (f.upper !== undefined && !/^[0-9a-f]{64}(-init)?$/.test(f.upper)) throw new MountPlanError(`invalid rw layer id ${JSON.stringify(f.upper)}`);
  const readOnly = f.upper === undefined;
  const pad = readOnly && f.lowerLinks.length === 1 ? f.padLower : undefined;
  if (readOnly && f.lowerLinks.length === 1 && pad === undefined) {
    throw new MountPlanError("a read-only overlay mount needs at least two lower dirs (give padLower for a one-layer image)");
  }
  const lowers = f.lowerLinks.length + (pad ? 1 : 0);
  if (lowers > OVERLAY_MAX_LOWERS) {
    throw new MountPlanError(`cannot mount ${lowers} lower layers: overlayfs supports at most ${OVERLAY_MAX_LOWERS}`);
  }
  const overlayDir = posix.join(f.root, "overlay2");
  const tail = pad ? [pad] : [];

  const absolute = build(
    f,
    [...f.lowerLinks.map((l) => posix.join(overlayDir, "l", l)), ...tail],
    f.upper && posix.join(overlayDir, f.upper, "diff"),
    f.upper && posix.join(overlayDir, f.upper, "work"),
  );
  if (absolute.length <= pageSize - 1) return { type: "overlay", source: "overlay", target: f.target, options: absolute, lowers, readOnly };

  const relative = build(f, [...f.lowerLinks.map((l) => `l/${l}`), ...tail], f.upper && `${f.upper}/diff`, f.upper && `${f.upper}/work`);
  if (relative.length <= pageSize - 1) {
    return { type: "overlay", source: "overlay", target: f.target, options: relative, cwd: overlayDir, lowers, readOnly };
  }

  const dir = posix.join(f.root, "strata", "lowers", createHash("sha256").update(f.target).digest("hex").slice(0, 16));
  const links: Array<[string, string]> = f.lowerLinks.map((l, i) => [i.toString(36), posix.join(overlayDir, "l", l)]);
  if (pad) links.push(["P", pad]);
  if (f.upper) links.push(["U", posix.join(overlayDir, f.upper, "diff")], ["W", posix.join(overlayDir, f.upper, "work")]);
  const short = build(
    f,
    links.filter(([n]) => n !== "U" && n !== "W").map(([n]) => n),
    f.upper && "U",
    f.upper && "W",
  );
  if (short.length <= pageSize - 1) {
    return { type: "overlay", source: "overlay", target: f.target, options: short, cwd: dir, lowers, readOnly, shortLinks: { dir, links } };
  }
  throw new MountPlanError(
    `cannot mount ${lowers} lower layers: the overlay mount options need ${short.length} bytes even with short symlinked paths, ` +
      `more than the ${pageSize - 1} bytes one page allows`,
  );
}
