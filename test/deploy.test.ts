/**
 * deploy/ cannot be built or run here (no Docker engine), so what can be checked is checked:
 * every YAML parses, the compose file and Kubernetes manifests have the shape a fleet needs,
 * and the Strata configuration they ship goes through the real config parser.
 */
import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { parseConfig } from "@strata/registry";
import { parse, parseAllDocuments } from "yaml";
import { REPO_ROOT } from "./helpers/strata.js";

const deploy = join(REPO_ROOT, "deploy");

async function yamlFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await yamlFiles(p)));
    else if (/\.ya?ml$/.test(e.name)) out.push(p);
  }
  return out;
}

describe("deploy/", () => {
  it("every YAML file parses without errors", async () => {
    const files = await yamlFiles(deploy);
    assert.ok(files.length >= 5, `found ${files.length} YAML files`);
    for (const f of files) {
      for (const doc of parseAllDocuments(await readFile(f, "utf8"))) assert.deepEqual(doc.errors, [], f);
    }
  });

  it("the fleet config used by compose passes the real config parser as an S3 + Redis setup", async () => {
    const cfg = parseConfig(parse(await readFile(join(deploy, "strata.yml"), "utf8")));
    assert.equal(cfg.storage.driver, "s3");
    assert.equal(cfg.storage.s3?.bucket, "strata");
    assert.equal(cfg.storage.s3?.forcePathStyle, true);
    assert.match(cfg.redis.url ?? "", /^redis:\/\//);
    assert.equal(cfg.storage.s3?.accessKeyId, undefined, "credentials are not in the file");
  });

  it("the Kubernetes ConfigMap's config passes the real config parser", async () => {
    const cm = parse(await readFile(join(deploy, "k8s", "configmap.yaml"), "utf8"));
    const cfg = parseConfig(parse(cm.data["config.yml"]));
    assert.equal(cfg.storage.driver, "s3");
    assert.ok(cfg.redis.url);
    assert.equal(cfg.addr, "0.0.0.0:5000");
  });

  it("compose runs two replicas behind a load balancer with MinIO and Redis", async () => {
    const c = parse(await readFile(join(deploy, "docker-compose.yml"), "utf8"));
    const services = Object.keys(c.services);
    for (const s of ["minio", "redis", "strata-1", "strata-2", "lb"]) assert.ok(services.includes(s), s);
    assert.equal(c.services["strata-1"].build.dockerfile, "deploy/Dockerfile");
    const haproxy = await readFile(join(deploy, "haproxy.cfg"), "utf8");
    assert.match(haproxy, /server s1 strata-1:5000/);
    assert.match(haproxy, /server s2 strata-2:5000/);
    assert.match(haproxy, /httpchk GET \/readyz/);
  });

  it("the Deployment has 2+ replicas, probes, and S3 credentials from a Secret", async () => {
    const d = parse(await readFile(join(deploy, "k8s", "deployment.yaml"), "utf8"));
    assert.equal(d.kind, "Deployment");
    assert.ok(d.spec.replicas >= 2);
    const c = d.spec.template.spec.containers[0];
    assert.equal(c.readinessProbe.httpGet.path, "/readyz");
    assert.equal(c.livenessProbe.httpGet.path, "/livez", "a dependency outage must not restart the pods");
    const secretEnv = c.env.filter((e: { valueFrom?: { secretKeyRef?: unknown } }) => e.valueFrom?.secretKeyRef);
    assert.deepEqual(secretEnv.map((e: { name: string }) => e.name).sort(), ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]);
    assert.equal(d.spec.template.spec.securityContext.runAsNonRoot, true);
    const svc = parse(await readFile(join(deploy, "k8s", "service.yaml"), "utf8"));
    assert.equal(svc.kind, "Service");
  });

  it("the Dockerfile is multi-stage, runs as non-root and has a healthcheck", async () => {
    const df = await readFile(join(deploy, "Dockerfile"), "utf8");
    assert.ok((df.match(/^FROM /gm) ?? []).length >= 2);
    assert.match(df, /^USER (?!root)\w+/m);
    assert.match(df, /^HEALTHCHECK /m);
  });

  it("the Dockerfile builds and runs on one Node image", async () => {
    const df = await readFile(join(deploy, "Dockerfile"), "utf8");
    const bases = [...df.matchAll(/^FROM (\S+)/gm)].map((m) => m[1].toLowerCase());
    // the native addons are compiled in the first stage and loaded in the last (the memory addon
    // uses V8's C++ API, which changes with each Node major)
    assert.equal(new Set(bases).size, 1, `stages use different images: ${bases.join(", ")}`);
    assert.match(bases[0], /^node:\d+-/, `not an official Node image: ${bases[0]}`);
  });
});
