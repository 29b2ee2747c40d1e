// Export and removal of wide and deep trees (walked streaming; memory is measured by
// `npm run bench:wide`, not here), and what `export --dir` lets other users reach.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { exportToDir, exportToTar, mergedEntries } from "../src/containers/export.js";
import { mknod, setxattr } from "../src/native.js";
import { removeTree } from "../src/store/fsutil.js";

const isRoot = process.getuid?.() === 0;
let work: string;
before(() => {
  work = fs.mkdtempSync(join(tmpdir(), "strata-export-wide-"));
});
after(() => fs.rmSync(work, { recursive: true, force: true }));

const WIDE = 3000;
const name = (i: number) => `f${String(i).padStart(5, "0")}`;

describe("wide trees", () => {
  test("export -o of a wide directory over a whiteout and an opaque dir lists exactly the merged view (GNU tar reads it)", { skip: isRoot ? false : "whiteouts need root" }, async () => {
    const lower = join(work, "lower");
    const upper = join(work, "upper");
    fs.mkdirSync(join(lower, "w"), { recursive: true });
    for (let i = 0; i < WIDE; i++) fs.writeFileSync(join(lower, "w", name(i)), i % 100 === 0 ? `content ${i}\n` : "");
    fs.mkdirSync(join(lower, "o"));
    fs.writeFileSync(join(lower, "o", "hidden"), "");
    fs.mkdirSync(join(upper, "w"), { recursive: true });
    mknod(join(upper, "w", name(7)), fs.constants.S_IFCHR, 0, 0); // whiteout
    fs.writeFileSync(join(upper, "w", "zz-new"), "new\n");
    fs.mkdirSync(join(upper, "o"));
    setxattr(join(upper, "o"), "trusted.overlay.opaque", Buffer.from("y"));
    fs.writeFileSync(join(upper, "o", "shown"), "");

    const order: string[] = [];
    for (const e of mergedEntries([upper, lower])) order.push(`${e.done ? "/" : ""}${e.rel.toString()}`);
    assert.deepEqual(order.slice(0, 4), ["o", "o/shown", "/o", "w"], "a directory is reported again after its contents");
    assert.equal(order.at(-1), "/w");

    const file = join(work, "wide.tar");
    await exportToTar([upper, lower], file);
    const listed = spawnSync("tar", ["-tvf", file], { encoding: "utf8", maxBuffer: 1 << 26 });
    assert.equal(listed.status, 0, listed.stderr);
    const names = listed.stdout
      .trimEnd()
      .split("\n")
      .map((l) => l.split(/\s+/).slice(5).join(" "));
    const expected = ["o/", "o/shown", "w/", ...Array.from({ length: WIDE }, (_, i) => `w/${name(i)}`).filter((n) => n !== `w/${name(7)}`), "w/zz-new"];
    assert.deepEqual(names, expected);
    const out = join(work, "wide-x");
    fs.mkdirSync(out);
    assert.equal(spawnSync("tar", ["-xf", file, "-C", out]).status, 0);
    assert.equal(fs.readFileSync(join(out, "w", name(300)), "utf8"), "content 300\n");
    assert.equal(fs.readFileSync(join(out, "w", "zz-new"), "utf8"), "new\n");
  });

  test("removeTree removes wide, deep and oddly named trees; a missing path is fine", () => {
    const t = join(work, "rm");
    fs.mkdirSync(join(t, "wide"), { recursive: true });
    for (let i = 0; i < WIDE; i++) fs.writeFileSync(join(t, "wide", name(i)), "");
    let deep = join(t, "deep");
    for (let i = 0; i < 300; i++) {
      deep = join(deep, `d${i}`);
      fs.mkdirSync(deep, { recursive: true });
      fs.writeFileSync(join(deep, "f"), "");
    }
    fs.writeFileSync(Buffer.concat([Buffer.from(`${t}/`), Buffer.from([0x66, 0xff, 0xfe, 0x0a])]), ""); // not UTF-8, with a newline
    fs.mkdirSync(join(t, "ro"));
    fs.writeFileSync(join(t, "ro", "f"), "");
    fs.chmodSync(join(t, "ro"), 0o555);
    fs.symlinkSync("/etc", join(t, "link-to-etc"));
    if (isRoot) removeTree(t);
    else {
      fs.chmodSync(join(t, "ro"), 0o755);
      removeTree(t);
    }
    assert.ok(!fs.existsSync(t));
    assert.ok(fs.existsSync("/etc/hostname") || fs.existsSync("/etc"), "a symlink is removed, not followed");
    removeTree(t);
  });
});

describe("export --dir", () => {
  function image(): string {
    const layer = join(work, `img-${Math.random().toString(36).slice(2)}`);
    fs.mkdirSync(join(layer, "bin"), { recursive: true });
    fs.writeFileSync(join(layer, "bin", "suid-sh"), "#!/bin/sh\n");
    fs.chmodSync(join(layer, "bin", "suid-sh"), 0o4755);
    fs.mkdirSync(join(layer, "dev"));
    if (isRoot) mknod(join(layer, "dev", "sda"), fs.constants.S_IFBLK | 0o666, 8, 0);
    return layer;
  }

  test("creates DIR 0700 (an existing DIR too), so setuid files are reachable by its owner only", () => {
    const layer = image();
    const fresh = join(work, "x1", "nested", "out");
    assert.deepEqual(exportToDir([layer], fresh).skippedDevices, isRoot ? 0 : 1);
    assert.equal(fs.statSync(fresh).mode & 0o7777, 0o700);
    assert.equal(fs.statSync(join(fresh, "bin", "suid-sh")).mode & 0o7777, 0o4755);
    const existing = join(work, "x2");
    fs.mkdirSync(existing, { mode: 0o755 });
    fs.chmodSync(existing, 0o755);
    exportToDir([layer], existing);
    assert.equal(fs.statSync(existing).mode & 0o7777, 0o700);
  });

  test("device nodes only when root exports into a root-owned directory", { skip: isRoot ? false : "needs root" }, () => {
    const layer = image();
    const own = join(work, "x3");
    assert.equal(exportToDir([layer], own).skippedDevices, 0);
    const dev = fs.lstatSync(join(own, "dev", "sda"));
    assert.ok(dev.isBlockDevice());
    const users = join(work, "x4");
    fs.mkdirSync(users);
    fs.chownSync(users, 1000, 1000);
    assert.equal(exportToDir([layer], users).skippedDevices, 1);
    assert.ok(!fs.existsSync(join(users, "dev", "sda")));
    assert.ok(fs.statSync(join(users, "dev")).isDirectory());
  });

  test("a DIR under /proc fails at once with a clear message", () => {
    assert.throws(() => exportToDir([image()], "/proc/strata-export-x/y"), /^Error: cannot create \/proc\/strata-export-x\/y: ENOENT/);
  });
});
