// The -init layer written without mounting (the fallback where overlay mounts are impossible):
// the same tree Docker's init layer has in the golden fixture.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { INIT_ENTRIES, setupInitLayer } from "../src/containers/init.js";
import { tempRoot } from "./helpers/containers-images.js";
import { goldenTree, listTree } from "./layer-helpers.js";

const isRoot = process.getuid?.() === 0;

test("init entries on a bare diff dir give the golden `init` tree", { skip: isRoot ? false : "owners 0:0 need root" }, () => {
  const root = tempRoot("init");
  try {
    fs.chmodSync(root, 0o755); // a diff dir
    setupInitLayer(root, () => false);
    const got = listTree(root).map((r) => r.slice(0, 9).join("\t"));
    const want = goldenTree("init").map((r) => r.slice(0, 9).join("\t"));
    assert.deepEqual(got, want);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test("entries the image already has are not created; non-directories on the way are replaced", () => {
  const root = tempRoot("init2");
  try {
    // an image path that exists is skipped (the lookup answers for the merged view)
    fs.writeFileSync(join(root, "stale"), "");
    fs.symlinkSync("/nowhere", join(root, ".dockerenv"));
    setupInitLayer(root, (rel) => rel === "/proc" || rel === "/etc/hosts");
    assert.ok(!fs.existsSync(join(root, "proc")));
    assert.ok(!fs.existsSync(join(root, "etc/hosts")));
    assert.ok(fs.statSync(join(root, "sys")).isDirectory());
    // the dangling symlink at .dockerenv was unlinked and replaced by an empty 0755 file
    const st = fs.lstatSync(join(root, ".dockerenv"));
    assert.ok(st.isFile());
    assert.equal(st.mode & 0o7777, 0o755);
    assert.equal(fs.readlinkSync(join(root, "etc/mtab")), "/proc/mounts");
    assert.equal(INIT_ENTRIES.length, 10);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});
