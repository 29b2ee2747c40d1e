/**
 * Retries, backoff and resumed blob downloads: a fault-injecting proxy in front of a real
 * distribution registry.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { verifyStore } from "../src/commands/verify.js";
import type { PullEvent } from "../src/progress.js";
import { pull } from "../src/pull.js";
import { RegistryClient, registryBaseUrl } from "../src/registry/client.js";
import { parseRetryAfter } from "../src/registry/retry.js";
import { Store } from "../src/store/store.js";
import { type Distribution, freePort, startDistribution } from "./helpers/distribution.js";
import { type FaultProxy, startFaultProxy } from "./helpers/fault-proxy.js";
import { bigLayer, type PushedImage, pushImage } from "./helpers/images.js";
import { checkStore } from "./helpers/store-check.js";
import { missing } from "./helpers/tools.js";

const FAST = { baseDelayMs: 5, maxDelayMs: 50 };

describe("registry client: scheme selection", () => {
  it("uses HTTP for loopback and --insecure-registry hosts, HTTPS otherwise; docker.io -> registry-1.docker.io", () => {
    assert.equal(registryBaseUrl("127.0.0.1:5000"), "http://127.0.0.1:5000");
    assert.equal(registryBaseUrl("127.9.8.7"), "http://127.9.8.7");
    assert.equal(registryBaseUrl("localhost:5000"), "http://localhost:5000");
    assert.equal(registryBaseUrl("[::1]:5000"), "http://[::1]:5000");
    assert.equal(registryBaseUrl("registry.example:5000"), "https://registry.example:5000");
    assert.equal(registryBaseUrl("registry.example:5000", ["registry.example:5000"]), "http://registry.example:5000");
    assert.equal(registryBaseUrl("registry.example", ["registry.example"]), "http://registry.example");
    assert.equal(registryBaseUrl("docker.io"), "https://registry-1.docker.io");
    assert.equal(registryBaseUrl("128.0.0.1:5000"), "https://128.0.0.1:5000");
  });
  it("parses Retry-After in seconds and as an HTTP date", () => {
    assert.equal(parseRetryAfter("3"), 3000);
    assert.equal(parseRetryAfter(new Date(10_000).toUTCString(), 4_000), 6000);
    assert.equal(parseRetryAfter("soon"), undefined);
  });
});

describe("registry client: retries and resume through a faulty network", { skip: missing("docker-registry", "skopeo") }, () => {
  let reg: Distribution;
  let proxy: FaultProxy;
  let img: PushedImage;
  const roots: string[] = [];
  const newRoot = async () => {
    const r = await mkdtemp(join(tmpdir(), "strata-root-"));
    roots.push(r);
    return r;
  };
  const viaProxy = (ref: string) => ref.replace(reg.host, proxy.host);

  before(async () => {
    reg = await startDistribution();
    proxy = await startFaultProxy(reg.port);
    img = await pushImage(reg.host, "test/faults", "v1", [{ tar: await bigLayer("f1", 600_000) }, { tar: await bigLayer("f2", 300_000) }]);
  });
  after(async () => {
    await proxy?.stop();
    await reg?.stop();
    for (const r of roots) await rm(r, { recursive: true, force: true });
  });

  it("retries 503 and 429 (honouring Retry-After) and succeeds", async () => {
    proxy.faults.push({ match: /\/manifests\/v1$/, status: 503, retryAfter: "0", times: 2 });
    proxy.faults.push({ match: new RegExp(img.blobDigests[1]), status: 429, retryAfter: "0", times: 1 });
    const start = proxy.requests.length;
    const r = await pull(viaProxy(img.ref), { root: await newRoot(), retry: FAST });
    assert.equal(r.imageId, img.configDigest);
    const reqs = proxy.requests.slice(start);
    assert.equal(reqs.filter((q) => q.url.endsWith("/manifests/v1")).length, 3);
    assert.equal(reqs.filter((q) => q.url.includes(img.blobDigests[1])).length, 2);
  });

  it("gives up after the bounded number of attempts with a clear error", async () => {
    proxy.faults.push({ match: /\/manifests\/v1$/, status: 503, times: 100 });
    const start = proxy.requests.length;
    await assert.rejects(pull(viaProxy(img.ref), { root: await newRoot(), retry: { ...FAST, attempts: 4 } }), /UNAVAILABLE: injected/);
    assert.equal(proxy.requests.slice(start).length, 4);
    proxy.faults.length = 0;
  });

  it("resumes a blob download cut off mid-way with Range and still verifies the whole blob", async () => {
    proxy.faults.push({ match: new RegExp(`blobs/${img.blobDigests[0]}`), cutAfter: 200_000, times: 1 });
    const start = proxy.requests.length;
    const events: PullEvent[] = [];
    const root = await newRoot();
    const r = await pull(viaProxy(img.ref), { root, retry: FAST, progress: { event: (e) => events.push(e), stop() {} } });
    assert.equal(r.imageId, img.configDigest);
    const blobReqs = proxy.requests.slice(start).filter((q) => q.url.includes(img.blobDigests[0]));
    assert.equal(blobReqs.length, 2);
    assert.equal(blobReqs[0].range, undefined);
    const m = /^bytes=(\d+)-$/.exec(blobReqs[1].range ?? "");
    assert.ok(m && Number(m[1]) > 0 && Number(m[1]) <= 200_000, blobReqs[1].range);
    assert.ok(events.some((e) => e.type === "resume" && e.offset === Number(m![1])));
    assert.ok((await verifyStore(await Store.open(root))).every((c) => c.ok));
    assert.deepEqual(await checkStore(root), []);
  });

  it("a stalled blob download times out and resumes", async () => {
    proxy.faults.push({ match: new RegExp(`blobs/${img.blobDigests[1]}`), stallAfter: 100_000, times: 1 });
    const start = proxy.requests.length;
    const root = await newRoot();
    const r = await pull(viaProxy(img.ref), { root, retry: FAST, idleTimeoutMs: 500 });
    assert.equal(r.imageId, img.configDigest);
    const blobReqs = proxy.requests.slice(start).filter((q) => q.url.includes(img.blobDigests[1]));
    assert.equal(blobReqs.length, 2);
    assert.match(blobReqs[1].range ?? "", /^bytes=[1-9]\d*-$/);
    assert.ok((await verifyStore(await Store.open(root))).every((c) => c.ok));
  });

  it("copes with a registry that ignores Range on the resumed request (skips what it already has)", async () => {
    proxy.faults.push({ match: new RegExp(`blobs/${img.blobDigests[0]}`), cutAfter: 150_000, times: 1 });
    proxy.faults.push({ match: new RegExp(`blobs/${img.blobDigests[0]}`), dropRange: true, times: 1 });
    const root = await newRoot();
    const r = await pull(viaProxy(img.ref), { root, retry: FAST });
    assert.equal(r.imageId, img.configDigest);
    assert.ok((await verifyStore(await Store.open(root))).every((c) => c.ok));
  });

  it("a registry nobody listens on fails after bounded retries with one clear line", async () => {
    const port = await freePort();
    const client = new RegistryClient({ domain: `127.0.0.1:${port}`, retry: FAST });
    await assert.rejects(client.getManifest("x/y", "latest"), (e: Error) => {
      assert.match(e.message, new RegExp(`cannot reach registry http://127.0.0.1:${port}: ECONNREFUSED`));
      assert.ok(!e.message.includes("\n"));
      return true;
    });
  });
});
