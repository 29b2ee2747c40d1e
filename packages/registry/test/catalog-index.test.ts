/**
 * The embedded repository index: one walk, then memory. A repository written through the
 * registry is listed at once; one created or removed behind its back (fsck, gc, another
 * process on the same directory) shows after the next background walk, never by blocking a
 * listing on a walk once the first one finished.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parseDigest } from "@strata/core";
import { StorageRepositoryIndex } from "../src/services/catalog.js";
import type { StorageDriver } from "../src/storage/driver.js";
import { filesystemDriver } from "../src/storage/filesystem.js";
import { pathFor } from "../src/storage/paths.js";

const digest = parseDigest(`sha256:${"ab".repeat(32)}`);

async function link(driver: StorageDriver, name: string): Promise<void> {
  await driver.putContent(pathFor({ kind: "layerLink", name, digest }), Buffer.from(digest));
}

async function until(cond: () => Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("embedded repository index (filesystem)", () => {
  let dir: string;
  let driver: StorageDriver;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "strata-catalog-"));
    driver = filesystemDriver(dir);
    for (const n of ["b/two", "a/one", "c"]) await link(driver, n);
  });
  after(async () => {
    await driver.close?.();
    await rm(dir, { recursive: true, force: true });
  });

  it("lists what storage holds in byte order, and a repository added through it at once", async () => {
    const index = new StorageRepositoryIndex(driver, 60_000);
    assert.deepEqual(await index.repositories(), ["a/one", "b/two", "c"]);
    await link(driver, "a/zero");
    await index.added("a/zero");
    assert.deepEqual(await index.repositories(), ["a/one", "a/zero", "b/two", "c"]);
  });

  it("does not see changes behind its back before the list is stale", async () => {
    const index = new StorageRepositoryIndex(driver, 60_000);
    const first = await index.repositories();
    await link(driver, "hidden/one");
    assert.deepEqual(await index.repositories(), first);
    await driver.delete(pathFor({ kind: "repository", name: "hidden/one" }));
  });

  it("picks up repositories created and removed behind its back once the list is stale", async () => {
    const index = new StorageRepositoryIndex(driver, 0);
    const before = await index.repositories();
    assert.ok(!before.includes("d/late"));
    await link(driver, "d/late");
    await until(async () => (await index.repositories()).includes("d/late"));
    await driver.delete(pathFor({ kind: "repository", name: "d/late" }));
    await until(async () => !(await index.repositories()).includes("d/late"));
  });

  it("keeps a repository added while a walk is under way", async () => {
    const index = new StorageRepositoryIndex(driver, 60_000);
    await index.repositories();
    const walk = index.walk();
    // Not written to storage: only the record of additions during the walk can keep it.
    await index.added("e/during");
    await walk;
    assert.ok((await index.repositories()).includes("e/during"));
  });
});
