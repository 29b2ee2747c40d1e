/**
 * Access-rule globs and first-match policy, scope grammar (names with host:port, several
 * scopes, the catalog scope), the route -> needed access mapping the middleware uses, and the
 * auth configuration (errors, unusable keys and files).
 */
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { Auth } from "../src/auth/index.js";
import { globToRegExp, Policy } from "../src/auth/policy.js";
import { expandActions, parseScopes } from "../src/auth/scope.js";
import { ConfigError, parseConfig } from "../src/config.js";
import { needOf } from "../src/http/auth.js";

describe("repository globs", () => {
  const cases: [string, string, boolean, string?][] = [
    ["public/**", "public", true],
    ["public/**", "public/a", true],
    ["public/**", "public/a/b/c", true],
    ["public/**", "publicx/a", false],
    ["public/**", "other/public/a", false],
    ["public/*", "public/a", true],
    ["public/*", "public/a/b", false],
    ["*", "a", true],
    ["*", "a/b", false],
    ["**", "a/b/c", true],
    ["**/base", "base", true],
    ["**/base", "x/y/base", true],
    ["**/base", "x/y/base2", false],
    ["a/**/z", "a/z", true],
    ["a/**/z", "a/b/c/z", true],
    ["a/**/z", "a/b/c/y", false],
    ["team-*/app", "team-red/app", true],
    ["team-*/app", "team-red/x/app", false],
    ["a.b/c", "axb/c", false],
    ["${user}/**", "alice/app", true, "alice"],
    ["${user}/**", "alice", true, "alice"],
    ["${user}/**", "bob/app", false, "alice"],
    ["home/${user}-*", "home/al.ice-x", true, "al.ice"],
    ["home/${user}-*", "home/alXice-x", false, "al.ice"],
  ];
  for (const [pattern, name, want, user] of cases) {
    it(`${pattern} ${want ? "matches" : "does not match"} ${name}${user ? ` (user ${user})` : ""}`, () => {
      assert.equal(globToRegExp(pattern, user).test(name), want);
    });
  }
});

describe("policy", () => {
  const policy = new Policy(
    [
      { repositories: ["public/**"], users: ["group:admins"], actions: ["*"] },
      { repositories: ["public/**"], users: ["anonymous", "*"], actions: ["pull"] },
      { repositories: ["team/**"], users: ["alice"], actions: ["pull", "push", "delete"] },
      { repositories: ["${user}/**"], users: ["*"], actions: ["pull", "push"] },
    ],
    { admins: ["root"] },
  );
  const acts = (u: string | undefined, r: string) => [...policy.actions(u, r)].sort();

  it("the first rule matching user and repository decides (a later, wider rule does not add)", () => {
    assert.deepEqual(acts("root", "public/x"), ["delete", "pull", "push"]);
    assert.deepEqual(acts("alice", "public/x"), ["pull"]);
  });
  it("anonymous matches only 'anonymous', never '*' or ${user}", () => {
    assert.deepEqual(acts(undefined, "public/x"), ["pull"]);
    assert.deepEqual(acts(undefined, "team/x"), []);
    assert.deepEqual(acts(undefined, "anonymous/x"), []);
  });
  it("'*' matches any authenticated user; names and groups match only their members", () => {
    assert.deepEqual(acts("bob", "public/a/b"), ["pull"]);
    assert.deepEqual(acts("alice", "team/x"), ["delete", "pull", "push"]);
    assert.deepEqual(acts("bob", "team/x"), []);
  });
  it("${user} gives each user a namespace", () => {
    assert.deepEqual(acts("bob", "bob/tools"), ["pull", "push"]);
    assert.deepEqual(acts("bob", "alice/tools"), []);
  });
  it("no matching rule grants nothing", () => {
    assert.deepEqual(acts("root", "elsewhere"), []);
  });
  it("without rules, authenticated users may do everything and anonymous nothing", () => {
    const open = new Policy(undefined);
    assert.deepEqual([...open.actions("x", "any/repo")].sort(), ["delete", "pull", "push"]);
    assert.deepEqual([...open.actions(undefined, "any/repo")], []);
  });
  it("an empty rule list grants nothing", () => {
    assert.deepEqual([...new Policy([]).actions("x", "a")], []);
  });
});

describe("scope grammar", () => {
  it("parses several scopes, space separated and repeated", () => {
    assert.deepEqual(parseScopes(["repository:a/b:pull,push repository:c:pull", "registry:catalog:*"]), [
      { type: "repository", name: "a/b", actions: ["pull", "push"] },
      { type: "repository", name: "c", actions: ["pull"] },
      { type: "registry", name: "catalog", actions: ["*"] },
    ]);
  });
  it("keeps host:port inside names (type ends at the first colon, actions start after the last)", () => {
    assert.deepEqual(parseScopes(["repository:localhost:5000/team/app:pull"]), [{ type: "repository", name: "localhost:5000/team/app", actions: ["pull"] }]);
    assert.deepEqual(parseScopes(["repository:reg.example:443/a:pull,push"]), [{ type: "repository", name: "reg.example:443/a", actions: ["pull", "push"] }]);
  });
  it("drops a resource class, skips malformed scopes and duplicate actions", () => {
    assert.deepEqual(parseScopes(["repository(plugin):a:pull,pull", "garbage", "repository:a", "repository::pull", "repository:a:", "registry:other:*"]), [
      { type: "repository", name: "a", actions: ["pull"] },
    ]);
  });
  it("keeps at most 64 scopes", () => {
    assert.equal(parseScopes([Array.from({ length: 100 }, (_, i) => `repository:r${i}:pull`).join(" ")]).length, 64);
  });
  it("'*' expands to every action; unknown actions are dropped", () => {
    assert.deepEqual(expandActions(["*"]), ["pull", "push", "delete"]);
    assert.deepEqual(expandActions(["push", "admin"]), ["push"]);
  });
});

describe("access needed per route", () => {
  const cases: [string, string, unknown][] = [
    ["GET", "/v2/", { kind: "base" }],
    ["GET", "/v2", { kind: "base" }],
    ["GET", "/healthz", undefined],
    ["GET", "/auth/token", undefined],
    ["GET", "/v2/_catalog", { kind: "catalog" }],
    ["GET", "/v2/a/b/manifests/latest", { kind: "repository", name: "a/b", action: "pull" }],
    ["HEAD", "/v2/a/blobs/sha256:00", { kind: "repository", name: "a", action: "pull" }],
    ["PUT", "/v2/a/manifests/v1", { kind: "repository", name: "a", action: "push" }],
    ["DELETE", "/v2/a/manifests/v1", { kind: "repository", name: "a", action: "delete" }],
    ["DELETE", "/v2/a/blobs/sha256:00", { kind: "repository", name: "a", action: "delete" }],
    ["POST", "/v2/a/blobs/uploads/", { kind: "repository", name: "a", action: "push" }],
    ["PATCH", "/v2/a/blobs/uploads/123", { kind: "repository", name: "a", action: "push" }],
    ["DELETE", "/v2/a/blobs/uploads/123", { kind: "repository", name: "a", action: "push" }],
    ["GET", "/v2/a/blobs/uploads/123", { kind: "repository", name: "a", action: "push" }],
    ["GET", "/v2/a/tags/list", { kind: "repository", name: "a", action: "pull" }],
    ["GET", "/v2/a/referrers/sha256:00", { kind: "repository", name: "a", action: "pull" }],
    // a name may contain route words; the router's lazy captures decide
    ["GET", "/v2/a/manifests/b/tags/list", { kind: "repository", name: "a/manifests/b", action: "pull" }],
    ["PUT", "/v2/x/blobs/uploads/y/manifests/t", { kind: "repository", name: "x/blobs/uploads/y", action: "push" }],
    // GET .../blobs/uploads (no slash) is the blob route (a pull), as the router dispatches it
    ["GET", "/v2/a/blobs/uploads", { kind: "repository", name: "a", action: "pull" }],
    // encoded slashes are not decoded: the name is invalid and the handler refuses it
    ["GET", "/v2/team%2Fx/manifests/latest", { kind: "base" }],
    ["PATCH", "/v2/a/manifests/latest", { kind: "base" }],
  ];
  for (const [m, p, want] of cases) {
    it(`${m} ${p}`, () => assert.deepEqual(needOf(m, p), want));
  }
});

describe("auth configuration", () => {
  const bad: [string, unknown, RegExp][] = [
    ["access without auth", { access: [{ repositories: ["**"], users: ["*"], actions: ["pull"] }] }, /access: access rules need auth/],
    ["auth with neither htpasswd nor token", { auth: {} }, /auth: auth needs htpasswd or token/],
    ["token with neither signingKey nor jwks", { auth: { token: {} } }, /auth\.token: auth\.token needs signingKey or jwks/],
    ["tokens living less than 60 s", { auth: { token: { signingKey: "k", expiresInSeconds: 30 } } }, /auth\.token\.expiresInSeconds/],
    ["an unknown action", { auth: { htpasswd: { path: "p" } }, access: [{ repositories: ["**"], users: ["*"], actions: ["admin"] }] }, /access\.0\.actions\.0/],
    ["tls without a key", { tls: { certificate: "c" } }, /tls\.key/],
  ];
  for (const [what, raw, msg] of bad) {
    it(`refuses ${what}`, () => assert.throws(() => parseConfig(raw), (e: Error) => e instanceof ConfigError && msg.test(e.message)));
  }

  it("accepts the issue's example configuration", () => {
    const c = parseConfig({
      auth: { htpasswd: { path: "/etc/strata/htpasswd" }, token: { realm: "https://registry.example.com/auth/token", service: "strata", issuer: "strata", expiresInSeconds: 300, signingKey: "/etc/strata/token.pem" } },
      access: [{ repositories: ["public/**"], users: ["anonymous", "*"], actions: ["pull"] }],
      groups: { admins: ["alice"] },
      tls: { certificate: "/etc/strata/tls.crt", key: "/etc/strata/tls.key" },
    });
    assert.equal(c.auth?.token?.expiresInSeconds, 300);
    assert.equal(c.tls?.http2, true);
  });

  it("a signing key that is neither EC P-256 nor RSA >= 2048 stops start-up with a clear error", async () => {
    const dir = await mkdtemp(join(tmpdir(), "strata-badkey-"));
    try {
      const key = join(dir, "k.pem");
      await writeFile(key, generateKeyPairSync("ec", { namedCurve: "P-384" }).privateKey.export({ type: "pkcs8", format: "pem" }) as string);
      await assert.rejects(Auth.create(parseConfig({ auth: { token: { signingKey: key } } })), /expected an EC P-256 or RSA/);
      await assert.rejects(Auth.create(parseConfig({ auth: { token: { signingKey: join(dir, "missing.pem") } } })), /cannot read token signing key .*ENOENT/);
      await assert.rejects(Auth.create(parseConfig({ auth: { htpasswd: { path: join(dir, "missing") } } })), /cannot read htpasswd file .*ENOENT/);
      await writeFile(key, generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs8", format: "pem" }) as string);
      const a = await Auth.create(parseConfig({ auth: { token: { signingKey: key, service: "s" } } }));
      const { token } = await a!.issuer!.issue({ subject: "", audience: "s", access: [], expiresInSeconds: 60 });
      assert.equal(JSON.parse(Buffer.from(token.split(".")[0], "base64url").toString()).alg, "RS256");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
