/**
 * Prune and rmi against pulls running at the same time (CLI child processes on one store, a real
 * distribution registry): a pull's committed layers survive a prune that runs before its image
 * is recorded (the lease), and no interleaving leaves a store that `verify` rejects.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { createServer, request, type Server } from "node:http";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { chainIds, type DiffID, digestHex } from "@strata/core";
import { cleanupRoot, tempRoot } from "./helpers/containers-images.js";
import { type Distribution, startDistribution } from "./helpers/distribution.js";
import { bigLayer, type PushedImage, pushImage, smallLayer } from "./helpers/images.js";
import { runCli } from "./helpers/run-cli.js";
import { checkStore } from "./helpers/store-check.js";
import { missing } from "./helpers/tools.js";

/** A proxy that holds requests for the blobs in `held` until `release()`; everything else passes. */
async function startGate(upstreamPort: number): Promise<{ host: string; hold(digest: string): void; release(): void; waiting(): number; stop(): Promise<void> }> {
  const held = new Set<string>();
  let waiters: (() => void)[] = [];
  const server: Server = createServer((req, res) => {
    const go = () => {
      const up = request({ host: "127.0.0.1", port: upstreamPort, method: req.method, path: req.url, headers: req.headers }, (u) => {
        res.writeHead(u.statusCode ?? 502, u.headers);
        u.pipe(res);
      });
      up.on("error", () => res.destroy());
      req.pipe(up);
    };
    const digest = /\/blobs\/(sha256:[0-9a-f]{64})/.exec(req.url ?? "")?.[1];
    if (digest && held.has(digest)) waiters.push(go);
    else go();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    host: `127.0.0.1:${(server.address() as { port: number }).port}`,
    hold: (d) => held.add(d),
    release: () => {
      held.clear();
      const w = waiters;
      waiters = [];
      for (const go of w) go();
    },
    waiting: () => waiters.length,
    stop: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

async function until(what: string, cond: () => boolean, ms = 30000): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const chainsOf = (img: PushedImage) => chainIds(img.diffIds as DiffID[]);
const hasLayer = (root: string, chain: string) => fs.existsSync(join(root, "image/overlay2/layerdb/sha256", digestHex(chain as never), "diff"));

async function assertConsistent(root: string): Promise<void> {
  assert.deepEqual(await checkStore(root), []);
  const v = await runCli(["verify", "--root", root]);
  assert.equal(v.code, 0, v.stdout + v.stderr);
}

describe("prune and rmi during pulls", { skip: missing("docker-registry", "skopeo") }, () => {
  let reg: Distribution;
  let gate: Awaited<ReturnType<typeof startGate>>;
  let base: Buffer;
  let p: PushedImage;
  let q: PushedImage;
  let r: PushedImage;
  before(async () => {
    reg = await startDistribution();
    gate = await startGate(reg.port);
    base = await smallLayer("base");
    p = await pushImage(reg.host, "t/p", "1", [{ tar: base }, { tar: await bigLayer("p", 200_000) }]);
    q = await pushImage(reg.host, "t/q", "1", [{ tar: base }, { tar: await smallLayer("q") }]);
    r = await pushImage(reg.host, "t/r", "1", [{ tar: base }, { tar: await smallLayer("q") }, { tar: await smallLayer("r") }]);
  });
  after(async () => {
    await gate?.stop();
    await reg?.stop();
  });

  it("a prune between a pull's layer commits and its image record keeps the pull's layers (lease)", async () => {
    const root = tempRoot("prune-lease");
    try {
      gate.hold(p.blobDigests[1]);
      const pulling = runCli(["pull", "-q", `${gate.host}/t/p:1`, "--root", root]);
      const [c0] = chainsOf(p);
      await until("the pull to commit its first layer", () => hasLayer(root, c0) && gate.waiting() > 0);
      // the first layer belongs to no image yet: only the pull's lease holds it
      const leases = fs.readdirSync(join(root, "strata", "leases"));
      assert.equal(leases.length, 1);
      assert.equal(fs.readFileSync(join(root, "strata", "leases", leases[0]), "utf8"), `${c0}\n`);
      const pr = await runCli(["image", "prune", "--all", "--root", root]);
      assert.equal(pr.code, 0, pr.stderr);
      assert.equal(pr.stdout, "Total reclaimed space: 0B\n");
      assert.ok(hasLayer(root, c0), "the pull's committed layer survived the prune");
      gate.release();
      const done = await pulling;
      assert.equal(done.code, 0, done.stderr);
      assert.deepEqual(fs.readdirSync(join(root, "strata", "leases")), [], "the lease ends with the image record");
      await assertConsistent(root);
      // nothing holds the image's layers now but the image: prune --all removes all of them
      const all = await runCli(["image", "prune", "--all", "--root", root]);
      assert.equal(all.code, 0, all.stderr);
      assert.deepEqual(fs.readdirSync(join(root, "image/overlay2/layerdb/sha256")), []);
      assert.deepEqual(fs.readdirSync(join(root, "overlay2")), ["l"]);
      assert.deepEqual(fs.readdirSync(join(root, "overlay2", "l")), []);
    } finally {
      gate.release();
      cleanupRoot(root);
    }
  });

  it("a layer a pull found present is leased: an rmi meanwhile keeps it and the pull succeeds", async () => {
    const root = tempRoot("prune-race");
    try {
      const first = await runCli(["pull", "-q", q.ref, "--root", root]);
      assert.equal(first.code, 0, first.stderr);
      gate.hold(p.blobDigests[1]);
      // the pull sees the base layer present (q's), then q is removed while the pull downloads
      const pulling = runCli(["pull", "-q", `${gate.host}/t/p:1`, "--root", root]);
      await until("the pull to request its second layer", () => gate.waiting() > 0);
      const rmi = await runCli(["rmi", q.ref, "--root", root]);
      assert.equal(rmi.code, 0, rmi.stderr);
      assert.ok(hasLayer(root, chainsOf(p)[0]), "the base layer the pull reuses was removed");
      gate.release();
      const done = await pulling;
      assert.equal(done.code, 0, done.stderr);
      await assertConsistent(root);
      const im = await runCli(["images", "--root", root, "--format", "{{.Repository}}:{{.Tag}}"]);
      assert.equal(im.stdout.trim(), `${gate.host}/t/p:1`);
    } finally {
      gate.release();
      cleanupRoot(root);
    }
  });

  it("concurrent pulls, prunes and rmis of images sharing layers leave a store verify accepts", async () => {
    const root = tempRoot("prune-stress");
    const outcomes = { pullOk: 0, pullFailed: 0, prunes: 0 };
    try {
      assert.equal((await runCli(["pull", "-q", q.ref, "--root", root])).code, 0);
      for (let round = 0; round < 4; round++) {
        const jobs: Promise<void>[] = [];
        for (const img of [p, q, r]) {
          jobs.push(
            runCli(["pull", "-q", img.ref, "--root", root]).then((x) => {
              if (x.code === 0) outcomes.pullOk++;
              else {
                outcomes.pullFailed++;
                assert.match(x.stderr, /not in the store/);
              }
            }),
          );
        }
        for (const args of [["image", "prune", "--all"], ["rmi", q.ref], ["image", "prune"]]) {
          jobs.push(
            runCli([...args, "--root", root]).then((x) => {
              outcomes.prunes++;
              if (x.code !== 0) assert.match(x.stderr, /No such image/);
            }),
          );
        }
        await Promise.all(jobs);
        await assertConsistent(root);
      }
      for (const img of [p, q, r]) assert.equal((await runCli(["pull", "-q", img.ref, "--root", root])).code, 0);
      await assertConsistent(root);
      const im = await runCli(["images", "--format", "{{.Repository}}:{{.Tag}}", "--root", root]);
      assert.deepEqual(im.stdout.trim().split("\n").sort(), [p.ref, q.ref, r.ref].sort());
      process.stderr.write(`# concurrent rounds: ${JSON.stringify(outcomes)}\n`);
    } finally {
      cleanupRoot(root);
    }
  });
});
