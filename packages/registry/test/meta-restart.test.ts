/**
 * Push and pull times survive a restart: the embedded filesystem registry rebuilds its
 * metadata from storage (push times from the links it wrote, pull times from the file it
 * saved), the Redis summary is shared and kept. `rebuildMetadata` recreates the Redis summary
 * from storage alone.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { parseConfig, type RegistryConfig } from "../src/config.js";
import { RedisConnection } from "../src/redis/client.js";
import { dropMetadata } from "../src/redis/metadata.js";
import { type Backend, backendNames, dropRedisPrefix, testRedisUrl } from "./helpers/backends.js";
import { expectStatus, type Harness, startRegistry } from "./helpers/http.js";
import { pushTestImage, pushTestIndex } from "./helpers/meta.js";
import { s3TestConfig, dropS3TestBucket } from "./helpers/s3-server.js";

const fixed = (config: RegistryConfig): Backend => ({ name: "fixed", make: async () => ({ config, cleanup: async () => {} }) });

async function snapshot(h: Harness, repo: string) {
  const tags = (await h.req("GET", `/strata/v1/repositories/${repo}/tags`)).json();
  const list = (await h.req("GET", `/strata/v1/repositories?q=${encodeURIComponent(repo)}`)).json();
  return { tags: tags.tags, repositories: list.repositories };
}

async function pushPull(h: Harness, repo: string) {
  await pushTestImage(h, repo, "v1");
  await pushTestIndex(h, repo, "multi");
  expectStatus(await h.req("GET", `/v2/${repo}/manifests/v1`), 200);
  return snapshot(h, repo);
}

describe("metadata across restarts", () => {
  it("embedded filesystem: rebuilt from storage with the same push and pull times", async () => {
    const root = await mkdtemp(join(tmpdir(), "strata-meta-restart-"));
    const config = parseConfig({ storage: { driver: "filesystem", filesystem: { root } }, log: { level: "silent" } });
    try {
      const a = await startRegistry(fixed(config));
      let before!: Awaited<ReturnType<typeof pushPull>>;
      try {
        before = await pushPull(a, "keep/app");
      } finally {
        await a.close(); // saves pull times
      }
      const b = await startRegistry(fixed(config));
      let afterRestart!: Awaited<ReturnType<typeof snapshot>>;
      try {
        afterRestart = await snapshot(b, "keep/app");
      } finally {
        await b.close();
      }
      assert.ok(before.tags.find((t: { tag: string }) => t.tag === "v1").pulledAt);
      // push times come back from the link files, written a few ms before the push event
      const near = (x: string, y: string) => Math.abs(Date.parse(x) - Date.parse(y)) < 1000;
      for (let i = 0; i < before.tags.length; i++) {
        const [p, q] = [before.tags[i], afterRestart.tags[i]];
        assert.deepEqual({ ...q, pushedAt: undefined }, { ...p, pushedAt: undefined });
        assert.ok(near(p.pushedAt, q.pushedAt), `${p.tag}: ${p.pushedAt} ~ ${q.pushedAt}`);
      }
      assert.deepEqual(afterRestart.repositories.map((r: { size: number; tagCount: number }) => [r.size, r.tagCount]), before.repositories.map((r: { size: number; tagCount: number }) => [r.size, r.tagCount]));
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it("redis: the summary is shared by the next process, and rebuilt from storage alike", { skip: backendNames().includes("s3") ? false : "needs STRATA_TEST_BACKENDS to include s3" }, async () => {
    const s3 = (await s3TestConfig())!;
    const url = testRedisUrl();
    const keyPrefix = `strata-test:${randomBytes(6).toString("hex")}:`;
    const config = parseConfig({ storage: { driver: "s3", s3 }, redis: { url, keyPrefix }, log: { level: "silent" } });
    try {
      const a = await startRegistry(fixed(config));
      let before!: Awaited<ReturnType<typeof pushPull>>;
      try {
        before = await pushPull(a, "keep/app");
      } finally {
        await a.close();
      }
      const b = await startRegistry(fixed(config));
      let rebuilt!: Awaited<ReturnType<typeof snapshot>>;
      try {
        assert.deepEqual(await snapshot(b, "keep/app"), before, "the same summary");
        const conn = new RedisConnection({ url, keyPrefix, commandTimeoutMs: 2000 });
        await conn.ready();
        await dropMetadata(conn);
        await conn.close();
        rebuilt = await snapshot(b, "keep/app");
      } finally {
        await b.close();
      }
      assert.deepEqual(
        rebuilt.tags.map((t: { tag: string; size: number; platforms: string[]; digest: string }) => [t.tag, t.digest, t.size, t.platforms]),
        before.tags.map((t: { tag: string; size: number; platforms: string[]; digest: string }) => [t.tag, t.digest, t.size, t.platforms]),
      );
      assert.deepEqual(rebuilt.repositories[0].size, before.repositories[0].size);
    } finally {
      await dropS3TestBucket(s3);
      await dropRedisPrefix(url, keyPrefix);
    }
  });
});
