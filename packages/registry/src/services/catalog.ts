/** The list of repositories. Embedded mode walks storage; Redis mode keeps an index. */
import type { StorageDriver } from "../storage/driver.js";
import { baseName, pathFor } from "../storage/paths.js";
import { byteOrder, listAll } from "./manifests.js";

export interface RepositoryIndex {
  /** Every repository name, sorted by byte order. */
  repositories(): Promise<string[]>;
  /** Records that a repository received content. */
  added(repository: string): Promise<void>;
}

const MARKERS = new Set(["_layers", "_manifests", "_uploads", "_referrers"]);

/**
 * Walks `repositories/` (never `blobs/`) and reports every `_*` marker directory: a directory
 * holding markers is a repository (or one with uploads only).
 */
async function walkMarkers(driver: StorageDriver, onMarker: (repository: string, marker: string) => Promise<void>): Promise<void> {
  const visit = async (key: string, name: string): Promise<void> => {
    for (const child of (await listAll(driver, key)) ?? []) {
      const c = baseName(child);
      if (MARKERS.has(c)) await onMarker(name, c);
      else await visit(child, name ? `${name}/${c}` : c);
    }
  };
  await visit(pathFor({ kind: "repositoriesRoot" }), "");
}

/** Every repository holding a blob link or a manifest, in byte order. */
export async function walkRepositories(driver: StorageDriver): Promise<string[]> {
  const out = new Set<string>();
  await walkMarkers(driver, async (name, marker) => {
    if (marker === "_manifests" || marker === "_layers") out.add(name);
  });
  return [...out].sort(byteOrder);
}

/** Every upload directory in storage, in any repository (also one that holds nothing else yet). */
export async function walkUploads(driver: StorageDriver): Promise<{ repository: string; id: string }[]> {
  const out: { repository: string; id: string }[] = [];
  await walkMarkers(driver, async (repository, marker) => {
    if (marker !== "_uploads") return;
    for (const key of (await listAll(driver, pathFor({ kind: "uploadsRoot", name: repository }))) ?? []) out.push({ repository, id: baseName(key) });
  });
  return out;
}

export class StorageRepositoryIndex implements RepositoryIndex {
  constructor(private readonly driver: StorageDriver) {}
  repositories(): Promise<string[]> {
    return walkRepositories(this.driver);
  }
  async added(): Promise<void> {}
}
