// The layer engine against what Docker Engine 20.10 wrote for the golden image
// (test/fixtures/docker-golden): diffIDs, layerdb sizes, tar-split NDJSON byte for byte,
// diff trees, and exact tar reconstruction (ours and Debian's `tar-split asm`).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { gunzipSync } from "node:zlib";
import { assembleLayer } from "../src/layer/assemble.js";
import { decompressor } from "../src/layer/decompress.js";
import { unpackLayer } from "../src/layer/unpack.js";
import { GOLDEN, goldenTree, listTree } from "./layer-helpers.js";
import { missing } from "./helpers/tools.js";

interface ExpectedLayer {
  n: number;
  blob_digest: string;
  diff_id: string;
  size: number;
  tar_size: number;
}
const expected = JSON.parse(fs.readFileSync(`${GOLDEN}expected.json`, "utf8")) as { layers: ExpectedLayer[] };
const blobPath = (l: ExpectedLayer) => `${GOLDEN}oci/blobs/sha256/${l.blob_digest.slice("sha256:".length)}`;

let work: string;
before(() => {
  work = fs.mkdtempSync(join(tmpdir(), "strata-layer-golden-"));
});
after(() => {
  fs.rmSync(work, { recursive: true, force: true });
});

async function sha256Of(stream: NodeJS.ReadableStream): Promise<{ hex: string; bytes: Buffer }> {
  const h = createHash("sha256");
  const parts: Buffer[] = [];
  for await (const c of stream as AsyncIterable<Buffer>) {
    h.update(c);
    parts.push(c);
  }
  return { hex: h.digest("hex"), bytes: Buffer.concat(parts) };
}

for (const layer of expected.layers) {
  describe(`golden layer ${layer.n}`, () => {
    let dir: string;
    let diffDir: string;
    let tarSplitPath: string;
    let result: Awaited<ReturnType<typeof unpackLayer>>;

    before(async () => {
      dir = join(work, `layer${layer.n}`);
      diffDir = join(dir, "diff");
      tarSplitPath = join(dir, "tar-split.json.gz");
      fs.mkdirSync(diffDir, { recursive: true, mode: 0o755 });
      fs.chmodSync(diffDir, 0o755);
      result = await unpackLayer(fs.createReadStream(blobPath(layer)).pipe(decompressor("gzip")), { diffDir, tarSplitPath });
    });

    test("diffID, layerdb size and tar size match Docker", () => {
      assert.equal(result.diffId, layer.diff_id);
      assert.equal(result.size, layer.size);
      assert.equal(result.tarSize, layer.tar_size);
    });

    test("tar-split NDJSON is byte-identical to Docker's", () => {
      const ours = gunzipSync(fs.readFileSync(tarSplitPath));
      const docker = fs.readFileSync(`${GOLDEN}tar-split/${layer.diff_id.slice("sha256:".length)}.ndjson`);
      assert.equal(ours.toString("utf8"), docker.toString("utf8"));
      assert.ok(ours.equals(docker));
    });

    test("diff tree matches docker-trees.txt", () => {
      assert.deepEqual(listTree(diffDir), goldenTree(`layer${layer.n}`));
    });

    test("assembleLayer rebuilds the original tar bytes", async () => {
      const { hex, bytes } = await sha256Of(assembleLayer({ diffDir, tarSplitPath }));
      assert.equal(`sha256:${hex}`, layer.diff_id);
      assert.ok(bytes.equals(gunzipSync(fs.readFileSync(blobPath(layer)))));
    });

    test("Debian's tar-split asm rebuilds the same tar from our output", { skip: missing("tar-split") }, () => {
      const out = join(dir, "asm.tar");
      const r = spawnSync("tar-split", ["asm", "--input", tarSplitPath, "--path", diffDir, "--output", out], { encoding: "utf8" });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(`sha256:${createHash("sha256").update(fs.readFileSync(out)).digest("hex")}`, layer.diff_id);
    });
  });
}

describe("assembleLayer integrity", () => {
  test("a modified file in the diff dir makes the rebuild fail", async () => {
    const layer = expected.layers[0];
    const diffDir = join(work, "tamper", "diff");
    const tarSplitPath = join(work, "tamper", "tar-split.json.gz");
    fs.mkdirSync(diffDir, { recursive: true });
    await unpackLayer(fs.createReadStream(blobPath(layer)).pipe(decompressor("gzip")), { diffDir, tarSplitPath });
    // same size, different content: only the CRC can tell
    const f = join(diffDir, "data/small.txt");
    const b = fs.readFileSync(f);
    b[0] ^= 1;
    fs.writeFileSync(f, b);
    await assert.rejects(sha256Of(assembleLayer({ diffDir, tarSplitPath })), /CRC-64 mismatch/);
    // different size
    fs.appendFileSync(join(diffDir, "etc/config.conf"), "x");
    b[0] ^= 1;
    fs.writeFileSync(f, b);
    await assert.rejects(sha256Of(assembleLayer({ diffDir, tarSplitPath })), /size/);
  });
});

describe("inline mode", () => {
  test("unpacking on the calling thread gives the same result as the worker", async () => {
    const layer = expected.layers[0];
    const diffDir = join(work, "inline", "diff");
    const tarSplitPath = join(work, "inline", "tar-split.json.gz");
    fs.mkdirSync(diffDir, { recursive: true, mode: 0o755 });
    fs.chmodSync(diffDir, 0o755);
    const r = await unpackLayer(fs.createReadStream(blobPath(layer)).pipe(decompressor("gzip")), { diffDir, tarSplitPath, inline: true });
    assert.equal(r.diffId, layer.diff_id);
    assert.equal(r.size, layer.size);
    assert.ok(gunzipSync(fs.readFileSync(tarSplitPath)).equals(fs.readFileSync(`${GOLDEN}tar-split/${layer.diff_id.slice(7)}.ndjson`)));
    assert.deepEqual(listTree(diffDir), goldenTree("layer1"));
  });
});
