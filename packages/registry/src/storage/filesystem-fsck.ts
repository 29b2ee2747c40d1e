/**
 * Repairs what interrupted writes leave in a filesystem driver's directory (see filesystem.ts
 * for the private names): putContent temp files (`~tmp~*`), writer files (`~partial~*`) of
 * monolithic blob writes that never committed, and directories left empty. `~partial~` files
 * below `_uploads/` belong to upload sessions and are left to the upload purger.
 *
 * Only entries untouched for `graceMs` are removed, so that a running registry's writes in
 * progress are never disturbed.
 */
import { lstat, readdir, rmdir, unlink } from "node:fs/promises";
import path from "node:path";

export interface SweepReport {
  tempFiles: string[];
  emptyDirs: string[];
}

export async function sweepFilesystem(root: string, opts: { graceMs: number; dryRun?: boolean }): Promise<SweepReport> {
  const base = path.resolve(root);
  const cutoff = Date.now() - opts.graceMs;
  const report: SweepReport = { tempFiles: [], emptyDirs: [] };
  const old = async (p: string) => {
    try {
      return (await lstat(p)).mtimeMs < cutoff;
    } catch {
      return false;
    }
  };
  /** Returns whether `dir` is now empty (or would be, in a dry run). */
  const visit = async (dir: string, inUploads: boolean): Promise<boolean> => {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return false;
    }
    let left = entries.length;
    for (const e of entries) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) {
        const stale = await old(p); // before the visit below touches it
        if ((await visit(p, inUploads || e.name === "_uploads")) && stale) {
          report.emptyDirs.push(path.relative(base, p));
          if (!opts.dryRun) await rmdir(p).catch(() => left++);
          left--;
        }
      } else if ((e.name.startsWith("~tmp~") || (e.name.startsWith("~partial~") && !inUploads)) && (await old(p))) {
        report.tempFiles.push(path.relative(base, p));
        if (!opts.dryRun) await unlink(p).catch(() => left++);
        left--;
      }
    }
    return left === 0;
  };
  await visit(path.join(base, "v2"), false);
  return report;
}
