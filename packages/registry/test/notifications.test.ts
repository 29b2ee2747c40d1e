/**
 * Webhook notifications, in-process: every field of distribution's envelope for push, pull,
 * delete and mount (compared with the requests that caused them), CloudEvents, retries with
 * backoff, per-endpoint filters, a receiver that never answers (pushes go on, the queue stays
 * bounded, the overflow is counted), and endpoint headers kept out of the logs.
 * The same envelopes from a real client (skopeo) and from CNCF distribution are compared in
 * test/notifications-skopeo.test.ts.
 */
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import request from "supertest";
import { notificationEndpointSchema, type RegistryConfig } from "../src/config.js";
import { EVENTS_MEDIA_TYPE } from "../src/services/notifications.js";
import { backends } from "./helpers/backends.js";
import { expectStatus, type Harness, startRegistry } from "./helpers/http.js";
import { MediaTypes, pushBlob, pushImage, randomBlob, repoName } from "./helpers/oci.js";
import { eventsOf, type Receiver, startReceiver } from "./helpers/webhook.js";

const memory = backends({ STRATA_TEST_BACKENDS: "memory" })[0];
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function endpoint(url: string, extra: Record<string, unknown> = {}) {
  return notificationEndpointSchema.parse({ url, timeoutMs: 2000, backoffMs: 50, ...extra });
}

function withEndpoints(...eps: ReturnType<typeof endpoint>[]) {
  return (c: RegistryConfig) => {
    c.notifications.endpoints = eps;
  };
}

async function metric(h: Harness, name: string, labels: string): Promise<number> {
  const text = (await request(h.reg.app.callback()).get("/metrics")).text;
  const m = new RegExp(`^${name}\\{${labels}\\} (\\S+)$`, "m").exec(text);
  return m ? Number(m[1]) : NaN;
}

describe("notifications: distribution envelope", () => {
  let rx: Receiver;
  let h: Harness;
  before(async () => {
    rx = await startReceiver();
    h = await startRegistry(memory, withEndpoints(endpoint(rx.url, { name: "ci", headers: { Authorization: "Bearer hook-token", "X-Team": ["a", "b"] } })));
  });
  after(async () => {
    await h?.close();
    await rx?.close();
  });

  it("a manifest push, pull and delete each arrive with every field", async () => {
    const repo = repoName("events");
    const t0 = Date.now();
    const img = await pushImage(h, repo, "v1");
    const pull = await h.req("GET", `/v2/${repo}/manifests/v1`, { headers: { "User-Agent": "events-test/1.0", Accept: MediaTypes.OciManifest } });
    expectStatus(pull, 200);
    expectStatus(await h.req("DELETE", `/v2/${repo}/manifests/${img.digest}`), 202);
    const t1 = Date.now();
    const manifestEvents = () => eventsOf(rx.received).filter((e) => e.target.repository === repo && e.target.mediaType !== "application/octet-stream");
    await rx.waitFor(() => manifestEvents().length >= 3, 10_000, "push, pull and delete of the manifest");
    const [push, pulled, del] = manifestEvents();

    for (const r of rx.received) {
      assert.equal(r.headers["content-type"], EVENTS_MEDIA_TYPE);
      assert.equal(r.headers.authorization, "Bearer hook-token", "configured headers are sent");
      assert.equal(r.headers["x-team"], "a, b");
      assert.equal(r.body.events.length, 1, "one event per envelope, as distribution sends them");
    }
    for (const e of [push, pulled, del]) {
      assert.match(e.id, UUID);
      const ts = Date.parse(e.timestamp);
      assert.ok(ts >= t0 && ts <= t1, `timestamp ${e.timestamp} during the test`);
      assert.match(e.request.id, UUID);
      assert.match(e.request.addr, /^127\.0\.0\.1:\d+$|^\[::ffff:127\.0\.0\.1\]:\d+$/);
      assert.match(e.request.host, /^127\.0\.0\.1:\d+$/);
      assert.deepEqual(e.actor, {}, "no user on an open registry");
      assert.match(e.source.addr, /^[^:]+:\d+$/);
      assert.match(e.source.instanceID, UUID);
    }
    assert.equal(push.action, "push");
    assert.deepEqual(push.target, {
      mediaType: MediaTypes.OciManifest,
      size: img.manifest.length,
      digest: img.digest,
      length: img.manifest.length,
      repository: repo,
      url: `http://${push.request.host}/v2/${repo}/manifests/${img.digest}`,
      tag: "v1",
    });
    assert.equal(push.request.method, "PUT");
    assert.equal(pulled.action, "pull");
    assert.deepEqual(pulled.target, { ...push.target, url: `http://${pulled.request.host}/v2/${repo}/manifests/${img.digest}` });
    assert.equal(pulled.request.method, "GET");
    assert.equal(pulled.request.useragent, "events-test/1.0");
    assert.notEqual(pulled.request.id, push.request.id);
    assert.equal(del.action, "delete");
    assert.deepEqual(del.target, { digest: img.digest, repository: repo });
    assert.equal(del.request.method, "DELETE");
    assert.equal(pulled.source.instanceID, push.source.instanceID);
  });

  it("blob push, pull and cross-repository mount arrive as blob events", async () => {
    const a = repoName("events");
    const b = repoName("events");
    const data = randomBlob(777);
    const digest = await pushBlob(h, a, data);
    expectStatus(await h.req("GET", `/v2/${a}/blobs/${digest}`), 200);
    expectStatus(await h.req("HEAD", `/v2/${a}/blobs/${digest}`), 200);
    expectStatus(await h.req("POST", `/v2/${b}/blobs/uploads/?mount=${digest}&from=${a}`), 201);
    const mine = () => eventsOf(rx.received).filter((e) => e.target.digest === digest);
    await rx.waitFor(() => mine().length >= 3, 10_000, "blob push, pull and mount");
    await new Promise((r) => setTimeout(r, 100));
    const [push, pull, mount] = mine();
    assert.equal(mine().length, 3, "a HEAD is no pull");
    // (each request of this harness reaches the registry through a new listener, hence its own host)
    const blobTarget = (repo: string, host: string) => ({ mediaType: "application/octet-stream", size: 777, digest, length: 777, repository: repo, url: `http://${host}/v2/${repo}/blobs/${digest}` });
    assert.equal(push.action, "push");
    assert.deepEqual(push.target, blobTarget(a, push.request.host));
    assert.equal(pull.action, "pull");
    assert.deepEqual(pull.target, blobTarget(a, pull.request.host));
    assert.equal(mount.action, "mount");
    assert.deepEqual(mount.target, { ...blobTarget(b, mount.request.host), fromRepository: a });
  });

  it("counts what it sent", async () => {
    await pushImage(h, repoName("events"), "m");
    assert.ok(await h.reg.notifier.idle(5000));
    assert.ok((await metric(h, "strata_notifications_sent_total", 'endpoint="ci"')) >= 1);
    assert.equal(await metric(h, "strata_notifications_queued", 'endpoint="ci"'), 0);
  });
});

describe("notifications: formats, filters, retries", () => {
  it("CloudEvents: structured JSON with the event as data", async () => {
    const rx = await startReceiver();
    const h = await startRegistry(memory, withEndpoints(endpoint(rx.url, { format: "cloudevents", events: ["push"], ignoredMediaTypes: ["application/octet-stream"] })));
    try {
      const repo = repoName("ce");
      const img = await pushImage(h, repo, "v2");
      await h.req("GET", `/v2/${repo}/manifests/v2`);
      await rx.waitFor((r) => r.length >= 1);
      assert.ok(await h.reg.notifier.idle(5000));
      assert.equal(rx.received.length, 1, "only the manifest push: pulls and blob events filtered out");
      const r = rx.received[0];
      assert.equal(r.headers["content-type"], "application/cloudevents+json; charset=utf-8");
      const ce = r.body;
      assert.equal(ce.specversion, "1.0");
      assert.match(ce.id, UUID);
      assert.equal(ce.type, "io.strata.registry.manifest.push");
      assert.match(ce.source, /^strata:\/\/[^/]+:\d+$/);
      assert.equal(ce.subject, `${repo}:v2`);
      assert.equal(ce.datacontenttype, "application/json");
      assert.ok(!Number.isNaN(Date.parse(ce.time)));
      assert.equal(ce.data.id, ce.id);
      assert.equal(ce.data.target.digest, img.digest);
      assert.equal(ce.data.target.tag, "v2");
    } finally {
      await h.close();
      await rx.close();
    }
  });

  it("a failing receiver gets the event again, with backoff, until it takes it", async () => {
    const rx = await startReceiver("fail:2");
    const h = await startRegistry(memory, withEndpoints(endpoint(rx.url, { name: "flaky", events: ["push"], ignoredMediaTypes: ["application/octet-stream"], backoffMs: 100 })));
    try {
      const img = await pushImage(h, repoName("retry"), "v1");
      await rx.waitFor((r) => r.length >= 3, 10_000, "three attempts");
      assert.ok(await h.reg.notifier.idle(5000));
      assert.equal(rx.received.length, 3);
      for (const r of rx.received) assert.equal(r.body.events[0].target.digest, img.digest);
      assert.deepEqual(
        new Set(rx.received.map((r) => r.body.events[0].id)).size,
        1,
        "the same event each time",
      );
      const gap1 = rx.received[1].at - rx.received[0].at;
      const gap2 = rx.received[2].at - rx.received[1].at;
      assert.ok(gap1 >= 70, `first retry after the backoff (${gap1} ms)`);
      assert.ok(gap2 >= 140, `second retry after twice the backoff (${gap2} ms)`);
      assert.equal(await metric(h, "strata_notifications_sent_total", 'endpoint="flaky"'), 1);
      assert.equal(await metric(h, "strata_notifications_attempt_errors_total", 'endpoint="flaky"'), 2);
    } finally {
      await h.close();
      await rx.close();
    }
  });

  it("a receiver that never answers does not hold up pushes; its queue stays bounded and the overflow is counted", async () => {
    const rx = await startReceiver("hang");
    const h = await startRegistry(memory, withEndpoints(endpoint(rx.url, { name: "dead", timeoutMs: 60_000, maxAttempts: 1, queueSize: 3 })));
    try {
      const repo = repoName("dead");
      // every push completes while the receiver holds the first event unanswered
      for (let i = 0; i < 10; i++) await pushImage(h, repo, `v${i}`);
      await rx.waitFor(() => rx.hanging >= 1, 5000, "the receiver to hold a request");
      assert.equal(rx.received.length, 1, "one delivery in flight: the worker waits for it, the requests do not");
      const pending = h.reg.notifier.pending()[0];
      assert.ok(pending <= 3, `queue bounded (${pending} held)`);
      assert.equal(await metric(h, "strata_notifications_queued", 'endpoint="dead"'), pending);
      // 10 images x (config + layer + manifest) = 30 events: 1 in flight, 3 held, the rest dropped
      assert.equal(await metric(h, "strata_notifications_failed_total", 'endpoint="dead",reason="dropped"'), 30 - 1 - pending);
    } finally {
      await h.close();
      await rx.close();
    }
  });

  it("endpoint headers and URL credentials never reach the log", async () => {
    const rx = await startReceiver("fail:100");
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _enc, cb) {
        lines.push(String(chunk));
        cb();
      },
    });
    const logger = pino({ level: "debug" }, sink);
    const url = rx.url.replace("http://", "http://hookuser:url-secret@") + "?token=query-secret";
    const h = await startRegistry(memory, withEndpoints(endpoint(url, { headers: { Authorization: "Bearer header-secret" }, maxAttempts: 2, backoffMs: 10 })), { logger });
    try {
      await pushImage(h, repoName("secret"), "v1");
      await rx.waitFor((r) => r.length >= 6, 10_000, "every attempt");
      assert.ok(await h.reg.notifier.idle(5000));
      assert.equal(rx.received[0].headers.authorization, "Bearer header-secret", "the configured header wins over URL user info");
      assert.equal(rx.received[0].headers.host, new URL(rx.url).host);
      const log = lines.join("");
      assert.match(log, /notification given up/, "failures are logged");
      assert.match(log, /notification endpoint configured/);
      for (const secret of ["header-secret", "url-secret", "query-secret", "hookuser"]) assert.ok(!log.includes(secret), `${secret} is not logged`);
    } finally {
      await h.close();
      await rx.close();
    }
  });

  it("rejects a bad endpoint configuration", () => {
    assert.throws(() => notificationEndpointSchema.parse({ url: "ftp://x/y" }));
    assert.throws(() => notificationEndpointSchema.parse({ url: "http://x/y", events: ["pull", "tag"] }));
    assert.throws(() => notificationEndpointSchema.parse({ url: "http://x/y", timeoutMs: 0 }));
  });
});
