/**
 * `strata login` and `strata copy ... docker://` against Strata's own registry (a `strata serve`
 * process) with token authentication (htpasswd users, the registry's token endpoint, access
 * rules): what is pushed is read back by skopeo with the same digests; a same-registry copy
 * mounts across repositories (a token for both); wrong credentials fail with one line.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { bigLayer, smallLayer } from "@strata/client/test-helpers/images.js";
import { type BuiltImage, OciLayoutBuilder } from "@strata/client/test-helpers/oci-build.js";
import { addSignature, SIG_TYPE } from "@strata/client/test-helpers/artifact.js";
import { startCuttingProxy, streamsBlob } from "@strata/client/test-helpers/cutting-proxy.js";
import { missing } from "@strata/client/test-helpers/tools.js";
import { mustRun, run, type StrataServer, startStrata, strata } from "./helpers/strata.js";

const sha = (b: string) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

describe("strata login + copy docker:// against strata serve (token auth)", { skip: missing("skopeo", "htpasswd", "openssl") }, () => {
  let srv: StrataServer;
  let work: string;
  let layout: string;
  let env: NodeJS.ProcessEnv;
  let single: BuiltImage;
  let indexDigest: string;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), "strata-push-srv-"));
    const htpasswd = join(work, "htpasswd");
    await mustRun("htpasswd", ["-cbB", htpasswd, "alice", "alice-secret"]);
    await mustRun("openssl", ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", join(work, "token.pem")]);
    srv = await startStrata({
      storage: { driver: "filesystem", filesystem: { root: join(work, "data") } },
      auth: { htpasswd: { path: htpasswd }, token: { signingKey: join(work, "token.pem") } },
      access: [{ repositories: ["team/**"], users: ["alice"], actions: ["*"] }],
    });
    layout = join(work, "src");
    const b = new OciLayoutBuilder(layout);
    single = await b.image({ layers: [{ tar: await smallLayer("s1") }, { tar: await bigLayer("s2", 18 << 20) }] });
    const amd = await b.image({ layers: [{ tar: await smallLayer("amd") }], architecture: "amd64" });
    const arm = await b.image({ layers: [{ tar: await smallLayer("arm") }], architecture: "arm64", variant: "v8" });
    indexDigest = (await b.finish("multi", [amd, arm], true)).topDigest;
    const idx = JSON.parse(await readFile(join(layout, "index.json"), "utf8"));
    idx.manifests.push({ mediaType: "application/vnd.oci.image.manifest.v1+json", digest: single.manifestDigest, size: single.manifestSize, annotations: { "org.opencontainers.image.ref.name": "v1" } });
    await writeFile(join(layout, "index.json"), JSON.stringify(idx));
    env = { DOCKER_CONFIG: join(work, "docker") };
  });
  after(async () => {
    await srv?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  const inspectRaw = async (ref: string) => (await mustRun("skopeo", ["inspect", "--raw", "--tls-verify=false", "--creds", "alice:alice-secret", `docker://${ref}`])).toString();

  it("a wrong password: login fails with one line, exit 1, nothing stored", async () => {
    const r = await strata(["login", srv.host, "-u", "alice", "--password-stdin"], { env, input: "nope\n" });
    assert.equal(r.code, 1);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.doesNotMatch(r.stderr, /nope/);
  });

  it("login, then copy oci: -> docker:// keeps the digest (skopeo inspect)", async () => {
    const l = await strata(["login", srv.host, "-u", "alice", "--password-stdin"], { env, input: "alice-secret\n" });
    assert.equal(l.code, 0, l.stderr);
    const r = await strata(["copy", `oci:${layout}:v1`, `docker://${srv.host}/team/one:v1`], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(sha(await inspectRaw(`${srv.host}/team/one:v1`)), single.manifestDigest);
    // skopeo pulls (and verifies) every blob
    await mustRun("skopeo", ["copy", "--quiet", "--src-tls-verify=false", "--src-creds", "alice:alice-secret", `docker://${srv.host}/team/one:v1`, `oci:${join(work, "back")}:x`]);
  });

  it("--all of a two-platform index keeps the index digest", async () => {
    const r = await strata(["copy", "--all", "--quiet", `oci:${layout}:multi`, `docker://${srv.host}/team/multi:m`], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(sha(await inspectRaw(`${srv.host}/team/multi:m`)), indexDigest);
  });

  it("docker:// -> docker:// on the same registry mounts every blob", async () => {
    const r = await strata(["copy", "--format", "json", `docker://${srv.host}/team/one:v1`, `docker://${srv.host}/team/two:v1`], { env });
    assert.equal(r.code, 0, r.stderr);
    const ev = r.stdout
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l) as { event: string; status?: string; digest?: string });
    const blobs = ev.filter((e) => e.event === "blob");
    assert.equal(blobs.length, 3);
    assert.ok(
      blobs.every((e) => e.status === "mounted"),
      r.stdout,
    );
    assert.equal(sha(await inspectRaw(`${srv.host}/team/two:v1`)), single.manifestDigest);
  });

  it('an upload cut before any of its bytes reached the registry ("Range: 0-0") goes again from byte 0 in a new session', async () => {
    // 200 bytes: inside the upload's head (its Authorization alone is longer), so the session stays empty
    const proxy = await startCuttingProxy(Number(srv.host.split(":")[1]), 200, 1);
    try {
      const l = await strata(["login", proxy.host, "-u", "alice", "--password-stdin"], { env, input: "alice-secret\n" });
      assert.equal(l.code, 0, l.stderr);
      proxy.lines.length = 0;
      proxy.heads.length = 0;
      const c = await strata(["copy", `oci:${layout}:v1`, `docker://${proxy.host}/team/zero:v1`], { env });
      assert.equal(c.code, 0, c.stderr);
      // the 18 MiB layer (digest and size known): one PUT with the whole blob, cut, then another
      const at = proxy.heads.flatMap((h, i) => (streamsBlob(h) ? [i] : []));
      assert.equal(at.length, 2, proxy.lines.join("\n"));
      // between the two: the status asked (GET on the session), then a new session (POST) that gets every byte
      const between = proxy.lines.slice(at[0] + 1, at[1]);
      assert.ok(between.some((l) => /^GET \/v2\/team\/zero\/blobs\/uploads\//.test(l)), proxy.lines.join("\n"));
      assert.ok(between.some((l) => /^POST \/v2\/team\/zero\/blobs\/uploads\//.test(l)), proxy.lines.join("\n"));
      const session = (i: number) => /^PUT (\S+?)\?\S*digest=\S* /.exec(proxy.lines[i])?.[1];
      assert.ok(session(at[0]) !== undefined && session(at[1]) !== undefined && session(at[0]) !== session(at[1]), proxy.lines.join("\n"));
      const length = (i: number) => Number(/\r\ncontent-length: (\d+)/i.exec(proxy.heads[i])?.[1]);
      assert.equal(length(at[1]), length(at[0]), proxy.heads[at[1]]);
      assert.equal(sha(await inspectRaw(`${srv.host}/team/zero:v1`)), single.manifestDigest);
    } finally {
      await proxy.stop();
    }
  });

  it("a layer gzipped on the way (its digest known at its end: PATCH, then PUT), cut mid-way, resumes at the offset the registry reports (GET status, Range)", async () => {
    // uncompressed in the layout: compressed on the way, so the upload streams in a PATCH
    const plain = join(work, "plain");
    const pb = new OciLayoutBuilder(plain);
    await pb.finish("v1", [await pb.image({ layers: [{ tar: await bigLayer("plain", 18 << 20), compression: "none" }] })], false);
    const proxy = await startCuttingProxy(Number(srv.host.split(":")[1]), 6 << 20, 1);
    try {
      const r = await strata(["copy", `oci:${layout}:v1`, `docker://${proxy.host}/team/resumed:v1`], { env: { ...env, DOCKER_CONFIG: join(work, "docker-proxy") } });
      // the proxy is another host for the stored credentials: log in there too
      assert.equal(r.code, 1);
      const l = await strata(["login", proxy.host, "-u", "alice", "--password-stdin"], { env, input: "alice-secret\n" });
      assert.equal(l.code, 0, l.stderr);
      proxy.lines.length = 0;
      proxy.heads.length = 0;
      const c = await strata(["copy", "--dest-compress", "gzip", "--no-preserve-digests", `oci:${plain}:v1`, `docker://${proxy.host}/team/resumed:v1`], { env });
      assert.equal(c.code, 0, c.stderr);
      const at = proxy.heads.flatMap((h, i) => (streamsBlob(h) ? [i] : []));
      assert.equal(at.length, 2, proxy.lines.join("\n"));
      const patches = at.map((i) => proxy.heads[i]);
      const between = proxy.lines.slice(at[0] + 1, at[1]);
      assert.ok(between.some((l) => /^GET \/v2\/team\/resumed\/blobs\/uploads\//.test(l)), proxy.lines.join("\n"));
      // the same session is resumed at the registry's offset (a new session, from byte 0, would have another path)
      const sessionOf = (head: string) => /^PATCH (\S+?)(?:\?\S*)? /.exec(head)?.[1];
      assert.ok(sessionOf(patches[0]) !== undefined && sessionOf(patches[0]) === sessionOf(patches[1]), `the same session is resumed:\n${proxy.lines.join("\n")}\n${c.stderr}`);
      assert.match(JSON.parse(await inspectRaw(`${srv.host}/team/resumed:v1`)).layers[0].mediaType, /gzip/);
      await mustRun("skopeo", ["copy", "--quiet", "--src-tls-verify=false", "--src-creds", "alice:alice-secret", `docker://${srv.host}/team/resumed:v1`, `oci:${join(work, "back2")}:x`]);
    } finally {
      await proxy.stop();
    }
  });

  it("--referrers copies a signature; strata's referrers API lists it at the destination", async () => {
    const sig = await addSignature(layout, { digest: single.manifestDigest, size: single.manifestSize });
    // pushed by digest: the registry indexes it under its subject
    const put = await strata(["copy", "--quiet", `oci:${layout}:sig`, `docker://${srv.host}/team/one@${sig.digest}`], { env });
    assert.equal(put.code, 0, put.stderr);
    const r = await strata(["copy", "--referrers", "--format", "json", `docker://${srv.host}/team/one:v1`, `docker://${srv.host}/team/signed:v1`], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`"event":"referrer","digest":"${sig.digest}"`));
    // the destination's referrers API (a token for alice, from the registry's realm)
    const challenge = (await fetch(`${srv.url}/v2/`)).headers.get("www-authenticate") ?? "";
    const realm = /realm="([^"]+)"/.exec(challenge)?.[1];
    const service = /service="([^"]+)"/.exec(challenge)?.[1] ?? "";
    const tok = (await (
      await fetch(`${realm}?service=${encodeURIComponent(service)}&scope=${encodeURIComponent("repository:team/signed:pull")}`, {
        headers: { Authorization: `Basic ${Buffer.from("alice:alice-secret").toString("base64")}` },
      })
    ).json()) as { token: string };
    const list = (await (await fetch(`${srv.url}/v2/team/signed/referrers/${single.manifestDigest}`, { headers: { Authorization: `Bearer ${tok.token}` } })).json()) as {
      manifests: { digest: string; artifactType: string }[];
    };
    assert.deepEqual(
      list.manifests.map((m) => [m.digest, m.artifactType]),
      [[sig.digest, SIG_TYPE]],
    );
  });

  it("a repository the user may not push to: one line, exit 1", async () => {
    const r = await strata(["copy", `oci:${layout}:v1`, `docker://${srv.host}/other/x:1`], { env });
    assert.equal(r.code, 1);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    void run;
  });
});
