/**
 * Blob GET offloaded to nginx with X-Accel-Redirect (`http.accelRedirect`, filesystem storage):
 * Strata answers a whole-blob GET of a verified file with the header and no body, and Debian's
 * nginx, configured as the README shows, sends the file with Strata's headers. A file not
 * verified yet, or changed on disk, is not offloaded; ranges and HEAD stay with Strata.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { parseConfig } from "../src/config.js";
import { type RunningServer, startServer } from "../src/server.js";
import { rawGet } from "./helpers/raw-get.js";

const NGINX = "/usr/sbin/nginx";
const noNginx = existsSync(NGINX) ? false : "needs nginx (Debian package nginx)";
const MiB = 1024 * 1024;
const PREFIX = "/_strata_blobs";

const sha256 = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** The nginx site the README documents, with test paths. */
function nginxConf(dir: string, port: number, upstream: string, root: string): string {
  return `daemon off;
user root;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  sendfile on;
  server {
    listen 127.0.0.1:${port};
    client_max_body_size 0;
    location / {
      proxy_pass ${upstream};
      proxy_request_buffering off;
      proxy_buffering off;
      proxy_http_version 1.1;
      proxy_set_header Host $http_host;
    }
    location ${PREFIX}/ {
      internal;
      alias ${root}/;
      types { }
      default_type application/octet-stream;
      etag off;
      add_header Docker-Content-Digest $upstream_http_docker_content_digest always;
      add_header ETag $upstream_http_etag always;
      add_header Cache-Control $upstream_http_cache_control always;
    }
  }
}
`;
}

describe("blob GET offloaded to nginx (X-Accel-Redirect) [filesystem]", { skip: noNginx }, () => {
  let dir: string;
  let root: string;
  let srv: RunningServer;
  let nginx: ChildProcess;
  let front: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "strata-accel-"));
    root = join(dir, "data");
    srv = await startServer(parseConfig({ addr: "127.0.0.1:0", log: { level: "silent" }, storage: { driver: "filesystem", filesystem: { root } }, http: { accelRedirect: { prefix: PREFIX } } }));
    const port = await freePort();
    await writeFile(join(dir, "nginx.conf"), nginxConf(dir, port, srv.url, root));
    nginx = spawn(NGINX, ["-p", dir, "-c", join(dir, "nginx.conf")], { stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    nginx.stderr!.on("data", (c: Buffer) => (err += c.toString()));
    front = `http://127.0.0.1:${port}`;
    for (let i = 0; ; i++) {
      try {
        if ((await rawGet(`${front}/v2/`)).status === 200) break;
      } catch {
        /* not yet */
      }
      if (i > 100 || nginx.exitCode !== null) throw new Error(`nginx did not start: ${err}`);
      await sleep(50);
    }
  });
  after(async () => {
    nginx?.kill("SIGTERM");
    if (nginx && nginx.exitCode === null) await new Promise((r) => nginx.once("exit", r));
    await srv?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("Strata answers with X-Accel-Redirect and no body; nginx sends the exact blob with Strata's headers", async () => {
    const blob = randomBytes(6 * MiB + 5);
    const digest = sha256(blob);
    const put = await fetch(`${front}/v2/acc/a/blobs/uploads/?digest=${digest}`, { method: "POST", body: blob, headers: { "Content-Type": "application/octet-stream" } });
    assert.equal(put.status, 201);
    const direct = await rawGet(`${srv.url}/v2/acc/a/blobs/${digest}`);
    assert.equal(direct.status, 200);
    assert.equal(direct.body.length, 0);
    assert.equal(direct.headers["x-accel-redirect"], `${PREFIX}/v2/blobs/sha256/${digest.slice(7, 9)}/${digest.slice(7)}/data`);
    const res = await rawGet(`${front}/v2/acc/a/blobs/${digest}`);
    assert.equal(res.status, 200);
    assert.ok(res.complete && res.body.equals(blob), "nginx sent other bytes");
    assert.equal(res.headers["content-length"], String(blob.length));
    assert.equal(res.headers["docker-content-digest"], digest);
    assert.equal(res.headers["etag"], `"${digest}"`);
    assert.equal(res.headers["x-accel-redirect"], undefined);
    // Ranges and HEAD are answered by Strata itself, through nginx unchanged.
    const part = await rawGet(`${front}/v2/acc/a/blobs/${digest}`, { Range: "bytes=100-199" });
    assert.equal(part.status, 206);
    assert.ok(part.body.equals(blob.subarray(100, 200)));
    const head = await rawGet(`${front}/v2/acc/a/blobs/${digest}`, {}, "HEAD");
    assert.equal(head.status, 200);
    assert.equal(head.headers["content-length"], String(blob.length));
  });

  it("does not offload a file changed on disk: Strata verifies it and refuses it", async () => {
    const blob = randomBytes(2 * MiB);
    const digest = sha256(blob);
    const put = await fetch(`${front}/v2/acc/b/blobs/uploads/?digest=${digest}`, { method: "POST", body: blob, headers: { "Content-Type": "application/octet-stream" } });
    assert.equal(put.status, 201);
    const tampered = Buffer.from(blob);
    tampered[7] ^= 1;
    await writeFile(join(root, "v2", "blobs", "sha256", digest.slice(7, 9), digest.slice(7), "data"), tampered);
    const direct = await rawGet(`${srv.url}/v2/acc/b/blobs/${digest}`);
    assert.equal(direct.headers["x-accel-redirect"], undefined);
    assert.ok(!(direct.complete && direct.body.length === blob.length), "the changed file was served whole");
    const res = await rawGet(`${front}/v2/acc/b/blobs/${digest}`);
    assert.ok(!(res.complete && res.body.length === blob.length && res.status === 200), "the changed file was served whole through nginx");
  });
});
