// unpackRemoteLayer, the pull's unpack: a layer blob downloaded from a real registry (Debian's
// docker-registry) and unpacked in each of its placements: in a worker, inline, on the calling
// thread's slot, and split across the calling thread (download, verify, decompress) and a worker
// (extract). Every placement must give what Docker Engine wrote for the golden image
// (test/fixtures/docker-golden: diffIDs, tar-split NDJSON byte for byte, diff trees), and a
// tampered or hostile blob must fail without leaving a tar-split file behind.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { after, before, describe, test } from "node:test";
import { gunzipSync } from "node:zlib";
import { DigestMismatchError, parseDigest } from "@strata/core";
import { RegistryClient } from "../src/registry/client.js";
import { type RemoteUnpackOptions, stopIdleUnpackWorkers, UnsafeLayerError, unpackLayer, unpackRemoteLayer, unpackWorkerJobs } from "../src/layer/unpack.js";
import { type Distribution, distributionBlobPath, GOLDEN_DIR, pushOciLayout, startDistribution } from "./helpers/distribution.js";
import { pushImage } from "./helpers/images.js";
import { makeTar } from "./helpers/oci-build.js";
import { goldenTree, listTree } from "./layer-helpers.js";
import { missing } from "./helpers/tools.js";

interface GoldenLayer {
  n: number;
  blob_digest: string;
  blob_size: number;
  diff_id: string;
}

const placements: Array<{ name: string; opts: Pick<RemoteUnpackOptions, "inline" | "callerThread" | "split">; workerJobs: number }> = [
  { name: "in a worker", opts: {}, workerJobs: 1 },
  { name: "inline", opts: { inline: true }, workerJobs: 0 },
  { name: "on the calling thread's slot", opts: { callerThread: true }, workerJobs: 0 },
  { name: "split between the calling thread and a worker", opts: { callerThread: true, split: true }, workerJobs: 1 },
];

describe("unpackRemoteLayer from a registry", { skip: missing("docker-registry", "skopeo") }, () => {
  let reg: Distribution;
  let work: string;
  let layers: GoldenLayer[];
  let n = 0;
  const session = () => new RegistryClient({ domain: reg.host, insecureRegistries: [reg.host] }).session();
  const dirs = () => {
    const dir = join(work, `u${n++}`);
    fs.mkdirSync(join(dir, "diff"), { recursive: true });
    return { diffDir: join(dir, "diff"), tarSplitPath: join(dir, "tar-split.json.gz") };
  };

  before(async () => {
    work = fs.mkdtempSync(join(tmpdir(), "strata-layer-remote-"));
    layers = JSON.parse(fs.readFileSync(join(GOLDEN_DIR, "expected.json"), "utf8")).layers;
    reg = await startDistribution();
    await pushOciLayout(join(GOLDEN_DIR, "oci"), "v1", `${reg.host}/golden/edge:v1`);
  });
  after(async () => {
    stopIdleUnpackWorkers();
    await reg?.stop();
    fs.rmSync(work, { recursive: true, force: true });
  });

  for (const p of placements) {
    test(`${p.name}: every golden layer gives Docker's diffID, tar-split and diff tree`, async () => {
      for (const l of layers) {
        const { diffDir, tarSplitPath } = dirs();
        const jobs = unpackWorkerJobs();
        const reads: Array<[number, boolean]> = [];
        const r = await unpackRemoteLayer(
          { session: session(), repository: "golden/edge", blob: { compression: "gzip", digest: parseDigest(l.blob_digest), size: l.blob_size } },
          { diffDir, tarSplitPath, durable: true, onRead: (bytes, done) => reads.push([bytes, done]), ...p.opts },
        );
        assert.equal(unpackWorkerJobs() - jobs, p.workerJobs, "unpack jobs run in worker threads");
        assert.equal(r.diffId, l.diff_id);
        assert.deepEqual(reads.at(-1), [l.blob_size, true], "the last progress report is the whole blob");
        const ndjson = fs.readFileSync(join(GOLDEN_DIR, "tar-split", `${l.diff_id.slice(7)}.ndjson`));
        assert.ok(gunzipSync(fs.readFileSync(tarSplitPath)).equals(ndjson), `layer${l.n}: tar-split differs from Docker's`);
        assert.deepEqual(listTree(diffDir), goldenTree(`layer${l.n}`));
      }
    });
  }

  test("split only while no worker has a job: else the layer unpacks whole on the calling thread", async () => {
    // a worker job held open: its tar stream has not ended
    const held = new PassThrough();
    const busy = dirs();
    const running = unpackLayer(held, busy);
    held.write(Buffer.alloc(512));
    const l = layers[0];
    const { diffDir, tarSplitPath } = dirs();
    try {
      const jobs = unpackWorkerJobs();
      const r = await unpackRemoteLayer(
        { session: session(), repository: "golden/edge", blob: { compression: "gzip", digest: parseDigest(l.blob_digest), size: l.blob_size } },
        { diffDir, tarSplitPath, callerThread: true, split: true },
      );
      assert.equal(unpackWorkerJobs() - jobs, 0, "no worker job for the layer");
      assert.equal(r.diffId, l.diff_id);
      assert.deepEqual(listTree(diffDir), goldenTree(`layer${l.n}`));
    } finally {
      held.end(Buffer.alloc(1024 - 512)); // an empty tar: 1024 zero bytes
    }
    assert.equal((await running).tarSize, 1024);
  });

  test("split: a hostile layer is refused by the worker and leaves no tar-split file", async () => {
    const evil = await makeTar([
      { name: "ok.txt", content: "fine" },
      { name: "../../../../evil.txt", content: "escaped" },
    ]);
    const img = await pushImage(reg.host, "test/hostile", "v1", [{ tar: evil }]);
    const { diffDir, tarSplitPath } = dirs();
    const size = fs.statSync(distributionBlobPath(reg.storage, img.blobDigests[0].slice(7))).size;
    const blob = { compression: "gzip" as const, digest: parseDigest(img.blobDigests[0]), size };
    await assert.rejects(
      unpackRemoteLayer({ session: session(), repository: "test/hostile", blob }, { diffDir, tarSplitPath, callerThread: true, split: true }),
      (e: Error) => e instanceof UnsafeLayerError,
    );
    assert.equal(fs.existsSync(tarSplitPath), false);
    assert.equal(fs.existsSync(join(work, "evil.txt")), false);
  });

  // last: it damages a blob in the registry's storage
  test("split: a blob whose bytes do not match its digest fails before anything is reported unpacked", async () => {
    const l = layers[layers.length - 1];
    const path = distributionBlobPath(reg.storage, l.blob_digest.slice(7));
    const data = fs.readFileSync(path);
    data[data.length - 30] ^= 0xff; // same size, other content
    fs.writeFileSync(path, data);
    const { diffDir, tarSplitPath } = dirs();
    const blob = { compression: "gzip" as const, digest: parseDigest(l.blob_digest), size: l.blob_size };
    await assert.rejects(
      unpackRemoteLayer({ session: session(), repository: "golden/edge", blob }, { diffDir, tarSplitPath, callerThread: true, split: true }),
      (e: Error) => e instanceof DigestMismatchError && e.expected === l.blob_digest,
    );
    assert.equal(fs.existsSync(tarSplitPath), false);
    // the worker is still healthy: the next split unpack of another layer succeeds
    const ok = layers[0];
    const next = dirs();
    const r = await unpackRemoteLayer(
      { session: session(), repository: "golden/edge", blob: { compression: "gzip", digest: parseDigest(ok.blob_digest), size: ok.blob_size } },
      { ...next, callerThread: true, split: true },
    );
    assert.equal(r.diffId, ok.diff_id);
  });
});
