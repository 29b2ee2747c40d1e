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

/**
 * The embedded (single-process) repository index: one walk of storage, then kept in memory.
 * `added()` makes a new repository visible at once; repositories removed outside this
 * process's writes (fsck, gc, another process on the same directory) disappear at the next
 * walk, which runs in the background once the list is older than `maxAgeMs` (callers keep
 * getting the previous list meanwhile, so a listing never waits on a walk after the first).
 * Measured (10,000 repositories, filesystem driver): a walk takes 0.5 s on a quiet machine and
 * 3.4 s on a loaded one, which every `/v2/_catalog` used to pay; from memory it is under 0.01 ms.
 */
export class StorageRepositoryIndex implements RepositoryIndex {
  private names: Set<string> | undefined;
  private sorted: string[] | undefined;
  private walkedAt = 0;
  private walking: Promise<void> | undefined;
  /** Names added while a walk is under way: the walk may have passed their directory already. */
  private addedDuringWalk = new Set<string>();

  constructor(
    private readonly driver: StorageDriver,
    private readonly maxAgeMs = 30_000,
  ) {}

  async repositories(): Promise<string[]> {
    if (!this.names) await this.walk();
    else if (Date.now() - this.walkedAt > this.maxAgeMs) void this.walk().catch(() => {});
    this.sorted ??= [...this.names!].sort(byteOrder);
    return this.sorted;
  }

  async added(repository: string): Promise<void> {
    if (this.walking) this.addedDuringWalk.add(repository);
    if (this.names && !this.names.has(repository)) {
      this.names.add(repository);
      this.sorted = undefined;
    }
  }

  /** Walks storage now (joining a walk under way); the list then reflects storage. */
  walk(): Promise<void> {
    this.walking ??= (async () => {
      this.addedDuringWalk = new Set();
      const startedAt = Date.now();
      try {
        const found = new Set(await walkRepositories(this.driver));
        for (const r of this.addedDuringWalk) found.add(r);
        this.names = found;
        this.sorted = undefined;
        this.walkedAt = startedAt;
      } finally {
        this.walking = undefined;
      }
    })();
    return this.walking;
  }
}
