/**
 * The metadata API with 10,000 repositories, in the embedded store and in the Redis summary:
 * every sort order pages through all of them exactly once, in order, and a search finds its
 * few among them. The summaries are filled through the store (as the recorder does on push);
 * timing lives in the benchmark (bench/ui.ts), not here.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import request from "supertest";
import { createRegistry, type Registry } from "../src/app.js";
import { parseConfig } from "../src/config.js";
import { backendNames, dropRedisPrefix, testRedisUrl } from "./helpers/backends.js";
import { fillRepositories, scaleName as name, scalePushedAt as pushedAt, scaleSize as size } from "./helpers/meta.js";

const N = 10_000;

const modes = [{ name: "embedded", redis: false }];
if (backendNames().includes("s3")) modes.push({ name: "redis", redis: true });

for (const mode of modes) {
  describe(`metadata API with ${N} repositories [${mode.name}]`, () => {
    let reg: Registry;
    const keyPrefix = `strata-test:${randomBytes(6).toString("hex")}:`;
    before(async () => {
      reg = await createRegistry(
        parseConfig({ storage: { driver: "memory" }, log: { level: "silent" }, ...(mode.redis ? { redis: { url: testRedisUrl(), keyPrefix } } : {}) }),
      );
      await fillRepositories(reg, N);
    });
    after(async () => {
      await reg?.close();
      if (mode.redis) await dropRedisPrefix(testRedisUrl(), keyPrefix);
    });

    const walk = async (sort: string) => {
      const out: { name: string; size: number; pushedAt: string }[] = [];
      let last: string | undefined;
      for (let page = 0; ; page++) {
        assert.ok(page <= N / 1000, "pages end");
        const res = await request(reg.app.callback())
          .get("/strata/v1/repositories")
          .query({ sort, n: 1000, ...(last ? { last } : {}) })
          .expect(200);
        out.push(...res.body.repositories);
        last = res.body.next;
        if (!last) break;
        assert.equal(res.body.repositories.length, 1000);
      }
      assert.equal(out.length, N);
      assert.equal(new Set(out.map((r) => r.name)).size, N, "every repository once");
      return out;
    };

    it("pages by name", async () => {
      const out = await walk("name");
      assert.deepEqual(
        out.map((r) => r.name),
        Array.from({ length: N }, (_, i) => name(i)),
      );
    });

    it("pages by size, largest first", async () => {
      const out = await walk("size");
      const want = Array.from({ length: N }, (_, i) => i).sort((a, b) => size(b) - size(a));
      assert.deepEqual(
        out.map((r) => r.name),
        want.map(name),
      );
      assert.deepEqual(
        out.slice(0, 3).map((r) => r.size),
        want.slice(0, 3).map(size),
      );
    });

    it("pages by last push, newest first", async () => {
      const out = await walk("pushed");
      const want = Array.from({ length: N }, (_, i) => i).sort((a, b) => pushedAt(b) - pushedAt(a));
      assert.deepEqual(
        out.map((r) => r.name),
        want.map(name),
      );
      assert.equal(out[0].pushedAt, new Date(pushedAt(want[0])).toISOString());
    });

    it("searches among them", async () => {
      const res = await request(reg.app.callback()).get("/strata/v1/repositories").query({ q: "r0999", sort: "size", n: 5 }).expect(200);
      assert.equal(res.body.repositories.length, 5);
      for (const r of res.body.repositories) assert.match(r.name, /^scale\/r0999\d$/);
      const rest = await request(reg.app.callback()).get("/strata/v1/repositories").query({ q: "r0999", sort: "size", n: 5, last: res.body.next }).expect(200);
      assert.equal(rest.body.repositories.length, 5);
      assert.equal(rest.body.next, undefined);
    });
  });
}
