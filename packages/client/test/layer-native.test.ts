// The native addon (mknod, xattrs, mount/umount, the strata-mount helper) and CRC-64, with real
// syscalls as root.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { crc64Update, crc64UpdateJs } from "../src/layer/crc64.js";
import { getxattr, listxattr, mknod, mount, mountAt, nativeAvailable, setxattr, startWriteback, syncfs, umount } from "../src/native.js";

let work: string;
before(() => {
  work = fs.mkdtempSync(join(tmpdir(), "strata-native-"));
});
after(() => fs.rmSync(work, { recursive: true, force: true }));

function isMounted(p: string): boolean {
  return fs
    .readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .some((l) => l.split(" ")[4] === p);
}

describe("native addon", () => {
  test("is built", () => assert.equal(nativeAvailable(), true));

  test("mknod creates fifos and devices; errors carry code and path", () => {
    mknod(join(work, "fifo"), fs.constants.S_IFIFO | 0o640, 0, 0);
    mknod(join(work, "zero"), fs.constants.S_IFCHR, 0, 0);
    mknod(join(work, "blk"), fs.constants.S_IFBLK | 0o600, 7, 300);
    assert.ok(fs.lstatSync(join(work, "fifo")).isFIFO());
    const z = fs.lstatSync(join(work, "zero"));
    assert.ok(z.isCharacterDevice());
    assert.equal(z.rdev, 0);
    assert.equal(z.mode & 0o7777, 0);
    const b = fs.lstatSync(join(work, "blk"));
    assert.ok(b.isBlockDevice());
    // Linux dev_t encoding of 7:300
    assert.equal(b.rdev, (7 << 8) | (300 & 0xff) | ((300 & ~0xff) << 12));
    assert.throws(() => mknod(join(work, "zero"), fs.constants.S_IFCHR, 0, 0), { code: "EEXIST", syscall: "mknod", path: join(work, "zero") });
    // non-UTF-8 names as Buffers
    const raw = Buffer.concat([Buffer.from(`${work}/`), Buffer.from([0x66, 0xff, 0x66])]);
    mknod(raw, fs.constants.S_IFIFO | 0o600, 0, 0);
    assert.ok(fs.lstatSync(raw).isFIFO());
  });

  test("xattrs: set, get (lgetxattr), list (llistxattr), noFollow on symlinks", () => {
    const f = join(work, "xf");
    fs.writeFileSync(f, "x");
    setxattr(f, "user.a", Buffer.from("1"));
    setxattr(f, "trusted.overlay.opaque", Buffer.from("y"));
    setxattr(f, "user.bin", Buffer.from([0, 1, 2, 255]));
    assert.deepEqual(listxattr(f).sort(), ["trusted.overlay.opaque", "user.a", "user.bin"]);
    assert.deepEqual(getxattr(f, "user.bin"), Buffer.from([0, 1, 2, 255]));
    assert.equal(getxattr(f, "user.missing"), undefined);
    const l = join(work, "xl");
    fs.symlinkSync(f, l);
    // lgetxattr does not follow the symlink
    assert.equal(getxattr(l, "user.a"), undefined);
    setxattr(l, "trusted.x", Buffer.from("on-link"), { noFollow: true });
    assert.equal(getxattr(l, "trusted.x")?.toString(), "on-link");
    assert.equal(getxattr(f, "trusted.x"), undefined);
    assert.throws(() => getxattr(join(work, "nope"), "user.a"), { code: "ENOENT" });
  });

  test("mount and umount a tmpfs", () => {
    const m = join(work, "mnt");
    fs.mkdirSync(m);
    mount("tmpfs", m, "tmpfs", 0, "size=1m,mode=0700");
    try {
      assert.ok(isMounted(m));
      assert.equal(fs.statSync(m).mode & 0o777, 0o700);
    } finally {
      umount(m);
    }
    assert.equal(isMounted(m), false);
    assert.throws(() => umount(m), { code: "EINVAL" });
  });

  test("mountAt mounts overlayfs with paths relative to a directory", () => {
    const root = join(work, "ovl");
    for (const d of ["l/A", "l/B", "upper", "work", "merged"]) fs.mkdirSync(join(root, d), { recursive: true });
    fs.writeFileSync(join(root, "l/A/a.txt"), "from A");
    fs.writeFileSync(join(root, "l/B/a.txt"), "from B");
    fs.writeFileSync(join(root, "l/B/b.txt"), "from B");
    mountAt(root, "overlay", "merged", "overlay", 0, "lowerdir=l/A:l/B,upperdir=upper,workdir=work");
    const merged = join(root, "merged");
    try {
      assert.equal(fs.readFileSync(join(merged, "a.txt"), "utf8"), "from A");
      assert.equal(fs.readFileSync(join(merged, "b.txt"), "utf8"), "from B");
    } finally {
      umount(merged);
    }
    assert.throws(() => mountAt(root, "overlay", "merged", "overlay", 0, "lowerdir=l/missing,upperdir=upper,workdir=work"), { code: "ENOENT" });
  });
});

describe("native addon: durability", () => {
  test("startWriteback starts writing dirty pages of an open file; a bad fd is EBADF", () => {
    const p = join(work, "wb");
    const fd = fs.openSync(p, "w");
    try {
      fs.writeSync(fd, Buffer.alloc(4 << 20, 7));
      startWriteback(fd, 0, 0);
      startWriteback(fd, 1 << 20, 1 << 20);
    } finally {
      fs.closeSync(fd);
    }
    assert.equal(fs.statSync(p).size, 4 << 20);
    assert.throws(() => startWriteback(1_000_000, 0, 0), (e: NodeJS.ErrnoException) => e.code === "EBADF" && e.syscall === "sync_file_range");
    assert.throws(() => startWriteback(0, -1, 0), RangeError);
  });

  test("syncfs flushes the filesystem of a path; a missing path is ENOENT with the path", () => {
    fs.writeFileSync(join(work, "dirty"), "x");
    syncfs(work);
    const missing = join(work, "no", "such");
    assert.throws(() => syncfs(missing), (e: NodeJS.ErrnoException) => e.code === "ENOENT" && e.path === missing && e.syscall === "open");
  });
});

describe("CRC-64/ISO", () => {
  test("check value and native/JS agreement", () => {
    for (const f of [crc64Update, crc64UpdateJs]) {
      const s = Buffer.alloc(8);
      f(s, Buffer.from("123456789"));
      assert.equal(s.toString("hex"), "b90956c775a41001");
    }
    const data = Buffer.alloc(100003);
    for (let i = 0; i < data.length; i++) data[i] = (i * 2654435761) >>> 24;
    const a = Buffer.alloc(8);
    const b = Buffer.alloc(8);
    crc64Update(a, data.subarray(0, 12345));
    crc64Update(a, data.subarray(12345));
    crc64UpdateJs(b, data);
    assert.equal(a.toString("hex"), b.toString("hex"));
  });

  test("native (carry-less multiply path for >= 128 bytes) agrees with the table for all lengths and offsets", () => {
    const data = Buffer.alloc(4096 + 64);
    for (let i = 0; i < data.length; i++) data[i] = (i * 40503 + 7) >>> 3;
    for (let len = 0; len <= 600; len += 1) {
      for (const off of [0, 1, 7, 13]) {
        const slice = data.subarray(off, off + len);
        const a = Buffer.from("0123456789abcdef", "hex");
        const b = Buffer.from(a);
        crc64Update(a, slice);
        crc64UpdateJs(b, slice);
        assert.equal(a.toString("hex"), b.toString("hex"), `len ${len} off ${off}`);
      }
    }
  });
});
