/**
 * Garbage collection across processes: `strata gc --config FILE` collecting for two running
 * `strata serve` replicas sharing S3 and Redis (both then answer 404 for what it deleted and
 * still serve the rest byte for byte; a second collector at the same time is refused or
 * waits its turn), and a registry collecting on its own schedule (gc.intervalSeconds) with its
 * metrics and log line.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { stringify } from "yaml";
import { fleetConfig } from "./helpers/fleet.js";
import { type StrataServer, startStrata, strata, uniqueName } from "./helpers/strata.js";
import { sha256 } from "./helpers/oci-layout.js";

const enabled = (process.env.STRATA_TEST_BACKENDS ?? "").split(",").includes("s3");
const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";

async function pushBlob(url: string, repo: string, data: Buffer): Promise<void> {
  const res = await fetch(`${url}/v2/${repo}/blobs/uploads/?digest=${sha256(data)}`, { method: "POST", body: data });
  assert.equal(res.status, 201, await res.text());
}

async function pushImage(url: string, repo: string, tag: string, layers: Buffer[]): Promise<{ manifest: Buffer; config: Buffer }> {
  const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", nonce: randomBytes(6).toString("hex") }));
  for (const b of [config, ...layers]) await pushBlob(url, repo, b);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha256(config), size: config.length },
      layers: layers.map((l) => ({ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: sha256(l), size: l.length })),
    }),
  );
  const res = await fetch(`${url}/v2/${repo}/manifests/${tag}`, { method: "PUT", body: manifest, headers: { "Content-Type": OCI_MANIFEST } });
  assert.equal(res.status, 201, await res.text());
  return { manifest, config };
}

const status = async (url: string, method = "GET") => (await fetch(url, { method })).status;

describe("strata gc for two replicas sharing S3 and Redis", { skip: enabled ? false : "fleet tests need STRATA_TEST_BACKENDS to include s3 (CI sets it)" }, () => {
  let a: StrataServer;
  let b: StrataServer;
  let cleanup: () => Promise<void>;

  before(async () => {
    const f = await fleetConfig();
    cleanup = f.cleanup;
    [a, b] = await Promise.all([startStrata(f.config), startStrata(f.config)]);
  });
  after(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await cleanup?.();
  });

  it("frees the unshared blobs of a deleted image; both replicas answer 404 for them and serve the other image", async () => {
    const repo = `gc/${uniqueName()}`;
    const shared = randomBytes(4000);
    const onlyOld = randomBytes(5000);
    const old = await pushImage(a.url, repo, "old", [shared, onlyOld]);
    const kept = await pushImage(b.url, repo, "kept", [shared]);
    for (const srv of [a, b]) assert.equal(await status(`${srv.url}/v2/${repo}/blobs/${sha256(onlyOld)}`, "HEAD"), 200); // warm caches
    assert.equal(await status(`${a.url}/v2/${repo}/manifests/${sha256(old.manifest)}`, "DELETE"), 202);
    await new Promise((r) => setTimeout(r, 1100)); // object store times are whole seconds

    // two collectors at once: one at a time (the other refused or serialised), never both deleting
    const [r1, r2] = await Promise.all([strata(["gc", "--config", a.configFile, "--delay", "0"]), strata(["gc", "--config", a.configFile, "--delay", "0"])]);
    const outputs = [r1, r2];
    assert.ok(outputs.some((r) => r.code === 0), `${r1.stderr}${r2.stderr}`);
    for (const r of outputs) if (r.code !== 0) assert.match(r.stderr, /another garbage collection is running/);
    const all = outputs.map((r) => r.stdout).join("");
    for (const d of [sha256(onlyOld), sha256(old.config), sha256(old.manifest)]) {
      assert.equal(all.match(new RegExp(`^deleted blob ${d} `, "gm"))?.length, 1, `deleted exactly once: ${d}\n${all}`);
    }
    assert.doesNotMatch(all, new RegExp(`blob ${sha256(shared)}`));
    assert.match(all, /freed \d+ bytes/);

    for (const srv of [a, b]) {
      assert.equal(await status(`${srv.url}/v2/${repo}/blobs/${sha256(onlyOld)}`, "HEAD"), 404);
      assert.equal(await status(`${srv.url}/v2/${repo}/blobs/${sha256(onlyOld)}`), 404);
      const m = await fetch(`${srv.url}/v2/${repo}/manifests/kept`, { headers: { Accept: OCI_MANIFEST } });
      assert.ok(Buffer.from(await m.arrayBuffer()).equals(kept.manifest));
      const l = await fetch(`${srv.url}/v2/${repo}/blobs/${sha256(shared)}`);
      assert.ok(Buffer.from(await l.arrayBuffer()).equals(shared));
    }
  });
});

describe("a registry collecting on its schedule (gc.intervalSeconds)", () => {
  let srv: StrataServer;
  let root: string;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), "strata-gc-schedule-"));
    srv = await startStrata({ storage: { driver: "filesystem", filesystem: { root } }, gc: { intervalSeconds: 1, delaySeconds: 0 }, log: { level: "info" } });
  });
  after(async () => {
    await srv?.stop();
    await rm(root, { recursive: true, force: true });
  });

  it("frees a deleted image's blobs by itself, counts them in its metrics and logs each run", async () => {
    const repo = `gc/${uniqueName()}`;
    const layer = randomBytes(3000);
    const img = await pushImage(srv.url, repo, "v1", [layer]);
    assert.equal(await status(`${srv.url}/v2/${repo}/manifests/${sha256(img.manifest)}`, "DELETE"), 202);
    const deadline = Date.now() + 15_000;
    while ((await status(`${srv.url}/v2/${repo}/blobs/${sha256(layer)}`, "HEAD")) !== 404) {
      assert.ok(Date.now() < deadline, "the scheduled collection did not free the layer within 15 s");
      await new Promise((r) => setTimeout(r, 200));
    }
    // the blob goes during the run; the run's counters are added when it ends
    let metrics: string;
    for (;;) {
      metrics = await (await fetch(`${srv.url}/metrics`)).text();
      const freed = Number(/^strata_gc_bytes_freed_total (\d+)/m.exec(metrics)?.[1]);
      if (freed >= layer.length + img.manifest.length) break;
      assert.ok(Date.now() < deadline, `the run that freed the layer did not count its bytes within 15 s:\n${metrics}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.match(srv.logs(), /garbage collection finished/);
    // and `strata gc` keeps off the directory this registry serves
    const cfg = join(root, "..", `${uniqueName()}.yml`);
    await writeFile(cfg, stringify({ storage: { driver: "filesystem", filesystem: { root } } }));
    const r = await strata(["gc", "--config", cfg]);
    await rm(cfg, { force: true });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /serves/);
  });
});
