/**
 * Storage lifecycle policies over HTTP: immutable tags (created once, never moved or deleted:
 * 403 DENIED), retention rules applied by garbage collection (dry run shows them), quotas
 * (403 DENIED naming the quota, before the data when its size is known, at the crossing chunk
 * otherwise; a blob the quota already counts is free) and GET /strata/v1/usage.
 */
import assert from "node:assert/strict";
import { createServer, request as httpRequest } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, it } from "node:test";
import { backends } from "./helpers/backends.js";
import { expectError, startRegistry } from "./helpers/http.js";
import { imageParts, MediaTypes, ociManifestBytes, pushBlob, pushImage, pushManifest, pushParts, putManifest, randomBlob, sha256, startUpload } from "./helpers/oci.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

for (const backend of backends().filter((b) => b.name !== "auth")) {
  describe(`lifecycle policies [${backend.name}]`, () => {
    // object stores keep modification (push) times in whole seconds
    const tick = () => sleep(backend.name === "s3" ? 1100 : 20);
    it("immutable tags: created once, re-pushing the same manifest is fine, moving or deleting is 403 DENIED", async () => {
      const h = await startRegistry(backend, (c) => {
        c.immutable = [{ repositories: ["release/**"], tags: "^v[0-9]" }];
      });
      try {
        const repo = "release/app";
        const one = await pushImage(h, repo, "v1.0");
        const two = await pushImage(h, repo, "latest");
        assert.equal((await putManifest(h, repo, "v1.0", one.manifest, MediaTypes.OciManifest)).status, 201, "the same manifest again");
        const move = await putManifest(h, repo, "v1.0", two.manifest, MediaTypes.OciManifest);
        const [err] = expectError(move, 403, "DENIED", "moving an immutable tag");
        assert.match(err.message ?? "", /immutable/);
        const parts = imageParts(1, 100);
        await pushParts(h, repo, parts);
        const three = ociManifestBytes(parts.configDesc, parts.layerDescs);
        expectError(await putManifest(h, repo, "v1.0", three, MediaTypes.OciManifest), 403, "DENIED");
        assert.equal((await h.req("GET", `/v2/${repo}/manifests/${sha256(three)}`, { headers: { Accept: MediaTypes.OciManifest } })).status, 404, "a refused move stores no revision");
        expectError(await h.req("DELETE", `/v2/${repo}/manifests/v1.0`), 403, "DENIED", "deleting an immutable tag");
        expectError(await h.req("DELETE", `/v2/${repo}/manifests/${one.digest}`), 403, "DENIED", "deleting the manifest an immutable tag names");
        const got = await h.req("GET", `/v2/${repo}/manifests/v1.0`, { headers: { Accept: MediaTypes.OciManifest } });
        assert.equal(sha256(got.body), one.digest, "the tag still names the first manifest");
        // tags the rule does not match, and other repositories, stay mutable
        assert.equal((await putManifest(h, repo, "latest", one.manifest, MediaTypes.OciManifest)).status, 201);
        assert.equal((await h.req("DELETE", `/v2/${repo}/manifests/latest`)).status, 202);
        await pushImage(h, "dev/app", "v1.0");
        assert.equal((await putManifest(h, "dev/app", "v1.0", one.manifest, MediaTypes.OciManifest)).status, 400, "blobs of another repository are not there (not a policy refusal)");
        assert.equal((await h.req("DELETE", "/v2/dev/app/manifests/v1.0")).status, 202);
      } finally {
        await h.close();
      }
    });

    it("retention: GC deletes candidate tags beyond keepLast (dry run only shows them), never immutable or non-matching tags", async () => {
      const h = await startRegistry(backend, (c) => {
        c.retention = [
          { repositories: ["ci/**"], keepLast: 2, tags: "^pr-" },
          { repositories: ["nightly/*"], keepWithinDays: 30 },
        ];
        c.immutable = [{ repositories: ["ci/keep"], tags: "^pr-1$" }];
      });
      try {
        const pushed: Record<string, string> = {};
        for (const tag of ["pr-1", "pr-2", "pr-3", "pr-4", "main"]) {
          pushed[tag] = (await pushImage(h, "ci/app", tag)).parts.layerDescs[0].digest;
          await tick(); // distinct push times
        }
        for (const tag of ["pr-1", "pr-2", "pr-3"]) {
          await pushImage(h, "ci/keep", tag);
          await tick();
        }
        await pushImage(h, "nightly/app", "n1");
        await pushImage(h, "other/app", "pr-1");

        const metaTags = async () => (await h.req("GET", "/strata/v1/repositories/ci/app/tags")).json<{ tags: { tag: string }[] }>().tags.map((t) => t.tag);
        assert.equal((await metaTags()).length, 5);
        const dry = await h.reg.collectGarbage({ delaySeconds: 0, dryRun: true });
        const tagActions = (r: typeof dry) =>
          r.actions
            .filter((a) => a.kind === "tag")
            .map((a) => `${a.repository}:${a.tag}`)
            .sort();
        assert.deepEqual(tagActions(dry), ["ci/app:pr-1", "ci/app:pr-2"], "ci/keep:pr-1 is immutable, so nothing of ci/keep is beyond keepLast 2");
        assert.ok(dry.actions.some((a) => a.kind === "blob" && a.digest === pushed["pr-1"]), "the dry run shows the blobs that would go with them");
        assert.equal((await h.req("GET", "/v2/ci/app/tags/list")).json<{ tags: string[] }>().tags.length, 5, "a dry run deletes no tag");

        const r = await h.reg.collectGarbage({ delaySeconds: 0 });
        assert.deepEqual(tagActions(r), ["ci/app:pr-1", "ci/app:pr-2"]);
        assert.match(r.actions.find((a) => a.kind === "tag")!.reason ?? "", /retention rule 1/);
        assert.deepEqual((await h.req("GET", "/v2/ci/app/tags/list")).json<{ tags: string[] }>().tags, ["main", "pr-3", "pr-4"]);
        // the metadata API (and webhooks) hear of the deletions
        for (let i = 0; i < 50 && (await metaTags()).length !== 3; i++) await sleep(20);
        assert.deepEqual(await metaTags(), ["main", "pr-3", "pr-4"]);
        assert.deepEqual((await h.req("GET", "/v2/ci/keep/tags/list")).json<{ tags: string[] }>().tags, ["pr-1", "pr-2", "pr-3"]);
        assert.deepEqual((await h.req("GET", "/v2/nightly/app/tags/list")).json<{ tags: string[] }>().tags, ["n1"]);
        assert.equal((await h.req("HEAD", `/v2/ci/app/blobs/${pushed["pr-1"]}`)).status, 404, "the layers of expired tags are collected");
        assert.equal((await h.req("HEAD", `/v2/ci/app/blobs/${pushed["pr-4"]}`)).status, 200);
      } finally {
        await h.close();
      }
    });

    it("quotas: DENIED naming the quota before the data (size known) or at the crossing chunk; shared blobs count once; usage", async () => {
      const h = await startRegistry(backend, (c) => {
        c.quotas = [{ repositories: ["team/**"], maxBytes: 10_000 }];
      });
      try {
        const first = randomBlob(6000);
        await pushBlob(h, "team/a", first);
        // a blob the quota already counts is free, in another repository of the quota too
        await pushBlob(h, "team/b", first);
        // monolithic with the size known: refused before any data
        const big = randomBlob(6000);
        const res = await h.req("POST", `/v2/team/a/blobs/uploads/?digest=${sha256(big)}`, { headers: { "Content-Type": "application/octet-stream" }, body: big });
        const [err] = expectError(res, 403, "DENIED", "monolithic upload over the quota");
        assert.match(err.message ?? "", /quota team\/\*\* \(maxBytes 10000\)/);
        assert.equal((await h.req("HEAD", `/v2/team/a/blobs/${sha256(big)}`)).status, 404, "nothing of it was stored");
        // chunked: the first chunk crossing the quota is refused, the ones before are kept
        const { location } = await startUpload(h, "team/a");
        const ok = await h.streamed("PATCH", location, [randomBlob(2000), randomBlob(1000)], { "Content-Type": "application/octet-stream" });
        assert.equal(ok.status, 202);
        const over = await h.streamed("PATCH", location, [randomBlob(1000), randomBlob(1000)], { "Content-Type": "application/octet-stream" });
        expectError(over, 403, "DENIED", "the chunk that crosses the quota");
        // other repositories are not limited
        await pushBlob(h, "solo/x", randomBlob(20_000));

        const parts = imageParts(1, 100);
        await pushParts(h, "team/a", parts);
        await pushManifest(h, "team/a", "v1", ociManifestBytes(parts.configDesc, parts.layerDescs), MediaTypes.OciManifest);
        const usage = await h.req("GET", "/strata/v1/usage");
        assert.equal(usage.status, 200);
        const u = usage.json<{ repositories: { name: string; bytes: number }[]; quotas: { quota: string; usedBytes: number; maxBytes: number }[] }>();
        const bytes = (name: string) => u.repositories.find((r) => r.name === name)?.bytes;
        const manifestSize = ociManifestBytes(parts.configDesc, parts.layerDescs).length;
        assert.equal(bytes("team/a"), 6000 + 100 + parts.config.length + manifestSize);
        assert.equal(bytes("team/b"), 6000);
        assert.equal(bytes("solo/x"), 20_000);
        assert.deepEqual(u.quotas, [{ quota: "quota team/**", repositories: ["team/**"], maxBytes: 10_000, usedBytes: 6000 + 100 + parts.config.length + manifestSize }]);
      } finally {
        await h.close();
      }
    });

    it("quotas: manifests count; one over the quota is DENIED and not stored, one the quota already counts is free", async () => {
      const parts = imageParts(1, 100);
      const raw = ociManifestBytes(parts.configDesc, parts.layerDescs);
      const h = await startRegistry(backend, (c) => {
        c.quotas = [{ repositories: ["team/**"], maxBytes: 100 + parts.config.length + raw.length }];
      });
      try {
        await pushParts(h, "team/a", parts);
        await pushManifest(h, "team/a", "v1", raw, MediaTypes.OciManifest);
        // the quota is now exactly full; the same manifest elsewhere in it adds nothing
        await pushParts(h, "team/b", parts);
        await pushManifest(h, "team/b", "v1", raw, MediaTypes.OciManifest);
        // the same image in other bytes is another manifest, over the quota
        const other = Buffer.concat([raw, Buffer.from("\n")]);
        const res = await h.req("PUT", `/v2/team/a/manifests/v2`, { headers: { "Content-Type": MediaTypes.OciManifest }, body: other });
        const [err] = expectError(res, 403, "DENIED", "a manifest over the quota");
        assert.match(err.message ?? "", /quota team\/\*\*/);
        assert.equal((await h.req("GET", `/v2/team/a/manifests/v2`)).status, 404, "the refused tag does not exist");
        assert.equal((await h.req("GET", `/v2/team/a/manifests/${sha256(other)}`)).status, 404, "the refused manifest was not stored");
        // outside the quota the same bytes are accepted
        await pushParts(h, "solo/x", parts);
        await pushManifest(h, "solo/x", "v2", other, MediaTypes.OciManifest);
      } finally {
        await h.close();
      }
    });

    it("quotas: a request whose Content-Length exceeds the quota is answered 403 without its body being read", async () => {
      const h = await startRegistry(backend, (c) => {
        c.quotas = [{ repositories: ["team/**"], maxBytes: 1000 }];
      });
      const server = createServer(h.reg.app.callback());
      await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
      try {
        const { port } = server.address() as AddressInfo;
        const digest = sha256(randomBlob(8));
        // declares 1 MB, sends 10 bytes and waits: the answer must come anyway
        const status = await new Promise<number>((resolve, reject) => {
          const req = httpRequest({ host: "127.0.0.1", port, method: "POST", path: `/v2/team/a/blobs/uploads/?digest=${digest}`, headers: { "Content-Length": "1000000" } }, (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
            req.destroy();
          });
          req.on("error", reject);
          req.write(Buffer.alloc(10));
          setTimeout(() => reject(new Error("no answer before the body")), 5000).unref();
        });
        assert.equal(status, 403);
      } finally {
        server.closeAllConnections();
        await new Promise((r) => server.close(r));
        await h.close();
      }
    });
  });
}
