/**
 * Access control over HTTP, in process: challenges (Basic and Bearer, always with the scope the
 * request needed), 401/403/429 and their headers, OPTIONS, the token endpoint (GET, OAuth2
 * POST, refresh tokens, partial grants, claims), token checks (expired, forged, wrong
 * audience, alg none, refresh token used as access token), htpasswd reload, failed-login
 * limits (shared through Redis), JWKS of an external token server, and logs free of secrets.
 */
import assert from "node:assert/strict";
import { createPrivateKey, createPublicKey, randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import bcrypt from "bcryptjs";
import { decodeJwt, decodeProtectedHeader, exportJWK, SignJWT } from "jose";
import { pino } from "pino";
import { createRegistry } from "../src/app.js";
import { parseConfig, type RegistryConfigInput } from "../src/config.js";
import { basic, ecKeyPem, parseChallenge, writeAuthFiles } from "./helpers/auth.js";
import { dropRedisPrefix, testRedisUrl } from "./helpers/backends.js";
import { expectError, type Harness, startRegistry } from "./helpers/http.js";
import { pushBlob, randomBlob } from "./helpers/oci.js";

const USERS = { alice: "alice-pw", bob: "bob-pw", root: "root-pw" };
const ACCESS = [
  { repositories: ["public/**"], users: ["group:admins"], actions: ["*"] },
  { repositories: ["public/**"], users: ["anonymous", "*"], actions: ["pull"] },
  { repositories: ["team/**"], users: ["alice"], actions: ["pull", "push"] },
  { repositories: ["${user}/**"], users: ["*"], actions: ["pull", "push", "delete"] },
];

async function withAuth(mode: "basic" | "token", extra: (dir: string, files: { htpasswd: string; signingKey: string }) => RegistryConfigInput = () => ({})) {
  const dir = await mkdtemp(join(tmpdir(), "strata-auth-http-"));
  const files = await writeAuthFiles(dir, USERS);
  const h = await startRegistry({
    name: mode,
    async make() {
      const config = parseConfig({
        log: { level: "silent" },
        storage: { driver: "memory" },
        auth: { htpasswd: { path: files.htpasswd }, ...(mode === "token" ? { token: { signingKey: files.signingKey, service: "strata-test" } } : {}) },
        access: ACCESS,
        groups: { admins: ["root"] },
        ...extra(dir, files),
      });
      return { config, cleanup: () => rm(dir, { recursive: true, force: true }) };
    },
  });
  return { h, dir, files };
}

async function token(h: Harness, scopes: string[], creds?: [string, string], extra = ""): Promise<{ token: string; body: Record<string, unknown> }> {
  const q = scopes.map((s) => `scope=${encodeURIComponent(s)}`).join("&");
  const res = await h.req("GET", `/auth/token?service=strata-test&${q}${extra}`, { headers: creds ? { Authorization: basic(...creds) } : {} });
  assert.equal(res.status, 200, res.text());
  const body = res.json();
  return { token: body.token, body };
}

const bearer = (t: string) => ({ headers: { Authorization: `Bearer ${t}` } });

describe("Basic authentication (htpasswd alone)", () => {
  let h: Harness;
  before(async () => {
    ({ h } = await withAuth("basic"));
  });
  after(() => h.close());

  it("GET /v2/ without credentials is 401 with a Basic challenge and the API version header", async () => {
    const res = await h.req("GET", "/v2/");
    expectError(res, 401, "UNAUTHORIZED");
    assert.equal(res.header("www-authenticate"), 'Basic realm="strata"');
    assert.equal(res.header("docker-distribution-api-version"), "registry/2.0");
  });
  it("GET /v2/ with valid credentials is 200; wrong password or unknown user is 401", async () => {
    assert.equal((await h.req("GET", "/v2/", { headers: { Authorization: basic("alice", "alice-pw") } })).status, 200);
    expectError(await h.req("GET", "/v2/", { headers: { Authorization: basic("alice", "nope") } }), 401, "UNAUTHORIZED");
    expectError(await h.req("GET", "/v2/", { headers: { Authorization: basic("mallory", "x") } }), 401, "UNAUTHORIZED");
    expectError(await h.req("GET", "/v2/", { headers: { Authorization: "Basic !!!" } }), 401, "UNAUTHORIZED");
  });
  it("an empty user and password (what containers/image sends without credentials) is anonymous, not a failed login", async () => {
    await pushBlob(h, "public/x", randomBlob(10), undefined).catch(() => {});
    const res = await h.req("GET", "/v2/public/x/tags/list", { headers: { Authorization: basic("", "") } });
    assert.notEqual(res.status, 401);
    expectError(await h.req("GET", "/v2/", { headers: { Authorization: basic("", "") } }), 401, "UNAUTHORIZED");
  });
  it("anonymous may pull public/**; anonymous push is 401; an authenticated user without the right is 403 DENIED", async () => {
    expectError(await h.req("GET", "/v2/public/none/manifests/latest"), 404, "MANIFEST_UNKNOWN");
    const push = await h.req("POST", "/v2/public/x/blobs/uploads/");
    expectError(push, 401, "UNAUTHORIZED");
    assert.equal(push.header("www-authenticate"), 'Basic realm="strata"');
    const denied = await h.req("POST", "/v2/public/x/blobs/uploads/", { headers: { Authorization: basic("alice", "alice-pw") } });
    expectError(denied, 403, "DENIED");
    assert.equal(denied.header("www-authenticate"), undefined);
    assert.equal((await h.req("POST", "/v2/public/x/blobs/uploads/", { headers: { Authorization: basic("root", "root-pw") } })).status, 202);
  });
  it("OPTIONS (CORS preflight) is never 401", async () => {
    for (const p of ["/v2/", "/v2/team/x/manifests/latest", "/v2/_catalog"]) {
      const res = await h.req("OPTIONS", p);
      assert.notEqual(res.status, 401, p);
      assert.equal(res.header("docker-distribution-api-version"), "registry/2.0");
    }
  });
  it("/healthz, /readyz and /livez need no credentials", async () => {
    for (const p of ["/healthz", "/readyz", "/livez"]) assert.equal((await h.req("GET", p)).status, 200, p);
  });
});

describe("token authentication", () => {
  let h: Harness;
  let files: { htpasswd: string; signingKey: string };
  before(async () => {
    ({ h, files } = await withAuth("token"));
  });
  after(() => h.close());

  it("challenges carry realm, service and exactly the scope the request needed", async () => {
    const cases: [string, string, string | undefined][] = [
      ["GET", "/v2/", undefined],
      ["GET", "/v2/team/app/manifests/latest", "repository:team/app:pull"],
      ["HEAD", "/v2/team/app/blobs/sha256:" + "0".repeat(64), "repository:team/app:pull"],
      ["GET", "/v2/team/app/tags/list", "repository:team/app:pull"],
      ["GET", "/v2/team/app/referrers/sha256:" + "0".repeat(64), "repository:team/app:pull"],
      ["POST", "/v2/team/app/blobs/uploads/", "repository:team/app:pull,push"],
      ["PUT", "/v2/team/app/manifests/v1", "repository:team/app:pull,push"],
      ["DELETE", "/v2/team/app/manifests/v1", "repository:team/app:delete"],
      ["GET", "/v2/_catalog", "registry:catalog:*"],
    ];
    for (const [m, p, scope] of cases) {
      const res = await h.req(m, p);
      assert.equal(res.status, 401, `${m} ${p}`);
      const c = parseChallenge(res.header("www-authenticate"));
      assert.equal(c?.scheme, "bearer", `${m} ${p}`);
      assert.match(c!.params.realm, /^http:\/\/127\.0\.0\.1:\d+\/auth\/token$/);
      assert.equal(c!.params.service, "strata-test");
      assert.equal(c!.params.scope, scope, `${m} ${p}`);
      assert.equal(res.header("docker-distribution-api-version"), "registry/2.0");
    }
  });

  it("issues tokens with the spec's claims, granting the intersection of asked and allowed (never failing on a partial grant)", async () => {
    const { token: t, body } = await token(h, ["repository:public/a:pull,push,delete repository:team/b:pull", "repository:alice/c:*", "registry:catalog:*"], ["alice", "alice-pw"]);
    assert.equal(body.access_token, t);
    assert.ok((body.expires_in as number) >= 60);
    assert.ok(!Number.isNaN(Date.parse(body.issued_at as string)));
    const claims = decodeJwt(t);
    assert.equal(claims.iss, "strata");
    assert.equal(claims.sub, "alice");
    assert.equal(claims.aud, "strata-test");
    for (const k of ["exp", "nbf", "iat"]) assert.equal(typeof claims[k], "number", k);
    assert.equal(typeof claims.jti, "string");
    assert.equal((claims.exp as number) - (claims.iat as number), 300);
    assert.deepEqual(claims.access, [
      { type: "repository", name: "public/a", actions: ["pull"] },
      { type: "repository", name: "team/b", actions: ["pull"] },
      { type: "repository", name: "alice/c", actions: ["pull", "push", "delete"] },
      { type: "registry", name: "catalog", actions: ["*"] },
    ]);
    const header = decodeProtectedHeader(t);
    assert.equal(header.alg, "ES256");
    assert.equal(header.typ, "JWT");
    assert.ok(header.kid);
  });

  it("anonymous tokens have sub \"\" and only what anonymous may do", async () => {
    const { token: t } = await token(h, ["repository:public/a:pull,push", "repository:team/b:pull"]);
    const claims = decodeJwt(t);
    assert.equal(claims.sub, "");
    assert.deepEqual(claims.access, [{ type: "repository", name: "public/a", actions: ["pull"] }]);
  });

  it("the token endpoint refuses a wrong password with 401 and a Basic challenge", async () => {
    const res = await h.req("GET", "/auth/token?service=strata-test&scope=repository:public/a:pull", { headers: { Authorization: basic("alice", "wrong") } });
    expectError(res, 401, "UNAUTHORIZED");
    assert.match(res.header("www-authenticate") ?? "", /^Basic realm=/);
  });

  it("a token works on the routes it grants and nowhere else: 401 insufficient_scope when a new token could, 403 when the policy forbids", async () => {
    const { token: t } = await token(h, ["repository:alice/app:pull,push"], ["alice", "alice-pw"]);
    const data = randomBlob(50);
    const up = await h.req("POST", "/v2/alice/app/blobs/uploads/", bearer(t));
    assert.equal(up.status, 202, up.text());
    // alice may pull team/x by policy but this token does not say so
    const other = await h.req("GET", "/v2/team/x/tags/list", bearer(t));
    expectError(other, 401, "UNAUTHORIZED");
    const c = parseChallenge(other.header("www-authenticate"));
    assert.equal(c?.params.error, "insufficient_scope");
    assert.equal(c?.params.scope, "repository:team/x:pull");
    // alice may never delete in team/
    const { token: t2 } = await token(h, ["repository:team/x:pull,push,delete"], ["alice", "alice-pw"]);
    expectError(await h.req("DELETE", `/v2/team/x/manifests/sha256:${"0".repeat(64)}`, bearer(t2)), 403, "DENIED");
    assert.equal((await h.req("GET", "/v2/", bearer(t))).status, 200);
    void data;
  });

  it("expired, not-yet-valid, forged, wrong-audience, wrong-issuer, unsigned and refresh tokens are 401 invalid_token", async () => {
    const key = createPrivateKey(await (await import("node:fs/promises")).readFile(files.signingKey, "utf8"));
    const now = Math.floor(Date.now() / 1000);
    const access = [{ type: "repository", name: "team/x", actions: ["pull"] }];
    const sign = (claims: Record<string, unknown>, k = key, alg = "ES256") =>
      new SignJWT({ access, ...claims }).setProtectedHeader({ alg, typ: "JWT" }).setIssuer((claims.iss as string) ?? "strata").setSubject("alice").setAudience((claims.aud as string) ?? "strata-test").sign(k);
    const bad: [string, string][] = [
      ["expired", await sign({ iat: now - 1000, nbf: now - 1000, exp: now - 600 })],
      ["not yet valid", await sign({ iat: now, nbf: now + 3600, exp: now + 7200 })],
      ["forged", await sign({ exp: now + 300 }, createPrivateKey(ecKeyPem()))],
      ["wrong audience", await sign({ exp: now + 300, aud: "elsewhere" })],
      ["wrong issuer", await sign({ exp: now + 300, iss: "mallory" })],
      ["no expiry", await sign({})],
      ["alg none", `${Buffer.from('{"alg":"none","typ":"JWT"}').toString("base64url")}.${Buffer.from(JSON.stringify({ iss: "strata", sub: "alice", aud: "strata-test", exp: now + 300, access })).toString("base64url")}.`],
      ["garbage", "not.a.token"],
    ];
    const { body } = await token(h, [], ["alice", "alice-pw"], "&offline_token=true");
    bad.push(["refresh token", body.refresh_token as string]);
    for (const [what, t] of bad) {
      const res = await h.req("GET", "/v2/team/x/tags/list", bearer(t));
      expectError(res, 401, "UNAUTHORIZED", what);
      const c = parseChallenge(res.header("www-authenticate"));
      assert.equal(c?.params.error, "invalid_token", what);
      assert.equal(c?.params.scope, "repository:team/x:pull", what);
    }
    // the same claims, properly signed and current, work
    const good = await sign({ iat: now, nbf: now, exp: now + 300 });
    assert.notEqual((await h.req("GET", "/v2/team/x/tags/list", bearer(good))).status, 401);
  });

  it("offline_token=true returns a refresh token; OAuth2 POST grant_type=refresh_token and =password return access tokens", async () => {
    const { body } = await token(h, [], ["bob", "bob-pw"], "&offline_token=true&client_id=docker");
    assert.equal(typeof body.refresh_token, "string");
    const form = (f: Record<string, string>) => ({
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams(f).toString(),
    });
    const r1 = await h.req("POST", "/auth/token", form({ grant_type: "refresh_token", refresh_token: body.refresh_token as string, service: "strata-test", scope: "repository:bob/app:pull,push", client_id: "docker" }));
    assert.equal(r1.status, 200, r1.text());
    assert.deepEqual(decodeJwt(r1.json().access_token).access, [{ type: "repository", name: "bob/app", actions: ["pull", "push"] }]);
    assert.equal(decodeJwt(r1.json().access_token).sub, "bob");
    const r2 = await h.req("POST", "/auth/token", form({ grant_type: "password", username: "bob", password: "bob-pw", service: "strata-test", scope: "repository:public/a:pull", access_type: "offline", client_id: "docker" }));
    assert.equal(r2.status, 200, r2.text());
    assert.equal(typeof r2.json().refresh_token, "string");
    expectError(await h.req("POST", "/auth/token", form({ grant_type: "password", username: "bob", password: "no", service: "strata-test" })), 401, "UNAUTHORIZED");
    expectError(await h.req("POST", "/auth/token", form({ grant_type: "refresh_token", refresh_token: "forged", service: "strata-test" })), 401, "UNAUTHORIZED");
    // an access token is not a refresh token
    expectError(await h.req("POST", "/auth/token", form({ grant_type: "refresh_token", refresh_token: r1.json().access_token, service: "strata-test" })), 401, "UNAUTHORIZED");
    expectError(await h.req("POST", "/auth/token", form({ grant_type: "client_credentials" })), 400, "UNSUPPORTED");
    expectError(await h.req("GET", "/auth/token?service=other"), 400, "DENIED");
  });

  it("htpasswd changes apply without a restart: a new user logs in, a changed password ends old refresh tokens", async () => {
    const { body } = await token(h, [], ["bob", "bob-pw"], "&offline_token=true");
    await sleep(1100);
    const lines = (await (await import("node:fs/promises")).readFile(files.htpasswd, "utf8")).split("\n").filter((l) => l && !l.startsWith("bob:"));
    lines.push(`bob:${bcrypt.hashSync("bob-new", 5)}`, `carol:${bcrypt.hashSync("carol-pw", 5)}`);
    await writeFile(files.htpasswd, `${lines.join("\n")}\n`);
    await sleep(1100);
    assert.equal((await h.req("GET", "/v2/", { headers: { Authorization: basic("carol", "carol-pw") } })).status, 200);
    expectError(await h.req("GET", "/v2/", { headers: { Authorization: basic("bob", "bob-pw") } }), 401, "UNAUTHORIZED");
    const res = await h.req("POST", "/auth/token", {
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ grant_type: "refresh_token", refresh_token: body.refresh_token as string, service: "strata-test" }).toString(),
    });
    expectError(res, 401, "UNAUTHORIZED");
  });
});

describe("failed-login limits", () => {
  it("after 10 failures for a user, even the right password answers 429 TOOMANYREQUESTS with Retry-After; other users are unaffected", async () => {
    const { h: h2 } = await withAuth("basic");
    try {
      for (let i = 0; i < 10; i++) expectError(await h2.req("GET", "/v2/", { headers: { Authorization: basic("alice", `wrong${i}`) } }), 401, "UNAUTHORIZED");
      const blocked = await h2.req("GET", "/v2/", { headers: { Authorization: basic("alice", "alice-pw") } });
      expectError(blocked, 429, "TOOMANYREQUESTS");
      assert.ok(Number(blocked.header("retry-after")) > 0 && Number(blocked.header("retry-after")) <= 60, blocked.header("retry-after"));
      assert.equal((await h2.req("GET", "/v2/", { headers: { Authorization: basic("bob", "bob-pw") } })).status, 200);
      // the token endpoint counts too
      expectError(await h2.req("GET", "/auth/token?service=x", { headers: { Authorization: basic("alice", "alice-pw") } }), [404, 429], ["UNSUPPORTED", "TOOMANYREQUESTS"]);
    } finally {
      await h2.close();
    }
  });

  it("failures from one address over many user names block every login from that address", async () => {
    const { h } = await withAuth("basic", (_dir, files) => ({ auth: { htpasswd: { path: files.htpasswd }, rateLimit: { failuresPerUser: 1000, failuresPerAddress: 5 } } }));
    try {
      for (let i = 0; i < 5; i++) expectError(await h.req("GET", "/v2/", { headers: { Authorization: basic(`guess${i}`, "x") } }), 401, "UNAUTHORIZED");
      expectError(await h.req("GET", "/v2/", { headers: { Authorization: basic("bob", "bob-pw") } }), 429, "TOOMANYREQUESTS");
    } finally {
      await h.close();
    }
  });

  const redisUrl = testRedisUrl();
  it("with Redis, two registries share the counts (failures on one block logins on the other)", async (t) => {
    const { Redis } = await import("ioredis");
    const probe = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 1000, retryStrategy: () => null });
    try {
      await probe.connect();
      await probe.ping();
    } catch {
      t.skip(`no Redis at ${redisUrl}`);
      return;
    } finally {
      probe.disconnect();
    }
    const keyPrefix = `strata-test:${randomBytes(6).toString("hex")}:`;
    const redis = { redis: { url: redisUrl, keyPrefix } };
    const a = await withAuth("basic", () => redis);
    const b = await withAuth("basic", () => ({ ...redis, auth: { htpasswd: { path: a.files.htpasswd } } }));
    try {
      for (let i = 0; i < 10; i++) {
        const h = i % 2 ? a.h : b.h;
        expectError(await h.req("GET", "/v2/", { headers: { Authorization: basic("bob", "bad") } }), 401, "UNAUTHORIZED");
      }
      for (const h of [a.h, b.h]) expectError(await h.req("GET", "/v2/", { headers: { Authorization: basic("bob", "bob-pw") } }), 429, "TOOMANYREQUESTS");
    } finally {
      await a.h.close();
      await b.h.close();
      await dropRedisPrefix(redisUrl, keyPrefix);
    }
  });
});

describe("external token server (JWKS)", () => {
  it("accepts tokens signed by a key of the JWKS with the token server's grants; refuses other keys", async () => {
    const dir = await mkdtemp(join(tmpdir(), "strata-jwks-"));
    const key = createPrivateKey(ecKeyPem());
    const jwk = { ...(await exportJWK(createPublicKey(key))), kid: "ext-1", alg: "ES256", use: "sig" };
    await writeFile(join(dir, "jwks.json"), JSON.stringify({ keys: [jwk] }));
    const h = await startRegistry({
      name: "jwks",
      async make() {
        return {
          config: parseConfig({ log: { level: "silent" }, storage: { driver: "memory" }, auth: { token: { jwks: join(dir, "jwks.json"), realm: "https://auth.example/token", service: "reg", issuer: "ext" } } }),
          cleanup: () => rm(dir, { recursive: true, force: true }),
        };
      },
    });
    try {
      const now = Math.floor(Date.now() / 1000);
      const sign = (k: ReturnType<typeof createPrivateKey>, kid: string) =>
        new SignJWT({ access: [{ type: "repository", name: "ext/app", actions: ["pull", "push"] }] })
          .setProtectedHeader({ alg: "ES256", kid })
          .setIssuer("ext")
          .setSubject("someone")
          .setAudience("reg")
          .setIssuedAt(now)
          .setExpirationTime(now + 300)
          .sign(k);
      const t = await sign(key, "ext-1");
      assert.equal((await h.req("POST", "/v2/ext/app/blobs/uploads/", bearer(t))).status, 202);
      const other = await h.req("GET", "/v2/ext/other/tags/list", bearer(t));
      expectError(other, 401, "UNAUTHORIZED");
      assert.equal(parseChallenge(other.header("www-authenticate"))?.params.realm, "https://auth.example/token");
      expectError(await h.req("GET", "/v2/ext/app/tags/list", bearer(await sign(createPrivateKey(ecKeyPem()), "ext-1"))), 401, "UNAUTHORIZED");
      expectError(await h.req("GET", "/v2/ext/app/tags/list", bearer(await sign(createPrivateKey(ecKeyPem()), "ext-2"))), 401, "UNAUTHORIZED");
      // this registry serves no token endpoint when it does not sign
      assert.equal((await h.req("GET", "/auth/token")).status, 404);
    } finally {
      await h.close();
    }
  });
});

describe("external token server keys from a URL", () => {
  it("fetches the JWKS over HTTP; a JWKS larger than 1 MiB is refused (tokens then fail) without stopping the registry", async () => {
    const key = createPrivateKey(ecKeyPem());
    const jwks = JSON.stringify({ keys: [{ ...(await exportJWK(createPublicKey(key))), kid: "k1", alg: "ES256" }] });
    const { createServer } = await import("node:http");
    let huge = false;
    const server = createServer((_req, res) => {
      res.setHeader("Content-Type", "application/json");
      if (huge) res.end(`${jwks.slice(0, -1)},"pad":"${"x".repeat(2 * 1024 * 1024)}"}`);
      else res.end(jwks);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/jwks.json`;
    const make = () =>
      startRegistry({
        name: "jwks-url",
        async make() {
          return { config: parseConfig({ log: { level: "silent" }, storage: { driver: "memory" }, auth: { token: { jwks: url, realm: "https://auth.example/token", service: "reg", issuer: "ext" } } }), cleanup: async () => {} };
        },
      });
    const now = Math.floor(Date.now() / 1000);
    const t = await new SignJWT({ access: [{ type: "repository", name: "a", actions: ["pull"] }] })
      .setProtectedHeader({ alg: "ES256", kid: "k1" })
      .setIssuer("ext")
      .setSubject("x")
      .setAudience("reg")
      .setExpirationTime(now + 300)
      .sign(key);
    try {
      const h = await make();
      try {
        expectError(await h.req("GET", "/v2/a/tags/list", bearer(t)), 404, "NAME_UNKNOWN");
      } finally {
        await h.close();
      }
      huge = true;
      const h2 = await make();
      try {
        expectError(await h2.req("GET", "/v2/a/tags/list", bearer(t)), 401, "UNAUTHORIZED");
      } finally {
        await h2.close();
      }
    } finally {
      server.close();
    }
  });
});

describe("logs never hold passwords or tokens", () => {
  it("request and error logs at debug level contain neither the Authorization header nor ?token= values", async () => {
    const dir = await mkdtemp(join(tmpdir(), "strata-auth-log-"));
    const files = await writeAuthFiles(dir, USERS);
    let out = "";
    const sink = new Writable({
      write(chunk, _enc, cb) {
        out += chunk.toString();
        cb();
      },
    });
    const config = parseConfig({ log: { level: "debug" }, storage: { driver: "memory" }, auth: { htpasswd: { path: files.htpasswd }, token: { signingKey: files.signingKey, service: "s" } }, access: ACCESS });
    const reg = await createRegistry(config, { logger: pino({ level: "trace" }, sink) });
    const supertest = (await import("supertest")).default;
    const agent = supertest(reg.app.callback());
    try {
      const tok = (await agent.get("/auth/token?service=s&scope=repository:alice/a:pull&offline_token=true").auth("alice", "alice-pw")).body;
      await agent.get("/v2/alice/a/tags/list").set("Authorization", `Bearer ${tok.token}`);
      await agent.get("/v2/").auth("alice", "wrong-secret-pw");
      await agent.get(`/v2/alice/a/tags/list?token=${tok.token}&password=alice-pw`);
      await agent.post("/auth/token").type("form").send({ grant_type: "password", username: "bob", password: "bob-pw", service: "s" });
      await agent.post("/auth/token").type("form").send({ grant_type: "refresh_token", refresh_token: tok.refresh_token, service: "s" });
      assert.ok(out.includes('"path":"/v2/alice/a/tags/list"'), "requests are logged");
      for (const secret of ["alice-pw", "wrong-secret-pw", "bob-pw", tok.token, tok.refresh_token, Buffer.from("alice:alice-pw").toString("base64")]) {
        assert.ok(!out.includes(secret), `a secret reached the log: ${secret.slice(0, 12)}...`);
      }
    } finally {
      await reg.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
