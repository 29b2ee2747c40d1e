// Layer decompression: gzip, zstd (the zstd process and the fzstd fallback) and uncompressed,
// checked against the golden layer tars and against corrupt input.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, before, describe, test } from "node:test";
import { gunzipSync } from "node:zlib";
import { decompressor, findZstd } from "../src/layer/decompress.js";
import { unpackLayer } from "../src/layer/unpack.js";
import { GOLDEN } from "./layer-helpers.js";
import { missing } from "./helpers/tools.js";

const expected = JSON.parse(fs.readFileSync(`${GOLDEN}expected.json`, "utf8")) as { layers: Array<{ blob_digest: string; diff_id: string }> };
const layer1 = expected.layers[0];
const gzBlob = fs.readFileSync(`${GOLDEN}oci/blobs/sha256/${layer1.blob_digest.slice(7)}`);
const tar = gunzipSync(gzBlob);

let work: string;
before(() => {
  work = fs.mkdtempSync(join(tmpdir(), "strata-layer-decomp-"));
});
after(() => fs.rmSync(work, { recursive: true, force: true }));

function zstdCompress(data: Buffer, extra: string[] = []): Buffer {
  const r = spawnSync("zstd", ["-q", "-c", ...extra], { input: data, maxBuffer: 1 << 28 });
  assert.equal(r.status, 0, String(r.stderr));
  return r.stdout;
}

async function collect(src: Buffer[], d: NodeJS.ReadWriteStream): Promise<Buffer> {
  const out: Buffer[] = [];
  const done = (async () => {
    for await (const c of d as unknown as AsyncIterable<Buffer>) out.push(c);
  })();
  Readable.from(src).pipe(d as unknown as NodeJS.WritableStream);
  await done;
  return Buffer.concat(out);
}

function chunks(b: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < b.length; i += size) out.push(b.subarray(i, i + size));
  return out;
}

async function withZstdMode<T>(mode: string, fn: () => Promise<T>): Promise<T> {
  const old = process.env.STRATA_ZSTD;
  process.env.STRATA_ZSTD = mode;
  try {
    return await fn();
  } finally {
    if (old === undefined) delete process.env.STRATA_ZSTD;
    else process.env.STRATA_ZSTD = old;
  }
}

describe("decompressor", () => {
  test("gzip and none reproduce the layer tar", async () => {
    assert.ok((await collect(chunks(gzBlob, 1000), decompressor("gzip"))).equals(tar));
    assert.ok((await collect(chunks(tar, 777), decompressor("none"))).equals(tar));
  });

  test("zstd is handled by the zstd executable when installed", { skip: missing("zstd") }, () => {
    assert.ok(findZstd(), "Debian's zstd is expected on these machines");
  });

  for (const mode of ["cli", "js"]) {
    test(`zstd (${mode}) reproduces the tar, also from several frames and odd chunking`, async () => {
      await withZstdMode(mode, async () => {
        const z = zstdCompress(tar);
        assert.ok((await collect(chunks(z, 4093), decompressor("zstd"))).equals(tar));
        const half = tar.length >> 1;
        const two = Buffer.concat([zstdCompress(tar.subarray(0, half)), zstdCompress(tar.subarray(half))]);
        assert.ok((await collect(chunks(two, 100000), decompressor("zstd"))).equals(tar));
      });
    });

    // fzstd does not verify frame checksums, so only the zstd process detects corrupt content;
    // with either, a corrupt layer still fails the pull through its blob digest and diffID.
    test(`zstd (${mode}) fails on ${mode === "cli" ? "corrupt and " : ""}truncated input`, async () => {
      await withZstdMode(mode, async () => {
        const z = zstdCompress(tar, ["--check"]);
        if (mode === "cli") {
          const bad = Buffer.from(z);
          bad[Math.floor(bad.length / 2)] ^= 0xff;
          bad[Math.floor(bad.length / 2) + 1] ^= 0xff;
          await assert.rejects(collect([bad], decompressor("zstd")), /zstd/);
        }
        await assert.rejects(collect([z.subarray(0, z.length - 100)], decompressor("zstd")), /zstd/);
      });
    });
  }

  test("unpackLayer over zstd and uncompressed streams gives the diffID", async () => {
    for (const [i, [comp, blob]] of (
      [
        ["zstd", zstdCompress(tar)],
        ["none", tar],
      ] as const
    ).entries()) {
      const diffDir = join(work, `u${i}`, "diff");
      fs.mkdirSync(diffDir, { recursive: true });
      const r = await unpackLayer(Readable.from(chunks(blob, 65536)).pipe(decompressor(comp)), { diffDir, tarSplitPath: join(work, `u${i}`, "ts.gz") });
      assert.equal(r.diffId, layer1.diff_id);
      assert.equal(
        createHash("sha256")
          .update(fs.readFileSync(join(diffDir, "data/random.bin")))
          .digest("hex").length,
        64,
      );
    }
  });
});
