/**
 * Real clients against a Strata registry with authentication over TLS (a test CA made with
 * openssl at test time; users from the real `htpasswd -B`), in Basic mode (htpasswd alone) and
 * in token mode (the registry's own token endpoint): skopeo --creds push/pull and anonymous
 * reads, podman login + pull + search, containerd's ctr pull/push with --user, docker login + push +
 * pull + run through a private dockerd
 * (trusting the CA through SSL_CERT_FILE, no machine-wide configuration touched).
 * A missing tool skips its test with one line.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { DOCKER, DOCKERD, startDockerd, TINI } from "@strata/client/test-helpers/dockerd.js";
import { type BuiltImage, buildOciLayout } from "./helpers/oci-layout.js";
import { mustRun, run, type StrataServer, startStrata, uniqueName } from "./helpers/strata.js";

const has = (p: string) => ["/usr/bin/", "/usr/sbin/", "/bin/", "/usr/local/bin/"].some((d) => existsSync(d + p));
const missingBase = ["openssl", "htpasswd"].filter((t) => !has(t));
const dockerSkip = existsSync(DOCKERD) && existsSync(DOCKER) && existsSync(TINI) && process.getuid?.() === 0 ? false : "needs dockerd, docker, docker-init (docker.io) and root";

/** A CA and a server certificate for 127.0.0.1/localhost signed by it, made with openssl. */
async function makeCerts(dir: string): Promise<{ ca: string; cert: string; key: string }> {
  const o = (...args: string[]) => mustRun("openssl", args, { cwd: dir });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  await o("req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=strata test CA");
  await o("req", ...ec, "-keyout", "tls.key", "-out", "tls.csr", "-subj", "/CN=localhost");
  await writeFile(join(dir, "ext.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n");
  await o("x509", "-req", "-in", "tls.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2", "-extfile", "ext.cnf", "-out", "tls.crt");
  return { ca: join(dir, "ca.crt"), cert: join(dir, "tls.crt"), key: join(dir, "tls.key") };
}

for (const mode of ["basic", "token"] as const) {
  describe(`real clients over TLS with auth [${mode}]`, { skip: missingBase.length ? `needs ${missingBase.join(", ")}` : false }, () => {
    let srv: StrataServer;
    let work: string;
    let certDir: string;
    let image: BuiltImage;
    let host: string;

    before(async () => {
      work = await mkdtemp(join(tmpdir(), `strata-auth-clients-${mode}-`));
      const certs = await makeCerts(work);
      certDir = join(work, "certs");
      await mkdir(certDir);
      await writeFile(join(certDir, "ca.crt"), await readFile(certs.ca));
      const htpasswd = join(work, "htpasswd");
      await mustRun("htpasswd", ["-cbB", htpasswd, "alice", "alice-secret"]);
      await mustRun("htpasswd", ["-bB", htpasswd, "bob", "bob-secret"]);
      const auth: Record<string, unknown> = { htpasswd: { path: htpasswd } };
      if (mode === "token") {
        await mustRun("openssl", ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", join(work, "token.pem")]);
        auth.token = { signingKey: join(work, "token.pem") };
      }
      srv = await startStrata(
        {
          storage: { driver: "filesystem", filesystem: { root: join(work, "data") } },
          auth,
          access: [
            { repositories: ["public/**"], users: ["alice"], actions: ["*"] },
            { repositories: ["public/**"], users: ["anonymous", "*"], actions: ["pull"] },
            { repositories: ["team/**"], users: ["alice"], actions: ["*"] },
          ],
          tls: { certificate: certs.cert, key: certs.key },
        },
        { ca: await readFile(certs.ca) },
      );
      host = srv.host;
      image = await buildOciLayout(join(work, "src"), "v1", [
        [
          { type: "dir", path: "bin" },
          { type: "file", path: "bin/tini", content: await readFile(existsSync(TINI) ? TINI : process.execPath), mode: 0o755 },
        ],
      ]);
    });
    after(async () => {
      await srv?.stop();
      if (work) await rm(work, { recursive: true, force: true });
    });

    it("skopeo --creds pushes and pulls over verified TLS; anonymous reads only public/**; wrong or insufficient credentials fail", { skip: has("skopeo") ? false : "needs skopeo" }, async () => {
      const authfile = join(work, "skopeo-auth.json");
      await writeFile(authfile, "{}");
      const sk = (...args: string[]) => run("skopeo", args, { timeoutMs: 120_000, env: { REGISTRY_AUTH_FILE: authfile } });
      const repo = `team/${uniqueName("sk")}`;
      let r = await sk("copy", "--dest-creds", "alice:alice-secret", "--dest-cert-dir", certDir, `oci:${image.dir}:v1`, `docker://${host}/${repo}:v1`);
      assert.equal(r.code, 0, r.stderr);
      r = await sk("copy", "--dest-creds", "alice:alice-secret", "--dest-cert-dir", certDir, `oci:${image.dir}:v1`, `docker://${host}/public/app:v1`);
      assert.equal(r.code, 0, r.stderr);
      const back = join(work, "skopeo-back");
      r = await sk("copy", "--src-creds", "alice:alice-secret", "--src-cert-dir", certDir, `docker://${host}/${repo}:v1`, `oci:${back}:v1`);
      assert.equal(r.code, 0, r.stderr);
      const idx = JSON.parse(await readFile(join(back, "index.json"), "utf8"));
      assert.equal(idx.manifests[0].digest, image.manifestDigest);
      // anonymous: public yes, team no
      r = await sk("inspect", "--cert-dir", certDir, `docker://${host}/public/app:v1`);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(JSON.parse(r.stdout).Digest, image.manifestDigest);
      r = await sk("inspect", "--cert-dir", certDir, `docker://${host}/${repo}:v1`);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /unauthorized|denied|authentication required/i);
      // wrong password, and a user without push
      r = await sk("inspect", "--creds", "alice:wrong", "--cert-dir", certDir, `docker://${host}/${repo}:v1`);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /unauthorized|authentication required|invalid/i);
      r = await sk("copy", "--dest-creds", "bob:bob-secret", "--dest-cert-dir", certDir, `oci:${image.dir}:v1`, `docker://${host}/public/bob:v1`);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /denied|unauthorized/i);
      // without the CA the connection is refused
      r = await sk("inspect", "--creds", "alice:alice-secret", `docker://${host}/public/app:v1`);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /certificate|x509/i);
    });

    it("podman login + pull with the test CA; a wrong password fails login", { skip: has("podman") && process.getuid?.() === 0 ? false : "needs podman (and root)" }, async () => {
      const repo = `team/${uniqueName("pm")}`;
      const push = await run("skopeo", ["copy", "--dest-creds", "alice:alice-secret", "--dest-cert-dir", certDir, `oci:${image.dir}:v1`, `docker://${host}/${repo}:v1`], { timeoutMs: 120_000 });
      assert.equal(push.code, 0, push.stderr);
      const authfile = join(work, "podman-auth.json");
      const pm = (...args: string[]) =>
        run("podman", ["--root", join(work, "podman-root"), "--runroot", join(work, "podman-run"), "--storage-driver", "vfs", "--events-backend", "none", ...args], { timeoutMs: 120_000 });
      let r = await pm("login", "--authfile", authfile, "--cert-dir", certDir, "-u", "alice", "-p", "wrong", host);
      assert.notEqual(r.code, 0, "login with a wrong password fails");
      r = await pm("login", "--authfile", authfile, "--cert-dir", certDir, "-u", "alice", "-p", "alice-secret", host);
      assert.equal(r.code, 0, r.stderr);
      r = await pm("pull", "--authfile", authfile, "--cert-dir", certDir, `${host}/${repo}:v1`);
      assert.equal(r.code, 0, r.stderr);
      r = await pm("image", "inspect", "--format", "{{.Digest}}", `${host}/${repo}:v1`);
      assert.equal(r.stdout.trim(), image.manifestDigest);
      // podman search lists the catalog (registry:catalog:*): the logged-in user sees the private repository.
      // (search has no --cert-dir and rootful podman reads CAs only from /etc/containers: TLS unverified here)
      r = await pm("search", "--authfile", authfile, "--tls-verify=false", "--format", "{{.Name}}", `${host}/`);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(r.stdout.split("\n").includes(`${host}/${repo}`), r.stdout);
      r = await pm("logout", "--authfile", authfile, host);
      assert.equal(r.code, 0, r.stderr);
      r = await pm("pull", "--authfile", authfile, "--cert-dir", certDir, `${host}/${repo}:v2`);
      assert.notEqual(r.code, 0, "after logout the private repository is refused");
      r = await pm("search", "--authfile", authfile, "--tls-verify=false", "--format", "{{.Name}}", `${host}/`);
      assert.ok(!r.stdout.includes(repo), `anonymous search does not show private repositories: ${r.stdout}`);
    });

    it("containerd (ctr) pulls and pushes with --user over verified TLS (hosts.toml names the CA)", { skip: has("containerd") && has("ctr") && process.getuid?.() === 0 ? false : "needs containerd and ctr (and root)" }, async () => {
      const c = join(work, "containerd");
      await mkdir(c);
      const sock = join(c, "containerd.sock");
      await writeFile(
        join(c, "config.toml"),
        `version = 2\nroot = "${join(c, "root")}"\nstate = "${join(c, "state")}"\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n[grpc]\n  address = "${sock}"\n`,
      );
      const containerd = spawn("containerd", ["--config", join(c, "config.toml")], { stdio: "ignore" });
      const ctr = (...args: string[]) => run("ctr", ["-a", sock, "-n", "strata-test", ...args], { timeoutMs: 120_000 });
      try {
        for (let i = 0; i < 200; i++) {
          if (existsSync(sock) && (await ctr("version")).code === 0) break;
          await new Promise((r) => setTimeout(r, 100));
        }
        const repo = `team/${uniqueName("ctr")}`;
        const push = await run("skopeo", ["copy", "--dest-creds", "alice:alice-secret", "--dest-cert-dir", certDir, `oci:${image.dir}:v1`, `docker://${host}/${repo}:v1`], { timeoutMs: 120_000 });
        assert.equal(push.code, 0, push.stderr);
        // ctr sends loopback registries plain HTTP unless a hosts.toml says otherwise: the hosts dir names
        // the HTTPS endpoint and the test CA.
        const hostsDir = join(c, "hosts");
        await mkdir(join(hostsDir, host), { recursive: true });
        await writeFile(
          join(hostsDir, host, "hosts.toml"),
          `server = "https://${host}"\n[host."https://${host}"]\n  capabilities = ["pull", "resolve", "push"]\n  ca = "${join(certDir, "ca.crt")}"\n`,
        );
        const ca = ["--hosts-dir", hostsDir];
        let r = await ctr("images", "pull", "--user", "alice:wrong", ...ca, `${host}/${repo}:v1`);
        assert.notEqual(r.code, 0, "a wrong password fails");
        r = await ctr("images", "pull", "--user", "alice:alice-secret", ...ca, `${host}/${repo}:v1`);
        assert.equal(r.code, 0, r.stderr + r.stdout);
        r = await ctr("images", "ls", "-q");
        assert.ok(r.stdout.split("\n").includes(`${host}/${repo}:v1`), r.stdout);
        assert.equal((await ctr("images", "tag", `${host}/${repo}:v1`, `${host}/${repo}-copy:v1`)).code, 0);
        r = await ctr("images", "push", "--user", "alice:alice-secret", ...ca, `${host}/${repo}-copy:v1`);
        assert.equal(r.code, 0, r.stderr + r.stdout);
        const back = await run("skopeo", ["inspect", "--creds", "alice:alice-secret", "--cert-dir", certDir, `docker://${host}/${repo}-copy:v1`]);
        assert.equal(JSON.parse(back.stdout).Digest, image.manifestDigest);
      } finally {
        if (containerd.exitCode === null) {
          const exited = new Promise((res) => containerd.once("exit", res));
          containerd.kill("SIGTERM");
          await exited;
        }
      }
    });

    it("docker login + push + pull + run through a private dockerd", { skip: dockerSkip || (has("skopeo") ? false : "needs skopeo") }, async () => {
      const d = join(work, "docker");
      // Go reads extra trusted roots from SSL_CERT_FILE: the test CA, for this dockerd only.
      const dockerd = await startDockerd(join(d, "root"), d, { env: { ...process.env, SSL_CERT_FILE: join(certDir, "ca.crt") } });
      const docker = dockerd.docker;
      try {
        assert.ok(dockerd.started, dockerd.failure);
        const local = `strata-test/${uniqueName("img")}:v1`;
        await mustRun("skopeo", ["copy", `oci:${image.dir}:v1`, `docker-archive:${join(d, "img.tar")}:${local}`]);
        let r = await docker("load", "-i", join(d, "img.tar"));
        assert.equal(r.code, 0, r.stderr);
        r = await docker("login", "-u", "alice", "-p", "wrong", host);
        assert.notEqual(r.code, 0, "login with a wrong password fails");
        r = await docker("login", "-u", "alice", "-p", "alice-secret", host);
        assert.equal(r.code, 0, r.stderr);
        const cfg = JSON.parse(await readFile(join(dockerd.clientConfig, "config.json"), "utf8"));
        if (mode === "token") assert.ok(cfg.auths[host].identitytoken, "docker keeps the refresh token as its identity token");
        const ref = `${host}/team/${uniqueName("dk")}:v1`;
        assert.equal((await docker("tag", local, ref)).code, 0);
        r = await docker("push", ref);
        assert.equal(r.code, 0, r.stderr + r.stdout);
        assert.equal((await docker("rmi", ref, local)).code, 0);
        r = await docker("pull", ref);
        assert.equal(r.code, 0, r.stderr + r.stdout);
        r = await docker("run", "--rm", "--network", "none", "--runtime", "runc-norlimit", ref, "/bin/tini", "--version");
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /^tini version/);
        assert.equal((await docker("logout", host)).code, 0);
        assert.equal((await docker("rmi", ref)).code, 0);
        r = await docker("pull", ref);
        // (dockerd then also tries plain HTTP, as it does for every loopback registry, and reports that error)
        assert.notEqual(r.code, 0, "after logout the private repository is refused");
      } finally {
        await dockerd.stop();
      }
    });
  });
}
