/**
 * The UI's static files at /ui/: content types, caching (hashed assets immutable, index.html
 * revalidated), ETag and gzip, a strict Content-Security-Policy, no way out of dist/ (dot
 * segments, encoded slashes, symlinks), and nothing served when ui.enabled is false.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { request as httpRequest } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import request from "supertest";
import { createRegistry, type Registry } from "../src/app.js";
import { parseConfig } from "../src/config.js";
import { loadAssets, UI_CSP, uiDistDir } from "../src/handlers/ui.js";

const dist = uiDistDir();
const built = dist !== undefined && existsSync(join(dist, "index.html"));

/** GET with the path sent exactly as written (no client-side normalisation of dot segments). */
async function rawGet(app: Registry["app"], path: string): Promise<number> {
  const server = app.listen(0, "127.0.0.1");
  await new Promise((r) => server.once("listening", r));
  try {
    return await new Promise<number>((resolve, reject) => {
      const req = httpRequest({ host: "127.0.0.1", port: (server.address() as AddressInfo).port, path, method: "GET" }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on("error", reject);
      req.end();
    });
  } finally {
    server.close();
  }
}

describe("web UI files", { skip: built ? false : "the UI is not built (npm run build)" }, () => {
  let reg: Registry;
  before(async () => {
    reg = await createRegistry(parseConfig({ storage: { driver: "memory" }, log: { level: "silent" } }));
  });
  after(() => reg?.close());

  it("serves index.html revalidated, with a strict CSP and no inline script", async () => {
    const res = await request(reg.app.callback()).get("/ui/").expect(200);
    assert.equal(res.headers["content-type"], "text/html; charset=utf-8");
    assert.equal(res.headers["cache-control"], "no-cache");
    assert.equal(res.headers["content-security-policy"], UI_CSP);
    assert.match(UI_CSP, /script-src 'self';/);
    assert.doesNotMatch(UI_CSP, /unsafe-inline|unsafe-eval|\*/);
    assert.equal(res.headers["x-content-type-options"], "nosniff");
    assert.equal(res.headers["x-frame-options"], "DENY");
    assert.doesNotMatch(res.text, /<script(?![^>]*\bsrc=)[^>]*>/, "no inline script");
    assert.doesNotMatch(res.text, /https?:\/\//, "nothing from another host");
    const etag = res.headers.etag;
    await request(reg.app.callback()).get("/ui/").set("If-None-Match", etag).expect(304);
    await request(reg.app.callback()).get("/ui").expect(301).expect("Location", "/ui/");
    await request(reg.app.callback()).get("/").expect(302).expect("Location", "/ui/");
    await request(reg.app.callback()).get("/strata/v1/repositories").expect(200);
    const metrics = (await request(reg.app.callback()).get("/metrics")).text;
    assert.match(metrics, /strata_http_requests_total\{resource="ui",method="GET",status="200"\} 1/);
    assert.match(metrics, /strata_http_requests_total\{resource="metadata",method="GET",status="200"\} 1/);
  });

  it("serves hashed assets immutable with their content types, gzipped when asked", async () => {
    const html = (await request(reg.app.callback()).get("/ui/")).text;
    const assets = [...html.matchAll(/(?:src|href)="(\/ui\/assets\/[^"]+)"/g)].map((m) => m[1]);
    assert.ok(assets.some((a) => a.endsWith(".js")) && assets.some((a) => a.endsWith(".css")), `assets referenced: ${assets.join(", ")}`);
    for (const a of assets) {
      const plain = await request(reg.app.callback()).get(a).set("Accept-Encoding", "identity").expect(200);
      assert.equal(plain.headers["content-type"], a.endsWith(".js") ? "text/javascript; charset=utf-8" : "text/css; charset=utf-8");
      assert.equal(plain.headers["cache-control"], "public, max-age=31536000, immutable");
      assert.equal(plain.headers["content-encoding"], undefined);
      const gz = await request(reg.app.callback()).get(a).set("Accept-Encoding", "gzip").expect(200);
      assert.equal(gz.headers["content-encoding"], "gzip");
      assert.equal(gz.text, plain.text, "the same bytes once decompressed");
      const head = await request(reg.app.callback()).head(a).set("Accept-Encoding", "identity").expect(200);
      assert.equal(head.headers["content-length"], String(Buffer.byteLength(plain.text)));
    }
  });

  it("never serves a file outside dist/", async () => {
    for (const p of [
      "/ui/../package.json",
      "/ui/%2e%2e/package.json",
      "/ui/assets/..%2f..%2fpackage.json",
      "/ui/assets/%2e%2e%2f%2e%2e%2fpackage.json",
      "/ui//etc/passwd",
      "/ui/..%5c..%5cpackage.json",
      "/ui/index.html/..",
      "/ui/assets/",
    ]) {
      const status = await rawGet(reg.app, p);
      assert.ok(status === 404 || status === 400, `${p}: ${status}`);
    }
  });
});

describe("web UI: loading and switching off", () => {
  it("loads regular files only: a symlink in dist/ to a file outside is not served", async () => {
    const dir = await mkdtemp(join(tmpdir(), "strata-ui-dist-"));
    try {
      await mkdir(join(dir, "assets"));
      await writeFile(join(dir, "index.html"), "<!doctype html>");
      await writeFile(join(dir, "assets", "a-1234.js"), "export {}");
      await writeFile(join(dir, "..", `${dir.split("/").pop()}-secret.txt`), "secret");
      await symlink(join(dir, "..", `${dir.split("/").pop()}-secret.txt`), join(dir, "assets", "leak.txt"));
      const assets = await loadAssets(dir);
      assert.deepEqual([...assets.keys()].sort(), ["/ui/assets/a-1234.js", "/ui/index.html"]);
      assert.equal(assets.get("/ui/assets/a-1234.js")!.immutable, true);
      assert.equal(assets.get("/ui/index.html")!.immutable, false);
    } finally {
      await rm(dir, { recursive: true, force: true });
      await rm(`${dir}-secret.txt`, { force: true });
    }
  });

  it("ui.enabled: false serves nothing at /ui/", async () => {
    const reg = await createRegistry(parseConfig({ storage: { driver: "memory" }, log: { level: "silent" }, ui: { enabled: false } }));
    try {
      await request(reg.app.callback()).get("/ui/").expect(404);
      await request(reg.app.callback()).get("/").expect(404);
    } finally {
      await reg.close();
    }
  });
});
