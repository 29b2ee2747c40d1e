/**
 * Registry auth against real distribution instances: htpasswd basic auth (credentials from
 * options, from a Docker config.json, and through the CLI's --password-stdin) and token auth
 * (distribution's `auth: token` verifying JWTs from a token server run by the test).
 */
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { pull } from "../src/pull.js";
import { getCredentials } from "../src/credentials/docker-config.js";
import { parseChallenges, redact } from "../src/registry/auth.js";
import { RegistryClient } from "../src/registry/client.js";
import { startTokenServer, writeHtpasswd } from "./helpers/auth-servers.js";
import { type Distribution, pushOciLayout, startDistribution } from "./helpers/distribution.js";
import { type PushedImage, smallLayer } from "./helpers/images.js";
import { OciLayoutBuilder } from "./helpers/oci-build.js";
import { runCli } from "./helpers/run-cli.js";
import { missing } from "./helpers/tools.js";

const USER = "strata-user";
const PASSWORD = "s3cret-Pa55word";

async function pushWithCreds(host: string, repo: string, creds: string): Promise<PushedImage> {
  const dir = await mkdtemp(join(tmpdir(), "strata-build-"));
  try {
    const b = new OciLayoutBuilder(dir);
    const img = await b.image({ layers: [{ tar: await smallLayer(repo.replace(/\W/g, "")) }] });
    const { topDigest } = await b.finish("v1", [img]);
    await pushOciLayout(dir, "v1", `${host}/${repo}:v1`, { creds });
    return { ...img, ref: `${host}/${repo}:v1`, topDigest };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe("WWW-Authenticate parsing and redaction", () => {
  it("parses a Bearer challenge with quoted parameters", () => {
    const c = parseChallenges('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"');
    assert.deepEqual(c, [
      { scheme: "bearer", params: { realm: "https://auth.example/token", service: "registry.example", scope: "repository:a/b:pull,push" } },
    ]);
    assert.deepEqual(parseChallenges('Basic realm="basic-realm"'), [{ scheme: "basic", params: { realm: "basic-realm" } }]);
  });
  it("redacts passwords and their base64 forms", () => {
    const creds = { username: "u", password: "hunter22" };
    const b64 = Buffer.from("u:hunter22").toString("base64");
    assert.equal(redact(`x hunter22 y ${b64}`, creds), "x [REDACTED] y [REDACTED]");
  });
});

describe("basic auth (distribution with htpasswd)", { skip: missing("docker-registry", "skopeo", "htpasswd") }, () => {
  let reg: Distribution;
  let dir: string;
  let img: PushedImage;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "strata-auth-"));
    await writeHtpasswd(join(dir, "htpasswd"), USER, PASSWORD);
    reg = await startDistribution({ htpasswd: { path: join(dir, "htpasswd") } });
    img = await pushWithCreds(reg.host, "test/private", `${USER}:${PASSWORD}`);
  });
  after(async () => {
    await reg?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("fails clearly without credentials", async () => {
    const root = join(dir, "r0");
    await assert.rejects(pull(img.ref, { root }), /authentication required for test\/private \(no credentials\)/);
  });

  it("pulls with credentials given as options; wrong ones are rejected without echoing them", async () => {
    const r = await pull(img.ref, { root: join(dir, "r1"), credentials: { username: USER, password: PASSWORD } });
    assert.equal(r.imageId, img.configDigest);
    await assert.rejects(pull(img.ref, { root: join(dir, "r2"), credentials: { username: USER, password: "wrong-password-123" } }), (e: Error) => {
      assert.match(e.message, /credentials rejected/);
      assert.ok(!e.message.includes("wrong-password-123"));
      return true;
    });
  });

  it("reads credentials from a Docker config.json (auths.<host>.auth)", async () => {
    const cfgDir = join(dir, "dockercfg");
    await import("node:fs/promises").then((fs) => fs.mkdir(cfgDir, { recursive: true }));
    const path = join(cfgDir, "config.json");
    await writeFile(path, JSON.stringify({ auths: { [reg.host]: { auth: Buffer.from(`${USER}:${PASSWORD}`).toString("base64") } } }));
    const creds = await getCredentials(reg.host, { configDir: cfgDir });
    assert.deepEqual(creds, { username: USER, password: PASSWORD });
    assert.equal(await getCredentials("other.example:5000", { configDir: cfgDir }), undefined);
    // the CLI picks them up through $DOCKER_CONFIG
    const res = await runCli(["pull", "-q", img.ref, "--root", join(dir, "r3")], { env: { ...process.env, DOCKER_CONFIG: cfgDir } });
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stdout, `${img.ref}\n`);
  });

  it("the CLI takes --username with --password-stdin and never prints the password", async () => {
    const ok = await runCli(["pull", img.ref, "--root", join(dir, "r4"), "--username", USER, "--password-stdin"], { input: `${PASSWORD}\n` });
    assert.equal(ok.code, 0, ok.stderr);
    assert.ok(!ok.stdout.includes(PASSWORD) && !ok.stderr.includes(PASSWORD));
    const bad = await runCli(["pull", img.ref, "--root", join(dir, "r5"), "--username", USER, "--password-stdin"], { input: "nope-nope-nope\n" });
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /^strata: .*authentication required.*\n$/);
    assert.ok(!bad.stderr.includes("nope-nope-nope"));
  });
});

describe("token auth (distribution with auth: token)", { skip: missing("docker-registry", "skopeo", "openssl") }, () => {
  let reg: Distribution;
  let dir: string;
  let tokens: Awaited<ReturnType<typeof startTokenServer>>;
  let img: PushedImage;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "strata-token-"));
    tokens = await startTokenServer(dir, { username: USER, password: PASSWORD });
    reg = await startDistribution({ token: { realm: tokens.realm, service: tokens.service, issuer: tokens.issuer, rootCertBundle: tokens.certPath } });
    img = await pushWithCreds(reg.host, "test/tok", `${USER}:${PASSWORD}`);
  });
  after(async () => {
    await reg?.stop();
    await tokens?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("follows the Bearer challenge: one token for repository:<name>:pull, cached for every request of the pull", async () => {
    const before = tokens.requests.length;
    const r = await pull(img.ref, { root: join(dir, "r1"), credentials: { username: USER, password: PASSWORD } });
    assert.equal(r.imageId, img.configDigest);
    const mine = tokens.requests.slice(before);
    assert.equal(mine.length, 1);
    assert.equal(mine[0].scope, "repository:test/tok:pull");
    assert.equal(mine[0].service, tokens.service);
  });

  it("requests refused at once share one token: 8 HEADs on a new client, one token request, every one answered", async () => {
    const before = tokens.requests.length;
    const client = new RegistryClient({ domain: reg.host, credentials: { username: USER, password: PASSWORD } });
    const path = `/v2/test/tok/blobs/${img.configDigest}`;
    const answers = await Promise.all(
      Array.from({ length: 8 }, async () => {
        const res = await client.request(path, { repository: "test/tok", method: "HEAD", small: true });
        await res.body.cancel().catch(() => {});
        return res.status;
      }),
    );
    assert.deepEqual(answers, Array(8).fill(200));
    assert.equal(tokens.requests.length - before, 1, JSON.stringify(tokens.requests.slice(before)));
  });

  it("a token server refusing the credentials fails the pull without echoing them", async () => {
    await assert.rejects(pull(img.ref, { root: join(dir, "r2"), credentials: { username: USER, password: "bad-bad-bad" } }), (e: Error) => {
      assert.match(e.message, /token request to http:\/\/127\.0\.0\.1:\d+\/token failed: HTTP 401/);
      assert.ok(!e.message.includes("bad-bad-bad"));
      return true;
    });
    await assert.rejects(pull(img.ref, { root: join(dir, "r3") }), /token request .* failed: HTTP 401/);
  });
});

