/**
 * Interop with a real client: Debian's skopeo pushes a multi-layer OCI image with whiteouts
 * to a Strata registry process, in OCI and in Docker v2s2 form, copies it back, and every
 * blob must be byte-identical; `skopeo inspect` and `skopeo delete` work. Runs against the
 * embedded filesystem registry and, when STRATA_TEST_BACKENDS names s3, against S3 + Redis.
 */
import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fleetConfig } from "./helpers/fleet.js";
import { type BuiltImage, buildOciLayout, sha256, whiteoutImageLayers } from "./helpers/oci-layout.js";
import { mustRun, run, type StrataServer, startStrata, uniqueName } from "./helpers/strata.js";
import { missing } from "@strata/client/test-helpers/tools.js";

const modes: { name: string; config: () => Promise<{ config: Record<string, unknown>; cleanup: () => Promise<void> }> }[] = [
  {
    name: "filesystem",
    config: async () => {
      const root = await mkdtemp(join(tmpdir(), "strata-skopeo-"));
      return { config: { storage: { driver: "filesystem", filesystem: { root } } }, cleanup: () => rm(root, { recursive: true, force: true }) };
    },
  },
];
if ((process.env.STRATA_TEST_BACKENDS ?? "").split(",").includes("s3")) modes.push({ name: "s3+redis", config: fleetConfig });

for (const mode of modes) {
  describe(`skopeo interop [${mode.name}]`, { skip: missing("skopeo") }, () => {
    let srv: StrataServer;
    let work: string;
    let image: BuiltImage;
    let cleanup: () => Promise<void>;
    const repo = `interop/${uniqueName("img")}`;

    before(async () => {
      const c = await mode.config();
      cleanup = c.cleanup;
      srv = await startStrata(c.config);
      work = await mkdtemp(join(tmpdir(), "strata-skopeo-work-"));
      image = await buildOciLayout(join(work, "src"), "v1", whiteoutImageLayers());
    });
    after(async () => {
      await srv?.stop();
      await cleanup?.();
      await rm(work, { recursive: true, force: true });
    });

    const skopeo = (...args: string[]) => mustRun("skopeo", args, { timeoutMs: 120_000 });

    it("pushes an OCI image and copies it back byte for byte", async () => {
      await skopeo("copy", "--dest-tls-verify=false", "--preserve-digests", `oci:${image.dir}:v1`, `docker://${srv.host}/${repo}:oci`);
      const back = join(work, "back-oci");
      await skopeo("copy", "--src-tls-verify=false", "--preserve-digests", `docker://${srv.host}/${repo}:oci`, `oci:${back}:v1`);
      const src = (await readdir(join(image.dir, "blobs", "sha256"))).sort();
      const got = (await readdir(join(back, "blobs", "sha256"))).sort();
      assert.deepEqual(got, src, "the same set of blobs comes back");
      for (const b of src) {
        const a = await readFile(join(image.dir, "blobs", "sha256", b));
        const c = await readFile(join(back, "blobs", "sha256", b));
        assert.ok(a.equals(c), `blob ${b} is byte-identical`);
        assert.equal(sha256(c), `sha256:${b}`);
      }
    });

    it("skopeo inspect reports the pushed manifest digest, layers and raw bytes", async () => {
      const info = JSON.parse(await skopeo("inspect", "--tls-verify=false", `docker://${srv.host}/${repo}:oci`));
      assert.equal(info.Digest, image.manifestDigest);
      assert.deepEqual(
        info.Layers,
        image.layers.map((l) => l.digest),
      );
      assert.deepEqual(info.RepoTags, ["oci"]);
      const raw = await skopeo("inspect", "--raw", "--tls-verify=false", `docker://${srv.host}/${repo}:oci`);
      assert.equal(raw, image.manifest.toString());
      const cfg = await skopeo("inspect", "--config", "--raw", "--tls-verify=false", `docker://${srv.host}/${repo}:oci`);
      assert.equal(cfg, image.config.toString());
    });

    it("pushes in Docker v2s2 format and the layer blobs come back unchanged", async () => {
      await skopeo("copy", "--dest-tls-verify=false", "--format", "v2s2", `oci:${image.dir}:v1`, `docker://${srv.host}/${repo}:v2s2`);
      const raw = JSON.parse(await skopeo("inspect", "--raw", "--tls-verify=false", `docker://${srv.host}/${repo}:v2s2`));
      assert.equal(raw.mediaType, "application/vnd.docker.distribution.manifest.v2+json");
      assert.deepEqual(
        raw.layers.map((l: { digest: string }) => l.digest),
        image.layers.map((l) => l.digest),
      );
      const back = join(work, "back-v2s2");
      await skopeo("copy", "--src-tls-verify=false", `docker://${srv.host}/${repo}:v2s2`, `dir:${back}`);
      for (const l of image.layers) {
        const a = await readFile(join(image.dir, "blobs", "sha256", l.digest.slice(7)));
        const c = await readFile(join(back, l.digest.slice(7)));
        assert.ok(a.equals(c), `layer ${l.digest} is byte-identical after a v2s2 round trip`);
      }
      const manifest = await readFile(join(back, "manifest.json"));
      const tags = JSON.parse(await skopeo("list-tags", "--tls-verify=false", `docker://${srv.host}/${repo}`));
      assert.deepEqual(tags.Tags.sort(), ["oci", "v2s2"]);
      assert.equal(sha256(manifest), JSON.parse(await skopeo("inspect", "--tls-verify=false", `docker://${srv.host}/${repo}:v2s2`)).Digest);
    });

    it("skopeo delete removes the manifest", async () => {
      await skopeo("delete", "--tls-verify=false", `docker://${srv.host}/${repo}@${image.manifestDigest}`);
      const r = await run("skopeo", ["inspect", "--tls-verify=false", `docker://${srv.host}/${repo}:oci`]);
      assert.notEqual(r.code, 0, "the deleted image cannot be inspected");
      assert.match(r.stderr, /manifest unknown|not found/i);
      const res = await fetch(`${srv.url}/v2/${repo}/manifests/${image.manifestDigest}`);
      assert.equal(res.status, 404);
    });
  });
}

describe("skopeo pulls through presigned S3 redirects", { skip: modes.length > 1 ? false : "needs STRATA_TEST_BACKENDS to include s3" }, () => {
  let srv: StrataServer;
  let work: string;
  let cleanup: () => Promise<void>;
  const repo = `redirect/${uniqueName("img")}`;

  before(async () => {
    const c = await fleetConfig();
    cleanup = c.cleanup;
    const storage = c.config.storage as { s3: Record<string, unknown> };
    storage.s3.redirect = true;
    srv = await startStrata(c.config);
    work = await mkdtemp(join(tmpdir(), "strata-redirect-"));
  });
  after(async () => {
    await srv?.stop();
    await cleanup?.();
    await rm(work, { recursive: true, force: true });
  });

  it("blob GETs redirect to the object store and skopeo copies the image back byte for byte", async () => {
    const image = await buildOciLayout(join(work, "src"), "v1", whiteoutImageLayers());
    await mustRun("skopeo", ["copy", "--dest-tls-verify=false", "--preserve-digests", `oci:${image.dir}:v1`, `docker://${srv.host}/${repo}:v1`]);
    const layer = image.layers[0].digest;
    const res = await fetch(`${srv.url}/v2/${repo}/blobs/${layer}`, { redirect: "manual" });
    assert.equal(res.status, 307);
    const location = res.headers.get("location") ?? "";
    assert.ok(!location.startsWith(srv.url), `redirected away from the registry: ${location}`);
    const direct = Buffer.from(await (await fetch(location)).arrayBuffer());
    assert.equal(sha256(direct), layer);
    const back = join(work, "back");
    await mustRun("skopeo", ["copy", "--src-tls-verify=false", "--preserve-digests", `docker://${srv.host}/${repo}:v1`, `oci:${back}:v1`]);
    for (const l of image.layers) {
      const a = await readFile(join(image.dir, "blobs", "sha256", l.digest.slice(7)));
      const c = await readFile(join(back, "blobs", "sha256", l.digest.slice(7)));
      assert.ok(a.equals(c), `layer ${l.digest} identical through the redirect`);
    }
  });
});
