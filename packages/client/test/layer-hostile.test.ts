// Hostile layer tars: every escape attempt must fail (or be contained) with nothing written
// outside the diff dir. Each case runs in <case>/diff with a sentinel directory <case>/outside
// (holding one file) that must be unchanged afterwards.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { TarFormatError } from "../src/layer/tar.js";
import { LayerTooLargeError, UnsafeLayerError, unpackLayer } from "../src/layer/unpack.js";
import { getxattr } from "../src/native.js";
import { buildTar, type TarEntrySpec } from "./layer-helpers.js";

let work: string;
let n = 0;
before(() => {
  work = fs.mkdtempSync(join(tmpdir(), "strata-layer-hostile-"));
  fs.chmodSync(work, 0o755);
});
after(() => fs.rmSync(work, { recursive: true, force: true }));

interface Case {
  dir: string;
  diff: string;
  outside: string;
  tarSplit: string;
}

function newCase(): Case {
  const dir = join(work, `case${n++}`);
  const c = { dir, diff: join(dir, "diff"), outside: join(dir, "outside"), tarSplit: join(dir, "tar-split.json.gz") };
  fs.mkdirSync(c.diff, { recursive: true });
  fs.mkdirSync(c.outside);
  fs.writeFileSync(join(c.outside, "target"), "original\n", { mode: 0o644 });
  fs.chmodSync(join(c.outside, "target"), 0o644);
  return c;
}

function snapshot(dir: string): string[] {
  const out: string[] = [];
  const walk = (p: string, rel: string) => {
    const st = fs.lstatSync(p);
    out.push(`${rel} ${st.mode.toString(8)} ${st.uid}:${st.gid} ${st.size} ${st.mtimeMs}`);
    if (st.isDirectory()) for (const e of fs.readdirSync(p).sort()) walk(join(p, e), `${rel}/${e}`);
    else if (st.isFile()) out.push(fs.readFileSync(p, "utf8"));
  };
  walk(dir, ".");
  return out;
}

async function run(c: Case, entries: TarEntrySpec[] | Buffer, maxBytes?: number) {
  const tar = Buffer.isBuffer(entries) ? entries : buildTar(entries);
  return unpackLayer(Readable.from([tar]), { diffDir: c.diff, tarSplitPath: c.tarSplit, maxBytes });
}

/** Runs a tar that must be refused; checks the error and that the sentinel dir is unchanged. */
async function refused(entries: TarEntrySpec[] | Buffer, pattern: RegExp, errClass: new (...a: never[]) => Error = UnsafeLayerError, maxBytes?: number) {
  const c = newCase();
  const before = snapshot(c.outside);
  const parentBefore = fs.readdirSync(c.dir).sort();
  await assert.rejects(run(c, entries, maxBytes), (e: Error) => {
    assert.ok(e instanceof errClass, `expected ${errClass.name}, got ${e.name}: ${e.message}`);
    assert.match(e.message, pattern);
    return true;
  });
  assert.deepEqual(snapshot(c.outside), before, "sentinel directory changed");
  assert.deepEqual(
    fs.readdirSync(c.dir).sort(),
    parentBefore.filter((x) => x !== "tar-split.json.gz"),
    "files appeared next to the diff dir",
  );
  assert.equal(fs.existsSync(c.tarSplit), false, "partial tar-split left behind");
  return c;
}

const file = (name: string, data = "evil\n", extra: Partial<TarEntrySpec> = {}): TarEntrySpec => ({ name, data, ...extra });

describe("path escapes", () => {
  test("absolute names are contained inside the diff dir", async () => {
    const c = newCase();
    const before = snapshot(c.outside);
    await run(c, [file(`${c.outside}/abs.txt`), file("/top.txt")]);
    assert.deepEqual(snapshot(c.outside), before);
    assert.equal(fs.readFileSync(join(c.diff, c.outside, "abs.txt"), "utf8"), "evil\n");
    assert.equal(fs.readFileSync(join(c.diff, "top.txt"), "utf8"), "evil\n");
  });

  test("../ escapes are refused", async () => {
    await refused([file("../outside/escape.txt")], /outside the layer directory/);
    await refused([{ name: "a/", type: "5" }, file("a/../../outside/escape.txt")], /outside the layer directory/);
    await refused([file("..", "x")], /outside the layer directory/);
  });

  test("writing through a symlink planted by an earlier entry is refused", async () => {
    const c = await refused([{ name: "a", type: "2", linkname: join(work, "case-nonexistent") }, file("a/evil")], /is a symlink, not a directory/);
    assert.equal(fs.lstatSync(join(c.diff, "a")).isSymbolicLink(), true);
    await refused([{ name: "rel", type: "2", linkname: "../outside" }, file("rel/target", "overwritten\n")], /not a directory/);
    await refused([{ name: "up", type: "2", linkname: ".." }, file("up/outside/target", "overwritten\n")], /not a directory/);
    await refused(
      [
        { name: "d", type: "2", linkname: "../outside" },
        { name: "d/", type: "5" },
      ],
      /duplicate|collides|not a directory/,
    );
    // symlink to the absolute sentinel, then a directory entry and a file below it
    const c2 = newCase();
    await assert.rejects(
      run(c2, [
        { name: "x", type: "2", linkname: c2.outside },
        { name: "x/sub/", type: "5" },
      ]),
      /not a directory/,
    );
    assert.deepEqual(fs.readdirSync(c2.outside), ["target"]);
  });

  test("hardlinks to outside targets are refused", async () => {
    await refused([{ name: "pw", type: "1", linkname: "/etc/passwd" }], /not an earlier entry/);
    await refused([{ name: "t", type: "1", linkname: "../outside/target" }], /outside the layer directory/);
    await refused(
      [
        { name: "s", type: "2", linkname: "../outside" },
        { name: "t", type: "1", linkname: "s/target" },
      ],
      /not an earlier entry/,
    );
  });

  test("a hardlink to a symlink that leads outside links the symlink itself and changes nothing outside", async () => {
    const c = newCase();
    const before = snapshot(c.outside);
    await run(c, [
      { name: "s", type: "2", linkname: join(c.outside, "target") },
      { name: "h", type: "1", linkname: "s", mode: 0o777, uid: 1234, gid: 1234, mtime: 1 },
    ]);
    assert.deepEqual(snapshot(c.outside), before);
    assert.equal(fs.readlinkSync(join(c.diff, "h")), join(c.outside, "target"));
    assert.equal(fs.lstatSync(join(c.diff, "h")).nlink, 2);
  });
});

describe("whiteout rules", () => {
  test("whiteout colliding with a file of the same layer is refused (both orders)", async () => {
    await refused([file("x"), file(".wh.x", "")], /collides/);
    await refused([file(".wh.x", ""), file("x")], /collides/);
    await refused([{ name: "d/", type: "5" }, file("d/.wh.x", ""), { name: "d/x/", type: "5" }], /collides/);
  });

  test("reserved and malformed whiteout names are refused", async () => {
    await refused([file(".wh..wh.plnk/123", "")], /reserved whiteout prefix|whiteout metadata/);
    await refused([file(".wh..wh.aufs", "")], /whiteout metadata/);
    await refused([file(".wh.", "")], /invalid whiteout/);
    await refused([file("a/.wh..", "")], /invalid whiteout/);
    await refused([{ name: ".wh.dir/", type: "5" }, file(".wh.dir/f")], /whiteout|reserved/);
  });

  test("whiteout and opaque entries become a 0:0 char device and trusted.overlay.opaque", async () => {
    const c = newCase();
    await run(c, [{ name: "d/", type: "5", mtime: 1600000000 }, file("d/.wh..wh..opq", ""), file("d/.wh.gone", "", { uid: 7, gid: 8 })]);
    const st = fs.lstatSync(join(c.diff, "d/gone"));
    assert.ok(st.isCharacterDevice());
    assert.equal(st.rdev, 0);
    assert.equal(st.mode & 0o7777, 0);
    assert.equal(`${st.uid}:${st.gid}`, "7:8");
    assert.equal(getxattr(join(c.diff, "d"), "trusted.overlay.opaque")?.toString(), "y");
    assert.equal(fs.existsSync(join(c.diff, "d/.wh..wh..opq")), false);
    assert.equal(fs.statSync(join(c.diff, "d")).mtimeMs, 1600000000000);
  });
});

describe("other refusals", () => {
  test("size bombs beyond maxBytes are refused before the data is written", async () => {
    const big = Buffer.alloc(64 * 1024, 1);
    const c = await refused([file("bomb", big.toString("latin1"))], /size limit/, LayerTooLargeError, 16 * 1024);
    assert.equal(fs.existsSync(join(c.diff, "bomb")), false);
    // many small entries: the stream bound applies too
    const many = Array.from({ length: 100 }, (_, i) => file(`f${i}`, "x"));
    await refused(many, /size limit/, LayerTooLargeError, 20 * 1024);
    // a header claiming a huge size is refused without waiting for the data
    const hdrOnly = buildTar([{ name: "huge", data: "", size: 2 ** 32 }]).subarray(0, 512);
    await refused(hdrOnly, /size limit/, LayerTooLargeError, 1 << 20);
  });

  test("very deep and very long names fail cleanly", async () => {
    const deep = `${"a/".repeat(300000)}f`;
    const c = await refused([file("x", "x", { pax: { path: deep } })], /deeper than 1024/);
    assert.deepEqual(fs.readdirSync(c.diff), []);
    // within the depth bound but beyond PATH_MAX: the kernel's error, and the tree stays removable
    const long = `${"d".repeat(200)}/`.repeat(40);
    const c2 = await refused([file("x", "x", { pax: { path: `${long}f` } })], /ENAMETOOLONG|name too long/, Error);
    fs.rmSync(c2.diff, { recursive: true });
  });

  test("duplicate paths are refused like tar-split does", async () => {
    await refused([file("a"), file("./a")], /duplicate/);
    await refused(
      [
        { name: "d/", type: "5" },
        { name: "d", type: "5" },
      ],
      /duplicate/,
    );
  });

  test("overlay xattrs from the tar are refused", async () => {
    await refused([file("f", "x", { pax: { "SCHILY.xattr.trusted.overlay.redirect": "/etc" } })], /reserved for overlayfs/);
  });

  test("unsupported entry types and broken tars are refused", async () => {
    await refused([file("c", "x", { type: "7" })], /unsupported tar entry type/);
    await refused(Buffer.from("this is not a tar archive at all".repeat(40)), /checksum/, TarFormatError);
    const t = buildTar([file("a", "0123456789".repeat(100))]);
    await refused(t.subarray(0, 700), /unexpected end/, TarFormatError);
  });

  test("device nodes are created as root and refused otherwise", async () => {
    const c = newCase();
    await run(c, [
      { name: "null", type: "3", devmajor: 1, devminor: 3, mode: 0o666 },
      { name: "p", type: "6", mode: 0o600 },
    ]);
    const st = fs.lstatSync(join(c.diff, "null"));
    assert.ok(st.isCharacterDevice());
    assert.equal(st.rdev, (1 << 8) | 3);
    assert.ok(fs.lstatSync(join(c.diff, "p")).isFIFO());

    // the same tar, unpacked by an unprivileged user
    const c2 = newCase();
    fs.chownSync(c2.diff, 65534, 65534);
    const tarPath = join(c2.dir, "dev.tar");
    fs.writeFileSync(tarPath, buildTar([{ name: "null", type: "3", devmajor: 1, devminor: 3 }]));
    const unpackJs = fileURLToPath(new URL("../src/layer/unpack.js", import.meta.url));
    const script = `import { unpackLayer } from ${JSON.stringify(unpackJs)}; import fs from "node:fs";
      unpackLayer(fs.createReadStream(${JSON.stringify(tarPath)}), { diffDir: ${JSON.stringify(c2.diff)}, tarSplitPath: ${JSON.stringify(join(c2.diff, "..", "ts.gz"))} })
        .then(() => { console.log("OK"); }, (e) => { console.log(e.name + ": " + e.message); });`;
    fs.chmodSync(c2.dir, 0o777);
    const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], { uid: 65534, gid: 65534, encoding: "utf8" });
    assert.match(r.stdout, /UnsafeLayerError: .*device node .* not running as root/, r.stderr);
    assert.deepEqual(fs.readdirSync(c2.diff), []);
  });

  test("a refusal is reported while the input keeps coming (no deadlock on backpressure)", { timeout: 30000 }, async () => {
    const c = newCase();
    const head = buildTar([file("../outside/escape.txt", "x")]).subarray(0, 1024);
    const filler = Buffer.alloc(1 << 20);
    async function* endless() {
      yield head;
      for (;;) yield filler;
    }
    await assert.rejects(unpackLayer(Readable.from(endless()), { diffDir: c.diff, tarSplitPath: c.tarSplit }), UnsafeLayerError);
    assert.deepEqual(fs.readdirSync(c.outside), ["target"]);
  });

  test("an unprivileged user can extract into read-only directories", async () => {
    const c = newCase();
    fs.chownSync(c.diff, 65534, 65534);
    fs.chmodSync(c.dir, 0o777);
    const tarPath = join(c.dir, "ro.tar");
    fs.writeFileSync(
      tarPath,
      buildTar([
        { name: "ro/", type: "5", mode: 0o555 },
        file("ro/f.txt", "data", { mode: 0o444 }),
        { name: "ro/sub/", type: "5", mode: 0o500 },
        file("ro/sub/g", "g"),
      ]),
    );
    const unpackJs = fileURLToPath(new URL("../src/layer/unpack.js", import.meta.url));
    const script = `import { unpackLayer } from ${JSON.stringify(unpackJs)}; import fs from "node:fs";
      unpackLayer(fs.createReadStream(${JSON.stringify(tarPath)}), { diffDir: ${JSON.stringify(c.diff)}, tarSplitPath: ${JSON.stringify(join(c.dir, "ro.ts.gz"))} })
        .then((r) => { console.log("OK " + r.size); }, (e) => { console.log(e.name + ": " + e.message); });`;
    const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], { uid: 65534, gid: 65534, encoding: "utf8" });
    assert.equal(r.stdout.trim(), "OK 5", r.stderr);
    assert.equal(fs.statSync(join(c.diff, "ro")).mode & 0o7777, 0o555);
    assert.equal(fs.statSync(join(c.diff, "ro/sub")).mode & 0o7777, 0o500);
    assert.equal(fs.statSync(join(c.diff, "ro")).mtimeMs, 1700000000000);
    assert.equal(fs.readFileSync(join(c.diff, "ro/sub/g"), "utf8"), "g");
  });

  test("an aborted unpack stops with an AbortError", async () => {
    const c = newCase();
    const ac = new AbortController();
    const src = new Readable({ read() {} });
    const p = unpackLayer(src, { diffDir: c.diff, tarSplitPath: c.tarSplit, signal: ac.signal });
    src.push(buildTar([file("a", "x")]).subarray(0, 1024));
    setTimeout(() => ac.abort(), 10);
    await assert.rejects(p, { name: "AbortError" });
  });
});
