/**
 * HTTPS of `strata serve`: HTTP/2 by ALPN next to HTTP/1.1, TLS 1.2 as the floor and only
 * forward-secret AEAD suites, the certificate swapped in when its files change, mutual TLS
 * with `clientCA`, `tls` without `auth`, and the one warning an open registry logs when it
 * listens beyond loopback. Certificates are made with openssl at test time.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { copyFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { connect as http2Connect } from "node:http2";
import { request as httpsRequest } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { connect as tlsConnect, type ConnectionOptions } from "node:tls";
import { freePort, mustRun, STRATA_BIN, type StrataServer, startStrata } from "./helpers/strata.js";

const noOpenssl = ["/usr/bin/openssl", "/bin/openssl"].some((p) => existsSync(p)) ? false : "needs openssl";

/** A CA, and certificates signed by it: `name` for 127.0.0.1 (server) or a client certificate. */
async function issue(dir: string, name: string, kind: "server" | "client"): Promise<void> {
  const o = (...args: string[]) => mustRun("openssl", args, { cwd: dir });
  if (!existsSync(join(dir, "ca.crt"))) {
    await o("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=strata tls test CA");
  }
  await o("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${name}`);
  const ext = kind === "server" ? "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n" : "extendedKeyUsage=clientAuth\n";
  await writeFile(join(dir, `${name}.cnf`), ext);
  await o("x509", "-req", "-in", `${name}.csr`, "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2", "-extfile", `${name}.cnf`, "-out", `${name}.crt`);
}

/** Opens a TLS connection; resolves with the negotiated details or rejects with the handshake error. */
function handshake(port: number, opts: ConnectionOptions): Promise<{ protocol: string | null; alpn: string | false | null; cn: string }> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: "127.0.0.1", port, ...opts }, () => {
      const r = { protocol: s.getProtocol(), alpn: s.alpnProtocol, cn: String(s.getPeerCertificate().subject?.CN) };
      s.end();
      resolve(r);
    });
    s.on("error", reject);
  });
}

describe("HTTPS", { skip: noOpenssl }, () => {
  let dir: string;
  let srv: StrataServer;
  let port: number;
  let ca: Buffer;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "strata-tls-"));
    await issue(dir, "first", "server");
    await issue(dir, "second", "server");
    await copyFile(join(dir, "first.crt"), join(dir, "tls.crt"));
    await copyFile(join(dir, "first.key"), join(dir, "tls.key"));
    ca = await readFile(join(dir, "ca.crt"));
    srv = await startStrata(
      { storage: { driver: "memory" }, tls: { certificate: join(dir, "tls.crt"), key: join(dir, "tls.key"), reloadIntervalSeconds: 0.2 } },
      { ca },
    );
    port = Number(srv.host.split(":")[1]);
  });
  after(async () => {
    await srv?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("tls without auth serves the open registry over HTTP/1.1", async () => {
    const status = await new Promise<number>((resolve, reject) => {
      httpsRequest(`${srv.url}/v2/`, { ca }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      })
        .on("error", reject)
        .end();
    });
    assert.equal(status, 200);
  });

  it("offers h2 by ALPN and answers over HTTP/2 with the API version header", async () => {
    assert.equal((await handshake(port, { ca, ALPNProtocols: ["h2", "http/1.1"] })).alpn, "h2");
    assert.equal((await handshake(port, { ca, ALPNProtocols: ["http/1.1"] })).alpn, "http/1.1");
    const session = http2Connect(srv.url, { ca });
    try {
      const headers = await new Promise<Record<string, unknown>>((resolve, reject) => {
        const req = session.request({ ":path": "/v2/" });
        req.on("response", (h) => {
          req.resume();
          resolve(h);
        });
        req.on("error", reject);
        req.end();
      });
      assert.equal(headers[":status"], 200);
      assert.equal(headers["docker-distribution-api-version"], "registry/2.0");
    } finally {
      session.close();
    }
  });

  it("an upload over HTTP/2 completes with a PUT whose body has no Content-Length", async () => {
    const session = http2Connect(srv.url, { ca });
    const call = (headers: Record<string, string>, body?: Buffer) =>
      new Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }>((resolve, reject) => {
        const req = session.request(headers);
        const parts: Buffer[] = [];
        let h: Record<string, unknown> = {};
        req.on("response", (r) => (h = r));
        req.on("data", (c: Buffer) => parts.push(c));
        req.on("end", () => resolve({ status: Number(h[":status"]), headers: h, body: Buffer.concat(parts) }));
        req.on("error", reject);
        if (body) req.write(body);
        req.end();
      });
    try {
      const data = Buffer.from("streamed over h2 without a length ".repeat(100));
      const digest = `sha256:${createHash("sha256").update(data).digest("hex")}`;
      const start = await call({ ":method": "POST", ":path": "/v2/h2/app/blobs/uploads/" });
      assert.equal(start.status, 202);
      const loc = new URL(String(start.headers.location), srv.url);
      loc.searchParams.set("digest", digest);
      const put = await call({ ":method": "PUT", ":path": loc.pathname + loc.search, "content-type": "application/octet-stream" }, data);
      assert.equal(put.status, 201, put.body.toString());
      const get = await call({ ":path": `/v2/h2/app/blobs/${digest}` });
      assert.ok(get.body.equals(data));
    } finally {
      session.close();
    }
  });

  it("refuses TLS 1.1 and suites without forward secrecy or AEAD", async () => {
    assert.match((await handshake(port, { ca })).protocol ?? "", /^TLSv1\.[23]$/);
    await assert.rejects(handshake(port, { ca, minVersion: "TLSv1", maxVersion: "TLSv1.1", ciphers: "DEFAULT:@SECLEVEL=0" }));
    for (const cipher of ["AES128-SHA", "AES256-GCM-SHA384", "ECDHE-ECDSA-AES128-SHA"]) {
      await assert.rejects(handshake(port, { ca, maxVersion: "TLSv1.2", ciphers: cipher }), Error, cipher);
    }
    assert.equal((await handshake(port, { ca, maxVersion: "TLSv1.2", ciphers: "ECDHE-ECDSA-AES128-GCM-SHA256" })).protocol, "TLSv1.2");
  });

  it("a replaced certificate is served to new connections without a restart", async () => {
    assert.equal((await handshake(port, { ca })).cn, "first");
    await copyFile(join(dir, "second.key"), join(dir, "tls.key"));
    await copyFile(join(dir, "second.crt"), join(dir, "tls.crt"));
    let cn = "";
    for (let i = 0; i < 50 && cn !== "second"; i++) {
      await sleep(100);
      cn = (await handshake(port, { ca }).catch(() => ({ cn: "" }))).cn;
    }
    assert.equal(cn, "second");
  });
});

describe("mutual TLS (clientCA)", { skip: noOpenssl }, () => {
  let dir: string;
  let srv: StrataServer;
  let port: number;
  let ca: Buffer;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "strata-mtls-"));
    await issue(dir, "server", "server");
    await issue(dir, "client", "client");
    ca = await readFile(join(dir, "ca.crt"));
    srv = await startStrata(
      { storage: { driver: "memory" }, tls: { certificate: join(dir, "server.crt"), key: join(dir, "server.key"), clientCA: join(dir, "ca.crt") } },
      { ca, client: { cert: await readFile(join(dir, "client.crt")), key: await readFile(join(dir, "client.key")) } },
    );
    port = Number(srv.host.split(":")[1]);
  });
  after(async () => {
    await srv?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("a client without a certificate from clientCA is refused; one with it gets through", async () => {
    const get = (opts: Record<string, unknown>) =>
      new Promise<number>((resolve, reject) => {
        httpsRequest(`https://127.0.0.1:${port}/v2/`, { ca, ...opts }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        })
          .on("error", reject)
          .end();
      });
    await assert.rejects(get({}));
    assert.equal(await get({ cert: await readFile(join(dir, "client.crt")), key: await readFile(join(dir, "client.key")) }), 200);
  });
});

describe("open registry warning", () => {
  it("without auth, listening beyond loopback logs one warning; on loopback none", async () => {
    const logs = async (addr: string) => {
      const child = spawn(process.execPath, [STRATA_BIN, "serve", "--addr", addr], { env: { ...process.env, STRATA_STORAGE__DRIVER: "memory" }, stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
      child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
      for (let i = 0; i < 200 && !out.includes("listening"); i++) await sleep(50);
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await exited;
      return out;
    };
    const wide = await logs(`0.0.0.0:${await freePort()}`);
    assert.ok(wide.includes("listening"), wide);
    assert.equal(wide.match(/no auth configured/g)?.length, 1, wide);
    const local = await logs(`127.0.0.1:${await freePort()}`);
    assert.ok(local.includes("listening"), local);
    assert.doesNotMatch(local, /no auth configured/);
  });
});
