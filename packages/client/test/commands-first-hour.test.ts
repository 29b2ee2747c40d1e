/**
 * What a new user meets in the first hour, through the CLI as a child process: terminal-safe
 * output of what a registry sends, clear one-line errors (unwritable -o, a --root without a
 * store, a --root that cannot be created), --format on every listing command, STRATA_ROOT, and
 * image arguments in every form Docker accepts.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Store } from "../src/store/store.js";
import { terminalSafe } from "../src/terminal.js";
import { type Distribution, startDistribution } from "./helpers/distribution.js";
import { type PushedImage, pushImage, smallLayer } from "./helpers/images.js";
import { runCli } from "./helpers/run-cli.js";
import { missing } from "./helpers/tools.js";

// ESC ] OSC title, BEL, ESC [ 2J (clear screen), 8-bit CSI, RIGHT-TO-LEFT OVERRIDE, a newline
const HOSTILE = "\u001b]0;owned\u0007\u001b[2J\u009b31m\u202eevil\nstrata: fake line";

/** A terminal would act on any of these. */
function assertInert(text: string): void {
  assert.doesNotMatch(text, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/, JSON.stringify(text));
}

/** A registry whose error message and manifest carry terminal escapes. */
function hostileRegistry(): Promise<{ host: string; close(): Promise<void> }> {
  const srv: Server = createServer((req, res) => {
    const url = req.url ?? "";
    if (url === "/v2/") {
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    } else if (url.startsWith("/v2/evil/error/manifests/")) {
      res.writeHead(403, { "content-type": "application/json" }).end(JSON.stringify({ errors: [{ code: "DENIED", message: HOSTILE }] }));
    } else if (url.startsWith("/v2/evil/manifest/manifests/")) {
      const body = JSON.stringify({ schemaVersion: 2, mediaType: HOSTILE, config: { mediaType: HOSTILE, digest: HOSTILE, size: 1 }, layers: [] });
      res.writeHead(200, { "content-type": "application/vnd.oci.image.manifest.v1+json" }).end(body);
    } else {
      res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ errors: [{ code: "NAME_UNKNOWN", message: HOSTILE }] }));
    }
  });
  return new Promise((resolve) => {
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as { port: number }).port;
      resolve({ host: `127.0.0.1:${port}`, close: () => new Promise((r) => srv.close(() => r())) });
    });
  });
}

describe("terminalSafe", () => {
  it("escapes C0, DEL, C1 and bidi controls, keeps other text", () => {
    assert.equal(terminalSafe("a\u001b[2Jb"), "a\\x1b[2Jb");
    assert.equal(terminalSafe("\u0007\u007f\u009b\n\t"), "\\x07\\x7f\\x9b\\x0a\\x09");
    assert.equal(terminalSafe("\u202eabc\u2066"), "\\u202eabc\\u2066");
    assert.equal(terminalSafe("données/ファイル.txt"), "données/ファイル.txt");
  });
});

describe("a new user's first hour (CLI)", { skip: missing("docker-registry", "skopeo") }, () => {
  let evil: { host: string; close(): Promise<void> };
  let reg: Distribution;
  let img: PushedImage;
  let work: string;
  let root: string;

  before(async () => {
    evil = await hostileRegistry();
    reg = await startDistribution();
    img = await pushImage(reg.host, "team/app", "1.0", [{ tar: await smallLayer("first-hour") }]);
    work = await mkdtemp(join(tmpdir(), "strata-first-hour-"));
    root = join(work, "root");
    const r = await runCli(["pull", "-q", img.ref, "--root", root]);
    assert.equal(r.code, 0, r.stderr);
  });
  after(async () => {
    await evil?.close();
    await reg?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("a registry's error message reaches the terminal inert, on one line", async () => {
    const r = await runCli(["pull", "--insecure-registry", evil.host, `${evil.host}/evil/error:v1`, "--root", join(work, "evil-1")]);
    assert.equal(r.code, 1);
    assertInert(r.stderr.slice(0, -1));
    assert.equal(r.stderr.split("\n").length, 2, r.stderr);
    assert.match(r.stderr, /^strata: .*DENIED: \\x1b\]0;owned\\x07\\x1b\[2J\\x9b31m\\u202eevil\\x0astrata: fake line\n$/);
  });

  it("an invalid manifest's fields reach the terminal inert", async () => {
    const r = await runCli(["pull", "--insecure-registry", evil.host, `${evil.host}/evil/manifest:v1`, "--root", join(work, "evil-2")]);
    assert.equal(r.code, 1);
    assertInert(r.stderr.slice(0, -1));
    assert.equal(r.stderr.split("\n").length, 2, r.stderr);
    const plain = await runCli(["pull", "--insecure-registry", evil.host, `${evil.host}/evil/manifest:v1`, "--root", join(work, "evil-2"), "--format", "json"]);
    assertInert(plain.stdout + plain.stderr.slice(0, -1));
  });

  it("names and tags from the store are printed inert (images, inspect, templates)", async () => {
    const store = await Store.open(root);
    const id = img.configDigest;
    await store.withLock(() =>
      store.updateRepositories((r) => {
        r[`x\u001b[2J`] = { [`x\u001b[2J:t\u202e`]: id };
      }),
    );
    try {
      for (const args of [["images"], ["images", "--format", "{{.Repository}}\t{{.Tag}}"], ["images", "--format", "json"], ["inspect", id]]) {
        const r = await runCli([...args, "--root", root]);
        assert.equal(r.code, 0, r.stderr);
        assertInert(r.stdout.replace(/[\n\t]/g, ""));
      }
      const t = await runCli(["images", "--format", "{{.Repository}}\t{{.Tag}}", "--root", root]);
      assert.ok(t.stdout.includes("x\\x1b[2J\tt\\u202e\n"), t.stdout);
    } finally {
      await store.withLock(() =>
        store.updateRepositories((r) => {
          delete r[`x\u001b[2J`];
        }),
      );
    }
  });

  it("save to a missing directory is one clear line, no stack trace, no file", async () => {
    const r = await runCli(["save", img.ref, "-o", "/nonexistent-strata/x.tar", "--root", root]);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, "strata: cannot write /nonexistent-strata/x.tar: directory /nonexistent-strata does not exist\n");
    assert.equal(r.stdout, "");
  });

  it("read-only commands on a root without a store fail clearly and create nothing", async () => {
    const typo = join(work, "typo");
    for (const args of [["images"], ["verify"], ["ps"], ["inspect", "x"], ["save", "x", "-o", join(work, "x.tar")], ["diff", "x"], ["rmi", "x"]]) {
      const r = await runCli([...args, "--root", typo]);
      assert.equal(r.code, 1, `${args[0]}: ${r.stdout}`);
      assert.equal(r.stderr, `strata: no image store at ${typo} (nothing pulled there yet; --root or STRATA_ROOT names the store)\n`, args[0]);
      assert.ok(!existsSync(typo), `${args[0]} created ${typo}`);
    }
  });

  it("pull --root under /proc fails at once with a clear message", async () => {
    const started = Date.now();
    const r = await runCli(["pull", "-q", img.ref, "--root", "/proc/strata-x"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^strata: cannot create a store at \/proc\/strata-x: ENOENT/);
    assert.ok(Date.now() - started < 30_000);
  });

  it("STRATA_ROOT names the store; help shows the default and the variable", async () => {
    const r = await runCli(["images", "--format", "{{.Repository}}:{{.Tag}}"], { env: { ...process.env, STRATA_ROOT: root } });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${reg.host}/team/app:1.0\n`);
    const h = await runCli(["images", "--help"]);
    assert.match(h.stdout, /--root <dir>\s+store root \(Docker data-root layout\)\s+\(default:\s+"\/[^"]+",\s+env:\s+STRATA_ROOT\)/);
  });

  it("--format: table, json and Go templates on images, verify, ps and pull; unknown fields are refused", async () => {
    const table = await runCli(["images", "--format", "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}", "--root", root]);
    assert.equal(table.code, 0, table.stderr);
    const lines = table.stdout.trimEnd().split("\n");
    assert.match(lines[0], /^REPOSITORY +TAG +DIGEST$/);
    assert.equal(lines[1], `${`${reg.host}/team/app`.padEnd(`${reg.host}/team/app`.length + 3)}1.0${" ".repeat(7)}${img.manifestDigest}`);
    const json = await runCli(["images", "--format", "json", "--root", root]);
    assert.deepEqual(
      json.stdout
        .trimEnd()
        .split("\n")
        .map((l) => JSON.parse(l).id),
      [img.configDigest],
    );
    const whole = await runCli(["images", "--format", "{{json .}}", "--root", root]);
    assert.equal(JSON.parse(whole.stdout).ID, img.configDigest.slice(7, 19));
    const v = await runCli(["verify", "--format", "{{.DiffID}} {{.Status}}", "--root", root]);
    assert.equal(v.code, 0, v.stderr);
    assert.equal(v.stdout, `${img.diffIds[0]} OK\n`);
    const ps = await runCli(["ps", "--format", "table {{.ID}}\t{{.Names}}", "--root", root]);
    assert.equal(ps.code, 0, ps.stderr);
    assert.match(ps.stdout, /^CONTAINER ID +NAMES\n$/);
    const p = await runCli(["pull", img.ref, "--format", "{{.ID}} {{.Status}}", "--root", root]);
    assert.equal(p.stdout, `${img.configDigest} Image is up to date\n`);
    for (const [cmd, field] of [
      ["images", "Nope"],
      ["verify", "Repository"],
      ["ps", "Size"],
    ]) {
      const bad = await runCli([cmd, "--format", `{{.${field}}}`, "--root", root]);
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, new RegExp(`^strata: --format: ${cmd} has no field \\.${field} \\(fields: \\.ID, `));
    }
    const action = await runCli(["images", "--format", "{{range .}}x{{end}}", "--root", root]);
    assert.match(action.stderr, /^strata: --format: unsupported action \{\{range \.\}\}/);
  });

  it("accepts the image arguments Docker accepts; the stored name keeps the registry's host:port", async () => {
    const id = img.configDigest;
    const name = `${reg.host}/team/app`;
    const inspectId = async (arg: string) => {
      const r = await runCli(["inspect", arg, "--root", root]);
      return r.code === 0 ? JSON.parse(r.stdout).Id : r.stderr;
    };
    assert.equal(await inspectId(`${name}:1.0`), id);
    assert.equal(await inspectId(`${name}@${img.manifestDigest}`), id);
    assert.equal(await inspectId(id), id);
    assert.equal(await inspectId(id.slice(7)), id);
    assert.equal(await inspectId(id.slice(7, 19)), id);
    assert.equal(await inspectId(`sha256:${id.slice(7, 19)}`), id);
    assert.equal(await inspectId("team/app:1.0"), "strata: No such image: team/app:1.0\n", "team/app is docker.io/team/app");
    // Docker Hub names: alpine = alpine:latest = library/alpine = docker.io/library/alpine:latest
    const store = await Store.open(root);
    await store.withLock(() =>
      store.updateRepositories((r) => {
        r.alpine = { "alpine:latest": id };
      }),
    );
    for (const arg of ["alpine", "alpine:latest", "library/alpine", "docker.io/library/alpine:latest", "index.docker.io/library/alpine"]) {
      assert.equal(await inspectId(arg), id, arg);
    }
    const save = await runCli(["save", "alpine", "-o", join(work, "alpine.tar"), "--root", root]);
    assert.equal(save.code, 0, save.stderr);
  });
});
