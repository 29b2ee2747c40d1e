/**
 * `strata tag` in a store a pull wrote: repositories.json gains the names Docker would write
 * (familiar repository keys, `:latest` by default), by reference or by (short) image ID; a
 * missing image, a digest or an invalid target fails with one line and changes nothing.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type Distribution, startDistribution } from "./helpers/distribution.js";
import { type PushedImage, pushImage, smallLayer } from "./helpers/images.js";
import { runCli } from "./helpers/run-cli.js";
import { missing } from "./helpers/tools.js";

describe("strata tag", { skip: missing("docker-registry", "skopeo") }, () => {
  let reg: Distribution;
  let root: string;
  let a: PushedImage;
  let b: PushedImage;
  let idA: string;
  let idB: string;
  const repos = async () => JSON.parse(await readFile(join(root, "image", "overlay2", "repositories.json"), "utf8")).Repositories as Record<string, Record<string, string>>;

  before(async () => {
    reg = await startDistribution();
    root = await mkdtemp(join(tmpdir(), "strata-tag-"));
    a = await pushImage(reg.host, "team/a", "v1", [{ tar: await smallLayer("tag-a") }]);
    b = await pushImage(reg.host, "team/b", "v1", [{ tar: await smallLayer("tag-b") }]);
    for (const img of [a, b]) {
      const r = await runCli(["pull", "-q", img.ref, "--root", root]);
      assert.equal(r.code, 0, r.stderr);
    }
    idA = a.configDigest;
    idB = b.configDigest;
  });
  after(async () => {
    await reg?.stop();
    if (root) await rm(root, { recursive: true, force: true });
  });

  it("adds the names Docker writes, by reference or by short ID", async () => {
    for (const [src, dst] of [
      [a.ref, "myapp"],
      [idA.slice(7, 19), "docker.io/library/base:1.0"],
      [`sha256:${idA.slice(7)}`, "example.com:5000/team/app:2"],
      [a.ref, "localhost/x/y:z"],
    ]) {
      const r = await runCli(["tag", src, dst, "--root", root]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, "");
    }
    const r = await repos();
    assert.equal(r.myapp["myapp:latest"], idA);
    assert.equal(r.base["base:1.0"], idA);
    assert.equal(r["example.com:5000/team/app"]["example.com:5000/team/app:2"], idA);
    assert.equal(r["localhost/x/y"]["localhost/x/y:z"], idA);
    // the pull's own references are still there
    assert.equal(r[`${reg.host}/team/a`][a.ref], idA);
    const images = await runCli(["images", "--format", "{{.Repository}}:{{.Tag}}", "--root", root]);
    assert.ok(images.stdout.split("\n").includes("myapp:latest"), images.stdout);
  });

  it("moves an existing tag to another image; rmi of the new name leaves the image", async () => {
    assert.equal((await runCli(["tag", b.ref, "myapp", "--root", root])).code, 0);
    assert.equal((await repos()).myapp["myapp:latest"], idB);
    const rmi = await runCli(["rmi", "myapp", "--root", root]);
    assert.equal(rmi.code, 0, rmi.stderr);
    assert.equal(rmi.stdout, "Untagged: myapp:latest\n");
    assert.equal((await repos())[`${reg.host}/team/b`][b.ref], idB);
  });

  it("fails with one line and changes nothing for a missing image, a digest or an invalid name", async () => {
    const before = await readFile(join(root, "image", "overlay2", "repositories.json"));
    const cases: [string, string, RegExp][] = [
      ["nothing:here", "x:y", /^strata: No such image: nothing:here\n$/],
      [a.ref, `x@${idA}`, /^strata: refusing to create a tag with a digest reference: x@sha256:[0-9a-f]{64}\n$/],
      [a.ref, "Upper/Case", /^strata: invalid target name "Upper\/Case": invalid reference .*\n$/],
      [a.ref, "x:bad tag", /^strata: invalid target name .*\n$/],
    ];
    for (const [src, dst, re] of cases) {
      const r = await runCli(["tag", src, dst, "--root", root]);
      assert.equal(r.code, 1, `${src} ${dst}`);
      assert.match(r.stderr, re);
    }
    assert.ok((await readFile(join(root, "image", "overlay2", "repositories.json"))).equals(before));
    const usage = await runCli(["tag", a.ref, "--root", root]);
    assert.equal(usage.code, 2);
  });
});
