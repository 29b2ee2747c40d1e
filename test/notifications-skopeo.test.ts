/**
 * Webhooks with a real client: skopeo pushes and pulls an image through `strata serve`, and a
 * receiver records the envelopes; every field is checked against the image. The same push and
 * pull through Debian's docker-registry (CNCF distribution 2.8) give the envelopes existing
 * receivers are written for: Strata's must have the same shape (the same keys at every level,
 * the same Content-Type, the same events). A receiver that never answers does not stop a push.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { eventsOf, type Receiver, startReceiver } from "@strata/registry/test-helpers/webhook.js";
import { type BuiltImage, buildOciLayout, whiteoutImageLayers } from "./helpers/oci-layout.js";
import { freePort, mustRun, run, type StrataServer, startStrata } from "./helpers/strata.js";

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- event JSON
type Json = any;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

async function pushAndPull(host: string, image: BuiltImage, work: string, repo: string): Promise<void> {
  await mustRun("skopeo", ["copy", "--dest-tls-verify=false", "--preserve-digests", `oci:${image.dir}:v1`, `docker://${host}/${repo}:v1`], { timeoutMs: 120_000 });
  await mustRun("skopeo", ["copy", "--src-tls-verify=false", `docker://${host}/${repo}:v1`, `oci:${join(work, `back-${host.replace(/\W/g, "")}`)}:v1`], { timeoutMs: 120_000 });
}

/** The keys at every level of an event, e.g. ["action", "target.digest", ...]. */
function shape(e: Json, prefix = ""): string[] {
  return Object.entries(e)
    .flatMap(([k, v]) => (v && typeof v === "object" && !Array.isArray(v) ? shape(v, `${prefix}${k}.`) : [`${prefix}${k}`]))
    .sort();
}

/** "action kind" of an event: push/pull of a manifest or a blob. */
const kindOf = (e: Json) => `${e.action} ${e.target.mediaType === "application/octet-stream" ? "blob" : "manifest"}`;

describe("notifications with skopeo", () => {
  let rx: Receiver;
  let srv: StrataServer;
  let work: string;
  let image: BuiltImage;
  const repo = "events/app";

  before(async () => {
    rx = await startReceiver();
    work = await mkdtemp(join(tmpdir(), "strata-events-"));
    image = await buildOciLayout(join(work, "src"), "v1", whiteoutImageLayers());
    srv = await startStrata({
      storage: { driver: "filesystem", filesystem: { root: join(work, "data") } },
      notifications: { endpoints: [{ name: "ci", url: rx.url, headers: { Authorization: "Bearer from-config" } }] },
    });
  });
  after(async () => {
    await srv?.stop();
    await rx?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("a push and a pull arrive as distribution envelopes, every field matching the image", async () => {
    const t0 = Date.now();
    await pushAndPull(srv.host, image, work, repo);
    const blobs = [...image.layers.map((l) => ({ digest: l.digest, size: l.size })), { digest: JSON.parse(image.manifest.toString()).config.digest as string, size: image.config.length }];
    // each blob pushed and pulled, the manifest pushed and pulled
    await rx.waitFor((r) => eventsOf(r).length >= 2 * blobs.length + 2, 20_000, "every push and pull");
    const t1 = Date.now();
    const events = eventsOf(rx.received);
    for (const r of rx.received) {
      assert.equal(r.headers["content-type"], "application/vnd.docker.distribution.events.v1+json");
      assert.equal(r.headers.authorization, "Bearer from-config");
    }
    const instance = events[0].source.instanceID;
    for (const e of events) {
      assert.match(e.id, UUID);
      assert.ok(Date.parse(e.timestamp) >= t0 && Date.parse(e.timestamp) <= t1);
      assert.equal(e.target.repository, repo);
      assert.equal(e.target.size, e.target.length);
      assert.match(e.request.id, UUID);
      assert.match(e.request.addr, /^127\.0\.0\.1:\d+$/);
      assert.equal(e.request.host, srv.host);
      assert.match(e.request.useragent, /^skopeo\//);
      assert.deepEqual(e.actor, {});
      assert.equal(e.source.addr.split(":")[1], srv.host.split(":")[1]);
      assert.equal(e.source.instanceID, instance);
    }
    const manifestDigest = image.manifestDigest;
    const push = events.filter((e) => kindOf(e) === "push manifest");
    assert.equal(push.length, 1);
    assert.deepEqual(push[0].target, {
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      size: image.manifest.length,
      digest: manifestDigest,
      length: image.manifest.length,
      repository: repo,
      url: `http://${srv.host}/v2/${repo}/manifests/${manifestDigest}`,
      tag: "v1",
    });
    assert.equal(push[0].request.method, "PUT");
    const pull = events.filter((e) => kindOf(e) === "pull manifest");
    assert.equal(pull.length, 1);
    assert.deepEqual(pull[0].target, push[0].target);
    assert.equal(pull[0].request.method, "GET");
    for (const action of ["push", "pull"]) {
      const got = events
        .filter((e) => kindOf(e) === `${action} blob`)
        .map((e) => ({ digest: e.target.digest, size: e.target.size, url: e.target.url }))
        .sort((a, b) => a.digest.localeCompare(b.digest));
      const want = blobs.map((b) => ({ ...b, url: `http://${srv.host}/v2/${repo}/blobs/${b.digest}` })).sort((a, b) => a.digest.localeCompare(b.digest));
      assert.deepEqual(got, want, `${action}: one event per blob`);
    }
  });

  it("has the shape of CNCF distribution's envelopes for the same push and pull", async (t) => {
    if ((await run("sh", ["-c", "command -v docker-registry"])).code !== 0) return t.skip("docker-registry (Debian package) is not installed");
    const peerRx = await startReceiver();
    const dir = await mkdtemp(join(tmpdir(), "strata-events-peer-"));
    const port = await freePort();
    const cfg = join(dir, "config.yml");
    await writeFile(
      cfg,
      [
        "version: 0.1",
        "log: {level: error, accesslog: {disabled: true}}",
        `storage: {filesystem: {rootdirectory: ${dir}/data}, delete: {enabled: true}}`,
        `http: {addr: "127.0.0.1:${port}"}`,
        "notifications:",
        "  endpoints:",
        `    - {name: peer, url: "${peerRx.url}", headers: {Authorization: [Bearer from-config]}, timeout: 2s, threshold: 5, backoff: 1s}`,
        "",
      ].join("\n"),
    );
    const child = spawn("docker-registry", ["serve", cfg], { stdio: "ignore" });
    try {
      for (let i = 0; ; i++) {
        try {
          if ((await fetch(`http://127.0.0.1:${port}/v2/`)).ok) break;
        } catch {
          /* starting */
        }
        if (i > 100) throw new Error("docker-registry did not start");
        await new Promise((r) => setTimeout(r, 100));
      }
      await pushAndPull(`127.0.0.1:${port}`, image, work, repo);
      const ours = eventsOf(rx.received);
      await peerRx.waitFor((r) => eventsOf(r).length >= ours.length, 20_000, "the peer's events");
      const theirs = eventsOf(peerRx.received);
      assert.equal(peerRx.received[0].headers["content-type"], rx.received[0].headers["content-type"]);
      const count = (evs: Json[]) => evs.reduce((m: Record<string, number>, e: Json) => ((m[kindOf(e)] = (m[kindOf(e)] ?? 0) + 1), m), {});
      assert.deepEqual(count(ours), count(theirs), "the same events");
      for (const kind of Object.keys(count(theirs))) {
        const a = ours.find((e) => kindOf(e) === kind);
        const b = theirs.find((e) => kindOf(e) === kind);
        assert.deepEqual(shape(a), shape(b), `${kind}: the same keys at every level`);
        assert.equal(a.target.mediaType, b.target.mediaType, `${kind}: media type`);
      }
      const digests = (evs: Json[]) => evs.map((e: Json) => `${kindOf(e)} ${e.target.digest} ${e.target.size} ${e.target.tag ?? ""}`).sort();
      assert.deepEqual(digests(ours), digests(theirs), "the same targets");
    } finally {
      child.kill("SIGTERM");
      await new Promise((r) => child.once("exit", r));
      await peerRx.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("a receiver that never answers does not stop a skopeo push", async () => {
    const dead = await startReceiver("hang");
    const w = await mkdtemp(join(tmpdir(), "strata-events-dead-"));
    const s = await startStrata({
      storage: { driver: "filesystem", filesystem: { root: join(w, "data") } },
      notifications: { endpoints: [{ name: "dead", url: dead.url, timeoutMs: 120_000, maxAttempts: 1, queueSize: 2 }] },
    });
    try {
      await pushAndPull(s.host, image, w, "dead/app");
      assert.ok(dead.hanging >= 1, "the receiver held a delivery open during the push");
      const metrics = await (await fetch(`${s.url}/metrics`)).text();
      const queued = Number(/^strata_notifications_queued\{endpoint="dead"\} (\d+)$/m.exec(metrics)?.[1]);
      assert.ok(queued <= 2, `queue bounded: ${queued}`);
      assert.ok(Number(/^strata_notifications_failed_total\{endpoint="dead",reason="dropped"\} (\d+)$/m.exec(metrics)?.[1]) > 0, "overflow counted");
    } finally {
      await s.stop();
      await dead.close();
      await rm(w, { recursive: true, force: true });
    }
  });
});
