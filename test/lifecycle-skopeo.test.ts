/**
 * Storage lifecycle with real clients and the real CLI: skopeo (and docker, through a private
 * dockerd, when installed) push into a `strata serve`
 * process configured with immutable tags, a quota and a retention rule; `strata gc` refuses to
 * collect a data directory a live registry serves, then (registry stopped) shows and applies
 * retention and frees the bytes; `strata usage` reports; the registry, restarted, serves what
 * is left byte for byte.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type BuiltImage, buildOciLayout } from "./helpers/oci-layout.js";
import { mustRun, run, type StrataServer, startStrata, strata } from "./helpers/strata.js";
import { DOCKER, DOCKERD, startDockerd } from "@strata/client/test-helpers/dockerd.js";
import { missing } from "@strata/client/test-helpers/tools.js";

const dockerSkip = existsSync(DOCKERD) && existsSync(DOCKER) && process.getuid?.() === 0 ? false : "needs dockerd and docker (docker.io) and root";

describe("lifecycle policies through skopeo and strata gc/usage [filesystem]", { skip: missing("skopeo") }, () => {
  let root: string;
  let work: string;
  let srv: StrataServer | undefined;
  let small: BuiltImage;
  let other: BuiltImage;
  let big: BuiltImage;
  const config = () => ({
    storage: { driver: "filesystem", filesystem: { root } },
    immutable: [{ repositories: ["release/**"], tags: "^v[0-9]" }],
    quotas: [{ repositories: ["team/**"], maxBytes: 40_000 }],
    retention: [{ repositories: ["ci/**"], keepLast: 1, tags: "^pr-" }],
  });
  const skopeo = (...args: string[]) => run("skopeo", args, { timeoutMs: 120_000 });
  const push = (img: BuiltImage, ref: string) => skopeo("copy", "--dest-tls-verify=false", "--preserve-digests", `oci:${img.dir}:${img.tag}`, `docker://${srv!.host}/${ref}`);

  before(async () => {
    root = await mkdtemp(join(tmpdir(), "strata-lifecycle-"));
    work = await mkdtemp(join(tmpdir(), "strata-lifecycle-work-"));
    small = await buildOciLayout(join(work, "small"), "v1", [[{ type: "file", path: "hello.txt", content: "hello\n" }]]);
    other = await buildOciLayout(join(work, "other"), "v1", [[{ type: "file", path: "other.txt", content: "other\n" }]]);
    // incompressible: the gzip layer stays larger than the quota
    big = await buildOciLayout(join(work, "big"), "v1", [[{ type: "file", path: "noise.bin", content: randomBytes(60_000) }]]);
    srv = await startStrata(config());
  });
  after(async () => {
    await srv?.stop();
    await rm(root, { recursive: true, force: true });
    await rm(work, { recursive: true, force: true });
  });

  it("an immutable tag is created once; skopeo cannot move or delete it", async () => {
    const ok = await push(small, "release/app:v1");
    assert.equal(ok.code, 0, ok.stderr);
    const move = await push(other, "release/app:v1");
    assert.notEqual(move.code, 0, "moving an immutable tag fails");
    assert.match(move.stderr, /denied/i);
    const del = await skopeo("delete", "--tls-verify=false", `docker://${srv!.host}/release/app:v1`);
    assert.notEqual(del.code, 0, "deleting an immutable tag fails");
    const inspect = JSON.parse(await mustRun("skopeo", ["inspect", "--tls-verify=false", "--raw", `docker://${srv!.host}/release/app:v1`]));
    assert.equal(inspect.config.digest, JSON.parse(small.manifest.toString()).config.digest, "the tag still names the first image");
  });

  it("a push over a quota is refused with a message naming the quota; one within it succeeds", async () => {
    const denied = await push(big, "team/app:big");
    assert.notEqual(denied.code, 0);
    assert.match(denied.stderr, /quota team\/\*\*/);
    const ok = await push(small, "team/app:small");
    assert.equal(ok.code, 0, ok.stderr);
  });

  it("docker push: an immutable tag cannot be moved, a quota names itself", { skip: dockerSkip }, async () => {
    const d = join(work, "docker");
    const dockerd = await startDockerd(join(d, "root"), d);
    const docker = dockerd.docker;
    try {
      assert.ok(dockerd.started, dockerd.failure);
      const load = async (img: BuiltImage, name: string) => {
        const tar = join(d, `${name}.tar`);
        await mustRun("skopeo", ["copy", `oci:${img.dir}:${img.tag}`, `docker-archive:${tar}:strata-test/${name}:v1`]);
        const r = await docker("load", "-i", tar);
        assert.equal(r.code, 0, r.stderr);
        return `strata-test/${name}:v1`;
      };
      const [localSmall, localOther, localBig] = [await load(small, "small"), await load(other, "other"), await load(big, "big")];
      const pushAs = async (local: string, ref: string) => {
        assert.equal((await docker("tag", local, `${srv!.host}/${ref}`)).code, 0);
        return docker("push", `${srv!.host}/${ref}`);
      };
      let r = await pushAs(localSmall, "release/dk:v2");
      assert.equal(r.code, 0, r.stderr + r.stdout);
      r = await pushAs(localOther, "release/dk:v2");
      assert.notEqual(r.code, 0, "docker cannot move an immutable tag");
      assert.match(r.stderr + r.stdout, /denied.*immutable/i);
      r = await pushAs(localBig, "team/dk:big");
      assert.notEqual(r.code, 0, "docker push over the quota fails");
      assert.match(r.stderr + r.stdout, /quota team\/\*\*/);
    } finally {
      await dockerd.stop();
    }
  });

  it("strata gc refuses a data directory a live registry serves", async () => {
    const r = await strata(["gc", "--data", root, "--delay", "0"]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /serves/);
    assert.equal(r.stderr.trim().split("\n").length, 1, `one line: ${r.stderr}`);
    const bad = await strata(["gc", "--data", root, "--untagged", "sometimes"]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /--untagged must be delete or keep/);
  });

  it("retention through strata gc: the dry run shows, the run deletes and frees; usage reports; the registry serves the rest", async () => {
    const pause = () => new Promise((r) => setTimeout(r, 50)); // distinct push times
    assert.equal((await push(other, "ci/app:pr-0")).code, 0);
    await pause();
    assert.equal((await push(small, "ci/app:pr-1")).code, 0);
    await pause();
    assert.equal((await push(big, "ci/app:pr-2")).code, 0);
    await srv!.stop();
    srv = undefined;
    const file = join(work, "config.yml");
    await writeFile(file, JSON.stringify(config())); // YAML is a superset of JSON

    const dry = await strata(["gc", "--config", file, "--delay", "0", "--dry-run"]);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /^would delete tag ci\/app:pr-0 \(retention rule 1/m);
    assert.match(dry.stdout, /^would delete tag ci\/app:pr-1 \(retention rule 1/m);
    assert.match(dry.stdout, new RegExp(`^would delete blob ${other.layers[0].digest} \\(${other.layers[0].size} bytes\\)$`, "m"));
    assert.match(dry.stdout, /\(dry run\)/);

    const r = await strata(["gc", "--config", file, "--delay", "0"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^deleted tag ci\/app:pr-0/m);
    assert.match(r.stdout, /^deleted tag ci\/app:pr-1/m);
    assert.doesNotMatch(r.stdout, /pr-2/);
    // the image only pr-0 held goes; the small image's stay (release/app and team/app tag it)
    assert.match(r.stdout, new RegExp(`^deleted blob ${other.layers[0].digest} `, "m"));
    assert.match(r.stdout, new RegExp(`^deleted blob ${other.manifestDigest} `, "m"));
    for (const d of [small.manifestDigest, ...small.layers.map((l) => l.digest), ...big.layers.map((l) => l.digest)]) assert.doesNotMatch(r.stdout, new RegExp(`blob ${d}`));
    const freed = Number(/freed (\d+) bytes/.exec(r.stdout)?.[1]);
    assert.ok(freed >= other.layers[0].size + other.manifest.length, r.stdout);

    const usage = JSON.parse((await strata(["usage", "--config", file, "--json"])).stdout) as { repositories: { name: string; bytes: number }[]; quotas: { usedBytes: number }[] };
    const names = usage.repositories.map((x) => x.name);
    assert.deepEqual(
      names.filter((n) => !n.endsWith("/dk")),
      ["ci/app", "release/app", "team/app"],
    );
    assert.ok(usage.repositories.find((x) => x.name === "ci/app")!.bytes > 60_000);
    assert.ok(usage.quotas[0].usedBytes < 40_000);
    const table = await strata(["usage", "--data", root]);
    assert.match(table.stdout, /^REPOSITORY\s+BYTES\s+BLOBS$/m);

    srv = await startStrata(config());
    const gone = await skopeo("inspect", "--tls-verify=false", `docker://${srv.host}/ci/app:pr-1`);
    assert.notEqual(gone.code, 0);
    const back = join(work, "back");
    await mustRun("skopeo", ["copy", "--src-tls-verify=false", "--preserve-digests", `docker://${srv.host}/ci/app:pr-2`, `oci:${back}:v1`]);
    for (const l of big.layers) {
      const hex = l.digest.slice("sha256:".length);
      assert.ok((await readFile(join(back, "blobs", "sha256", hex))).equals(await readFile(join(big.dir, "blobs", "sha256", hex))), "layer byte-identical");
    }
  });
});
