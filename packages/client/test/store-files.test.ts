/**
 * Store internals: the root lock (exclusion, stale-lock takeover), Docker's encodings of
 * repositories.json and the distribution metadata, default root, random id formats.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type DiffID, type Digest, digestOf, parseReference } from "@strata/core";
import { randomId, randomLinkId } from "../src/store/fsutil.js";
import { referenceKeys } from "../src/store/images.js";
import { StoreLock } from "../src/store/lock.js";
import { defaultRoot } from "../src/store/paths.js";
import { Store } from "../src/store/store.js";

const mode = async (p: string) => ((await stat(p)).mode & 0o7777).toString(8).padStart(4, "0");

describe("store files", () => {
  let root: string;
  let store: Store;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), "strata-store-"));
    store = await Store.open(root);
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("creates Docker's directories with Docker's modes", async () => {
    assert.equal(await mode(join(root, "overlay2")), "0710");
    assert.equal(await mode(join(root, "overlay2/l")), "0700");
    assert.equal(await mode(join(root, "image/overlay2/imagedb/content/sha256")), "0700");
    assert.equal(await mode(join(root, "image/overlay2/layerdb/sha256")), "0700");
  });

  it("repositories.json is compact JSON with sorted keys, mode 0600, no trailing newline", async () => {
    const id = digestOf("config");
    await store.updateRepositories((r) => {
      r["zeta/app"] = { "zeta/app:v2": id, "zeta/app:v10": id };
      r.alpine = { "alpine:latest": id, [`alpine@${digestOf("m")}`]: id };
    });
    const text = await readFile(store.paths.repositories, "utf8");
    assert.equal(
      text,
      `{"Repositories":{"alpine":{"alpine:latest":"${id}","alpine@${digestOf("m")}":"${id}"},"zeta/app":{"zeta/app:v10":"${id}","zeta/app:v2":"${id}"}}}`,
    );
    assert.equal(await mode(store.paths.repositories), "0600");
    // emptied repositories disappear
    await store.updateRepositories((r) => {
      r["zeta/app"] = {};
    });
    assert.deepEqual(Object.keys(await store.readRepositories()), ["alpine"]);
  });

  it("v2metadata entries are merged like Docker: an equal entry moves to the end, at most 50 kept", async () => {
    const diffId = digestOf("layer") as DiffID;
    const blob = (n: number) => digestOf(`blob${n}`);
    await store.addV2Metadata(diffId, blob(1), "a/one");
    await store.addV2Metadata(diffId, blob(2), "b/two");
    await store.addV2Metadata(diffId, blob(1), "a/one");
    const text = await readFile(join(store.paths.v2MetadataByDiffId, diffId.slice(7)), "utf8");
    assert.equal(text, `[{"Digest":"${blob(2)}","SourceRepository":"b/two","HMAC":""},{"Digest":"${blob(1)}","SourceRepository":"a/one","HMAC":""}]`);
    assert.equal(await readFile(join(store.paths.diffIdByDigest, blob(1).slice(7)), "utf8"), diffId);
    assert.equal(await mode(join(store.paths.diffIdByDigest, blob(1).slice(7))), "0644");
    for (let i = 0; i < 60; i++) await store.addV2Metadata(diffId, blob(100 + i), "c/many");
    const list = await store.getV2Metadata(diffId);
    assert.equal(list.length, 50);
    assert.equal(list[49].Digest, blob(159));
    assert.equal(list[0].Digest, blob(110));
  });

  it("image configs are stored verbatim with mode 0600 under their sha256", async () => {
    const raw = Buffer.from('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}\n');
    const id = await store.putImageConfig(raw);
    assert.equal(id, digestOf(raw));
    assert.deepEqual(await readFile(store.paths.imageConfig(id as Digest)), raw);
    assert.equal(await mode(store.paths.imageConfig(id as Digest)), "0600");
  });

  it("repositories.json keys use Docker's familiar names (docker.io/library dropped, host:port kept)", () => {
    const d = digestOf("manifest");
    assert.deepEqual(referenceKeys(parseReference("alpine")), { repo: "alpine", key: "alpine:latest" });
    assert.deepEqual(referenceKeys(parseReference("docker.io/library/alpine:3.19")), { repo: "alpine", key: "alpine:3.19" });
    assert.deepEqual(referenceKeys(parseReference("bitnami/redis:7")), { repo: "bitnami/redis", key: "bitnami/redis:7" });
    assert.deepEqual(referenceKeys(parseReference(`127.0.0.1:5010/golden/edge@${d}`)), {
      repo: "127.0.0.1:5010/golden/edge",
      key: `127.0.0.1:5010/golden/edge@${d}`,
    });
    assert.deepEqual(referenceKeys(parseReference("ghcr.io/o/r:t")), { repo: "ghcr.io/o/r", key: "ghcr.io/o/r:t" });
  });

  it("random ids: 64 hex cache-ids, 26-char base32 links", () => {
    for (let i = 0; i < 20; i++) {
      assert.match(randomId(), /^[0-9a-f]{64}$/);
      assert.match(randomLinkId(), /^[A-Z2-7]{26}$/);
    }
  });

  it("default root: /var/lib/strata for root, else the XDG data dir", () => {
    if (process.getuid?.() === 0) assert.equal(defaultRoot(), "/var/lib/strata");
    else assert.ok(defaultRoot().endsWith("/strata"));
  });
});

describe("store lock", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "strata-lock-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("serialises holders in one process", async () => {
    const lock = new StoreLock(join(dir, "a.lock"));
    const order: string[] = [];
    await Promise.all(
      [1, 2, 3].map((n) =>
        lock.with(async () => {
          order.push(`in${n}`);
          await new Promise((r) => setTimeout(r, 5));
          order.push(`out${n}`);
        }),
      ),
    );
    assert.deepEqual(order, ["in1", "out1", "in2", "out2", "in3", "out3"]);
  });

  it("takes over a lock left by a dead process", async () => {
    const path = join(dir, "b.lock");
    const child = spawn(process.execPath, ["-e", ""]);
    const deadPid = child.pid!;
    await new Promise((r) => child.on("exit", r));
    await writeFile(path, `${deadPid} deadbeef`);
    const lock = new StoreLock(path);
    let ran = false;
    await lock.with(async () => {
      ran = true;
      assert.match(await readFile(path, "utf8"), new RegExp(`^${process.pid} `));
    });
    assert.ok(ran);
    await assert.rejects(stat(path), { code: "ENOENT" });
  });

  it("waits for a live holder in another process", async () => {
    const path = join(dir, "c.lock");
    // another process holds the lock for a while
    const holder = spawn(process.execPath, [
      "-e",
      `require("fs").writeFileSync(${JSON.stringify(path)}, process.pid + " x"); setTimeout(() => { require("fs").unlinkSync(${JSON.stringify(path)}); }, 300)`,
    ]);
    while (!(await stat(path).catch(() => undefined))) await new Promise((r) => setTimeout(r, 10));
    const lock = new StoreLock(path);
    let holderGone = false;
    holder.on("exit", () => {
      holderGone = true;
    });
    await lock.with(async () => {
      // we only get here once the holder released its lock file
      assert.match(await readFile(path, "utf8"), new RegExp(`^${process.pid} `));
    });
    await new Promise((r) => (holderGone ? r(undefined) : holder.on("exit", r)));
  });
});
