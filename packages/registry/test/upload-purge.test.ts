/**
 * Upload data outlives neither its session's TTL nor a restart: a registry restarted on the
 * same filesystem root (sessions lost) purges the orphaned data once it is older than the
 * orphan grace period, also in a repository that holds nothing else.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import request from "supertest";
import { createRegistry } from "../src/app.js";
import { parseConfig } from "../src/config.js";

describe("upload purge", () => {
  it("removes data of uploads whose session is gone once older than the grace period, and nothing else", async () => {
    const root = await mkdtemp(join(tmpdir(), "strata-purge-"));
    const cfg = parseConfig({ storage: { driver: "filesystem", filesystem: { root } }, uploads: { ttlSeconds: 3600, orphanGraceSeconds: 1, purgeIntervalSeconds: 0 }, log: { level: "silent" } });
    try {
      const first = await createRegistry(cfg);
      const app = first.app.callback();
      const blob = randomBytes(1000);
      const digest = `sha256:${createHash("sha256").update(blob).digest("hex")}`;
      await request(app).post(`/v2/p/app/blobs/uploads/?digest=${digest}`).set("Content-Type", "application/octet-stream").send(blob).expect(201);
      const started = await request(app).post("/v2/p/app/blobs/uploads/").expect(202);
      const location = started.headers.location as string;
      await request(app).patch(location).set("Content-Type", "application/octet-stream").send(randomBytes(5000)).expect(202);
      const lonely = (await request(app).post("/v2/p/lonely/blobs/uploads/").expect(202)).headers.location as string;
      await request(app).patch(lonely).set("Content-Type", "application/octet-stream").send(randomBytes(5000)).expect(202);
      await first.close();
      const uploads = join(root, "v2/repositories/p/app/_uploads");
      const lonelyUploads = join(root, "v2/repositories/p/lonely/_uploads");
      assert.equal((await readdir(uploads)).length, 1, "the interrupted upload left data on disk");
      assert.equal((await readdir(lonelyUploads)).length, 1, "so did the one in a repository with nothing else");

      const second = await createRegistry(cfg);
      try {
        await request(second.app.callback()).get(location).expect(404);
        assert.equal(await second.services.uploads.purge(), 0, "nothing younger than the grace period is purged");
        await new Promise((r) => setTimeout(r, 1500));
        assert.equal(await second.services.uploads.purge(), 2);
        assert.ok(!existsSync(uploads) || (await readdir(uploads)).length === 0, "the orphaned upload data is gone");
        assert.ok(!existsSync(lonelyUploads), "also in the repository that holds no blob or manifest");
        const got = await request(second.app.callback()).get(`/v2/p/app/blobs/${digest}`).expect(200);
        assert.ok(Buffer.from(got.body).equals(blob), "stored blobs are untouched");
      } finally {
        await second.close();
      }
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
