/**
 * What `strata copy` and `strata push` print when stdout is not a terminal (CI logs): a line per
 * layer status change naming the layer by its 12-hex short id, as docker push prints them
 * (Preparing, Pushing, then Pushed / Layer already exists / Mounted from REPO), one JSON object per
 * blob with --format json, nothing with --quiet; and the pushed digest recorded in the image's
 * RepoDigests, as docker push records it. Against Debian's docker-registry (distribution 2.8).
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type Distribution, startDistribution } from "./helpers/distribution.js";
import { bigLayer, smallLayer } from "./helpers/images.js";
import { type BuiltImage, OciLayoutBuilder } from "./helpers/oci-build.js";
import { runCli } from "./helpers/run-cli.js";
import { missing } from "./helpers/tools.js";

const short = (d: string) => d.slice("sha256:".length, "sha256:".length + 12);

/** The lines of `stdout` about layer `id`, without the id. */
function statuses(stdout: string, id: string): string[] {
  return stdout
    .split("\n")
    .filter((l) => l.startsWith(`${id}: `))
    .map((l) => l.slice(id.length + 2));
}

describe("copy and push output for CI logs (not a terminal)", { skip: missing("docker-registry") }, () => {
  let work: string;
  let layout: string;
  let reg: Distribution;
  let other: Distribution;
  let img: BuiltImage;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), "strata-push-progress-"));
    layout = join(work, "src");
    const b = new OciLayoutBuilder(layout);
    // one layer above the size sent in a single request, one below
    img = await b.image({ layers: [{ tar: await smallLayer("small") }, { tar: await bigLayer("big", 6 << 20) }] });
    await b.finish("v1", [img], false);
    reg = await startDistribution();
    other = await startDistribution();
  });
  after(async () => {
    await reg?.stop();
    await other?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("copy: each layer is copied, then already there, then mounted from the repository it came from", async () => {
    const first = await runCli(["copy", `oci:${layout}:v1`, `docker://${reg.host}/team/one:v1`]);
    assert.equal(first.code, 0, first.stderr);
    for (const d of img.blobDigests) {
      const s = statuses(first.stdout, short(d));
      assert.equal(s[0], "Preparing", first.stdout);
      assert.equal(s.at(-1), "Copied", first.stdout);
    }
    // the big layer went out in more than one progress step: a "Copying" line between
    assert.ok(statuses(first.stdout, short(img.blobDigests[1])).includes("Copying"), first.stdout);
    assert.match(first.stdout.trimEnd().split("\n").at(-1)!, new RegExp(`^Copied oci:.* to docker://.*: ${img.manifestDigest}$`));

    const again = await runCli(["copy", `oci:${layout}:v1`, `docker://${reg.host}/team/one:v2`]);
    assert.equal(again.code, 0, again.stderr);
    for (const d of img.blobDigests) assert.equal(statuses(again.stdout, short(d)).at(-1), "Already exists", again.stdout);

    const mounted = await runCli(["copy", `docker://${reg.host}/team/one:v1`, `docker://${reg.host}/else/two:v1`]);
    assert.equal(mounted.code, 0, mounted.stderr);
    for (const d of img.blobDigests) assert.equal(statuses(mounted.stdout, short(d)).at(-1), "Mounted from team/one", mounted.stdout);
  });

  it("--format json: one object per blob (config included) with its status; --quiet: nothing", async () => {
    const r = await runCli(["copy", "--format", "json", `docker://${reg.host}/team/one:v1`, `docker://${reg.host}/else/three:v1`]);
    assert.equal(r.code, 0, r.stderr);
    const ev = r.stdout
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l) as { event: string; status?: string; from?: string; digest?: string; role?: string });
    const blobs = ev.filter((e) => e.event === "blob");
    assert.deepEqual(blobs.map((b) => `${b.role}:${b.status}:${b.from}`).sort(), ["config:mounted:team/one", "layer:mounted:team/one", "layer:mounted:team/one"]);
    assert.equal(ev.at(-1)?.event, "done");
    assert.equal(ev.at(-1)?.digest, img.manifestDigest);
    const q = await runCli(["copy", "--quiet", `oci:${layout}:v1`, `docker://${other.host}/q/q:v1`]);
    assert.equal(q.code, 0, q.stderr);
    assert.equal(q.stdout, "");
  });

  it("push from the store: docker push's lines (Pushed, Layer already exists, Mounted from), its last line, and the digest in RepoDigests", async () => {
    const root = join(work, "store");
    const ref = `${reg.host}/team/one:v1`;
    const pulled = await runCli(["pull", "-q", ref, "--root", root]);
    assert.equal(pulled.code, 0, pulled.stderr);
    // the store keeps uncompressed layers: the lines name them by diffID, as docker push does
    const ids = img.diffIds.map(short);

    // a registry that has nothing: every layer is rebuilt and pushed
    const fresh = await runCli(["push", "--root", root, ref, `${other.host}/ci/app:v1`]);
    assert.equal(fresh.code, 0, fresh.stderr);
    const lines = fresh.stdout.trimEnd().split("\n");
    assert.equal(lines[0], `The push refers to repository [${other.host}/ci/app]`);
    for (const id of ids) {
      assert.equal(statuses(fresh.stdout, id)[0], "Preparing", fresh.stdout);
      assert.equal(statuses(fresh.stdout, id).at(-1), "Pushed", fresh.stdout);
    }
    const last = /^v1: digest: (sha256:[0-9a-f]{64}) size: (\d+)$/.exec(lines.at(-1)!);
    assert.ok(last, fresh.stdout);
    const pushedDigest = last[1];

    // the same repository again: HEAD finds every layer
    const again = await runCli(["push", "--root", root, ref, `${other.host}/ci/app:v2`]);
    assert.equal(again.code, 0, again.stderr);
    for (const id of ids) assert.equal(statuses(again.stdout, id).at(-1), "Layer already exists", again.stdout);

    // another repository of the registry the image was pulled from: mounted from where it came
    const mounted = await runCli(["push", "--root", root, ref, `${reg.host}/else/pushed:v1`]);
    assert.equal(mounted.code, 0, mounted.stderr);
    for (const id of ids) assert.equal(statuses(mounted.stdout, id).at(-1), "Mounted from team/one", mounted.stdout);

    // RepoDigests: the pull's digest and the push's, as "<repo>@<digest>"; repositories.json maps
    // each to the image ID, as Docker writes it
    const insp = JSON.parse((await runCli(["inspect", "--root", root, ref])).stdout) as { Id: string; RepoDigests: string[] };
    assert.ok(insp.RepoDigests.includes(`${other.host}/ci/app@${pushedDigest}`), JSON.stringify(insp.RepoDigests));
    assert.ok(insp.RepoDigests.includes(`${reg.host}/team/one@${img.manifestDigest}`), JSON.stringify(insp.RepoDigests));
    const repos = JSON.parse(await readFile(join(root, "image", "overlay2", "repositories.json"), "utf8")) as { Repositories: Record<string, Record<string, string>> };
    assert.equal(repos.Repositories[`${other.host}/ci/app`][`${other.host}/ci/app@${pushedDigest}`], insp.Id);
  });
});
