/**
 * `docker://` in `strata copy` and `strata manifest create`, against real registries (Debian's
 * docker-registry = CNCF distribution 2.8, open and behind htpasswd), read back by skopeo:
 * manifest and index digests kept, blobs verified by skopeo's own pull, same-registry copies
 * mount every blob (nothing uploaded), a layer's check, session and source read start at once, a
 * large layer goes in one PUT that stops before its last bytes when they do not match, uploads cut
 * mid-way are sent again, wrong credentials and an unreachable registry fail with one line.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type Distribution, freePort, pushOciLayout, run, startDistribution } from "./helpers/distribution.js";
import { bigLayer, smallLayer } from "./helpers/images.js";
import { type BuiltImage, OciLayoutBuilder } from "./helpers/oci-build.js";
import { addSignature, SIG_TYPE } from "./helpers/artifact.js";
import { streamsBlob, startCuttingProxy } from "./helpers/cutting-proxy.js";

/** Where a blob was streamed through `proxy`: exactly twice (cut, then sent again), each request line matching `how`. */
function streamedTwice(proxy: { heads: string[]; lines: string[] }, how: RegExp): number[] {
  const at = proxy.heads.flatMap((h, i) => (streamsBlob(h) ? [i] : []));
  assert.equal(at.length, 2, proxy.lines.join("\n"));
  assert.ok(
    at.every((i) => how.test(proxy.lines[i])),
    proxy.lines.join("\n"),
  );
  return at;
}

/** A whole-blob PUT's request line. */
const WHOLE_PUT = /^PUT \S+[?&]digest=/;
import { runCli } from "./helpers/run-cli.js";
import { missing } from "./helpers/tools.js";

const sha = (b: Buffer | string) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

async function skopeo(...args: string[]): Promise<string> {
  const r = await run("skopeo", args);
  assert.equal(r.code, 0, `skopeo ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

function events(stdout: string): Record<string, unknown>[] {
  return stdout
    .trimEnd()
    .split("\n")
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/**
 * An HTTP proxy in front of a registry that logs each request when it arrives (`what`: its method)
 * and each answer when it is passed on (`answer METHOD`), holding HEAD answers back `holdHeadMs`.
 */
async function startTimedProxy(upstream: number, holdHeadMs: number): Promise<{ host: string; log: { at: number; what: string; path: string }[]; stop(): Promise<void> }> {
  const log: { at: number; what: string; path: string }[] = [];
  const srv = http.createServer((req, res) => {
    const path = req.url ?? "";
    log.push({ at: performance.now(), what: req.method ?? "", path });
    const up = http.request({ host: "127.0.0.1", port: upstream, method: req.method, path, headers: req.headers }, (u) => {
      const pass = () => {
        log.push({ at: performance.now(), what: `answer ${req.method}`, path });
        res.writeHead(u.statusCode ?? 502, u.headers);
        u.pipe(res);
      };
      if (req.method === "HEAD" && holdHeadMs > 0) setTimeout(pass, holdHeadMs);
      else pass();
    });
    up.on("error", () => res.destroy());
    res.on("close", () => up.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  return {
    host: `127.0.0.1:${(srv.address() as { port: number }).port}`,
    log,
    stop: () =>
      new Promise<void>((r) => {
        srv.closeAllConnections();
        srv.close(() => r());
      }),
  };
}

describe("strata copy with docker:// (distribution 2.8, read back by skopeo)", { skip: missing("docker-registry", "skopeo") }, () => {
  let work: string;
  let layout: string;
  let reg: Distribution;
  let single: BuiltImage;
  let amd: BuiltImage;
  let arm: BuiltImage;
  let indexDigest: string;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), "strata-dcopy-"));
    layout = join(work, "src");
    const b = new OciLayoutBuilder(layout);
    // 20 MiB of random data: above MONOLITHIC_MAX, streamed in one PUT as it is read
    single = await b.image({ layers: [{ tar: await smallLayer("one") }, { tar: await bigLayer("two", 20 << 20) }] });
    amd = await b.image({ layers: [{ tar: await smallLayer("amd") }], architecture: "amd64" });
    arm = await b.image({ layers: [{ tar: await smallLayer("arm") }], architecture: "arm64", variant: "v8" });
    const { topDigest } = await b.finish("multi", [amd, arm], true);
    indexDigest = topDigest;
    const idx = JSON.parse(await readFile(join(layout, "index.json"), "utf8"));
    idx.manifests.push({ mediaType: "application/vnd.oci.image.manifest.v1+json", digest: single.manifestDigest, size: single.manifestSize, annotations: { "org.opencontainers.image.ref.name": "v1" } });
    await writeFile(join(layout, "index.json"), JSON.stringify(idx));
    reg = await startDistribution();
  });
  after(async () => {
    await reg?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("oci: to docker:// keeps the manifest digest; skopeo inspects and pulls it", async () => {
    const r = await runCli(["copy", `oci:${layout}:v1`, `docker://${reg.host}/team/one:v1`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`: ${single.manifestDigest}\\n$`));
    const inspect = JSON.parse(await skopeo("inspect", "--tls-verify=false", `docker://${reg.host}/team/one:v1`)) as { Digest: string };
    assert.equal(inspect.Digest, single.manifestDigest);
    assert.equal(sha(await skopeo("inspect", "--raw", "--tls-verify=false", `docker://${reg.host}/team/one:v1`)), single.manifestDigest);
    // skopeo verifies every blob it pulls
    await skopeo("copy", "--quiet", "--src-tls-verify=false", `docker://${reg.host}/team/one:v1`, `oci:${join(work, "back")}:x`);
    // a second copy finds every blob there (HEAD) and uploads nothing
    const again = await runCli(["copy", "--format", "json", `oci:${layout}:v1`, `docker://${reg.host}/team/one:v2`]);
    assert.equal(again.code, 0, again.stderr);
    const blobs = events(again.stdout).filter((e) => e.event === "blob");
    assert.equal(blobs.length, 3);
    assert.ok(blobs.every((e) => e.status === "exists"));
  });

  it("--all copies a two-platform index with its digest; skopeo sees the same index", async () => {
    const r = await runCli(["copy", "--all", "--quiet", `oci:${layout}:multi`, `docker://${reg.host}/team/multi:m`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(sha(await skopeo("inspect", "--raw", "--tls-verify=false", `docker://${reg.host}/team/multi:m`)), indexDigest);
    const armRaw = await skopeo("inspect", "--raw", "--tls-verify=false", `docker://${reg.host}/team/multi@${arm.manifestDigest}`);
    assert.equal(sha(armRaw), arm.manifestDigest);
    // and back from the registry into a layout, index digest kept
    const back = await runCli(["copy", "--all", "--format", "json", `docker://${reg.host}/team/multi:m`, `oci:${join(work, "multi-back")}:m`]);
    assert.equal(back.code, 0, back.stderr);
    assert.equal(events(back.stdout).at(-1)?.digest, indexDigest);
    assert.equal(sha(await skopeo("inspect", "--raw", `oci:${join(work, "multi-back")}:m`)), indexDigest);
    void amd;
  });

  it("docker:// to docker:// on the same registry mounts every blob (a manifest-only copy)", async () => {
    const r = await runCli(["copy", "--format", "json", `docker://${reg.host}/team/one:v1`, `docker://${reg.host}/other/copy:c`]);
    assert.equal(r.code, 0, r.stderr);
    const ev = events(r.stdout);
    const blobs = ev.filter((e) => e.event === "blob");
    assert.equal(blobs.length, 3);
    assert.ok(blobs.every((e) => e.status === "mounted" && e.from === "team/one"), JSON.stringify(blobs));
    assert.equal(ev.at(-1)?.digest, single.manifestDigest);
    // the blobs are really in the new repository: skopeo pulls it
    await skopeo("copy", "--quiet", "--src-tls-verify=false", `docker://${reg.host}/other/copy:c`, `oci:${join(work, "mounted")}:x`);
  });

  it("each blob's check (HEAD), its upload session (POST) and its source read (GET) start at once; once one blob is found there, the next ones are checked first", async () => {
    // the source and the destination are the same registry behind two proxies (two hosts: no
    // mount); the destination's proxy holds every HEAD answer back 300 ms
    const from = await startTimedProxy(reg.port, 0);
    const to = await startTimedProxy(reg.port, 300);
    try {
      const first = await runCli(["copy", "--quiet", `docker://${from.host}/team/one:v1`, `docker://${to.host}/team/spec:v1`]);
      assert.equal(first.code, 0, first.stderr);
      const answered = Math.min(...to.log.filter((e) => e.what === "answer HEAD").map((e) => e.at));
      const posts = to.log.filter((e) => e.what === "POST");
      assert.equal(posts.length, 3, JSON.stringify(to.log));
      assert.ok(
        posts.every((e) => e.at < answered),
        JSON.stringify(to.log),
      );
      // both layers' reads were asked of the source before any HEAD was answered (the config was read with the manifest)
      const reads = from.log.filter((e) => e.what === "GET" && /\/blobs\/sha256:/.test(e.path) && single.blobDigests.some((d) => e.path.endsWith(d)));
      assert.equal(reads.length, 2, JSON.stringify(from.log));
      assert.ok(
        reads.every((e) => e.at < answered),
        JSON.stringify({ reads, answered }),
      );
      assert.equal(sha(await skopeo("inspect", "--raw", "--tls-verify=false", `docker://${reg.host}/team/spec:v1`)), single.manifestDigest);

      // again, one blob at a time: the config's session opened beside its HEAD is deleted when the
      // HEAD finds it; each layer is checked before anything else is asked for it
      to.log.length = 0;
      from.log.length = 0;
      const again = await runCli(["copy", "--format", "json", "--max-concurrent", "1", `docker://${from.host}/team/one:v1`, `docker://${to.host}/team/spec:v2`]);
      assert.equal(again.code, 0, again.stderr);
      const blobs = events(again.stdout).filter((e) => e.event === "blob");
      assert.deepEqual(
        blobs.map((e) => e.status),
        ["exists", "exists", "exists"],
      );
      // the config: HEAD and POST at once, the session deleted (in the background) once the HEAD found the blob
      const uploads = (re: RegExp) => to.log.filter((e) => re.test(e.what) && /\/blobs\/uploads\//.test(e.path));
      assert.equal(uploads(/^POST$/).length, 1, JSON.stringify(to.log));
      assert.equal(uploads(/^answer DELETE$/).length, 1, JSON.stringify(to.log));
      assert.deepEqual(
        to.log.slice(0, 2).map((e) => e.what),
        ["HEAD", "POST"],
      );
      // then each layer: its HEAD, answered before anything else is sent
      const firstAnswer = to.log.findIndex((e) => e.what === "answer HEAD");
      assert.deepEqual(
        to.log
          .slice(firstAnswer + 1)
          .filter((e) => !/DELETE|PUT/.test(e.what))
          .map((e) => e.what),
        ["HEAD", "answer HEAD", "HEAD", "answer HEAD"],
      );
      // and no layer was read from the source
      assert.equal(from.log.filter((e) => e.what === "GET" && single.blobDigests.some((d) => e.path.endsWith(d))).length, 0, JSON.stringify(from.log));
    } finally {
      await from.stop();
      await to.stop();
    }
  });

  it("manifest create builds an OCI index (and a Docker list) of images in the registry; skopeo reads it", async () => {
    // the two platform images, by digest, from another repository: copied in, then indexed
    const r = await runCli(["manifest", "create", "--quiet", `${reg.host}/team/made:1`, `${reg.host}/team/multi@${amd.manifestDigest}`, `${reg.host}/team/multi@${arm.manifestDigest}`]);
    assert.equal(r.code, 0, r.stderr);
    const raw = await skopeo("inspect", "--raw", "--tls-verify=false", `docker://${reg.host}/team/made:1`);
    assert.equal(sha(raw), r.stdout.trim());
    const idx = JSON.parse(raw) as { mediaType: string; manifests: { digest: string; platform: { architecture: string; variant?: string } }[] };
    assert.equal(idx.mediaType, "application/vnd.oci.image.index.v1+json");
    assert.deepEqual(
      idx.manifests.map((m) => [m.digest, m.platform.architecture, m.platform.variant]),
      [
        [amd.manifestDigest, "amd64", undefined],
        [arm.manifestDigest, "arm64", "v8"],
      ],
    );
    // skopeo resolves the arm64 image through it
    const armCfg = await skopeo("inspect", "--config", "--raw", "--tls-verify=false", "--override-arch", "arm64", "--override-variant", "v8", `docker://${reg.host}/team/made:1`);
    assert.equal(sha(armCfg), arm.configDigest);
    // OCI images cannot go into a Docker manifest list: usage error
    const bad = await runCli(["manifest", "create", "--format", "docker", `${reg.host}/team/made:2`, `${reg.host}/team/multi@${amd.manifestDigest}`]);
    assert.equal(bad.code, 2);
    assert.equal(bad.stderr.trim().split("\n").length, 1);
  });

  it("docker-archive: -> docker:// (layers gzipped, a Docker schema2 manifest built); skopeo pulls back the same image", async () => {
    const archive = join(work, "saved.tar");
    await skopeo("copy", "--quiet", `oci:${layout}:v1`, `docker-archive:${archive}:saved/app:1`);
    const r = await runCli(["copy", "--format", "json", `docker-archive:${archive}`, `docker://${reg.host}/team/from-archive:1`]);
    assert.equal(r.code, 0, r.stderr);
    const raw = JSON.parse(await skopeo("inspect", "--raw", "--tls-verify=false", `docker://${reg.host}/team/from-archive:1`)) as { mediaType: string; config: { digest: string } };
    assert.equal(raw.mediaType, "application/vnd.docker.distribution.manifest.v2+json");
    // the same config (so the same image ID and diffIDs) as the archive's
    assert.equal(raw.config.digest, single.configDigest);
    const back = join(work, "back.tar");
    await skopeo("copy", "--quiet", "--src-tls-verify=false", `docker://${reg.host}/team/from-archive:1`, `docker-archive:${back}:saved/app:1`);
    const a = JSON.parse(await skopeo("inspect", `docker-archive:${archive}`)) as { Layers: string[] };
    const c = JSON.parse(await skopeo("inspect", `docker-archive:${back}`)) as { Layers: string[] };
    assert.deepEqual(c.Layers, a.Layers);
  });

  it("--referrers copies a signature and writes the fallback tag (distribution 2.8 has no referrers API)", async () => {
    const sig = await addSignature(layout, { digest: single.manifestDigest, size: single.manifestSize });
    // the source as a registry without the API keeps it: the artifact, and the index under the fallback tag
    const put = await runCli(["copy", "--all", "--quiet", `oci:${layout}:${sig.fallbackTag}`, `docker://${reg.host}/team/one:${sig.fallbackTag}`]);
    assert.equal(put.code, 0, put.stderr);
    const r = await runCli(["copy", "--referrers", "--format", "json", `docker://${reg.host}/team/one:v1`, `docker://${reg.host}/signed/one:v1`]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(events(r.stdout).some((e) => e.event === "referrer" && e.digest === sig.digest && e.subject === single.manifestDigest), r.stdout);
    // skopeo finds the artifact and the fallback index at the destination
    assert.equal(sha(await skopeo("inspect", "--raw", "--tls-verify=false", `docker://${reg.host}/signed/one@${sig.digest}`)), sig.digest);
    const idx = JSON.parse(await skopeo("inspect", "--raw", "--tls-verify=false", `docker://${reg.host}/signed/one:${sig.fallbackTag}`)) as { manifests: { digest: string; artifactType: string }[] };
    assert.deepEqual(
      idx.manifests.map((m) => [m.digest, m.artifactType]),
      [[sig.digest, SIG_TYPE]],
    );
    // --referrers needs registries on both sides
    const bad = await runCli(["copy", "--referrers", `oci:${layout}:v1`, `docker://${reg.host}/signed/two:v1`]);
    assert.equal(bad.code, 2);
  });

  /**
   * Copies the layout, with the last byte of blob `digest` flipped (same size, other digest), to
   * team/`repo`:v1 through a proxy that records the requests (it cuts nothing).
   */
  async function copyCorrupted(repo: string, digest: string) {
    const bad = join(work, repo);
    await cp(layout, bad, { recursive: true });
    const blob = join(bad, "blobs", "sha256", digest.slice(7));
    const bytes = await readFile(blob);
    bytes[bytes.length - 1] ^= 0xff;
    await writeFile(blob, bytes);
    const proxy = await startCuttingProxy(reg.port, 0, 0);
    try {
      return { r: await runCli(["copy", `oci:${bad}:v1`, `docker://${proxy.host}/team/${repo}:v1`]), proxy, bytes };
    } finally {
      await proxy.stop();
    }
  }

  it("a layout blob that does not match its digest: one line, exit 1, no manifest at the destination", async () => {
    // the small layer
    const { r, proxy } = await copyCorrupted("bad", single.blobDigests[0]);
    assert.equal(r.code, 1);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.match(r.stderr, /digest/);
    const inspect = await run("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${reg.host}/team/bad:v1`]);
    assert.notEqual(inspect.code, 0, "no manifest was written");
    // every upload session opened was completed or deleted, the bad blob's (opened while its bytes were read) too
    const count = (re: RegExp) => proxy.lines.filter((l) => re.test(l)).length;
    const opened = count(/^POST \/v2\/team\/bad\/blobs\/uploads\/ /);
    assert.ok(opened >= 2, proxy.lines.join("\n"));
    assert.equal(count(/^(PUT|DELETE) \/v2\/team\/bad\/blobs\/uploads\/[^?]+\?/), opened, proxy.lines.join("\n"));
  });

  it("a big layer whose last byte differs from its digest: the whole-blob PUT stops before its last bytes, nothing is stored", async () => {
    const digest = single.blobDigests[1];
    const { r, proxy, bytes } = await copyCorrupted("badbig", digest);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /digest/);
    const at = proxy.heads.findIndex((h) => streamsBlob(h));
    assert.ok(at >= 0, proxy.lines.join("\n"));
    assert.match(proxy.lines[at], new RegExp(`^PUT \\S+digest=${encodeURIComponent(digest)}`));
    // the registry got the head and fewer bytes than the body's length: its verification came first
    const length = Number(/\r\ncontent-length: (\d+)/i.exec(proxy.heads[at])?.[1]);
    assert.equal(length, bytes.length);
    assert.ok(proxy.bytes[at] < proxy.heads[at].length + 4 + length, `${proxy.bytes[at]} bytes passed on`);
    const head = await fetch(`http://${reg.host}/v2/team/badbig/blobs/${digest}`, { method: "HEAD" });
    assert.equal(head.status, 404);
  });

  it("a registry whose Docker-Content-Digest differs from what was sent: the copy fails with one line", async () => {
    // an HTTP proxy that rewrites the digest header of manifest PUT answers
    const upstream = reg.port;
    const srv = http.createServer((req, res) => {
      const up = http.request({ host: "127.0.0.1", port: upstream, method: req.method, path: req.url, headers: req.headers }, (u) => {
        const headers = { ...u.headers };
        if (req.method === "PUT" && /\/manifests\//.test(req.url ?? "")) headers["docker-content-digest"] = `sha256:${"0".repeat(64)}`;
        res.writeHead(u.statusCode ?? 502, headers);
        u.pipe(res);
      });
      req.pipe(up);
    });
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    try {
      const host = `127.0.0.1:${(srv.address() as { port: number }).port}`;
      const r = await runCli(["copy", `oci:${layout}:v1`, `docker://${host}/team/lying:v1`]);
      assert.equal(r.code, 1);
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`stored manifest sha256:0{64} for ${single.manifestDigest}`));
    } finally {
      srv.closeAllConnections();
      srv.close();
    }
  });

  it("an unreachable registry fails with one line and exit 1", async () => {
    const port = await freePort();
    const r = await runCli(["copy", `oci:${layout}:v1`, `docker://127.0.0.1:${port}/x/y:z`]);
    assert.equal(r.code, 1);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.match(r.stderr, /127\.0\.0\.1/);
  });
});

describe("strata login + copy to distribution behind htpasswd", { skip: missing("docker-registry", "skopeo", "htpasswd") }, () => {
  let work: string;
  let layout: string;
  let reg: Distribution;
  let img: BuiltImage;
  let env: NodeJS.ProcessEnv;
  before(async () => {
    work = await mkdtemp(join(tmpdir(), "strata-dauth-"));
    const htpasswd = join(work, "htpasswd");
    await writeFile(htpasswd, execFileSync("htpasswd", ["-Bbn", "ci", "s3cret-pw"]));
    reg = await startDistribution({ htpasswd: { path: htpasswd } });
    layout = join(work, "src");
    const b = new OciLayoutBuilder(layout);
    img = await b.image({ layers: [{ tar: await smallLayer("auth") }] });
    await b.finish("v1", [img], false);
    env = { ...process.env, DOCKER_CONFIG: join(work, "docker") };
  });
  after(async () => {
    await reg?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("without credentials the push is refused with one line (exit 1)", async () => {
    const r = await runCli(["copy", `oci:${layout}:v1`, `docker://${reg.host}/sec/app:1`], { env });
    assert.equal(r.code, 1);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.match(r.stderr, /authentication required|no credentials/);
  });

  it("wrong credentials: one line, exit 1, the password never printed", async () => {
    const cfg = join(work, "bad");
    await writeFile(join(work, "bad.json"), "");
    await runCli(["login", reg.host, "-u", "ci", "--password-stdin"], { env: { ...env, DOCKER_CONFIG: cfg }, input: "s3cret-pw\n" });
    // corrupt the stored password
    const path = join(cfg, "config.json");
    const c = JSON.parse(await readFile(path, "utf8"));
    c.auths[reg.host].auth = Buffer.from("ci:wrong-password").toString("base64");
    await writeFile(path, JSON.stringify(c));
    const r = await runCli(["copy", `oci:${layout}:v1`, `docker://${reg.host}/sec/app:1`], { env: { ...env, DOCKER_CONFIG: cfg } });
    assert.equal(r.code, 1);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.match(r.stderr, /credentials rejected/);
    assert.doesNotMatch(r.stdout + r.stderr, /wrong-password/);
  });

  it("strata login, then copy with the stored credentials; skopeo with the same credentials sees the digest", async () => {
    const l = await runCli(["login", reg.host, "-u", "ci", "--password-stdin"], { env, input: "s3cret-pw\n" });
    assert.equal(l.code, 0, l.stderr);
    const r = await runCli(["copy", `oci:${layout}:v1`, `docker://${reg.host}/sec/app:1`], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout + r.stderr, /s3cret-pw/);
    const raw = await skopeo("inspect", "--raw", "--tls-verify=false", "--creds", "ci:s3cret-pw", `docker://${reg.host}/sec/app:1`);
    assert.equal(sha(raw), img.manifestDigest);
  });
});

describe("an upload cut mid-way is sent again (distribution 2.8 drops the session)", { skip: missing("docker-registry", "skopeo") }, () => {
  let work: string;
  let reg: Distribution;
  it("the whole-blob PUT is cut after 6 MiB; the status GET finds no session; a new one gets the blob from byte 0, intact", async () => {
    work = await mkdtemp(join(tmpdir(), "strata-dresume-"));
    reg = await startDistribution();
    const proxy = await startCuttingProxy(reg.port, 6 << 20, 1);
    try {
      const layout = join(work, "src");
      const b = new OciLayoutBuilder(layout);
      // 12 MiB: within the 16 MiB resume window however far the client read before it saw the cut
      const img = await b.image({ layers: [{ tar: await bigLayer("cut", 12 << 20), compression: "none" }] });
      await b.finish("v1", [img], false);
      const r = await runCli(["copy", `oci:${layout}:v1`, `docker://${proxy.host}/cut/img:1`]);
      assert.equal(r.code, 0, r.stderr);
      // the whole blob in one PUT (size and digest known), twice: cut, then sent again
      const at = streamedTwice(proxy, WHOLE_PUT);
      // between the two: the upload's status asked (GET on the session), then a new session (POST)
      const between = proxy.lines.slice(at[0] + 1, at[1]);
      assert.ok(between.some((l) => /^GET \/v2\/cut\/img\/blobs\/uploads\//.test(l)), proxy.lines.join("\n"));
      assert.ok(between.some((l) => /^POST \/v2\/cut\/img\/blobs\/uploads\//.test(l)), proxy.lines.join("\n"));
      // skopeo, straight at the registry, pulls and verifies every blob
      assert.equal(sha(await skopeo("inspect", "--raw", "--tls-verify=false", `docker://${reg.host}/cut/img:1`)), img.manifestDigest);
      await skopeo("copy", "--quiet", "--src-tls-verify=false", `docker://${reg.host}/cut/img:1`, `oci:${join(work, "back")}:x`);
    } finally {
      await proxy.stop();
      await reg.stop();
      await rm(work, { recursive: true, force: true });
    }
  });

  it("a layer gzipped on the way (--dest-compress gzip), 40 MiB cut after 24 MiB (past the resume window): compressed again from the source, sent from byte 0 to a new session, intact", async () => {
    work = await mkdtemp(join(tmpdir(), "strata-zresume-"));
    reg = await startDistribution();
    const proxy = await startCuttingProxy(reg.port, 24 << 20, 1);
    try {
      const layout = join(work, "src");
      const b = new OciLayoutBuilder(layout);
      const img = await b.image({ layers: [{ tar: await bigLayer("cutz", 40 << 20), compression: "none" }] });
      await b.finish("v1", [img], false);
      const r = await runCli(["copy", "--dest-compress", "gzip", "--no-preserve-digests", `oci:${layout}:v1`, `docker://${proxy.host}/cut/gz:1`]);
      assert.equal(r.code, 0, r.stderr);
      // the digest is known only at the end: PATCHes, then a closing PUT
      const at = streamedTwice(proxy, /^PATCH /);
      const between = proxy.lines.slice(at[0] + 1, at[1]);
      assert.ok(between.some((l) => /^POST \/v2\/cut\/gz\/blobs\/uploads\//.test(l)), proxy.lines.join("\n"));
      // skopeo, straight at the registry, finds a gzip layer and pulls and verifies every blob
      const manifest = JSON.parse(await skopeo("inspect", "--raw", "--tls-verify=false", `docker://${reg.host}/cut/gz:1`));
      assert.match(manifest.layers[0].mediaType, /gzip/);
      await skopeo("copy", "--quiet", "--src-tls-verify=false", `docker://${reg.host}/cut/gz:1`, `oci:${join(work, "back")}:x`);
    } finally {
      await proxy.stop();
      await reg.stop();
      await rm(work, { recursive: true, force: true });
    }
  });

  it("registry to registry, a 40 MiB layer cut after 24 MiB (past the 16 MiB resume window): read again from the source, sent from byte 0 to a new session, intact", async () => {
    work = await mkdtemp(join(tmpdir(), "strata-dresume-"));
    const src = await startDistribution();
    reg = await startDistribution();
    // in front of the source: records its requests, cuts nothing
    const seen = await startCuttingProxy(src.port, 0, 0);
    const proxy = await startCuttingProxy(reg.port, 24 << 20, 1);
    try {
      const layout = join(work, "src");
      const b = new OciLayoutBuilder(layout);
      const img = await b.image({ layers: [{ tar: await bigLayer("cut40", 40 << 20), compression: "none" }] });
      await b.finish("v1", [img], false);
      await pushOciLayout(layout, "v1", `${src.host}/cut/src:v1`);
      const r = await runCli(["copy", `docker://${seen.host}/cut/src:v1`, `docker://${proxy.host}/cut/img:1`]);
      assert.equal(r.code, 0, r.stderr);
      const at = streamedTwice(proxy, WHOLE_PUT);
      const between = proxy.lines.slice(at[0] + 1, at[1]);
      assert.ok(between.some((l) => /^POST \/v2\/cut\/img\/blobs\/uploads\//.test(l)), proxy.lines.join("\n"));
      // the layer was read twice from the source, each time from its start (no Range)
      const layer = img.blobDigests[0];
      const gets = seen.heads.filter((h) => h.startsWith(`GET /v2/cut/src/blobs/${layer} `));
      assert.equal(gets.length, 2, seen.lines.join("\n"));
      assert.ok(gets.every((h) => !/^range:/im.test(h)), gets.join("\n"));
      assert.equal(sha(await skopeo("inspect", "--raw", "--tls-verify=false", `docker://${reg.host}/cut/img:1`)), img.manifestDigest);
      await skopeo("copy", "--quiet", "--src-tls-verify=false", `docker://${reg.host}/cut/img:1`, `oci:${join(work, "back")}:x`);
    } finally {
      await seen.stop();
      await proxy.stop();
      await src.stop();
      await reg.stop();
      await rm(work, { recursive: true, force: true });
    }
  });
});
