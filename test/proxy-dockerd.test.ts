/**
 * Docker Engine pulls Docker Hub images through Strata as its `--registry-mirror`: a local
 * docker-registry (CNCF distribution 2.8) impersonates Docker Hub's paths (`library/<name>`),
 * the mirror is configured with it as the `ns: docker.io` upstream, and `docker pull hello:v1`
 * (a single-component name) must arrive with the image's digest. There is no network: had the
 * mirror failed, dockerd's fallback to registry-1.docker.io would fail too.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type Dockerd, startDockerd } from "@strata/client/test-helpers/dockerd.js";
import { missing } from "@strata/client/test-helpers/tools.js";
import { buildOciLayout } from "./helpers/oci-layout.js";
import { mustRun, type StrataServer, startStrata } from "./helpers/strata.js";
import { type Peer, startPeer } from "./helpers/upstream.js";

describe("dockerd with Strata as its registry mirror", { skip: missing("dockerd", "docker", "docker-registry", "skopeo") || (process.getuid?.() !== 0 && "needs root") }, () => {
  let work: string;
  let peer: Peer;
  let mirror: StrataServer;
  let dockerd: Dockerd | undefined;
  const docker = (...args: string[]) => dockerd!.docker(...args);

  before(async () => {
    work = await mkdtemp(join(tmpdir(), "strata-proxy-dockerd-"));
    peer = await startPeer();
    mirror = await startStrata({ storage: { driver: "filesystem", filesystem: { root: join(work, "mirror") } }, proxy: { upstreams: [{ ns: "docker.io", url: peer.url }] } });
  });
  after(async () => {
    await dockerd?.stop();
    await mirror?.stop();
    await peer?.destroy();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("docker pull of a single-component name arrives through the mirror with the image's digest", async (t) => {
    const image = await buildOciLayout(join(work, "img"), "v1", [[{ type: "file", path: "hello.txt", content: "hello from the mirror\n" }]]);
    await mustRun("skopeo", ["copy", "--quiet", "--dest-tls-verify=false", "--preserve-digests", `oci:${image.dir}:v1`, `docker://${peer.host}/library/hello:v1`], { timeoutMs: 120_000 });

    const d = join(work, "docker");
    dockerd = await startDockerd(join(d, "root"), d, { storageDriver: "vfs", args: ["--registry-mirror", mirror.url] });
    if (!dockerd.started) return t.skip(dockerd.failure);

    const pulled = await docker("pull", "hello:v1");
    assert.equal(pulled.code, 0, `${pulled.stdout}\n${pulled.stderr}\n${dockerd.log()}`);
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
