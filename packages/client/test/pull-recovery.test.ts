/**
 * Interrupted pulls (abort signal, SIGKILL of a CLI process), recovery of leftovers, and
 * concurrent pulls sharing layers into one store root (in-process and across processes).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { chainIds, parseDiffID } from "@strata/core";
import { verifyStore } from "../src/commands/verify.js";
import type { PullEvent } from "../src/progress.js";
import { pull } from "../src/pull.js";
import { Store } from "../src/store/store.js";
import { type Distribution, startDistribution } from "./helpers/distribution.js";
import { bigLayer, type PushedImage, pushImage, smallLayer } from "./helpers/images.js";
import { checkStore } from "./helpers/store-check.js";
import { CLI } from "./helpers/run-cli.js";
import { missing } from "./helpers/tools.js";


describe("interrupted and concurrent pulls", { skip: missing("docker-registry", "skopeo") }, () => {
  let reg: Distribution;
  const roots: string[] = [];
  const newRoot = async () => {
    const r = await mkdtemp(join(tmpdir(), "strata-root-"));
    roots.push(r);
    return r;
  };
  let big: PushedImage;
  let shareA: PushedImage;
  let shareB: PushedImage;

  before(async () => {
    reg = await startDistribution();
    big = await pushImage(reg.host, "test/big", "v1", [
      { tar: await bigLayer("one", 3 << 20) },
      { tar: await bigLayer("two", 3 << 20) },
      { tar: await bigLayer("three", 3 << 20) },
    ]);
    const base1 = await smallLayer("base1");
    const base2 = await bigLayer("base2", 1 << 20);
    shareA = await pushImage(reg.host, "test/share-a", "v1", [{ tar: base1 }, { tar: base2 }, { tar: await smallLayer("a-top") }]);
    shareB = await pushImage(reg.host, "test/share-b", "v1", [{ tar: base1 }, { tar: base2 }, { tar: await bigLayer("b-top", 1 << 20) }]);
  });
  after(async () => {
    await reg?.stop();
    for (const r of roots) await rm(r, { recursive: true, force: true });
  });

  it("an aborted pull leaves only complete layers and no image; a rerun finishes the job", async () => {
    const root = await newRoot();
    const ac = new AbortController();
    const progress = {
      event(e: PullEvent) {
        if (e.type === "layer" && e.status === "complete") ac.abort(new Error("stop here"));
      },
      stop() {},
    };
    await assert.rejects(pull(big.ref, { root, maxConcurrent: 1, signal: ac.signal, progress }), /stop here/);
    const store = await Store.open(root);
    assert.deepEqual(await store.listImageIds(), []);
    assert.deepEqual(await store.readRepositories(), {});
    assert.deepEqual(await checkStore(root), []);
    const chains = chainIds(big.diffIds.map((d) => parseDiffID(d)));
    assert.equal(await store.hasLayer(chains[0]), true);
    assert.equal(await store.hasLayer(chains[2]), false);

    const r = await pull(big.ref, { root });
    assert.equal(r.layers[0].status, "exists");
    assert.equal(r.layers[2].status, "pulled");
    assert.deepEqual(await checkStore(root), []);
    assert.ok((await verifyStore(store)).every((c) => c.ok));
  });

  it("a CLI pull killed with SIGKILL mid-way leaves nothing that looks complete; a rerun cleans up and completes", async () => {
    const root = await newRoot();
    const child = spawn(process.execPath, [CLI, "pull", big.ref, "--root", root, "--max-concurrent", "1"], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    await new Promise<void>((resolve) => {
      child.stdout.on("data", (d) => {
        out += d;
        if (/Pull complete/.test(out) && child.exitCode === null) child.kill("SIGKILL");
      });
      child.on("exit", () => resolve());
    });
    const store = await Store.open(root);
    const images = await store.listImageIds();
    assert.equal(child.signalCode, "SIGKILL");
    // Whatever moment the kill hit: every layerdb entry is complete, and an image exists only
    // when all its layers do (checkStore); only temp leftovers may remain.
    const problems = (await checkStore(root)).filter((p) => !p.startsWith("leftover"));
    assert.deepEqual(problems, []);
    if (images.length === 0) assert.deepEqual(await store.readRepositories(), {});
    const r = await pull(big.ref, { root });
    assert.equal(r.imageId, big.configDigest);
    assert.deepEqual(await checkStore(root), []);
    assert.ok((await verifyStore(store)).every((c) => c.ok));
  });

  it("Ctrl-C (SIGINT) stops a CLI pull with exit 130, removing its temp dirs", async () => {
    const root = await newRoot();
    const child = spawn(process.execPath, [CLI, "pull", big.ref, "--root", root, "--max-concurrent", "1"], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    let sent = false;
    child.stderr.on("data", (d) => {
      err += d;
    });
    const code = await new Promise<number | null>((resolve) => {
      child.stdout.on("data", (d) => {
        out += d;
        if (!sent && /Pull complete/.test(out) && child.exitCode === null) {
          sent = true;
          child.kill("SIGINT");
        }
      });
      child.on("exit", (c) => resolve(c));
    });
    assert.equal(code, 130, `${err}\n${out}`);
    assert.equal(err, "strata: pull interrupted\n");
    assert.deepEqual(await checkStore(root), []);
    const store = await Store.open(root);
    assert.deepEqual(await store.listImageIds(), []);
  });

  it("recover() removes temp dirs of dead processes, half-deleted entries, orphan overlay dirs and dangling links", async () => {
    const root = await newRoot();
    await pull(shareA.ref, { root });
    const store = await Store.open(root);
    const p = store.paths;
    const deadPid = 2 ** 22 + 12345; // above pid_max's default range: never alive
    await mkdir(join(p.overlay, `.strata-tmp-${deadPid}-abcdef/diff`), { recursive: true });
    await mkdir(join(p.layerdbTmp, `write-set-${deadPid}-abcdef`), { recursive: true });
    const orphan = "f".repeat(64);
    await mkdir(join(p.overlay, orphan, "diff"), { recursive: true });
    await writeFile(join(p.overlay, orphan, "link"), "ORPHANLINKAAAAAAAAAAAAAAAA");
    await symlink(`../${orphan}/diff`, join(p.links, "ORPHANLINKAAAAAAAAAAAAAAAA"));
    const removingCache = "e".repeat(64);
    await mkdir(join(p.overlay, removingCache, "diff"), { recursive: true });
    const removing = join(p.layerdb, `${"d".repeat(64)}-${"1".repeat(64)}-removing`);
    await mkdir(removing, { recursive: true });
    await writeFile(join(removing, "cache-id"), removingCache);
    await symlink("../nowhere/diff", join(p.links, "DANGLINGAAAAAAAAAAAAAAAAAA"));
    assert.notDeepEqual(await checkStore(root), []);

    const removed = await store.withLock(() => store.recover());
    assert.equal(removed.length, 5, removed.join(", "));
    assert.deepEqual(await checkStore(root), []);
    assert.deepEqual(
      (await readdir(p.overlay)).filter((n) => n === orphan || n === removingCache),
      [],
    );
    assert.ok((await verifyStore(store)).every((c) => c.ok));
  });

  it("two pulls sharing layers run at once in one process without corrupting the store", async () => {
    const root = await newRoot();
    const [a, b] = await Promise.all([pull(shareA.ref, { root }), pull(shareB.ref, { root })]);
    assert.equal(a.imageId, shareA.configDigest);
    assert.equal(b.imageId, shareB.configDigest);
    assert.deepEqual(a.layers[0].chainId, b.layers[0].chainId);
    assert.equal(a.layers[1].cacheId, b.layers[1].cacheId);
    const store = await Store.open(root);
    assert.equal((await store.listLayers()).length, 4);
    assert.deepEqual(await checkStore(root), []);
    assert.ok((await verifyStore(store)).every((c) => c.ok));
  });

  it("two CLI processes pulling images that share layers into one root both succeed", async () => {
    const root = await newRoot();
    const runCli = (ref: string) =>
      new Promise<{ code: number | null; stderr: string }>((resolve) => {
        const c = spawn(process.execPath, [CLI, "pull", "-q", ref, "--root", root], { stdio: ["ignore", "ignore", "pipe"] });
        let stderr = "";
        c.stderr.on("data", (d) => {
          stderr += d;
        });
        c.on("exit", (code) => resolve({ code, stderr }));
      });
    const [a, b] = await Promise.all([runCli(shareA.ref), runCli(shareB.ref)]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    const store = await Store.open(root);
    assert.equal((await store.listLayers()).length, 4);
    assert.deepEqual((await store.listImageIds()).sort(), [shareA.configDigest, shareB.configDigest].sort());
    assert.deepEqual(await checkStore(root), []);
    assert.ok((await verifyStore(store)).every((c) => c.ok));
  });
});
