/**
 * Garbage collection (services/gc.ts) on every backend: what a run frees (exactly the blobs no
 * tag reaches any more, their bytes counted, the files gone), what it keeps (shared layers,
 * index children, referrers, young content), dry runs, blob DELETE freeing only at the next
 * run, caches and a second replica answering 404 for collected blobs.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { createRegistry } from "../src/app.js";
import type { GcReport } from "../src/services/gc.js";
import { backends } from "./helpers/backends.js";
import { expectError, type Harness, startRegistry } from "./helpers/http.js";
import type { StorageDriver } from "../src/storage/driver.js";
import { memoryDriver } from "../src/storage/memory.js";
import {
  assertBytesEqual,
  type Descriptor,
  imageParts,
  MediaTypes,
  ociIndexBytes,
  ociManifestBytes,
  pushBlob,
  pushImage,
  pushManifest,
  pushParts,
  putManifest,
  repoName,
  sha256,
} from "./helpers/oci.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const deleted = (r: GcReport) => new Set(r.actions.filter((a) => a.kind === "blob").map((a) => a.digest as string));

async function pull(h: Harness, repo: string, ref: string, mediaType: string): Promise<{ manifest: Buffer; blobs: Map<string, Buffer> }> {
  const res = await h.req("GET", `/v2/${repo}/manifests/${ref}`, { headers: { Accept: mediaType } });
  assert.equal(res.status, 200, `GET ${repo}:${ref}: ${res.text().slice(0, 200)}`);
  const m = res.json<{ config: Descriptor; layers: Descriptor[] }>();
  const blobs = new Map<string, Buffer>();
  for (const d of [m.config, ...m.layers]) {
    const b = await h.req("GET", `/v2/${repo}/blobs/${d.digest}`);
    assert.equal(b.status, 200, `GET blob ${d.digest}`);
    assert.equal(sha256(b.body), d.digest);
    blobs.set(d.digest, b.body);
  }
  return { manifest: res.body, blobs };
}

for (const backend of backends()) {
  describe(`garbage collection [${backend.name}]`, () => {
    // Object stores give modification times in whole seconds (Swift rounds them up): a run with
    // delay 0 sees content of the current second as young, so let that second pass.
    const settle = () => (backend.name === "s3" ? new Promise((r) => setTimeout(r, 1100)) : Promise.resolve());
    const blobFile = (h: Harness, digest: string) => {
      const hex = digest.slice("sha256:".length);
      return join(h.reg.config.storage.filesystem.root, "v2", "blobs", "sha256", hex.slice(0, 2), hex, "data");
    };

    it("frees exactly the blobs of a deleted image that no other image shares; the other still pulls byte-identical", async () => {
      const h = await startRegistry(backend);
      try {
        const repo = repoName("gc");
        const shared = imageParts(2, 3000);
        // image A: config A, layers [s0, s1, a]; image B: config B, layers [s0, s1, b]
        const a = imageParts(1, 5000);
        const b = imageParts(1, 7000);
        await pushParts(h, repo, shared);
        await pushParts(h, repo, a);
        await pushParts(h, repo, b);
        const manifestA = ociManifestBytes(a.configDesc, [...shared.layerDescs, ...a.layerDescs]);
        const manifestB = ociManifestBytes(b.configDesc, [...shared.layerDescs, ...b.layerDescs]);
        await pushManifest(h, repo, "a", manifestA, MediaTypes.OciManifest);
        await pushManifest(h, repo, "b", manifestB, MediaTypes.OciManifest);
        // shared.config is linked but referenced by nothing: it goes too
        const before = await pull(h, repo, "b", MediaTypes.OciManifest);

        // nothing young is collected with the default delay
        const young = await h.reg.collectGarbage();
        assert.equal(young.actions.length, 0, JSON.stringify(young.actions));

        const del = await h.req("DELETE", `/v2/${repo}/manifests/${sha256(manifestA)}`);
        assert.equal(del.status, 202);
        await settle();
        const dry = await h.reg.collectGarbage({ delaySeconds: 0, dryRun: true });
        const expected = new Set<string>([a.configDesc.digest, a.layerDescs[0].digest, shared.configDesc.digest, sha256(manifestA)]);
        assert.deepEqual(deleted(dry), expected, "the dry run names the same blobs");
        assert.equal((await h.req("HEAD", `/v2/${repo}/blobs/${a.layerDescs[0].digest}`)).status, 200, "a dry run deletes nothing");

        const r = await h.reg.collectGarbage({ delaySeconds: 0 });
        assert.deepEqual(deleted(r), expected);
        assert.equal(r.blobsDeleted, 4);
        assert.equal(r.bytesFreed, a.config.length + 5000 + shared.config.length + manifestA.length);
        for (const d of expected) {
          assert.equal((await h.req("HEAD", `/v2/${repo}/blobs/${d}`)).status, 404, `collected ${d} answers 404`);
          if (backend.name === "filesystem") assert.equal(existsSync(blobFile(h, d)), false, `file of ${d} is gone`);
        }
        for (const d of [...shared.layerDescs, b.configDesc, ...b.layerDescs]) {
          if (backend.name === "filesystem") assert.ok(existsSync(blobFile(h, d.digest)), `file of ${d.digest} stays`);
        }
        const after = await pull(h, repo, "b", MediaTypes.OciManifest);
        assertBytesEqual(after.manifest, before.manifest, "manifest b");
        for (const [d, bytes] of before.blobs) assertBytesEqual(after.blobs.get(d)!, bytes, `blob ${d}`);
        assert.equal((await h.req("GET", `/v2/${repo}/manifests/${sha256(manifestA)}`, { headers: { Accept: MediaTypes.OciManifest } })).status, 404);

        const again = await h.reg.collectGarbage({ delaySeconds: 0 });
        assert.equal(again.actions.length, 0, "a second run finds nothing");
      } finally {
        await h.close();
      }
    });

    it("keeps multi-arch index children and referrers of tagged manifests; untagged=delete collects untagged manifests only", async () => {
      const h = await startRegistry(backend);
      try {
        const repo = repoName("gc");
        const amd = await pushImage(h, repo);
        const arm = await pushImage(h, repo);
        const index = ociIndexBytes([
          { ...amd.desc, platform: { architecture: "amd64", os: "linux" } },
          { ...arm.desc, platform: { architecture: "arm64", os: "linux" } },
        ]);
        await pushManifest(h, repo, "multi", index, MediaTypes.OciIndex);
        const indexDesc: Descriptor = { mediaType: MediaTypes.OciIndex, digest: sha256(index), size: index.length };
        const sig = await pushImage(h, repo, undefined, { subject: indexDesc, artifactType: "application/vnd.example.sig" });
        const sigOfSig = await pushImage(h, repo, undefined, { subject: sig.desc, artifactType: "application/vnd.example.attest" });
        const loose = await pushImage(h, repo); // untagged, nothing refers to it

        await settle();
        const keep = await h.reg.collectGarbage({ delaySeconds: 0, untagged: "keep" });
        assert.equal(keep.blobsDeleted, 0, `untagged=keep keeps every revision: ${JSON.stringify(keep.actions)}`);

        const r = await h.reg.collectGarbage({ delaySeconds: 0, untagged: "delete" });
        const gone = deleted(r);
        assert.deepEqual(gone, new Set([loose.digest, loose.parts.configDesc.digest, loose.parts.layerDescs[0].digest]));
        assert.ok(r.actions.some((a) => a.kind === "revision" && a.digest === loose.digest), "the untagged revision link goes");
        for (const img of [amd, arm, sig, sigOfSig]) {
          const got = await pull(h, repo, img.digest, MediaTypes.OciManifest);
          assertBytesEqual(got.manifest, img.manifest, `manifest ${img.digest}`);
        }
        const refs = await h.req("GET", `/v2/${repo}/referrers/${indexDesc.digest}`);
        assert.equal(refs.status, 200);
        assert.deepEqual(
          refs.json<{ manifests: Descriptor[] }>().manifests.map((d) => d.digest),
          [sig.digest],
        );
        assert.equal((await h.req("GET", `/v2/${repo}/manifests/${loose.digest}`, { headers: { Accept: MediaTypes.OciManifest } })).status, 404);

        // untagging the index makes the whole tree garbage
        assert.equal((await h.req("DELETE", `/v2/${repo}/manifests/multi`)).status, 202);
        await settle();
        const all = await h.reg.collectGarbage({ delaySeconds: 0, untagged: "delete" });
        for (const img of [amd, arm, sig, sigOfSig]) assert.ok(deleted(all).has(img.digest), `${img.digest} collected once nothing tags the index`);
        assert.ok(deleted(all).has(indexDesc.digest));
      } finally {
        await h.close();
      }
    });

    it("a blob DELETE only unlinks; the bytes go at the next run unless another repository links them", async () => {
      const h = await startRegistry(backend);
      try {
        const one = repoName("gc");
        const two = repoName("gc");
        const blob = Buffer.from(`only linked ${one}`);
        const both = Buffer.from(`linked twice ${one}`);
        await pushBlob(h, one, blob);
        await pushBlob(h, one, both);
        await pushBlob(h, two, both);
        for (const d of [sha256(blob), sha256(both)]) assert.equal((await h.req("DELETE", `/v2/${one}/blobs/${d}`)).status, 202);
        assert.equal((await h.req("HEAD", `/v2/${two}/blobs/${sha256(both)}`)).status, 200);
        await settle();
        const r = await h.reg.collectGarbage({ delaySeconds: 0 });
        // both are unreferenced by any manifest: the link in `two` goes as well
        assert.deepEqual(deleted(r), new Set([sha256(blob), sha256(both)]));
        assert.equal(r.bytesFreed, blob.length + both.length);
        assert.equal((await h.req("HEAD", `/v2/${two}/blobs/${sha256(both)}`)).status, 404);
        const metrics = (await h.req("GET", "/metrics")).text();
        assert.match(metrics, /strata_gc_bytes_freed_total \d+/);
        assert.match(metrics, /strata_gc_blobs_deleted_total [1-9]/);
        assert.match(metrics, /strata_gc_last_run_timestamp_seconds [1-9]/);
      } finally {
        await h.close();
      }
    });

    if (backend.name === "s3") {
      it("the Redis descriptor cache and a second replica answer 404 for collected blobs", async () => {
        const h = await startRegistry(backend);
        const second = await createRegistry(h.reg.config);
        const { default: request } = await import("supertest");
        try {
          const repo = repoName("gc");
          const img = await pushImage(h, repo, "v1");
          const layer = img.parts.layerDescs[0].digest;
          // warm the caches through both replicas
          assert.equal((await h.req("HEAD", `/v2/${repo}/blobs/${layer}`)).status, 200);
          assert.equal((await request(second.app.callback()).head(`/v2/${repo}/blobs/${layer}`)).status, 200);
          assert.equal((await h.req("DELETE", `/v2/${repo}/manifests/${img.digest}`)).status, 202);
          await settle();
          const r = await second.collectGarbage({ delaySeconds: 0 });
          assert.ok(deleted(r).has(layer));
          assert.equal((await h.req("HEAD", `/v2/${repo}/blobs/${layer}`)).status, 404);
          assert.equal((await h.req("GET", `/v2/${repo}/blobs/${layer}`)).status, 404);
          assert.equal((await request(second.app.callback()).get(`/v2/${repo}/blobs/${layer}`)).status, 404);
        } finally {
          await second.close();
          await h.close();
        }
      });
    }
  });
}

/**
 * A driver that stops the first call of `op` on a key matching `match` until released, to put
 * a push or a collection at an exact point of the other.
 */
function gated(inner: StorageDriver, op: "list" | "putContent", match: (key: string) => boolean) {
  let hit!: () => void;
  let release!: () => void;
  const reached = new Promise<void>((r) => (hit = r));
  const open = new Promise<void>((r) => (release = r));
  let armed = false;
  const driver: StorageDriver = {
    name: inner.name,
    getContent: (k, s) => inner.getContent(k, s),
    putContent: async (k, c, s) => {
      if (armed && op === "putContent" && match(k)) {
        armed = false;
        hit();
        await open;
      }
      return inner.putContent(k, c, s);
    },
    reader: (k, o) => inner.reader(k, o),
    writer: (k, o) => inner.writer(k, o),
    stat: (k, s) => inner.stat(k, s),
    list: async (k, o) => {
      if (armed && op === "list" && match(k)) {
        armed = false;
        hit();
        await open;
      }
      return inner.list(k, o);
    },
    move: (k, d, s) => inner.move(k, d, s),
    delete: (k, s) => inner.delete(k, s),
  };
  return { driver, reached, release, arm: () => (armed = true) };
}

describe("garbage collection: the race rule, both orders made exact [memory]", () => {
  const memory = backends({ STRATA_TEST_BACKENDS: "memory" })[0];
  const imageOf = (parts: ReturnType<typeof imageParts>) => ociManifestBytes(parts.configDesc, parts.layerDescs);

  it("a blob a PUT checks after the collector's mark is protected: the PUT succeeds and the run keeps the blob", async () => {
    const g = gated(memoryDriver(), "list", (k) => k === "/v2/blobs");
    const h = await startRegistry(memory, undefined, { driver: g.driver });
    try {
      const repo = repoName("gc");
      const parts = imageParts(2, 1000);
      await pushParts(h, repo, parts); // linked, referenced by nothing: garbage for a delay-0 run
      await sleep(5);
      g.arm();
      const run = h.reg.collectGarbage({ delaySeconds: 0 });
      await g.reached; // marked (nothing reaches the blobs), about to list and sweep them
      for (const d of [parts.configDesc, ...parts.layerDescs]) assert.equal((await h.req("HEAD", `/v2/${repo}/blobs/${d.digest}`)).status, 200);
      await pushManifest(h, repo, "v1", imageOf(parts), MediaTypes.OciManifest);
      g.release();
      const r = await run;
      assert.equal(r.blobsDeleted, 0, JSON.stringify(r.actions));
      assert.ok(r.protectedSkipped >= 3, `protected: ${r.protectedSkipped}`);
      await pull(h, repo, "v1", MediaTypes.OciManifest);
      const next = await h.reg.collectGarbage({ delaySeconds: 0 });
      assert.equal(next.blobsDeleted, 0, "the next run finds the image tagged");
    } finally {
      await h.close();
    }
  });

  it("a PUT in flight when a run starts is waited for: the run marks what it wrote", async () => {
    const g = gated(memoryDriver(), "putContent", (k) => k.includes("/_manifests/revisions/"));
    const h = await startRegistry(memory, undefined, { driver: g.driver });
    try {
      const repo = repoName("gc");
      const parts = imageParts(1, 1000);
      await pushParts(h, repo, parts);
      await sleep(5);
      g.arm();
      const put = h.req("PUT", `/v2/${repo}/manifests/v1`, { headers: { "Content-Type": MediaTypes.OciManifest }, body: imageOf(parts) });
      await g.reached; // references checked, revision not yet written
      let finished = false;
      const run = h.reg.collectGarbage({ delaySeconds: 0 }).finally(() => (finished = true));
      await sleep(300);
      assert.equal(finished, false, "the run waits for the push in flight");
      g.release();
      assert.equal((await put).status, 201);
      const r = await run;
      assert.equal(r.blobsDeleted, 0, JSON.stringify(r.actions));
      await pull(h, repo, "v1", MediaTypes.OciManifest);
    } finally {
      await h.close();
    }
  });

  it("a blob swept before the PUT checks it makes the PUT fail with MANIFEST_BLOB_UNKNOWN", async () => {
    const h = await startRegistry(memory);
    try {
      const repo = repoName("gc");
      const parts = imageParts(1, 1000);
      await pushParts(h, repo, parts);
      await sleep(5);
      assert.equal((await h.req("HEAD", `/v2/${repo}/blobs/${parts.layerDescs[0].digest}`)).status, 200); // the client skips the upload
      const r = await h.reg.collectGarbage({ delaySeconds: 0 });
      assert.equal(r.blobsDeleted, 2);
      expectError(await putManifest(h, repo, "v1", imageOf(parts), MediaTypes.OciManifest), [400, 404], "MANIFEST_BLOB_UNKNOWN");
    } finally {
      await h.close();
    }
  });
});
