/**
 * Pull behaviour against a real distribution registry: by digest, layer compressions, layer
 * sharing without re-download, tampered blobs, multi-platform indexes.
 */
import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { chainIds, parseDiffID } from "@strata/core";
import { verifyStore } from "../src/commands/verify.js";
import type { PullEvent } from "../src/progress.js";
import { pull } from "../src/pull.js";
import { Store } from "../src/store/store.js";
import { type Distribution, distributionBlobPath, GOLDEN_DIR, pushOciLayout, startDistribution } from "./helpers/distribution.js";
import { pushImage, pushIndex, smallLayer } from "./helpers/images.js";
import { makeTar, sha256 } from "./helpers/oci-build.js";
import { checkStore } from "./helpers/store-check.js";
import { missing } from "./helpers/tools.js";

const tmpRoot = () => mkdtemp(join(tmpdir(), "strata-root-"));

async function repositories(root: string): Promise<Record<string, Record<string, string>>> {
  return JSON.parse(await readFile(join(root, "image/overlay2/repositories.json"), "utf8")).Repositories;
}

describe("pull behaviour", { skip: missing("docker-registry", "skopeo", "zstd") }, () => {
  let reg: Distribution;
  const roots: string[] = [];
  const newRoot = async () => {
    const r = await tmpRoot();
    roots.push(r);
    return r;
  };
  before(async () => {
    reg = await startDistribution();
  });
  after(async () => {
    await reg?.stop();
    for (const r of roots) await rm(r, { recursive: true, force: true });
  });

  it("pulls gzip, zstd and uncompressed layers; diffIDs and chainIDs follow the config", async () => {
    const layers = [
      { tar: await smallLayer("a"), compression: "gzip" as const },
      { tar: await smallLayer("b"), compression: "zstd" as const },
      { tar: await smallLayer("c"), compression: "none" as const },
    ];
    const img = await pushImage(reg.host, "test/mixed", "v1", layers);
    const root = await newRoot();
    const r = await pull(img.ref, { root });
    assert.equal(r.imageId, img.configDigest);
    const chains = chainIds(img.diffIds.map((d) => parseDiffID(d)));
    assert.deepEqual(
      r.layers.map((l) => l.chainId),
      chains,
    );
    const store = await Store.open(root);
    for (let i = 0; i < chains.length; i++) {
      const rec = await store.getLayer(chains[i]);
      assert.equal(rec?.diffId, img.diffIds[i]);
      assert.equal(rec?.parent, i ? chains[i - 1] : undefined);
    }
    const checks = await verifyStore(store);
    assert.equal(checks.length, 1);
    assert.ok(checks[0].ok, JSON.stringify(checks));
    assert.deepEqual(await checkStore(root), []);
    // v2metadata records the compressed blob per diffID, diffid-by-digest the reverse
    for (let i = 0; i < chains.length; i++) {
      const meta = await readFile(join(root, "image/overlay2/distribution/v2metadata-by-diffid/sha256", img.diffIds[i].slice(7)), "utf8");
      assert.equal(meta, `[{"Digest":"${img.blobDigests[i]}","SourceRepository":"${reg.host}/test/mixed","HMAC":""}]`);
      assert.equal(await readFile(join(root, "image/overlay2/distribution/diffid-by-digest/sha256", img.blobDigests[i].slice(7)), "utf8"), img.diffIds[i]);
    }
  });

  it("pulls a Docker schema2 manifest (skopeo --format v2s2) of the golden image to the same layers and image ID", async () => {
    const expected = JSON.parse(await readFile(join(GOLDEN_DIR, "expected.json"), "utf8")) as {
      image_id: string;
      layers: { chain_id: string; size: number }[];
    };
    await pushOciLayout(join(GOLDEN_DIR, "oci"), "v1", `${reg.host}/golden/v2s2:v1`, { format: "v2s2" });
    const root = await newRoot();
    const r = await pull(`${reg.host}/golden/v2s2:v1`, { root });
    assert.equal(r.imageId, expected.image_id);
    assert.deepEqual(
      r.layers.map((l) => [l.mediaType, l.chainId, l.size]),
      expected.layers.map((l) => ["application/vnd.docker.image.rootfs.diff.tar.gzip", l.chain_id, l.size]),
    );
    assert.deepEqual(await checkStore(root), []);
  });

  it("pulls by digest and records only the digest reference", async () => {
    const img = await pushImage(reg.host, "test/bydigest", "v1", [{ tar: await smallLayer("d") }]);
    const root = await newRoot();
    const ref = `${reg.host}/test/bydigest@${img.manifestDigest}`;
    const r = await pull(ref, { root });
    assert.equal(r.imageId, img.configDigest);
    assert.equal(r.manifestDigest, img.manifestDigest);
    assert.deepEqual(await repositories(root), { [`${reg.host}/test/bydigest`]: { [ref]: img.configDigest } });
  });

  it("refuses a manifest whose bytes do not match the digest asked for", async () => {
    const img = await pushImage(reg.host, "test/wrongdigest", "v1", [{ tar: await smallLayer("w") }]);
    const root = await newRoot();
    // Tamper with the manifest as distribution stores it: same length, different bytes.
    const path = distributionBlobPath(reg.storage, img.manifestDigest.slice(7));
    const raw = await readFile(path, "utf8");
    const tampered = raw.replace('"schemaVersion":2', '"schemaVersion": 2');
    assert.notEqual(tampered, raw);
    await writeFile(path, tampered);
    await assert.rejects(pull(`${reg.host}/test/wrongdigest@${img.manifestDigest}`, { root }), /manifest digest mismatch/);
    assert.deepEqual(await readdir(join(root, "image/overlay2/layerdb/sha256")).catch(() => []), []);
  });

  it("skips layers already in the store (no download: the registry's copies are corrupted first)", async () => {
    const base = await smallLayer("shared-base");
    const a = await pushImage(reg.host, "test/share-a", "v1", [{ tar: base }, { tar: await smallLayer("only-a") }]);
    const root = await newRoot();
    await pull(a.ref, { root });
    // second image shares the base layer; corrupt the base blob in the registry
    const reg2 = await startDistribution();
    try {
      const b = await pushImage(reg2.host, "test/share-b", "v1", [{ tar: base }, { tar: await smallLayer("only-b") }]);
      assert.equal(b.blobDigests[0], a.blobDigests[0]);
      const blob = distributionBlobPath(reg2.storage, b.blobDigests[0].slice(7));
      const size = (await stat(blob)).size;
      await writeFile(blob, Buffer.alloc(size, 0x41));
      const events: PullEvent[] = [];
      const r = await pull(b.ref, { root, progress: { event: (e) => events.push(e), stop() {} } });
      assert.deepEqual(
        r.layers.map((l) => l.status),
        ["exists", "pulled"],
      );
      const layersEvent = events.find((e) => e.type === "layers");
      assert.deepEqual(layersEvent && layersEvent.type === "layers" ? layersEvent.layers.map((l) => l.exists) : [], [true, false]);
      // pulling A again downloads nothing: corrupt all of A's blobs too
      for (const d of a.blobDigests) {
        const p = distributionBlobPath(reg.storage, d.slice(7));
        await writeFile(p, Buffer.alloc((await stat(p)).size, 0x42));
      }
      const again = await pull(a.ref, { root });
      assert.ok(again.upToDate);
      assert.deepEqual(
        again.layers.map((l) => l.status),
        ["exists", "exists"],
      );
      const checks = await verifyStore(await Store.open(root));
      assert.equal(checks.length, 2);
      assert.ok(checks.every((c) => c.ok));
      assert.deepEqual(await checkStore(root), []);
    } finally {
      await reg2.stop();
    }
  });

  it("a blob whose bytes do not match its digest fails the pull and leaves nothing complete-looking", async () => {
    const reg3 = await startDistribution();
    try {
      const img = await pushImage(reg3.host, "test/tampered", "v1", [{ tar: await smallLayer("t1") }, { tar: await smallLayer("t2") }]);
      const blob = distributionBlobPath(reg3.storage, img.blobDigests[1].slice(7));
      const data = await readFile(blob);
      data[data.length - 20] ^= 0xff; // same size, different content
      await writeFile(blob, data);
      const root = await newRoot();
      await assert.rejects(pull(img.ref, { root }), (e: Error) => {
        assert.match(e.message, new RegExp(`layer ${img.blobDigests[1]}: digest mismatch`));
        return true;
      });
      const store = await Store.open(root);
      const chains = chainIds(img.diffIds.map((d) => parseDiffID(d)));
      assert.equal(await store.hasLayer(chains[1]), false);
      assert.deepEqual(await store.listImageIds(), []);
      assert.deepEqual(await store.readRepositories(), {});
      assert.deepEqual(await checkStore(root), []);
    } finally {
      await reg3.stop();
    }
  });

  it("a layer whose content does not match the config's diff_id fails the pull cleanly", async () => {
    const good = await smallLayer("diffid-ok");
    const other = await smallLayer("diffid-other");
    const wrong = sha256(other);
    const img = await pushImage(reg.host, "test/baddiffid", "v1", [{ tar: good }], {}, { rootfs: { type: "layers", diff_ids: [wrong] } });
    const root = await newRoot();
    await assert.rejects(pull(img.ref, { root }), new RegExp(`diffID mismatch: the config lists ${wrong} but the content is ${sha256(good)}`));
    const store = await Store.open(root);
    assert.deepEqual(await store.listLayers(), []);
    assert.deepEqual(await store.listImageIds(), []);
    assert.deepEqual(await checkStore(root), []);
  });

  it("a hostile layer (path escaping the layer dir) fails the pull and leaves nothing behind", async () => {
    const parent = await mkdtemp(join(tmpdir(), "strata-hostile-"));
    roots.push(parent);
    const root = join(parent, "root");
    const evil = await makeTar([
      { name: "ok.txt", content: "fine" },
      { name: "../../../../evil.txt", content: "escaped" },
    ]);
    const img = await pushImage(reg.host, "test/hostile", "v1", [{ tar: evil }]);
    await assert.rejects(pull(img.ref, { root }), /refusing layer/);
    assert.deepEqual((await readdir(parent)).sort(), ["root"]);
    const store = await Store.open(root);
    assert.deepEqual(await store.listLayers(), []);
    assert.deepEqual(await checkStore(root), []);
  });

  it("selects the platform from an index; lists the available ones when none matches", async () => {
    const idx = await pushIndex(reg.host, "test/multi", "v1", [
      { layers: [{ tar: await smallLayer("amd") }], os: "linux", architecture: "amd64" },
      { layers: [{ tar: await smallLayer("arm") }], os: "linux", architecture: "arm64", variant: "v8" },
    ]);
    const root = await newRoot();
    const arm = await pull(idx.ref, { root, platform: { os: "linux", architecture: "arm64" } });
    assert.equal(arm.imageId, idx.images[1].configDigest);
    assert.equal(arm.manifestDigest, idx.topDigest);
    assert.equal(arm.platform, "linux/arm64/v8");
    const repos = await repositories(root);
    assert.equal(repos[`${reg.host}/test/multi`][`${reg.host}/test/multi@${idx.topDigest}`], idx.images[1].configDigest);
    const amd = await pull(idx.ref, { root: await newRoot(), platform: { os: "linux", architecture: "amd64" } });
    assert.equal(amd.imageId, idx.images[0].configDigest);
    await assert.rejects(pull(idx.ref, { root: await newRoot(), platform: { os: "linux", architecture: "s390x" } }), (e: Error) => {
      assert.match(e.message, /no matching manifest for linux\/s390x/);
      assert.match(e.message, /linux\/amd64, linux\/arm64\/v8/);
      return true;
    });
    // a single-platform image that does not match an explicit --platform is refused
    const single = await pushImage(reg.host, "test/single", "v1", [{ tar: await smallLayer("s") }]);
    await assert.rejects(
      pull(single.ref, { root: await newRoot(), platform: { os: "linux", architecture: "arm64" } }),
      /does not match the requested platform/,
    );
  });

  it("reports an unknown tag and an unknown repository clearly", async () => {
    await assert.rejects(pull(`${reg.host}/test/nothing:v9`, { root: await newRoot() }), /not found/);
  });
});
