/**
 * Container layer directories in Docker's overlay2 layout, and lookups over a layer stack.
 *
 *   overlay2/<mount-id>-init/{diff/ 0755, work/ 0700, link, lower, committed}   dir 0710
 *   overlay2/<mount-id>/{diff/ 0755, work/ 0700, link, lower, merged/ 0700 while mounted}
 *   overlay2/l/<link> -> ../<dir>/diff
 * `lower` lists `l/<link>` entries nearest first and no file ends with a newline.
 */
import { lstat, readlink, rm, symlink } from "node:fs/promises";
import { join, normalize } from "node:path";
import { fsyncPath, mkdirMode, randomLinkId, readSmall, removeTree, writeFileSynced } from "../store/fsutil.js";
import type { StorePaths } from "../store/paths.js";

export const LAYER_DIR_RE = /^[0-9a-f]{64}(-init)?$/;

export interface LayerDirFacts {
  /** Directory name under overlay2 (cache-id, mount-id or init-id). */
  id: string;
  link: string;
  /** `l/<link>` entries below this layer, nearest first (empty for a base layer). */
  lower: string[];
}

/** Reads `link` and `lower` of an overlay2 layer dir. */
export async function readLayerDir(paths: StorePaths, id: string): Promise<LayerDirFacts> {
  const dir = paths.overlayDir(id);
  const link = await readSmall(join(dir, "link"));
  if (!link) throw new Error(`layer directory overlay2/${id} has no link file`);
  const lower = await readSmall(join(dir, "lower"));
  return { id, link, lower: lower ? lower.split(":") : [] };
}

/** Link names (without `l/`) of a layer and everything below it, nearest first. */
export function stackLinks(facts: LayerDirFacts): string[] {
  return [facts.link, ...facts.lower.map((l) => l.replace(/^l\//, ""))];
}

/** The absolute diff dir an `l/` link points at. */
export async function diffDirOfLink(paths: StorePaths, link: string): Promise<string> {
  const target = await readlink(join(paths.links, link));
  return normalize(join(paths.links, target));
}

/**
 * Creates overlay2/<id> on top of `parent` the way Docker's overlay2 driver does: dir 0710,
 * diff 0755, link + l/ symlink, lower and work 0700 (with a parent), and `committed` (0600) in
 * the parent's dir. Caller holds the store lock.
 */
export async function createLayerDir(paths: StorePaths, id: string, parent: LayerDirFacts): Promise<LayerDirFacts> {
  if (!LAYER_DIR_RE.test(id)) throw new Error(`invalid layer dir name ${JSON.stringify(id)}`);
  const dir = paths.overlayDir(id);
  const exists = await lstat(dir).then(
    () => true,
    () => false,
  );
  if (exists) throw new Error(`overlay2/${id} already exists`);
  await mkdirMode(dir, 0o710);
  await mkdirMode(join(dir, "diff"), 0o755);
  const link = randomLinkId();
  await writeFileSynced(join(dir, "link"), link, 0o644);
  await symlink(join("..", id, "diff"), join(paths.links, link));
  const lower = [`l/${parent.link}`, ...parent.lower];
  await writeFileSynced(join(dir, "lower"), lower.join(":"), 0o644);
  await mkdirMode(join(dir, "work"), 0o700);
  const committed = join(paths.overlayDir(parent.id), "committed");
  if (!(await lstat(committed).catch(() => undefined))) await writeFileSynced(committed, "", 0o600);
  await fsyncPath(dir);
  await fsyncPath(paths.links);
  return { id, link, lower };
}

/** Removes overlay2/<id> and its l/ link. */
export async function removeLayerDir(paths: StorePaths, id: string): Promise<void> {
  if (!LAYER_DIR_RE.test(id)) throw new Error(`refusing to remove overlay2 dir ${JSON.stringify(id)}`);
  const dir = paths.overlayDir(id);
  const link = await readSmall(join(dir, "link")).catch(() => undefined);
  if (link && /^[A-Z2-7]{26}$/.test(link)) await rm(join(paths.links, link), { force: true });
  removeTree(dir);
}
