// Containers of the golden fixture's image (what Docker Engine 20.10 pulled and created): the
// store must end up with the same container facts, and the edge cases of that image (long names,
// UTF-8 names, hardlinks, setuid, fifo, whiteouts, opaque dirs) must survive mount, diff, commit
// and export.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { gunzipSync } from "node:zlib";
import { type ChainID, parseReference } from "@strata/core";
import { verifyImage } from "../src/commands/verify.js";
import { overlayChanges } from "../src/containers/changes.js";
import { commitContainer } from "../src/containers/commit.js";
import { exportLayers, exportToTar } from "../src/containers/export.js";
import { containerLayers, createContainer, mountContainer, mountImageReadOnly, resolveContainer, unmountImageReadOnly } from "../src/containers/store.js";
import { loadImage, referenceKeys } from "../src/store/images.js";
import type { Store } from "../src/store/store.js";
import { addLayer, cleanupRoot, INIT_MTIME_PATHS, openStore, overlayProbe, snapshot, tempRoot } from "./helpers/containers-images.js";
import { GOLDEN, goldenTree, listTree } from "./layer-helpers.js";

interface Expected {
  reference: string;
  image_id: string;
  config_digest: string;
  layers: Array<{ blob_digest: string; chain_id: string; diff_id: string }>;
  container: { parent: string };
}

const probe = overlayProbe();
if (!probe.ok) process.stderr.write(`\n*** SKIPPING containers-golden tests: ${probe.reason} ***\n\n`);
const expected = JSON.parse(fs.readFileSync(join(GOLDEN, "expected.json"), "utf8")) as Expected;
const blob = (d: string) => fs.readFileSync(join(GOLDEN, "oci/blobs/sha256", d.slice(7)));

describe("containers of the golden image", { skip: probe.ok ? false : `overlay mounts impossible here: ${probe.ok ? "" : probe.reason}` }, () => {
  let root = "";
  let store: Store;
  before(async () => {
    root = tempRoot("golden");
    store = await openStore(root);
    let parent: ChainID | undefined;
    for (const l of expected.layers) {
      const r = await addLayer(store, gunzipSync(blob(l.blob_digest)), parent);
      assert.equal(r.chainId, l.chain_id);
      parent = r.chainId;
    }
    await store.withLock(async () => {
      const id = await store.putImageConfig(blob(expected.config_digest));
      assert.equal(id, expected.image_id);
      const { repo, key } = referenceKeys(parseReference(expected.reference));
      await store.updateRepositories((r) => {
        r[repo] = { [key]: id };
      });
    });
  });
  after(() => {
    if (root) cleanupRoot(root);
  });

  test("create gives Docker's container facts for this image", async () => {
    const c = await createContainer(store, expected.reference, { name: "golden-edge" });
    const mdir = join(root, "image/overlay2/layerdb/mounts", c.id);
    assert.equal(fs.readFileSync(join(mdir, "parent"), "utf8"), expected.container.parent);
    // `committed` exactly where Docker has it: every image layer (each has a child), the -init layer, not the rw layer
    for (const l of expected.layers) {
      const cache = fs.readFileSync(join(root, "image/overlay2/layerdb/sha256", l.chain_id.slice(7), "cache-id"), "utf8");
      assert.ok(fs.existsSync(join(root, "overlay2", cache, "committed")), l.chain_id);
    }
    assert.ok(fs.existsSync(join(root, "overlay2", `${c.mountId}-init`, "committed")));
    assert.ok(!fs.existsSync(join(root, "overlay2", c.mountId, "committed")));
    const cols = (rows: string[][]) => rows.map((r) => r.slice(0, 9).join("\t"));
    assert.deepEqual(cols(listTree(join(root, "overlay2", `${c.mountId}-init`, "diff"))), cols(goldenTree("init")));
    assert.deepEqual(cols(listTree(join(root, "overlay2", c.mountId, "diff"))), cols(goldenTree("rw")));
    // the kernel's marks from the mounted -init setup, as in the fixture
    const initXattrs = listTree(join(root, "overlay2", `${c.mountId}-init`, "diff"));
    assert.match(initXattrs.find((r) => r[0] === "etc")?.[11] ?? "", /trusted\.overlay\.origin=/);
  });

  test("merged view, diff, commit and a fresh container of the commit", async () => {
    const m = await mountContainer(store, "golden-edge");
    assert.equal(fs.readFileSync(join(m, "etc/config.conf"), "utf8").length, 40);
    assert.equal(fs.statSync(join(m, "etc/config.conf")).mode & 0o7777, 0o600);
    assert.ok(!fs.existsSync(join(m, "etc/remove-me.txt")));
    assert.ok(!fs.existsSync(join(m, "gone")));
    assert.deepEqual(fs.readdirSync(join(m, "opq")), ["new-in-layer3.txt"]);
    assert.notEqual(fs.readFileSync(join(m, "bin/hello.sh"), "utf8"), fs.readFileSync(join(m, "bin/hello-hardlink.sh"), "utf8"));
    assert.equal(fs.statSync(join(m, "bin/suid-tool")).mode & 0o7777, 0o4755);

    fs.appendFileSync(join(m, "data/small.txt"), "more\n");
    fs.unlinkSync(join(m, "données/ファイル.txt"));
    fs.writeFileSync(join(m, "données/nouveau.txt"), "neu\n");
    fs.rmSync(join(m, "long"), { recursive: true });
    fs.chmodSync(join(m, "tmp"), 0o1770);
    const { upperDir, lowerDirs } = await containerLayers(store, await resolveContainer(store, "golden-edge"));
    assert.deepEqual(
      [...overlayChanges(lowerDirs, upperDir)].map((x) => `${x.kind} ${x.path}`),
      // like dockerd: a directory with a change below it is C (data/ itself is unchanged)
      ["C /data", "C /data/small.txt", "C /données", "A /données/nouveau.txt", "D /données/ファイル.txt", "D /long", "C /tmp"],
    );

    const before = snapshot(m, { ignoreMtime: INIT_MTIME_PATHS });
    const r = await commitContainer(store, "golden-edge", "golden/edge:committed");
    await createContainer(store, "golden/edge:committed", { name: "golden-fresh" });
    const m2 = await mountContainer(store, "golden-fresh");
    assert.deepEqual(snapshot(m2, { ignoreMtime: INIT_MTIME_PATHS }), before);
    const img = await loadImage(store, r.imageId);
    assert.ok(img);
    const v = await verifyImage(store, img);
    assert.ok(v.ok, JSON.stringify(v.layers.filter((l) => !l.ok)));
    assert.equal(v.layers.length, 5);
  });

  test("export of the golden image equals its read-only mount (tar read back by GNU tar)", async () => {
    const ro = await mountImageReadOnly(store, expected.reference);
    const { layers } = await exportLayers(store, expected.reference);
    const tarFile = join(root, "edge.tar");
    await exportToTar(layers, tarFile);
    const out = join(root, "edge-export");
    fs.mkdirSync(out);
    execFileSync("tar", ["-xpf", tarFile, "-C", out, "--numeric-owner"]);
    assert.deepEqual(snapshot(out), snapshot(ro));
    const img = await loadImage(store, expected.image_id as never);
    assert.ok(img);
    assert.ok((await verifyImage(store, img)).ok);
    await unmountImageReadOnly(store, expected.reference);
  });
});
