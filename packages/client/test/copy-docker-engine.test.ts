/**
 * strata copy, tag and Docker Engine (Debian's docker.io) on the same files: dockerd, given a
 * store where `strata tag` added names, lists them; `docker load` reads a docker-archive strata
 * wrote; a `docker save` archive copied by strata to an OCI layout reads back identical in skopeo.
 * Skipped when dockerd is not installed or not running as root.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { gunzipSync } from "node:zlib";
import { type Distribution, run, startDistribution } from "./helpers/distribution.js";
import { DOCKER, DOCKERD, type Dockerd, startDockerd } from "./helpers/dockerd.js";
import { bigLayer, type PushedImage, pushImage, smallLayer } from "./helpers/images.js";
import { type BuiltImage, OciLayoutBuilder } from "./helpers/oci-build.js";
import { runCli } from "./helpers/run-cli.js";
import { missing } from "./helpers/tools.js";

const available = existsSync(DOCKERD) && existsSync(DOCKER) && process.getuid?.() === 0;
const sha = (b: Buffer | string) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

describe("strata copy and tag with Docker Engine", { skip: missing("dockerd", "docker", "docker-registry", "skopeo") || (available ? false : "dockerd needs root") }, () => {
  let reg: Distribution;
  let root: string;
  let work: string;
  let dockerd: Dockerd | undefined;
  let pulled: PushedImage;
  let layout: string;
  let built: BuiltImage;
  const docker = (...args: string[]) => dockerd!.docker(...args);
  const skopeo = async (...args: string[]) => {
    const r = await run("skopeo", args);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout;
  };

  before(async () => {
    reg = await startDistribution();
    work = await mkdtemp(join(tmpdir(), "strata-copy-dockerd-"));
    root = join(work, "root");
    pulled = await pushImage(reg.host, "team/pulled", "v1", [{ tar: await smallLayer("eng-1") }, { tar: await bigLayer("eng-2", 300_000) }]);
    const p = await runCli(["pull", "-q", pulled.ref, "--root", root]);
    assert.equal(p.code, 0, p.stderr);
    for (const name of ["team/tagged:ci", "short", "localhost:5000/x/y:z"]) {
      const t = await runCli(["tag", pulled.ref, name, "--root", root]);
      assert.equal(t.code, 0, t.stderr);
    }
    layout = join(work, "layout");
    const b = new OciLayoutBuilder(layout);
    built = await b.image({ layers: [{ tar: await smallLayer("load-1") }, { tar: await smallLayer("load-2"), compression: "zstd" }] });
    await b.finish("v1", [built]);
    dockerd = await startDockerd(root, work);
  });
  after(async () => {
    await dockerd?.stop();
    await reg?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("dockerd lists the names strata tag added", async () => {
    const r = await docker("image", "inspect", "team/tagged:ci", "short", "localhost:5000/x/y:z");
    assert.equal(r.code, 0, r.stderr);
    const imgs = JSON.parse(r.stdout) as { Id: string; RepoTags: string[] }[];
    for (const i of imgs) assert.equal(i.Id, pulled.configDigest);
    assert.deepEqual(imgs[0].RepoTags.sort(), [pulled.ref, "localhost:5000/x/y:z", "short:latest", "team/tagged:ci"].sort());
  });

  it("docker load reads the docker-archive strata copy wrote (gzip and zstd layers decompressed)", async () => {
    const file = join(work, "for-load.tar");
    const c = await runCli(["copy", "-q", `oci:${layout}:v1`, `docker-archive:${file}:example.com/ci/loaded:1`]);
    assert.equal(c.code, 0, c.stderr);
    const l = await docker("load", "-i", file);
    assert.equal(l.code, 0, l.stderr);
    assert.match(l.stdout, /Loaded image: example\.com\/ci\/loaded:1/);
    const insp = JSON.parse((await docker("image", "inspect", "example.com/ci/loaded:1")).stdout)[0];
    assert.equal(insp.Id, built.configDigest);
    assert.deepEqual(insp.RootFS.Layers, built.diffIds);
  });

  it("a docker save archive copied to oci: by strata reads back identical in skopeo", async () => {
    const saved = join(work, "saved.tar");
    const s = await docker("save", "-o", saved, "team/tagged:ci");
    assert.equal(s.code, 0, s.stderr);
    const out = join(work, "from-save");
    const c = await runCli(["copy", `docker-archive:${saved}:team/tagged:ci`, `oci:${out}:ci`]);
    assert.equal(c.code, 0, c.stderr);
    const m = JSON.parse(await skopeo("inspect", "--raw", `oci:${out}:ci`));
    assert.equal(m.config.digest, pulled.configDigest);
    for (const [i, layer] of (m.layers as { digest: string }[]).entries()) {
      assert.equal(sha(gunzipSync(await readFile(join(out, "blobs", "sha256", layer.digest.slice(7))))), pulled.diffIds[i]);
    }
    const back = join(work, "back.tar");
    await skopeo("copy", "--quiet", `oci:${out}:ci`, `docker-archive:${back}:team/tagged:ci`);
    assert.deepEqual(JSON.parse(await skopeo("inspect", `docker-archive:${back}`)).Layers, pulled.diffIds);
    assert.equal(sha(await skopeo("inspect", "--config", "--raw", `docker-archive:${back}`)), pulled.configDigest);
  });
});
