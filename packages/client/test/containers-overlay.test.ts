// Containers on real overlayfs (run as root). Reproduces the overlayfs experiments of the design
// notes on a Strata container and checks the store against Docker's layout (golden fixture).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { verifyImage, verifyLayer } from "../src/commands/verify.js";
import { formatChanges, overlayChanges } from "../src/containers/changes.js";
import { commitContainer, EMPTY_LAYER_DIFF_ID } from "../src/containers/commit.js";
import { exportLayers, exportToDir, exportToTar } from "../src/containers/export.js";
import { isMountPoint } from "../src/containers/mount.js";
import { getxattr } from "../src/native.js";
import {
  containerLayers,
  containersFile,
  createContainer,
  listContainers,
  mountContainer,
  mountImageReadOnly,
  planContainerMount,
  removeContainer,
  unmountContainer,
  unmountImageReadOnly,
} from "../src/containers/store.js";
import { loadImage } from "../src/store/images.js";
import type { Store } from "../src/store/store.js";
import { addImage, cleanupRoot, INIT_MTIME_PATHS, openStore, overlayProbe, snapshot, type TarEntrySpec, tempRoot } from "./helpers/containers-images.js";
import { goldenTree, listTree } from "./layer-helpers.js";

interface Cfg {
  config: unknown;
  rootfs: { diff_ids: string[] };
  history: Array<{ created_by?: string; comment?: string; author?: string; empty_layer?: boolean }>;
}
async function configOf(store: Store, id: string): Promise<Cfg> {
  const raw = await store.getImageConfig(id as never);
  assert.ok(raw, `config ${id}`);
  return JSON.parse(raw.toString("utf8")) as Cfg;
}

const probe = overlayProbe();
if (!probe.ok) {
  process.stderr.write(`\n*** SKIPPING containers-overlay tests: ${probe.reason} ***\n\n`);
}
const skip = probe.ok ? false : `overlay mounts impossible here: ${probe.reason}`;

const d = (name: string): TarEntrySpec => ({ name, type: "5", mode: 0o755 });
const f = (name: string, data: string, extra: Partial<TarEntrySpec> = {}): TarEntrySpec => ({ name, type: "0", data, mode: 0o644, ...extra });

const LAYER1: TarEntrySpec[] = [
  d("bin/"),
  f("bin/tool", "#!/bin/sh\necho tool\n", { mode: 0o755 }),
  { name: "bin/tool-link", type: "1", linkname: "bin/tool", mode: 0o755 },
  d("data/"),
  f("data/a.txt", "A\n"),
  f("data/b.txt", "B\n"),
  d("etc/"),
  f("etc/config.conf", "v1\n"),
  { name: "etc/link", type: "2", linkname: "config.conf", mode: 0o777 },
  f("etc/remove-me", "x\n"),
  d("gone/"),
  f("gone/x.txt", "gone\n"),
  d("home/"),
  { name: "home/user/", type: "5", mode: 0o750, uid: 1000, gid: 1000 },
  f("home/user/owned.txt", "mine\n", { mode: 0o640, uid: 1000, gid: 1000 }),
  d("keep/"),
  f("keep/k.txt", "k\n"),
  d("mvdir/"),
  f("mvdir/f.txt", "F\n"),
  d("mvdir/sub/"),
  f("mvdir/sub/g.txt", "G\n"),
  d("opq/"),
  f("opq/old1.txt", "old\n"),
  d("run/"),
  { name: "run/fifo", type: "6", mode: 0o600 },
];
const LAYER2: TarEntrySpec[] = [
  d("data/"),
  f("data/c.txt", "C\n"),
  d("etc/"),
  f("etc/.wh.remove-me", ""),
  d("opq/"),
  f("opq/.wh..wh..opq", ""),
  f("opq/new.txt", "new\n"),
];
const LAYER3: TarEntrySpec[] = [f(".wh.gone", ""), d("etc/"), f("etc/config.conf", "v3\n", { mode: 0o600 })];

describe("containers on overlayfs", { skip }, () => {
  let root = "";
  let store: Store;
  let base: { id: string; chainIds: string[] };

  before(async () => {
    root = tempRoot("containers");
    store = await openStore(root);
    base = await addImage(store, "test/base:v1", [LAYER1, LAYER2, LAYER3]);
  });
  after(() => {
    if (root) cleanupRoot(root);
  });

  test("create writes Docker's layerdb/mounts entry, -init layer and rw layer", async () => {
    const c = await createContainer(store, "test/base:v1", { name: "layout" });
    assert.match(c.id, /^[0-9a-f]{64}$/);
    const mdir = join(root, "image/overlay2/layerdb/mounts", c.id);
    assert.equal(fs.statSync(mdir).mode & 0o7777, 0o755);
    const mountId = fs.readFileSync(join(mdir, "mount-id"), "utf8");
    assert.match(mountId, /^[0-9a-f]{64}$/);
    assert.notEqual(mountId, c.id);
    assert.equal(fs.readFileSync(join(mdir, "init-id"), "utf8"), `${mountId}-init`);
    assert.equal(fs.readFileSync(join(mdir, "parent"), "utf8"), base.chainIds[2]);
    for (const n of ["mount-id", "init-id", "parent"]) assert.equal(fs.statSync(join(mdir, n)).mode & 0o7777, 0o644);

    const ov = join(root, "overlay2");
    const topCache = fs.readFileSync(join(root, "image/overlay2/layerdb/sha256", base.chainIds[2].slice(7), "cache-id"), "utf8");
    const topLink = fs.readFileSync(join(ov, topCache, "link"), "utf8");
    const topLower = fs.readFileSync(join(ov, topCache, "lower"), "utf8");
    assert.ok(fs.existsSync(join(ov, topCache, "committed")), "image top layer gets `committed` once the -init layer is on it");

    const init = join(ov, `${mountId}-init`);
    const initLink = fs.readFileSync(join(init, "link"), "utf8");
    assert.match(initLink, /^[A-Z2-7]{26}$/);
    assert.equal(fs.readlinkSync(join(ov, "l", initLink)), `../${mountId}-init/diff`);
    assert.equal(fs.readFileSync(join(init, "lower"), "utf8"), `l/${topLink}:${topLower}`);
    assert.equal(fs.statSync(init).mode & 0o7777, 0o710);
    assert.equal(fs.statSync(join(init, "diff")).mode & 0o7777, 0o755);
    assert.equal(fs.statSync(join(init, "work")).mode & 0o7777, 0o700);
    assert.equal(fs.statSync(join(init, "committed")).mode & 0o7777, 0o600);
    assert.equal(fs.statSync(join(init, "committed")).size, 0);
    assert.ok(!fs.existsSync(join(init, "merged")));

    const rw = join(ov, mountId);
    const rwLink = fs.readFileSync(join(rw, "link"), "utf8");
    assert.equal(fs.readlinkSync(join(ov, "l", rwLink)), `../${mountId}/diff`);
    assert.equal(fs.readFileSync(join(rw, "lower"), "utf8"), `l/${initLink}:l/${topLink}:${topLower}`);
    assert.ok(!fs.existsSync(join(rw, "committed")));
    assert.equal(fs.statSync(rw).mode & 0o7777, 0o710);
    assert.equal(fs.statSync(join(rw, "diff")).mode & 0o7777, 0o755);
    assert.equal(fs.statSync(join(rw, "work")).mode & 0o7777, 0o700);
    assert.deepEqual(fs.readdirSync(join(rw, "diff")), []);

    // The -init tree is exactly the golden fixture's `init` rows (path, type, mode, owner, size,
    // target, rdev, nlink); mtimes and kernel overlay xattrs are per run.
    const got = listTree(join(init, "diff")).map((r) => r.slice(0, 9).join("\t"));
    const want = goldenTree("init").map((r) => r.slice(0, 9).join("\t"));
    assert.deepEqual(got, want);

    // the name lives in strata/containers.json
    const meta = JSON.parse(fs.readFileSync(containersFile(store), "utf8"));
    assert.equal(meta.Containers[c.id].Name, "layout");
    assert.equal(meta.Containers[c.id].Image, base.id);
    assert.equal(fs.statSync(containersFile(store)).mode & 0o7777, 0o600);
    await assert.rejects(createContainer(store, "test/base:v1", { name: "layout" }), /already in use/);
  });

  test("copy-on-write: reads, copy-up, whiteouts, dir delete, dir rename, opaque dirs, new files; diff reports each", async () => {
    const c = await createContainer(store, "test/base:v1", { name: "cow" });
    const m = await mountContainer(store, "cow");
    assert.equal(m, join(root, "overlay2", c.mountId, "merged"));
    assert.ok(isMountPoint(m));
    assert.equal(await mountContainer(store, c.id.slice(0, 12)), m, "mounting again returns the same mount point");
    const { upperDir, lowerDirs } = await containerLayers(store, c);
    const [, l3, l2, l1] = lowerDirs; // init, layer3, layer2, layer1

    // reads through all layers
    assert.equal(fs.readFileSync(join(m, "data/a.txt"), "utf8"), "A\n");
    assert.equal(fs.readFileSync(join(m, "data/c.txt"), "utf8"), "C\n");
    assert.equal(fs.readFileSync(join(m, "etc/config.conf"), "utf8"), "v3\n");
    assert.equal(fs.statSync(join(m, "etc/config.conf")).mode & 0o777, 0o600);
    assert.equal(fs.readFileSync(join(m, "etc/link"), "utf8"), "v3\n");
    assert.equal(fs.readFileSync(join(m, "bin/tool-link"), "utf8"), "#!/bin/sh\necho tool\n");
    assert.equal(fs.statSync(join(m, "home/user/owned.txt")).uid, 1000);
    assert.ok(!fs.existsSync(join(m, "etc/remove-me")), "whiteout from layer 2");
    assert.ok(!fs.existsSync(join(m, "gone")), "directory whiteout from layer 3");
    assert.deepEqual(fs.readdirSync(join(m, "opq")), ["new.txt"], "opaque dir of layer 2 hides layer 1's opq/old1.txt");
    assert.ok(fs.lstatSync(join(m, "run/fifo")).isFIFO());
    for (const p of [".dockerenv", "dev/console", "etc/hosts", "etc/hostname", "etc/resolv.conf"]) assert.ok(fs.statSync(join(m, p)).isFile(), p);
    assert.equal(fs.readlinkSync(join(m, "etc/mtab")), "/proc/mounts");
    assert.deepEqual(fs.readdirSync(upperDir), [], "reading copies nothing up");

    // write a lower file: copy-up
    fs.writeFileSync(join(m, "data/a.txt"), "A2\n");
    assert.equal(fs.readFileSync(join(m, "data/a.txt"), "utf8"), "A2\n");
    assert.equal(fs.readFileSync(join(upperDir, "data/a.txt"), "utf8"), "A2\n");
    assert.equal(fs.readFileSync(join(l1, "data/a.txt"), "utf8"), "A\n", "lower layer unchanged");

    // delete a lower file: 0:0 whiteout in the upper dir, hidden in the merged view
    fs.unlinkSync(join(m, "data/b.txt"));
    assert.ok(!fs.existsSync(join(m, "data/b.txt")));
    const wh = fs.lstatSync(join(upperDir, "data/b.txt"));
    assert.ok(wh.isCharacterDevice());
    assert.equal(wh.rdev, 0);
    assert.equal(fs.readFileSync(join(l1, "data/b.txt"), "utf8"), "B\n");

    // delete a directory
    fs.rmSync(join(m, "keep"), { recursive: true });
    assert.ok(!fs.existsSync(join(m, "keep")));
    assert.ok(fs.lstatSync(join(upperDir, "keep")).isCharacterDevice());
    assert.ok(fs.existsSync(join(l1, "keep/k.txt")));

    // rename a lower directory: rename(2) is EXDEV without redirect_dir, so tools copy + delete
    assert.throws(() => fs.renameSync(join(m, "mvdir"), join(m, "mvdir2")), { code: "EXDEV" });
    execFileSync("mv", [join(m, "mvdir"), join(m, "mvdir2")]);
    assert.ok(!fs.existsSync(join(m, "mvdir")));
    assert.equal(fs.readFileSync(join(m, "mvdir2/sub/g.txt"), "utf8"), "G\n");
    assert.ok(fs.lstatSync(join(upperDir, "mvdir")).isCharacterDevice());
    assert.ok(fs.existsSync(join(l1, "mvdir/f.txt")));

    // new files and dirs
    fs.mkdirSync(join(m, "newdir"));
    fs.writeFileSync(join(m, "newdir/new.txt"), "hello\n");
    fs.writeFileSync(join(m, "etc/new.conf"), "n\n");
    assert.equal(fs.readFileSync(join(upperDir, "newdir/new.txt"), "utf8"), "hello\n");

    // replace a lower directory: the new one is opaque and hides the lower contents
    fs.rmSync(join(m, "opq"), { recursive: true });
    fs.mkdirSync(join(m, "opq"));
    fs.writeFileSync(join(m, "opq/fresh.txt"), "fresh\n");
    assert.deepEqual(fs.readdirSync(join(m, "opq")), ["fresh.txt"]);
    assert.equal(getxattr(join(upperDir, "opq"), "trusted.overlay.opaque")?.toString(), "y", "the kernel marked the directory opaque");
    assert.ok(fs.existsSync(join(l2, "opq/new.txt")));
    assert.ok(fs.existsSync(join(l3, "etc/config.conf")));

    // Docker's rules (naive diff of the container tree against its parent's)
    const changes = formatChanges(overlayChanges(lowerDirs, upperDir)).split("\n");
    assert.deepEqual(changes, [
      "C /data",
      "C /data/a.txt",
      "D /data/b.txt",
      "C /etc",
      "A /etc/new.conf",
      "D /keep",
      "D /mvdir",
      "A /mvdir2",
      "A /mvdir2/f.txt",
      "A /mvdir2/sub",
      "A /mvdir2/sub/g.txt",
      "A /newdir",
      "A /newdir/new.txt",
      "C /opq",
      "A /opq/fresh.txt",
      "D /opq/new.txt",
    ]);
  });

  test("commit adds one layer; a fresh container of the committed image shows the same view", async () => {
    const c1 = (await listContainers(store)).find((c) => c.name === "cow");
    assert.ok(c1);
    const m1 = await mountContainer(store, "cow");
    const before = snapshot(m1, { ignoreMtime: INIT_MTIME_PATHS });
    const r = await commitContainer(store, "cow", "test/committed:v1", { message: "my changes", author: "Tester <t@example.com>" });
    assert.ok(r.layer);
    assert.notEqual(r.diffId, EMPTY_LAYER_DIFF_ID);

    const img = await loadImage(store, r.imageId);
    assert.ok(img);
    const cfg = await configOf(store, r.imageId);
    const parentCfg = await configOf(store, base.id);
    assert.deepEqual(cfg.rootfs.diff_ids, [...parentCfg.rootfs.diff_ids, r.diffId]);
    assert.deepEqual(cfg.config, parentCfg.config, "runtime config is inherited");
    const h = cfg.history.at(-1);
    assert.equal(h?.created_by, "strata commit");
    assert.equal(h?.comment, "my changes");
    assert.equal(h?.author, "Tester <t@example.com>");
    assert.equal(h?.empty_layer, undefined);
    assert.equal(cfg.history.length, 4);
    assert.deepEqual(img.repoTags, ["test/committed:v1"]);
    const layerDir = join(root, "image/overlay2/layerdb/sha256", (r.chainId as string).slice(7));
    assert.equal(fs.readFileSync(join(layerDir, "parent"), "utf8"), base.chainIds[2]);
    assert.equal(fs.readFileSync(join(layerDir, "diff"), "utf8"), r.diffId);
    assert.ok(fs.existsSync(join(layerDir, "tar-split.json.gz")));
    const metaDir = join(root, "image/overlay2/imagedb/metadata/sha256", r.imageId.slice(7));
    assert.equal(fs.readFileSync(join(metaDir, "parent"), "utf8"), base.id);
    assert.match(fs.readFileSync(join(metaDir, "lastUpdated"), "utf8"), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
    // the committed layer rebuilds to its diffID from diff dir + tar-split
    const check = await verifyLayer(store, r.chainId as never);
    assert.ok(check.ok, check.error);
    // the whiteouts and the opaque dir came back as overlay whiteouts in the new layer's diff dir
    const newDiff = join(root, "overlay2", r.layer.cacheId, "diff");
    assert.ok(fs.lstatSync(join(newDiff, "data/b.txt")).isCharacterDevice());
    assert.equal(getxattr(join(newDiff, "opq"), "trusted.overlay.opaque")?.toString(), "y", "the kernel marked the directory opaque");

    await createContainer(store, "test/committed:v1", { name: "fresh" });
    const m2 = await mountContainer(store, "fresh");
    assert.deepEqual(snapshot(m2, { ignoreMtime: INIT_MTIME_PATHS }), before);
    const c2 = (await listContainers(store)).find((c) => c.name === "fresh");
    assert.ok(c2);
    const l2 = await containerLayers(store, c2);
    assert.deepEqual([...overlayChanges(l2.lowerDirs, l2.upperDir)], [], "a fresh container has no changes");

    // committing a container without changes adds no layer (empty_layer history entry)
    const e = await commitContainer(store, "fresh", "test/committed:empty");
    assert.equal(e.diffId, EMPTY_LAYER_DIFF_ID);
    assert.equal(e.layer, undefined);
    const ecfg = await configOf(store, e.imageId);
    assert.deepEqual(ecfg.rootfs.diff_ids, cfg.rootfs.diff_ids);
    assert.equal(ecfg.history.at(-1)?.empty_layer, true);
    assert.equal(ecfg.history.length, 5);
  });

  test("export of an image equals its read-only mount; export of a container equals its merged view", async () => {
    const ro = await mountImageReadOnly(store, "test/base:v1");
    assert.equal(ro, join(root, "strata/ro", base.id.slice(7), "merged"));
    assert.throws(() => fs.writeFileSync(join(ro, "x"), "x"), { code: "EROFS" });
    const { layers } = await exportLayers(store, "test/base:v1");
    assert.equal(layers.length, 3);
    const outDir = join(root, "export-image");
    exportToDir(layers, outDir);
    // the export root is 0700 (documented); everything below it equals the mount
    assert.equal(fs.statSync(outDir).mode & 0o7777, 0o700);
    assert.deepEqual(snapshot(outDir).slice(1), snapshot(ro).slice(1));
    const tarFile = join(root, "export-image.tar");
    await exportToTar(layers, tarFile);
    const fromTar = join(root, "export-image-tar");
    fs.mkdirSync(fromTar);
    execFileSync("tar", ["-xpf", tarFile, "-C", fromTar, "--numeric-owner"]);
    assert.deepEqual(snapshot(fromTar), snapshot(ro));
    assert.equal(await unmountImageReadOnly(store, "test/base:v1"), true);
    assert.ok(!isMountPoint(ro));

    const m = await mountContainer(store, "cow");
    const c = await exportLayers(store, "cow");
    assert.equal(c.kind, "container");
    const cDir = join(root, "export-cow");
    exportToDir(c.layers, cDir);
    assert.deepEqual(snapshot(cDir).slice(1), snapshot(m).slice(1));
    const cTar = join(root, "export-cow.tar");
    await exportToTar(c.layers, cTar);
    const cFromTar = join(root, "export-cow-tar");
    fs.mkdirSync(cFromTar);
    execFileSync("tar", ["-xpf", cTar, "-C", cFromTar, "--numeric-owner"]);
    assert.deepEqual(snapshot(cFromTar), snapshot(m));
  });

  test("two containers of one image are isolated; the image's layers are never modified", async () => {
    await createContainer(store, "test/base:v1", { name: "iso-a" });
    await createContainer(store, "test/base:v1", { name: "iso-b" });
    const a = await mountContainer(store, "iso-a");
    const b = await mountContainer(store, "iso-b");
    fs.writeFileSync(join(a, "data/a.txt"), "changed in a\n");
    fs.unlinkSync(join(a, "etc/config.conf"));
    fs.writeFileSync(join(a, "only-a"), "a\n");
    assert.equal(fs.readFileSync(join(b, "data/a.txt"), "utf8"), "A\n");
    assert.equal(fs.readFileSync(join(b, "etc/config.conf"), "utf8"), "v3\n");
    assert.ok(!fs.existsSync(join(b, "only-a")));
    const img = await loadImage(store, base.id as never);
    assert.ok(img);
    const v = await verifyImage(store, img);
    assert.ok(v.ok, JSON.stringify(v.layers.filter((l) => !l.ok)));
  });

  test("ps lists containers; umount and rm remove what create made", async () => {
    const before = new Set(fs.readdirSync(join(root, "overlay2")));
    const links = new Set(fs.readdirSync(join(root, "overlay2/l")));
    const c = await createContainer(store, "test/base:v1", { name: "tmp" });
    const m = await mountContainer(store, "tmp");
    const names = (await listContainers(store)).map((x) => x.name);
    assert.ok(names.includes("tmp"));
    assert.equal(await unmountContainer(store, "tmp"), true);
    assert.ok(!isMountPoint(m));
    assert.ok(!fs.existsSync(m));
    assert.equal(await unmountContainer(store, "tmp"), false);
    await mountContainer(store, "tmp");
    await removeContainer(store, "tmp");
    assert.ok(!isMountPoint(m));
    assert.deepEqual(new Set(fs.readdirSync(join(root, "overlay2"))), before);
    assert.deepEqual(new Set(fs.readdirSync(join(root, "overlay2/l"))), links);
    assert.ok(!fs.existsSync(join(root, "image/overlay2/layerdb/mounts", c.id)));
    assert.ok(!(await listContainers(store)).some((x) => x.id === c.id));
    assert.ok(!(c.id in JSON.parse(fs.readFileSync(containersFile(store), "utf8")).Containers));
    await assert.rejects(removeContainer(store, "tmp"), /No such container/);
  });
});

describe("deep images on overlayfs", { skip }, () => {
  let root = "";
  let store: Store;
  before(async () => {
    root = tempRoot("deep");
    store = await openStore(root);
  });
  after(() => {
    if (root) cleanupRoot(root);
  });

  test("130 layers mount with relative l/ paths; 136 layers with short symlinks; both read-only and as containers", async () => {
    const layers: TarEntrySpec[][] = [];
    for (let i = 0; i < 136; i++) layers.push([f(`layer-${String(i).padStart(3, "0")}.txt`, `${i}\n`)]);
    await addImage(store, "test/deep:130", layers.slice(0, 130));
    await addImage(store, "test/deep:136", layers);

    const c = await createContainer(store, "test/deep:130", { name: "deep" });
    const plan = await planContainerMount(store, c);
    assert.equal(plan.cwd, join(root, "overlay2"));
    assert.equal(plan.shortLinks, undefined);
    assert.equal(plan.lowers, 131);
    const m = await mountContainer(store, "deep");
    const files = fs.readdirSync(m).filter((n) => n.startsWith("layer-"));
    assert.equal(files.length, 130);
    assert.equal(fs.readFileSync(join(m, "layer-000.txt"), "utf8"), "0\n");
    assert.equal(fs.readFileSync(join(m, "layer-129.txt"), "utf8"), "129\n");
    fs.writeFileSync(join(m, "layer-000.txt"), "changed\n");
    const { upperDir } = await containerLayers(store, c);
    assert.equal(fs.readFileSync(join(upperDir, "layer-000.txt"), "utf8"), "changed\n");

    // 136 image layers + the -init layer: past Docker's relative-path limit
    const c2 = await createContainer(store, "test/deep:136", { name: "deeper" });
    const plan2 = await planContainerMount(store, c2);
    assert.equal(plan2.lowers, 137);
    assert.ok(plan2.shortLinks);
    const m2 = await mountContainer(store, "deeper");
    assert.equal(fs.readdirSync(m2).filter((n) => n.startsWith("layer-")).length, 136);
    assert.equal(fs.readFileSync(join(m2, "layer-135.txt"), "utf8"), "135\n");
    assert.equal(fs.readFileSync(join(m2, "layer-000.txt"), "utf8"), "0\n", "containers stay isolated");
    fs.writeFileSync(join(m2, "new.txt"), "n\n");
    const up2 = (await containerLayers(store, c2)).upperDir;
    assert.equal(fs.readFileSync(join(up2, "new.txt"), "utf8"), "n\n");
    assert.deepEqual(fs.readdirSync(join(root, "strata/lowers")), [], "short symlinks are removed once mounted");

    const ro = await mountImageReadOnly(store, "test/deep:136");
    assert.equal(fs.readdirSync(ro).length, 136);
    await unmountImageReadOnly(store, "test/deep:136");
    await unmountContainer(store, "deeper");
    await removeContainer(store, "deeper");
  });
});
