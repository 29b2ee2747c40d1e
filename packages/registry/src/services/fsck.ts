/**
 * `strata fsck`: finds and repairs what interrupted writes (a crash, kill -9, a lost disk) can
 * leave in storage, for any driver:
 * - links whose target is gone: tag and revision links naming a manifest whose bytes are
 *   missing, layer links naming a missing blob, referrer links of a manifest that is no longer
 *   a revision of the repository (GET of any of them could only fail);
 * - with the filesystem driver, debris of interrupted writes (storage/filesystem-fsck.ts):
 *   temp files, uncommitted writer files and directories left empty, among them the tag
 *   directories a crash left without a link (which never count as tags).
 * A link write always follows the write of what it names, so a dangling link is never a write
 * in progress; filesystem debris is removed only once untouched for the grace period.
 */
import type { Digest } from "@strata/core";
import type { StorageDriver } from "../storage/driver.js";
import { sweepFilesystem } from "../storage/filesystem-fsck.js";
import { baseName, pathFor } from "../storage/paths.js";
import { BlobStore } from "./blobs.js";
import { walkRepositories } from "./catalog.js";
import { digestDirs, listAll } from "./manifests.js";
import { MemoryDescriptorCache } from "./cache.js";

export interface FsckRepair {
  readonly kind: "dangling-tag" | "dangling-revision" | "dangling-layer" | "dangling-referrer" | "temp-file" | "empty-dir";
  /** The storage key (or, for filesystem debris, the path below the root). */
  readonly key: string;
}

export interface FsckOptions {
  /** The filesystem driver's root, to sweep its debris. */
  readonly filesystemRoot?: string;
  readonly graceMs: number;
  /** Report without changing anything. */
  readonly dryRun?: boolean;
}


export async function fsck(driver: StorageDriver, opts: FsckOptions): Promise<FsckRepair[]> {
  const repairs: FsckRepair[] = [];
  const blobs = new BlobStore(driver, new MemoryDescriptorCache());
  const exists = async (d: Digest | undefined) => d !== undefined && (await blobs.globalSize(d)) !== undefined;
  const remove = async (kind: FsckRepair["kind"], key: string) => {
    repairs.push({ kind, key });
    if (!opts.dryRun) await driver.delete(key).catch(() => {});
  };

  for (const name of await walkRepositories(driver)) {
    for (const tagDir of (await listAll(driver, pathFor({ kind: "tagsRoot", name }))) ?? []) {
      const link = pathFor({ kind: "tagCurrentLink", name, tag: baseName(tagDir) });
      const target = await BlobStore.readLink(driver, link).catch(() => undefined);
      if (target !== undefined && !(await exists(target))) await remove("dangling-tag", link);
    }
    const revisions = new Set<string>();
    for (const { digest, dir } of await digestDirs(driver, pathFor({ kind: "manifestRevisionsRoot", name }))) {
      if (await exists(digest)) revisions.add(digest);
      else await remove("dangling-revision", dir);
    }
    for (const { digest, dir } of await digestDirs(driver, pathFor({ kind: "layersRoot", name }))) {
      if (!(await exists(digest))) await remove("dangling-layer", dir);
    }
    for (const subject of await digestDirs(driver, pathFor({ kind: "referrersRoot", name }))) {
      for (const { digest, dir } of await digestDirs(driver, subject.dir)) {
        if (!revisions.has(digest)) await remove("dangling-referrer", dir);
      }
    }
  }

  if (opts.filesystemRoot) {
    const swept = await sweepFilesystem(opts.filesystemRoot, { graceMs: opts.graceMs, dryRun: opts.dryRun });
    for (const key of swept.tempFiles) repairs.push({ kind: "temp-file", key });
    for (const key of swept.emptyDirs) repairs.push({ kind: "empty-dir", key });
  }
  return repairs;
}
