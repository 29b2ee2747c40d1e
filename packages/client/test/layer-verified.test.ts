// unpackLayer over a layer blob (`compressed`): the blob is checked against its descriptor's
// digest and size and decompressed on the way (in the worker thread and inline), using the golden
// layer and its digests from Docker's expected.json.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, before, describe, test } from "node:test";
import { gunzipSync } from "node:zlib";
import { type Digest, DigestMismatchError, parseDigest, SizeMismatchError } from "@strata/core";
import { stopIdleUnpackWorkers, type UnpackResult, unpackLayer } from "../src/layer/unpack.js";
import { GOLDEN } from "./layer-helpers.js";
import { missing } from "./helpers/tools.js";

const expected = JSON.parse(fs.readFileSync(`${GOLDEN}expected.json`, "utf8")) as { layers: Array<{ blob_digest: string; diff_id: string }> };
const layer1 = expected.layers[0];
const gzBlob = fs.readFileSync(`${GOLDEN}oci/blobs/sha256/${layer1.blob_digest.slice(7)}`);
const tar = gunzipSync(gzBlob);
const sha256 = (b: Buffer): Digest => parseDigest(`sha256:${createHash("sha256").update(b).digest("hex")}`);

let work: string;
let n = 0;
before(() => {
  work = fs.mkdtempSync(join(tmpdir(), "strata-layer-verified-"));
});
after(() => fs.rmSync(work, { recursive: true, force: true }));

function chunks(b: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < b.length; i += size) out.push(b.subarray(i, i + size));
  return out;
}

async function unpackBlob(
  blob: Buffer,
  compressed: { compression: "gzip" | "zstd" | "none"; digest: Digest; size: number },
  inline: boolean,
): Promise<{ result: UnpackResult; dir: string }> {
  const dir = join(work, `l${n++}`);
  fs.mkdirSync(join(dir, "diff"), { recursive: true });
  const result = await unpackLayer(Readable.from(chunks(blob, 65536)), { diffDir: join(dir, "diff"), tarSplitPath: join(dir, "ts.gz"), compressed, inline });
  return { result, dir };
}

for (const inline of [false, true]) {
  describe(`unpackLayer of a layer blob (${inline ? "inline" : "worker thread"})`, () => {
    test("a gzip blob matching its descriptor gives Docker's diffID and the tar size", async () => {
      const { result } = await unpackBlob(gzBlob, { compression: "gzip", digest: parseDigest(layer1.blob_digest), size: gzBlob.length }, inline);
      assert.equal(result.diffId, layer1.diff_id);
      assert.equal(result.tarSize, tar.length);
    });

    test("zstd and uncompressed blobs give the same diffID", { skip: missing("zstd") }, async () => {
      const r = spawnSync("zstd", ["-q", "-c"], { input: tar, maxBuffer: 1 << 28 });
      assert.equal(r.status, 0, String(r.stderr));
      const z = r.stdout;
      assert.equal((await unpackBlob(z, { compression: "zstd", digest: sha256(z), size: z.length }, inline)).result.diffId, layer1.diff_id);
      assert.equal((await unpackBlob(tar, { compression: "none", digest: sha256(tar), size: tar.length }, inline)).result.diffId, layer1.diff_id);
    });

    test("a blob damaged where decompression fails at once is reported as a digest mismatch", async () => {
      const bad = Buffer.from(gzBlob);
      bad[0] ^= 0xff; // gzip magic: the decompressor rejects the first chunk
      const dir = join(work, `l${n}`);
      await assert.rejects(unpackBlob(bad, { compression: "gzip", digest: parseDigest(layer1.blob_digest), size: bad.length }, inline), (e: Error) => {
        assert.ok(e instanceof DigestMismatchError, `${e.name}: ${e.message}`);
        assert.equal(e.expected, layer1.blob_digest);
        assert.equal(e.actual, sha256(bad));
        return true;
      });
      assert.equal(fs.existsSync(join(dir, "ts.gz")), false);
    });

    test("a blob with the right bytes but another declared digest fails", async () => {
      const other = sha256(Buffer.from("other"));
      await assert.rejects(
        unpackBlob(gzBlob, { compression: "gzip", digest: other, size: gzBlob.length }, inline),
        (e: Error) => e instanceof DigestMismatchError && e.message === `digest mismatch: expected ${other}, got ${layer1.blob_digest}`,
      );
    });

    test("a truncated or overlong blob is a size mismatch", async () => {
      const digest = parseDigest(layer1.blob_digest);
      await assert.rejects(
        unpackBlob(gzBlob.subarray(0, gzBlob.length - 10), { compression: "gzip", digest, size: gzBlob.length }, inline),
        (e: Error) => e instanceof SizeMismatchError && !e.exceeded && e.actual === gzBlob.length - 10,
      );
      await assert.rejects(
        unpackBlob(Buffer.concat([gzBlob, Buffer.alloc(70000)]), { compression: "gzip", digest, size: gzBlob.length }, inline),
        (e: Error) => e instanceof SizeMismatchError && e.exceeded,
      );
    });
  });
}

describe("unpack jobs sharing one worker thread", () => {
  test("blobs unpacked at once on a single worker each get their own result, a failing one not disturbing the others", async () => {
    const prev = process.env.STRATA_UNPACK_WORKERS;
    process.env.STRATA_UNPACK_WORKERS = "1";
    stopIdleUnpackWorkers();
    try {
      const good = { compression: "gzip" as const, digest: parseDigest(layer1.blob_digest), size: gzBlob.length };
      const bad = Buffer.from(gzBlob);
      bad[bad.length - 100] ^= 0xff;
      const jobs = [unpackBlob(gzBlob, good, false), unpackBlob(bad, good, false), unpackBlob(gzBlob, good, false), unpackBlob(gzBlob, good, false)];
      const results = await Promise.allSettled(jobs);
      for (const i of [0, 2, 3]) {
        const r = results[i];
        assert.equal(r.status, "fulfilled", r.status === "rejected" ? String(r.reason) : "");
        if (r.status === "fulfilled") {
          assert.equal(r.value.result.diffId, layer1.diff_id);
          assert.equal(r.value.result.tarSize, tar.length);
        }
      }
      const failed = results[1];
      assert.equal(failed.status, "rejected");
      if (failed.status === "rejected") assert.ok(failed.reason instanceof DigestMismatchError, String(failed.reason));
    } finally {
      if (prev === undefined) delete process.env.STRATA_UNPACK_WORKERS;
      else process.env.STRATA_UNPACK_WORKERS = prev;
      stopIdleUnpackWorkers();
    }
  });
});
