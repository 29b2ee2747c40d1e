/**
 * deploy/ ships with authentication and TLS on and deletes limited to admins. The example's
 * secrets come from deploy/gen-secrets.sh (run here into a temp dir); the compose config, with
 * its storage swapped for a local filesystem, then serves HTTPS with the generated certificate
 * and users: the printed admin password logs in and may delete, the ci user may not.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { parseConfig, Policy, type RegistryConfig } from "@strata/registry";
import { parse } from "yaml";
import { mustRun, REPO_ROOT, startStrata } from "./helpers/strata.js";
import { minimalImage, sha256 } from "./helpers/oci-layout.js";

const deploy = join(REPO_ROOT, "deploy");

async function configs(): Promise<[string, RegistryConfig][]> {
  const cm = parse(await readFile(join(deploy, "k8s", "configmap.yaml"), "utf8"));
  return [
    ["strata.yml", parseConfig(parse(await readFile(join(deploy, "strata.yml"), "utf8")))],
    ["k8s configmap", parseConfig(parse(cm.data["config.yml"]))],
  ];
}

describe("deploy/ with auth and TLS", () => {
  it("both configs turn on htpasswd, tokens and TLS; only admins may delete", async () => {
    for (const [name, cfg] of await configs()) {
      assert.ok(cfg.auth?.htpasswd?.path, name);
      assert.ok(cfg.auth?.token?.signingKey, name);
      assert.ok(cfg.auth?.token?.service, `${name}: replicas share one service name`);
      assert.ok(cfg.tls?.certificate && cfg.tls.key, name);
      const p = new Policy(cfg.access, cfg.groups);
      for (const repo of ["admin/x", "ci/app", "someone/else", "library/base"]) {
        assert.ok(p.allows("admin", repo, "delete"), `${name}: admin deletes ${repo}`);
        for (const user of ["ci", "someone", undefined]) assert.ok(!p.allows(user, repo, "delete"), `${name}: ${user ?? "anonymous"} may not delete ${repo}`);
      }
      assert.ok(!p.allows(undefined, "library/base", "pull"), `${name}: anonymous gets nothing`);
    }
  });

  it("Kubernetes probes speak HTTPS and the auth and TLS secrets are mounted where the config expects them", async () => {
    const d = parse(await readFile(join(deploy, "k8s", "deployment.yaml"), "utf8"));
    const c = d.spec.template.spec.containers[0];
    assert.equal(c.readinessProbe.httpGet.scheme, "HTTPS");
    assert.equal(c.livenessProbe.httpGet.scheme, "HTTPS");
    const mounts = Object.fromEntries(c.volumeMounts.map((m: { name: string; mountPath: string }) => [m.name, m.mountPath]));
    const vols = Object.fromEntries(d.spec.template.spec.volumes.map((v: { name: string; secret?: { secretName: string } }) => [v.name, v.secret?.secretName]));
    const cfg = (await configs())[1][1];
    assert.ok(cfg.auth!.htpasswd!.path.startsWith(`${mounts.auth}/`));
    assert.ok(cfg.tls!.certificate.startsWith(`${mounts.tls}/`));
    assert.equal(vols.auth, "strata-auth");
    assert.equal(vols.tls, "strata-tls");
    const compose = parse(await readFile(join(deploy, "docker-compose.yml"), "utf8"));
    assert.ok(compose.services["strata-1"].volumes.includes("./secrets:/etc/strata/secrets:ro"));
  });

  const tools = ["openssl", "htpasswd"].filter((t) => !["/usr/bin/", "/bin/"].some((p) => existsSync(p + t)));
  it("gen-secrets.sh makes secrets the compose config serves HTTPS with; admin deletes, ci does not", { skip: tools.length ? `needs ${tools.join(", ")}` : false }, async () => {
    const dir = await mkdtemp(join(tmpdir(), "strata-deploy-secrets-"));
    try {
      const out = await mustRun("bash", [join(deploy, "gen-secrets.sh"), dir, "localhost", "127.0.0.1"]);
      const pw = Object.fromEntries(out.trim().split("\n").map((l) => l.split(": ")));
      assert.ok(pw.admin && pw.ci, out);
      const raw = parse((await readFile(join(deploy, "strata.yml"), "utf8")).replaceAll("/etc/strata/secrets", dir));
      raw.storage = { driver: "filesystem", filesystem: { root: join(dir, "data") } };
      delete raw.redis;
      raw.log = { level: "warn" };
      const ca = await readFile(join(dir, "tls.crt"));
      const srv = await startStrata(raw, { ca });
      try {
        const { https } = { https: await import("node:https") };
        const call = (method: string, path: string, user: string, body?: Buffer, headers: Record<string, string> = {}) =>
          new Promise<number>((resolve, reject) => {
            const r = https.request(`${srv.url}${path}`, { method, ca, auth: `${user}:${pw[user]}`, headers }, (res) => {
              res.resume();
              resolve(res.statusCode ?? 0);
            });
            r.on("error", reject);
            r.end(body);
          });
        assert.equal(await call("GET", "/v2/", "admin"), 200);
        const { config, manifest } = minimalImage();
        assert.equal(await call("POST", `/v2/ci/app/blobs/uploads/?digest=${sha256(config)}`, "ci", config), 201);
        assert.equal(await call("PUT", "/v2/ci/app/manifests/v1", "ci", manifest, { "Content-Type": "application/vnd.oci.image.manifest.v1+json" }), 201);
        assert.equal(await call("DELETE", `/v2/ci/app/manifests/${sha256(manifest)}`, "ci"), 403);
        assert.equal(await call("DELETE", `/v2/ci/app/manifests/${sha256(manifest)}`, "admin"), 202);
      } finally {
        await srv.stop();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
