/**
 * OCI Distribution Spec v1.1 referrers API (end-12a/12b): an image index of the manifests
 * whose subject is the digest, with artifactType (from the manifest, else its config media
 * type; omitted for indexes without one) and annotations; artifactType filtering with
 * OCI-Filters-Applied; 200 with an empty index for unknown digests; 400 for invalid digests.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { backends } from "./helpers/backends.js";
import { expectError, useRegistry } from "./helpers/http.js";
import {
  type Descriptor,
  descriptorOf,
  EMPTY_DESC,
  EMPTY_JSON,
  json,
  MediaTypes,
  ociIndexBytes,
  ociManifestBytes,
  pushBlob,
  pushImage,
  pushManifest,
  randomBlob,
  repoName,
  sha256,
  sha512,
  unknownDigest,
} from "./helpers/oci.js";

const SBOM = "application/vnd.example.sbom.v1";
const SIG = "application/vnd.example.signature.v1";
const CFG_TYPE = "application/vnd.example.config-as-type.v1+json";
const INDEX_TYPE = "application/vnd.example.index-type.v1";

interface RefDescriptor extends Descriptor {
  artifactType?: string;
}

for (const backend of backends()) {
  describe(`referrers [${backend.name}]`, () => {
    const h = useRegistry(backend);

    async function getReferrers(repo: string, digest: string, query = ""): Promise<{ manifests: RefDescriptor[]; filters?: string }> {
      const res = await h.req("GET", `/v2/${repo}/referrers/${digest}${query}`);
      assert.equal(res.status, 200, `referrers: ${res.status} ${res.text().slice(0, 200)}`);
      assert.equal(res.header("content-type"), MediaTypes.OciIndex, "Content-Type must be the OCI index media type");
      const body = res.json();
      assert.equal(body.schemaVersion, 2);
      assert.equal(body.mediaType, MediaTypes.OciIndex);
      assert.ok(Array.isArray(body.manifests), "manifests must be an array");
      return { manifests: body.manifests, filters: res.header("oci-filters-applied") };
    }

    /** Pushes an artifact manifest with `subject`, by digest; returns its descriptor as the spec says it must be listed. */
    async function pushReferrer(
      repo: string,
      subject: Descriptor,
      opts: { artifactType?: string; configType?: string; annotations?: Record<string, string> },
    ): Promise<RefDescriptor> {
      let config: Descriptor = EMPTY_DESC;
      await pushBlob(h, repo, EMPTY_JSON);
      if (opts.configType) {
        const cfg = json({ kind: opts.configType, n: Math.random() });
        await pushBlob(h, repo, cfg);
        config = descriptorOf(cfg, opts.configType);
      }
      const layer = randomBlob(64);
      await pushBlob(h, repo, layer);
      const m = ociManifestBytes(config, [descriptorOf(layer, "application/octet-stream")], {
        artifactType: opts.artifactType,
        subject,
        annotations: opts.annotations,
      });
      const d = sha256(m);
      const res = await pushManifest(h, repo, d, m, MediaTypes.OciManifest);
      assert.equal(res.header("oci-subject"), subject.digest, "PUT of a manifest with subject must return OCI-Subject");
      const desc: RefDescriptor = { mediaType: MediaTypes.OciManifest, digest: d, size: m.length, artifactType: opts.artifactType ?? config.mediaType };
      if (opts.annotations) desc.annotations = opts.annotations;
      return desc;
    }

    function byDigest(list: RefDescriptor[]): Map<string, RefDescriptor> {
      return new Map(list.map((d) => [d.digest, d]));
    }

    function assertDescriptor(got: RefDescriptor | undefined, want: RefDescriptor): void {
      assert.ok(got, `referrer ${want.digest} missing`);
      assert.equal(got.mediaType, want.mediaType);
      assert.equal(got.digest, want.digest);
      assert.equal(got.size, want.size);
      assert.equal(got.artifactType, want.artifactType);
      assert.deepEqual(got.annotations ?? {}, want.annotations ?? {});
    }

    it("an unknown digest gives 200 and an empty index", async () => {
      const repo = repoName();
      await pushImage(h, repo, "x");
      const { manifests } = await getReferrers(repo, unknownDigest());
      assert.deepEqual(manifests, []);
    });

    it("a repository without any content gives 200 and an empty index (never 404)", async () => {
      const res = await h.req("GET", `/v2/${repoName("ghost")}/referrers/${unknownDigest()}`);
      assert.notEqual(res.status, 404, "a registry supporting referrers MUST NOT return 404");
      assert.equal(res.status, 200);
      assert.deepEqual(res.json().manifests, []);
    });

    it("an invalid digest is 400", async () => {
      const repo = repoName();
      await pushImage(h, repo, "x");
      for (const d of ["sha256:abc", `sha256:${"Z".repeat(64)}`, "notadigest"]) {
        const res = await h.req("GET", `/v2/${repo}/referrers/${d}`);
        expectError(res, 400, ["DIGEST_INVALID", "MANIFEST_INVALID", "UNSUPPORTED"], d);
      }
    });

    it("lists every referrer with mediaType, digest, size, artifactType and annotations", async () => {
      const repo = repoName();
      const subject = await pushImage(h, repo, "subject");
      const sbom = await pushReferrer(repo, subject.desc, {
        artifactType: SBOM,
        annotations: { "org.example.kind": "sbom", "org.opencontainers.image.created": "2024-01-01T00:00:00Z" },
      });
      const sig = await pushReferrer(repo, subject.desc, { artifactType: SIG, annotations: { "org.example.kind": "sig" } });
      const cfgTyped = await pushReferrer(repo, subject.desc, { configType: CFG_TYPE });
      const bare = await pushReferrer(repo, subject.desc, {});
      assert.equal(cfgTyped.artifactType, CFG_TYPE);
      assert.equal(bare.artifactType, MediaTypes.OciEmpty);
      const { manifests } = await getReferrers(repo, subject.digest);
      assert.equal(manifests.length, 4);
      const m = byDigest(manifests);
      assertDescriptor(m.get(sbom.digest), sbom);
      assertDescriptor(m.get(sig.digest), sig);
      assertDescriptor(m.get(cfgTyped.digest), cfgTyped);
      assertDescriptor(m.get(bare.digest), bare);
    });

    it("an index referrer is listed with the index media type; artifactType omitted when the index has none", async () => {
      const repo = repoName();
      const subject = await pushImage(h, repo, "subject");
      const child = await pushImage(h, repo);
      const withType = ociIndexBytes([child.desc], { subject: subject.desc, artifactType: INDEX_TYPE, annotations: { k: "typed" } });
      const without = ociIndexBytes([child.desc], { subject: subject.desc, annotations: { k: "untyped" } });
      for (const b of [withType, without]) {
        const res = await pushManifest(h, repo, sha256(b), b, MediaTypes.OciIndex);
        assert.equal(res.header("oci-subject"), subject.digest);
      }
      const { manifests } = await getReferrers(repo, subject.digest);
      const m = byDigest(manifests);
      assert.equal(manifests.length, 2);
      assertDescriptor(m.get(sha256(withType)), {
        mediaType: MediaTypes.OciIndex,
        digest: sha256(withType),
        size: withType.length,
        artifactType: INDEX_TYPE,
        annotations: { k: "typed" },
      });
      const u = m.get(sha256(without));
      assertDescriptor(u, { mediaType: MediaTypes.OciIndex, digest: sha256(without), size: without.length, annotations: { k: "untyped" } });
      assert.ok(!("artifactType" in (u as object)), "artifactType must be omitted for an index without one");
    });

    it("referrers may be pushed before their subject exists", async () => {
      const repo = repoName();
      const future = { mediaType: MediaTypes.OciManifest, digest: sha256(randomBlob(16)), size: 16 };
      const ref = await pushReferrer(repo, future, { artifactType: SBOM });
      const { manifests } = await getReferrers(repo, future.digest);
      assert.equal(manifests.length, 1);
      assertDescriptor(manifests[0], ref);
    });

    it("?artifactType= filters and sets OCI-Filters-Applied: artifactType", async () => {
      const repo = repoName();
      const subject = await pushImage(h, repo, "s");
      const a1 = await pushReferrer(repo, subject.desc, { artifactType: SBOM, annotations: { n: "1" } });
      const a2 = await pushReferrer(repo, subject.desc, { artifactType: SBOM, annotations: { n: "2" } });
      await pushReferrer(repo, subject.desc, { artifactType: SIG });
      const cfg = await pushReferrer(repo, subject.desc, { configType: CFG_TYPE });
      const r = await getReferrers(repo, subject.digest, `?artifactType=${encodeURIComponent(SBOM)}`);
      assert.equal(r.filters, "artifactType");
      assert.deepEqual(r.manifests.map((d) => d.digest).sort(), [a1.digest, a2.digest].sort());
      const byCfg = await getReferrers(repo, subject.digest, `?artifactType=${encodeURIComponent(CFG_TYPE)}`);
      assert.equal(byCfg.filters, "artifactType");
      assert.deepEqual(
        byCfg.manifests.map((d) => d.digest),
        [cfg.digest],
      );
      const none = await getReferrers(repo, subject.digest, `?artifactType=${encodeURIComponent("application/vnd.example.none")}`);
      assert.equal(none.filters, "artifactType");
      assert.deepEqual(none.manifests, []);
      const all = await getReferrers(repo, subject.digest);
      assert.equal(all.filters, undefined, "no OCI-Filters-Applied without a filter");
      assert.equal(all.manifests.length, 4);
    });

    it("referrers are scoped to the repository", async () => {
      const a = repoName("a");
      const b = repoName("b");
      const subject = await pushImage(h, a, "s");
      await pushImage(h, b, "other");
      await pushReferrer(a, subject.desc, { artifactType: SBOM });
      assert.equal((await getReferrers(a, subject.digest)).manifests.length, 1);
      assert.deepEqual((await getReferrers(b, subject.digest)).manifests, []);
    });

    it("manifests without a subject, or with another subject, are not listed", async () => {
      const repo = repoName();
      const s1 = await pushImage(h, repo, "s1");
      const s2 = await pushImage(h, repo, "s2");
      const r2 = await pushReferrer(repo, s2.desc, { artifactType: SIG });
      const { manifests } = await getReferrers(repo, s1.digest);
      assert.deepEqual(manifests, []);
      assert.deepEqual(
        (await getReferrers(repo, s2.digest)).manifests.map((d) => d.digest),
        [r2.digest],
      );
    });

    it("a deleted referrer disappears from the list", async () => {
      const repo = repoName();
      const subject = await pushImage(h, repo, "s");
      const keep = await pushReferrer(repo, subject.desc, { artifactType: SBOM });
      const gone = await pushReferrer(repo, subject.desc, { artifactType: SIG });
      assert.equal((await getReferrers(repo, subject.digest)).manifests.length, 2);
      assert.equal((await h.req("DELETE", `/v2/${repo}/manifests/${gone.digest}`)).status, 202);
      const { manifests } = await getReferrers(repo, subject.digest);
      assert.deepEqual(
        manifests.map((d) => d.digest),
        [keep.digest],
      );
    });

    it("a referrer pushed by tag is listed too, and stays listed after the tag is deleted", async () => {
      const repo = repoName();
      const subject = await pushImage(h, repo, "s");
      await pushBlob(h, repo, EMPTY_JSON);
      const m = ociManifestBytes(EMPTY_DESC, [], { artifactType: SBOM, subject: subject.desc });
      const res = await pushManifest(h, repo, "sbom-tag", m, MediaTypes.OciManifest);
      assert.equal(res.header("oci-subject"), subject.digest);
      assert.deepEqual(
        (await getReferrers(repo, subject.digest)).manifests.map((d) => d.digest),
        [sha256(m)],
      );
      assert.equal((await h.req("DELETE", `/v2/${repo}/manifests/sbom-tag`)).status, 202);
      assert.deepEqual(
        (await getReferrers(repo, subject.digest)).manifests.map((d) => d.digest),
        [sha256(m)],
      );
    });

    it("a sha512 subject digest works", async () => {
      const repo = repoName();
      const fake = randomBlob(32);
      const subject = { mediaType: MediaTypes.OciManifest, digest: sha512(fake), size: 32 };
      const ref = await pushReferrer(repo, subject, { artifactType: SBOM });
      const { manifests } = await getReferrers(repo, subject.digest);
      assert.equal(manifests.length, 1);
      assertDescriptor(manifests[0], ref);
    });
  });
}
