/**
 * End to end through both halves of Strata: skopeo pushes the golden image's OCI layout to a
 * `strata serve` process, `strata pull` writes it into a Docker-format store, and the store
 * holds what Docker Engine wrote for the same image (test/fixtures/docker-golden).
 */
import assert from "node:assert/strict";
import { cp, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fleetConfig } from "./helpers/fleet.js";
import { mustRun, REPO_ROOT, type StrataServer, startStrata, strata, uniqueName } from "./helpers/strata.js";
import { missing } from "@strata/client/test-helpers/tools.js";

const GOLDEN = join(REPO_ROOT, "test", "fixtures", "docker-golden", "edge");

interface Expected {
  image_id: string;
  manifest_digest: string;
  layers: { diff_id: string; chain_id: string; parent_chain_id: string | null; size: number }[];
}

const modes: { name: string; config: () => Promise<{ config: Record<string, unknown>; cleanup: () => Promise<void> }> }[] = [
  {
    name: "filesystem",
    config: async () => {
      const root = await mkdtemp(join(tmpdir(), "strata-e2e-reg-"));
      return { config: { storage: { driver: "filesystem", filesystem: { root } } }, cleanup: () => rm(root, { recursive: true, force: true }) };
    },
  },
];
if ((process.env.STRATA_TEST_BACKENDS ?? "").split(",").includes("s3")) modes.push({ name: "s3+redis", config: fleetConfig });

for (const mode of modes) {
  describe(`strata pull from strata serve [${mode.name}]`, { skip: missing("skopeo") }, () => {
    let srv: StrataServer;
    let work: string;
    let cleanup: () => Promise<void>;
    let expected: Expected;
    const repo = `golden/${uniqueName("edge")}`;

    before(async () => {
      expected = JSON.parse(await readFile(join(GOLDEN, "expected.json"), "utf8"));
      const c = await mode.config();
      cleanup = c.cleanup;
      srv = await startStrata(c.config);
      work = await mkdtemp(join(tmpdir(), "strata-e2e-"));
      await cp(join(GOLDEN, "oci"), join(work, "oci"), { recursive: true });
      await mustRun("skopeo", ["copy", "--dest-tls-verify=false", "--preserve-digests", `oci:${join(work, "oci")}:v1`, `docker://${srv.host}/${repo}:v1`]);
    });
    after(async () => {
      await srv?.stop();
      await cleanup?.();
      await rm(work, { recursive: true, force: true });
    });

    it("pulls by tag into a store whose layerdb and imagedb match Docker's", async () => {
      const root = join(work, "store-tag");
      const r = await strata(["pull", `${srv.host}/${repo}:v1`, "--root", root, "--format", "json"]);
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout);
      assert.equal(out.imageId ?? out.id, expected.image_id);
      const config = await readFile(join(root, "image/overlay2/imagedb/content/sha256", expected.image_id.slice(7)));
      assert.ok(config.equals(await readFile(join(GOLDEN, "oci/blobs/sha256", expected.image_id.slice(7)))), "config bytes verbatim");
      for (const l of expected.layers) {
        const dir = join(root, "image/overlay2/layerdb/sha256", l.chain_id.slice(7));
        assert.equal(await readFile(join(dir, "diff"), "utf8"), l.diff_id);
        assert.equal(await readFile(join(dir, "size"), "utf8"), String(l.size));
        if (l.parent_chain_id) assert.equal(await readFile(join(dir, "parent"), "utf8"), l.parent_chain_id);
      }
      const repos = JSON.parse(await readFile(join(root, "image/overlay2/repositories.json"), "utf8"));
      const name = `${srv.host}/${repo}`;
      assert.equal(repos.Repositories[name][`${name}:v1`], expected.image_id);
      assert.equal(repos.Repositories[name][`${name}@${expected.manifest_digest}`], expected.image_id);
      const v = await strata(["verify", "--root", root]);
      assert.equal(v.code, 0, v.stdout + v.stderr);
    });

    it("pulls by digest, and a second pull reuses every layer", async () => {
      const root = join(work, "store-digest");
      let r = await strata(["pull", `${srv.host}/${repo}@${expected.manifest_digest}`, "--root", root]);
      assert.equal(r.code, 0, r.stderr);
      r = await strata(["pull", `${srv.host}/${repo}:v1`, "--root", root]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal((r.stdout.match(/Already exists/g) ?? []).length, expected.layers.length, r.stdout);
    });
  });
}
