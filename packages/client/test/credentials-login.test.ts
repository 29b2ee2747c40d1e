/**
 * Credentials: Docker's config.json (auths, credsStore, credHelpers) round trips, credential
 * helpers as real processes speaking the docker-credential protocol (written by the test), and
 * `strata login`/`logout` against real registries: distribution with htpasswd (Basic) and with
 * the token flow. Passwords never appear in any output.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chmod, mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { eraseCredentials, getCredentials, storeCredentials } from "../src/credentials/docker-config.js";
import { startTokenServer } from "./helpers/auth-servers.js";
import { type Distribution, freePort, pushOciLayout, startDistribution } from "./helpers/distribution.js";
import { smallLayer } from "./helpers/images.js";
import { OciLayoutBuilder } from "./helpers/oci-build.js";
import { runCli } from "./helpers/run-cli.js";
import { missing } from "./helpers/tools.js";

const USER = "ci-user";
const PASSWORD = "s3cret-Pa55word-xyz";

/** A docker-credential helper: keeps credentials in <bin>/<its name>.json and logs each action. */
const HELPER = `#!/usr/bin/env node
const fs = require("fs");
const path = require("path");
const file = path.join(__dirname, path.basename(__filename) + ".json");
const action = process.argv[2];
const input = fs.readFileSync(0, "utf8");
const db = fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, "utf8")) : {};
fs.appendFileSync(file + ".log", action + " " + (action === "store" ? JSON.parse(input).ServerURL : input) + "\\n");
if (action === "store") {
  const j = JSON.parse(input);
  db[j.ServerURL] = { Username: j.Username, Secret: j.Secret };
  fs.writeFileSync(file, JSON.stringify(db));
} else if (action === "get") {
  const e = db[input];
  if (!e) { process.stdout.write("credentials not found in native keychain\\n"); process.exit(1); }
  process.stdout.write(JSON.stringify({ ServerURL: input, Username: e.Username, Secret: e.Secret }) + "\\n");
} else if (action === "erase") {
  delete db[input];
  fs.writeFileSync(file, JSON.stringify(db));
} else { process.stdout.write("unknown action\\n"); process.exit(1); }
`;

async function writeExec(path: string, text: string): Promise<void> {
  await writeFile(path, text);
  await chmod(path, 0o755);
}

let work: string;
let bin: string;
let env: NodeJS.ProcessEnv;
let n = 0;

/** A fresh DOCKER_CONFIG dir with `config` (if given) as its config.json. */
async function configDir(config?: unknown): Promise<string> {
  const d = join(work, `cfg-${n++}`);
  await mkdir(d);
  if (config !== undefined) await writeFile(join(d, "config.json"), JSON.stringify(config));
  return d;
}

const readJson = async (p: string) => JSON.parse(await readFile(p, "utf8"));

before(async () => {
  work = await mkdtemp(join(tmpdir(), "strata-creds-"));
  bin = join(work, "bin");
  await mkdir(bin);
  for (const name of ["strata-test", "strata-other"]) await writeExec(join(bin, `docker-credential-${name}`), HELPER);
  await writeExec(join(bin, "docker-credential-strata-slow"), "#!/bin/sh\nexec sleep 30\n");
  await writeExec(join(bin, "docker-credential-strata-loud"), "#!/bin/sh\nexec head -c 1000000 /dev/zero\n");
  await writeExec(join(bin, "docker-credential-strata-echo"), "#!/bin/sh\ncat\nexit 3\n");
  env = { ...process.env, PATH: `${bin}:${process.env.PATH}` };
  process.env.PATH = env.PATH;
});
after(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe("Docker config.json credentials", () => {
  it("round trips auths entries, keeps other fields, writes 0600, uses Docker Hub's key", async () => {
    const dir = await configDir({ auths: { "other.example": { auth: "eDp5" } }, proxies: { default: { httpProxy: "http://p" } }, detachKeys: "ctrl-e,e" });
    await storeCredentials("127.0.0.1:5000", { username: USER, password: PASSWORD }, { configDir: dir });
    await storeCredentials("docker.io", { username: "hub", password: "hubpw" }, { configDir: dir });
    const cfg = await readJson(join(dir, "config.json"));
    assert.deepEqual(cfg.auths["127.0.0.1:5000"], { auth: Buffer.from(`${USER}:${PASSWORD}`).toString("base64") });
    assert.deepEqual(cfg.auths["https://index.docker.io/v1/"], { auth: Buffer.from("hub:hubpw").toString("base64") });
    assert.deepEqual(cfg.auths["other.example"], { auth: "eDp5" });
    assert.deepEqual(cfg.proxies, { default: { httpProxy: "http://p" } });
    assert.equal(cfg.detachKeys, "ctrl-e,e");
    assert.equal((await stat(join(dir, "config.json"))).mode & 0o777, 0o600);
    assert.deepEqual(await getCredentials("127.0.0.1:5000", { configDir: dir }), { username: USER, password: PASSWORD });
    assert.deepEqual(await getCredentials("index.docker.io", { configDir: dir }), { username: "hub", password: "hubpw" });
    assert.equal(await getCredentials("nowhere.example", { configDir: dir }), undefined);
    assert.equal(await eraseCredentials("127.0.0.1:5000", { configDir: dir }), true);
    assert.equal(await eraseCredentials("127.0.0.1:5000", { configDir: dir }), false);
    assert.equal((await readJson(join(dir, "config.json"))).auths["127.0.0.1:5000"], undefined);
  });

  it("finds entries Docker finds: scheme and path ignored, user name and password fields", async () => {
    const dir = await configDir({
      auths: {
        "https://reg.example:5000/v2/": { auth: Buffer.from("a:pa").toString("base64") },
        "http://plain.example": { username: "b", password: "pb" },
        "index.docker.io": { auth: Buffer.from("c:pc").toString("base64") },
      },
    });
    assert.deepEqual(await getCredentials("reg.example:5000", { configDir: dir }), { username: "a", password: "pa" });
    assert.deepEqual(await getCredentials("plain.example", { configDir: dir }), { username: "b", password: "pb" });
    assert.deepEqual(await getCredentials("docker.io", { configDir: dir }), { username: "c", password: "pc" });
    assert.equal(await getCredentials("reg.example", { configDir: dir }), undefined);
  });

  it("creates the directory and file when missing; writes through a symlinked config.json", async () => {
    const dir = join(work, "fresh", "docker");
    await storeCredentials("r.example", { username: "u", password: "p" }, { configDir: dir });
    assert.equal((await stat(join(dir, "config.json"))).mode & 0o777, 0o600);
    const linked = await configDir();
    const real = join(work, "real-config.json");
    await writeFile(real, "{}");
    await symlink(real, join(linked, "config.json"));
    await storeCredentials("r.example", { username: "u", password: "p" }, { configDir: linked });
    assert.ok((await readJson(real)).auths["r.example"]);
  });

  it("a broken config.json fails with its path, and is left as it was", async () => {
    const dir = await configDir();
    await writeFile(join(dir, "config.json"), "{not json");
    await assert.rejects(storeCredentials("r.example", { username: "u", password: "p" }, { configDir: dir }), /config\.json is not valid JSON/);
    assert.equal(await readFile(join(dir, "config.json"), "utf8"), "{not json");
  });
});

describe("credential helpers (docker-credential-* processes)", () => {
  it("credsStore keeps the secret in the helper; config.json gets an empty auths entry", async () => {
    const dir = await configDir({ credsStore: "strata-test" });
    await storeCredentials("reg.example:5000", { username: USER, password: PASSWORD }, { configDir: dir });
    const text = await readFile(join(dir, "config.json"), "utf8");
    assert.ok(!text.includes(PASSWORD) && !text.includes(Buffer.from(`${USER}:${PASSWORD}`).toString("base64")));
    assert.deepEqual(JSON.parse(text).auths, { "reg.example:5000": {} });
    assert.deepEqual((await readJson(join(bin, "docker-credential-strata-test.json")))["reg.example:5000"], { Username: USER, Secret: PASSWORD });
    assert.deepEqual(await getCredentials("reg.example:5000", { configDir: dir }), { username: USER, password: PASSWORD });
    assert.equal(await getCredentials("unknown.example", { configDir: dir }), undefined);
    assert.equal(await eraseCredentials("reg.example:5000", { configDir: dir }), true);
    assert.equal(await getCredentials("reg.example:5000", { configDir: dir }), undefined);
    const log = await readFile(join(bin, "docker-credential-strata-test.json.log"), "utf8");
    assert.match(log, /^store reg\.example:5000\nget reg\.example:5000\nget unknown\.example\nget reg\.example:5000\nerase reg\.example:5000\nget reg\.example:5000\n$/);
  });

  it("credHelpers names the helper of one registry, over credsStore", async () => {
    const dir = await configDir({ credsStore: "strata-test", credHelpers: { "special.example": "strata-other" } });
    await storeCredentials("special.example", { username: "s", password: "special-pw" }, { configDir: dir });
    assert.deepEqual((await readJson(join(bin, "docker-credential-strata-other.json")))["special.example"], { Username: "s", Secret: "special-pw" });
    assert.equal((await readJson(join(bin, "docker-credential-strata-test.json")))["special.example"], undefined);
    assert.deepEqual(await getCredentials("special.example", { configDir: dir }), { username: "s", password: "special-pw" });
  });

  it("a helper that hangs is killed at the deadline; one that floods is cut off; a missing one is named", async () => {
    const slow = await configDir({ credsStore: "strata-slow" });
    const t0 = Date.now();
    await assert.rejects(getCredentials("r.example", { configDir: slow, helperTimeoutMs: 300 }), /docker-credential-strata-slow get did not answer within 300 ms/);
    assert.ok(Date.now() - t0 < 5000);
    const loud = await configDir({ credsStore: "strata-loud" });
    await assert.rejects(getCredentials("r.example", { configDir: loud }), /printed more than 65536 bytes/);
    const none = await configDir({ credsStore: "strata-absent" });
    await assert.rejects(getCredentials("r.example", { configDir: none }), /credential helper docker-credential-strata-absent not found on PATH/);
    const bad = await configDir({ credsStore: "../../bin/sh" });
    await assert.rejects(getCredentials("r.example", { configDir: bad }), /invalid credential helper name/);
  });

  it("a failing helper's message never carries the secret", async () => {
    const dir = await configDir({ credsStore: "strata-echo" });
    await assert.rejects(storeCredentials("r.example", { username: USER, password: PASSWORD }, { configDir: dir }), (e: Error) => {
      assert.match(e.message, /docker-credential-strata-echo store failed \(exit status 3\)/);
      assert.ok(!e.message.includes(PASSWORD), e.message);
      return true;
    });
  });
});

describe("strata login / logout against distribution", { skip: missing("docker-registry", "htpasswd", "skopeo") }, () => {
  let reg: Distribution;

  before(async () => {
    const htpasswd = join(work, "htpasswd");
    await writeFile(htpasswd, execFileSync("htpasswd", ["-Bbn", USER, PASSWORD]));
    reg = await startDistribution({ htpasswd: { path: htpasswd } });
    const layout = join(work, "img");
    const b = new OciLayoutBuilder(layout);
    const img = await b.image({ layers: [{ tar: await smallLayer("creds") }] });
    await b.finish("v1", [img]);
    await pushOciLayout(layout, "v1", `${reg.host}/team/private:v1`, { creds: `${USER}:${PASSWORD}` });
  });
  after(async () => {
    await reg?.stop();
  });

  it("wrong credentials: one line, exit 1, nothing stored, no secret printed", async () => {
    const dir = await configDir();
    const r = await runCli(["login", reg.host, "-u", USER, "--password-stdin"], { input: "wrong-password\n", env: { ...env, DOCKER_CONFIG: dir } });
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `strata: login to ${reg.host} failed: unauthorized: incorrect username or password\n`);
    assert.equal(r.stdout, "");
    await assert.rejects(stat(join(dir, "config.json")));
    const usage = await runCli(["login", reg.host, "-u", USER], { env: { ...env, DOCKER_CONFIG: dir } });
    assert.equal(usage.code, 2);
  });

  it("login stores credentials that pull then uses; logout removes them", async () => {
    const dir = await configDir();
    const denv = { ...env, DOCKER_CONFIG: dir };
    const r = await runCli(["login", reg.host, "-u", USER, "--password-stdin"], { input: `${PASSWORD}\n`, env: denv });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "Login Succeeded\n");
    assert.ok(!r.stderr.includes(PASSWORD));
    const cfg = await readJson(join(dir, "config.json"));
    assert.equal(Buffer.from(cfg.auths[reg.host].auth, "base64").toString(), `${USER}:${PASSWORD}`);
    assert.equal((await stat(join(dir, "config.json"))).mode & 0o777, 0o600);
    // strata pull uses what login stored
    const pull = await runCli(["pull", "-q", `${reg.host}/team/private:v1`, "--root", join(work, "root")], { env: denv });
    assert.equal(pull.code, 0, pull.stderr);
    const out = await runCli(["logout", reg.host], { env: denv });
    assert.equal(out.stdout, `Removing login credentials for ${reg.host}\n`);
    assert.equal((await readJson(join(dir, "config.json"))).auths[reg.host], undefined);
    assert.equal((await runCli(["logout", reg.host], { env: denv })).stdout, `Not logged in to ${reg.host}\n`);
  });

  it("login through a credential helper keeps the secret out of config.json", async () => {
    const dir = await configDir({ credsStore: "strata-test" });
    const r = await runCli(["login", reg.host, "-u", USER, "--password-stdin"], { input: PASSWORD, env: { ...env, DOCKER_CONFIG: dir } });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!(await readFile(join(dir, "config.json"), "utf8")).includes(Buffer.from(`${USER}:${PASSWORD}`).toString("base64")));
    assert.deepEqual((await readJson(join(bin, "docker-credential-strata-test.json")))[reg.host], { Username: USER, Secret: PASSWORD });
    // pulls take the credentials from the helper too
    const pull = await runCli(["pull", "-q", `${reg.host}/team/private:v1`, "--root", join(work, "root-helper")], { env: { ...env, DOCKER_CONFIG: dir } });
    assert.equal(pull.code, 0, pull.stderr);
    const without = await runCli(["pull", "-q", `${reg.host}/team/private:v1`, "--root", join(work, "root-none")], { env: { ...env, DOCKER_CONFIG: await configDir() } });
    assert.equal(without.code, 1);
  });

  it("an unreachable registry: one line, exit 1", async () => {
    const port = await freePort();
    const r = await runCli(["login", `127.0.0.1:${port}`, "-u", USER, "--password-stdin"], { input: PASSWORD, env: { ...env, DOCKER_CONFIG: await configDir() } });
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `strata: login to 127.0.0.1:${port} failed: cannot reach registry http://127.0.0.1:${port}: ECONNREFUSED\n`);
  });
});

describe("strata login with the token flow (distribution auth: token)", { skip: missing("docker-registry", "openssl") }, () => {
  let reg: Distribution;
  let tokens: Awaited<ReturnType<typeof startTokenServer>>;

  before(async () => {
    const dir = await mkdtemp(join(work, "tok-"));
    tokens = await startTokenServer(dir, { username: USER, password: PASSWORD });
    reg = await startDistribution({ token: { realm: tokens.realm, service: tokens.service, issuer: tokens.issuer, rootCertBundle: tokens.certPath } });
  });
  after(async () => {
    await reg?.stop();
    await tokens?.stop();
  });

  it("accepts the right password, refuses a wrong one", async () => {
    const dir = await configDir();
    const bad = await runCli(["login", reg.host, "-u", USER, "--password-stdin"], { input: "nope", env: { ...env, DOCKER_CONFIG: dir } });
    assert.equal(bad.code, 1);
    assert.equal(bad.stderr, `strata: login to ${reg.host} failed: unauthorized: incorrect username or password\n`);
    const ok = await runCli(["login", reg.host, "-u", USER, "--password-stdin"], { input: PASSWORD, env: { ...env, DOCKER_CONFIG: dir } });
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout, "Login Succeeded\n");
    const last = tokens.requests.at(-1);
    assert.equal(last?.service, tokens.service);
    assert.ok((await readJson(join(dir, "config.json"))).auths[reg.host].auth);
  });
});
