/**
 * OCI Distribution Spec v1.1 tag listing (end-8a/8b) with n, last and Link pagination, and
 * the repository catalog (/v2/_catalog, distribution's API) with n, last and Link.
 */
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { backends } from "./helpers/backends.js";
import { expectError, nextLink, useRegistry } from "./helpers/http.js";
import { MediaTypes, pushBlob, pushImage, pushManifest, randomBlob, repoName } from "./helpers/oci.js";

/** Spec: lexical (case-insensitive alphanumeric) or ASCIIbetical (Go sort.Strings) order. */
function sortedAscii(xs: string[]): string[] {
  return [...xs].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}
function sortedCaseInsensitive(xs: string[]): string[] {
  return [...xs].sort((a, b) => {
    const x = a.toLowerCase();
    const y = b.toLowerCase();
    return x < y ? -1 : x > y ? 1 : a < b ? -1 : a > b ? 1 : 0;
  });
}
function assertSpecOrder(got: string[], all: string[]): void {
  const ascii = sortedAscii(all);
  const ci = sortedCaseInsensitive(all);
  assert.ok(
    JSON.stringify(got) === JSON.stringify(ascii) || JSON.stringify(got) === JSON.stringify(ci),
    `tags ${JSON.stringify(got)} are not in lexical order (${JSON.stringify(ascii)} or ${JSON.stringify(ci)})`,
  );
}

for (const backend of backends()) {
  describe(`tags list [${backend.name}]`, () => {
    const h = useRegistry(backend);
    const repo = repoName("tags");
    const tags = ["v1", "latest", "V2", "a", "b.c", "b_c", "b-c", "10", "9", "_under", "Zeta", "z"];
    let order: string[];

    before(async () => {
      const img = await pushImage(h, repo, tags[0]);
      for (const t of tags.slice(1)) await pushManifest(h, repo, t, img.manifest, MediaTypes.OciManifest);
      const res = await h.req("GET", `/v2/${repo}/tags/list`);
      order = res.json().tags;
    });

    it("GET tags/list is 200 with {name, tags} holding every tag in lexical order", async () => {
      const res = await h.req("GET", `/v2/${repo}/tags/list`);
      assert.equal(res.status, 200);
      assert.match(res.header("content-type") ?? "", /^application\/json/);
      const body = res.json();
      assert.equal(body.name, repo);
      assertSpecOrder(body.tags, tags);
      assert.equal(res.header("link"), undefined, "no Link when everything was returned");
    });

    it("?n= limits the count and returns the first n tags with a Link to the rest", async () => {
      const res = await h.req("GET", `/v2/${repo}/tags/list?n=5`);
      assert.equal(res.status, 200);
      assert.deepEqual(res.json().tags, order.slice(0, 5));
      const next = nextLink(res.header("link"));
      assert.ok(next, `expected Link rel="next", got ${res.header("link")}`);
      assert.ok(next.startsWith(`/v2/${repo}/tags/list?`), next);
    });

    it("following Link rel=next pages through every tag exactly once", async () => {
      const seen: string[] = [];
      let url: string | undefined = `/v2/${repo}/tags/list?n=5`;
      let pages = 0;
      while (url) {
        const res = await h.req("GET", url);
        assert.equal(res.status, 200);
        const page: string[] = res.json().tags;
        assert.ok(page.length <= 5);
        seen.push(...page);
        url = nextLink(res.header("link"));
        assert.ok(++pages <= 10, "too many pages");
      }
      assert.deepEqual(seen, order);
    });

    it("?n=&last= returns up to n tags strictly after last", async () => {
      const res = await h.req("GET", `/v2/${repo}/tags/list?n=3&last=${encodeURIComponent(order[2])}`);
      assert.equal(res.status, 200);
      assert.deepEqual(res.json().tags, order.slice(3, 6));
    });

    it("?last= without n returns every tag after last", async () => {
      const res = await h.req("GET", `/v2/${repo}/tags/list?last=${encodeURIComponent(order[7])}`);
      assert.equal(res.status, 200);
      assert.deepEqual(res.json().tags, order.slice(8));
    });

    it("?last= with a value that is not a tag returns the tags sorting after it", async () => {
      const res = await h.req("GET", `/v2/${repo}/tags/list?last=${encodeURIComponent("latest0")}`);
      assert.equal(res.status, 200);
      const after = res.json().tags as string[];
      assert.deepEqual(after, order.slice(order.indexOf("latest") + 1));
    });

    it("the last page has exactly the remaining tags and no Link", async () => {
      const res = await h.req("GET", `/v2/${repo}/tags/list?n=5&last=${encodeURIComponent(order[order.length - 3])}`);
      assert.equal(res.status, 200);
      assert.deepEqual(res.json().tags, order.slice(-2));
      assert.equal(nextLink(res.header("link")), undefined);
    });

    it("n larger than the number of tags returns them all", async () => {
      const res = await h.req("GET", `/v2/${repo}/tags/list?n=1000`);
      assert.equal(res.status, 200);
      assert.deepEqual(res.json().tags, order);
      assert.equal(nextLink(res.header("link")), undefined);
    });

    it("n=0 returns an empty list and no Link header", async () => {
      const res = await h.req("GET", `/v2/${repo}/tags/list?n=0`);
      assert.equal(res.status, 200);
      assert.deepEqual(res.json().tags ?? [], []);
      assert.equal(res.header("link"), undefined);
    });

    it("tags/list of an unknown repository is 404 NAME_UNKNOWN", async () => {
      expectError(await h.req("GET", `/v2/${repoName("ghost")}/tags/list`), 404, "NAME_UNKNOWN");
    });

    it("a repository with blobs but no tags lists an empty tag set (or is unknown)", async () => {
      const r = repoName("untagged");
      await pushBlob(h, r, randomBlob(10));
      const res = await h.req("GET", `/v2/${r}/tags/list`);
      if (res.status === 404) {
        expectError(res, 404, "NAME_UNKNOWN");
        return;
      }
      assert.equal(res.status, 200);
      assert.deepEqual(res.json().tags ?? [], []);
    });

    it("tags of a nested repository name are listed with its full name", async () => {
      const r = `deep/${repoName("nested")}/x`;
      await pushImage(h, r, "one");
      const res = await h.req("GET", `/v2/${r}/tags/list`);
      assert.equal(res.status, 200);
      assert.deepEqual(res.json(), { name: r, tags: ["one"] });
    });
  });

  describe(`catalog [${backend.name}]`, () => {
    const h = useRegistry(backend);
    const repos = ["alpha", "beta/one", "beta/one/two", "beta/two", "gamma/a/b/c", "delta-x", "delta.y", "delta_z"];
    let order: string[];

    before(async () => {
      for (const r of repos) await pushImage(h, r, "latest");
      order = sortedAscii(repos);
    });

    it("GET /v2/_catalog is 200 with every repository (nested names included) in lexical order", async () => {
      const res = await h.req("GET", "/v2/_catalog");
      assert.equal(res.status, 200);
      assert.match(res.header("content-type") ?? "", /^application\/json/);
      assert.deepEqual(res.json().repositories, order);
    });

    it("?n= limits the count and gives a Link to the next page; following Links visits every repository once", async () => {
      const first = await h.req("GET", "/v2/_catalog?n=3");
      assert.equal(first.status, 200);
      assert.deepEqual(first.json().repositories, order.slice(0, 3));
      const seen: string[] = [];
      let url: string | undefined = "/v2/_catalog?n=3";
      let pages = 0;
      while (url) {
        const res = await h.req("GET", url);
        assert.equal(res.status, 200);
        seen.push(...res.json().repositories);
        url = nextLink(res.header("link"));
        if (url) assert.ok(url.startsWith("/v2/_catalog?"), url);
        assert.ok(++pages <= 10, "too many pages");
      }
      assert.deepEqual(seen, order);
    });

    it("?n=&last= returns repositories strictly after last", async () => {
      const res = await h.req("GET", `/v2/_catalog?n=2&last=${encodeURIComponent("beta/one")}`);
      assert.equal(res.status, 200);
      assert.deepEqual(res.json().repositories, order.slice(order.indexOf("beta/one") + 1, order.indexOf("beta/one") + 3));
    });

    it("n=0 returns an empty list and no Link", async () => {
      const res = await h.req("GET", "/v2/_catalog?n=0");
      assert.equal(res.status, 200);
      assert.deepEqual(res.json().repositories ?? [], []);
      assert.equal(res.header("link"), undefined);
    });

    it("a repository created by a push appears in the catalog", async () => {
      await pushImage(h, "zz/late", "t");
      const res = await h.req("GET", "/v2/_catalog");
      assert.ok(res.json().repositories.includes("zz/late"));
    });
  });
}
