/**
 * HTTPS by default: a registry named by a non-loopback name is reached over TLS. distribution
 * serves HTTPS with a certificate made here for this machine's host name (which resolves to a
 * loopback address); the CLI trusts it through NODE_EXTRA_CA_CERTS, and fails with a clear
 * error without it. Skipped when the host name does not resolve to loopback.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { lookup } from "node:dns/promises";
import { mkdtemp, rm } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { hostname, networkInterfaces, tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { registryBaseUrl } from "../src/registry/client.js";
import { type Distribution, startDistribution } from "./helpers/distribution.js";
import { type PushedImage, pushImage, smallLayer } from "./helpers/images.js";
import { runCli } from "./helpers/run-cli.js";
import { missing } from "./helpers/tools.js";

const host = hostname();
const resolvesToLoopback = await lookup(host).then(
  (a) => /^127\./.test(a.address) && !host.includes("."),
  () => false,
);


describe("HTTPS registries", { skip: missing("openssl", "docker-registry", "skopeo") || (resolvesToLoopback ? false : `host name ${host} does not resolve to loopback`) }, () => {
  let dir: string;
  let reg: Distribution;
  let img: PushedImage;
  let ref: string;
  let certPath: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "strata-tls-"));
    certPath = join(dir, "cert.pem");
    const keyPath = join(dir, "key.pem");
    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        keyPath,
        "-out",
        certPath,
        "-subj",
        `/CN=${host}`,
        "-addext",
        `subjectAltName=DNS:${host}`,
        "-days",
        "2",
      ],
      { stdio: "ignore" },
    );
    reg = await startDistribution({ tls: { certificate: certPath, key: keyPath } });
    img = await pushImage(`${host}:${reg.port}`, "test/tls", "v1", [{ tar: await smallLayer("tls") }]);
    ref = `${host}:${reg.port}/test/tls:v1`;
  });
  after(async () => {
    await reg?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("a non-loopback registry name means HTTPS", () => {
    assert.equal(registryBaseUrl(`${host}:${reg.port}`), `https://${host}:${reg.port}`);
  });

  it("pulls over TLS from a registry whose CA is trusted", async () => {
    const r = await runCli(["pull", "--format", "json", ref, "--root", join(dir, "r1")], { env: { ...process.env, NODE_EXTRA_CA_CERTS: certPath } });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).id, img.configDigest);
  });

  it("refuses an untrusted certificate with one clear line", async () => {
    const env = { ...process.env };
    delete env.NODE_EXTRA_CA_CERTS;
    const r = await runCli(["pull", ref, "--root", join(dir, "r2")], { env });
    assert.notEqual(r.code, 0);
    assert.match(
      r.stderr,
      /^strata: cannot reach registry https:\/\/.*: (DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE)\n$/,
    );
  });
});

/** An address of this machine that is not loopback (so the client picks HTTPS for it). */
const outsideAddress = Object.values(networkInterfaces())
  .flat()
  .find((a) => a && a.family === "IPv4" && !a.internal)?.address;

describe("HTTPS to a plain-HTTP registry", { skip: outsideAddress ? false : "no non-loopback IPv4 address on this machine" }, () => {
  it("says the registry speaks plain HTTP and names --insecure-registry, instead of a TLS error code", async () => {
    const server = http.createServer((_req, res) => res.end("{}"));
    await new Promise<void>((r) => server.listen(0, outsideAddress, r));
    const domain = `${outsideAddress}:${(server.address() as AddressInfo).port}`;
    const dir = await mkdtemp(join(tmpdir(), "strata-plain-"));
    try {
      const r = await runCli(["pull", `${domain}/a/b:1`, "--root", join(dir, "r")]);
      assert.equal(r.code, 1);
      assert.equal(r.stderr, `strata: ${domain}: the registry speaks plain HTTP: use --insecure-registry ${domain}\n`);
    } finally {
      server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
