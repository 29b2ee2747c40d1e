/**
 * Stateless replicas: two `strata serve` processes sharing S3 storage and Redis behave as one
 * registry. Needs the S3 test server (STRATA_TEST_BACKENDS containing s3, as CI sets it).
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { fleetConfig } from "./helpers/fleet.js";
import { type StrataServer, startStrata, strata, uniqueName } from "./helpers/strata.js";
import { minimalImage, sha256 as sha } from "./helpers/oci-layout.js";

const enabled = (process.env.STRATA_TEST_BACKENDS ?? "").split(",").includes("s3");

describe("two replicas sharing S3 and Redis", { skip: enabled ? false : "fleet tests need STRATA_TEST_BACKENDS to include s3 (CI sets it)" }, () => {
  let a: StrataServer;
  let b: StrataServer;
  let cleanup: () => Promise<void>;
  let configFile: string;

  before(async () => {
    const f = await fleetConfig();
    cleanup = f.cleanup;
    [a, b] = await Promise.all([startStrata(f.config), startStrata(f.config)]);
    configFile = a.configFile;
  });
  after(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await cleanup?.();
  });

  it("a chunked upload alternating between replicas completes with the right digest", async () => {
    const repo = `fleet/${uniqueName()}`;
    // 3 chunks over 5 MiB each so the S3 writer really uploads multipart parts on both replicas
    const chunks = [randomBytes(6 * 1024 * 1024 + 123), randomBytes(5 * 1024 * 1024 + 7), randomBytes(777_777)];
    const whole = Buffer.concat(chunks);
    const digest = sha(whole);
    let res = await fetch(`${a.url}/v2/${repo}/blobs/uploads/`, { method: "POST" });
    assert.equal(res.status, 202);
    let location = res.headers.get("location")!;
    let offset = 0;
    const replicas = [b, a, b];
    for (const [i, chunk] of chunks.slice(0, 2).entries()) {
      const srv = replicas[i];
      res = await fetch(new URL(location, srv.url), {
        method: "PATCH",
        body: chunk,
        headers: { "Content-Type": "application/octet-stream", "Content-Range": `${offset}-${offset + chunk.length - 1}` },
      });
      assert.equal(res.status, 202, await res.text());
      offset += chunk.length;
      assert.equal(res.headers.get("range"), `0-${offset - 1}`);
      location = res.headers.get("location")!;
    }
    // the status is visible on the other replica
    res = await fetch(new URL(location, b.url));
    assert.equal(res.status, 204);
    assert.equal(res.headers.get("range"), `0-${offset - 1}`);
    // final chunk with the PUT on the third request's replica
    const last = chunks[2];
    res = await fetch(new URL(`${location}?digest=${digest}`, replicas[2].url), {
      method: "PUT",
      body: last,
      headers: { "Content-Type": "application/octet-stream", "Content-Range": `${offset}-${offset + last.length - 1}` },
    });
    assert.equal(res.status, 201, await res.text());
    assert.equal(res.headers.get("docker-content-digest"), digest);
    for (const srv of [a, b]) {
      const got = Buffer.from(await (await fetch(`${srv.url}/v2/${repo}/blobs/${digest}`)).arrayBuffer());
      assert.equal(got.length, whole.length);
      assert.ok(got.equals(whole), "both replicas serve the exact bytes");
    }
  });

  it("a push to one replica is immediately pullable from the other", async () => {
    const repo = `fleet/${uniqueName()}`;
    const { config, manifest } = minimalImage();
    let res = await fetch(`${a.url}/v2/${repo}/blobs/uploads/?digest=${sha(config)}`, {
      method: "POST",
      body: config,
      headers: { "Content-Type": "application/octet-stream" },
    });
    assert.equal(res.status, 201);
    res = await fetch(`${a.url}/v2/${repo}/manifests/v1`, {
      method: "PUT",
      body: manifest,
      headers: { "Content-Type": "application/vnd.oci.image.manifest.v1+json" },
    });
    assert.equal(res.status, 201);
    res = await fetch(`${b.url}/v2/${repo}/manifests/v1`, { headers: { Accept: "application/vnd.oci.image.manifest.v1+json" } });
    assert.equal(res.status, 200);
    assert.ok(Buffer.from(await res.arrayBuffer()).equals(manifest));
    const tags = await (await fetch(`${b.url}/v2/${repo}/tags/list`)).json();
    assert.deepEqual(tags, { name: repo, tags: ["v1"] });
    const catalog = (await (await fetch(`${b.url}/v2/_catalog`)).json()) as { repositories: string[] };
    assert.ok(catalog.repositories.includes(repo));
  });

  it("a blob deleted through one replica is never reported as existing by the other (cache invalidation)", async () => {
    const repo = `fleet/${uniqueName()}`;
    const blob = randomBytes(1000);
    const d = sha(blob);
    await fetch(`${a.url}/v2/${repo}/blobs/uploads/?digest=${d}`, { method: "POST", body: blob });
    // warm both replicas' view of the blob
    for (const srv of [a, b]) assert.equal((await fetch(`${srv.url}/v2/${repo}/blobs/${d}`, { method: "HEAD" })).status, 200);
    assert.equal((await fetch(`${b.url}/v2/${repo}/blobs/${d}`, { method: "DELETE" })).status, 202);
    for (const srv of [a, b]) {
      assert.equal((await fetch(`${srv.url}/v2/${repo}/blobs/${d}`, { method: "HEAD" })).status, 404);
      assert.equal((await fetch(`${srv.url}/v2/${repo}/blobs/${d}`)).status, 404);
    }
  });

  it("the same tag pushed through both replicas at once ends pointing at one of the two manifests", async () => {
    const repo = `fleet/${uniqueName()}`;
    const config = Buffer.from("{}");
    await fetch(`${a.url}/v2/${repo}/blobs/uploads/?digest=${sha(config)}`, { method: "POST", body: config });
    const mk = (n: number) =>
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha(config), size: 2 },
          layers: [],
          annotations: { n: String(n) },
        }),
      );
    const bodies = [mk(1), mk(2)];
    const results = await Promise.all(
      [a, b].map((srv, i) =>
        fetch(`${srv.url}/v2/${repo}/manifests/same`, {
          method: "PUT",
          body: bodies[i],
          headers: { "Content-Type": "application/vnd.oci.image.manifest.v1+json" },
        }),
      ),
    );
    for (const r of results) assert.equal(r.status, 201);
    const got = Buffer.from(await (await fetch(`${b.url}/v2/${repo}/manifests/same`)).arrayBuffer());
    assert.ok(got.equals(bodies[0]) || got.equals(bodies[1]));
    const tags = await (await fetch(`${a.url}/v2/${repo}/tags/list`)).json();
    assert.deepEqual(tags, { name: repo, tags: ["same"] });
  });

  it("strata index rebuild restores every tag and repository after Redis lost the index", async () => {
    const repos = [`fleet/${uniqueName()}`, `fleet/${uniqueName()}/nested`];
    const config = Buffer.from("{}");
    const wanted: Record<string, string[]> = {};
    for (const repo of repos) {
      await fetch(`${a.url}/v2/${repo}/blobs/uploads/?digest=${sha(config)}`, { method: "POST", body: config });
      wanted[repo] = ["1.0", "latest", "v2"];
      for (const t of wanted[repo]) {
        const m = JSON.stringify({
          schemaVersion: 2,
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha(config), size: 2 },
          layers: [],
          annotations: { t },
        });
        assert.equal(
          (
            await fetch(`${b.url}/v2/${repo}/manifests/${t}`, {
              method: "PUT",
              body: m,
              headers: { "Content-Type": "application/vnd.oci.image.manifest.v1+json" },
            })
          ).status,
          201,
        );
      }
    }
    const { Redis } = await import("ioredis");
    const f = JSON.parse(JSON.stringify((await import("yaml")).parse(await (await import("node:fs/promises")).readFile(configFile, "utf8"))));
    const r = new Redis(f.redis.url);
    const keys = await r.keys(`${f.redis.keyPrefix}*`);
    if (keys.length) await r.del(...keys);
    r.disconnect();
    for (const repo of repos) assert.equal((await fetch(`${a.url}/v2/${repo}/tags/list`)).status, 404, "the emptied index knows no repository");
    const out = await strata(["index", "rebuild", "--config", configFile]);
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stdout, /index rebuilt/);
    for (const repo of repos) {
      for (const srv of [a, b]) {
        const tags = (await (await fetch(`${srv.url}/v2/${repo}/tags/list`)).json()) as { tags: string[] };
        assert.deepEqual(tags.tags, wanted[repo]);
      }
    }
    const catalog = (await (await fetch(`${a.url}/v2/_catalog`)).json()) as { repositories: string[] };
    for (const repo of repos) assert.ok(catalog.repositories.includes(repo));
  });
});
