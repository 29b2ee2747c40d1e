/**
 * The one conformance suite every storage driver runs (see driver.ts for the contract it
 * checks). A driver's test file only supplies a factory:
 *
 *   driverConformanceSuite("filesystem", async () => ({ driver, cleanup }));
 *
 * The factory runs once per suite. Every test works below its own fresh key prefix and must
 * leave nothing behind: after each test the prefix is walked, and any key still stored there
 * fails that test. Large objects appear in two tests only, so the suite stays quick against
 * a remote object store.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import type { Readable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { InvalidPathError, PathNotFoundError, type StorageDriver } from "./driver.js";

const KiB = 1024;
const MiB = 1024 * KiB;

type Made = { driver: StorageDriver; cleanup: () => Promise<void> };

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.from(c as Uint8Array));
  return Buffer.concat(chunks);
}

async function sha256(stream: Readable): Promise<string> {
  const h = createHash("sha256");
  for await (const c of stream) h.update(c as Uint8Array);
  return h.digest("hex");
}

const hashOf = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

const notFound = (p: Promise<unknown>, what: string) => assert.rejects(p, PathNotFoundError, `${what}: expected PathNotFoundError`);
const invalid = (p: Promise<unknown>, what: string) => assert.rejects(p, InvalidPathError, `${what}: expected InvalidPathError`);
const aborted = (p: Promise<unknown>, what: string) => assert.rejects(p, (e: Error) => e?.name === "AbortError", `${what}: expected an AbortError`);

/** Byte order, the order `list` promises. */
const byteOrder = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

/** Children of `key`, or none when it does not exist: an emptied "directory" may vanish or stay empty. */
async function childrenOrNone(d: StorageDriver, key: string): Promise<string[]> {
  try {
    return (await d.list(key)).keys;
  } catch (e) {
    if (e instanceof PathNotFoundError) return [];
    throw e;
  }
}

/** Every object stored at or below `key`. */
async function objectsBelow(d: StorageDriver, key: string): Promise<string[]> {
  const out: string[] = [];
  for (const child of await childrenOrNone(d, key)) {
    out.push(...(await objectsBelow(d, child)));
    try {
      if (!(await d.stat(child)).isDir) out.push(child);
    } catch (e) {
      if (!(e instanceof PathNotFoundError)) throw e;
    }
  }
  return out;
}

export function driverConformanceSuite(name: string, makeDriver: () => Promise<Made>): void {
  // Groups run concurrently (each test has its own prefix); tests within a group run in order.
  describe(`storage driver conformance: ${name}`, { concurrency: true }, () => {
    let made: Made | undefined;
    const run = `/conformance-${randomBytes(6).toString("hex")}`;
    let seq = 0;

    before(async () => {
      made = await makeDriver();
    });

    after(async () => {
      if (!made) return;
      try {
        const left = await objectsBelow(made.driver, run);
        if (left.length > 0) await made.driver.delete(run).catch(() => {});
        assert.deepEqual(left, [], "keys left behind by the suite");
      } finally {
        await made.driver.close?.();
        await made.cleanup();
      }
    });

    /** A test with its own key prefix `p`, failed if anything remains below `p` afterwards. */
    const test = (title: string, body: (d: StorageDriver, p: string) => Promise<void>) =>
      it(title, async () => {
        assert.ok(made, "driver factory failed");
        const d = made.driver;
        const p = `${run}/t${++seq}`;
        try {
          await body(d, p);
        } catch (e) {
          await d.delete(p).catch(() => {});
          throw e;
        }
        const left = await objectsBelow(d, p);
        if (left.length > 0) await d.delete(p).catch(() => {});
        assert.deepEqual(left, [], "test left keys behind");
      });

    describe("content", () => {
      test("putContent then getContent returns the same bytes, also below new directories", async (d, p) => {
        const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
        await d.putContent(`${p}/a/b/c/obj`, all);
        assert.deepEqual(await d.getContent(`${p}/a/b/c/obj`), all);
        assert.deepEqual(await readAll(await d.reader(`${p}/a/b/c/obj`)), all);
        await d.delete(p);
      });

      test("empty content is stored as an empty object, not as a missing one", async (d, p) => {
        await d.putContent(`${p}/empty`, new Uint8Array(0));
        assert.equal((await d.getContent(`${p}/empty`)).length, 0);
        assert.equal((await readAll(await d.reader(`${p}/empty`))).length, 0);
        const st = await d.stat(`${p}/empty`);
        assert.equal(st.size, 0);
        assert.equal(st.isDir, false);
        assert.deepEqual((await d.list(p)).keys, [`${p}/empty`]);
        await d.delete(p);
      });

      test("putContent overwrites, also with shorter content", async (d, p) => {
        await d.putContent(`${p}/k`, Buffer.from("a much longer first version"));
        await d.putContent(`${p}/k`, Buffer.from("short"));
        assert.equal((await d.getContent(`${p}/k`)).toString(), "short");
        assert.equal((await d.stat(`${p}/k`)).size, 5);
        await d.delete(p);
      });

      test("large putContent (6 MiB) round-trips", async (d, p) => {
        const data = randomBytes(6 * MiB + 11);
        await d.putContent(`${p}/big`, data);
        assert.equal((await d.stat(`${p}/big`)).size, data.length);
        assert.ok((await d.getContent(`${p}/big`)).equals(data), "getContent differs");
        assert.equal(await sha256(await d.reader(`${p}/big`)), hashOf(data));
        await d.delete(p);
      });

      test("components may contain dots, dashes and underscores", async (d, p) => {
        const keys = [`${p}/.hidden`, `${p}/...`, `${p}/a..b/c`, `${p}/-x_y.z`, `${p}/_`];
        await Promise.all(keys.map((k) => d.putContent(k, Buffer.from(k))));
        for (const k of keys) assert.equal((await d.getContent(k)).toString(), k);
        assert.deepEqual((await d.list(p)).keys, [`${p}/-x_y.z`, `${p}/...`, `${p}/.hidden`, `${p}/_`, `${p}/a..b`]);
        assert.deepEqual((await d.list(`${p}/a..b`)).keys, [`${p}/a..b/c`]);
        await d.delete(p);
      });
    });

    describe("missing keys", () => {
      test("every operation on a missing key throws PathNotFoundError", async (d, p) => {
        const k = `${p}/nothing/here`;
        await notFound(d.getContent(k), "getContent");
        await notFound(d.reader(k), "reader");
        await notFound(d.reader(k, { offset: 3, length: 2 }), "reader with range");
        await notFound(d.stat(k), "stat");
        await notFound(d.list(k), "list");
        await notFound(d.delete(k), "delete");
        await notFound(d.move(k, `${p}/dest`), "move");
        await notFound(d.stat(`${p}/dest`), "move of a missing source created its destination");
      });

      test("a path below an object, and a directory's own key, have no content", async (d, p) => {
        await d.putContent(`${p}/dir/file`, Buffer.from("x"));
        await notFound(d.getContent(`${p}/dir/file/below`), "getContent below a file");
        await notFound(d.reader(`${p}/dir/file/below`), "reader below a file");
        await notFound(d.stat(`${p}/dir/file/below`), "stat below a file");
        await notFound(d.delete(`${p}/dir/file/below`), "delete below a file");
        await notFound(d.list(`${p}/dir/file`), "list of a file");
        await notFound(d.getContent(`${p}/dir`), "getContent of a directory");
        await notFound(d.reader(`${p}/dir`), "reader of a directory");
        await d.delete(p);
      });

      test("move of a missing source leaves an existing destination alone", async (d, p) => {
        await d.putContent(`${p}/dest`, Buffer.from("keep"));
        await notFound(d.move(`${p}/src`, `${p}/dest`), "move");
        assert.equal((await d.getContent(`${p}/dest`)).toString(), "keep");
        await d.delete(p);
      });
    });

    describe("key validation", () => {
      const bad = [
        "",
        "v2/x",
        "/",
        "/v2/",
        "/v2//x",
        "/v2/./x",
        "/v2/../x",
        "/v2/x/..",
        "/v2/a b",
        " /v2/x",
        "/v2/x~",
        "/v2/é",
        "/v2/x\n",
        "/v2\\x",
        "/v2/x?y",
      ];
      test("keys outside the grammar are rejected with InvalidPathError by every operation", async (d, p) => {
        const good = `${p}/good`;
        await d.putContent(good, Buffer.from("g"));
        for (const k of bad) {
          const what = JSON.stringify(k);
          await invalid(d.getContent(k), `getContent ${what}`);
          await invalid(d.putContent(k, Buffer.from("x")), `putContent ${what}`);
          await invalid(d.reader(k), `reader ${what}`);
          await invalid(d.writer(k), `writer ${what}`);
          await invalid(d.writer(k, { append: true }), `writer append ${what}`);
          await invalid(d.stat(k), `stat ${what}`);
          await invalid(d.list(k), `list ${what}`);
          await invalid(d.list(p, { after: k }), `list after ${what}`);
          await invalid(d.move(k, `${p}/other`), `move from ${what}`);
          await invalid(d.move(good, k), `move to ${what}`);
          await invalid(d.delete(k), `delete ${what}`);
          if (d.redirectURL) await invalid(d.redirectURL(k, { method: "GET", expiresInSeconds: 60 }), `redirectURL ${what}`);
        }
        assert.equal((await d.getContent(good)).toString(), "g");
        assert.deepEqual((await d.list(p)).keys, [good]);
        await d.delete(p);
      });
    });

    describe("reader ranges", () => {
      const data = Buffer.from(Array.from({ length: 100 }, (_, i) => i));
      const cases: Array<[string, { offset?: number; length?: number }, Buffer]> = [
        ["no range", {}, data],
        ["offset", { offset: 10 }, data.subarray(10)],
        ["length", { length: 10 }, data.subarray(0, 10)],
        ["offset and length", { offset: 10, length: 20 }, data.subarray(10, 30)],
        ["length past the end", { offset: 90, length: 50 }, data.subarray(90)],
        ["last byte", { offset: 99 }, data.subarray(99)],
        ["offset at the end", { offset: 100 }, Buffer.alloc(0)],
        ["offset at the end with length", { offset: 100, length: 10 }, Buffer.alloc(0)],
        ["offset past the end", { offset: 150 }, Buffer.alloc(0)],
        ["zero length", { offset: 5, length: 0 }, Buffer.alloc(0)],
      ];
      test("offset and length select the bytes; at or past the end the stream is empty", async (d, p) => {
        await d.putContent(`${p}/r`, data);
        for (const [what, range, want] of cases) assert.deepEqual(await readAll(await d.reader(`${p}/r`, range)), want, what);
        await d.delete(p);
      });
    });

    describe("writer", () => {
      test("content is readable only after commit, and size counts what was written", async (d, p) => {
        const k = `${p}/dir/w`;
        await d.putContent(`${p}/dir/other`, Buffer.from("o"));
        const w = await d.writer(k);
        assert.equal(w.size, 0);
        await w.write(Buffer.from("hello "));
        await w.write(new Uint8Array(Buffer.from("world")));
        assert.equal(w.size, 11);
        await notFound(d.getContent(k), "getContent before commit");
        await notFound(d.reader(k), "reader before commit");
        await notFound(d.stat(k), "stat before commit");
        assert.deepEqual((await d.list(`${p}/dir`)).keys, [`${p}/dir/other`], "list before commit");
        await w.commit();
        assert.equal((await d.getContent(k)).toString(), "hello world");
        assert.equal((await d.stat(k)).size, 11);
        assert.deepEqual((await d.list(`${p}/dir`)).keys, [`${p}/dir/other`, k], "list after commit");
        await d.delete(p);
      });

      test("a writer told its size publishes nothing before commit, also with every byte written", async (d, p) => {
        const k = `${p}/sized`;
        const data = randomBytes(300_000);
        const w = await d.writer(k, { size: data.length });
        for (let i = 0; i < data.length; i += 65536) await w.write(data.subarray(i, i + 65536));
        assert.equal(w.size, data.length);
        await notFound(d.getContent(k), "getContent before commit");
        await notFound(d.stat(k), "stat before commit");
        await w.commit();
        assert.ok((await d.getContent(k)).equals(data));
        await d.delete(p);
      });

      test("a cancelled sized writer leaves nothing, also with every byte written", async (d, p) => {
        const k = `${p}/sized-cancel`;
        const data = randomBytes(100_000);
        const w = await d.writer(k, { size: data.length });
        await w.write(data);
        await w.cancel();
        await notFound(d.getContent(k), "getContent after cancel");
        assert.deepEqual(await childrenOrNone(d, p), [], "list after cancel");
      });

      test("commitTo (drivers that offer it) publishes the appended content at the destination only, replacing it", async (d, p) => {
        const probe = await d.writer(`${p}/probe`);
        const direct = probe.commitTo !== undefined;
        await probe.cancel();
        if (!direct) return;
        const up = `${p}/uploads/u1/data`;
        const dest = `${p}/blobs/ab/data`;
        const first = randomBytes(6 * 1024 * 1024 + 11);
        const second = randomBytes(300_001);
        await d.putContent(dest, Buffer.from("old"));
        const w1 = await d.writer(up);
        await w1.write(first);
        await w1.close();
        const w2 = await d.writer(up, { append: true });
        await w2.write(second);
        assert.equal((await d.getContent(dest)).toString(), "old", "dest before commitTo");
        assert.equal(await w2.commitTo!(dest, { unless: Promise.resolve(false) }), true);
        assert.ok((await d.getContent(dest)).equals(Buffer.concat([first, second])), "content at dest");
        assert.equal((await d.stat(dest)).size, first.length + second.length);
        await notFound(d.stat(up), "stat of the writer's key after commitTo");
        const again = await d.writer(up, { append: true });
        assert.equal(again.size, 0, "nothing left to resume at the writer's key");
        await again.cancel();
        await d.delete(`${p}/uploads`).catch((e) => {
          if (!(e instanceof PathNotFoundError)) throw e;
        });
        assert.ok((await d.getContent(dest)).equals(Buffer.concat([first, second])), "content at dest after the upload directory went");
        await d.delete(p);
      });

      test("commitTo told `unless` true discards the content and leaves the destination as it was", async (d, p) => {
        const probe = await d.writer(`${p}/probe`);
        const direct = probe.commitTo !== undefined;
        await probe.cancel();
        if (!direct) return;
        const dest = `${p}/blobs/cd/data`;
        await d.putContent(dest, Buffer.from("kept"));
        for (const size of [1000, 6 * 1024 * 1024 + 3]) {
          const up = `${p}/uploads/u${size}/data`;
          const w1 = await d.writer(up);
          await w1.write(randomBytes(size));
          await w1.close();
          const w2 = await d.writer(up, { append: true });
          assert.equal(await w2.commitTo!(dest, { unless: Promise.resolve(true) }), false);
          assert.equal((await d.getContent(dest)).toString(), "kept");
          await notFound(d.stat(up), "stat of the writer's key");
          const again = await d.writer(up, { append: true });
          assert.equal(again.size, 0, "nothing left to resume");
          await again.cancel();
        }
        assert.deepEqual(await objectsBelow(d, `${p}/uploads`), [], "upload keys left");
        await d.delete(p);
      });

      test("commit with zero bytes stores an empty object", async (d, p) => {
        const w = await d.writer(`${p}/zero`);
        await w.commit();
        assert.equal((await d.getContent(`${p}/zero`)).length, 0);
        assert.equal((await d.stat(`${p}/zero`)).size, 0);
        await d.delete(p);
      });

      test("close keeps the bytes unpublished; append writers continue at size", async (d, p) => {
        const k = `${p}/resumed`;
        const w1 = await d.writer(k);
        await w1.write(Buffer.from("one,"));
        await w1.close();
        await notFound(d.getContent(k), "getContent after close");
        await notFound(d.stat(k), "stat after close");
        assert.deepEqual(await childrenOrNone(d, p), [], "list after close");
        const w2 = await d.writer(k, { append: true });
        assert.equal(w2.size, 4);
        await w2.write(Buffer.from("two,"));
        assert.equal(w2.size, 8);
        await w2.close();
        const w3 = await d.writer(k, { append: true });
        assert.equal(w3.size, 8);
        await w3.write(Buffer.from("three"));
        await w3.commit();
        assert.equal((await d.getContent(k)).toString(), "one,two,three");
        await d.delete(p);
      });

      test("a writer without append starts over instead of continuing closed bytes", async (d, p) => {
        const k = `${p}/restart`;
        const w1 = await d.writer(k);
        await w1.write(Buffer.from("stale bytes"));
        await w1.close();
        const w2 = await d.writer(k);
        assert.equal(w2.size, 0);
        await w2.write(Buffer.from("fresh"));
        await w2.commit();
        assert.equal((await d.getContent(k)).toString(), "fresh");
        await d.delete(p);
      });

      test("cancel removes everything written, also by earlier appended writers", async (d, p) => {
        await d.putContent(`${p}/sibling`, Buffer.from("s"));
        const w = await d.writer(`${p}/c1`);
        await w.write(Buffer.from("abc"));
        await w.cancel();
        await notFound(d.getContent(`${p}/c1`), "getContent after cancel");
        const w1 = await d.writer(`${p}/c2`);
        await w1.write(Buffer.from("abc"));
        await w1.close();
        const w2 = await d.writer(`${p}/c2`, { append: true });
        await w2.write(Buffer.from("def"));
        await w2.cancel();
        await notFound(d.getContent(`${p}/c2`), "getContent after cancel of an appended writer");
        await notFound(d.stat(`${p}/c2`), "stat after cancel");
        assert.deepEqual((await d.list(p)).keys, [`${p}/sibling`]);
        const w3 = await d.writer(`${p}/c2`);
        assert.equal(w3.size, 0, "a writer after cancel starts empty");
        await w3.cancel();
        await d.delete(p);
      });

      test("committed content stays readable until a writer over it commits", async (d, p) => {
        const k = `${p}/replace`;
        await d.putContent(k, Buffer.from("old content"));
        const w = await d.writer(k);
        await w.write(Buffer.from("new"));
        assert.equal((await d.getContent(k)).toString(), "old content");
        await w.close();
        assert.equal((await d.getContent(k)).toString(), "old content");
        const w2 = await d.writer(k, { append: true });
        await w2.commit();
        assert.equal((await d.getContent(k)).toString(), "new");
        await d.delete(p);
      });

      test("large streamed write (14 MiB) across a close/append resume", async (d, p) => {
        const k = `${p}/large`;
        const data = randomBytes(14 * MiB);
        const sizes = [MiB + 7, 64 * KiB, 3, 2 * MiB, 100 * KiB + 1];
        const boundary = 6 * MiB + 3;
        let off = 0;
        let i = 0;
        let w = await d.writer(k);
        while (off < data.length) {
          const end = Math.min(data.length, off < boundary ? boundary : data.length, off + sizes[i++ % sizes.length]);
          await w.write(data.subarray(off, end));
          off = end;
          assert.equal(w.size, off);
          if (off === boundary) {
            await w.close();
            w = await d.writer(k, { append: true });
            assert.equal(w.size, boundary);
          }
        }
        await w.commit();
        assert.equal((await d.stat(k)).size, data.length);
        assert.equal(await sha256(await d.reader(k)), hashOf(data), "content differs");
        const around = await readAll(await d.reader(k, { offset: boundary - 100, length: 200 }));
        assert.ok(around.equals(data.subarray(boundary - 100, boundary + 100)), "bytes around the resume point differ");
        await d.delete(p);
      });
    });

    describe("stat", () => {
      test("objects report their size; directories report isDir and size 0", async (d, p) => {
        await d.putContent(`${p}/dir/file`, Buffer.from("12345"));
        const f = await d.stat(`${p}/dir/file`);
        assert.equal(f.path, `${p}/dir/file`);
        assert.equal(f.size, 5);
        assert.equal(f.isDir, false);
        assert.ok(f.modTime instanceof Date);
        assert.ok(Math.abs(f.modTime.getTime() - Date.now()) < 24 * 3600 * 1000, `modTime ${f.modTime.toISOString()} is not recent`);
        for (const dir of [`${p}/dir`, p]) {
          const st = await d.stat(dir);
          assert.equal(st.path, dir);
          assert.equal(st.isDir, true, `${dir} isDir`);
          assert.equal(st.size, 0);
        }
        await d.delete(p);
      });
    });

    describe("local files (drivers that offer openFile)", () => {
      test("openFile gives the key's bytes and an identity that names this version of it", async (d, p) => {
        if (!d.openFile) return;
        const a = randomBytes(10 * KiB);
        await d.putContent(`${p}/f`, a);
        const f = await d.openFile(`${p}/f`);
        try {
          assert.equal(f.size, a.length);
          const buf = Buffer.alloc(a.length);
          await f.handle.read(buf, 0, a.length, 0);
          assert.ok(buf.equals(a));
          assert.equal(await f.identify(), f.identity, "identity is stable while the file is unchanged");
        } finally {
          await f.handle.close();
        }
        const b = Buffer.from(a);
        b[0] ^= 1;
        await d.putContent(`${p}/f`, b);
        const g = await d.openFile(`${p}/f`);
        await g.handle.close();
        assert.equal(g.size, a.length);
        assert.notEqual(g.identity, f.identity, "rewritten content (same size) has another identity");
        await notFound(d.openFile(`${p}/missing`), "openFile of a missing key");
        await notFound(d.openFile(p), "openFile of a directory");
        await invalid(d.openFile(`${p}/../x`), "openFile of an invalid key");
        await d.delete(p);
      });
    });

    describe("list", () => {
      // Names whose byte order differs from locale order; "a" and "a0" are directories with nested
      // content that must not be listed (a key is never both an object and a directory).
      const names = ["b", "B", "a.b", "a-b", "a_b", "Z", "0", "9", "_", "-", ".x", "...", "aa", "A"];
      const populate = async (d: StorageDriver, p: string): Promise<string[]> => {
        await Promise.all([
          ...names.map((n) => d.putContent(`${p}/${n}`, Buffer.from(n))),
          d.putContent(`${p}/a/inner`, Buffer.from("i")),
          d.putContent(`${p}/a0/deep/er`, Buffer.from("e")),
        ]);
        return [...names, "a", "a0"].map((n) => `${p}/${n}`).sort(byteOrder);
      };

      test("returns the direct children as full keys in byte order, paged by limit and after (exclusive)", async (d, p) => {
        const all = await populate(d, p);
        const res = await d.list(p);
        assert.deepEqual(res.keys, all);
        assert.equal(res.truncated, false);
        assert.deepEqual((await d.list(`${p}/a0`)).keys, [`${p}/a0/deep`]);

        const seen: string[] = [];
        let afterKey: string | undefined;
        for (;;) {
          const page = await d.list(p, { limit: 4, after: afterKey });
          assert.ok(page.keys.length <= 4, "page longer than limit");
          seen.push(...page.keys);
          if (!page.truncated) break;
          assert.equal(page.keys.length, 4, "a truncated page must be full");
          afterKey = page.keys[page.keys.length - 1];
        }
        assert.deepEqual(seen, all);
        assert.deepEqual(await d.list(p, { limit: all.length }), { keys: all, truncated: false });
        assert.deepEqual(await d.list(p, { limit: all.length - 1 }), { keys: all.slice(0, -1), truncated: true });
        assert.deepEqual(await d.list(p, { after: all[all.length - 1] }), { keys: [], truncated: false });
        for (const probe of [`${p}/a`, `${p}/a.`, `${p}/a0`, `${p}/ZZ`, `${p}/-`]) {
          const want = all.filter((k) => byteOrder(k, probe) > 0);
          assert.deepEqual(await d.list(p, { after: probe }), { keys: want, truncated: false }, `after ${probe}`);
          assert.deepEqual(await d.list(p, { after: probe, limit: 2 }), { keys: want.slice(0, 2), truncated: want.length > 2 }, `after ${probe} limit 2`);
        }
        await d.delete(p);
      });

      test("only children of the key itself, not of keys sharing its prefix", async (d, p) => {
        await Promise.all(["dir/x", "dir-2/y", "dir.z", "dirt"].map((k) => d.putContent(`${p}/${k}`, Buffer.from(k))));
        assert.deepEqual((await d.list(`${p}/dir`)).keys, [`${p}/dir/x`]);
        assert.deepEqual((await d.list(p)).keys, [`${p}/dir`, `${p}/dir-2`, `${p}/dir.z`, `${p}/dirt`]);
        await d.delete(p);
      });
    });

    describe("move", () => {
      test("moves into a new directory and removes the source", async (d, p) => {
        await d.putContent(`${p}/src/obj`, Buffer.from("payload"));
        await d.putContent(`${p}/src/stay`, Buffer.from("s"));
        await d.move(`${p}/src/obj`, `${p}/dst/deeper/obj`);
        assert.equal((await d.getContent(`${p}/dst/deeper/obj`)).toString(), "payload");
        await notFound(d.getContent(`${p}/src/obj`), "source after move");
        assert.deepEqual((await d.list(`${p}/src`)).keys, [`${p}/src/stay`]);
        await d.delete(p);
      });

      test("replaces an existing destination", async (d, p) => {
        await d.putContent(`${p}/src`, Buffer.from("new"));
        await d.putContent(`${p}/dst`, Buffer.from("old and longer"));
        await d.move(`${p}/src`, `${p}/dst`);
        assert.equal((await d.getContent(`${p}/dst`)).toString(), "new");
        await notFound(d.stat(`${p}/src`), "source after move");
        assert.deepEqual((await d.list(p)).keys, [`${p}/dst`]);
        await d.delete(p);
      });

      test("moves a committed writer's object", async (d, p) => {
        const w = await d.writer(`${p}/uploads/u1/data`);
        await w.write(Buffer.from("blob"));
        await w.commit();
        await d.move(`${p}/uploads/u1/data`, `${p}/blobs/ab/data`);
        assert.equal((await d.getContent(`${p}/blobs/ab/data`)).toString(), "blob");
        assert.deepEqual(await childrenOrNone(d, `${p}/uploads/u1`), []);
        await d.delete(p);
      });
    });

    describe("delete", () => {
      test("removes a key and everything below it, nothing else", async (d, p) => {
        const keys = ["d/a", "d/sub/b", "d/sub/deeper/c", "d-x/y", "d.z", "dd", "other"];
        await Promise.all(keys.map((k) => d.putContent(`${p}/${k}`, Buffer.from(k))));
        await d.delete(`${p}/d`);
        for (const k of ["d/a", "d/sub/b", "d/sub/deeper/c"]) await notFound(d.getContent(`${p}/${k}`), `${k} after delete`);
        await notFound(d.stat(`${p}/d`), "deleted directory");
        await notFound(d.delete(`${p}/d`), "second delete");
        assert.deepEqual((await d.list(p)).keys, [`${p}/d-x`, `${p}/d.z`, `${p}/dd`, `${p}/other`]);
        await d.delete(`${p}/d.z`);
        await notFound(d.getContent(`${p}/d.z`), "deleted object");
        assert.equal((await d.getContent(`${p}/dd`)).toString(), "dd");
        await d.delete(p);
      });

      test("after its last child is deleted a directory is absent or empty", async (d, p) => {
        await d.putContent(`${p}/keep`, Buffer.from("k"));
        await d.putContent(`${p}/dir/sub/only`, Buffer.from("o"));
        await d.delete(`${p}/dir/sub/only`);
        assert.deepEqual(await childrenOrNone(d, `${p}/dir/sub`), []);
        const top = (await d.list(p)).keys;
        if (top.includes(`${p}/dir`)) assert.deepEqual(await childrenOrNone(d, `${p}/dir`), [], "an emptied directory still lists it");
        else assert.deepEqual(top, [`${p}/keep`]);
        await d.delete(p);
      });
    });

    describe("delete racing writes", () => {
      test("delete of a directory while putContent writes below it: the put succeeds, the delete succeeds or finds nothing", async (d, p) => {
        const dir = `${p}/layer`;
        for (let round = 0; round < 12; round++) {
          const puts = [0, 1, 2].map((i) => d.putContent(`${dir}/link${i}`, Buffer.from(`v${round}`)));
          const dels = [0, 1].map(() => d.delete(dir));
          const settled = await Promise.allSettled([...puts, ...dels]);
          settled.slice(0, puts.length).forEach((r, i) => assert.equal(r.status, "fulfilled", `round ${round}: putContent ${i}: ${(r as PromiseRejectedResult).reason}`));
          for (const r of settled.slice(puts.length)) {
            if (r.status === "rejected") assert.ok(r.reason instanceof PathNotFoundError, `round ${round}: delete failed with ${r.reason}`);
          }
          // Whatever survived is whole and readable.
          for (const k of await childrenOrNone(d, dir)) assert.equal((await d.getContent(k)).toString(), `v${round}`);
        }
        await d.delete(p).catch((e) => assert.ok(e instanceof PathNotFoundError, String(e)));
      });
    });

    describe("atomicity", () => {
      const A = Buffer.alloc(256 * KiB, 0x61);
      const B = Buffer.alloc(384 * KiB, 0x62);
      const check = (got: Buffer, how: string) =>
        assert.ok(got.equals(A) || got.equals(B), `${how} saw ${got.length} bytes mixing versions (first ${got[0]}, last ${got[got.length - 1]})`);

      /** Runs `rounds` of `replace` while readers keep reading `k`; each read must be whole A or whole B. */
      const race = async (d: StorageDriver, k: string, rounds: number, replace: (round: number) => Promise<void>) => {
        let writing = true;
        const writer = (async () => {
          try {
            for (let i = 0; i < rounds; i++) await replace(i);
          } finally {
            writing = false;
          }
        })();
        const reader = async (useStream: boolean) => {
          let reads = 0;
          while (writing || reads === 0) {
            check(useStream ? await readAll(await d.reader(k)) : await d.getContent(k), useStream ? "reader" : "getContent");
            reads++;
            // Let writers that wait on timers or I/O make progress against an in-memory reader.
            await new Promise((resolve) => setImmediate(resolve));
          }
        };
        await Promise.all([writer, reader(false), reader(true)]);
      };

      test("concurrent putContent: readers see the old or the new content, never a mix", async (d, p) => {
        const k = `${p}/contended`;
        await d.putContent(k, A);
        await race(d, k, 4, (i) => Promise.all([d.putContent(k, i % 2 ? A : B), d.putContent(k, i % 2 ? B : A)]).then(() => {}));
        check(await d.getContent(k), "final getContent");
        assert.deepEqual((await d.list(p)).keys, [k], "temporary objects visible after concurrent puts");
        await d.delete(p);
      });

      test("move over a key being read: readers see the old or the new content", async (d, p) => {
        const k = `${p}/target`;
        await d.putContent(k, A);
        await race(d, k, 4, async (i) => {
          await d.putContent(`${p}/staged`, i % 2 ? A : B);
          await d.move(`${p}/staged`, k);
        });
        assert.deepEqual((await d.list(p)).keys, [k]);
        await d.delete(p);
      });
    });

    describe("abort signals", () => {
      test("an operation given an aborted signal rejects with AbortError and changes nothing", async (d, p) => {
        const k = `${p}/obj`;
        await d.putContent(k, Buffer.from("original"));
        const ac = new AbortController();
        ac.abort();
        const signal = ac.signal;
        await aborted(d.getContent(k, signal), "getContent");
        await aborted(d.putContent(k, Buffer.from("changed"), signal), "putContent");
        await aborted(d.putContent(`${p}/new`, Buffer.from("new"), signal), "putContent of a new key");
        await aborted(d.reader(k, { signal }), "reader");
        await aborted(d.writer(`${p}/w`, { signal }), "writer");
        await aborted(d.stat(k, signal), "stat");
        await aborted(d.list(p, { signal }), "list");
        await aborted(d.move(k, `${p}/moved`, signal), "move");
        await aborted(d.delete(k, signal), "delete");
        assert.equal((await d.getContent(k)).toString(), "original");
        assert.deepEqual((await d.list(p)).keys, [k]);
        await d.delete(p);
      });

      test("aborting a reader mid-stream fails the stream with AbortError", async (d, p) => {
        const k = `${p}/stream`;
        await d.putContent(k, randomBytes(2 * MiB));
        const ac = new AbortController();
        const r = await d.reader(k, { signal: ac.signal });
        let chunks = 0;
        await aborted(
          (async () => {
            for await (const _ of r) {
              chunks++;
              ac.abort();
            }
          })(),
          "reading after abort",
        );
        assert.equal(chunks, 1, "the stream delivered data after its signal was aborted");
        await d.delete(p);
      });

      test("aborting a writer fails its writes and commit; cancel still cleans up", async (d, p) => {
        const ac = new AbortController();
        const w = await d.writer(`${p}/w`, { signal: ac.signal });
        await w.write(Buffer.from("part"));
        ac.abort();
        await aborted(w.write(Buffer.from("more")), "write after abort");
        await aborted(w.commit(), "commit after abort");
        await w.cancel();
        await notFound(d.getContent(`${p}/w`), "aborted writer's key");
        assert.deepEqual(await childrenOrNone(d, p), []);
      });
    });
  });
}
