/**
 * Bounded soak test of online garbage collection: concurrent pushes of images sharing layers
 * (each client HEADs a layer and skips its upload when it exists, the race the protocol in
 * services/gc.ts is written against), manifest deletes, and collection runs with delay 0 in a
 * loop, through real HTTP. Filesystem storage (one process) and S3 + Redis with two replicas
 * (pushes, pulls and collections spread over both). Every push that succeeded and was not
 * deleted must pull back complete and byte-identical, after a final collection too.
 * Runs SOAK_SECONDS per backend (STRATA_TEST_SOAK_SECONDS, default 20).
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, it } from "node:test";
import { createRegistry, type Registry } from "../src/app.js";
import { backends } from "./helpers/backends.js";
import { MediaTypes, sha256 } from "./helpers/oci.js";

const SOAK_MS = Number(process.env.STRATA_TEST_SOAK_SECONDS ?? 20) * 1000;
const WORKERS = 4;

interface Replica {
  reg: Registry;
  server: Server;
  url: string;
}

async function listen(reg: Registry): Promise<Replica> {
  const server = createServer(reg.app.callback());
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return { reg, server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

interface Pushed {
  repo: string;
  tag: string;
  manifest: Buffer;
  blobs: Map<string, Buffer>;
}

const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)];

async function pushBlob(url: string, repo: string, data: Buffer): Promise<void> {
  const digest = sha256(data);
  const head = await fetch(`${url}/v2/${repo}/blobs/${digest}`, { method: "HEAD" });
  if (head.status === 200) return; // exists: skip the upload (as docker and skopeo do)
  if (Math.random() < 0.5) {
    const res = await fetch(`${url}/v2/${repo}/blobs/uploads/?digest=${digest}`, { method: "POST", body: data, headers: { "Content-Type": "application/octet-stream" } });
    assert.equal(res.status, 201, `monolithic upload: ${res.status} ${await res.text()}`);
    return;
  }
  let res = await fetch(`${url}/v2/${repo}/blobs/uploads/`, { method: "POST" });
  assert.equal(res.status, 202);
  const loc = new URL(res.headers.get("location")!, url);
  const half = Math.floor(data.length / 2);
  res = await fetch(loc, { method: "PATCH", body: data.subarray(0, half), headers: { "Content-Type": "application/octet-stream", "Content-Range": `0-${half - 1}` } });
  assert.equal(res.status, 202, `PATCH: ${res.status} ${await res.text()}`);
  const next = new URL(res.headers.get("location")!, url);
  next.searchParams.set("digest", digest);
  res = await fetch(next, { method: "PUT", body: data.subarray(half), headers: { "Content-Type": "application/octet-stream", "Content-Range": `${half}-${data.length - 1}` } });
  assert.equal(res.status, 201, `closing PUT: ${res.status} ${await res.text()}`);
}

/** Pulls an image back; returns what is wrong with it, or undefined. */
async function verify(url: string, p: Pushed): Promise<string | undefined> {
  const res = await fetch(`${url}/v2/${p.repo}/manifests/${p.tag}`, { headers: { Accept: MediaTypes.OciManifest } });
  if (res.status !== 200) return `${p.repo}:${p.tag}: manifest ${res.status}`;
  if (!Buffer.from(await res.arrayBuffer()).equals(p.manifest)) return `${p.repo}:${p.tag}: manifest bytes differ`;
  for (const [digest, bytes] of p.blobs) {
    const b = await fetch(`${url}/v2/${p.repo}/blobs/${digest}`);
    if (b.status !== 200) return `${p.repo}:${p.tag}: blob ${digest} ${b.status}`;
    if (!Buffer.from(await b.arrayBuffer()).equals(bytes)) return `${p.repo}:${p.tag}: blob ${digest} bytes differ`;
  }
  return undefined;
}

for (const backend of backends().filter((b) => b.name === "filesystem" || b.name === "s3")) {
  describe(`garbage collection soak [${backend.name}]`, () => {
    it(`concurrent pushes, deletes and delay-0 collections for ${SOAK_MS / 1000} s lose no successful push`, { timeout: 3 * SOAK_MS + 180_000 }, async (t) => {
      const { config, cleanup } = await backend.make();
      config.uploads.purgeIntervalSeconds = 0;
      const replicas: Replica[] = [];
      try {
        replicas.push(await listen(await createRegistry(config)));
        if (backend.name === "s3") replicas.push(await listen(await createRegistry(config)));
        const urls = replicas.map((r) => r.url);
        const repos = ["soak/one", "soak/two"];
        // a small pool of layers every image draws from: collections keep deleting and pushes keep re-uploading them
        const pool = Array.from({ length: 8 }, (_, i) => randomBytes(1024 + i * 3000));
        const live: Pushed[] = [];
        const stats = { pushes: 0, refused: 0, deletes: 0, runs: 0, blobsFreed: 0, bytesFreed: 0, protectedSkipped: 0, violations: [] as string[] };
        // at least SOAK_MS; on a loaded machine longer (up to 3x) until enough happened to mean something
        const deadline = Date.now() + SOAK_MS;
        const cap = Date.now() + 3 * SOAK_MS;
        const enough = () => stats.pushes > 10 && stats.runs >= 3 && stats.blobsFreed > 0;
        const running = () => Date.now() < deadline || (Date.now() < cap && !enough());
        let n = 0;

        const pusher = async () => {
          while (running()) {
            const url = pick(urls);
            const repo = pick(repos);
            const layers = [...new Set([pick(pool), pick(pool), pick(pool)])];
            const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", n: n++, nonce: randomBytes(8).toString("hex") }));
            const blobs = new Map<string, Buffer>([[sha256(config), config], ...layers.map((l) => [sha256(l), l] as [string, Buffer])]);
            for (const b of blobs.values()) await pushBlob(pick(urls), repo, b);
            const manifest = Buffer.from(
              JSON.stringify({
                schemaVersion: 2,
                mediaType: MediaTypes.OciManifest,
                config: { mediaType: MediaTypes.OciConfig, digest: sha256(config), size: config.length },
                layers: layers.map((l) => ({ mediaType: MediaTypes.OciLayerGzip, digest: sha256(l), size: l.length })),
              }),
            );
            const tag = `t${n++}`;
            const res = await fetch(`${url}/v2/${repo}/manifests/${tag}`, { method: "PUT", body: manifest, headers: { "Content-Type": MediaTypes.OciManifest } });
            const body = await res.text();
            if (res.status === 201) {
              stats.pushes++;
              live.push({ repo, tag, manifest, blobs });
            } else if (body.includes("MANIFEST_BLOB_UNKNOWN")) {
              stats.refused++; // a layer went between its HEAD and the PUT: the protocol's allowed answer
            } else {
              assert.fail(`manifest PUT: ${res.status} ${body}`);
            }
          }
        };

        const deleter = async () => {
          while (running()) {
            await new Promise((r) => setTimeout(r, 150));
            if (live.length < 4) continue;
            const victim = live.splice(Math.floor(Math.random() * live.length), 1)[0];
            const res = await fetch(`${pick(urls)}/v2/${victim.repo}/manifests/${sha256(victim.manifest)}`, { method: "DELETE" });
            assert.equal(res.status, 202, `DELETE: ${res.status} ${await res.text()}`);
            stats.deletes++;
          }
        };

        // Delay 0. Object stores round modification times up to whole seconds, which would make
        // everything of the last second young and hide the race: there the run's cutoff is put
        // 2 s ahead, so that content written during the run is a candidate too and only the
        // protocol keeps it.
        const delaySeconds = backend.name === "s3" ? -2 : 0;
        const collect = async (untagged: "delete" | "keep") => {
          const r = await pick(replicas).reg.collectGarbage({ delaySeconds, untagged });
          stats.runs++;
          stats.blobsFreed += r.blobsDeleted;
          stats.bytesFreed += r.bytesFreed;
          stats.protectedSkipped += r.protectedSkipped;
        };
        const collector = async () => {
          while (running()) await collect(stats.runs % 2 === 0 ? "delete" : "keep");
        };

        const checker = async () => {
          // what was pushed keeps pulling back while collections run
          while (running()) {
            await new Promise((r) => setTimeout(r, 500));
            for (const p of [...live].slice(-5)) {
              const wrong = await verify(pick(urls), p);
              if (wrong && live.includes(p)) stats.violations.push(`during the soak: ${wrong}`);
            }
          }
        };

        await Promise.all([...Array.from({ length: WORKERS }, pusher), deleter(), collector(), checker()]);
        // pushes that ended before the last runs began must survive further runs too
        await collect("delete");
        await collect("keep");
        for (const p of live) {
          const wrong = await verify(pick(urls), p);
          if (wrong) stats.violations.push(wrong);
        }
        t.diagnostic(
          `soak [${backend.name}, ${replicas.length} replica(s)]: ${stats.pushes} pushes ok, ${stats.refused} refused with MANIFEST_BLOB_UNKNOWN, ${stats.deletes} deletes, ${stats.runs} gc runs freeing ${stats.blobsFreed} blobs / ${stats.bytesFreed} bytes (${stats.protectedSkipped} candidates kept as protected by a push), ${live.length} images verified, ${stats.violations.length} violations`,
        );
        assert.ok(stats.runs >= 3, `only ${stats.runs} collection runs`);
        assert.ok(stats.blobsFreed > 0, "the collections freed something");
        assert.ok(stats.pushes > 10, `only ${stats.pushes} pushes`);
        assert.deepEqual(stats.violations, []);
      } finally {
        for (const r of replicas) {
          await new Promise((res) => {
            r.server.close(res);
            r.server.closeAllConnections();
          });
          await r.reg.close();
        }
        await cleanup();
      }
    });
  });
}
