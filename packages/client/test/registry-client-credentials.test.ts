/**
 * Where a registry's password may go. Loopback servers on 127.0.0.1 (the registry) and
 * 127.0.0.2 (another host) record every Authorization header they receive: Basic credentials
 * go to a token realm on the registry's own host (any port), or over HTTPS; a plain-HTTP realm
 * elsewhere gets anonymous token requests; a host the registry redirects a blob to never gets the
 * credentials or the registry's token, even when it answers with a challenge.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, before, describe, it } from "node:test";
import { pull } from "../src/pull.js";
import { mayReceiveCredentials } from "../src/registry/client.js";
import { type HostileServer, memImage, type MemImage, reply, type Route, serveImage, startHostile } from "./helpers/hostile-registry.js";
import { runCli } from "./helpers/run-cli.js";

const FAST = { attempts: 2, baseDelayMs: 5, maxDelayMs: 20 };
const USER = "alice";
const PASSWORD = "correct-horse-battery";
const BASIC = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString("base64")}`;
const TOKEN = "tok-123456";
const T = { timeout: 30_000 };

let dir: string;
let img: MemImage;
const servers: HostileServer[] = [];
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "strata-creds-"));
  img = await memImage();
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});
let n = 0;
const root = () => join(dir, `r${n++}`);

async function server(host = "127.0.0.1"): Promise<HostileServer> {
  const s = await startHostile(host);
  servers.push(s);
  return s;
}

/** A token endpoint handing out TOKEN to anyone (it records what it was sent). */
const tokenRoute: Route = async (req, s) => {
  if (!req.path.startsWith("/token")) return false;
  await reply(s, 200, { "Content-Type": "application/json" }, JSON.stringify({ token: TOKEN }));
  return true;
};

/** The registry: every /v2/ request needs the token; the challenge names `realm`. */
function bearerRegistry(realm: () => string, inner: Route): Route {
  return async (req, s) => {
    if (!req.path.startsWith("/v2/")) return false;
    if (req.headers.authorization !== `Bearer ${TOKEN}`) {
      await reply(s, 401, { "WWW-Authenticate": `Bearer realm="${realm()}",service="reg"` }, "");
      return true;
    }
    return inner(req, s);
  };
}

const auths = (s: HostileServer, path: string) => s.requests.filter((r) => r.path.startsWith(path)).map((r) => r.headers.authorization);

describe("credentials go only where they may", () => {
  it("the rule: HTTPS anywhere; plain HTTP only on a plain-HTTP registry's own host", () => {
    const reg = new URL("http://127.0.0.1:5000");
    assert.equal(mayReceiveCredentials(new URL("http://127.0.0.1:5000/token"), reg), true);
    assert.equal(mayReceiveCredentials(new URL("http://127.0.0.2:5000/token"), reg), false);
    assert.equal(mayReceiveCredentials(new URL("http://127.0.0.1:5001/token"), reg), true);
    assert.equal(mayReceiveCredentials(new URL("http://localhost:5000/token"), reg), false);
    assert.equal(mayReceiveCredentials(new URL("https://auth.example/token"), reg), true);
    // an HTTPS registry's password never travels in plain text, not even to its own host name
    assert.equal(mayReceiveCredentials(new URL("http://reg.example/token"), new URL("https://reg.example")), false);
    assert.equal(mayReceiveCredentials(new URL("http://reg.example:80/token"), new URL("http://reg.example")), true);
  });

  it("a realm on the registry's own host (same port or another) gets the credentials", T, async () => {
    const reg = await server();
    reg.routes.push(tokenRoute, bearerRegistry(() => `${reg.url}/token`, serveImage("a/b", "1", img)));
    const r = await pull(`${reg.host}/a/b:1`, { root: root(), retry: FAST, credentials: { username: USER, password: PASSWORD } });
    assert.equal(r.imageId, img.configDigest);
    assert.deepEqual(auths(reg, "/token"), [BASIC]);
    const realm = await server();
    realm.routes.push(tokenRoute);
    const reg2 = await server();
    reg2.routes.push(bearerRegistry(() => `${realm.url}/token`, serveImage("a/b", "1", img)));
    await pull(`${reg2.host}/a/b:1`, { root: root(), retry: FAST, credentials: { username: USER, password: PASSWORD } });
    assert.deepEqual(auths(realm, "/token"), [BASIC]);
  });

  it("a plain-HTTP realm on another host (127.0.0.2) gets anonymous token requests", T, async () => {
    const realm = await server("127.0.0.2");
    realm.routes.push(tokenRoute);
    const reg = await server();
    reg.routes.push(bearerRegistry(() => `${realm.url}/token`, serveImage("a/b", "1", img)));
    const r = await pull(`${reg.host}/a/b:1`, { root: root(), retry: FAST, credentials: { username: USER, password: PASSWORD } });
    assert.equal(r.imageId, img.configDigest);
    assert.ok(realm.requests.length > 0, "the realm was asked");
    assert.deepEqual(auths(realm, "/token"), realm.requests.map(() => undefined), `no Authorization to ${realm.host}`);
  });

  it("a host the registry redirects a blob to never gets the credentials or the token, even when it challenges", T, async () => {
    for (const challenge of ["Basic", "Bearer"]) {
      const cdn = await server("127.0.0.2");
      cdn.routes.push(async (req, s) => {
        if (req.path.startsWith("/token")) return tokenRoute(req, s);
        await reply(s, 401, { "WWW-Authenticate": challenge === "Basic" ? 'Basic realm="cdn"' : `Bearer realm="${cdn.url}/token"` });
        return true;
      });
      const reg = await server();
      const registry = serveImage("a/b", "1", img);
      reg.routes.push(
        tokenRoute,
        bearerRegistry(
          () => `${reg.url}/token`,
          async (req, s) => {
            if (req.path.includes("/blobs/")) {
              await reply(s, 307, { Location: `${cdn.url}/blob?x=1` });
              return true;
            }
            return registry(req, s);
          },
        ),
      );
      await assert.rejects(pull(`${reg.host}/a/b:1`, { root: root(), retry: FAST, credentials: { username: USER, password: PASSWORD } }), (e: Error) => {
        assert.match(e.message, /127\.0\.0\.2:\d+, where 127\.0\.0\.1:\d+ redirected a request for a\/b, asks for authentication/);
        assert.ok(!e.message.includes(PASSWORD));
        return true;
      });
      assert.ok(cdn.requests.length > 0);
      assert.deepEqual(
        cdn.requests.map((r) => r.headers.authorization),
        cdn.requests.map(() => undefined),
        `${challenge}: nothing sent to the redirect target`,
      );
      assert.ok(!cdn.requests.some((r) => r.path.startsWith("/token")), "its realm is not asked either");
      for (const s of servers.splice(0)) await s.close();
    }
  });

  it("STRATA_DEBUG names the hosts that got the credentials and those that did not, never the secret", T, async () => {
    const other = await server("127.0.0.2");
    other.routes.push(tokenRoute);
    const reg = await server();
    reg.routes.push(tokenRoute, bearerRegistry(() => `${other.url}/token`, serveImage("a/b", "1", img)));
    const r = await runCli(["pull", "-q", `${reg.host}/a/b:1`, "--root", root(), "--username", USER, "--password-stdin"], {
      input: `${PASSWORD}\n`,
      env: { ...process.env, STRATA_DEBUG: "1" },
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`strata: debug: credentials for ${reg.host.replace(/\./g, "\\.")} withheld from the token realm http://127\\.0\\.0\\.2:\\d+`));
    assert.ok(!r.stderr.includes(PASSWORD) && !r.stderr.includes(BASIC.slice(6)) && !r.stderr.includes(TOKEN), r.stderr);

    const same = await server();
    same.routes.push(tokenRoute, bearerRegistry(() => `${same.url}/token`, serveImage("a/b", "1", img)));
    const r2 = await runCli(["pull", "-q", `${same.host}/a/b:1`, "--root", root(), "--username", USER, "--password-stdin"], {
      input: `${PASSWORD}\n`,
      env: { ...process.env, STRATA_DEBUG: "1" },
    });
    assert.equal(r2.code, 0, r2.stderr);
    assert.match(r2.stderr, new RegExp(`credentials for ${same.host.replace(/\./g, "\\.")} sent to the token realm ${same.url.replace(/\./g, "\\.")}\\n`));
    assert.ok(!r2.stderr.includes(PASSWORD) && !r2.stderr.includes(BASIC.slice(6)) && !r2.stderr.includes(TOKEN), r2.stderr);
  });
});
