/**
 * The client commands through the CLI (a child process, like a user runs them): pull output
 * modes, images, inspect, verify, save (read back by skopeo) and rmi.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { appendFile, cp, mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import tar from "tar-stream";
import { Store } from "../src/store/store.js";
import { type Distribution, GOLDEN_DIR, pushOciLayout, run, startDistribution } from "./helpers/distribution.js";
import { bigLayer, type PushedImage, pushImage, smallLayer } from "./helpers/images.js";
import { checkStore } from "./helpers/store-check.js";
import { runCli } from "./helpers/run-cli.js";
import { missing } from "./helpers/tools.js";


interface Expected {
  image_id: string;
  manifest_digest: string;
  layers: { blob_digest: string; diff_id: string; chain_id: string; size: number }[];
}


async function tarMembers(file: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const ex = tar.extract();
  ex.on("entry", (h, stream, next) => {
    const chunks: Buffer[] = [];
    stream.on("data", (c: unknown) => chunks.push(c as Buffer));
    stream.on("end", () => {
      out.set(h.name, Buffer.concat(chunks));
      next();
    });
  });
  await new Promise<void>((resolve, reject) => {
    ex.on("finish", resolve);
    ex.on("error", reject);
    createReadStream(file).pipe(ex);
  });
  return out;
}

const sha = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

describe("client commands (CLI)", { skip: missing("docker-registry", "skopeo") }, () => {
  let reg: Distribution;
  let root: string;
  let expected: Expected;
  let ref: string;
  let shareA: PushedImage;
  let shareB: PushedImage;

  before(async () => {
    expected = JSON.parse(await readFile(join(GOLDEN_DIR, "expected.json"), "utf8"));
    reg = await startDistribution();
    await pushOciLayout(join(GOLDEN_DIR, "oci"), "v1", `${reg.host}/golden/edge:v1`);
    ref = `${reg.host}/golden/edge:v1`;
    root = await mkdtemp(join(tmpdir(), "strata-cmd-"));
    const base = await smallLayer("cmd-base");
    shareA = await pushImage(reg.host, "test/share-a", "v1", [{ tar: base }, { tar: await smallLayer("cmd-a") }]);
    shareB = await pushImage(reg.host, "test/share-b", "v1", [{ tar: base }, { tar: await bigLayer("cmd-b", 100_000) }]);
  });
  after(async () => {
    await reg?.stop();
    if (root) await rm(root, { recursive: true, force: true });
  });

  it("pull prints docker-like progress lines when not a TTY, then 'Image is up to date' on a second pull", async () => {
    const r = await runCli(["pull", ref, "--root", root]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split("\n");
    assert.equal(lines[0], "v1: Pulling from golden/edge");
    for (const l of expected.layers) {
      const id = l.blob_digest.slice(7, 19);
      assert.ok(lines.includes(`${id}: Pulling fs layer`), id);
      assert.ok(lines.includes(`${id}: Pull complete`), id);
    }
    assert.deepEqual(lines.slice(-3), [`Digest: ${expected.manifest_digest}`, `Status: Downloaded newer image for ${ref}`, ref]);
    const again = await runCli(["pull", ref, "--root", root]);
    assert.equal(again.code, 0, again.stderr);
    for (const l of expected.layers) assert.ok(again.stdout.includes(`${l.blob_digest.slice(7, 19)}: Already exists`));
    assert.ok(again.stdout.includes(`Status: Image is up to date for ${ref}\n`));
  });

  it("pull --quiet prints only the reference; --format json one object with id, digest and layers", async () => {
    const q = await runCli(["pull", "-q", ref, "--root", root]);
    assert.equal(q.stdout, `${ref}\n`);
    const j = await runCli(["pull", "--format", "json", ref, "--root", root]);
    assert.equal(j.code, 0, j.stderr);
    const obj = JSON.parse(j.stdout);
    assert.equal(obj.id, expected.image_id);
    assert.equal(obj.digest, expected.manifest_digest);
    assert.deepEqual(
      obj.layers.map((l: { digest: string; diffId: string; chainId: string; size: number }) => [l.digest, l.diffId, l.chainId, l.size]),
      expected.layers.map((l) => [l.blob_digest, l.diff_id, l.chain_id, l.size]),
    );
  });

  it("errors are one line on stderr with a non-zero exit", async () => {
    const r = await runCli(["pull", `${reg.host}/golden/missing:v1`, "--root", root]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /^strata: manifest for 127\.0\.0\.1:\d+\/golden\/missing:v1 not found\n$/);
    const bad = await runCli(["pull", "UPPER/Case", "--root", root]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /^strata: invalid reference/);
    const noimg = await runCli(["inspect", "nothing:here", "--root", root]);
    assert.equal(noimg.code, 1);
    assert.equal(noimg.stderr, "strata: No such image: nothing:here\n");
  });

  it("images lists REPOSITORY TAG IMAGE ID CREATED SIZE", async () => {
    const r = await runCli(["images", "--root", root]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split("\n");
    assert.match(lines[0], /^REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE$/);
    const total = expected.layers.reduce((a, l) => a + l.size, 0);
    assert.equal(total, 205908);
    assert.match(lines[1], new RegExp(`^${reg.host.replace(/\./g, "\\.")}/golden/edge\\s+v1\\s+${expected.image_id.slice(7, 19)}\\s+\\d+ years ago\\s+206kB$`));
  });

  it("inspect shows the config and per layer blob digest, diffID, chainID, cache-id and size", async () => {
    const r = await runCli(["inspect", ref, "--root", root]);
    assert.equal(r.code, 0, r.stderr);
    const obj = JSON.parse(r.stdout);
    assert.equal(obj.Id, expected.image_id);
    assert.deepEqual(obj.RepoTags, [ref]);
    assert.deepEqual(obj.RepoDigests, [`${reg.host}/golden/edge@${expected.manifest_digest}`]);
    assert.deepEqual(obj.Config, JSON.parse(await readFile(join(GOLDEN_DIR, "oci/blobs/sha256", expected.image_id.slice(7)), "utf8")));
    for (let i = 0; i < expected.layers.length; i++) {
      const l = obj.Layers[i];
      assert.equal(l.BlobDigest, expected.layers[i].blob_digest);
      assert.equal(l.DiffID, expected.layers[i].diff_id);
      assert.equal(l.ChainID, expected.layers[i].chain_id);
      assert.equal(l.Size, expected.layers[i].size);
      assert.match(l.CacheID, /^[0-9a-f]{64}$/);
      assert.ok((await stat(join(root, "overlay2", l.CacheID, "diff"))).isDirectory());
    }
    // by short ID too
    const byId = await runCli(["inspect", expected.image_id.slice(7, 19), "--root", root]);
    assert.equal(JSON.parse(byId.stdout).Id, expected.image_id);
  });

  it("save writes a docker-archive that skopeo reads, with layer tars hashing to the diffIDs", async () => {
    const out = join(root, "..", `${root.split("/").pop()}-save.tar`);
    try {
      const r = await runCli(["save", ref, "-o", out, "--root", root]);
      assert.equal(r.code, 0, r.stderr);
      const insp = await run("skopeo", ["inspect", `docker-archive:${out}`]);
      assert.equal(insp.code, 0, insp.stderr);
      const info = JSON.parse(insp.stdout);
      assert.deepEqual(
        info.Layers,
        expected.layers.map((l) => l.diff_id),
      );
      const cfg = await run("skopeo", ["inspect", "--config", "--raw", `docker-archive:${out}`]);
      assert.equal(sha(Buffer.from(cfg.stdout)), expected.image_id);
      const members = await tarMembers(out);
      const manifest = JSON.parse(members.get("manifest.json")!.toString());
      assert.deepEqual(manifest[0].RepoTags, [ref]);
      assert.equal(manifest[0].Config, `${expected.image_id.slice(7)}.json`);
      assert.deepEqual(
        manifest[0].Layers.map((p: string) => sha(members.get(p)!)),
        expected.layers.map((l) => l.diff_id),
      );
    } finally {
      await rm(out, { force: true });
    }
  });

  it("verify passes on an intact store and names the damaged layer after a file is changed", async () => {
    const ok = await runCli(["verify", "--root", root]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal((ok.stdout.match(/ OK \(/g) ?? []).length, expected.layers.length);
    const store = await Store.open(root);
    const rec = await store.getLayer(expected.layers[0].chain_id as never);
    const victim = join(root, "overlay2", rec!.cacheId, "diff", "data", "small.txt");
    const original = await readFile(victim);
    await appendFile(victim, "x");
    try {
      const bad = await runCli(["verify", ref, "--root", root]);
      assert.equal(bad.code, 1);
      assert.match(bad.stdout, new RegExp(`${expected.layers[0].diff_id}  FAILED`));
      for (const l of expected.layers.slice(1)) assert.match(bad.stdout, new RegExp(`${l.diff_id}  OK`));
      assert.match(bad.stderr, /^strata: verify: 1 layer\(s\) failed/);
    } finally {
      await import("node:fs/promises").then((fs) => fs.writeFile(victim, original));
    }
  });

  it("rmi untags, keeps layers other images use, removes the rest Docker-style", async () => {
    for (const r of [shareA.ref, shareB.ref]) assert.equal((await runCli(["pull", "-q", r, "--root", root])).code, 0);
    const store = await Store.open(root);
    const layersBefore = (await store.listLayers()).length;
    const r = await runCli(["rmi", shareA.ref, "--root", root]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trimEnd().split("\n"), [
      `Untagged: ${shareA.ref}`,
      `Untagged: ${reg.host}/test/share-a@${shareA.manifestDigest}`,
      `Deleted: ${shareA.configDigest}`,
      `Deleted: ${(await import("@strata/core")).chainIds(shareA.diffIds as never)[1]}`,
    ]);
    assert.equal((await store.listLayers()).length, layersBefore - 1);
    assert.deepEqual(await checkStore(root), []);
    assert.equal((await readdir(store.paths.layerdb)).filter((n) => n.endsWith("-removing")).length, 0);
    const v = await runCli(["verify", shareB.ref, "--root", root]);
    assert.equal(v.code, 0, v.stdout);
    // removing by ID deletes the image and every layer nothing else uses
    const byId = await runCli(["rmi", shareB.configDigest.slice(7, 19), "--root", root]);
    assert.equal(byId.code, 0, byId.stderr);
    assert.equal((await store.listLayers()).length, layersBefore - 3);
    assert.deepEqual(await checkStore(root), []);
    const repos = await store.readRepositories();
    assert.deepEqual(Object.keys(repos), [`${reg.host}/golden/edge`]);
    const gone = await runCli(["rmi", shareB.ref, "--root", root]);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /No such image/);
  });

  it("rmi refuses to delete an image a container uses unless forced; the container's layers stay", async () => {
    // the golden fixture's container (layerdb/mounts/<id>/parent = the image's top chainID)
    const mounts = join(root, "image/overlay2/layerdb/mounts");
    await cp(join(GOLDEN_DIR, "docker/image/overlay2/layerdb/mounts"), mounts, { recursive: true });
    const store = await Store.open(root);
    const r = await runCli(["rmi", ref, "--root", root]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^strata: conflict: unable to remove .* \(must be forced\) - a container is using image 7c96b61e4b93\n$/);
    assert.deepEqual(await store.listImageIds(), [expected.image_id]);
    const f = await runCli(["rmi", "-f", ref, "--root", root]);
    assert.equal(f.code, 0, f.stderr);
    assert.deepEqual(await store.listImageIds(), []);
    assert.deepEqual((await store.listLayers()).sort(), expected.layers.map((l) => l.chain_id).sort());
    await rm(mounts, { recursive: true, force: true });
  });
});
