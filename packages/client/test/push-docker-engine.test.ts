/**
 * The CI path end to end: strata pull -> create -> change a file -> commit -> strata push, then
 * Docker Engine (Debian's docker.io, its own fresh data root) pulls the pushed image from the
 * registry (distribution 2.8) and `docker run` sees the change. The image holds a static `cat`
 * built here with gcc (no shell in the image). Skipped when dockerd, root or gcc is missing.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type Distribution, run, startDistribution } from "./helpers/distribution.js";
import { DOCKERD, type Dockerd, startDockerd } from "./helpers/dockerd.js";
import { type PushedImage, pushImage } from "./helpers/images.js";
import { makeTar } from "./helpers/oci-build.js";
import { runCli } from "./helpers/run-cli.js";
import { missing } from "./helpers/tools.js";

const CAT_C = `#include <fcntl.h>
#include <unistd.h>
int main(int argc, char **argv) {
  char b[4096];
  int n, f = open(argv[1], O_RDONLY);
  if (f < 0) return 3;
  while ((n = read(f, b, sizeof b)) > 0) write(1, b, n);
  return 0;
}
`;

function staticCat(dir: string): string | undefined {
  try {
    execFileSync("gcc", ["-static", "-Os", "-o", join(dir, "cat"), "-x", "c", "-"], { input: CAT_C, stdio: ["pipe", "ignore", "ignore"] });
    return join(dir, "cat");
  } catch {
    return undefined;
  }
}

const root = process.getuid?.() === 0;
const skip = missing("dockerd", "docker", "docker-registry", "skopeo", "jq") || (root && existsSync(DOCKERD) ? false : "dockerd needs root");

describe("strata push of a committed container; Docker Engine pulls and runs it", { skip }, () => {
  let reg: Distribution;
  let work: string;
  let store: string;
  let dockerd: Dockerd | undefined;
  let base: PushedImage;
  let dockerOk = false;
  const docker = (...args: string[]) => dockerd!.docker(...args);

  before(async () => {
    work = await mkdtemp(join(tmpdir(), "strata-pushd-"));
    store = join(work, "store");
    const cat = staticCat(work);
    if (!cat) return;
    reg = await startDistribution();
    const layer = await makeTar([
      { name: "bin/", type: "directory" },
      { name: "bin/cat", content: await readFile(cat), mode: 0o755 },
      { name: "etc/", type: "directory" },
      { name: "etc/motd", content: "as built\n" },
    ]);
    base = await pushImage(reg.host, "ci/base", "v1", [{ tar: layer }]);
    dockerd = await startDockerd(join(work, "docker-root"), work);
    dockerOk = dockerd.started;
  });
  after(async () => {
    await dockerd?.stop();
    await reg?.stop();
    if (store) await runCli(["umount", "c1", "--root", store]).catch(() => {});
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("pull -> create -> change a file -> commit -> push; docker pull + run sees the change", async (t) => {
    if (!base) return t.skip("gcc -static cannot build the test's cat");
    if (!dockerOk) return t.skip("dockerd did not start");
    const cli = async (...args: string[]) => {
      const r = await runCli([...args, "--root", store]);
      assert.equal(r.code, 0, `strata ${args.join(" ")}: ${r.stderr}`);
      return r.stdout;
    };
    await cli("pull", base.ref);
    await cli("create", "--name", "c1", base.ref);
    const mnt = (await cli("mount", "c1")).trim();
    await writeFile(join(mnt, "etc", "motd"), "changed by strata\n");
    await cli("umount", "c1");
    const target = `${reg.host}/ci/app:v2`;
    const id = (await cli("commit", "c1", target)).trim();
    const out = await cli("push", "--format", "json", target);
    const done = out
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l) as { event: string; digest?: string; status?: string; role?: string })
      .filter((e) => e.event === "done" || e.event === "blob");
    const pushed = done.at(-1)!;
    assert.equal(pushed.event, "done");
    // the base layer was mounted from the repository it was pulled from; the new layer and the config were uploaded
    assert.deepEqual(done.filter((e) => e.event === "blob").map((e) => `${e.role}:${e.status}`).sort(), ["config:copied", "layer:copied", "layer:mounted"]);
    // the manifest is Docker schema2, as docker push writes it
    const raw = await run("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${target}`]);
    assert.equal(JSON.parse(raw.stdout).mediaType, "application/vnd.docker.distribution.manifest.v2+json");
    const p = await docker("pull", target);
    assert.equal(p.code, 0, p.stderr);
    const insp = JSON.parse((await docker("image", "inspect", target)).stdout) as { Id: string; RepoDigests: string[] }[];
    assert.equal(insp[0].Id, id.startsWith("sha256:") ? id : `sha256:${id}`);
    assert.deepEqual(insp[0].RepoDigests, [`${reg.host}/ci/app@${pushed.digest}`]);
    const r = await docker("run", "--rm", "--network", "none", "--runtime", "runc-norlimit", target, "/bin/cat", "/etc/motd");
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "changed by strata\n");
  });

  it("a second push of the same image (another tag) rebuilds nothing: every layer is found from the store's record of the first push", async (t) => {
    if (!base) return t.skip("gcc -static cannot build the test's cat");
    const first = await run("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${reg.host}/ci/app:v2`]);
    if (first.code !== 0) return t.skip("the first push did not happen");
    const r = await runCli(["push", "--root", store, "--format", "json", `${reg.host}/ci/app:v2`, `${reg.host}/ci/app:v3`]);
    assert.equal(r.code, 0, r.stderr);
    const ev = r.stdout
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l) as { event: string; status?: string; role?: string; digest?: string });
    assert.deepEqual(ev.filter((e) => e.event === "blob").map((e) => `${e.role}:${e.status}`).sort(), ["config:exists", "layer:exists", "layer:exists"]);
    // the same manifest, byte for byte
    assert.equal(ev.at(-1)?.digest, `sha256:${createHash("sha256").update(first.stdout).digest("hex")}`);
  });

  it("push --format oci to another repository: both layers mounted (no upload), the same blobs as the schema2 push", async (t) => {
    if (!base) return t.skip("gcc -static cannot build the test's cat");
    const first = await run("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${reg.host}/ci/app:v2`]);
    if (first.code !== 0) return t.skip("the first push did not happen");
    const r = await runCli(["push", "--root", store, "--format", "oci", "--format", "json", `${reg.host}/ci/app:v2`, `${reg.host}/other/app:oci`]);
    assert.equal(r.code, 0, r.stderr);
    const blobs = r.stdout
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l) as { event: string; status?: string; role?: string })
      .filter((e) => e.event === "blob");
    assert.deepEqual(blobs.map((e) => `${e.role}:${e.status}`).sort(), ["config:copied", "layer:mounted", "layer:mounted"]);
    const oci = JSON.parse((await run("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${reg.host}/other/app:oci`])).stdout) as { mediaType: string; layers: { digest: string; mediaType: string }[] };
    const docker2 = JSON.parse(first.stdout) as { layers: { digest: string }[] };
    assert.equal(oci.mediaType, "application/vnd.oci.image.manifest.v1+json");
    assert.deepEqual(
      oci.layers.map((l) => l.mediaType),
      ["application/vnd.oci.image.layer.v1.tar+gzip", "application/vnd.oci.image.layer.v1.tar+gzip"],
    );
    // mounted from ci/app: the same blobs as the schema2 push
    assert.deepEqual(
      oci.layers.map((l) => l.digest),
      docker2.layers.map((l) => l.digest),
    );
    // skopeo pulls (and verifies) it
    const back = await run("skopeo", ["copy", "--quiet", "--src-tls-verify=false", `docker://${reg.host}/other/app:oci`, `oci:${join(work, "back")}:x`]);
    assert.equal(back.code, 0, back.stderr);
  });
});
