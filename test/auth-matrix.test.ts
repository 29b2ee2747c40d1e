/**
 * The authorization matrix, against real `strata serve` processes in token mode: users
 * (anonymous, reader, writer, admin, a wrong password, an expired token, a forged token, a
 * token for another scope) x actions (catalog, pull, push, mount from a repository the user
 * cannot read, delete). Every cell asserts the status, the challenge (scope named) or the
 * DENIED code, and the effect (what the catalog lists, what was stored, linked or deleted).
 *
 * Runs on the filesystem registry and, when STRATA_TEST_BACKENDS includes s3, on two replicas
 * sharing S3 and Redis: every token is issued by replica A and used on replica B.
 */
import assert from "node:assert/strict";
import { createPrivateKey, randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { basic, ecKeyPem, parseChallenge, writeAuthFiles } from "@strata/registry/test-helpers/auth.js";
import { SignJWT } from "jose";
import { fleetConfig } from "./helpers/fleet.js";
import { minimalImage, sha256 } from "./helpers/oci-layout.js";
import { type StrataServer, startStrata } from "./helpers/strata.js";

const PASSWORDS = { reader: "reader-pw", writer: "writer-pw", admin: "admin-pw" };
const SERVICE = "strata-matrix";
const ACCESS = [
  { repositories: ["public/**"], users: ["group:admins"], actions: ["*"] },
  { repositories: ["public/**"], users: ["writer"], actions: ["pull", "push"] },
  { repositories: ["public/**"], users: ["anonymous", "*"], actions: ["pull"] },
  { repositories: ["secret/**"], users: ["group:admins"], actions: ["*"] },
  { repositories: ["${user}/**"], users: ["*"], actions: ["pull", "push"] },
];
const ROWS = ["anonymous", "reader", "writer", "admin", "wrong password", "expired token", "forged token", "token for another scope"] as const;
type Row = (typeof ROWS)[number];
const slug = (r: Row) => r.replace(/ /g, "-");

const modes: { name: string; replicas: number; config: () => Promise<{ config: Record<string, unknown>; cleanup: () => Promise<void> }> }[] = [
  {
    name: "filesystem",
    replicas: 1,
    config: async () => {
      const root = await mkdtemp(join(tmpdir(), "strata-matrix-"));
      return { config: { storage: { driver: "filesystem", filesystem: { root } } }, cleanup: () => rm(root, { recursive: true, force: true }) };
    },
  },
];
if ((process.env.STRATA_TEST_BACKENDS ?? "").split(",").includes("s3")) modes.push({ name: "s3+redis, two replicas", replicas: 2, config: fleetConfig });

interface Res {
  status: number;
  headers: Headers;
  body: Buffer;
}

for (const mode of modes) {
  describe(`authorization matrix [${mode.name}]`, () => {
    let issuer: StrataServer; // tokens come from here
    let target: StrataServer; // requests go here
    let servers: StrataServer[] = [];
    let cleanup: () => Promise<void>;
    let dir: string;
    let signingKey: string;
    const image = minimalImage();
    const manifestType = "application/vnd.oci.image.manifest.v1+json";
    const secretBlob = randomBytes(333);
    const secretDigest = sha256(secretBlob);
    const delDigests = new Map<Row, string>();

    async function call(method: string, path: string, authorization?: string, body?: Buffer, headers: Record<string, string> = {}): Promise<Res> {
      const r = await fetch(`${target.url}${path}`, { method, body, headers: { ...headers, ...(authorization ? { Authorization: authorization } : {}) } });
      return { status: r.status, headers: r.headers, body: Buffer.from(await r.arrayBuffer()) };
    }

    /** A token from the issuing replica's endpoint, as docker asks for it. */
    async function fetchToken(scopes: string[], creds?: [string, string]): Promise<{ status: number; token?: string }> {
      const q = new URLSearchParams({ service: SERVICE });
      for (const s of scopes) q.append("scope", s);
      const r = await fetch(`${issuer.url}/auth/token?${q}`, { headers: creds ? { Authorization: basic(...creds) } : {} });
      const body = (await r.json()) as { token?: string };
      return { status: r.status, token: body.token };
    }

    async function signed(scopes: string[], opts: { expired?: boolean; key?: string }): Promise<string> {
      const key = createPrivateKey(opts.key ?? (await readFile(signingKey, "utf8")));
      const now = Math.floor(Date.now() / 1000);
      const access = scopes.map((s) => {
        const [type, rest] = [s.slice(0, s.indexOf(":")), s.slice(s.indexOf(":") + 1)];
        return { type, name: rest.slice(0, rest.lastIndexOf(":")), actions: rest.slice(rest.lastIndexOf(":") + 1).split(",") };
      });
      return new SignJWT({ access })
        .setProtectedHeader({ alg: "ES256", typ: "JWT" })
        .setIssuer("strata")
        .setSubject("admin")
        .setAudience(SERVICE)
        .setIssuedAt(opts.expired ? now - 3600 : now)
        .setNotBefore(opts.expired ? now - 3600 : now)
        .setExpirationTime(opts.expired ? now - 1800 : now + 300)
        .setJti(randomBytes(8).toString("hex"))
        .sign(key);
    }

    /** The Authorization header a row presents for a request needing `scopes`. */
    async function authFor(row: Row, scopes: string[]): Promise<string> {
      switch (row) {
        case "anonymous":
        case "reader":
        case "writer":
        case "admin": {
          const t = await fetchToken(scopes, row === "anonymous" ? undefined : [row, PASSWORDS[row]]);
          assert.equal(t.status, 200, `token for ${row}`);
          return `Bearer ${t.token}`;
        }
        case "wrong password": {
          const t = await fetchToken(scopes, ["writer", "not-the-password"]);
          assert.equal(t.status, 401, "the token endpoint refuses a wrong password");
          return basic("writer", "not-the-password");
        }
        case "expired token":
          return `Bearer ${await signed(scopes, { expired: true })}`;
        case "forged token":
          return `Bearer ${await signed(scopes, { key: ecKeyPem() })}`;
        case "token for another scope": {
          const t = await fetchToken(["repository:reader/own:pull,push"], ["reader", PASSWORDS.reader]);
          return `Bearer ${t.token}`;
        }
      }
    }

    function expect401(res: Res, scope: string, what: string): void {
      assert.equal(res.status, 401, `${what}: ${res.body.toString().slice(0, 200)}`);
      const c = parseChallenge(res.headers.get("www-authenticate") ?? undefined);
      assert.equal(c?.scheme, "bearer", what);
      assert.equal(c?.params.scope, scope, `${what}: the challenge names the scope needed`);
      assert.equal(c?.params.service, SERVICE, what);
      assert.equal(JSON.parse(res.body.toString()).errors[0].code, "UNAUTHORIZED", what);
      assert.equal(res.headers.get("docker-distribution-api-version"), "registry/2.0", what);
    }

    function expect403(res: Res, what: string): void {
      assert.equal(res.status, 403, `${what}: ${res.body.toString().slice(0, 200)}`);
      assert.equal(JSON.parse(res.body.toString()).errors[0].code, "DENIED", what);
      assert.equal(res.headers.get("www-authenticate"), null, what);
    }

    async function admin(scopes: string[]): Promise<string> {
      return authFor("admin", scopes);
    }

    async function pushImage(repo: string, tag: string, auth: string, extra = ""): Promise<string> {
      const { config } = image;
      const manifest = Buffer.from(JSON.stringify({ ...JSON.parse(image.manifest.toString()), annotations: { extra: extra || repo } }));
      let r = await call("POST", `/v2/${repo}/blobs/uploads/?digest=${sha256(config)}`, auth, config, { "Content-Type": "application/octet-stream" });
      assert.equal(r.status, 201, r.body.toString());
      r = await call("PUT", `/v2/${repo}/manifests/${tag}`, auth, manifest, { "Content-Type": manifestType });
      assert.equal(r.status, 201, r.body.toString());
      return sha256(manifest);
    }

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), "strata-matrix-auth-"));
      const files = await writeAuthFiles(dir, PASSWORDS);
      signingKey = files.signingKey;
      const c = await mode.config();
      cleanup = c.cleanup;
      const config = {
        ...c.config,
        // failed-login limits are tested elsewhere; here the wrong-password row fails many times on purpose
        auth: { htpasswd: { path: files.htpasswd }, token: { signingKey, service: SERVICE }, rateLimit: { failuresPerUser: 10_000, failuresPerAddress: 10_000 } },
        access: ACCESS,
        groups: { admins: ["admin"] },
      };
      servers = await Promise.all(Array.from({ length: mode.replicas }, () => startStrata(config)));
      issuer = servers[0];
      target = servers[servers.length - 1];
      // fixtures, written by their owners
      await pushImage("public/app", "v1", await admin(["repository:public/app:pull,push"]));
      const sec = await admin(["repository:secret/app:pull,push"]);
      assert.equal((await call("POST", `/v2/secret/app/blobs/uploads/?digest=${secretDigest}`, sec, secretBlob)).status, 201);
      for (const row of ROWS) delDigests.set(row, await pushImage(`public/del-${slug(row)}`, "v1", await admin([`repository:public/del-${slug(row)}:pull,push`])));
      for (const u of ["reader", "writer"] as const) {
        const t = (await fetchToken([`repository:${u}/own:pull,push`], [u, PASSWORDS[u]])).token!;
        await pushImage(`${u}/own`, "v1", `Bearer ${t}`);
      }
    });
    after(async () => {
      await Promise.all(servers.map((s) => s.stop()));
      await cleanup?.();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    const fixtureRepos = () => ["public/app", "secret/app", ...ROWS.map((r) => `public/del-${slug(r)}`), "reader/own", "writer/own"].sort();
    const catalogWant: Partial<Record<Row, () => string[]>> = {
      anonymous: () => fixtureRepos().filter((r) => r.startsWith("public/")),
      reader: () => fixtureRepos().filter((r) => r.startsWith("public/") || r.startsWith("reader/")),
      writer: () => fixtureRepos().filter((r) => r.startsWith("public/") || r.startsWith("writer/")),
      admin: () => fixtureRepos().filter((r) => !r.startsWith("reader/") && !r.startsWith("writer/")),
    };

    describe("catalog", () => {
      for (const row of ROWS) {
        it(row, async () => {
          const scope = "registry:catalog:*";
          const res = await call("GET", "/v2/_catalog", await authFor(row, [scope]));
          const want = catalogWant[row];
          if (want) {
            assert.equal(res.status, 200, res.body.toString());
            assert.deepEqual(JSON.parse(res.body.toString()).repositories, want(), "exactly the repositories this user may pull");
          } else {
            expect401(res, scope, row);
          }
        });
      }
    });

    describe("pull", () => {
      for (const row of ROWS) {
        it(row, async () => {
          const scope = "repository:public/app:pull";
          const res = await call("GET", "/v2/public/app/manifests/v1", await authFor(row, [scope]), undefined, { Accept: manifestType });
          if (["anonymous", "reader", "writer", "admin"].includes(row)) {
            assert.equal(res.status, 200, res.body.toString());
            assert.equal(JSON.parse(res.body.toString()).annotations.extra, "public/app");
          } else {
            expect401(res, scope, row);
            if (row === "token for another scope") assert.equal(parseChallenge(res.headers.get("www-authenticate")!)?.params.error, "insufficient_scope");
            if (row === "expired token" || row === "forged token") assert.equal(parseChallenge(res.headers.get("www-authenticate")!)?.params.error, "invalid_token");
          }
        });
      }
    });

    describe("push", () => {
      for (const row of ROWS) {
        it(row, async () => {
          const repo = `public/pushed-${slug(row)}`;
          const scope = `repository:${repo}:pull,push`;
          const auth = await authFor(row, [scope]);
          if (row === "writer" || row === "admin") {
            const digest = await pushImage(repo, "v1", auth);
            const back = await call("GET", `/v2/${repo}/manifests/${digest}`, await admin([`repository:${repo}:pull`]));
            assert.equal(back.status, 200, "the pushed manifest is stored");
            return;
          }
          const res = await call("POST", `/v2/${repo}/blobs/uploads/`, auth);
          const put = await call("PUT", `/v2/${repo}/manifests/v1`, auth, image.manifest, { "Content-Type": manifestType });
          if (row === "reader" || row === "token for another scope") {
            expect403(res, row);
            expect403(put, row);
          } else {
            expect401(res, scope, row);
            expect401(put, scope, row);
          }
          const tags = await call("GET", `/v2/${repo}/tags/list`, await admin([`repository:${repo}:pull`]));
          assert.equal(tags.status, 404, "nothing was stored");
        });
      }
    });

    describe("mount from a repository the user cannot read (secret/app)", () => {
      for (const row of ROWS) {
        it(row, async () => {
          const owner = row === "reader" || row === "writer" || row === "admin" || row === "token for another scope" ? (row === "token for another scope" ? "reader" : row) : "public";
          const dst = `${owner}/mnt-${slug(row)}`;
          const scope = `repository:${dst}:pull,push`;
          const auth = await authFor(row, [scope, "repository:secret/app:pull"]);
          const res = await call("POST", `/v2/${dst}/blobs/uploads/?mount=${secretDigest}&from=secret/app`, auth);
          const ownerAuth = owner === "public" ? await admin([`repository:${dst}:pull`]) : await authFor(owner as Row, [`repository:${dst}:pull`]);
          const linked = async () => (await call("HEAD", `/v2/${dst}/blobs/${secretDigest}`, ownerAuth)).status;
          if (row === "admin") {
            assert.equal(res.status, 201, "the admin may read secret/app: mounted");
            assert.equal(res.headers.get("location"), `/v2/${dst}/blobs/${secretDigest}`);
            assert.equal(await linked(), 200);
          } else if (row === "reader" || row === "writer") {
            assert.equal(res.status, 202, "falls back to an upload, saying nothing about secret/app");
            assert.match(res.headers.get("location") ?? "", new RegExp(`^/v2/${dst}/blobs/uploads/`));
            assert.equal(await linked(), 404, "nothing was linked");
          } else {
            expect401(res, scope, row);
            assert.equal(await linked(), 404, "nothing was linked");
          }
        });
      }
    });

    describe("delete", () => {
      for (const row of ROWS) {
        it(row, async () => {
          const repo = `public/del-${slug(row)}`;
          const scope = `repository:${repo}:delete`;
          const digest = delDigests.get(row)!;
          const res = await call("DELETE", `/v2/${repo}/manifests/${digest}`, await authFor(row, [scope]));
          const still = async () => (await call("GET", `/v2/${repo}/manifests/${digest}`, await admin([`repository:${repo}:pull`]), undefined, { Accept: manifestType })).status;
          if (row === "admin") {
            assert.equal(res.status, 202, res.body.toString());
            assert.equal(await still(), 404, "deleted");
            return;
          }
          if (row === "reader" || row === "writer" || row === "token for another scope") expect403(res, row);
          else expect401(res, scope, row);
          assert.equal(await still(), 200, "still there");
        });
      }
    });
  });
}
