/**
 * The metadata API (/strata/v1): every field of the repository list, the tag list and the
 * manifest page, computed by the test from the manifests and configs it pushes (sizes of
 * distinct blobs, platforms of an index, history lines per layer, referrers), push and pull
 * times recorded by the registry, pagination and sorting, deletes, and errors.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { backends } from "./helpers/backends.js";
import { expectError, expectStatus, type Harness, nextLink, useRegistry } from "./helpers/http.js";
import { pushReferrer, pushTestImage, pushTestIndex, sum, union } from "./helpers/meta.js";
import { MediaTypes, repoName } from "./helpers/oci.js";

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- response JSON is indexed freely
type Json = any;

async function get(h: Harness, path: string): Promise<Json> {
  const res = await h.req("GET", path);
  expectStatus(res, 200, `GET ${path}`);
  assert.match(res.header("content-type") ?? "", /^application\/json/);
  return res.json();
}

function within(iso: string | null, from: number, to: number, what: string): void {
  assert.ok(iso, `${what} is recorded`);
  const t = Date.parse(iso);
  assert.ok(t >= from - 1 && t <= to + 1, `${what} ${iso} lies between ${new Date(from).toISOString()} and ${new Date(to).toISOString()}`);
}

for (const backend of backends()) {
  describe(`metadata API [${backend.name}]`, () => {
    const h = useRegistry(backend);

    it("tag list: digest, media type, platform, size of config + layers, push time; pulled time once pulled", async () => {
      const repo = repoName("meta");
      const before = Date.now();
      const img = await pushTestImage(h, repo, "v1");
      const after = Date.now();
      const body = await get(h, `/strata/v1/repositories/${repo}/tags`);
      assert.equal(body.name, repo);
      assert.equal(body.tags.length, 1);
      const t = body.tags[0];
      assert.equal(t.tag, "v1");
      assert.equal(t.digest, img.digest);
      assert.equal(t.mediaType, MediaTypes.OciManifest);
      assert.deepEqual(t.platforms, ["linux/amd64"]);
      assert.equal(t.size, sum(img.blobs));
      assert.equal(t.referrers, 0);
      within(t.pushedAt, before, after, "pushedAt");
      assert.equal(t.pulledAt, null, "never pulled");

      const pullStart = Date.now();
      expectStatus(await h.req("GET", `/v2/${repo}/manifests/v1`), 200);
      const pullEnd = Date.now();
      const again = await get(h, `/strata/v1/repositories/${repo}/tags`);
      within(again.tags[0].pulledAt, pullStart, pullEnd, "pulledAt");
      assert.equal(again.tags[0].pushedAt, t.pushedAt, "a pull does not move the push time");

      const summary = await get(h, `/strata/v1/repositories?q=${encodeURIComponent(repo)}`);
      assert.deepEqual(summary.repositories, [{ name: repo, tagCount: 1, size: sum(img.blobs), pushedAt: t.pushedAt }]);
    });

    it("a HEAD of a manifest is not a pull", async () => {
      const repo = repoName("meta");
      await pushTestImage(h, repo, "v1");
      expectStatus(await h.req("HEAD", `/v2/${repo}/manifests/v1`), 200);
      const body = await get(h, `/strata/v1/repositories/${repo}/tags`);
      assert.equal(body.tags[0].pulledAt, null);
    });

    it("multi-platform index: platforms from the index, size per platform and in total over distinct blobs; attestations apart", async () => {
      const repo = repoName("meta");
      const idx = await pushTestIndex(h, repo, "multi");
      const [amd, arm] = idx.images;
      const body = await get(h, `/strata/v1/repositories/${repo}/tags`);
      const t = body.tags.find((x: Json) => x.tag === "multi");
      assert.equal(t.digest, idx.digest);
      assert.equal(t.mediaType, MediaTypes.OciIndex);
      assert.deepEqual(t.platforms, ["linux/amd64", "linux/arm64/v8"]);
      const all = union(amd.blobs, arm.blobs, idx.attestation.blobs);
      assert.ok(sum(all) < sum(amd.blobs) + sum(arm.blobs) + sum(idx.attestation.blobs), "the children share a layer");
      assert.equal(t.size, sum(all), "total: distinct blobs of every child");
      assert.deepEqual(t.children, [
        { platform: "linux/amd64", digest: amd.digest, size: sum(amd.blobs) },
        { platform: "linux/arm64/v8", digest: arm.digest, size: sum(arm.blobs) },
        { platform: "unknown/unknown", digest: idx.attestation.digest, size: sum(idx.attestation.blobs), type: "attestation" },
      ]);
      const repoRow = (await get(h, `/strata/v1/repositories?q=${encodeURIComponent(repo)}`)).repositories[0];
      assert.equal(repoRow.size, sum(all), "repository size counts each blob once");
      assert.equal(repoRow.tagCount, 1);

      const detail = await get(h, `/strata/v1/repositories/${repo}/manifests/multi`);
      assert.equal(detail.digest, idx.digest);
      assert.deepEqual(
        detail.children.map((c: Json) => c.platform),
        ["linux/amd64", "linux/arm64/v8", "unknown/unknown"],
      );
      assert.equal(detail.manifestSize, idx.manifest.length);
      assert.deepEqual(detail.manifest, JSON.parse(idx.manifest.toString()));
    });

    it("manifest page: config summary, layers with sizes and the history line that made each, referrers with their kind", async () => {
      const repo = repoName("meta");
      const img = await pushTestImage(h, repo, "app", { layerSizes: [1111, 2222, 3333] });
      const sig = await pushReferrer(h, repo, img.desc, "application/vnd.dev.cosign.artifact.sig.v1+json");
      const sbom = await pushReferrer(h, repo, img.desc, "application/spdx+json");
      const att = await pushReferrer(h, repo, img.desc, "application/vnd.in-toto+json");
      const d = await get(h, `/strata/v1/repositories/${repo}/manifests/${img.digest}`);
      assert.equal(d.name, repo);
      assert.equal(d.mediaType, MediaTypes.OciManifest);
      assert.deepEqual(d.tags, ["app"]);
      assert.deepEqual(d.platforms, ["linux/amd64"]);
      assert.equal(d.size, sum(img.blobs));
      const cfg = img.configJson as Json;
      assert.equal(d.config.digest, [...img.blobs.keys()][0]);
      assert.equal(d.config.size, img.config.length);
      assert.equal(d.config.created, cfg.created);
      assert.equal(d.config.author, cfg.author);
      assert.equal(d.config.os, "linux");
      assert.equal(d.config.architecture, "amd64");
      assert.deepEqual(d.config.entrypoint, cfg.config.Entrypoint);
      assert.deepEqual(d.config.cmd, cfg.config.Cmd);
      assert.deepEqual(d.config.env, cfg.config.Env);
      assert.deepEqual(d.config.labels, cfg.config.Labels);
      assert.equal(d.config.workingDir, "/srv");
      assert.equal(d.config.user, "1000:1000");
      assert.deepEqual(d.config.exposedPorts, ["8080/tcp"]);
      assert.equal(d.config.history.length, cfg.history.length);
      assert.equal(d.config.history[0].emptyLayer, true);
      assert.deepEqual(
        d.layers.map((l: Json) => [l.digest, l.size, l.createdBy]),
        img.layers.map((l, i) => [[...img.blobs.keys()][i + 1], l.length, cfg.history[i + 1].created_by]),
      );
      const kinds = Object.fromEntries(d.referrers.map((r: Json) => [r.digest, r.kind]));
      assert.deepEqual(kinds, { [sig.digest]: "signature", [sbom.digest]: "sbom", [att.digest]: "attestation" });
      assert.equal(d.referrers.find((r: Json) => r.digest === sbom.digest).artifactType, "application/spdx+json");

      const tags = await get(h, `/strata/v1/repositories/${repo}/tags`);
      assert.equal(tags.tags[0].referrers, 3);
      const row = (await get(h, `/strata/v1/repositories?q=${encodeURIComponent(repo)}`)).repositories[0];
      assert.equal(row.size, sum(union(img.blobs, sig.blobs, sbom.blobs, att.blobs)), "referrers' blobs count in the repository size, once each");
    });

    it("deletes: a tag leaves the manifest; a manifest takes its tags and its blobs' share of the size; the last one removes the repository", async () => {
      const repo = repoName("meta");
      const a = await pushTestImage(h, repo, "a");
      const b = await pushTestImage(h, repo, "b");
      await h.req("PUT", `/v2/${repo}/manifests/b2`, { headers: { "Content-Type": MediaTypes.OciManifest }, body: b.manifest });
      const list = async () => (await get(h, `/strata/v1/repositories?q=${encodeURIComponent(repo)}`)).repositories;
      assert.deepEqual((await list()).map((r: Json) => [r.tagCount, r.size]), [[3, sum(union(a.blobs, b.blobs))]]);
      expectStatus(await h.req("DELETE", `/v2/${repo}/manifests/b2`), 202);
      assert.deepEqual((await list()).map((r: Json) => [r.tagCount, r.size]), [[2, sum(union(a.blobs, b.blobs))]]);
      expectStatus(await h.req("DELETE", `/v2/${repo}/manifests/${b.digest}`), 202);
      assert.deepEqual((await list()).map((r: Json) => [r.tagCount, r.size]), [[1, sum(a.blobs)]]);
      const tags = await get(h, `/strata/v1/repositories/${repo}/tags`);
      assert.deepEqual(
        tags.tags.map((t: Json) => t.tag),
        ["a"],
      );
      expectStatus(await h.req("DELETE", `/v2/${repo}/manifests/${a.digest}`), 202);
      assert.deepEqual(await list(), []);
      expectError(await h.req("GET", `/strata/v1/repositories/${repo}/tags`), 404, "NAME_UNKNOWN");
    });

    it("lists sorted by name, last push and size, in pages that follow each other through next and Link", async () => {
      const prefix = repoName("list");
      const sizes = [5000, 100, 3000, 800, 2000];
      const repos: { name: string; size: number }[] = [];
      for (let i = 0; i < sizes.length; i++) {
        const name = `${prefix}/n${"edcba"[i]}`;
        const img = await pushTestImage(h, name, "t", { layerSizes: [sizes[i]] });
        repos.push({ name, size: sum(img.blobs) });
        await new Promise((r) => setTimeout(r, 5)); // distinct push times
      }
      const walk = async (sort: string) => {
        const out: Json[] = [];
        let path: string | undefined = `/strata/v1/repositories?q=${encodeURIComponent(prefix)}&sort=${sort}&n=2`;
        let pages = 0;
        while (path) {
          const res = await h.req("GET", path);
          expectStatus(res, 200, path);
          const body = res.json();
          out.push(...body.repositories);
          assert.ok(body.repositories.length <= 2);
          const link = nextLink(res.header("link"));
          assert.equal(link !== undefined, body.next !== undefined, "Link and next go together");
          path = link;
          if (++pages > 10) assert.fail("pagination does not end");
        }
        assert.equal(pages, 3);
        return out;
      };
      const byName = await walk("name");
      assert.deepEqual(
        byName.map((r) => r.name),
        repos.map((r) => r.name).sort(),
      );
      const byPushed = await walk("pushed");
      assert.deepEqual(
        byPushed.map((r) => r.name),
        repos.map((r) => r.name).reverse(),
        "newest first",
      );
      for (let i = 1; i < byPushed.length; i++) assert.ok(byPushed[i - 1].pushedAt >= byPushed[i].pushedAt);
      const bySize = await walk("size");
      assert.deepEqual(
        bySize.map((r) => r.name),
        [...repos].sort((x, y) => y.size - x.size).map((r) => r.name),
        "largest first",
      );
      assert.deepEqual(
        bySize.map((r) => r.size),
        [...repos].sort((x, y) => y.size - x.size).map((r) => r.size),
      );
      const q = await get(h, `/strata/v1/repositories?q=${encodeURIComponent(`${prefix}/nc`)}`);
      assert.deepEqual(
        q.repositories.map((r: Json) => r.name),
        [`${prefix}/nc`],
      );
    });

    it("tag list pages by name and by push time", async () => {
      const repo = repoName("meta");
      const img = await pushTestImage(h, repo, "t0");
      for (const t of ["t1", "t2", "t3", "t4"]) {
        await new Promise((r) => setTimeout(r, 3));
        await h.req("PUT", `/v2/${repo}/manifests/${t}`, { headers: { "Content-Type": MediaTypes.OciManifest }, body: img.manifest });
      }
      const p1 = await h.req("GET", `/strata/v1/repositories/${repo}/tags?n=3`);
      assert.deepEqual(
        p1.json().tags.map((t: Json) => t.tag),
        ["t0", "t1", "t2"],
      );
      const p2 = await get(h, nextLink(p1.header("link"))!);
      assert.deepEqual(
        p2.tags.map((t: Json) => t.tag),
        ["t3", "t4"],
      );
      assert.equal(p2.next, undefined);
      const newest = await get(h, `/strata/v1/repositories/${repo}/tags?sort=pushed&n=2`);
      assert.deepEqual(
        newest.tags.map((t: Json) => t.tag),
        ["t4", "t3"],
      );
    });

    it("errors: unknown repository or manifest, bad sort, bad cursor, bad n", async () => {
      const repo = repoName("meta");
      expectError(await h.req("GET", `/strata/v1/repositories/${repo}/tags`), 404, "NAME_UNKNOWN");
      await pushTestImage(h, repo, "v1");
      expectError(await h.req("GET", `/strata/v1/repositories/${repo}/manifests/nope`), 404, "MANIFEST_UNKNOWN");
      expectError(await h.req("GET", `/strata/v1/repositories/${repo}/manifests/sha256:${"a".repeat(64)}`), 404, "MANIFEST_UNKNOWN");
      expectError(await h.req("GET", `/strata/v1/repositories/Bad..Name/tags`), 400, "NAME_INVALID");
      expectError(await h.req("GET", "/strata/v1/repositories?sort=age"), 400, "UNSUPPORTED");
      expectError(await h.req("GET", "/strata/v1/repositories?sort=size&last=plainname"), 400, "UNSUPPORTED");
      expectError(await h.req("GET", "/strata/v1/repositories?n=-1"), 400, "UNSUPPORTED");
      expectError(await h.req("GET", "/strata/v1/repositories?n=0"), 400, "UNSUPPORTED");
      const info = await get(h, "/strata/v1/");
      assert.equal(info.deleteEnabled, true);
    });
  });
}
