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

/** Walks `repositories/`: a directory holding any of the `_*` markers is a repository. */
export async function walkRepositories(driver: StorageDriver): Promise<string[]> {
  const root = pathFor({ kind: "repositoriesRoot" });
  const out: string[] = [];
  const visit = async (key: string, name: string): Promise<void> => {
    for (const child of (await listAll(driver, key)) ?? []) {
      const c = baseName(child);
      if (MARKERS.has(c)) {
        if ((c === "_manifests" || c === "_layers") && !out.includes(name)) out.push(name);
        continue;
      }
      await visit(child, name ? `${name}/${c}` : c);
    }
  };
  await visit(root, "");
  return out.sort(byteOrder);
}

export class StorageRepositoryIndex implements RepositoryIndex {
  constructor(private readonly driver: StorageDriver) {}
  repositories(): Promise<string[]> {
    return walkRepositories(this.driver);
  }
  async added(): Promise<void> {}
}
