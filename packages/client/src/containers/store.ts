/**
 * Containers in the store. Docker keeps a container's filesystem facts in the image store
 * (`image/overlay2/layerdb/mounts/<id>/{mount-id,init-id,parent}`, dir 0755, files 0644, no
 * trailing newline) and everything else (name, image name, config) in `containers/<id>/config.v2.json`,
 * which Strata does not write. Strata keeps the rest in its own file:
 *
 *   <root>/strata/containers.json   (0600, dir 0700, replaced atomically under the store lock)
 *   {"Containers":{"<id>":{"Created":"<RFC 3339>","Image":"sha256:<image id>","ImageName":"<as given>","Name":"<name>"}}}
 *
 * layerdb/mounts is the source of truth for which containers exist; a container missing from
 * containers.json is listed with an empty name.
 */
import { randomBytes } from "node:crypto";
import { mkdir, readdir, readFile, rm, rmdir } from "node:fs/promises";
import { join } from "node:path";
import { type ChainID, type Digest, digestHex, parseChainID } from "@strata/core";
import { fsyncPath, isErrno, mkdirMode, randomId, readSmall, writeFileAtomic, writeFileSynced } from "../store/fsutil.js";
import { loadImage, resolveImage } from "../store/images.js";
import { type Store, sortedJson } from "../store/store.js";
import { setupInitLayer } from "./init.js";
import { createLayerDir, diffDirOfLink, type LayerDirFacts, readLayerDir, removeLayerDir, stackLinks } from "./layers.js";
import { executeMount, isMountPoint, overlayFeatures, unmountPath } from "./mount.js";
import { type MountPlan, planMount } from "./plan.js";
import { lookupInStack } from "./stack.js";

export interface ContainerMeta {
  Name: string;
  Image: string;
  ImageName: string;
  Created: string;
}

export interface Container {
  /** 64 hex. */
  id: string;
  name: string;
  /** Image ID (sha256:...), when known. */
  image?: Digest;
  /** The image argument given to create. */
  imageName?: string;
  created?: string;
  mountId: string;
  initId: string;
  /** chainID of the image's top layer. */
  parent: ChainID;
}

export class ContainerNotFoundError extends Error {
  readonly code = "ENOCONTAINER";
  constructor(what: string) {
    super(`No such container: ${what}`);
    this.name = "ContainerNotFoundError";
  }
}

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

export function strataDir(store: Store): string {
  return join(store.root, "strata");
}

export function containersFile(store: Store): string {
  return join(strataDir(store), "containers.json");
}

export async function readContainerMeta(store: Store): Promise<Record<string, ContainerMeta>> {
  let text: string;
  try {
    text = await readFile(containersFile(store), "utf8");
  } catch (e) {
    if (isErrno(e, "ENOENT")) return {};
    throw e;
  }
  if (!text.trim()) return {};
  return (JSON.parse(text) as { Containers?: Record<string, ContainerMeta> }).Containers ?? {};
}

/** Read-modify-write of containers.json. Caller holds the store lock. */
export async function updateContainerMeta(store: Store, fn: (c: Record<string, ContainerMeta>) => void): Promise<void> {
  const all = await readContainerMeta(store);
  fn(all);
  await mkdir(strataDir(store), { recursive: true, mode: 0o700 });
  await writeFileAtomic(containersFile(store), sortedJson({ Containers: all }), 0o600);
}

/** Every container in layerdb/mounts, with its strata metadata. */
export async function listContainers(store: Store): Promise<Container[]> {
  const meta = await readContainerMeta(store);
  const out: Container[] = [];
  for (const id of (await readdir(store.paths.mounts).catch(() => [] as string[])).sort()) {
    if (!/^[0-9a-f]{64}$/.test(id)) continue;
    const dir = join(store.paths.mounts, id);
    const mountId = await readSmall(join(dir, "mount-id"));
    const initId = await readSmall(join(dir, "init-id"));
    const parent = await readSmall(join(dir, "parent"));
    if (!mountId || !parent) continue;
    const m = meta[id];
    out.push({
      id,
      name: m?.Name ?? "",
      image: m?.Image ? (m.Image as Digest) : undefined,
      imageName: m?.ImageName,
      created: m?.Created,
      mountId,
      initId: initId ?? `${mountId}-init`,
      parent: parseChainID(parent),
    });
  }
  return out;
}

/** Resolves NAME|ID: an exact name, a full ID, or a unique ID prefix. */
export async function resolveContainer(store: Store, arg: string): Promise<Container> {
  const all = await listContainers(store);
  const want = arg.replace(/^\//, "");
  const byName = all.find((c) => c.name === want);
  if (byName) return byName;
  const byId = all.find((c) => c.id === arg);
  if (byId) return byId;
  if (/^[0-9a-f]{1,63}$/.test(arg)) {
    const hits = all.filter((c) => c.id.startsWith(arg));
    if (hits.length === 1) return hits[0];
    if (hits.length > 1) throw new Error(`multiple containers match ID prefix ${arg}`);
  }
  throw new ContainerNotFoundError(arg);
}

export function mergedDir(store: Store, c: Pick<Container, "mountId">): string {
  return join(store.paths.overlayDir(c.mountId), "merged");
}

/** The container's layer dirs: rw upper, and the lower diff dirs (init first, then the image, nearest first). */
export async function containerLayers(store: Store, c: Container): Promise<{ rw: LayerDirFacts; upperDir: string; workDir: string; lowerDirs: string[] }> {
  const rw = await readLayerDir(store.paths, c.mountId);
  const lowerDirs: string[] = [];
  for (const l of rw.lower) lowerDirs.push(await diffDirOfLink(store.paths, l.replace(/^l\//, "")));
  return { rw, upperDir: join(store.paths.overlayDir(c.mountId), "diff"), workDir: join(store.paths.overlayDir(c.mountId), "work"), lowerDirs };
}

async function topLayerDir(store: Store, imageArg: string): Promise<{ image: Digest; top: LayerDirFacts; chainId: ChainID }> {
  const { id } = await resolveImage(store, imageArg);
  const img = await loadImage(store, id);
  if (!img) throw new Error(`No such image: ${imageArg}`);
  const chainId = img.chainIds[img.chainIds.length - 1];
  if (!chainId) throw new Error(`image ${imageArg} has no layers`);
  const rec = await store.getLayer(chainId);
  if (!rec) throw new Error(`layer ${chainId} of image ${imageArg} is missing from the store`);
  return { image: id, top: await readLayerDir(store.paths, rec.cacheId), chainId };
}

function randomName(): string {
  return `strata_${randomBytes(6).toString("hex")}`;
}

/** True when this process may try to mount overlays (root). */
function canMount(): boolean {
  return process.getuid?.() === 0;
}

/** mount(2) failures that mean "overlay mounts are impossible here", not "this mount is wrong". */
function mountImpossible(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException).code;
  return code === "EPERM" || code === "ENODEV" || code === "ENOTSUP" || code === "EOPNOTSUPP" || code === "EACCES";
}

/**
 * Fills the -init layer's diff dir. As root the init layer is mounted over the image and set up
 * through the merged view, exactly like Docker (the kernel then leaves its overlay xattrs on the
 * diff dir). Where overlay mounts are impossible (not root, or the kernel refuses), the entries
 * are written straight into the diff dir, skipping paths the image already has.
 */
async function populateInit(store: Store, init: LayerDirFacts): Promise<void> {
  const dir = store.paths.overlayDir(init.id);
  if (canMount()) {
    const target = join(dir, "merged");
    await mkdirMode(target, 0o700);
    const plan = planMount({ features: overlayFeatures(), root: store.root, lowerLinks: stackLinks(init).slice(1), upper: init.id, target });
    let mounted = false;
    try {
      executeMount(plan);
      mounted = true;
    } catch (e) {
      await rmdir(target).catch(() => {});
      if (!mountImpossible(e)) throw e;
    }
    if (mounted) {
      try {
        setupInitLayer(target);
      } finally {
        unmountPath(target);
        await rmdir(target).catch(() => {});
      }
      return;
    }
  }
  const lowerDirs: string[] = [];
  for (const l of init.lower) lowerDirs.push(await diffDirOfLink(store.paths, l.replace(/^l\//, "")));
  setupInitLayer(join(dir, "diff"), (rel) => lookupInStack(lowerDirs, rel) !== undefined);
}

export interface CreateOptions {
  name?: string;
}

/** `strata create IMAGE [--name NAME]`. */
export async function createContainer(store: Store, imageArg: string, opts: CreateOptions = {}): Promise<Container> {
  if (opts.name !== undefined && !NAME_RE.test(opts.name.replace(/^\//, ""))) {
    throw new Error(`Invalid container name (${opts.name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
  }
  return store.withLock(async () => {
    const { image, top, chainId } = await topLayerDir(store, imageArg);
    const existing = await listContainers(store);
    const name = opts.name?.replace(/^\//, "") ?? randomName();
    const clash = existing.find((c) => c.name === name);
    if (clash) throw new Error(`Conflict. The container name "/${name}" is already in use by container "${clash.id}"`);
    const id = randomId();
    const mountId = randomId();
    const initId = `${mountId}-init`;
    // Both mounts (the -init setup and the container) must be plannable before anything is made.
    const placeholder = "A".repeat(26);
    const imageLinks = stackLinks(top);
    planMount({ features: overlayFeatures(), root: store.root, lowerLinks: imageLinks, upper: initId, target: join(store.paths.overlayDir(initId), "merged") });
    planMount({
      features: overlayFeatures(),
      root: store.root,
      lowerLinks: [placeholder, ...imageLinks],
      upper: mountId,
      target: join(store.paths.overlayDir(mountId), "merged"),
    });
    let init: LayerDirFacts | undefined;
    let rw: LayerDirFacts | undefined;
    try {
      init = await createLayerDir(store.paths, initId, top);
      await populateInit(store, init);
      rw = await createLayerDir(store.paths, mountId, init);
      const mdir = join(store.paths.mounts, id);
      await mkdir(store.paths.mounts, { recursive: true, mode: 0o755 });
      await mkdirMode(mdir, 0o755);
      await writeFileSynced(join(mdir, "mount-id"), mountId, 0o644);
      await writeFileSynced(join(mdir, "init-id"), initId, 0o644);
      await writeFileSynced(join(mdir, "parent"), chainId, 0o644);
      await fsyncPath(mdir);
      await fsyncPath(store.paths.mounts);
    } catch (e) {
      await rm(join(store.paths.mounts, id), { recursive: true, force: true });
      if (rw) await removeLayerDir(store.paths, mountId);
      if (init) await removeLayerDir(store.paths, initId);
      throw e;
    }
    const created = new Date().toISOString();
    await updateContainerMeta(store, (all) => {
      all[id] = { Name: name, Image: image, ImageName: imageArg, Created: created };
    });
    return { id, name, image, imageName: imageArg, created, mountId, initId, parent: chainId };
  });
}

/** The plan for mounting a container at overlay2/<mount-id>/merged. */
export async function planContainerMount(store: Store, c: Container): Promise<MountPlan> {
  const rw = await readLayerDir(store.paths, c.mountId);
  return planMount({ features: overlayFeatures(), root: store.root, lowerLinks: stackLinks(rw).slice(1), upper: c.mountId, target: mergedDir(store, c) });
}

/** `strata mount NAME|ID`: mounts (when not mounted yet) and returns the merged dir. */
export async function mountContainer(store: Store, arg: string): Promise<string> {
  return store.withLock(async () => {
    const c = await resolveContainer(store, arg);
    const target = mergedDir(store, c);
    if (isMountPoint(target)) return target;
    const plan = await planContainerMount(store, c);
    await mkdirMode(target, 0o700);
    executeMount(plan);
    return target;
  });
}

/** `strata umount NAME|ID`: unmounts and removes the merged dir. Returns false when it was not mounted. */
export async function unmountContainer(store: Store, arg: string): Promise<boolean> {
  return store.withLock(async () => {
    const c = await resolveContainer(store, arg);
    const target = mergedDir(store, c);
    if (!isMountPoint(target)) return false;
    unmountPath(target);
    await rmdir(target).catch(() => {});
    return true;
  });
}

export function isContainerMounted(store: Store, c: Container): boolean {
  return isMountPoint(mergedDir(store, c));
}

/** `strata rm NAME|ID`: unmounts, removes the rw and -init layers, the mounts entry and the name. */
export async function removeContainer(store: Store, arg: string): Promise<Container> {
  return store.withLock(async () => {
    const c = await resolveContainer(store, arg);
    const target = mergedDir(store, c);
    if (isMountPoint(target)) unmountPath(target);
    const initMerged = join(store.paths.overlayDir(c.initId), "merged");
    if (isMountPoint(initMerged)) unmountPath(initMerged);
    if (isMountPoint(target) || isMountPoint(initMerged)) throw new Error(`container ${c.id} is still mounted`);
    await removeLayerDir(store.paths, c.mountId);
    await removeLayerDir(store.paths, c.initId);
    await rm(join(store.paths.mounts, c.id), { recursive: true, force: true });
    await fsyncPath(store.paths.mounts).catch(() => {});
    await updateContainerMeta(store, (all) => {
      delete all[c.id];
    });
    return c;
  });
}

// ---------------------------------------------------------------------------------------
// Read-only image mounts: <root>/strata/ro/<image hex>/merged (and an empty `pad` dir for
// one-layer images, since overlayfs needs two lower dirs when there is no upper dir).

export function readOnlyTarget(store: Store, image: Digest): string {
  return join(strataDir(store), "ro", digestHex(image), "merged");
}

export async function planImageMount(store: Store, imageArg: string): Promise<{ image: Digest; plan: MountPlan }> {
  const { image, top } = await topLayerDir(store, imageArg);
  const target = readOnlyTarget(store, image);
  const links = stackLinks(top);
  const plan = planMount({ features: overlayFeatures(), root: store.root, lowerLinks: links, target, padLower: join(target, "..", "pad") });
  return { image, plan };
}

/** `strata mount --read-only IMAGE`: returns the mount point. */
export async function mountImageReadOnly(store: Store, imageArg: string): Promise<string> {
  return store.withLock(async () => {
    const { plan } = await planImageMount(store, imageArg);
    if (isMountPoint(plan.target)) return plan.target;
    await mkdir(join(strataDir(store), "ro"), { recursive: true, mode: 0o700 });
    await mkdirMode(join(plan.target, ".."), 0o700);
    await mkdirMode(plan.target, 0o755);
    await mkdirMode(join(plan.target, "..", "pad"), 0o755);
    executeMount(plan);
    return plan.target;
  });
}

/** `strata umount --read-only IMAGE`. Returns false when it was not mounted. */
export async function unmountImageReadOnly(store: Store, imageArg: string): Promise<boolean> {
  return store.withLock(async () => {
    const { id } = await resolveImage(store, imageArg);
    const target = readOnlyTarget(store, id);
    const mounted = isMountPoint(target);
    if (mounted) unmountPath(target);
    if (isMountPoint(target)) throw new Error(`${target} is still mounted`);
    for (const d of [target, join(target, "..", "pad"), join(target, "..")]) await rmdir(d).catch(() => {});
    return mounted;
  });
}
