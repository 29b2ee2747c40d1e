/**
 * `strata copy` between local transports, checked by a real peer: skopeo reads what strata
 * writes (oci:, oci-archive:, docker-archive:) and strata reads what skopeo writes, with the
 * manifest and index digests compared. A docker-archive whose layers do not match its config
 * fails with one line and leaves nothing at the destination.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { after, before, describe, it } from "node:test";
import { gunzipSync } from "node:zlib";
import tar from "tar-stream";
import { type Distribution, pushOciLayout, run, startDistribution } from "./helpers/distribution.js";
import { bigLayer, smallLayer } from "./helpers/images.js";
import { type BuiltImage, OciLayoutBuilder } from "./helpers/oci-build.js";
import { CLI, runCli } from "./helpers/run-cli.js";
import { missing } from "./helpers/tools.js";

const sha = (b: Buffer | string) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

async function skopeo(...args: string[]): Promise<string> {
  const r = await run("skopeo", args);
  assert.equal(r.code, 0, `skopeo ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

/** Every member of a tar file. */
async function tarMembers(file: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const ex = tar.extract();
  ex.on("entry", (h, stream, next) => {
    const chunks: Buffer[] = [];
    stream.on("data", (c: unknown) => chunks.push(c as Buffer));
    stream.on("end", () => {
      if (h.type === "file") out.set(h.name.replace(/^\.\//, ""), Buffer.concat(chunks));
      next();
    });
  });
  await pipeline(createReadStream(file), ex);
  return out;
}

/** The docker-archive's image: config bytes and layer tars (in order), read the way docker load reads it. */
async function dockerArchiveImage(file: string): Promise<{ config: Buffer; layers: Buffer[]; repoTags: string[] }> {
  const m = await tarMembers(file);
  const [entry] = JSON.parse((m.get("manifest.json") as Buffer).toString()) as { Config: string; Layers: string[]; RepoTags: string[] | null }[];
  return { config: m.get(entry.Config) as Buffer, layers: entry.Layers.map((l) => m.get(l) as Buffer), repoTags: entry.RepoTags ?? [] };
}

/** Writes a copy of a tar with `change` applied to the members it returns a replacement for. */
async function rewriteTar(src: string, dst: string, change: (name: string, data: Buffer) => Buffer | undefined): Promise<void> {
  const m = await tarMembers(src);
  const pack = tar.pack();
  const writing = pipeline(pack, createWriteStream(dst));
  for (const [name, data] of m) pack.entry({ name }, change(name, data) ?? data);
  pack.finalize();
  await writing;
}

async function listTree(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true })).map(String).sort();
}

describe("strata copy (local transports, read back by skopeo)", { skip: missing("skopeo") }, () => {
  let work: string;
  let layout: string;
  let single: BuiltImage;
  let amd: BuiltImage;
  let arm: BuiltImage;
  let indexDigest: string;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), "strata-copy-"));
    layout = join(work, "src");
    const b = new OciLayoutBuilder(layout);
    single = await b.image({ layers: [{ tar: await smallLayer("one") }, { tar: await bigLayer("two", 200_000) }] });
    amd = await b.image({ layers: [{ tar: await smallLayer("amd") }], architecture: "amd64" });
    arm = await b.image({ layers: [{ tar: await smallLayer("arm") }, { tar: await smallLayer("arm2"), compression: "none" }], architecture: "arm64", variant: "v8" });
    // finish() names one entry (the index); the single image is added to index.json as "v1"
    const { topDigest } = await b.finish("multi", [amd, arm], true);
    indexDigest = topDigest;
    const idx = JSON.parse(await readFile(join(layout, "index.json"), "utf8"));
    idx.manifests.push({ mediaType: "application/vnd.oci.image.manifest.v1+json", digest: single.manifestDigest, size: single.manifestSize, annotations: { "org.opencontainers.image.ref.name": "v1" } });
    await writeFile(join(layout, "index.json"), JSON.stringify(idx));
  });
  after(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("oci: to oci: keeps the manifest digest; skopeo reads the result", async () => {
    const dst = join(work, "o1");
    const r = await runCli(["copy", `oci:${layout}:v1`, `oci:${dst}:copied`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`: ${single.manifestDigest}\\n$`));
    const raw = await skopeo("inspect", "--raw", `oci:${dst}:copied`);
    assert.equal(sha(raw), single.manifestDigest);
    const cfg = await skopeo("inspect", "--config", "--raw", `oci:${dst}:copied`);
    assert.equal(sha(cfg), single.configDigest);
    // skopeo reads (and verifies) every blob
    await skopeo("copy", "--quiet", `oci:${dst}:copied`, `oci:${join(work, "o1-skopeo")}:x`);
    // a second copy into the same layout under another name adds the name, keeps the first
    const again = await runCli(["copy", "--quiet", `oci:${layout}:v1`, `oci:${dst}:second`]);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout, "");
    const names = JSON.parse(await readFile(join(dst, "index.json"), "utf8")).manifests.map((m: { annotations: Record<string, string> }) => m.annotations["org.opencontainers.image.ref.name"]);
    assert.deepEqual(names.sort(), ["copied", "second"]);
  });

  it("concurrent copies into one layout keep every name (index.json changed under a lock)", async () => {
    const dst = join(work, "concurrent");
    assert.equal((await runCli(["copy", "-q", `oci:${layout}:v1`, `oci:${dst}:first`])).code, 0);
    const tags = ["a", "b", "c", "d", "e"];
    const results = await Promise.all(tags.map((t) => runCli(["copy", "-q", "--platform", "linux/arm64", `oci:${layout}:multi`, `oci:${dst}:${t}`])));
    for (const r of results) assert.equal(r.code, 0, r.stderr);
    const names = JSON.parse(await readFile(join(dst, "index.json"), "utf8")).manifests.map((m: { annotations: Record<string, string> }) => m.annotations["org.opencontainers.image.ref.name"]);
    assert.deepEqual(names.sort(), [...tags, "first"].sort());
    assert.ok(!(await readdir(dst)).some((n) => n.startsWith(".strata")));
    for (const t of tags) assert.equal(sha(await skopeo("inspect", "--raw", `oci:${dst}:${t}`)), arm.manifestDigest);
  });

  it("--all copies a two-platform index with its digest; skopeo --all reads it back identical", async () => {
    const dst = join(work, "all");
    const r = await runCli(["copy", "--all", "--format", "json", `oci:${layout}:multi`, `oci:${dst}:multi`]);
    assert.equal(r.code, 0, r.stderr);
    const events = r.stdout.trimEnd().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(events.at(-1), { event: "done", source: `oci:${layout}:multi`, destination: `oci:${dst}:multi`, digest: indexDigest, mediaType: "application/vnd.oci.image.index.v1+json", images: 2 });
    assert.ok(events.some((e) => e.event === "manifest" && e.digest === arm.manifestDigest && e.top === false));
    assert.equal(sha(await skopeo("inspect", "--raw", `oci:${dst}:multi`)), indexDigest);
    const back = join(work, "all-skopeo");
    await skopeo("copy", "--quiet", "--all", "--preserve-digests", `oci:${dst}:multi`, `oci:${back}:m`);
    assert.equal(sha(await skopeo("inspect", "--raw", `oci:${back}:m`)), indexDigest);
    for (const img of [amd, arm]) {
      assert.ok((await stat(join(back, "blobs", "sha256", img.manifestDigest.slice(7)))).isFile());
    }
  });

  it("--platform picks one image of an index (its manifest digest kept)", async () => {
    const dst = join(work, "arm");
    const r = await runCli(["copy", "--platform", "linux/arm64", `oci:${layout}:multi`, `oci:${dst}:arm`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(sha(await skopeo("inspect", "--raw", `oci:${dst}:arm`)), arm.manifestDigest);
    const none = await runCli(["copy", "--platform", "linux/s390x", `oci:${layout}:multi`, `oci:${join(work, "none")}:x`]);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /^strata: .*no image for linux\/s390x in the index \(it has linux\/amd64, linux\/arm64\/v8\).*\n$/);
    await assert.rejects(stat(join(work, "none")));
  });

  it("oci-archive: written by strata is read by skopeo, and read back by strata, digests kept", async () => {
    const file = join(work, "img.oci.tar");
    const r = await runCli(["copy", "--all", `oci:${layout}:multi`, `oci-archive:${file}:multi`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(sha(await skopeo("inspect", "--raw", `oci-archive:${file}:multi`)), indexDigest);
    const skopeoFile = join(work, "skopeo.oci.tar");
    await skopeo("copy", "--quiet", `oci:${layout}:v1`, `oci-archive:${skopeoFile}:v1`);
    const dst = join(work, "from-archive");
    const back = await runCli(["copy", `oci-archive:${skopeoFile}:v1`, `oci:${dst}:v1`]);
    assert.equal(back.code, 0, back.stderr);
    assert.equal(sha(await skopeo("inspect", "--raw", `oci:${dst}:v1`)), single.manifestDigest);
  });

  it("docker-archive: strata writes what skopeo reads; skopeo's archive copied by strata to oci: comes back identical", async () => {
    // strata: oci -> docker-archive; skopeo reads it: same config, layers = the original tars
    const file = join(work, "strata.docker.tar");
    const r = await runCli(["copy", `oci:${layout}:v1`, `docker-archive:${file}:example.com/team/app:1.0`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(sha(await skopeo("inspect", "--config", "--raw", `docker-archive:${file}`)), single.configDigest);
    const ours = await dockerArchiveImage(file);
    assert.deepEqual(ours.repoTags, ["example.com/team/app:1.0"]);
    assert.deepEqual(ours.layers.map(sha), single.diffIds);
    // skopeo: oci -> docker-archive; strata: docker-archive -> oci; skopeo: oci -> docker-archive again
    const a = join(work, "skopeo-a.docker.tar");
    await skopeo("copy", "--quiet", `oci:${layout}:v1`, `docker-archive:${a}:team/app:a`);
    const mid = join(work, "mid");
    const c = await runCli(["copy", `docker-archive:${a}`, `oci:${mid}:t`]);
    assert.equal(c.code, 0, c.stderr);
    const manifest = JSON.parse(await skopeo("inspect", "--raw", `oci:${mid}:t`));
    assert.equal(manifest.config.digest, single.configDigest);
    assert.deepEqual(
      manifest.layers.map((l: { mediaType: string }) => l.mediaType),
      single.diffIds.map(() => "application/vnd.oci.image.layer.v1.tar+gzip"),
    );
    // the gzip blobs decompress to the original tars
    for (const [i, l] of (manifest.layers as { digest: string }[]).entries()) {
      const blob = await readFile(join(mid, "blobs", "sha256", l.digest.slice(7)));
      assert.equal(sha(gunzipSync(blob)), single.diffIds[i]);
    }
    const b = join(work, "skopeo-b.docker.tar");
    await skopeo("copy", "--quiet", `oci:${mid}:t`, `docker-archive:${b}:team/app:b`);
    const ia = await dockerArchiveImage(a);
    const ib = await dockerArchiveImage(b);
    assert.ok(ia.config.equals(ib.config));
    assert.deepEqual(ib.layers.map(sha), ia.layers.map(sha));
    // compression is reproducible: the same archive copied again gives the same manifest
    const mid2 = join(work, "mid2");
    assert.equal((await runCli(["copy", "-q", `docker-archive:${a}`, `oci:${mid2}:t`])).code, 0);
    assert.equal(sha(await skopeo("inspect", "--raw", `oci:${mid2}:t`)), sha(await skopeo("inspect", "--raw", `oci:${mid}:t`)));
  });

  it("a docker-archive that lies about its layers fails with one line and leaves nothing at the destination", async () => {
    const good = join(work, "good.docker.tar");
    await skopeo("copy", "--quiet", `oci:${layout}:v1`, `docker-archive:${good}:team/app:v1`);
    const manifest = JSON.parse((await tarMembers(good)).get("manifest.json")!.toString());
    const lastLayer = manifest[0].Layers.at(-1) as string;
    const lying = join(work, "lying.docker.tar");
    await rewriteTar(good, lying, (name, data) => {
      if (name !== lastLayer) return undefined;
      const d = Buffer.from(data);
      d[d.length - 1500] ^= 0xff; // inside the big file's content: same size, other bytes
      return d;
    });
    // into a new directory: it must not exist afterwards
    const outDir = join(work, "lie-out");
    await mkdir(outDir);
    const r = await runCli(["copy", `docker-archive:${lying}`, `oci:${join(outDir, "layout")}:t`]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^strata: docker-archive:.*lies about its layers: layer 2 .*does not match the config's diffID sha256:[0-9a-f]{64}.*\n$/);
    assert.deepEqual(await readdir(outDir), []);
    // into an existing layout: no blob added, index.json unchanged
    const existing = join(work, "o1");
    const before = await listTree(existing);
    const indexBefore = await readFile(join(existing, "index.json"));
    const r2 = await runCli(["copy", `docker-archive:${lying}`, `oci:${existing}:lie`]);
    assert.equal(r2.code, 1);
    assert.deepEqual(await listTree(existing), before);
    assert.ok((await readFile(join(existing, "index.json"))).equals(indexBefore));
    // into a docker-archive file: not created
    const r3 = await runCli(["copy", `docker-archive:${lying}`, `docker-archive:${join(outDir, "x.tar")}`]);
    assert.equal(r3.code, 1);
    assert.deepEqual(await readdir(outDir), []);
    // into an oci-archive (layers compressed on the way): not created, no spool left
    const r5 = await runCli(["copy", `docker-archive:${lying}`, `oci-archive:${join(outDir, "x.oci.tar")}`]);
    assert.equal(r5.code, 1);
    assert.match(r5.stderr, /lies about its layers/);
    assert.deepEqual(await readdir(outDir), []);
    // a config listing fewer diffIDs than the archive has layers
    const short = join(work, "short.docker.tar");
    await rewriteTar(good, short, (name, data) => {
      if (name !== manifest[0].Config) return undefined;
      const cfg = JSON.parse(data.toString());
      cfg.rootfs.diff_ids.pop();
      return Buffer.from(JSON.stringify(cfg));
    });
    const short2 = join(work, "short2.docker.tar");
    await rewriteTar(short, short2, (name, data) => {
      if (name !== "manifest.json") return undefined;
      const m = JSON.parse(data.toString());
      m[0].Config = manifest[0].Config;
      return Buffer.from(JSON.stringify(m));
    });
    const r4 = await runCli(["copy", `docker-archive:${short2}`, `oci:${join(outDir, "l2")}`]);
    assert.equal(r4.code, 1);
    assert.match(r4.stderr, /^strata: .*lies about its layers: manifest\.json lists 2 layers, the config 1 diffIDs\n$/);
    assert.deepEqual(await readdir(outDir), []);
  });

  it("a corrupted blob in the source layout fails with one line; an empty destination dir stays empty", async () => {
    const bad = join(work, "bad-layout");
    await skopeo("copy", "--quiet", `oci:${layout}:v1`, `oci:${bad}:v1`);
    const victim = join(bad, "blobs", "sha256", single.blobDigests[1].slice(7));
    const data = await readFile(victim);
    data[100] ^= 0xff;
    await writeFile(victim, data);
    const empty = join(work, "empty-dest");
    await mkdir(empty);
    const r = await runCli(["copy", `oci:${bad}:v1`, `oci:${empty}:t`]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`^strata: oci:.*: blob ${single.blobDigests[1]}: digest mismatch: expected ${single.blobDigests[1]}, got sha256:[0-9a-f]{64}\\n$`));
    assert.deepEqual(await readdir(empty), []);
    const r3 = await runCli(["copy", `oci:${bad}:v1`, `oci-archive:${join(empty, "x.tar")}:t`]);
    assert.equal(r3.code, 1);
    assert.match(r3.stderr, /digest mismatch/);
    assert.deepEqual(await readdir(empty), []);
    const notLayout = join(work, "not-layout");
    await mkdir(notLayout);
    await writeFile(join(notLayout, "keep.txt"), "mine");
    const r2 = await runCli(["copy", `oci:${layout}:v1`, `oci:${notLayout}:t`]);
    assert.equal(r2.code, 1);
    assert.match(r2.stderr, /is not empty and not an OCI image layout\n$/);
    assert.deepEqual(await readdir(notLayout), ["keep.txt"]);
  });

  it("an interrupted copy (SIGTERM) exits 143 and leaves nothing at the destination", async () => {
    // a docker-archive with one big layer: compressing it takes long enough to be interrupted
    const layerTar = await bigLayer("big", 48 << 20);
    const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [sha(layerTar)] } }));
    const file = join(work, "big.docker.tar");
    const pack = tar.pack();
    const writing = pipeline(pack, createWriteStream(file));
    pack.entry({ name: "config.json" }, config);
    pack.entry({ name: "layer.tar" }, layerTar);
    pack.entry({ name: "manifest.json" }, JSON.stringify([{ Config: "config.json", RepoTags: null, Layers: ["layer.tar"] }]));
    pack.finalize();
    await writing;
    const outDir = join(work, "sig");
    await mkdir(outDir);
    const child = spawn(process.execPath, [CLI, "copy", `docker-archive:${file}`, `oci:${join(outDir, "layout")}:t`], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      // the config is written; the layer is being compressed
      if (/: Preparing\n/.test(out)) child.kill("SIGTERM");
    });
    const code = await new Promise<number | null>((r) => child.on("exit", (c) => r(c)));
    assert.match(out, /: Preparing\n/);
    assert.equal(code, 143);
    assert.deepEqual(await readdir(outDir), []);
  });

  it("usage errors exit 2; a missing source or image exits 1 with one line", async () => {
    const bad = await runCli(["copy", "nope:x", `oci:${join(work, "u")}`]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^strata: invalid image name "nope:x"/);
    const both = await runCli(["copy", "--all", "--platform", "linux/amd64", `oci:${layout}:multi`, `oci:${join(work, "u")}`]);
    assert.equal(both.code, 2);
    const idxToArchive = await runCli(["copy", "--all", `oci:${layout}:multi`, `docker-archive:${join(work, "u.tar")}`]);
    assert.equal(idxToArchive.code, 2);
    assert.match(idxToArchive.stderr, /cannot hold a multi-platform image/);
    const recompress = await runCli(["copy", "--dest-compress", "zstd", `oci:${layout}:v1`, `oci:${join(work, "u")}:z`]);
    assert.equal(recompress.code, 2);
    assert.match(recompress.stderr, /would change the digest/);
    const noTag = await runCli(["copy", `oci:${layout}:missing`, `oci:${join(work, "u")}`]);
    assert.equal(noTag.code, 1);
    assert.match(noTag.stderr, /^strata: oci:.*: no image named "missing" in index\.json\n$/);
    const noFile = await runCli(["copy", `docker-archive:${join(work, "absent.tar")}`, `oci:${join(work, "u")}`]);
    assert.equal(noFile.code, 1);
    assert.match(noFile.stderr, /no such file\n$/);
    await assert.rejects(stat(join(work, "u")));
    await assert.rejects(stat(join(work, "u.tar")));
  });

  it("--no-preserve-digests --dest-compress zstd recompresses; skopeo reads the zstd image", { skip: missing("zstd") }, async () => {
    const dst = join(work, "zstd");
    const r = await runCli(["copy", "--no-preserve-digests", "--dest-compress", "zstd", `oci:${layout}:v1`, `oci:${dst}:z`]);
    assert.equal(r.code, 0, r.stderr);
    const m = JSON.parse(await skopeo("inspect", "--raw", `oci:${dst}:z`));
    assert.deepEqual(
      m.layers.map((l: { mediaType: string }) => l.mediaType),
      ["application/vnd.oci.image.layer.v1.tar+zstd", "application/vnd.oci.image.layer.v1.tar+zstd"],
    );
    assert.equal(m.config.digest, single.configDigest);
    // skopeo reads every blob; the zstd CLI decompresses them to the original tars
    await skopeo("copy", "--quiet", `oci:${dst}:z`, `oci:${join(work, "zstd-back")}:p`);
    for (const [i, l] of (m.layers as { digest: string }[]).entries()) {
      const tarBytes = execFileSync("zstd", ["-d", "-c", join(dst, "blobs", "sha256", l.digest.slice(7))], { maxBuffer: 1 << 26 });
      assert.equal(sha(tarBytes), single.diffIds[i]);
    }
  });
});

describe("strata copy store:REF (layers rebuilt from the store)", { skip: missing("docker-registry", "skopeo") }, () => {
  let reg: Distribution;
  let work: string;
  let root: string;
  let img: BuiltImage;
  let ref: string;

  before(async () => {
    reg = await startDistribution();
    work = await mkdtemp(join(tmpdir(), "strata-copy-store-"));
    root = join(work, "root");
    const dir = join(work, "build");
    const b = new OciLayoutBuilder(dir);
    img = await b.image({ layers: [{ tar: await smallLayer("s1") }, { tar: await bigLayer("s2", 150_000) }] });
    await b.finish("v1", [img]);
    ref = `${reg.host}/team/store:v1`;
    await pushOciLayout(dir, "v1", ref);
    const p = await runCli(["pull", "-q", ref, "--root", root]);
    assert.equal(p.code, 0, p.stderr);
  });
  after(async () => {
    await reg?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("store: to oci: gzips the rebuilt layers reproducibly; skopeo reads the same config and layer contents", async () => {
    const a = join(work, "a");
    const r = await runCli(["copy", "--root", root, `store:${ref}`, `oci:${a}:v1`]);
    assert.equal(r.code, 0, r.stderr);
    const m = JSON.parse(await skopeo("inspect", "--raw", `oci:${a}:v1`));
    assert.equal(m.config.digest, img.configDigest);
    for (const [i, l] of (m.layers as { digest: string }[]).entries()) {
      const blob = await readFile(join(a, "blobs", "sha256", l.digest.slice(7)));
      // fixed gzip header: no name flag, mtime 0
      assert.equal(blob[3] & 0x08, 0);
      assert.equal(blob.readUInt32LE(4), 0);
      assert.equal(sha(gunzipSync(blob)), img.diffIds[i]);
    }
    const b = join(work, "b");
    assert.equal((await runCli(["copy", "-q", "--root", root, `store:${img.configDigest.slice(7, 19)}`, `oci:${b}:v1`])).code, 0);
    assert.equal(sha(await skopeo("inspect", "--raw", `oci:${b}:v1`)), sha(await skopeo("inspect", "--raw", `oci:${a}:v1`)));
    const arch = join(work, "store.docker.tar");
    assert.equal((await runCli(["copy", "-q", "--root", root, `store:${ref}`, `docker-archive:${arch}:team/store:v1`])).code, 0);
    assert.equal(sha(await skopeo("inspect", "--config", "--raw", `docker-archive:${arch}`)), img.configDigest);
  });

  it("a missing image or a changed file in the store fails with one line", async () => {
    const r = await runCli(["copy", "--root", root, "store:nothing:here", `oci:${join(work, "n")}`]);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, "strata: store:nothing:here: No such image: nothing:here\n");
    const noStore = await runCli(["copy", "--root", join(work, "absent-root"), `store:${ref}`, `oci:${join(work, "n")}`]);
    assert.equal(noStore.code, 1);
    assert.match(noStore.stderr, /^strata: no image store at /);
    await assert.rejects(stat(join(work, "n")));
    // a file of the layer changed in the diff dir: the rebuilt tar no longer matches
    const overlay = join(root, "overlay2");
    let changed = false;
    for (const d of await readdir(overlay)) {
      const f = join(overlay, d, "diff", "s2.bin");
      const st = await stat(f).catch(() => undefined);
      if (!st) continue;
      const data = await readFile(f);
      data[10] ^= 0xff;
      await writeFile(f, data);
      changed = true;
    }
    assert.ok(changed);
    const bad = await runCli(["copy", "--root", root, `store:${ref}`, `oci:${join(work, "n")}:v1`]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^strata: store:.*: layer sha256:[0-9a-f]{64}: .*s2\.bin: CRC-64 mismatch.*\n$/);
    await assert.rejects(stat(join(work, "n")));
  });
});
