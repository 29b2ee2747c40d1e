/**
 * Strata as a pull-through cache, with real peers: the upstream is Debian's docker-registry
 * (CNCF distribution 2.8) holding images skopeo pushed; skopeo pulls them through a `strata
 * serve` configured with `proxy`. Faults come from a small HTTP stub in front of the upstream
 * (429/500 answers, throttled or corrupted blob bodies) or from stopping the upstream.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { missing } from "@strata/client/test-helpers/tools.js";
import { writeAuthFiles } from "@strata/registry/test-helpers/auth.js";
import { fleetConfig } from "./helpers/fleet.js";
import { type BuiltImage, buildOciLayout, sha256 } from "./helpers/oci-layout.js";
import { mustRun, type StrataServer, startStrata } from "./helpers/strata.js";
import { type Peer, startPeer, startStub, type Stub } from "./helpers/upstream.js";

const skopeo = (...args: string[]) => mustRun("skopeo", args, { timeoutMs: 180_000 });

async function push(image: BuiltImage, host: string, ref: string): Promise<void> {
  await skopeo("copy", "--quiet", "--dest-tls-verify=false", "--preserve-digests", `oci:${image.dir}:${image.tag}`, `docker://${host}/${ref}`);
}

/** Pulls through `host` into an OCI layout; returns the manifest digest and the blob files. */
async function pull(host: string, ref: string, dest: string): Promise<{ digest: string; blobs: string[] }> {
  await skopeo("copy", "--quiet", "--src-tls-verify=false", "--preserve-digests", `docker://${host}/${ref}`, `oci:${dest}:x`);
  const index = JSON.parse(await readFile(join(dest, "index.json"), "utf8"));
  const blobs = (await readdir(join(dest, "blobs", "sha256"))).sort();
  for (const b of blobs) assert.equal(sha256(await readFile(join(dest, "blobs", "sha256", b))), `sha256:${b}`, `blob ${b} verifies`);
  return { digest: index.manifests[0].digest, blobs };
}

function imageBlobs(image: BuiltImage): string[] {
  const m = JSON.parse(image.manifest.toString());
  return [image.manifestDigest, m.config.digest, ...image.layers.map((l) => l.digest)].map((d: string) => d.slice(7)).sort();
}

async function randomImage(dir: string, tag: string, sizes: number[]): Promise<BuiltImage> {
  return buildOciLayout(
    dir,
    tag,
    sizes.map((n, i) => [{ type: "file" as const, path: `data${i}.bin`, content: randomBytes(n) }]),
  );
}

/** Blob GETs (status 200) in a distribution access log, per digest. */
function blobGets(log: string[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const l of log) {
    const m = /"GET \/v2\/\S+\/blobs\/(sha256:[0-9a-f]{64}) HTTP\/[\d.]+" 200 /.exec(l);
    if (m) out.set(m[1], (out.get(m[1]) ?? 0) + 1);
  }
  return out;
}

/** Sizes of the blob data files in a filesystem root, by digest. */
async function storedBlobs(root: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const base = join(root, "v2", "blobs", "sha256");
  for (const pre of await readdir(base).catch(() => [] as string[])) {
    for (const hex of await readdir(join(base, pre)).catch(() => [] as string[])) {
      const st = await stat(join(base, pre, hex, "data")).catch(() => undefined);
      if (st) out.set(`sha256:${hex}`, st.size);
    }
  }
  return out;
}

async function until(what: string, ms: number, cond: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const metric = (text: string, re: RegExp) => Number(re.exec(text)?.[1] ?? "NaN");

describe("pull-through cache", { skip: missing("skopeo", "docker-registry") }, () => {
  let work: string;
  let peer: Peer;
  let small: BuiltImage;
  const mirrors: StrataServer[] = [];
  const stubs: Stub[] = [];

  const mirror = async (proxy: Record<string, unknown>): Promise<StrataServer & { root: string }> => {
    const root = await mkdtemp(join(work, "mirror-"));
    const s = await startStrata({ storage: { driver: "filesystem", filesystem: { root } }, proxy });
    mirrors.push(s);
    return Object.assign(s, { root });
  };

  before(async () => {
    work = await mkdtemp(join(tmpdir(), "strata-proxy-"));
    peer = await startPeer();
    small = await randomImage(join(work, "small"), "v1", [200_000, 50_000]);
    await push(small, peer.host, "team/app:v1");
    await push(small, peer.host, "library/hello:v1");
  });
  after(async () => {
    for (const m of mirrors) await m.stop();
    for (const s of stubs) await s.close();
    await peer?.destroy();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("skopeo pulls through the mirror: identical digests, pushes refused, Docker Hub names get library/", async () => {
    const m = await mirror({ upstreams: [{ ns: "docker.io", url: peer.url }], ttlSeconds: 600 });
    const got = await pull(m.host, "team/app:v1", join(work, "p1"));
    assert.equal(got.digest, small.manifestDigest);
    assert.deepEqual(got.blobs, imageBlobs(small));
    // single-component name: the upstream is asked for library/hello
    const hello = await pull(m.host, "hello:v1", join(work, "p2"));
    assert.equal(hello.digest, small.manifestDigest);
    assert.ok(peer.accessLog().some((l) => l.includes("GET /v2/library/hello/manifests/v1 ")), "upstream asked for library/hello");
    // containerd's ns parameter picks the upstream
    const r = await fetch(`${m.url}/v2/library/hello/manifests/v1?ns=docker.io`, { headers: { Accept: "application/vnd.oci.image.manifest.v1+json" } });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get("docker-content-digest"), small.manifestDigest);
    await r.arrayBuffer();
    // read-only
    const put = await fetch(`${m.url}/v2/team/app/manifests/v2`, { method: "PUT", body: small.manifest, headers: { "Content-Type": "application/vnd.oci.image.manifest.v1+json" } });
    assert.equal(put.status, 405);
    const body = (await put.json()) as { errors: { code: string; message: string }[] };
    assert.equal(body.errors[0].code, "UNSUPPORTED");
    assert.match(body.errors[0].message, /read-only pull-through cache/);
    const upload = await fetch(`${m.url}/v2/team/app/blobs/uploads/`, { method: "POST" });
    assert.equal(upload.status, 405);
    await upload.arrayBuffer();
    // a name the upstream does not have
    const unknown = await fetch(`${m.url}/v2/team/nothing/manifests/v1`);
    assert.equal(unknown.status, 404);
    assert.equal(((await unknown.json()) as { errors: { code: string }[] }).errors[0].code, "MANIFEST_UNKNOWN");
  });

  it("with the upstream stopped, cached tags and blobs still pull; /healthz stays 200; the stale answer carries a warning", async () => {
    const m = await mirror({ remoteurl: peer.url, ttlSeconds: 0 });
    const first = await pull(m.host, "team/app:v1", join(work, "s1"));
    await peer.stop();
    try {
      const again = await pull(m.host, "team/app:v1", join(work, "s2"));
      assert.equal(again.digest, first.digest);
      assert.deepEqual(again.blobs, first.blobs);
      const r = await fetch(`${m.url}/v2/team/app/manifests/v1`, { headers: { Accept: "application/vnd.oci.image.manifest.v1+json" } });
      assert.equal(r.status, 200);
      assert.match(r.headers.get("warning") ?? "", /^110 /);
      await r.arrayBuffer();
      assert.equal((await fetch(`${m.url}/healthz`)).status, 200);
      assert.match(m.logs(), /could not revalidate a tag/);
      // nothing cached: an error, not a hang
      const cold = await fetch(`${m.url}/v2/team/other/manifests/v1`);
      assert.equal(cold.status, 503);
      assert.equal(((await cold.json()) as { errors: { code: string }[] }).errors[0].code, "UNAVAILABLE");
      const metrics = await (await fetch(`${m.url}/metrics`)).text();
      assert.ok(metric(metrics, /^strata_proxy_hits_total\{kind="blob"\} (\d+)/m) >= 3, "blob hits counted");
      assert.ok(metric(metrics, /^strata_proxy_misses_total\{kind="blob"\} (\d+)/m) >= 3, "blob misses counted");
      assert.ok(metric(metrics, /^strata_proxy_upstream_bytes_total (\d+)/m) >= 250_000, "upstream bytes counted");
      assert.ok(metric(metrics, /^strata_proxy_upstream_errors_total\{reason="unreachable"\} (\d+)/m) >= 1, "upstream errors counted");
    } finally {
      await peer.start();
    }
  });

  it("tags/list shows the upstream's tags, and the cached ones while the upstream is down", async () => {
    const m = await mirror({ remoteurl: peer.url });
    await push(small, peer.host, "team/listed:a");
    await push(small, peer.host, "team/listed:b");
    await pull(m.host, "team/listed:a", join(work, "l1"));
    const listed = JSON.parse(await skopeo("list-tags", "--tls-verify=false", `docker://${m.host}/team/listed`));
    assert.deepEqual(listed.Tags, ["a", "b"], "b was never pulled: it comes from upstream");
    await peer.stop();
    try {
      const cached = JSON.parse(await skopeo("list-tags", "--tls-verify=false", `docker://${m.host}/team/listed`));
      assert.deepEqual(cached.Tags, ["a"]);
    } finally {
      await peer.start();
    }
  });

  it("a tag moved upstream is seen after the TTL, not before", async () => {
    const m = await mirror({ remoteurl: peer.url, ttlSeconds: 2 });
    const moved = await randomImage(join(work, "moved"), "v1", [30_000]);
    await push(small, peer.host, "team/moving:v1");
    const a = await pull(m.host, "team/moving:v1", join(work, "t1"));
    assert.equal(a.digest, small.manifestDigest);
    await push(moved, peer.host, "team/moving:v1");
    const t0 = Date.now();
    const b = await pull(m.host, "team/moving:v1", join(work, "t2"));
    if (Date.now() - t0 < 1500) assert.equal(b.digest, small.manifestDigest, "within the TTL the cached answer is served");
    await new Promise((r) => setTimeout(r, 2200));
    const c = await pull(m.host, "team/moving:v1", join(work, "t3"));
    assert.equal(c.digest, moved.manifestDigest, "after the TTL the new manifest is served");
  });

  for (const fault of ["429", "500"] as const) {
    it(`an upstream answering ${fault} does not break cached pulls`, async () => {
      const stub = await startStub(peer.url);
      stubs.push(stub);
      const m = await mirror({ remoteurl: stub.url, ttlSeconds: 0 });
      const first = await pull(m.host, "team/app:v1", join(work, `f${fault}a`));
      stub.mode = fault;
      const seen = stub.requests.length;
      const again = await pull(m.host, "team/app:v1", join(work, `f${fault}b`));
      assert.equal(again.digest, first.digest);
      assert.ok(stub.requests.length > seen, "the tag was revalidated upstream");
      const cold = await fetch(`${m.url}/v2/team/other/manifests/v1`);
      assert.equal(cold.status, fault === "429" ? 429 : 503);
      assert.equal(((await cold.json()) as { errors: { code: string }[] }).errors[0].code, fault === "429" ? "TOOMANYREQUESTS" : "UNAVAILABLE");
    });
  }

  it("an upstream that never answers delays a cached tag by the revalidation deadline only", async () => {
    const stub = await startStub(peer.url);
    stubs.push(stub);
    const m = await mirror({ remoteurl: stub.url, ttlSeconds: 0 });
    await pull(m.host, "team/app:v1", join(work, "h1"));
    stub.mode = "hang";
    const t0 = Date.now();
    const r = await fetch(`${m.url}/v2/team/app/manifests/v1`, { headers: { Accept: "application/vnd.oci.image.manifest.v1+json" } });
    const took = Date.now() - t0;
    assert.equal(r.status, 200);
    assert.equal(r.headers.get("docker-content-digest"), small.manifestDigest);
    assert.match(r.headers.get("warning") ?? "", /^110 /);
    await r.arrayBuffer();
    assert.ok(took < 8000, `answered after ${took} ms`);
    const blob = await fetch(`${m.url}/v2/team/app/blobs/${small.layers[0].digest}`);
    assert.equal(sha256(Buffer.from(await blob.arrayBuffer())), small.layers[0].digest, "cached blobs need no upstream");
  });

  it("a blob whose bytes do not match its digest aborts the client's response and is not stored", async () => {
    const stub = await startStub(peer.url);
    stubs.push(stub);
    const m = await mirror({ remoteurl: stub.url });
    stub.mode = "corrupt";
    const layer = small.layers[0];
    const r = await fetch(`${m.url}/v2/team/app/blobs/${layer.digest}`);
    assert.equal(r.status, 200);
    await assert.rejects(r.arrayBuffer(), "the body fails before its end");
    const hex = layer.digest.slice(7);
    await assert.rejects(stat(join(m.root, "v2", "blobs", "sha256", hex.slice(0, 2), hex, "data")), "nothing stored");
    stub.mode = "pass";
    const ok = await fetch(`${m.url}/v2/team/app/blobs/${layer.digest}`);
    assert.equal(sha256(Buffer.from(await ok.arrayBuffer())), layer.digest);
    // the client may have its verified end a moment before the blob is committed
    await until("the blob committed", 5000, async () => (await stat(join(m.root, "v2", "blobs", "sha256", hex.slice(0, 2), hex, "data")).catch(() => undefined))?.size === layer.size);
  });

  it("the first byte reaches the first client before the upstream transfer ends", async () => {
    const big = await randomImage(join(work, "slow"), "v1", [3 * 1024 * 1024]);
    await push(big, peer.host, "team/slow:v1");
    const stub = await startStub(peer.url);
    stubs.push(stub);
    stub.mode = "throttle";
    stub.rate = 1024 * 1024; // ~3 s for the layer
    const m = await mirror({ remoteurl: stub.url });
    const layer = big.layers[0];
    const t0 = Date.now();
    const r = await fetch(`${m.url}/v2/team/slow/blobs/${layer.digest}`);
    const reader = r.body!.getReader();
    const first = await reader.read();
    const firstByteAt = Date.now();
    assert.ok(first.value && first.value.length > 0);
    const parts: Buffer[] = [Buffer.from(first.value)];
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      parts.push(Buffer.from(value));
    }
    assert.equal(sha256(Buffer.concat(parts)), layer.digest);
    // the client's HTTP stack ends the body at Content-Length, the stub notes its end a throttle step later
    for (let i = 0; i < 40 && stub.blobEnds.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(stub.blobEnds.length, 1, stub.requests.join("\n"));
    assert.ok(firstByteAt < stub.blobEnds[0] - 1000, `first byte after ${firstByteAt - t0} ms, upstream finished after ${stub.blobEnds[0] - t0} ms`);
  });

  it("8 concurrent cold pulls of an image fetch each blob from the upstream once", async () => {
    const img = await randomImage(join(work, "conc"), "v1", [6 * 1024 * 1024, 4 * 1024 * 1024, 2 * 1024 * 1024]);
    await push(img, peer.host, "team/conc:v1");
    const m = await mirror({ remoteurl: peer.url });
    const before = blobGets(peer.accessLog());
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => pull(m.host, "team/conc:v1", join(work, `c${i}`))));
    for (const r of results) {
      assert.equal(r.digest, img.manifestDigest);
      assert.deepEqual(r.blobs, imageBlobs(img));
    }
    const after = blobGets(peer.accessLog());
    const m0 = JSON.parse(img.manifest.toString());
    for (const d of [m0.config.digest, ...img.layers.map((l) => l.digest)] as string[]) {
      assert.equal((after.get(d) ?? 0) - (before.get(d) ?? 0), 1, `${d} fetched upstream once`);
    }
  });

  it("maxBytes evicts the least recently pulled content and frees its storage", async () => {
    const m = await mirror({ remoteurl: peer.url, cache: { maxBytes: 350_000, intervalSeconds: 1 } });
    await pull(m.host, "team/app:v1", join(work, "e1"));
    const later = await randomImage(join(work, "later"), "v1", [200_000]);
    await push(later, peer.host, "team/later:v1");
    await new Promise((r) => setTimeout(r, 50));
    await pull(m.host, "team/later:v1", join(work, "e2"));
    const total = async () => [...(await storedBlobs(m.root)).values()].reduce((a, b) => a + b, 0);
    assert.ok((await total()) > 350_000, "both images stored at first");
    await until("eviction", 10_000, async () => (await total()) <= 350_000);
    const held = await storedBlobs(m.root);
    for (const d of imageBlobs(later)) assert.ok(held.has(`sha256:${d}`), `recently pulled ${d} kept`);
    assert.ok(imageBlobs(small).some((d) => !held.has(`sha256:${d}`)), "some of the older image was evicted");
    const metrics = await (await fetch(`${m.url}/metrics`)).text();
    assert.ok(metric(metrics, /^strata_proxy_evicted_bytes_total\{kind="blob"\} (\d+)/m) >= 100_000);
    // evicted content comes back from upstream
    const again = await pull(m.host, "team/app:v1", join(work, "e3"));
    assert.equal(again.digest, small.manifestDigest);
  });

  it("evictAfterDays evicts content not pulled for that long, links and data", async () => {
    const m = await mirror({ remoteurl: peer.url, cache: { evictAfterDays: 2 / 86_400, intervalSeconds: 1 } });
    await pull(m.host, "team/app:v1", join(work, "d1"));
    assert.ok((await storedBlobs(m.root)).size >= 3);
    await until("expiry", 10_000, async () => (await storedBlobs(m.root)).size === 0);
    await assert.rejects(stat(join(m.root, "v2", "repositories", "team", "app", "_manifests", "tags", "v1", "current", "link")), "tag link removed");
    await assert.rejects(stat(join(m.root, "v2", "repositories", "team", "app", "_layers", "sha256", small.layers[0].digest.slice(7), "link")), "blob link removed");
    const again = await pull(m.host, "team/app:v1", join(work, "d2"));
    assert.equal(again.digest, small.manifestDigest);
  });

  for (const scheme of ["token", "basic"] as const) {
    it(`an upstream Strata with ${scheme} authentication: the mirror authenticates with its configured credentials, never logging them`, async () => {
      const files = await writeAuthFiles(await mkdtemp(join(work, "auth-")), { mirror: "mirror-secret-pw" });
      const auth: Record<string, unknown> = { htpasswd: { path: files.htpasswd } };
      if (scheme === "token") auth.token = { signingKey: files.signingKey };
      const up = await startStrata({ storage: { driver: "filesystem", filesystem: { root: await mkdtemp(join(work, "authup-")) } }, auth });
      mirrors.push(up);
      const challenge = (await fetch(`${up.url}/v2/`)).headers.get("www-authenticate") ?? "";
      assert.match(challenge, scheme === "token" ? /^Bearer realm=/ : /^Basic /);
      await skopeo("copy", "--quiet", "--dest-tls-verify=false", "--dest-creds", "mirror:mirror-secret-pw", "--preserve-digests", `oci:${small.dir}:v1`, `docker://${up.host}/team/app:v1`);
      const m = await mirror({ remoteurl: up.url, username: "mirror", password: "mirror-secret-pw" });
      const got = await pull(m.host, "team/app:v1", join(work, `a-${scheme}`));
      assert.equal(got.digest, small.manifestDigest);
      const anon = await mirror({ remoteurl: up.url });
      const r = await fetch(`${anon.url}/v2/team/app/manifests/v1`);
      assert.equal(r.status, 503, "no credentials: the upstream's refusal is an error, not a hang");
      await r.arrayBuffer();
      for (const s of [m, anon]) assert.ok(!s.logs().includes("mirror-secret-pw"), "the password is never logged");
    });
  }

  it("two replicas sharing S3 and Redis fetch each blob from the upstream once for 8 concurrent cold pulls", { skip: !(process.env.STRATA_TEST_BACKENDS ?? "").split(",").includes("s3") && "needs STRATA_TEST_BACKENDS=s3 (S3 server and Redis)" }, async () => {
    const fleet = await fleetConfig();
    try {
      const img = await randomImage(join(work, "fleet"), "v1", [5 * 1024 * 1024, 3 * 1024 * 1024]);
      await push(img, peer.host, "team/fleet:v1");
      const replicas = [await startStrata({ ...fleet.config, proxy: { remoteurl: peer.url } }), await startStrata({ ...fleet.config, proxy: { remoteurl: peer.url } })];
      mirrors.push(...replicas);
      const before = blobGets(peer.accessLog());
      const results = await Promise.all(Array.from({ length: 8 }, (_, i) => pull(replicas[i % 2].host, "team/fleet:v1", join(work, `fl${i}`))));
      for (const r of results) assert.equal(r.digest, img.manifestDigest);
      const after = blobGets(peer.accessLog());
      const m0 = JSON.parse(img.manifest.toString());
      for (const d of [m0.config.digest, ...img.layers.map((l) => l.digest)] as string[]) {
        assert.equal((after.get(d) ?? 0) - (before.get(d) ?? 0), 1, `${d} fetched upstream once by the fleet`);
      }
    } finally {
      await fleet.cleanup();
    }
  });
});
