/**
 * Redis unavailable: a registry process backed by its own redis-server answers 503 UNAVAILABLE
 * at once while Redis is down (blob reads excepted: storage answers them), recovers by itself when Redis returns, and loses no data
 * (storage is the source of truth; `strata index rebuild` restores the emptied index).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { freePort, run, type StrataServer, startStrata, strata } from "./helpers/strata.js";
import { minimalImage, sha256 as sha } from "./helpers/oci-layout.js";
import { missing } from "@strata/client/test-helpers/tools.js";


async function startRedis(port: number): Promise<void> {
  const child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], { stdio: "ignore", detached: true });
  child.unref();
  for (let i = 0; i < 100; i++) {
    if ((await run("redis-cli", ["-p", String(port), "ping"])).stdout.trim() === "PONG") return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error("redis-server did not start");
}

async function stopRedis(port: number): Promise<void> {
  await run("redis-cli", ["-p", String(port), "shutdown", "nosave"]);
  for (let i = 0; i < 100; i++) {
    if ((await run("redis-cli", ["-p", String(port), "ping"])).code !== 0) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("Redis outage", { skip: missing("redis-server") }, () => {
  let port: number;
  let srv: StrataServer;
  let root: string;
  const repo = "outage/app";
  const blob = randomBytes(4096);
  const { config, manifest } = minimalImage([blob]);

  before(async () => {
    port = await freePort();
    await startRedis(port);
    root = await mkdtemp(join(tmpdir(), "strata-outage-"));
    srv = await startStrata({
      storage: { driver: "filesystem", filesystem: { root } },
      redis: { url: `redis://127.0.0.1:${port}`, keyPrefix: "outage:", commandTimeoutMs: 1000 },
    });
    for (const b of [blob, config])
      assert.equal((await fetch(`${srv.url}/v2/${repo}/blobs/uploads/?digest=${sha(b)}`, { method: "POST", body: b })).status, 201);
    const r = await fetch(`${srv.url}/v2/${repo}/manifests/v1`, {
      method: "PUT",
      body: manifest,
      headers: { "Content-Type": "application/vnd.oci.image.manifest.v1+json" },
    });
    assert.equal(r.status, 201);
  });
  after(async () => {
    await srv?.stop();
    await stopRedis(port);
    await rm(root, { recursive: true, force: true });
  });

  it("answers 503 UNAVAILABLE (OCI error JSON) while Redis is down, without hanging", async () => {
    await stopRedis(port);
    for (const [method, path] of [
      ["GET", `/v2/${repo}/tags/list`],
      ["POST", `/v2/${repo}/blobs/uploads/`],
      ["GET", "/healthz"],
      ["GET", "/readyz"],
    ] as const) {
      const res = await fetch(`${srv.url}${path}`, { method, signal: AbortSignal.timeout(15_000) });
      assert.equal(res.status, 503, `${method} ${path}`);
      const body = (await res.json()) as { errors: { code: string }[] };
      assert.equal(body.errors[0].code, "UNAVAILABLE");
    }
  });

  it("serves blob reads from storage while Redis is down (the descriptor cache is only a shortcut)", async () => {
    const head = await fetch(`${srv.url}/v2/${repo}/blobs/${sha(blob)}`, { method: "HEAD", signal: AbortSignal.timeout(15_000) });
    assert.equal(head.status, 200);
    const got = await fetch(`${srv.url}/v2/${repo}/blobs/${sha(blob)}`, { signal: AbortSignal.timeout(15_000) });
    assert.equal(got.status, 200);
    assert.ok(Buffer.from(await got.arrayBuffer()).equals(blob));
  });

  it("recovers by itself when Redis returns, with every byte still there", async () => {
    await startRedis(port);
    let healthy = false;
    for (let i = 0; i < 100 && !healthy; i++) {
      healthy = (await fetch(`${srv.url}/healthz`)).status === 200;
      if (!healthy) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(healthy, "healthz is 200 again");
    const got = Buffer.from(await (await fetch(`${srv.url}/v2/${repo}/blobs/${sha(blob)}`)).arrayBuffer());
    assert.ok(got.equals(blob));
    const m = await fetch(`${srv.url}/v2/${repo}/manifests/v1`);
    assert.equal(m.status, 200);
    assert.ok(Buffer.from(await m.arrayBuffer()).equals(manifest));
    // the new Redis is empty: the index is rebuilt from storage
    const out = await strata(["index", "rebuild", "--config", srv.configFile]);
    assert.equal(out.code, 0, out.stderr);
    const tags = await (await fetch(`${srv.url}/v2/${repo}/tags/list`)).json();
    assert.deepEqual(tags, { name: repo, tags: ["v1"] });
  });
});
