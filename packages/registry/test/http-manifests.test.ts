/**
 * OCI Distribution Spec v1.1 manifest endpoints: PUT (end-7), GET/HEAD (end-3), DELETE of
 * digests and tags (end-9); exact bytes, Content-Type and Docker-Content-Digest, OCI-Subject,
 * validation errors, the 4 MiB size limit (413 above it), sha512 references.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { backends } from "./helpers/backends.js";
import { baseType, expectError, locationPath, useRegistry } from "./helpers/http.js";
import {
  assertBytesEqual,
  descriptorOf,
  EMPTY_DESC,
  EMPTY_JSON,
  imageParts,
  json,
  MediaTypes,
  ociIndexBytes,
  ociManifestBytes,
  pushBlob,
  pushImage,
  pushManifest,
  pushParts,
  putManifest,
  randomBlob,
  repoName,
  sha256,
  sha512,
  unknownDigest,
} from "./helpers/oci.js";

const MiB = 1024 * 1024;

for (const backend of backends()) {
  describe(`manifests [${backend.name}]`, () => {
    const h = useRegistry(backend);

    async function assertServed(repo: string, ref: string, bytes: Buffer, mediaType: string, digest = sha256(bytes)): Promise<void> {
      const res = await h.req("GET", `/v2/${repo}/manifests/${ref}`, { headers: { Accept: mediaType } });
      assert.equal(res.status, 200, `GET ${repo}:${ref}: ${res.text().slice(0, 200)}`);
      assertBytesEqual(res.body, bytes, `manifest ${ref}`);
      assert.equal(res.header("content-type"), mediaType, "Content-Type must be the manifest media type without parameters");
      assert.equal(res.header("docker-content-digest"), digest);
      assert.equal(res.header("content-length"), String(bytes.length));
    }

    describe("push and pull", () => {
      it("PUT by tag is 201 with a pullable Location and Docker-Content-Digest of the bytes", async () => {
        const repo = repoName();
        const parts = imageParts(2);
        await pushParts(h, repo, parts);
        const m = ociManifestBytes(parts.configDesc, parts.layerDescs);
        const res = await putManifest(h, repo, "v1", m, MediaTypes.OciManifest);
        assert.equal(res.status, 201);
        assert.equal(res.header("docker-content-digest"), sha256(m));
        const loc = locationPath(res.header("location"));
        const get = await h.req("GET", loc, { headers: { Accept: MediaTypes.OciManifest } });
        assert.equal(get.status, 200, `GET Location ${loc}`);
        assertBytesEqual(get.body, m, "manifest at Location");
        assert.equal(res.header("oci-subject"), undefined, "no OCI-Subject without a subject");
      });

      it("PUT by digest is 201 with Location and Docker-Content-Digest equal to the reference", async () => {
        const repo = repoName();
        const parts = imageParts(1);
        await pushParts(h, repo, parts);
        const m = ociManifestBytes(parts.configDesc, parts.layerDescs);
        const d = sha256(m);
        const res = await putManifest(h, repo, d, m, MediaTypes.OciManifest);
        assert.equal(res.status, 201);
        assert.equal(res.header("docker-content-digest"), d);
        assert.equal((await h.req("GET", locationPath(res.header("location")))).status, 200);
      });

      it("GET by tag and by digest returns the exact bytes, Content-Type, Content-Length and Docker-Content-Digest", async () => {
        const repo = repoName();
        const img = await pushImage(h, repo, "latest");
        await assertServed(repo, "latest", img.manifest, MediaTypes.OciManifest);
        await assertServed(repo, img.digest, img.manifest, MediaTypes.OciManifest);
      });

      it("HEAD by tag and by digest is 200 with Content-Type, Content-Length, Docker-Content-Digest and no body", async () => {
        const repo = repoName();
        const img = await pushImage(h, repo, "latest");
        for (const ref of ["latest", img.digest]) {
          const res = await h.req("HEAD", `/v2/${repo}/manifests/${ref}`, { headers: { Accept: MediaTypes.OciManifest } });
          assert.equal(res.status, 200);
          assert.equal(res.body.length, 0);
          assert.equal(res.header("content-type"), MediaTypes.OciManifest);
          assert.equal(res.header("content-length"), String(img.manifest.length));
          assert.equal(res.header("docker-content-digest"), img.digest);
        }
      });

      it("bytes are stored exactly as sent (tabs, CRLF, key order, trailing whitespace, unicode escapes)", async () => {
        const repo = repoName();
        const parts = imageParts(1);
        await pushParts(h, repo, parts);
        const c = parts.configDesc;
        const l = parts.layerDescs[0];
        const text =
          `{\r\n\t"layers" : [ {"size":${l.size},   "digest":"${l.digest}","mediaType":"${l.mediaType}"} ],\r\n` +
          `\t"config":{"mediaType":"${c.mediaType}","digest":"${c.digest}","size":${c.size}},\n` +
          `  "annotations": {"note": "caf\\u00e9 \u00e9t\u00e9 \u{1F433}"},\n` +
          `"schemaVersion":2,"mediaType":"${MediaTypes.OciManifest}"   }\n\n  `;
        const m = Buffer.from(text, "utf8");
        const res = await pushManifest(h, repo, "odd", m, MediaTypes.OciManifest);
        assert.equal(res.header("docker-content-digest"), sha256(m));
        await assertServed(repo, "odd", m, MediaTypes.OciManifest);
        await assertServed(repo, sha256(m), m, MediaTypes.OciManifest);
      });

      it("a manifest with an empty layers list (artifact with the empty descriptor) is accepted", async () => {
        const repo = repoName();
        await pushBlob(h, repo, EMPTY_JSON);
        const m = ociManifestBytes(EMPTY_DESC, [], { artifactType: "application/vnd.example.thing" });
        await pushManifest(h, repo, "empty", m, MediaTypes.OciManifest);
        await assertServed(repo, "empty", m, MediaTypes.OciManifest);
      });

      it("without a mediaType field the Content-Type used at push is served", async () => {
        const repo = repoName();
        const parts = imageParts(1);
        await pushParts(h, repo, parts);
        const m = json({ schemaVersion: 2, config: parts.configDesc, layers: parts.layerDescs });
        await pushManifest(h, repo, "nomt", m, MediaTypes.OciManifest);
        await assertServed(repo, "nomt", m, MediaTypes.OciManifest);
      });

      it("parameters on the PUT Content-Type are ignored", async () => {
        const repo = repoName();
        const parts = imageParts(1);
        await pushParts(h, repo, parts);
        const m = ociManifestBytes(parts.configDesc, parts.layerDescs);
        const res = await putManifest(h, repo, "params", m, `${MediaTypes.OciManifest}; charset=utf-8`);
        assert.equal(res.status, 201);
        await assertServed(repo, "params", m, MediaTypes.OciManifest);
      });

      it("PUT of an existing tag moves it to the new manifest; the old one stays reachable by digest", async () => {
        const repo = repoName();
        const one = await pushImage(h, repo, "moving");
        const two = await pushImage(h, repo, "moving");
        await assertServed(repo, "moving", two.manifest, MediaTypes.OciManifest);
        await assertServed(repo, one.digest, one.manifest, MediaTypes.OciManifest);
      });

      it("pushing the same manifest again (by tag and by digest) is 201 again", async () => {
        const repo = repoName();
        const img = await pushImage(h, repo, "again");
        assert.equal((await putManifest(h, repo, "again", img.manifest, MediaTypes.OciManifest)).status, 201);
        assert.equal((await putManifest(h, repo, img.digest, img.manifest, MediaTypes.OciManifest)).status, 201);
      });

      it("an OCI index whose children exist is accepted and served with the index media type", async () => {
        const repo = repoName();
        const a = await pushImage(h, repo);
        const b = await pushImage(h, repo);
        const idx = ociIndexBytes([
          { ...a.desc, platform: { architecture: "amd64", os: "linux" } },
          { ...b.desc, platform: { architecture: "arm64", os: "linux" } },
        ]);
        await pushManifest(h, repo, "multi", idx, MediaTypes.OciIndex);
        await assertServed(repo, "multi", idx, MediaTypes.OciIndex);
      });

      it("Docker schema2 manifests and manifest lists round-trip with their media types", async () => {
        const repo = repoName();
        const config = json({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [] } });
        const layer = randomBlob(256);
        await pushBlob(h, repo, config);
        await pushBlob(h, repo, layer);
        const m = json(
          {
            schemaVersion: 2,
            mediaType: MediaTypes.DockerManifest,
            config: descriptorOf(config, MediaTypes.DockerConfig),
            layers: [descriptorOf(layer, MediaTypes.DockerLayerGzip)],
          },
          3,
        );
        await pushManifest(h, repo, "docker", m, MediaTypes.DockerManifest);
        await assertServed(repo, "docker", m, MediaTypes.DockerManifest);
        const list = json({
          schemaVersion: 2,
          mediaType: MediaTypes.DockerManifestList,
          manifests: [{ ...descriptorOf(m, MediaTypes.DockerManifest), platform: { architecture: "amd64", os: "linux" } }],
        });
        await pushManifest(h, repo, "dockerlist", list, MediaTypes.DockerManifestList);
        await assertServed(repo, "dockerlist", list, MediaTypes.DockerManifestList);
      });
    });

    describe("Accept negotiation", () => {
      it("an Accept list containing the stored type (with q-values and other types) gets the manifest", async () => {
        const repo = repoName();
        const img = await pushImage(h, repo, "acc");
        const accept = `${MediaTypes.DockerManifest};q=0.9, ${MediaTypes.OciIndex}, ${MediaTypes.OciManifest};q=0.5`;
        const res = await h.req("GET", `/v2/${repo}/manifests/acc`, { headers: { Accept: accept } });
        assert.equal(res.status, 200);
        assertBytesEqual(res.body, img.manifest, "manifest");
        assert.equal(res.header("content-type"), MediaTypes.OciManifest);
      });

      it("Accept: */* and no Accept header get the stored manifest unchanged", async () => {
        const repo = repoName();
        const img = await pushImage(h, repo, "any");
        for (const headers of [{ Accept: "*/*" }, {} as Record<string, string>]) {
          const res = await h.req("GET", `/v2/${repo}/manifests/any`, { headers });
          assert.equal(res.status, 200);
          assertBytesEqual(res.body, img.manifest, "manifest");
          assert.equal(res.header("content-type"), MediaTypes.OciManifest);
        }
      });

      it("a Docker schema2 manifest asked for with only OCI types is never rewritten: either served as stored or refused with 404/406", async () => {
        const repo = repoName();
        const config = json({ architecture: "amd64", os: "linux" });
        await pushBlob(h, repo, config);
        const m = json({ schemaVersion: 2, mediaType: MediaTypes.DockerManifest, config: descriptorOf(config, MediaTypes.DockerConfig), layers: [] });
        await pushManifest(h, repo, "d2", m, MediaTypes.DockerManifest);
        const res = await h.req("GET", `/v2/${repo}/manifests/d2`, { headers: { Accept: `${MediaTypes.OciManifest}, ${MediaTypes.OciIndex}` } });
        if (res.status === 200) {
          assertBytesEqual(res.body, m, "manifest");
          assert.equal(res.header("content-type"), MediaTypes.DockerManifest);
        } else {
          expectError(res, [404, 406], ["MANIFEST_UNKNOWN", "UNSUPPORTED"]);
        }
      });
    });

    describe("validation", () => {
      const OCI = MediaTypes.OciManifest;

      it("invalid JSON is 400 MANIFEST_INVALID", async () => {
        const repo = repoName();
        expectError(await putManifest(h, repo, "bad", Buffer.from('{"schemaVersion": 2, "config": '), OCI), 400, "MANIFEST_INVALID");
        expectError(await putManifest(h, repo, "bad", Buffer.from(""), OCI), 400, "MANIFEST_INVALID");
        expectError(await putManifest(h, repo, "bad", Buffer.from("[1,2,3]"), OCI), 400, "MANIFEST_INVALID");
      });

      it("an unknown manifest media type is 400 MANIFEST_INVALID", async () => {
        const repo = repoName();
        const parts = imageParts(1);
        await pushParts(h, repo, parts);
        const mt = "application/vnd.example.unknown.manifest.v1+json";
        const m = ociManifestBytes(parts.configDesc, parts.layerDescs, { mediaType: mt });
        expectError(await putManifest(h, repo, "unk", m, mt), 400, "MANIFEST_INVALID");
      });

      it("a body mediaType that contradicts the Content-Type is 400 MANIFEST_INVALID", async () => {
        const repo = repoName();
        const parts = imageParts(1);
        await pushParts(h, repo, parts);
        const m = ociManifestBytes(parts.configDesc, parts.layerDescs);
        expectError(await putManifest(h, repo, "mismatch", m, MediaTypes.OciIndex), 400, "MANIFEST_INVALID");
      });

      it("structurally invalid manifests are 400 MANIFEST_INVALID", async () => {
        const repo = repoName();
        const parts = imageParts(1);
        await pushParts(h, repo, parts);
        const bodies = [
          { schemaVersion: 1, mediaType: OCI, config: parts.configDesc, layers: parts.layerDescs },
          { schemaVersion: 2, mediaType: OCI, layers: parts.layerDescs },
          { schemaVersion: 2, mediaType: OCI, config: parts.configDesc, layers: [{ mediaType: "x/y", digest: "sha256:zz", size: 1 }] },
          { schemaVersion: 2, mediaType: OCI, config: { ...parts.configDesc, size: -1 }, layers: [] },
        ];
        for (const b of bodies) {
          expectError(await putManifest(h, repo, "inv", json(b), OCI), 400, ["MANIFEST_INVALID", "DIGEST_INVALID"], JSON.stringify(b).slice(0, 80));
        }
      });

      it("PUT by a digest that does not match the body is 400 DIGEST_INVALID and stores nothing", async () => {
        const repo = repoName();
        const parts = imageParts(1);
        await pushParts(h, repo, parts);
        const m = ociManifestBytes(parts.configDesc, parts.layerDescs);
        const wrong = unknownDigest();
        expectError(await putManifest(h, repo, wrong, m, OCI), 400, "DIGEST_INVALID");
        expectError(await h.req("GET", `/v2/${repo}/manifests/${wrong}`), 404, ["MANIFEST_UNKNOWN", "NAME_UNKNOWN"]);
        expectError(await h.req("GET", `/v2/${repo}/manifests/${sha256(m)}`), 404, ["MANIFEST_UNKNOWN", "NAME_UNKNOWN"]);
      });

      it("PUT to a malformed digest reference is 400", async () => {
        const repo = repoName();
        const res = await putManifest(h, repo, "sha256:totallywrong", Buffer.from("{}"), OCI);
        expectError(res, 400, ["DIGEST_INVALID", "MANIFEST_INVALID"]);
      });

      it("PUT to an invalid tag is 400 TAG_INVALID", async () => {
        const repo = repoName();
        const img = await pushImage(h, repo);
        for (const tag of ["-dash", ".dot", "a".repeat(129), "t@g"]) {
          const res = await putManifest(h, repo, encodeURIComponent(tag), img.manifest, OCI);
          expectError(res, 400, "TAG_INVALID", `tag ${tag.slice(0, 20)}`);
        }
      });

      it("GET and HEAD of a reference that is not a valid tag are 404 MANIFEST_UNKNOWN (no such manifest can exist)", async () => {
        const repo = repoName();
        await pushImage(h, repo);
        for (const ref of [".INVALID_MANIFEST_NAME", "-dash", "a".repeat(129), "t%40g"]) {
          expectError(await h.req("GET", `/v2/${repo}/manifests/${ref}`), 404, "MANIFEST_UNKNOWN", `GET ${ref.slice(0, 20)}`);
          const head = await h.req("HEAD", `/v2/${repo}/manifests/${ref}`);
          assert.equal(head.status, 404, `HEAD ${ref.slice(0, 20)}`);
        }
      });

      it("tags at the grammar's limits are accepted (128 characters, leading underscore, dots and dashes)", async () => {
        const repo = repoName();
        const img = await pushImage(h, repo);
        for (const tag of [`a${"b".repeat(127)}`, "_x", "A.b-C_d", "0"]) {
          await pushManifest(h, repo, tag, img.manifest, OCI);
          await assertServed(repo, tag, img.manifest, OCI);
        }
      });

      it("a missing config blob is 400 MANIFEST_BLOB_UNKNOWN", async () => {
        const repo = repoName();
        const parts = imageParts(1);
        await pushBlob(h, repo, parts.layers[0]);
        const m = ociManifestBytes(parts.configDesc, parts.layerDescs);
        expectError(await putManifest(h, repo, "nocfg", m, OCI), 400, "MANIFEST_BLOB_UNKNOWN");
        expectError(await h.req("GET", `/v2/${repo}/manifests/nocfg`), 404, ["MANIFEST_UNKNOWN", "NAME_UNKNOWN"]);
      });

      it("a missing layer blob is 400 MANIFEST_BLOB_UNKNOWN", async () => {
        const repo = repoName();
        const parts = imageParts(2);
        await pushBlob(h, repo, parts.config);
        await pushBlob(h, repo, parts.layers[0]);
        const m = ociManifestBytes(parts.configDesc, parts.layerDescs);
        expectError(await putManifest(h, repo, "nolayer", m, OCI), 400, "MANIFEST_BLOB_UNKNOWN");
      });

      it("a blob with a wrong declared size is rejected with 400", async () => {
        const repo = repoName();
        const parts = imageParts(1);
        await pushParts(h, repo, parts);
        const m = ociManifestBytes(parts.configDesc, [{ ...parts.layerDescs[0], size: parts.layerDescs[0].size + 1 }]);
        expectError(await putManifest(h, repo, "badsize", m, OCI), 400, ["MANIFEST_INVALID", "MANIFEST_BLOB_UNKNOWN", "SIZE_INVALID"]);
      });

      it("an index with a missing child manifest is 400 MANIFEST_BLOB_UNKNOWN", async () => {
        const repo = repoName();
        const a = await pushImage(h, repo);
        const missing = { mediaType: OCI, digest: unknownDigest(), size: 123 };
        const idx = ociIndexBytes([a.desc, missing]);
        expectError(await putManifest(h, repo, "idx", idx, MediaTypes.OciIndex), 400, "MANIFEST_BLOB_UNKNOWN");
      });

      it("an index whose child exists only in another repository is 400 MANIFEST_BLOB_UNKNOWN", async () => {
        const other = repoName();
        const repo = repoName();
        const a = await pushImage(h, other);
        await pushImage(h, repo);
        expectError(await putManifest(h, repo, "idx", ociIndexBytes([a.desc]), MediaTypes.OciIndex), 400, "MANIFEST_BLOB_UNKNOWN");
      });

      it("a manifest whose subject does not exist is accepted (referrers may be pushed first)", async () => {
        const repo = repoName();
        const parts = imageParts(1);
        await pushParts(h, repo, parts);
        const subject = { mediaType: OCI, digest: unknownDigest(), size: 999 };
        const m = ociManifestBytes(parts.configDesc, parts.layerDescs, { subject });
        const res = await putManifest(h, repo, sha256(m), m, OCI);
        assert.equal(res.status, 201);
        assert.equal(res.header("oci-subject"), subject.digest);
      });
    });

    describe("size limit", () => {
      async function paddedManifest(repo: string, total: number): Promise<Buffer> {
        const parts = imageParts(1);
        await pushParts(h, repo, parts);
        const base = ociManifestBytes(parts.configDesc, parts.layerDescs, { annotations: { pad: "" } }, 0);
        const m = ociManifestBytes(parts.configDesc, parts.layerDescs, { annotations: { pad: "x".repeat(total - base.length) } }, 0);
        assert.equal(m.length, total);
        return m;
      }

      it("a manifest of exactly 4 MiB is accepted", async () => {
        const repo = repoName();
        const m = await paddedManifest(repo, 4 * MiB);
        const res = await putManifest(h, repo, "big", m, MediaTypes.OciManifest);
        assert.equal(res.status, 201, res.text().slice(0, 200));
        const get = await h.req("GET", `/v2/${repo}/manifests/big`);
        assertBytesEqual(get.body, m, "4 MiB manifest");
      });

      it("a manifest over 4 MiB is refused with 413 and nothing is stored", async () => {
        const repo = repoName();
        const m = await paddedManifest(repo, 4 * MiB + 1);
        const res = await putManifest(h, repo, "huge", m, MediaTypes.OciManifest);
        assert.equal(res.status, 413, `status ${res.status}`);
        if (res.body.length > 0) expectError(res, 413, ["SIZE_INVALID", "MANIFEST_INVALID"]);
        expectError(await h.req("GET", `/v2/${repo}/manifests/huge`), 404, ["MANIFEST_UNKNOWN", "NAME_UNKNOWN"]);
      });
    });

    describe("unknown manifests", () => {
      it("GET/HEAD of an unknown tag or digest is 404 MANIFEST_UNKNOWN", async () => {
        const repo = repoName();
        await pushImage(h, repo, "exists");
        expectError(await h.req("GET", `/v2/${repo}/manifests/nope`), 404, "MANIFEST_UNKNOWN");
        expectError(await h.req("GET", `/v2/${repo}/manifests/${unknownDigest()}`), 404, "MANIFEST_UNKNOWN");
        const head = await h.req("HEAD", `/v2/${repo}/manifests/nope`);
        assert.equal(head.status, 404);
        assert.equal(head.body.length, 0);
      });

      it("GET in a repository that does not exist is 404 (MANIFEST_UNKNOWN or NAME_UNKNOWN)", async () => {
        expectError(await h.req("GET", `/v2/${repoName("ghost")}/manifests/latest`), 404, ["MANIFEST_UNKNOWN", "NAME_UNKNOWN"]);
      });

      it("a manifest pushed to A is not visible through B", async () => {
        const a = repoName("a");
        const b = repoName("b");
        const img = await pushImage(h, a, "t");
        await pushImage(h, b, "other");
        expectError(await h.req("GET", `/v2/${b}/manifests/${img.digest}`), 404, "MANIFEST_UNKNOWN");
        expectError(await h.req("GET", `/v2/${b}/manifests/t`), 404, "MANIFEST_UNKNOWN");
      });
    });

    describe("DELETE", () => {
      it("DELETE by digest is 202; the digest and every tag pointing at it are then 404 and gone from tags/list", async () => {
        const repo = repoName();
        const img = await pushImage(h, repo, "t1");
        await pushManifest(h, repo, "t2", img.manifest, MediaTypes.OciManifest);
        await pushImage(h, repo, "keep");
        const del = await h.req("DELETE", `/v2/${repo}/manifests/${img.digest}`);
        assert.equal(del.status, 202);
        expectError(await h.req("GET", `/v2/${repo}/manifests/${img.digest}`), 404, "MANIFEST_UNKNOWN");
        assert.equal((await h.req("HEAD", `/v2/${repo}/manifests/${img.digest}`)).status, 404);
        expectError(await h.req("GET", `/v2/${repo}/manifests/t1`), 404, "MANIFEST_UNKNOWN");
        expectError(await h.req("GET", `/v2/${repo}/manifests/t2`), 404, "MANIFEST_UNKNOWN");
        const tags = await h.req("GET", `/v2/${repo}/tags/list`);
        assert.equal(tags.status, 200);
        assert.deepEqual(tags.json().tags, ["keep"]);
        expectError(await h.req("DELETE", `/v2/${repo}/manifests/${img.digest}`), 404, "MANIFEST_UNKNOWN");
      });

      it("DELETE by tag is 202; the tag is gone, the manifest stays reachable by digest and by other tags", async () => {
        const repo = repoName();
        const img = await pushImage(h, repo, "a");
        await pushManifest(h, repo, "b", img.manifest, MediaTypes.OciManifest);
        const del = await h.req("DELETE", `/v2/${repo}/manifests/a`);
        assert.equal(del.status, 202);
        expectError(await h.req("GET", `/v2/${repo}/manifests/a`), 404, "MANIFEST_UNKNOWN");
        await assertServed(repo, img.digest, img.manifest, MediaTypes.OciManifest);
        await assertServed(repo, "b", img.manifest, MediaTypes.OciManifest);
        assert.deepEqual((await h.req("GET", `/v2/${repo}/tags/list`)).json().tags, ["b"]);
      });

      it("DELETE of an unknown tag or digest is 404 MANIFEST_UNKNOWN", async () => {
        const repo = repoName();
        await pushImage(h, repo, "x");
        expectError(await h.req("DELETE", `/v2/${repo}/manifests/nope`), 404, "MANIFEST_UNKNOWN");
        expectError(await h.req("DELETE", `/v2/${repo}/manifests/${unknownDigest()}`), 404, "MANIFEST_UNKNOWN");
      });

      it("a deleted manifest can be pushed again", async () => {
        const repo = repoName();
        const img = await pushImage(h, repo, "re");
        assert.equal((await h.req("DELETE", `/v2/${repo}/manifests/${img.digest}`)).status, 202);
        await pushManifest(h, repo, "re", img.manifest, MediaTypes.OciManifest);
        await assertServed(repo, "re", img.manifest, MediaTypes.OciManifest);
      });
    });

    describe("sha512", () => {
      it("PUT by a sha512 digest reference is 201 with that digest; GET by it returns the bytes", async () => {
        const repo = repoName();
        const parts = imageParts(1);
        await pushParts(h, repo, parts);
        const m = ociManifestBytes(parts.configDesc, parts.layerDescs, { annotations: { alg: "sha512" } });
        const d = sha512(m);
        const res = await putManifest(h, repo, d, m, MediaTypes.OciManifest);
        assert.equal(res.status, 201, res.text().slice(0, 200));
        assert.equal(res.header("docker-content-digest"), d);
        const get = await h.req("GET", `/v2/${repo}/manifests/${d}`, { headers: { Accept: MediaTypes.OciManifest } });
        assert.equal(get.status, 200);
        assertBytesEqual(get.body, m, "sha512 manifest");
        const served = get.header("docker-content-digest") ?? "";
        assert.ok(served === d || served === sha256(m), `Docker-Content-Digest ${served} must be a digest of the body`);
        assert.equal((await h.req("HEAD", `/v2/${repo}/manifests/${d}`)).status, 200);
      });

      it("PUT by a sha512 reference that does not match is 400 DIGEST_INVALID", async () => {
        const repo = repoName();
        const img = await pushImage(h, repo);
        expectError(await putManifest(h, repo, sha512(randomBlob(4)), img.manifest, MediaTypes.OciManifest), 400, "DIGEST_INVALID");
      });

      it("a manifest whose blobs are addressed by sha512 is accepted", async () => {
        const repo = repoName();
        const parts = imageParts(2, 300, "sha512");
        await pushParts(h, repo, parts);
        const m = ociManifestBytes(parts.configDesc, parts.layerDescs);
        await pushManifest(h, repo, "s512", m, MediaTypes.OciManifest);
        await assertServed(repo, "s512", m, MediaTypes.OciManifest);
        const layer = await h.req("GET", `/v2/${repo}/blobs/${parts.layerDescs[1].digest}`);
        assertBytesEqual(layer.body, parts.layers[1], "sha512 layer");
      });

      it("the same manifest is reachable by its sha256 digest when pushed by tag", async () => {
        const repo = repoName();
        const img = await pushImage(h, repo, "t");
        assert.equal(baseType((await h.req("GET", `/v2/${repo}/manifests/${img.digest}`)).header("content-type")), MediaTypes.OciManifest);
      });
    });
  });
}
