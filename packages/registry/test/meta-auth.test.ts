/**
 * The metadata API under access control: the same challenges as the registry (the list needs
 * the catalog scope, a repository's tags and manifests need pull on it), a list that shows only
 * what the caller may pull, 403 for a repository the user may not read, the open info endpoint,
 * and the user named as the actor of the events a request emits.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import request from "supertest";
import { parseConfig } from "../src/config.js";
import { basic, parseChallenge, tokenPath, writeAuthFiles } from "./helpers/auth.js";
import { expectError, type Harness, type Res, startRegistry } from "./helpers/http.js";
import { pushTestImage } from "./helpers/meta.js";
import { notificationEndpointSchema } from "../src/config.js";
import { eventsOf, type Receiver, startReceiver } from "./helpers/webhook.js";

const USERS = { alice: "alice-pw", bob: "bob-pw", root: "root-pw" };
const ACCESS = [
  { repositories: ["**"], users: ["root"], actions: ["*"] },
  { repositories: ["team/**"], users: ["alice"], actions: ["pull", "push"] },
  { repositories: ["public/**"], users: ["anonymous", "*"], actions: ["pull"] },
];

for (const mode of ["basic", "token"] as const) {
  describe(`metadata API with ${mode} authentication`, () => {
    let h: Harness;
    let rx: Receiver;
    before(async () => {
      rx = await startReceiver();
      const dir = await mkdtemp(join(tmpdir(), "strata-meta-auth-"));
      const files = await writeAuthFiles(dir, USERS);
      h = await startRegistry({
        name: mode,
        credentials: { user: "root", password: USERS.root },
        async make() {
          const config = parseConfig({
            log: { level: "silent" },
            storage: { driver: "memory" },
            auth: { htpasswd: { path: files.htpasswd }, ...(mode === "token" ? { token: { signingKey: files.signingKey, service: "strata-test" } } : {}) },
            access: ACCESS,
            notifications: { endpoints: [notificationEndpointSchema.parse({ url: rx.url, events: ["push"], ignoredMediaTypes: ["application/octet-stream"] })] },
          });
          return { config, cleanup: () => rm(dir, { recursive: true, force: true }) };
        },
      });
      // root pushes (the harness answers challenges with root's credentials)
      for (const repo of ["team/app", "team/db", "secret/keys", "public/base"]) await pushTestImage(h, repo, "v1");
    });
    after(async () => {
      await h?.close();
      await rx?.close();
    });

    /** GET with exactly these headers (the harness would answer a challenge with root's credentials). */
    async function raw(path: string, headers: Record<string, string> = {}): Promise<Res> {
      const r = await request(h.reg.app.callback()).get(path).set(headers).ok(() => true);
      const body = Buffer.from(r.text ?? "");
      return {
        status: r.status,
        headers: r.headers,
        body,
        header: (n) => r.headers[n.toLowerCase()] as string | undefined,
        text: () => body.toString(),
        json: () => JSON.parse(body.toString()),
      };
    }

    /** A request as `user` (undefined: anonymous), answering a Bearer challenge with a token as docker does. */
    async function as(user: keyof typeof USERS | undefined, path: string): Promise<Res> {
      const creds: Record<string, string> = user ? { Authorization: basic(user, USERS[user]) } : {};
      const first = await raw(path, creds);
      if (mode === "basic" || first.status !== 401) return first;
      const ch = parseChallenge(first.header("www-authenticate"))!;
      const t = await raw(tokenPath(ch), creds);
      assert.equal(t.status, 200, t.text());
      return raw(path, { Authorization: `Bearer ${t.json().token}` });
    }

    it("anonymous requests are challenged for the list with the catalog scope, for a repository with its pull scope", async () => {
      const list = await raw("/strata/v1/repositories");
      expectError(list, 401, "UNAUTHORIZED");
      const ch = parseChallenge(list.header("www-authenticate"))!;
      assert.equal(ch.scheme, mode === "token" ? "bearer" : "basic");
      if (mode === "token") assert.equal(ch.params.scope, "registry:catalog:*");
      const tags = await raw("/strata/v1/repositories/team/app/tags");
      expectError(tags, 401, "UNAUTHORIZED");
      if (mode === "token") assert.equal(parseChallenge(tags.header("www-authenticate"))!.params.scope, "repository:team/app:pull");
      const info = await raw("/strata/v1/");
      assert.equal(info.status, 200, "the info endpoint is open");
      assert.deepEqual(info.json(), { deleteEnabled: true, auth: mode });
    });

    it("lists only the repositories the user may pull", async () => {
      const names = async (user: keyof typeof USERS) => {
        const res = await as(user, "/strata/v1/repositories");
        assert.equal(res.status, 200, res.text());
        return res.json().repositories.map((r: { name: string }) => r.name);
      };
      assert.deepEqual(await names("root"), ["public/base", "secret/keys", "team/app", "team/db"]);
      assert.deepEqual(await names("alice"), ["public/base", "team/app", "team/db"]);
      assert.deepEqual(await names("bob"), ["public/base"]);
    });

    it("a repository's tags and manifests need pull on it", async () => {
      assert.equal((await as("alice", "/strata/v1/repositories/team/app/tags")).status, 200);
      assert.equal((await as("alice", "/strata/v1/repositories/team/app/manifests/v1")).status, 200);
      assert.equal((await as(undefined, "/strata/v1/repositories/public/base/tags")).status, 200, "anonymous may pull public/**");
      const denied = await as("alice", "/strata/v1/repositories/secret/keys/tags");
      assert.ok(denied.status === 403 || denied.status === 401, `alice on secret/keys: ${denied.status}`);
      expectError(await as("bob", "/strata/v1/repositories/team/app/manifests/v1"), [401, 403], ["DENIED", "UNAUTHORIZED"]);
    });

    it("names the user as the actor of the events", async () => {
      await rx.waitFor((r) => eventsOf(r).length >= 4, 10_000, "the four manifest pushes");
      for (const e of eventsOf(rx.received)) assert.deepEqual(e.actor, { name: "root" });
    });
  });
}
