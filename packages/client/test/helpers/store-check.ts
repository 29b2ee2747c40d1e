/** Consistency checks of a store root written by the pull client (Docker overlay2 layout). */
import { lstat, readdir, readFile, readlink } from "node:fs/promises";
import { join } from "node:path";
import { chainIds, type DiffID, parseDiffID } from "@strata/core";

async function read(p: string): Promise<string | undefined> {
  try {
    return await readFile(p, "utf8");
  } catch {
    return undefined;
  }
}

async function ls(p: string): Promise<string[]> {
  return readdir(p).catch(() => []);
}

/** Returns every inconsistency found (empty when the store is consistent and clean). */
export async function checkStore(root: string): Promise<string[]> {
  const problems: string[] = [];
  const img = join(root, "image", "overlay2");
  const layerdb = join(img, "layerdb", "sha256");
  const links = new Map<string, string>();
  for (const name of await ls(layerdb)) {
    if (!/^[0-9a-f]{64}$/.test(name)) {
      problems.push(`stray layerdb entry ${name}`);
      continue;
    }
    const dir = join(layerdb, name);
    for (const f of ["diff", "size", "cache-id", "tar-split.json.gz"]) if ((await read(join(dir, f))) === undefined) problems.push(`${name}: missing ${f}`);
    const parent = await read(join(dir, "parent"));
    if (parent !== undefined && (await read(join(layerdb, parent.slice(7), "diff"))) === undefined) problems.push(`${name}: parent ${parent} missing`);
    const cacheId = await read(join(dir, "cache-id"));
    if (!cacheId) continue;
    const od = join(root, "overlay2", cacheId);
    if (!(await lstat(join(od, "diff")).catch(() => undefined))?.isDirectory()) problems.push(`${name}: overlay2/${cacheId}/diff missing`);
    const link = await read(join(od, "link"));
    if (!link || !/^[A-Z2-7]{26}$/.test(link)) problems.push(`${name}: bad link ${link}`);
    else {
      links.set(name, link);
      const target = await readlink(join(root, "overlay2", "l", link)).catch(() => undefined);
      if (target !== `../${cacheId}/diff`) problems.push(`${name}: l/${link} -> ${target}`);
    }
    const lower = await read(join(od, "lower"));
    if ((parent === undefined) !== (lower === undefined)) problems.push(`${name}: lower/parent mismatch`);
  }
  // lower chains
  for (const name of await ls(layerdb)) {
    const parent = await read(join(layerdb, name, "parent"));
    const cacheId = await read(join(layerdb, name, "cache-id"));
    if (!parent || !cacheId) continue;
    const lower = await read(join(root, "overlay2", cacheId, "lower"));
    const expected: string[] = [];
    let p: string | undefined = parent;
    while (p) {
      expected.push(`l/${links.get(p.slice(7))}`);
      p = await read(join(layerdb, p.slice(7), "parent"));
    }
    if (lower !== expected.join(":")) problems.push(`${name}: lower ${lower} != ${expected.join(":")}`);
  }
  for (const name of await ls(join(img, "layerdb", "tmp"))) problems.push(`leftover layerdb/tmp/${name}`);
  for (const name of await ls(join(root, "overlay2"))) {
    if (name.startsWith(".")) problems.push(`leftover overlay2/${name}`);
  }
  // images
  const content = join(img, "imagedb", "content", "sha256");
  for (const id of await ls(content)) {
    const cfg = JSON.parse(await readFile(join(content, id), "utf8")) as { rootfs: { diff_ids: string[] } };
    for (const c of chainIds(cfg.rootfs.diff_ids.map((d) => parseDiffID(d) as DiffID))) {
      if ((await read(join(layerdb, c.slice(7), "diff"))) === undefined) problems.push(`image ${id}: layer ${c} missing`);
    }
  }
  const repos = await read(join(img, "repositories.json"));
  if (repos) {
    const parsed = JSON.parse(repos) as { Repositories: Record<string, Record<string, string>> };
    for (const entries of Object.values(parsed.Repositories))
      for (const [k, v] of Object.entries(entries))
        if ((await read(join(content, v.slice(7)))) === undefined) problems.push(`reference ${k} -> missing image ${v}`);
  }
  return problems;
}

/** Every file path (relative) under a dir, sorted. */
export async function listTree(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for (const e of (await readdir(join(dir, prefix), { withFileTypes: true }).catch(() => [])).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    out.push(rel);
    if (e.isDirectory()) out.push(...(await listTree(dir, rel)));
  }
  return out;
}
