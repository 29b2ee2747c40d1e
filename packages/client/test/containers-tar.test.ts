// The layer tar written from an overlay upper dir (commit): whiteouts and opaque dirs back to
// .wh. entries, deterministic order, PAX for what ustar cannot hold. Checked with GNU tar as an
// independent reader and by round-tripping through the layer engine.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, before, describe, test } from "node:test";
import { EMPTY_LAYER_DIFF_ID } from "../src/containers/commit.js";
import { upperDirTarChunks } from "../src/containers/tarwriter.js";
import { unpackLayer } from "../src/layer/unpack.js";
import { getxattr, listxattr, mknod, setxattr } from "../src/native.js";
import { snapshot, tempRoot } from "./helpers/containers-images.js";

const isRoot = process.getuid?.() === 0;
if (!isRoot) process.stderr.write("\n*** SKIPPING containers-tar tests: whiteouts (mknod) and trusted.* xattrs need root ***\n\n");

async function tarOf(dir: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of upperDirTarChunks(dir)) parts.push(c);
  return Buffer.concat(parts);
}

const LONG_DIR = `long/${"x".repeat(120)}`;
const LONG_FILE = `${LONG_DIR}/${"y".repeat(150)}.txt`;
const LONG_TARGET = "t".repeat(150);

describe("layer tar from an upper dir", { skip: isRoot ? false : "needs root" }, () => {
  let root = "";
  let upper = "";
  before(() => {
    root = tempRoot("tar");
    upper = join(root, "upper");
    fs.mkdirSync(upper);
    const w = (p: string, data: string, mode = 0o644) => {
      fs.mkdirSync(join(upper, p, ".."), { recursive: true });
      fs.writeFileSync(join(upper, p), data);
      fs.chmodSync(join(upper, p), mode);
    };
    w("a/file.txt", "hello\n", 0o640);
    fs.chownSync(join(upper, "a/file.txt"), 1000, 1000);
    w(LONG_FILE, "deep\n");
    w("café/menü.txt", "utf8\n");
    w("h1", "linked\n");
    fs.linkSync(join(upper, "h1"), join(upper, "h2"));
    fs.symlinkSync(LONG_TARGET, join(upper, "longlink"));
    mknod(join(upper, "gone"), fs.constants.S_IFCHR, 0, 0);
    fs.mkdirSync(join(upper, "dir"));
    mknod(join(upper, "dir/gone2"), fs.constants.S_IFCHR, 0, 0);
    fs.mkdirSync(join(upper, "opq"));
    setxattr(join(upper, "opq"), "trusted.overlay.opaque", Buffer.from("y"));
    w("opq/inside.txt", "i\n");
    setxattr(join(upper, "a"), "trusted.overlay.origin", Buffer.from([0, 1, 2]));
    setxattr(join(upper, "a/file.txt"), "user.test", Buffer.from([0xff, 0x00, 0x41]));
    mknod(join(upper, "fifo"), fs.constants.S_IFIFO | 0o600, 0, 0);
    fs.chmodSync(join(upper, "fifo"), 0o600);
    for (const p of ["a/file.txt", "h1", LONG_FILE]) fs.utimesSync(join(upper, p), 1700000000, 1700000000);
  });
  after(() => {
    if (root) fs.rmSync(root, { recursive: true, force: true });
  });

  test("entries in byte order, whiteouts as .wh. files, opaque marker after its dir; deterministic", async () => {
    const tar = await tarOf(upper);
    assert.ok((await tarOf(upper)).equals(tar), "same dir, same bytes");
    const tarFile = join(root, "layer.tar");
    fs.writeFileSync(tarFile, tar);
    const names = execFileSync("tar", ["-tf", tarFile], { encoding: "utf8" }).split("\n").filter(Boolean);
    assert.deepEqual(names, [
      "a/",
      "a/file.txt",
      "café/",
      "café/menü.txt",
      "dir/",
      "dir/.wh.gone2",
      "fifo",
      ".wh.gone",
      "h1",
      "h2",
      "long/",
      `${LONG_DIR}/`,
      LONG_FILE,
      "longlink",
      "opq/",
      "opq/.wh..wh..opq",
      "opq/inside.txt",
    ]);
    const verbose = execFileSync("tar", ["-tvf", tarFile, "--numeric-owner"], { encoding: "utf8" });
    assert.match(verbose, /^hrw-r--r-- 0\/0 +0 .* h2 link to h1$/m);
    assert.match(verbose, /^-rw-r----- 1000\/1000 +6 2023-11-14 22:13 a\/file\.txt$/m);
    assert.match(verbose, new RegExp(`^lrwxrwxrwx 0/0 +0 .* longlink -> ${LONG_TARGET}$`, "m"));
    assert.match(verbose, /^-rw------- 0\/0 +0 .* \.wh\.gone$/m);
    assert.match(verbose, /^prw------- 0\/0 +0 .* fifo$/m);
    // GNU tar reads the PAX xattr record
    const x = execFileSync("tar", ["--xattrs", "--xattrs-include=*", "-tvvf", tarFile], { encoding: "utf8" });
    assert.match(x, /user\.test/);
    assert.doesNotMatch(x, /trusted\.overlay/);
    // ends with exactly two zero blocks, no record padding
    assert.equal(tar.length % 512, 0);
    assert.ok(tar.subarray(tar.length - 1024).equals(Buffer.alloc(1024)));
    assert.ok(!tar.subarray(tar.length - 1536, tar.length - 1024).equals(Buffer.alloc(512)));
  });

  test("round trip through the layer engine restores the upper dir", async () => {
    const tar = await tarOf(upper);
    const diff = join(root, "diff");
    fs.mkdirSync(diff);
    const r = await unpackLayer(Readable.from([tar]), { diffDir: diff, tarSplitPath: join(root, "ts.json.gz") });
    assert.equal(r.diffId, `sha256:${createHash("sha256").update(tar).digest("hex")}`);
    assert.equal(r.tarSize, tar.length);
    assert.deepEqual(snapshot(diff, { mtimes: false }), snapshot(upper, { mtimes: false }));
    assert.equal(fs.statSync(join(diff, "a/file.txt")).mtimeMs, 1700000000000);
    assert.equal(fs.statSync(join(diff, "h1")).ino, fs.statSync(join(diff, "h2")).ino);
    assert.deepEqual(getxattr(join(diff, "a/file.txt"), "user.test"), Buffer.from([0xff, 0x00, 0x41]));
    assert.deepEqual(getxattr(join(diff, "opq"), "trusted.overlay.opaque"), Buffer.from("y"));
    assert.ok(!listxattr(join(diff, "a")).includes("trusted.overlay.origin"));
  });

  test("an upper dir using redirect_dir or metacopy is refused, not archived wrongly", async () => {
    const odd = join(root, "odd");
    fs.mkdirSync(join(odd, "moved"), { recursive: true });
    setxattr(join(odd, "moved"), "trusted.overlay.redirect", Buffer.from("/orig"));
    await assert.rejects(tarOf(odd), { name: "UnsupportedUpperError", message: /trusted\.overlay\.redirect/ });
  });

  test("an empty upper dir is the empty layer (1024 zero bytes)", async () => {
    const empty = join(root, "empty");
    fs.mkdirSync(empty);
    const tar = await tarOf(empty);
    assert.ok(tar.equals(Buffer.alloc(1024)));
    assert.equal(`sha256:${createHash("sha256").update(tar).digest("hex")}`, EMPTY_LAYER_DIFF_ID);
  });
});
