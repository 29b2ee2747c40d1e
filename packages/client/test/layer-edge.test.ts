// Edge entries Docker accepts, with Docker's outcome (moby pkg/archive):
// - a whiteout entry that carries data: Docker's overlay whiteout converter makes the 0:0 device
//   and skips the data; Strata does the same and still rebuilds the exact layer tar (verify, save);
// - times out of range: Docker's boundTime sets a time before the epoch or after
//   time.Unix(0, 1<<63-1) to the epoch (atime = the later of atime and mtime, then bounded);
//   a pax time whose seconds do not fit an int64 is a malformed header for Go's archive/tar.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, before, describe, test } from "node:test";
import { verifyStore } from "../src/commands/verify.js";
import { assembleLayer } from "../src/layer/assemble.js";
import { TarFormatError } from "../src/layer/tar.js";
import { unpackLayer } from "../src/layer/unpack.js";
import { pull } from "../src/pull.js";
import { Store } from "../src/store/store.js";
import { type Distribution, startDistribution } from "./helpers/distribution.js";
import { pushImage } from "./helpers/images.js";
import { buildTar, type TarEntrySpec } from "./layer-helpers.js";
import { runCli } from "./helpers/run-cli.js";
import { missing } from "./helpers/tools.js";

const isRoot = process.getuid?.() === 0;
let work: string;
let n = 0;
before(() => {
  work = fs.mkdtempSync(join(tmpdir(), "strata-layer-edge-"));
});
after(() => fs.rmSync(work, { recursive: true, force: true }));

async function unpack(tar: Buffer) {
  const dir = join(work, `case${n++}`);
  const diff = join(dir, "diff");
  fs.mkdirSync(diff, { recursive: true });
  const tarSplit = join(dir, "tar-split.json.gz");
  const r = await unpackLayer(Readable.from([tar]), { diffDir: diff, tarSplitPath: tarSplit });
  return { ...r, diff, tarSplit };
}

async function rebuilt(diffDir: string, tarSplitPath: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of assembleLayer({ diffDir, tarSplitPath })) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

const WHITEOUT_WITH_DATA: TarEntrySpec[] = [
  { name: "a/", type: "5", mode: 0o755 },
  { name: "a/.wh.gone", data: "whiteouts carry no data, but this one does\n".repeat(40) },
  { name: "a/kept.txt", data: "kept\n" },
  { name: "b/", type: "5", mode: 0o755 },
  { name: "b/.wh..wh..opq", data: "opaque marker with data" },
];

describe("whiteout entries that carry data", { skip: isRoot ? false : "whiteouts (0:0 devices) need root" }, () => {
  test("extract like Docker (the device, no data) and rebuild the exact tar", async () => {
    const tar = buildTar(WHITEOUT_WITH_DATA);
    const r = await unpack(tar);
    assert.equal(r.diffId, `sha256:${createHash("sha256").update(tar).digest("hex")}`);
    const wh = fs.lstatSync(join(r.diff, "a/gone"));
    assert.ok(wh.isCharacterDevice() && wh.rdev === 0);
    assert.deepEqual(fs.readdirSync(join(r.diff, "a")).sort(), ["gone", "kept.txt"]);
    assert.deepEqual(fs.readdirSync(join(r.diff, "b")), []);
    assert.ok((await rebuilt(r.diff, r.tarSplit)).equals(tar), "assembled tar differs from the original");
    // tar-split's own assembler (what dockerd runs on `docker save`) rebuilds it too
    const asm = spawnSync("tar-split", ["asm", "--input", r.tarSplit, "--path", r.diff, "--output", "-"], { maxBuffer: 1 << 24 });
    if (!asm.error) assert.ok(Buffer.from(asm.stdout).equals(tar), `tar-split asm: ${asm.stderr}`);
  });

  describe("pulled into a store", { skip: missing("docker-registry", "skopeo") }, () => {
    let reg: Distribution;
    let root: string;
    before(async () => {
      reg = await startDistribution();
      root = join(work, "store");
    });
    after(async () => {
      await reg?.stop();
    });

    test("verify and save succeed for the image", async () => {
      const img = await pushImage(reg.host, "edge/whiteout-data", "v1", [{ tar: buildTar(WHITEOUT_WITH_DATA) }]);
      await pull(img.ref, { root });
      const checks = await verifyStore(await Store.open(root), img.ref);
      assert.ok(checks[0].ok, JSON.stringify(checks));
      const save = await runCli(["save", img.ref, "-o", join(work, "saved.tar"), "--root", root]);
      assert.equal(save.code, 0, save.stderr);
    });
  });
});

describe("times out of range", () => {
  const FAR = "99999999999999"; // fits an int64, ~3 million years past the end of Docker's range
  test("are set to the epoch like Docker (files, directories, symlinks, atime too)", async () => {
    const tar = buildTar([
      { name: "d/", type: "5", mode: 0o755, pax: { mtime: FAR } },
      { name: "d/far.txt", data: "x", pax: { mtime: FAR } },
      { name: "d/past.txt", data: "x", pax: { mtime: "-86400.5" } },
      { name: "d/atime.txt", data: "x", mtime: 1_700_000_000, pax: { atime: FAR } },
      { name: "d/ok.txt", data: "x", pax: { mtime: "1700000000.25" } },
      { name: "d/link", type: "2", linkname: "ok.txt", pax: { mtime: FAR } },
    ]);
    const r = await unpack(tar);
    const times = (p: string) => {
      const st = fs.lstatSync(join(r.diff, p), { bigint: true });
      return [Number(st.atimeNs / 1_000_000n) / 1000, Number(st.mtimeNs / 1_000_000n) / 1000];
    };
    assert.deepEqual(times("d"), [0, 0]);
    assert.deepEqual(times("d/far.txt"), [0, 0]);
    assert.deepEqual(times("d/past.txt"), [0, 0]);
    assert.deepEqual(times("d/atime.txt"), [0, 1_700_000_000], "the later time (atime) is out of range: the epoch");
    assert.deepEqual(times("d/ok.txt"), [1_700_000_000.25, 1_700_000_000.25]);
    assert.deepEqual(times("d/link"), [0, 0]);
    assert.ok((await rebuilt(r.diff, r.tarSplit)).equals(tar));
  });

  test("a pax time beyond an int64 is a malformed header (Go's archive/tar)", async () => {
    const tar = buildTar([{ name: "f", data: "x", pax: { mtime: "9223372036854775808" } }]);
    await assert.rejects(unpack(tar), (e: unknown) => e instanceof TarFormatError && /pax time .* out of range/.test((e as Error).message));
    const ok = buildTar([{ name: "f", data: "x", pax: { mtime: "9223372036854775807" } }]);
    const r = await unpack(ok);
    assert.equal(fs.statSync(join(r.diff, "f")).mtimeMs, 0);
  });
});
