/**
 * Pull the golden image (pushed with skopeo to a real distribution registry) and compare the
 * store with what Docker Engine 20.10 wrote (test/fixtures/docker-golden/edge).
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, readdir, readFile, readlink, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { gunzipSync } from "node:zlib";
import { pull } from "../src/pull.js";
import { type Distribution, GOLDEN_DIR, pushOciLayout, run, startDistribution } from "./helpers/distribution.js";
import { checkStore } from "./helpers/store-check.js";
import { treeLines } from "./helpers/trees.js";
import { missing } from "./helpers/tools.js";

interface ExpectedLayer {
  n: number;
  blob_digest: string;
  diff_id: string;
  chain_id: string;
  parent_chain_id: string | null;
  size: number;
  overlay2: { dir_modes: Record<string, string>; work_dir: boolean };
}
interface Expected {
  image_id: string;
  manifest_digest: string;
  layers: ExpectedLayer[];
  dir_modes: Record<string, string>;
  files: { path: string; mode: string; compare: string }[];
}

const GOLDEN_PORT = "127.0.0.1:5010";
const hex = (d: string) => d.slice(7);
const mode = async (p: string) => ((await stat(p)).mode & 0o7777).toString(8).padStart(4, "0");

describe("pull of the golden image matches Docker's store", { skip: missing("docker-registry", "skopeo", "tar-split") }, () => {
  let reg: Distribution;
  let root: string;
  let expected: Expected;
  const goldenDocker = join(GOLDEN_DIR, "docker");
  const sub = (s: string) => s.split(GOLDEN_PORT).join(reg.host);

  before(async () => {
    expected = JSON.parse(await readFile(join(GOLDEN_DIR, "expected.json"), "utf8"));
    reg = await startDistribution();
    await pushOciLayout(join(GOLDEN_DIR, "oci"), "v1", `${reg.host}/golden/edge:v1`);
    root = await mkdtemp(join(tmpdir(), "strata-golden-"));
    const result = await pull(`${reg.host}/golden/edge:v1`, { root });
    assert.equal(result.imageId, expected.image_id);
    assert.equal(result.manifestDigest, expected.manifest_digest);
  });
  after(async () => {
    await reg?.stop();
    if (root) await rm(root, { recursive: true, force: true });
  });

  it("has exactly the golden layerdb entries with identical diff/parent/size", async () => {
    const names = (await readdir(join(root, "image/overlay2/layerdb/sha256"))).sort();
    assert.deepEqual(names, expected.layers.map((l) => hex(l.chain_id)).sort());
    for (const l of expected.layers) {
      const rel = `image/overlay2/layerdb/sha256/${hex(l.chain_id)}`;
      for (const f of ["diff", "size", ...(l.parent_chain_id ? ["parent"] : [])]) {
        assert.deepEqual(await readFile(join(root, rel, f)), await readFile(join(goldenDocker, rel, f)), `${rel}/${f}`);
      }
      if (!l.parent_chain_id) await assert.rejects(stat(join(root, rel, "parent")), { code: "ENOENT" });
      assert.equal(await mode(join(root, rel)), expected.dir_modes[rel]);
    }
  });

  it("writes the config verbatim, repositories.json and distribution files as Docker did", async () => {
    for (const f of expected.files) {
      if (f.path.includes("/mounts/") || f.path.startsWith("overlay2/")) continue;
      const mine = join(root, f.path);
      assert.equal(await mode(mine), f.mode, `mode of ${f.path}`);
      const golden = await readFile(join(goldenDocker, f.path));
      if (f.compare === "exact") {
        const text = f.path.includes("v2metadata") || f.path.endsWith("repositories.json") ? Buffer.from(sub(golden.toString("utf8"))) : golden;
        assert.deepEqual(await readFile(mine), text, f.path);
      } else if (f.compare === "gunzip-exact") {
        assert.deepEqual(gunzipSync(await readFile(mine)), gunzipSync(golden), f.path);
      } else if (f.path.endsWith("cache-id")) {
        assert.match(await readFile(mine, "utf8"), /^[0-9a-f]{64}$/);
      }
    }
    assert.equal(await mode(join(root, "image/overlay2/imagedb/content/sha256")), expected.dir_modes["image/overlay2/imagedb/content/sha256"]);
    // the pull writes nothing under imagedb/metadata
    const metadata = await readdir(join(root, "image/overlay2/imagedb/metadata/sha256")).catch(() => []);
    assert.deepEqual(metadata, []);
  });

  it("tar-split content is identical to Docker's for every layer", async () => {
    for (const l of expected.layers) {
      const mine = gunzipSync(await readFile(join(root, "image/overlay2/layerdb/sha256", hex(l.chain_id), "tar-split.json.gz")));
      const golden = await readFile(join(GOLDEN_DIR, "tar-split", `${hex(l.diff_id)}.ndjson`));
      assert.ok(mine.equals(golden), `tar-split of layer ${l.n}`);
    }
  });

  it("overlay2 dirs: cache-id, link, lower, work, committed and modes as Docker lays them out", async () => {
    assert.equal(await mode(join(root, "overlay2")), expected.dir_modes.overlay2);
    assert.equal(await mode(join(root, "overlay2/l")), expected.dir_modes["overlay2/l"]);
    const links: string[] = [];
    for (const l of expected.layers) {
      const cacheId = await readFile(join(root, "image/overlay2/layerdb/sha256", hex(l.chain_id), "cache-id"), "utf8");
      assert.match(cacheId, /^[0-9a-f]{64}$/);
      const dir = join(root, "overlay2", cacheId);
      for (const [rel, m] of Object.entries(l.overlay2.dir_modes)) assert.equal(await mode(join(dir, rel)), m, `${rel} of layer ${l.n}`);
      const link = await readFile(join(dir, "link"), "utf8");
      assert.match(link, /^[A-Z2-7]{26}$/);
      assert.equal(await readlink(join(root, "overlay2/l", link)), `../${cacheId}/diff`);
      assert.equal(await mode(join(dir, "link")), "0644");
      if (l.n === 1) await assert.rejects(stat(join(dir, "lower")));
      else {
        assert.equal(
          await readFile(join(dir, "lower"), "utf8"),
          links
            .map((x) => `l/${x}`)
            .reverse()
            .join(":"),
        );
        assert.equal(await mode(join(dir, "lower")), "0644");
      }
      if (l.overlay2.work_dir) assert.equal(await mode(join(dir, "work")), "0700");
      else await assert.rejects(stat(join(dir, "work")));
      // committed: on every layer that has a layer on top (the top one gets it only when a container is created)
      if (l.n < expected.layers.length) {
        assert.equal((await readFile(join(dir, "committed"))).length, 0);
        assert.equal(await mode(join(dir, "committed")), "0600");
      } else await assert.rejects(stat(join(dir, "committed")));
      links.push(link);
    }
    assert.equal((await readdir(join(root, "overlay2/l"))).length, expected.layers.length);
  });

  it("diff trees are identical to Docker's (types, modes, owners, sizes, targets, devices, links, mtimes, xattrs)", async () => {
    const golden = (await readFile(join(GOLDEN_DIR, "docker-trees.txt"), "utf8")).split("\n").filter((x) => /^layer\d\t/.test(x));
    assert.ok(golden.length > 50);
    const mine: string[] = [];
    for (const l of expected.layers) {
      const cacheId = await readFile(join(root, "image/overlay2/layerdb/sha256", hex(l.chain_id), "cache-id"), "utf8");
      mine.push(...(await treeLines(`layer${l.n}`, join(root, "overlay2", cacheId, "diff"))));
    }
    assert.deepEqual(mine, golden);
  });

  it("Debian's tar-split asm rebuilds each layer tar with the diffID as sha256", async () => {
    const tmp = await mkdtemp(join(tmpdir(), "strata-asm-"));
    try {
      for (const l of expected.layers) {
        const entry = join(root, "image/overlay2/layerdb/sha256", hex(l.chain_id));
        const cacheId = await readFile(join(entry, "cache-id"), "utf8");
        const out = join(tmp, `${l.n}.tar`);
        const r = await run("tar-split", [
          "asm",
          "--input",
          join(entry, "tar-split.json.gz"),
          "--path",
          join(root, "overlay2", cacheId, "diff"),
          "--output",
          out,
        ]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(
          `sha256:${createHash("sha256")
            .update(await readFile(out))
            .digest("hex")}`,
          l.diff_id,
        );
      }
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  });

  it("leaves a consistent store with no temp leftovers", async () => {
    assert.deepEqual(await checkStore(root), []);
  });
});
