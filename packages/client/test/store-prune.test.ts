/**
 * `strata image prune [--all]`, `strata system df` and layer removal, through the CLI (a child
 * process) on a real store: images sharing layers, a container, a committed child image, layers
 * no image holds; sizes checked against the files on disk; kill -9 in the middle of a prune.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type ChainID, digestHex } from "@strata/core";
import { createContainer, mountContainer, mountImageReadOnly, unmountContainer, unmountImageReadOnly } from "../src/containers/store.js";
import { addImage, addLayer, cleanupRoot, openStore, overlayProbe, type TarEntrySpec, tempRoot } from "./helpers/containers-images.js";
import { CLI, runCli } from "./helpers/run-cli.js";
import { checkStore } from "./helpers/store-check.js";
import { buildTar } from "./layer-helpers.js";

const probe = overlayProbe();
const skip = probe.ok ? false : `needs root and overlay mounts (containers): ${probe.reason}`;
if (skip) process.stderr.write(`\n*** SKIPPING store-prune tests: ${skip} ***\n\n`);

/** A layer with a file of `bytes`, a symlink to it and a hard link to it (counted once). */
function layer(name: string, bytes: number): TarEntrySpec[] {
  return [
    { name: `${name}/`, type: "5" },
    { name: `${name}/data`, type: "0", data: randomBytes(bytes) },
    { name: `${name}/sym`, type: "2", linkname: "data" },
    { name: `${name}/hard`, type: "1", linkname: `${name}/data` },
  ];
}

/** Bytes of a layer dir counted independently: non-directories' st_size, each inode once. */
function duOf(dir: string): number {
  const seen = new Set<string>();
  let total = 0;
  const walk = (d: string): void => {
    for (const n of fs.readdirSync(d)) {
      const p = join(d, n);
      const st = fs.lstatSync(p, { bigint: true });
      if (st.isDirectory()) walk(p);
      else if (!seen.has(`${st.dev}:${st.ino}`)) {
        seen.add(`${st.dev}:${st.ino}`);
        total += Number(st.size);
      }
    }
  };
  walk(dir);
  return total;
}

const layerDir = (root: string, c: string) => join(root, "image/overlay2/layerdb/sha256", digestHex(c as ChainID));
const cacheIdOf = (root: string, c: string) => fs.readFileSync(join(layerDir(root, c), "cache-id"), "utf8");
const linkOf = (root: string, cacheId: string) => fs.readFileSync(join(root, "overlay2", cacheId, "link"), "utf8");

function layerSet(root: string): string[] {
  return fs
    .readdirSync(join(root, "image/overlay2/layerdb/sha256"))
    .map((n) => `sha256:${n}`)
    .sort();
}

function overlayDirs(root: string): string[] {
  return fs
    .readdirSync(join(root, "overlay2"))
    .filter((n) => n !== "l")
    .sort();
}

function links(root: string): string[] {
  return fs.readdirSync(join(root, "overlay2", "l")).sort();
}

/** Chains that are on disk and that `images`/`verify`/checkStore see as a consistent store. */
async function assertConsistent(root: string): Promise<void> {
  assert.deepEqual(await checkStore(root), []);
  const v = await runCli(["verify", "--root", root]);
  assert.equal(v.code, 0, v.stdout + v.stderr);
  const im = await runCli(["images", "--root", root]);
  assert.equal(im.code, 0, im.stderr);
  // every l/ link resolves to a layer dir, every layer dir has its link
  for (const l of links(root)) assert.ok(fs.existsSync(join(root, "overlay2", "l", l)), `l/${l} dangles`);
  for (const d of overlayDirs(root)) assert.ok(fs.existsSync(join(root, "overlay2", "l", linkOf(root, d))), `overlay2/${d} has no l/ link`);
}

interface Fixture {
  ids: Record<string, string>;
  chains: Record<string, ChainID[]>;
  orphans: ChainID[];
  container: { mountId: string; initId: string };
}

/**
 * one:1 [L0 L1], two:1 [L0 L2], dangling img3 [L0 L1 L3], img4 with only a digest reference [L4],
 * five:1 [L5 L6] used by a container, dangling img6 [L0 L7] that is the parent of seven:1
 * [L0 L7 L8] (as commit records it), and layers no image holds: [L9] and [L0 L1 L10].
 */
async function buildFixture(root: string): Promise<Fixture> {
  const store = await openStore(root);
  const L = Array.from({ length: 11 }, (_v, i) => layer(`l${i}`, 1000 + i * 731));
  const ids: Record<string, string> = {};
  const chains: Record<string, ChainID[]> = {};
  const specs: [string, string, number[]][] = [
    ["one", "t/one:1", [0, 1]],
    ["two", "t/two:1", [0, 2]],
    ["img3", "t/three:1", [0, 1, 3]],
    ["img4", "t/four:1", [4]],
    ["five", "t/five:1", [5, 6]],
    ["img6", "t/six:1", [0, 7]],
    ["seven", "t/seven:1", [0, 7, 8]],
  ];
  for (const [k, ref, ls] of specs) {
    const r = await addImage(store, ref, ls.map((i) => L[i]));
    ids[k] = r.id;
    chains[k] = r.chainIds;
  }
  await store.withLock(() =>
    store.updateRepositories((r) => {
      delete r["t/three"];
      delete r["t/six"];
      delete r["t/four"];
      r["t/four"] = { [`t/four@sha256:${"ab".repeat(32)}`]: ids.img4 };
    }),
  );
  const meta = join(root, "image/overlay2/imagedb/metadata/sha256", digestHex(ids.seven as never));
  fs.mkdirSync(meta, { recursive: true, mode: 0o700 });
  fs.writeFileSync(join(meta, "parent"), ids.img6);
  const o9 = await addLayer(store, buildTar(L[9]), undefined);
  const o10 = await addLayer(store, buildTar(L[10]), chains.one[1]);
  const c = await createContainer(store, "t/five:1", { name: "keeper" });
  // bytes in the container's rw layer
  fs.writeFileSync(join(root, "overlay2", c.mountId, "diff", "written"), randomBytes(1234));
  // this process wrote the orphan layers without an image: as if it had died, its lease is void
  fs.rmSync(join(root, "strata", "leases"), { recursive: true, force: true });
  return { ids, chains, orphans: [o9.chainId, o10.chainId], container: { mountId: c.mountId, initId: c.initId } };
}

describe("image prune, system df, layer removal", { skip }, () => {
  let root = "";
  let fx: Fixture;
  before(async () => {
    root = tempRoot("prune");
    fx = await buildFixture(root);
  });
  after(() => {
    if (root) cleanupRoot(root);
  });

  it("system df: counts and bytes match the layer files on disk", async () => {
    const r = await runCli(["system", "df", "--format", "json", "--root", root]);
    assert.equal(r.code, 0, r.stderr);
    const rows = r.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, number | string>);
    assert.deepEqual(
      rows.map((x) => x.Type),
      ["Images", "Layers", "Containers"],
    );
    const disk = new Map<string, number>();
    for (const c of layerSet(root)) {
      const n = duOf(join(root, "overlay2", cacheIdOf(root, c), "diff"));
      disk.set(c, n);
      assert.equal(Number(fs.readFileSync(join(layerDir(root, c), "size"), "utf8")), n, `layerdb size of ${c}`);
    }
    const bytes = (cs: Iterable<string>) => [...new Set(cs)].reduce((n, c) => n + (disk.get(c) ?? Number.NaN), 0);
    const imageChains = Object.values(fx.chains).flat();
    const count = new Map<string, number>();
    for (const cs of Object.values(fx.chains)) for (const c of cs) count.set(c, (count.get(c) ?? 0) + 1);
    const sharedImages = [...count].filter(([, n]) => n > 1).map(([c]) => c);
    assert.deepEqual(rows[0], {
      Type: "Images",
      TotalCount: 7,
      Active: 1,
      Size: bytes(imageChains),
      SharedSize: bytes(sharedImages),
      Reclaimable: bytes(imageChains) - bytes(fx.chains.five),
    });
    // the container also holds five's layers: they are shared between it and the image
    assert.deepEqual(rows[1], {
      Type: "Layers",
      TotalCount: disk.size,
      Active: disk.size - 2,
      Size: bytes(disk.keys()),
      SharedSize: bytes([...sharedImages, ...fx.chains.five]),
      Reclaimable: bytes(fx.orphans),
    });
    assert.deepEqual(rows[2], { Type: "Containers", TotalCount: 1, Active: 0, Size: 1234, SharedSize: 0, Reclaimable: 1234 });
    const table = await runCli(["system", "df", "--root", root]);
    assert.equal(table.code, 0, table.stderr);
    const lines = table.stdout.trimEnd().split("\n");
    assert.match(lines[0], /^TYPE\s+TOTAL\s+ACTIVE\s+SIZE\s+SHARED\s+RECLAIMABLE$/);
    assert.match(lines[3], /^Containers\s+1\s+0\s+1\.234kB\s+0B\s+1\.234kB \(100%\)$/);
    const tpl = await runCli(["system", "df", "--format", "{{.Type}} {{.TotalCount}}", "--root", root]);
    assert.equal(tpl.stdout, `Images 7\nLayers ${disk.size}\nContainers 1\n`);
    for (const args of [
      ["system", "df", "--format", "{{.Nope}}"],
      ["image", "prune", "--format", "{{.Size}}"],
    ]) {
      const bad = await runCli([...args, "--root", root]);
      assert.equal(bad.code, 1, bad.stderr);
      assert.match(bad.stderr, /^strata: [^\n]*--format|^strata: [^\n]*Nope[^\n]*\n$/);
      assert.equal(bad.stdout, "");
    }
    const none = await runCli(["system", "df", "--root", join(root, "nothing-here")]);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /^strata: no image store at /);
  });

  it("system df -v: per image (one row per tag) its bytes, the bytes another image shares, and its containers; per container its rw bytes", async () => {
    const r = await runCli(["system", "df", "-v", "--format", "json", "--root", root]);
    assert.equal(r.code, 0, r.stderr);
    const v = JSON.parse(r.stdout) as {
      Images: { Repository: string; Tag: string; ID: string; Size: number; SharedSize: number; UniqueSize: number; Containers: number }[];
      Containers: { ID: string; Names: string; Image: string; CreatedAt: string; Size: number; Status: string }[];
    };
    const disk = new Map<string, number>();
    for (const c of layerSet(root)) disk.set(c, duOf(join(root, "overlay2", cacheIdOf(root, c), "diff")));
    const bytes = (cs: Iterable<string>) => [...new Set(cs)].reduce((n, c) => n + (disk.get(c) ?? Number.NaN), 0);
    const holders = new Map<string, number>();
    for (const cs of Object.values(fx.chains)) for (const c of cs) holders.set(c, (holders.get(c) ?? 0) + 1);
    // tagged images have a row per tag; t/four is known by digest only (<none> tag); t/three and t/six are dangling
    const expected = Object.entries(fx.chains).map(([k, cs]) => {
      const shared = bytes(cs.filter((c) => (holders.get(c) ?? 0) > 1));
      return { ID: fx.ids[k], Size: bytes(cs), SharedSize: shared, UniqueSize: bytes(cs) - shared, Containers: k === "five" ? 1 : 0 };
    });
    const got = v.Images.map(({ ID, Size, SharedSize, UniqueSize, Containers }) => ({ ID, Size, SharedSize, UniqueSize, Containers }));
    const byId = (a: { ID: string }, b: { ID: string }) => a.ID.localeCompare(b.ID);
    assert.deepEqual(got.sort(byId), expected.sort(byId));
    assert.deepEqual(v.Images.find((i) => i.ID === fx.ids.one)?.Repository, "t/one");
    assert.deepEqual(v.Images.find((i) => i.ID === fx.ids.img4)?.Tag, "<none>");
    assert.deepEqual(
      v.Containers.map(({ Names, Image, Size, Status }) => ({ Names, Image, Size, Status })),
      [{ Names: "keeper", Image: "t/five:1", Size: 1234, Status: "Created" }],
    );
    assert.match(v.Containers[0].ID, /^[0-9a-f]{64}$/);
    assert.ok(!Number.isNaN(Date.parse(v.Containers[0].CreatedAt)), v.Containers[0].CreatedAt);
    const table = await runCli(["system", "df", "-v", "--root", root]);
    assert.equal(table.code, 0, table.stderr);
    const lines = table.stdout.split("\n");
    assert.equal(lines[0], "Images space usage:");
    assert.match(lines[2], /^REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE\s+SHARED SIZE\s+UNIQUE SIZE\s+CONTAINERS$/);
    assert.ok(lines.includes("Containers space usage:"), table.stdout);
    assert.match(table.stdout, /\nCONTAINER ID\s+IMAGE\s+SIZE\s+CREATED\s+STATUS\s+NAMES\n[0-9a-f]{12}\s+t\/five:1\s+1\.234kB\s+.*\s+Created\s+keeper\n$/);
    const bad = await runCli(["system", "df", "-v", "--format", "{{.Size}}", "--root", root]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^strata: system df: --format with --verbose takes table or json/);
  });

  it("prune removes only dangling images (digest-only references too, not a parent of a kept image) and unused layers", async () => {
    const before = { layers: layerSet(root), dirs: overlayDirs(root), links: links(root) };
    const sizes = new Map(before.layers.map((c) => [c, duOf(join(root, "overlay2", cacheIdOf(root, c), "diff"))]));
    const r = await runCli(["image", "prune", "--format", "json", "--root", root]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { ImagesDeleted: Record<string, string>[]; SpaceReclaimed: number };
    const removedLayers = [fx.chains.img3[2], fx.chains.img4[0], ...fx.orphans].sort();
    const gone = new Set<string>(removedLayers);
    assert.deepEqual(out.ImagesDeleted.filter((e) => e.Untagged).map((e) => e.Untagged), [`t/four@sha256:${"ab".repeat(32)}`]);
    assert.deepEqual(out.ImagesDeleted.filter((e) => e.Deleted).map((e) => e.Deleted).sort(), [fx.ids.img3, fx.ids.img4, ...removedLayers].sort());
    assert.deepEqual(layerSet(root), before.layers.filter((c) => !gone.has(c)));
    // exactly their overlay2 dirs and l/ links went
    const after = { dirs: overlayDirs(root), links: links(root) };
    assert.equal(before.dirs.length - after.dirs.length, 4);
    assert.equal(before.links.length - after.links.length, 4);
    const ids = fs.readdirSync(join(root, "image/overlay2/imagedb/content/sha256")).map((n) => `sha256:${n}`).sort();
    assert.deepEqual(ids, [fx.ids.one, fx.ids.two, fx.ids.five, fx.ids.img6, fx.ids.seven].sort());
    assert.equal(out.SpaceReclaimed, removedLayers.reduce((n, c) => n + (sizes.get(c) ?? Number.NaN), 0));
    await assertConsistent(root);
    // nothing left to prune
    const again = await runCli(["image", "prune", "--root", root]);
    assert.equal(again.stdout, "Total reclaimed space: 0B\n");
  });

  it("prune --all removes every image no container uses, parents after their children; the container's layers stay", async () => {
    const r = await runCli(["image", "prune", "--all", "--root", root]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Deleted Images:\nuntagged: /);
    assert.match(r.stdout, /\n\nTotal reclaimed space: [0-9.]+kB\n$/);
    for (const ref of ["t/one:1", "t/two:1", "t/seven:1"]) assert.ok(r.stdout.includes(`untagged: ${ref}\n`), ref);
    const ids = fs.readdirSync(join(root, "image/overlay2/imagedb/content/sha256")).map((n) => `sha256:${n}`);
    assert.deepEqual(ids, [fx.ids.five]);
    assert.deepEqual(layerSet(root), [...fx.chains.five].sort());
    const keep = [...fx.chains.five.map((c) => cacheIdOf(root, c)), fx.container.mountId, fx.container.initId].sort();
    assert.deepEqual(overlayDirs(root), keep);
    assert.deepEqual(links(root), keep.map((d) => linkOf(root, d)).sort());
    await assertConsistent(root);
    const im = await runCli(["images", "--format", "{{.Repository}}:{{.Tag}}", "--root", root]);
    assert.equal(im.stdout, "t/five:1\n");
  });

  it("a layer leased with reuseLayer survives prune --all until an image config covering it is stored", async () => {
    const r2 = tempRoot("reuse");
    try {
      const store = await openStore(r2);
      const img = await addImage(store, "t/a:1", [layer("a0", 100), layer("a1", 200)]);
      fs.rmSync(join(r2, "strata", "leases"), { recursive: true, force: true });
      assert.equal(await store.reuseLayer(img.chainIds[0]), true);
      const pr = await runCli(["image", "prune", "--all", "--root", r2]);
      assert.equal(pr.code, 0, pr.stderr);
      // the image and its top layer went; the leased layer stayed
      assert.deepEqual(layerSet(r2), [img.chainIds[0]]);
      assert.deepEqual(await checkStore(r2), []);
      // an image on it is recorded: the lease ends, and the next prune --all removes everything
      await store.withLock(() => store.putImageConfig(Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [img.diffIds[0]] } }))));
      assert.deepEqual(fs.readdirSync(join(r2, "strata", "leases")), []);
      assert.equal(await store.reuseLayer(img.chainIds[1]), false);
      // a config whose layers are not all present is refused
      await assert.rejects(
        store.withLock(() => store.putImageConfig(Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: img.diffIds } }))),
        ),
        /not in the store/,
      );
      const pr2 = await runCli(["image", "prune", "--all", "--root", r2]);
      assert.equal(pr2.code, 0, pr2.stderr);
      assert.deepEqual(layerSet(r2), []);
    } finally {
      cleanupRoot(r2);
    }
  });

  it("a mounted container counts as active; an image mounted read-only is in use and survives prune --all", async () => {
    const r2 = tempRoot("mounted");
    try {
      const store = await openStore(r2);
      await addImage(store, "t/ro:1", [layer("ro", 100)]);
      const img = await addImage(store, "t/c:1", [layer("c", 100)]);
      fs.rmSync(join(r2, "strata", "leases"), { recursive: true, force: true });
      await createContainer(store, "t/c:1", { name: "cc" });
      await mountContainer(store, "cc");
      await mountImageReadOnly(store, "t/ro:1");
      const df = await runCli(["system", "df", "--format", "{{.Type}} {{.TotalCount}} {{.Active}}", "--root", r2]);
      assert.equal(df.stdout, "Images 2 2\nLayers 2 2\nContainers 1 1\n");
      const pr = await runCli(["image", "prune", "--all", "--root", r2]);
      assert.equal(pr.stdout, "Total reclaimed space: 0B\n");
      await unmountImageReadOnly(store, "t/ro:1");
      await unmountContainer(store, "cc");
      const after = await runCli(["image", "prune", "--all", "--root", r2]);
      assert.equal(after.code, 0, after.stderr);
      assert.ok(after.stdout.includes("untagged: t/ro:1\n"), after.stdout);
      assert.deepEqual(layerSet(r2), img.chainIds);
    } finally {
      cleanupRoot(r2);
    }
  });

  it("an image with an unreadable config stops prune with one line (its layers are unknown); rmi removes it", async () => {
    const r2 = tempRoot("badcfg");
    try {
      const store = await openStore(r2);
      const img = await addImage(store, "t/a:1", [layer("a0", 100)]);
      fs.rmSync(join(r2, "strata", "leases"), { recursive: true, force: true });
      const bad = `${"0".repeat(63)}1`;
      fs.writeFileSync(join(r2, "image/overlay2/imagedb/content/sha256", bad), "{not json");
      fs.writeFileSync(join(r2, "image/overlay2/repositories.json"), JSON.stringify({ Repositories: { "t/bad": { "t/bad:1": `sha256:${bad}` }, "t/a": { "t/a:1": img.id } } }));
      const pr = await runCli(["image", "prune", "--all", "--root", r2]);
      assert.equal(pr.code, 1);
      assert.match(pr.stderr, /^strata: image sha256:0+1 has an unreadable config .*; remove it with rmi first\n$/);
      assert.deepEqual(layerSet(r2), img.chainIds);
      assert.ok(fs.existsSync(join(r2, "image/overlay2/imagedb/content/sha256", digestHex(img.id as never))), "nothing changed");
      const rmi = await runCli(["rmi", "t/bad:1", "--root", r2]);
      assert.equal(rmi.code, 0, rmi.stderr);
      assert.equal(rmi.stdout, `Untagged: t/bad:1\nDeleted: sha256:${bad}\n`);
      const again = await runCli(["image", "prune", "--all", "--root", r2]);
      assert.equal(again.code, 0, again.stderr);
      assert.deepEqual(layerSet(r2), []);
    } finally {
      cleanupRoot(r2);
    }
  });

  it("rmi removes exactly the layers no other image or container holds", async () => {
    const r2 = tempRoot("rmi");
    try {
      const f = await buildFixture(r2);
      const before = layerSet(r2);
      const dirs = overlayDirs(r2);
      // one:1 shares L0 with many and L1 with img3 and an orphan child: nothing of it goes
      let r = await runCli(["rmi", "t/one:1", "--root", r2]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(layerSet(r2), before);
      // two:1 owns L2 alone
      r = await runCli(["rmi", "t/two:1", "--root", r2]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(layerSet(r2), before.filter((c) => c !== f.chains.two[1]));
      assert.deepEqual(overlayDirs(r2).length, dirs.length - 1);
      // five:1 is used by the container: forced, its layers stay for the container
      r = await runCli(["rmi", "-f", "t/five:1", "--root", r2]);
      assert.equal(r.code, 0, r.stderr);
      for (const c of f.chains.five) assert.ok(layerSet(r2).includes(c));
      await assertConsistent(r2);
    } finally {
      cleanupRoot(r2);
    }
  });
});

/** Runs the CLI; resolves with its exit code or the signal that ended it. */
function runChild(args: string[], env: NodeJS.ProcessEnv, onSpawn?: (pid: number) => void): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    c.stderr.on("data", (d) => {
      stderr += d;
    });
    if (c.pid) onSpawn?.(c.pid);
    c.on("exit", (code, signal) => resolve({ code, signal, stderr }));
  });
}

describe("kill -9 in the middle of a prune", { skip }, () => {
  const DANGLING = 24;
  let template = "";
  let keep: ChainID[] = [];
  before(async () => {
    template = tempRoot("prune-crash-template");
    const store = await openStore(template);
    const base = layer("base", 4000);
    keep = (await addImage(store, "t/keep:1", [base, layer("keep", 2000)])).chainIds;
    for (let i = 0; i < DANGLING; i++) await addImage(store, `t/gone:${i}`, [base, layer(`x${i}`, 500 + i), layer(`y${i}`, 300 + i)]);
    await store.withLock(() =>
      store.updateRepositories((r) => {
        delete r["t/gone"];
      }),
    );
    fs.rmSync(join(template, "strata", "leases"), { recursive: true, force: true });
  });
  after(() => {
    if (template) cleanupRoot(template);
  });

  /** After the crash: readers work, the next prune finishes the job and leaves a clean store. */
  async function checkAfterCrash(root: string): Promise<void> {
    // a half-removed `<hex>-<random>-removing` entry is no layer to any reader; the rest must be whole
    const problems = await checkStore(root);
    assert.deepEqual(
      problems.filter((p) => !/^(stray layerdb entry )?[0-9a-f]{64}-[0-9a-f]{64}-removing\b/.test(p)),
      [],
    );
    const v = await runCli(["verify", "--root", root]);
    assert.equal(v.code, 0, v.stdout + v.stderr);
    assert.match(v.stdout, /^t\/keep:1 \([0-9a-f]{12}\): OK$/m);
    const im = await runCli(["images", "--root", root]);
    assert.equal(im.code, 0, im.stderr);
    const df = await runCli(["system", "df", "--root", root]);
    assert.equal(df.code, 0, df.stderr);
    const again = await runCli(["image", "prune", "--root", root]);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(await checkStore(root), []);
    assert.deepEqual(layerSet(root), [...keep].sort());
    assert.deepEqual(overlayDirs(root).length, 2);
    assert.deepEqual(links(root).length, 2);
    assert.deepEqual(fs.readdirSync(join(root, "image/overlay2/imagedb/content/sha256")).length, 1);
  }

  const points = [
    "image-untagged:1",
    "image-metadata-removed:5",
    "image-config-removed:12",
    `image-config-removed:${DANGLING}`,
    "layer-renamed:1",
    "layer-renamed:20",
    "layer-dir-removed:7",
    `layer-dir-removed:${DANGLING * 2}`,
  ];
  for (const point of points) {
    it(`SIGKILL at ${point}`, async () => {
      const root = tempRoot("prune-crash");
      try {
        execFileSync("cp", ["-a", `${template}/.`, root]);
        const r = await runChild(["image", "prune", "--root", root], { STRATA_TEST_FAULT: point });
        assert.equal(r.signal, "SIGKILL", `the prune ran to its end (${r.code}): ${r.stderr}`);
        await checkAfterCrash(root);
      } finally {
        cleanupRoot(root);
      }
    });
  }

  it("SIGKILL from outside at arbitrary moments of a running prune", async () => {
    const seen: string[] = [];
    // [images removed, layers removed] to reach before the kill
    for (const [images, layers] of [
      [1, 0],
      [17, 0],
      [DANGLING, 1],
      [DANGLING, 25],
    ]) {
      const root = tempRoot("prune-crash");
      try {
        execFileSync("cp", ["-a", `${template}/.`, root]);
        const content = join(root, "image/overlay2/imagedb/content/sha256");
        const layerdb = join(root, "image/overlay2/layerdb/sha256");
        let timer: NodeJS.Timeout | undefined;
        const r = await runChild(["image", "prune", "--root", root], {}, (pid) => {
          timer = setInterval(() => {
            const gone = DANGLING + 1 - fs.readdirSync(content).length;
            const removed = 2 * DANGLING + 2 - fs.readdirSync(layerdb).filter((n) => /^[0-9a-f]{64}$/.test(n)).length;
            if ((gone >= images && removed >= layers) || removed > layers) {
              clearInterval(timer);
              seen.push(`images removed ${gone}, layers removed ${removed}`);
              process.kill(pid, "SIGKILL");
            }
          }, 1);
        });
        clearInterval(timer);
        if (r.signal !== "SIGKILL") seen.push(`finished before the kill (${r.code})`);
        await checkAfterCrash(root);
      } finally {
        cleanupRoot(root);
      }
    }
    process.stderr.write(`# kill -9 points: ${seen.join("; ")}\n`);
  });
});
