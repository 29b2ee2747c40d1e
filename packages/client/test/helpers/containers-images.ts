/**
 * Test helpers for containers: images written into a store through the layer engine and store
 * API (exactly what a pull does after download), tree snapshots for comparing views, an overlay
 * capability probe, and teardown that unmounts everything under a test root.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { type ChainID, chainIdOf, type DiffID, parseReference } from "@strata/core";
import { unpackLayer } from "../../src/layer/unpack.js";
import { referenceKeys } from "../../src/store/images.js";
import { Store } from "../../src/store/store.js";
import { buildTar, fileTypeOf, type TarEntrySpec } from "../layer-helpers.js";

export type { TarEntrySpec };

export function tempRoot(tag: string): string {
  return fs.mkdtempSync(join(tmpdir(), `strata-${tag}-`));
}

/** Stores one layer tar (on top of `parent`) the way a pull does; returns its chainID. */
export async function addLayer(store: Store, tar: Buffer, parent: ChainID | undefined): Promise<{ chainId: ChainID; diffId: DiffID }> {
  const p = await store.prepareLayer();
  const r = await unpackLayer(Readable.from([tar]), { diffDir: p.diffDir, tarSplitPath: p.tarSplitPath });
  const chainId = chainIdOf(parent, r.diffId);
  await store.withLock(() => store.commitLayer(p, { chainId, diffId: r.diffId, parent, size: r.size }));
  return { chainId, diffId: r.diffId };
}

/** Writes an image (one tar per layer, bottom first) with a config and a repositories.json tag. */
export async function addImage(
  store: Store,
  ref: string,
  layers: TarEntrySpec[][] | Buffer[],
): Promise<{ id: string; diffIds: DiffID[]; chainIds: ChainID[] }> {
  const diffIds: DiffID[] = [];
  const chainIds: ChainID[] = [];
  let parent: ChainID | undefined;
  for (const l of layers) {
    const tar = Buffer.isBuffer(l) ? l : buildTar(l);
    const r = await addLayer(store, tar, parent);
    diffIds.push(r.diffId);
    chainIds.push(r.chainId);
    parent = r.chainId;
  }
  const config = {
    architecture: "amd64",
    os: "linux",
    config: { Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], Cmd: ["/bin/sh"] },
    created: "2023-11-14T22:13:20Z",
    history: diffIds.map((_d, i) => ({ created: "2023-11-14T22:13:20Z", created_by: `layer ${i + 1}` })),
    rootfs: { type: "layers", diff_ids: diffIds },
  };
  const id = await store.withLock(async () => {
    const id = await store.putImageConfig(Buffer.from(JSON.stringify(config)));
    const { repo, key } = referenceKeys(parseReference(ref));
    await store.updateRepositories((r) => {
      r[repo] = r[repo] ?? {};
      r[repo][key] = id;
    });
    return id;
  });
  return { id, diffIds, chainIds };
}

function devMajor(d: bigint): number {
  return Number(((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn));
}
function devMinor(d: bigint): number {
  return Number((d & 0xffn) | ((d >> 12n) & ~0xffn));
}

/**
 * A tree as lines "path type mode uid:gid detail mtime-seconds" sorted by path: detail is the
 * sha256 of a file's content, a symlink's target or a device's major:minor. The root's mtime is
 * left out (a container's root is its own upper dir).
 */
export function snapshot(root: string, opts: { mtimes?: boolean; ignoreMtime?: ReadonlySet<string> } = {}): string[] {
  const lines: string[] = [];
  const walk = (rel: string): void => {
    const abs = rel ? join(root, rel) : root;
    const st = fs.lstatSync(abs, { bigint: true });
    const type = fileTypeOf(st);
    let detail = "-";
    if (type === "file") detail = createHash("sha256").update(fs.readFileSync(abs)).digest("hex").slice(0, 16);
    else if (type === "symlink") detail = fs.readlinkSync(abs);
    else if (type === "char" || type === "block") detail = `${devMajor(st.rdev)}:${devMinor(st.rdev)}`;
    const mtime = opts.mtimes === false || !rel || opts.ignoreMtime?.has(rel) ? "-" : String(st.mtimeNs / 1000000000n);
    lines.push(`${rel || "."} ${type} ${(Number(st.mode) & 0o7777).toString(8)} ${st.uid}:${st.gid} ${detail} ${mtime}`);
    if (type === "dir") for (const n of fs.readdirSync(abs).sort()) walk(rel ? `${rel}/${n}` : n);
  };
  walk("");
  return lines;
}

/**
 * Paths whose mtime is the time a container was created: the -init layer's entries and the
 * directories they are created in (copied up when the image has them).
 */
export const INIT_MTIME_PATHS: ReadonlySet<string> = new Set([
  ".dockerenv",
  "dev",
  "dev/console",
  "dev/pts",
  "dev/shm",
  "etc",
  "etc/hostname",
  "etc/hosts",
  "etc/mtab",
  "etc/resolv.conf",
  "proc",
  "sys",
]);

/** Whether overlayfs can be mounted here (root + kernel support); the reason when not. */
export function overlayProbe(): { ok: true } | { ok: false; reason: string } {
  if (process.getuid?.() !== 0) return { ok: false, reason: "not running as root" };
  const d = fs.mkdtempSync(join(tmpdir(), "strata-ovl-probe-"));
  try {
    for (const s of ["l1", "l2", "u", "w", "m"]) fs.mkdirSync(join(d, s));
    execFileSync("mount", ["-t", "overlay", "overlay", "-o", `lowerdir=${d}/l1:${d}/l2,upperdir=${d}/u,workdir=${d}/w`, `${d}/m`], { stdio: "pipe" });
    execFileSync("umount", [`${d}/m`]);
    return { ok: true };
  } catch (e) {
    return { ok: false, reason: `mount -t overlay failed: ${(e as { stderr?: Buffer }).stderr?.toString().trim() || (e as Error).message}` };
  } finally {
    fs.rmSync(d, { recursive: true, force: true });
  }
}

/** Unmounts every mount point under `root` (deepest first, lazily), then removes `root`. */
export function cleanupRoot(root: string): void {
  const text = fs.readFileSync("/proc/self/mountinfo", "utf8");
  const targets = text
    .split("\n")
    .filter(Boolean)
    .map((l) => l.split(" ")[4].replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(Number.parseInt(o, 8))))
    .filter((t) => t === root || t.startsWith(`${root}/`))
    .sort((a, b) => b.length - a.length);
  for (const t of targets) {
    try {
      execFileSync("umount", ["-l", t], { stdio: "pipe" });
    } catch {
      // already gone
    }
  }
  fs.rmSync(root, { recursive: true, force: true });
}

export async function openStore(root: string): Promise<Store> {
  return Store.open(root);
}
