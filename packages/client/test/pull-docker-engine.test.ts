/**
 * The goal of the store format: a root written by `strata pull` handed to Docker Engine
 * (Debian's docker.io, overlay2) as its data root. dockerd must list the images with the same
 * IDs and digests, save them (rebuilding layers from our tar-split) and run a container.
 * Skipped when dockerd is not installed or not running as root.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { imageRows } from "../src/commands/images.js";
import { verifyStore } from "../src/commands/verify.js";
import { pull } from "../src/pull.js";
import { Store } from "../src/store/store.js";
import { type Distribution, GOLDEN_DIR, pushOciLayout, run, startDistribution } from "./helpers/distribution.js";
import { DOCKER, DOCKERD, type Dockerd, startDockerd, TINI } from "./helpers/dockerd.js";
import { type PushedImage, pushImage, smallLayer } from "./helpers/images.js";
import { makeTar } from "./helpers/oci-build.js";
import { checkStore } from "./helpers/store-check.js";
import { missing } from "./helpers/tools.js";

const available = existsSync(DOCKERD) && existsSync(DOCKER) && existsSync(TINI) && process.getuid?.() === 0;

describe("Docker Engine uses a store written by strata pull", { skip: missing("dockerd", "docker", "docker-registry", "skopeo") || (available ? false : "dockerd needs root and docker-init") }, () => {
  let reg: Distribution;
  let root: string;
  let work: string;
  let dockerd: Dockerd | undefined;
  let tini: PushedImage;
  let expected: { image_id: string; manifest_digest: string; layers: { diff_id: string }[] };
  const docker = (...args: string[]) => dockerd!.docker(...args);

  before(async () => {
    expected = JSON.parse(await readFile(join(GOLDEN_DIR, "expected.json"), "utf8"));
    reg = await startDistribution();
    await pushOciLayout(join(GOLDEN_DIR, "oci"), "v1", `${reg.host}/golden/edge:v1`);
    const tiniLayer = await makeTar([
      { name: "bin/", type: "directory" },
      { name: "bin/tini", content: await readFile(TINI), mode: 0o755 },
      { name: "etc/", type: "directory" },
      { name: "etc/motd", content: "from a strata layer\n" },
    ]);
    tini = await pushImage(reg.host, "test/tini", "v1", [{ tar: tiniLayer }]);
    root = await mkdtemp(join(tmpdir(), "strata-docker-root-"));
    work = await mkdtemp(join(tmpdir(), "strata-dockerd-"));
    await pull(`${reg.host}/golden/edge:v1`, { root });
    await pull(tini.ref, { root });
    dockerd = await startDockerd(root, work);
  });
  after(async () => {
    await dockerd?.stop();
    await reg?.stop();
    if (root) await rm(root, { recursive: true, force: true });
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("lists the pulled images with their IDs and repo digests", async () => {
    const r = await docker("image", "inspect", `${reg.host}/golden/edge:v1`, tini.ref);
    assert.equal(r.code, 0, r.stderr);
    const [golden, t] = JSON.parse(r.stdout);
    assert.equal(golden.Id, expected.image_id);
    assert.deepEqual(golden.RepoDigests, [`${reg.host}/golden/edge@${expected.manifest_digest}`]);
    assert.deepEqual(
      golden.RootFS.Layers,
      expected.layers.map((l) => l.diff_id),
    );
    assert.equal(golden.Size, 205908);
    assert.equal(t.Id, tini.configDigest);
  });

  it("saves an image (layers rebuilt from our tar-split) with the right diffIDs", async () => {
    const out = join(work, "save.tar");
    const s = await docker("save", "-o", out, `${reg.host}/golden/edge:v1`);
    assert.equal(s.code, 0, s.stderr);
    const insp = await run("skopeo", ["inspect", `docker-archive:${out}`]);
    assert.equal(insp.code, 0, insp.stderr);
    assert.deepEqual(
      JSON.parse(insp.stdout).Layers,
      expected.layers.map((l) => l.diff_id),
    );
  });

  it("runs a container from a pulled image", async () => {
    const r = await docker("run", "--rm", "--network", "none", "--runtime", "runc-norlimit", tini.ref, "/bin/tini", "--version");
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^tini version \d+\.\d+\.\d+/);
  });

  it("dockerd pulls into the same root; strata then lists and verifies Docker's own layers", async () => {
    const other = await pushImage(reg.host, "test/by-docker", "v1", [{ tar: await smallLayer("docker-1") }, { tar: await smallLayer("docker-2") }]);
    const p = await docker("pull", other.ref);
    assert.equal(p.code, 0, p.stderr);
    await dockerd!.stop();
    const store = await Store.open(root);
    const checks = await verifyStore(store, other.ref);
    assert.equal(checks[0].id, other.configDigest);
    assert.equal(checks[0].layers.length, 2);
    assert.ok(checks[0].ok, JSON.stringify(checks));
    const rows = await imageRows(store);
    assert.ok(rows.some((r) => r.repository === `${reg.host}/test/by-docker` && r.tag === "v1" && r.id === other.configDigest));
    // strata re-pulling Docker's image finds every layer already there
    const again = await pull(other.ref, { root });
    assert.deepEqual(
      again.layers.map((l) => l.status),
      ["exists", "exists"],
    );
    assert.ok(again.upToDate);
  });

  it("after dockerd used it, the store is still consistent for strata", async () => {
    assert.deepEqual(await checkStore(root), []);
    assert.ok((await verifyStore(await Store.open(root))).every((c) => c.ok));
  });
});
