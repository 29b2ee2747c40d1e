/**
 * The container's -init layer: the mount points and files Docker Engine puts between the image
 * and the rw layer (`initlayer.Setup`): empty regular files (0755) `.dockerenv`, `dev/console`,
 * `etc/hostname`, `etc/hosts`, `etc/resolv.conf`; directories (0755) `dev/pts`, `dev/shm`,
 * `proc`, `sys`; `etc/mtab -> /proc/mounts`; all owned by 0:0.
 *
 * Like Docker, the setup runs on the init layer MOUNTED over the image: every non-directory path
 * component is unlinked first (so an image file there is whited out), then the entry is created
 * only when the path does not exist (following symlinks) in the merged view. Directories it
 * creates are 0755 and owned by 0:0.
 */
import * as fs from "node:fs";
import { dirname, join } from "node:path";

export type InitEntry = readonly [path: string, kind: "dir" | "file" | { symlink: string }];

/** The init entries, in the order they are applied. */
export const INIT_ENTRIES: readonly InitEntry[] = [
  ["/dev/pts", "dir"],
  ["/dev/shm", "dir"],
  ["/proc", "dir"],
  ["/sys", "dir"],
  ["/.dockerenv", "file"],
  ["/etc/resolv.conf", "file"],
  ["/etc/hosts", "file"],
  ["/etc/hostname", "file"],
  ["/dev/console", "file"],
  ["/etc/mtab", { symlink: "/proc/mounts" }],
];

const isRoot = process.getuid?.() === 0;

function mkdirAllNew(root: string, rel: string): void {
  const parts = rel.split("/").filter(Boolean);
  let cur = root;
  for (const p of parts) {
    cur = join(cur, p);
    try {
      fs.mkdirSync(cur, 0o755);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EEXIST") continue;
      throw e;
    }
    fs.chmodSync(cur, 0o755);
    if (isRoot) fs.lchownSync(cur, 0, 0);
  }
}

/**
 * Applies the init entries to `root`, which is the init layer mounted over the image (or, without
 * mounts, the bare diff dir: see `setupInitDiff`).
 */
export function setupInitLayer(root: string, exists: (rel: string) => boolean = (rel) => fs.existsSync(join(root, rel))): void {
  for (const [pth, kind] of INIT_ENTRIES) {
    const parts = pth.split("/").filter(Boolean);
    let prev = "";
    for (const p of parts) {
      prev = `${prev}/${p}`;
      try {
        fs.unlinkSync(join(root, prev));
      } catch {
        // directories and missing paths stay as they are
      }
    }
    if (exists(pth)) continue;
    mkdirAllNew(root, dirname(pth));
    const abs = join(root, pth);
    if (kind === "dir") {
      mkdirAllNew(root, pth);
    } else if (kind === "file") {
      const fd = fs.openSync(abs, fs.constants.O_CREAT | fs.constants.O_WRONLY | fs.constants.O_NOFOLLOW, 0o755);
      try {
        fs.fchmodSync(fd, 0o755);
        if (isRoot) fs.fchownSync(fd, 0, 0);
      } finally {
        fs.closeSync(fd);
      }
    } else {
      fs.symlinkSync(kind.symlink, abs);
      if (isRoot) fs.lchownSync(abs, 0, 0);
    }
  }
}
