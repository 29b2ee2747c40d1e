/**
 * Docker Engine pulls Docker Hub images through Strata as its `--registry-mirror`: a local
 * docker-registry (CNCF distribution 2.8) impersonates Docker Hub's paths (`library/<name>`),
 * the mirror is configured with it as the `ns: docker.io` upstream, and `docker pull hello:v1`
 * (a single-component name) must arrive with the image's digest. There is no network: had the
 * mirror failed, dockerd's fallback to registry-1.docker.io would fail too.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { missing } from "@strata/client/test-helpers/tools.js";
import { buildOciLayout } from "./helpers/oci-layout.js";
import { mustRun, run, type StrataServer, startStrata } from "./helpers/strata.js";
import { type Peer, startPeer } from "./helpers/upstream.js";

describe("dockerd with Strata as its registry mirror", { skip: missing("dockerd", "docker", "docker-registry", "skopeo") || (process.getuid?.() !== 0 && "needs root") }, () => {
  let work: string;
  let peer: Peer;
  let mirror: StrataServer;
  let dockerd: ChildProcess | undefined;
  let sock = "";
  let log = "";
  const docker = (...args: string[]) => run("docker", ["-H", `unix://${sock}`, ...args], { timeoutMs: 180_000 });

  before(async () => {
    work = await mkdtemp(join(tmpdir(), "strata-proxy-dockerd-"));
    peer = await startPeer();
    mirror = await startStrata({ storage: { driver: "filesystem", filesystem: { root: join(work, "mirror") } }, proxy: { upstreams: [{ ns: "docker.io", url: peer.url }] } });
  });
  after(async () => {
    if (dockerd && dockerd.exitCode === null) {
      const exited = new Promise((r) => dockerd!.once("exit", r));
      dockerd.kill("SIGTERM");
      await exited;
    }
    await mirror?.stop();
    await peer?.destroy();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("docker pull of a single-component name arrives through the mirror with the image's digest", async (t) => {
    const image = await buildOciLayout(join(work, "img"), "v1", [[{ type: "file", path: "hello.txt", content: "hello from the mirror\n" }]]);
    await mustRun("skopeo", ["copy", "--quiet", "--dest-tls-verify=false", "--preserve-digests", `oci:${image.dir}:v1`, `docker://${peer.host}/library/hello:v1`], { timeoutMs: 120_000 });

    const d = join(work, "docker");
    await mkdir(d, { recursive: true });
    sock = join(d, "docker.sock");
    const args = ["--iptables=false", "--ip6tables=false", "--bridge=none", "--storage-driver=vfs", "--data-root", join(d, "root")];
    args.push("--exec-root", join(d, "exec"), "--pidfile", join(d, "docker.pid"), "-H", `unix://${sock}`, "--registry-mirror", mirror.url);
    dockerd = spawn("dockerd", args, { stdio: ["ignore", "ignore", "pipe"] });
    dockerd.stderr!.on("data", (c: Buffer) => {
      log = (log + c.toString()).slice(-4000);
    });
    let ready = false;
    for (let i = 0; i < 300 && !ready; i++) {
      if (dockerd.exitCode !== null) break;
      ready = existsSync(sock) && (await docker("version")).code === 0;
      if (!ready) await new Promise((r) => setTimeout(r, 100));
    }
    if (!ready) return t.skip(`dockerd did not start here: ${log.trim().split("\n").at(-1) ?? ""}`);

    const pulled = await docker("pull", "hello:v1");
    assert.equal(pulled.code, 0, `${pulled.stdout}\n${pulled.stderr}\n${log}`);
    assert.match(pulled.stdout, new RegExp(`Digest: ${image.manifestDigest}`));
    const digests = JSON.parse((await docker("image", "inspect", "--format", "{{json .RepoDigests}}", "hello:v1")).stdout);
    assert.deepEqual(digests, [`hello@${image.manifestDigest}`]);
    assert.ok(
      peer.accessLog().some((l) => l.includes("/v2/library/hello/manifests/")),
      "the upstream was asked for library/hello",
    );
    // the second pull needs no upstream
    await peer.stop();
    try {
      assert.equal((await docker("rmi", "hello:v1")).code, 0);
      const again = await docker("pull", "hello:v1");
      assert.equal(again.code, 0, again.stderr);
    } finally {
      await peer.start();
    }
  });
});
