import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { driverConformanceSuite } from "../src/storage/conformance.js";
import { PathNotFoundError } from "../src/storage/driver.js";
import { filesystemDriver } from "../src/storage/filesystem.js";

driverConformanceSuite("filesystem", async () => {
  const root = await mkdtemp(path.join(tmpdir(), "strata-fs-"));
  return { driver: filesystemDriver(root), cleanup: () => rm(root, { recursive: true, force: true }) };
});

describe("filesystem driver specifics", async () => {
  const root = await mkdtemp(path.join(tmpdir(), "strata-fs-"));
  const d = filesystemDriver(root);
  after(() => rm(root, { recursive: true, force: true }));

  it("stores key /v2/x as the file <root>/v2/x", async () => {
    await d.putContent("/v2/x/y", Buffer.from("bytes"));
    assert.equal(await readFile(path.join(root, "v2", "x", "y"), "utf8"), "bytes");
    await d.delete("/v2/x");
  });

  it("a writer dropped without close or commit (a crash) leaves nothing visible", async () => {
    const w = await d.writer("/crash/uploads/data");
    await w.write(Buffer.alloc(300 * 1024, 1));
    await w.write(Buffer.from("tail"));
    // The writer is abandoned here, as when the process dies.
    await assert.rejects(d.getContent("/crash/uploads/data"), PathNotFoundError);
    await assert.rejects(d.stat("/crash/uploads/data"), PathNotFoundError);
    assert.deepEqual((await d.list("/crash/uploads")).keys, []);
    assert.ok((await readdir(path.join(root, "crash", "uploads"))).length > 0, "the partial file should exist on disk");
    // Foreign files with names outside the key grammar stay hidden too.
    await writeFile(path.join(root, "crash", "uploads", "~stray"), "x");
    await writeFile(path.join(root, "crash", "uploads", "with space"), "x");
    await d.putContent("/crash/uploads/visible", Buffer.from("v"));
    assert.deepEqual((await d.list("/crash/uploads")).keys, ["/crash/uploads/visible"]);
    const fresh = await d.writer("/crash/uploads/data");
    await fresh.write(Buffer.from("clean"));
    await fresh.commit();
    assert.equal((await d.getContent("/crash/uploads/data")).toString(), "clean");
    await d.delete("/crash");
    await assert.rejects(d.list("/crash"), PathNotFoundError);
  });
});
