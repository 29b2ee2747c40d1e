/** Store.recover: a crash between creating a container's layer dirs and writing its layerdb/mounts entry leaves nothing behind. */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { Store } from "../src/store/store.js";

describe("store recovery of container layer dirs", () => {
  it("removes -init and rw dirs no layerdb/mounts entry references, and keeps referenced ones", async () => {
    const root = await mkdtemp(join(tmpdir(), "strata-recover-"));
    try {
      const store = await Store.open(root);
      const orphan = randomBytes(32).toString("hex");
      const kept = randomBytes(32).toString("hex");
      for (const dir of [orphan, `${orphan}-init`, kept, `${kept}-init`]) await mkdir(join(root, "overlay2", dir, "diff"), { recursive: true });
      const containerId = randomBytes(32).toString("hex");
      const mounts = join(root, "image/overlay2/layerdb/mounts", containerId);
      await mkdir(mounts, { recursive: true });
      await writeFile(join(mounts, "mount-id"), kept);
      await writeFile(join(mounts, "init-id"), `${kept}-init`);
      await store.withLock(() => store.recover());
      assert.ok(!existsSync(join(root, "overlay2", orphan)), "orphaned rw dir removed");
      assert.ok(!existsSync(join(root, "overlay2", `${orphan}-init`)), "orphaned -init dir removed");
      assert.ok(existsSync(join(root, "overlay2", kept, "diff")), "a container's rw dir is kept");
      assert.ok(existsSync(join(root, "overlay2", `${kept}-init`, "diff")), "a container's -init dir is kept");
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
