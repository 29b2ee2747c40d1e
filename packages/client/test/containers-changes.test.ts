// The rules of `strata diff` on hand-made layer dirs (no mount), one case per rule of moby's naive
// diff (ChangesDirs: collectFileInfoForChanges + addChanges + statDifferent); the comparison with
// a real dockerd on the same change is in containers-diff-docker.test.ts.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { formatChanges, overlayChanges } from "../src/containers/changes.js";
import { mknod, setxattr } from "../src/native.js";

const isRoot = process.getuid?.() === 0;
let work: string;
let n = 0;
before(() => {
  work = fs.mkdtempSync(join(tmpdir(), "strata-changes-"));
});
after(() => fs.rmSync(work, { recursive: true, force: true }));

type Spec = Record<string, string | { dir: true; mode?: number } | { whiteout: true } | { link: string } | { file: string; mode?: number; mtime?: number }>;

const T = 1_700_000_000;

function layer(spec: Spec): string {
  const root = join(work, `l${n++}`);
  fs.mkdirSync(root);
  for (const [rel, v] of Object.entries(spec)) {
    const p = join(root, rel);
    fs.mkdirSync(join(p, ".."), { recursive: true });
    if (typeof v === "string") fs.writeFileSync(p, v);
    else if ("dir" in v) {
      fs.mkdirSync(p, { recursive: true });
      fs.chmodSync(p, v.mode ?? 0o755);
    } else if ("whiteout" in v) mknod(p, fs.constants.S_IFCHR, 0, 0);
    else if ("link" in v) fs.symlinkSync(v.link, p);
    else {
      fs.writeFileSync(p, v.file);
      fs.chmodSync(p, v.mode ?? 0o644);
    }
    if (typeof v === "string" || "file" in v) {
      const m = typeof v === "string" ? T : (v.mtime ?? T);
      fs.utimesSync(p, m, m);
    }
  }
  // directories get one mtime, so only the rules (not the clock) decide
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(join(d, e.name));
    fs.utimesSync(d, T, T);
  };
  walk(root);
  return root;
}

const diff = (upper: string, ...lowers: string[]) => formatChanges(overlayChanges(lowers, upper)).split("\n").filter(Boolean);

describe("diff rules (moby's naive diff)", { skip: isRoot ? false : "whiteouts and overlay xattrs need root" }, () => {
  test("a changed file makes its unchanged directory C, listed before it", () => {
    const lower = layer({ "etc/hello.txt": "hello\n", "etc/other": "x" });
    const upper = layer({ "etc/hello.txt": "hello\nmore\n" });
    assert.deepEqual(diff(upper, lower), ["C /etc", "C /etc/hello.txt"]);
  });

  test("a copied-up file with the same mode, owner, size and mtime is no change, nor is its directory", () => {
    const lower = layer({ "etc/same.txt": "same\n" });
    const upper = layer({ "etc/same.txt": "SAME\n" });
    assert.deepEqual(diff(upper, lower), []);
  });

  test("mtimes are equal when the seconds agree and one side has no nanoseconds", () => {
    const lower = layer({ "f.txt": { file: "a", mtime: T } });
    const upper = layer({ "f.txt": { file: "a", mtime: T + 0.5 } });
    assert.deepEqual(diff(upper, lower), []);
    const lower2 = layer({ "f.txt": { file: "a", mtime: T + 0.25 } });
    assert.deepEqual(diff(upper, lower2), ["C /f.txt"]);
  });

  test("a directory's own change is its mode or owner, never its size or mtime", () => {
    const lower = layer({ "d/x": "x", "e/x": "x" });
    const upper = layer({ d: { dir: true, mode: 0o700 }, e: { dir: true } });
    fs.utimesSync(join(upper, "e"), T + 100, T + 100);
    assert.deepEqual(diff(upper, lower), ["C /d"]);
  });

  test("additions: an added directory and everything in it is A; the parent of an addition is C", () => {
    const lower = layer({ "srv/old": "o" });
    const upper = layer({ "srv/new/a/b.txt": "b", "srv/new/c": "c", "top.txt": "t" });
    assert.deepEqual(diff(upper, lower), ["C /srv", "A /srv/new", "A /srv/new/a", "A /srv/new/a/b.txt", "A /srv/new/c", "A /top.txt"]);
  });

  test("deletions: a whiteout is D of its path only, nothing below a deleted directory; a whiteout hiding nothing is no change", () => {
    const lower = layer({ "gone/a/b": "b", "keep/x": "x" });
    const upper = layer({ gone: { whiteout: true }, "keep/never-was": { whiteout: true } });
    assert.deepEqual(diff(upper, lower), ["D /gone"]);
  });

  test("an opaque directory: the old contents it hides are D, its own are A, the directory is C", () => {
    const lower2 = layer({ "opq/deep": "1", "opq/older": "1" });
    const lower1 = layer({ "opq/old1": "1", "opq/old2/x": "1" });
    const upper = layer({ "opq/fresh": "f", "opq/old1": "1" });
    setxattr(join(upper, "opq"), "trusted.overlay.opaque", Buffer.from("y"));
    // the old directory merges both lower layers; old1 is unchanged
    assert.deepEqual(diff(upper, lower1, lower2), ["C /opq", "D /opq/deep", "A /opq/fresh", "D /opq/old2", "D /opq/older"]);
  });

  test("type changes: a file replaced by a directory is C with its contents A; a directory replaced by a file is C alone", () => {
    const lower = layer({ "was-file": "f", "was-dir/x": "x" });
    const upper = layer({ "was-file/inner": "i", "was-dir": "now a file" });
    assert.deepEqual(diff(upper, lower), ["C /was-dir", "C /was-file", "A /was-file/inner"]);
  });

  test("symlinks are compared with lstat; security.capability counts", () => {
    const lower = layer({ "bin/tool": { file: "#!", mode: 0o755 }, "bin/ln": { link: "tool" } });
    const upper = layer({ "bin/tool": { file: "#!", mode: 0o755 }, "bin/ln": { link: "tool2" } });
    // a symlink's size is its target's length: "tool2" differs from "tool"
    setxattr(join(upper, "bin/tool"), "security.capability", Buffer.from("0100000200200000000000000000000000000000", "hex"));
    assert.deepEqual(diff(upper, lower), ["C /bin", "C /bin/ln", "C /bin/tool"]);
  });
});
