/**
 * Test peers: Debian's `docker-registry` (CNCF distribution 2.8) on a free loopback port with a
 * temporary filesystem root, and skopeo to push OCI layouts into it.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { cp, mkdtemp, rm, writeFile } from "node:fs/promises";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const GOLDEN_DIR = new URL("../../../../../test/fixtures/docker-golden/edge/", import.meta.url).pathname;

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

export interface DistributionAuth {
  htpasswd?: { path: string };
  token?: { realm: string; service: string; issuer: string; rootCertBundle: string };
  /** Serve HTTPS with this certificate and key (PEM files). */
  tls?: { certificate: string; key: string };
}

export interface Distribution {
  port: number;
  /** "127.0.0.1:PORT" */
  host: string;
  /** The registry's storage root (filesystem driver). */
  storage: string;
  dir: string;
  stop(): Promise<void>;
}

export async function startDistribution(auth: DistributionAuth = {}): Promise<Distribution> {
  const dir = await mkdtemp(join(tmpdir(), "strata-dist-"));
  const storage = join(dir, "data");
  const port = await freePort();
  let authYaml = "";
  if (auth.htpasswd) authYaml = `auth:\n  htpasswd:\n    realm: basic-realm\n    path: ${auth.htpasswd.path}\n`;
  if (auth.token) {
    const t = auth.token;
    authYaml = `auth:\n  token:\n    realm: ${t.realm}\n    service: ${t.service}\n    issuer: ${t.issuer}\n    rootcertbundle: ${t.rootCertBundle}\n`;
  }
  const cfg = `version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: ${storage}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:${port}
${auth.tls ? `  tls:\n    certificate: ${auth.tls.certificate}\n    key: ${auth.tls.key}\n` : ""}${authYaml}`;
  await writeFile(join(dir, "config.yml"), cfg);
  const child: ChildProcess = spawn("docker-registry", ["serve", join(dir, "config.yml")], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.on("data", (d) => {
    stderr += d;
  });
  const started = Date.now();
  for (;;) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited: ${stderr}`);
    try {
      if (auth.tls) {
        await new Promise<void>((resolve, reject) => {
          const sock = connect(port, "127.0.0.1", () => {
            sock.destroy();
            resolve();
          });
          sock.on("error", reject);
        });
      } else {
        const res = await fetch(`http://127.0.0.1:${port}/v2/`);
        await res.body?.cancel();
      }
      break;
    } catch {
      if (Date.now() - started > 15000) throw new Error(`docker-registry did not start: ${stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return {
    port,
    host: `127.0.0.1:${port}`,
    storage,
    dir,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export function run(
  cmd: string,
  args: string[],
  opts: { input?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<{ stdout: string; stderr: string; code: number }> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { env: opts.env ?? process.env, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ stdout, stderr, code: err ? ((err as { code?: number }).code ?? 1) : 0 });
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
}

/** Copies an OCI layout to a writable temp dir and pushes `tag` with skopeo (digests preserved). */
export async function pushOciLayout(
  layout: string,
  tag: string,
  dest: string,
  opts: { all?: boolean; creds?: string; registryToken?: string; format?: "v2s2" | "oci" } = {},
): Promise<void> {
  const tmp = await mkdtemp(join(tmpdir(), "strata-oci-"));
  try {
    await cp(layout, join(tmp, "oci"), { recursive: true });
    await run("chmod", ["-R", "u+w", tmp]);
    // converting to Docker schema2 changes the manifest, so digests cannot be preserved then
    const args = ["copy", "--quiet", "--dest-tls-verify=false", ...(opts.format === "v2s2" ? ["--format", "v2s2"] : ["--preserve-digests"])];
    if (opts.all) args.push("--all");
    if (opts.creds) args.push("--dest-creds", opts.creds);
    if (opts.registryToken) args.push("--dest-registry-token", opts.registryToken);
    args.push(`oci:${join(tmp, "oci")}:${tag}`, `docker://${dest}`);
    const r = await run("skopeo", args);
    if (r.code !== 0) throw new Error(`skopeo copy failed: ${r.stderr}`);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** Path of a blob's data file in distribution's filesystem storage. */
export function distributionBlobPath(storage: string, digestHexValue: string): string {
  return join(storage, "docker", "registry", "v2", "blobs", "sha256", digestHexValue.slice(0, 2), digestHexValue, "data");
}
