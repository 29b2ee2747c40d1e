/**
 * Docker Engine on a store after `strata image prune`: dockerd (Debian's docker.io, overlay2)
 * lists exactly the images strata kept, with the sizes `strata system df` reports, and runs a
 * container from an image whose shared base layer survived the prune.
 * Skipped when dockerd is not installed or not running as root.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type Distribution, run, startDistribution } from "./helpers/distribution.js";
import { DOCKER, DOCKERD, startDockerd, TINI } from "./helpers/dockerd.js";
import { type PushedImage, pushImage, smallLayer } from "./helpers/images.js";
import { makeTar } from "./helpers/oci-build.js";
import { dfSize } from "../src/commands/df.js";
import { humanSize } from "../src/progress.js";
import { runCli } from "./helpers/run-cli.js";
import { checkStore } from "./helpers/store-check.js";
import { missing } from "./helpers/tools.js";

const available = existsSync(DOCKERD) && existsSync(DOCKER) && existsSync(TINI) && process.getuid?.() === 0;

/** The lines of a prune report as a set, plus its total line. */
function report(text: string): { items: string[]; total: string } {
  const lines = text.trim().split("\n");
  return { items: lines.filter((l) => /^(untagged|deleted): /.test(l)).sort(), total: lines.at(-1) ?? "" };
}

describe("Docker Engine on a store strata pruned", { skip: missing("dockerd", "docker", "docker-registry", "skopeo", "jq") || (available ? false : "dockerd needs root and docker-init") }, () => {
  let reg: Distribution;
  let root: string;
  let work: string;
  let dockerd: Awaited<ReturnType<typeof startDockerd>> | undefined;
  let base: PushedImage;
  let app: PushedImage;
  let old: PushedImage;

  before(async () => {
    reg = await startDistribution();
    const tiniLayer = await makeTar([
      { name: "bin/", type: "directory" },
      { name: "bin/tini", content: await readFile(TINI), mode: 0o755 },
    ]);
    base = await pushImage(reg.host, "test/base", "v1", [{ tar: tiniLayer }]);
    app = await pushImage(reg.host, "test/app", "v1", [{ tar: tiniLayer }, { tar: await smallLayer("app") }]);
    // test/app:v2 moves: the image pulled first keeps only its digest reference (dangling)
    old = await pushImage(reg.host, "test/app", "v2", [{ tar: tiniLayer }, { tar: await smallLayer("old") }]);
    root = await mkdtemp(join(tmpdir(), "strata-prune-docker-"));
    work = await mkdtemp(join(tmpdir(), "strata-prune-dockerd-"));
    for (const ref of [base.ref, app.ref, old.ref]) assert.equal((await runCli(["pull", "-q", ref, "--root", root])).code, 0);
    await pushImage(reg.host, "test/app", "v2", [{ tar: tiniLayer }, { tar: await smallLayer("new") }]);
    assert.equal((await runCli(["pull", "-q", old.ref, "--root", root])).code, 0);
  });
  after(async () => {
    await dockerd?.stop();
    await reg?.stop();
    if (root) await rm(root, { recursive: true, force: true });
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("strata prunes the dangling image; dockerd lists, sizes and runs what is left", async () => {
    // the peer: dockerd pruning a copy of the same store
    const peer = join(work, "peer-root");
    await run("cp", ["-a", `${root}/.`, peer]);
    const d = await startDockerd(peer, join(work, "peer"));
    let dockerPrune: string;
    try {
      const p = await d.docker("image", "prune", "-f");
      assert.equal(p.code, 0, p.stderr);
      dockerPrune = p.stdout;
    } finally {
      await d.stop();
    }
    const pr = await runCli(["image", "prune", "--root", root]);
    assert.equal(pr.code, 0, pr.stderr);
    assert.ok(pr.stdout.includes(`untagged: ${reg.host}/test/app@${old.manifestDigest}\n`), pr.stdout);
    assert.ok(pr.stdout.includes(`deleted: ${old.configDigest}\n`), pr.stdout);
    assert.deepEqual(report(pr.stdout), report(dockerPrune), `strata:\n${pr.stdout}\ndocker:\n${dockerPrune}`);
    assert.deepEqual(await checkStore(root), []);
    const ours = await runCli(["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}", "--root", root]);
    const df = await runCli(["system", "df", "--format", "{{.Type}} {{.TotalCount}} {{.Active}} {{.Size}} {{.Reclaimable}}", "--root", root]);
    assert.equal(df.code, 0, df.stderr);

    dockerd = await startDockerd(root, join(work, "after"));
    const docker = dockerd.docker;
    const theirs = await docker("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}");
    assert.equal(theirs.code, 0, theirs.stderr);
    assert.deepEqual(theirs.stdout.trim().split("\n").sort(), ours.stdout.trim().split("\n").sort());
    assert.equal(theirs.stdout.trim().split("\n").length, 3);
    const dockerDf = await docker("system", "df", "--format", "{{.Type}} {{.TotalCount}} {{.Active}} {{.Size}} {{.Reclaimable}}");
    assert.equal(dockerDf.code, 0, dockerDf.stderr);
    assert.equal(df.stdout.split("\n")[0], dockerDf.stdout.split("\n")[0], `strata: ${df.stdout}\ndocker: ${dockerDf.stdout}`);
    process.stderr.write(`# system df Images row: strata "${df.stdout.split("\n")[0]}", docker "${dockerDf.stdout.split("\n")[0]}"\n`);
    // per image: the same sizes, shared and unique bytes (the base layer is shared by all three)
    const dockerV = await docker("system", "df", "-v", "--format", "{{json .}}");
    assert.equal(dockerV.code, 0, dockerV.stderr);
    type Row = { Repository: string; Tag: string; Size: string; SharedSize: string; UniqueSize: string; Containers: string };
    const key = (x: Row) => `${x.Repository}:${x.Tag} ${x.Size} ${x.SharedSize} ${x.UniqueSize} ${x.Containers}`;
    const theirRows = (JSON.parse(dockerV.stdout) as { Images: Row[] }).Images.map(key).sort();
    const oursV = await runCli(["system", "df", "-v", "--format", "json", "--root", root]);
    assert.equal(oursV.code, 0, oursV.stderr);
    const ourRows = (JSON.parse(oursV.stdout) as { Images: { Repository: string; Tag: string; Size: number; SharedSize: number; UniqueSize: number; Containers: number }[] }).Images.map((x) =>
      key({ ...x, Size: humanSize(x.Size), SharedSize: dfSize(x.SharedSize), UniqueSize: dfSize(x.UniqueSize), Containers: String(x.Containers) }),
    );
    assert.deepEqual(ourRows.sort(), theirRows, dockerV.stdout);
    process.stderr.write(`# system df -v images: ${theirRows.join("; ")}\n`);
    const r = await docker("run", "--rm", "--network", "none", "--runtime", "runc-norlimit", app.ref, "/bin/tini", "--version");
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^tini version \d+\.\d+\.\d+/);
    const gone = await docker("image", "inspect", old.configDigest);
    assert.notEqual(gone.code, 0);
  });

  it("prune --all removes what dockerd's `image prune -a` removes, and frees the same bytes", async () => {
    await dockerd?.stop();
    const peer = join(work, "peer-all-root");
    await run("cp", ["-a", `${root}/.`, peer]);
    const d = await startDockerd(peer, join(work, "peer-all"));
    let dockerPrune: string;
    try {
      const p = await d.docker("image", "prune", "-a", "-f");
      assert.equal(p.code, 0, p.stderr);
      dockerPrune = p.stdout;
    } finally {
      await d.stop();
    }
    const pr = await runCli(["image", "prune", "--all", "--root", root]);
    assert.equal(pr.code, 0, pr.stderr);
    assert.deepEqual(report(pr.stdout), report(dockerPrune), `strata:\n${pr.stdout}\ndocker:\n${dockerPrune}`);
    assert.deepEqual(await checkStore(root), []);
    process.stderr.write(`# prune --all: ${report(pr.stdout).items.length} lines, ${report(pr.stdout).total} (docker: ${report(dockerPrune).total})\n`);
  });
});
