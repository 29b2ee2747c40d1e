/**
 * The pull-through cache against hostile or unusual upstreams (node:http servers that answer
 * what a test needs): digests that lie, oversized manifests, the Bearer token flow with a
 * redirect of the blob to another origin, routing by `ns` and by prefix; and the `proxy`
 * configuration's validation.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { createServer, get as httpGet, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { describe, it } from "node:test";
import request from "supertest";
import { createRegistry } from "../src/app.js";
import { ConfigError, parseConfig } from "../src/config.js";

const sha = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ url: string; server: Server; close(): Promise<void> }> {
  const server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return {
    url,
    server,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

function image(): { layer: Buffer; config: Buffer; manifest: Buffer } {
  const layer = randomBytes(100_000);
  const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [sha(layer)] } }));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha(config), size: config.length },
      layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: sha(layer), size: layer.length }],
    }),
  );
  return { layer, config, manifest };
}

const MT = "application/vnd.oci.image.manifest.v1+json";

async function mirror(proxy: Record<string, unknown>) {
  return createRegistry(parseConfig({ storage: { driver: "memory" }, log: { level: "silent" }, proxy: { timeoutSeconds: 5, ...proxy } }));
}

describe("proxy configuration", () => {
  it("rejects unknown keys, a proxy without upstream, ambiguous upstreams and credentials in URLs", () => {
    assert.throws(() => parseConfig({ proxy: { remoteurl: "https://r.example", ttlSecond: 5 } }), (e: Error) => e instanceof ConfigError && /proxy\.ttlSecond: unknown key \(did you mean proxy\.ttlSeconds\?\)/.test(e.message));
    assert.throws(() => parseConfig({ proxy: {} }), /proxy needs remoteurl or upstreams/);
    assert.throws(() => parseConfig({ proxy: { upstreams: [{ ns: "docker.io", prefix: "d/", url: "https://r.example" }] } }), /exactly one of ns or prefix/);
    assert.throws(() => parseConfig({ proxy: { remoteurl: "https://u:p@r.example" } }), /no credentials in the url/);
    assert.throws(() => parseConfig({ proxy: { remoteurl: "ftp://r.example" } }), /http or https/);
    const c = parseConfig({ proxy: { remoteurl: "https://registry-1.docker.io", cache: { maxBytes: 1000 } } });
    assert.equal(c.proxy?.ttlSeconds, 600);
    assert.equal(c.proxy?.allowPush, false);
    assert.deepEqual(c.proxy?.cache, { maxBytes: 1000, evictAfterDays: 0, intervalSeconds: 60 });
  });
});

describe("proxy against hostile upstreams", () => {
  it("a manifest whose Docker-Content-Digest does not match its bytes is refused and not stored", async () => {
    const img = image();
    let lie = true;
    const up = await serve((req, res) => {
      if (req.url === "/v2/team/app/manifests/v1") {
        res.writeHead(200, { "Content-Type": MT, "Docker-Content-Digest": lie ? sha(Buffer.from("other")) : sha(img.manifest), "Content-Length": img.manifest.length });
        res.end(img.manifest);
        return;
      }
      res.writeHead(404).end();
    });
    const reg = await mirror({ remoteurl: up.url });
    try {
      const app = reg.app.callback();
      const bad = await request(app).get("/v2/team/app/manifests/v1").set("Accept", MT);
      assert.equal(bad.status, 503);
      assert.equal(bad.body.errors[0].code, "UNAVAILABLE");
      assert.match(bad.body.errors[0].message, /does not match the content/);
      // not stored: by digest it is asked upstream (which serves no manifests by digest)
      await request(app).get(`/v2/team/app/manifests/${sha(img.manifest)}`).expect(404);
      lie = false;
      const ok = await request(app).get("/v2/team/app/manifests/v1").set("Accept", MT).expect(200);
      assert.equal(ok.headers["docker-content-digest"], sha(img.manifest));
    } finally {
      await reg.close();
      await up.close();
    }
  });

  it("a manifest larger than 4 MiB is refused without being held whole, with or without Content-Length", async () => {
    let declared = true;
    let sent = 0;
    const up = await serve((req, res) => {
      const big = Buffer.alloc(1024 * 1024, 0x20);
      res.writeHead(200, { "Content-Type": MT, ...(declared ? { "Content-Length": String(64 * 1024 * 1024) } : {}) });
      const pump = () => {
        while (sent < 64 * 1024 * 1024) {
          sent += big.length;
          if (!res.write(big)) return void res.once("drain", pump);
        }
        res.end();
      };
      res.on("close", () => undefined);
      pump();
    });
    const reg = await mirror({ remoteurl: up.url });
    try {
      const app = reg.app.callback();
      const a = await request(app).get("/v2/team/big/manifests/v1").set("Accept", MT);
      assert.equal(a.status, 503);
      assert.match(a.body.errors[0].message, /larger than 4194304|exceeds 4194304/);
      declared = false;
      sent = 0;
      const b = await request(app).get("/v2/team/big2/manifests/v1").set("Accept", MT);
      assert.equal(b.status, 503);
      assert.match(b.body.errors[0].message, /exceeds 4194304/);
      assert.ok(sent < 32 * 1024 * 1024, `stopped reading early (${sent} bytes sent)`);
    } finally {
      await reg.close();
      await up.close();
    }
  });

  it("Bearer token flow with Basic credentials; a blob redirected to another origin gets no Authorization; routing by ns and prefix", async () => {
    const img = image();
    const seen: { url: string; auth?: string }[] = [];
    const cdnSeen: (string | undefined)[] = [];
    const cdn = await serve((req, res) => {
      cdnSeen.push(req.headers.authorization);
      res.writeHead(200, { "Content-Length": img.layer.length }).end(img.layer);
    });
    const up = await serve((req, res) => {
      seen.push({ url: req.url!, auth: req.headers.authorization });
      if (req.url!.startsWith("/token")) {
        if (req.headers.authorization !== `Basic ${Buffer.from("robot:s3cret").toString("base64")}`) return void res.writeHead(401).end();
        const scope = new URL(req.url!, "http://x").searchParams.get("scope");
        res.writeHead(200, { "Content-Type": "application/json" }).end(JSON.stringify({ token: `tok:${scope}`, expires_in: 300 }));
        return;
      }
      const m = /^\/v2\/(.+?)\/(manifests|blobs)\/(.+)$/.exec(req.url!);
      if (!m) return void res.writeHead(200).end("{}");
      if (req.headers.authorization !== `Bearer tok:repository:${m[1]}:pull`) {
        res.writeHead(401, { "WWW-Authenticate": `Bearer realm="${up.url}/token",service="test",scope="repository:${m[1]}:pull"` }).end();
        return;
      }
      if (m[2] === "manifests") {
        res.writeHead(200, { "Content-Type": MT, "Docker-Content-Digest": sha(img.manifest), "Content-Length": img.manifest.length }).end(req.method === "HEAD" ? undefined : img.manifest);
        return;
      }
      if (m[3] === sha(img.layer)) return void res.writeHead(307, { Location: `${cdn.url}/layer?sig=1` }).end();
      res.writeHead(404).end();
    });
    const reg = await mirror({ upstreams: [{ ns: "ghcr.io", url: up.url, username: "robot", password: "s3cret" }, { prefix: "quay/", url: up.url, username: "robot", password: "s3cret" }] });
    try {
      const app = reg.app.callback();
      const man = await request(app).get("/v2/org/app/manifests/v1?ns=ghcr.io").set("Accept", MT).expect(200);
      assert.equal(man.headers["docker-content-digest"], sha(img.manifest));
      const blob = await request(app)
        .get(`/v2/org/app/blobs/${sha(img.layer)}?ns=ghcr.io`)
        .buffer(true)
        .parse((res, cb) => {
          const parts: Buffer[] = [];
          res.on("data", (c: Buffer) => parts.push(c));
          res.on("end", () => cb(null, Buffer.concat(parts)));
        })
        .expect(200);
      assert.equal(sha(blob.body as Buffer), sha(img.layer));
      assert.deepEqual(cdnSeen, [undefined], "no credentials sent to the redirect's origin");
      assert.ok(seen.some((s) => s.url.startsWith("/token") && s.auth?.startsWith("Basic ")), "token asked with Basic credentials");
      // stored under the namespace: served from storage without ns once cached
      await request(app).get(`/v2/ghcr.io/org/app/manifests/${sha(img.manifest)}`).set("Accept", MT).expect(200);
      // prefix routing removes the prefix upstream
      await request(app).get("/v2/quay/team/tool/manifests/v1").set("Accept", MT).expect(200);
      assert.ok(seen.some((s) => s.url === "/v2/team/tool/manifests/v1" && s.auth === "Bearer tok:repository:team/tool:pull"));
      // a name no upstream serves is not proxied, nor a namespace no upstream stands for
      await request(app).get("/v2/other/app/manifests/v1").set("Accept", MT).expect(404);
      const before = seen.length;
      await request(app).get("/v2/org/app/manifests/v1?ns=registry.example").set("Accept", MT).expect(404);
      assert.equal(seen.length, before, "no upstream asked");
    } finally {
      await reg.close();
      await up.close();
      await cdn.close();
    }
  });

  it("with allowPush, pushes are accepted and pushed content is never evicted by the cache limits", async () => {
    const up = await serve((_req, res) => void res.writeHead(404).end());
    const reg = await mirror({ remoteurl: up.url, allowPush: true, ttlSeconds: 1, cache: { maxBytes: 1, intervalSeconds: 0.2 } });
    try {
      const app = reg.app.callback();
      const blob = randomBytes(5000);
      await request(app).post(`/v2/team/own/blobs/uploads/?digest=${sha(blob)}`).set("Content-Type", "application/octet-stream").send(blob).expect(201);
      for (let i = 0; i < 3; i++) {
        await request(app).get(`/v2/team/own/blobs/${sha(blob)}`).expect(200);
        await new Promise((r) => setTimeout(r, 300));
      }
      await request(app).head(`/v2/team/own/blobs/${sha(blob)}`).expect(200);
      // a pushed blob is not reachable through another repository the upstream lacks it in
      const other = await request(app).get(`/v2/team/elsewhere/blobs/${sha(blob)}`);
      assert.equal(other.status, 404);
      // a pushed tag past the TTL: the upstream does not know it, the pushed answer stands
      const man = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: MT,
          config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha(blob), size: blob.length },
          layers: [],
        }),
      );
      const put = await request(app).put("/v2/team/own/manifests/v1").set("Content-Type", MT).send(man.toString());
      assert.equal(put.status, 201, JSON.stringify(put.body));
      await new Promise((r) => setTimeout(r, 1100));
      const got = await request(app).get("/v2/team/own/manifests/v1").set("Accept", MT).expect(200);
      assert.equal(got.headers["docker-content-digest"], sha(man));
      assert.equal(got.headers.warning, undefined);
    } finally {
      await reg.close();
      await up.close();
    }
  });

  it("HEAD of an uncached blob asks the upstream only; a Range GET of an uncached blob is answered from storage once it landed", async () => {
    const img = image();
    const gets: string[] = [];
    const up = await serve((req, res) => {
      if (req.url === `/v2/team/app/blobs/${sha(img.layer)}`) {
        if (req.method === "GET") gets.push(req.url);
        res.writeHead(200, { "Content-Length": img.layer.length, "Docker-Content-Digest": sha(img.layer) });
        res.end(req.method === "HEAD" ? undefined : img.layer);
        return;
      }
      res.writeHead(404).end();
    });
    const reg = await mirror({ remoteurl: up.url });
    try {
      const app = reg.app.callback();
      const head = await request(app).head(`/v2/team/app/blobs/${sha(img.layer)}`).expect(200);
      assert.equal(head.headers["content-length"], String(img.layer.length));
      assert.equal(gets.length, 0, "HEAD fetched nothing");
      const part = await request(app)
        .get(`/v2/team/app/blobs/${sha(img.layer)}`)
        .set("Range", "bytes=10-19")
        .buffer(true)
        .parse((res, cb) => {
          const parts: Buffer[] = [];
          res.on("data", (c: Buffer) => parts.push(c));
          res.on("end", () => cb(null, Buffer.concat(parts)));
        })
        .expect(206);
      assert.deepEqual(part.body, img.layer.subarray(10, 20));
      assert.equal(part.headers["content-range"], `bytes 10-19/${img.layer.length}`);
      await request(app).get(`/v2/team/app/blobs/${sha(img.layer)}`).expect(200);
      assert.equal(gets.length, 1, "fetched once, then served from storage");
      const unknown = await request(app).get(`/v2/team/app/blobs/${sha(Buffer.from("none"))}`);
      assert.equal(unknown.status, 404);
      assert.equal(unknown.body.errors[0].code, "BLOB_UNKNOWN");
    } finally {
      await reg.close();
      await up.close();
    }
  });

  it("a client that stops reading does not hold back another; it continues from storage once the blob landed", async () => {
    const blob = randomBytes(24 * 1024 * 1024);
    const up = await serve((req, res) => {
      if (req.url === `/v2/team/big/blobs/${sha(blob)}`) return void res.writeHead(200, { "Content-Length": blob.length }).end(blob);
      res.writeHead(404).end();
    });
    const reg = await mirror({ remoteurl: up.url });
    const srv = createServer(reg.app.callback());
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${(srv.address() as { port: number }).port}/v2/team/big/blobs/${sha(blob)}`;
    const get = (pauseMs: number) =>
      new Promise<{ digest: string; endedAt: number }>((resolve, reject) => {
        httpGet(url, (res) => {
          const h = createHash("sha256");
          if (pauseMs) {
            res.pause();
            setTimeout(() => res.resume(), pauseMs);
          }
          res.on("data", (c: Buffer) => h.update(c));
          res.on("end", () => resolve({ digest: `sha256:${h.digest("hex")}`, endedAt: Date.now() }));
          res.on("error", reject);
        }).on("error", reject);
      });
    try {
      const t0 = Date.now();
      const [slow, fast] = await Promise.all([get(3000), get(0)]);
      assert.equal(fast.digest, sha(blob));
      assert.equal(slow.digest, sha(blob), "the paused client gets the whole blob");
      assert.ok(fast.endedAt - t0 < 3000, `the fast client finished while the other was paused (${fast.endedAt - t0} ms)`);
    } finally {
      srv.closeAllConnections();
      await new Promise((r) => srv.close(r));
      await reg.close();
      await up.close();
    }
  });
});
