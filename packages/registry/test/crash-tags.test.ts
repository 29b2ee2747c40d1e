/**
 * Tags after a crash. A tag exists exactly when its link does: the debris an interrupted tag
 * write or delete leaves on a filesystem never lists as a tag, and `fsck` removes it. With the
 * index in Redis, a crash between the storage write and the index update leaves a listing that
 * still matches what GET resolves, and the index converges by itself.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import type { Server } from "node:http";
import { mkdir, mkdtemp, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import request from "supertest";
import { createRegistry, type Registry } from "../src/app.js";
import { parseConfig } from "../src/config.js";
import { RedisConnection } from "../src/redis/client.js";
import { type RedisIndex, reconcileTagIntents } from "../src/redis/tagindex.js";
import { fsck } from "../src/services/fsck.js";
import { filesystemDriver } from "../src/storage/filesystem.js";
import { dropRedisPrefix, testRedisUrl } from "./helpers/backends.js";
import { runUntilCrash } from "./helpers/crash.js";
import { imageParts, MediaTypes, ociManifestBytes, sha256 } from "./helpers/oci.js";

const silent = { log: { level: "silent" as const } };

type App = ReturnType<Registry["app"]["callback"]>;

/** Pushes the blobs of a fresh random image; returns its manifest (not pushed). */
async function pushImage(app: App, repo: string) {
  const parts = imageParts(1);
  for (const b of [parts.config, ...parts.layers]) {
    await request(app).post(`/v2/${repo}/blobs/uploads/?digest=${sha256(b)}`).set("Content-Type", "application/octet-stream").send(b).expect(201);
  }
  const manifest = ociManifestBytes(parts.configDesc, parts.layerDescs);
  return { manifest, digest: sha256(manifest) };
}

const putTag = (app: App | Server, repo: string, tag: string, manifest: Buffer) =>
  request(app).put(`/v2/${repo}/manifests/${tag}`).set("Content-Type", MediaTypes.OciManifest).send(manifest.toString("utf8"));

const listTags = async (app: App, repo: string): Promise<string[]> =>
  ((await request(app).get(`/v2/${repo}/tags/list`).expect(200)).body as { tags: string[] }).tags;

describe("filesystem tags after an interrupted write or delete", () => {
  let root: string;
  let reg: Registry;
  const repo = "crash/tags";
  const tagsDir = () => join(root, "v2/repositories", repo, "_manifests/tags");

  before(async () => {
    root = await mkdtemp(join(tmpdir(), "strata-crash-tags-"));
    reg = await createRegistry(parseConfig({ ...silent, storage: { driver: "filesystem", filesystem: { root } } }));
    const { manifest } = await pushImage(reg.app.callback(), repo);
    await putTag(reg.app.callback(), repo, "keep", manifest).expect(201);
    // What a kill leaves: a temp link never renamed into place, a tag directory whose link was
    // removed but not the directories, an empty current/ directory.
    await mkdir(join(tagsDir(), "ghost/current"), { recursive: true });
    await writeFile(join(tagsDir(), "ghost/current/~tmp~link~0123456789abcdef"), "sha256:");
    await mkdir(join(tagsDir(), "half"), { recursive: true });
    await mkdir(join(tagsDir(), "half2/current"), { recursive: true });
  });
  after(async () => {
    await reg.close();
    await rm(root, { recursive: true, force: true });
  });

  it("lists only tags whose link exists, and GET agrees", async () => {
    const app = reg.app.callback();
    assert.deepEqual(await listTags(app, repo), ["keep"]);
    for (const t of ["ghost", "half", "half2"]) await request(app).get(`/v2/${repo}/manifests/${t}`).expect(404);
    await request(app).get(`/v2/${repo}/manifests/keep`).expect(200);
  });

  it("DELETE of a link-less tag answers 404 and removes its directory", async () => {
    await request(reg.app.callback()).delete(`/v2/${repo}/manifests/half`).expect(404);
    assert.ok(!existsSync(join(tagsDir(), "half")));
  });

  it("an untag removes the link and the directories it leaves empty", async () => {
    const app = reg.app.callback();
    const { manifest } = await pushImage(app, repo);
    await putTag(app, repo, "gone", manifest).expect(201);
    await request(app).delete(`/v2/${repo}/manifests/gone`).expect(202);
    assert.ok(!existsSync(join(tagsDir(), "gone")));
    assert.deepEqual(await listTags(app, repo), ["keep"]);
  });

  it("fsck removes old debris and dangling links, leaves fresh debris and everything valid alone", async () => {
    const app = reg.app.callback();
    const { manifest, digest } = await pushImage(app, repo);
    await putTag(app, repo, "dangling", manifest).expect(201);
    // the manifest's bytes vanish (a lost disk block, a hand edit): its tag and revision dangle
    await rm(join(root, "v2/blobs/sha256", digest.slice(7, 9), digest.slice(7)), { recursive: true });
    await mkdir(join(tagsDir(), "fresh/current"), { recursive: true });
    await writeFile(join(tagsDir(), "fresh/current/~tmp~link~fedcba9876543210"), "");
    const past = new Date(Date.now() - 3600_000);
    for (const p of ["ghost", "ghost/current", "ghost/current/~tmp~link~0123456789abcdef", "half2", "half2/current"]) await utimes(join(tagsDir(), p), past, past);

    const dry = await fsck(filesystemDriver(root), { filesystemRoot: root, graceMs: 600_000, dryRun: true });
    assert.ok(dry.length > 0);
    assert.ok(existsSync(join(tagsDir(), "ghost/current/~tmp~link~0123456789abcdef")), "a dry run changes nothing");

    const repairs = await fsck(filesystemDriver(root), { filesystemRoot: root, graceMs: 600_000 });
    const kinds = repairs.map((r) => `${r.kind} ${r.key.replace(/^.*_manifests\//, "")}`).sort();
    assert.deepEqual(
      kinds.filter((k) => !k.startsWith("empty-dir") || k.includes("tags/")),
      [
        `dangling-revision revisions/sha256/${digest.slice(7)}`,
        "dangling-tag tags/dangling/current/link",
        "empty-dir tags/ghost",
        "empty-dir tags/ghost/current",
        "empty-dir tags/half2",
        "empty-dir tags/half2/current",
        "temp-file tags/ghost/current/~tmp~link~0123456789abcdef",
      ].sort(),
    );
    assert.ok(!existsSync(join(tagsDir(), "ghost")) && !existsSync(join(tagsDir(), "half2")) && !existsSync(join(tagsDir(), "dangling")));
    assert.ok(existsSync(join(tagsDir(), "fresh/current/~tmp~link~fedcba9876543210")), "debris younger than the grace period stays");
    assert.deepEqual(await listTags(app, repo), ["keep"]);
    await request(app).get(`/v2/${repo}/manifests/keep`).expect(200);
  });
});

describe("Redis tag index after a crash between storage and index", () => {
  const url = testRedisUrl();
  const keyPrefix = `strata-test:${randomBytes(6).toString("hex")}:`;
  let root: string;
  const repo = "crash/index";
  const config = () => parseConfig({ ...silent, storage: { driver: "filesystem", filesystem: { root } }, redis: { url, keyPrefix } });
  const indexed = async (): Promise<string[]> => {
    const conn = new RedisConnection({ url, keyPrefix, commandTimeoutMs: 2000 });
    try {
      await conn.ready();
      return await conn.redis.zrange(conn.key("tags", repo), "0", "-1");
    } finally {
      await conn.close();
    }
  };

  /** Every lock key under this test's prefix with its remaining time to live (ms; -1: no expiry). */
  const lockTtls = async (): Promise<[string, number][]> => {
    const conn = new RedisConnection({ url, keyPrefix, commandTimeoutMs: 2000 });
    try {
      await conn.ready();
      const keys = await conn.redis.keys(`${keyPrefix}lock:*`);
      return await Promise.all(keys.map(async (k): Promise<[string, number]> => [k, await conn.redis.pttl(k)]));
    } finally {
      await conn.close();
    }
  };

  before(async () => {
    root = await mkdtemp(join(tmpdir(), "strata-crash-index-"));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
    await dropRedisPrefix(url, keyPrefix);
  });

  /** Runs `act` on a registry that dies right after the matching storage call; returns a fresh registry. */
  async function crashDuring(op: "putContent" | "delete", key: string, act: (app: Server) => request.Test): Promise<Registry> {
    await runUntilCrash(config(), filesystemDriver(root), async (server, crashing) => {
      crashing.crashAfter(op, (k) => k.endsWith(key));
      return { sent: act(server) };
    });
    return createRegistry(config());
  }

  it("a tag written to storage but not to the index is listed and resolves", async () => {
    const setup = await createRegistry(config());
    const a = await pushImage(setup.app.callback(), repo);
    await putTag(setup.app.callback(), repo, "old", a.manifest).expect(201);
    await setup.close();

    const reg = await crashDuring("putContent", "/_manifests/tags/new/current/link", (app) => putTag(app, repo, "new", a.manifest));
    try {
      const app = reg.app.callback();
      assert.deepEqual(await indexed(), ["old"], "the crash left the index behind storage");
      await request(app).get(`/v2/${repo}/manifests/new`).expect(200);
      assert.deepEqual(await listTags(app, repo), ["new", "old"], "listing follows storage for tags with an unsettled write");
      // a lock the dead holder left frees itself within one lease: none is left without expiry
      const ttl = config().redis.lockTtlMs;
      const locks = await lockTtls();
      assert.ok(locks.length > 0, "the crash left the tag's lock held");
      for (const [key, pttl] of locks) assert.ok(pttl > 0 && pttl <= ttl, `${key} left by the crash has ${pttl} ms to live (lease ${ttl} ms)`);
      const t0 = Date.now();
      await putTag(app, repo, "new", a.manifest).expect(201);
      process.stdout.write(`tag PUT after a crash that held its lock: ${Date.now() - t0} ms (lease ${ttl} ms)\n`);
      assert.deepEqual(await indexed(), ["new", "old"]);
    } finally {
      await reg.close();
    }
  });

  it("a tag deleted from storage but not from the index is not listed, and the reconciler settles the index", async () => {
    const setup = await createRegistry(config());
    const a = await pushImage(setup.app.callback(), repo);
    await putTag(setup.app.callback(), repo, "doomed", a.manifest).expect(201);
    await setup.close();

    const reg = await crashDuring("delete", "/_manifests/tags/doomed/current/link", (app) => request(app).delete(`/v2/${repo}/manifests/doomed`));
    try {
      const app = reg.app.callback();
      assert.ok((await indexed()).includes("doomed"), "the crash left the deleted tag in the index");
      await request(app).get(`/v2/${repo}/manifests/doomed`).expect(404);
      assert.ok(!(await listTags(app, repo)).includes("doomed"), "a listed tag always resolves");
      const shared = reg.services.repositories as RedisIndex;
      const conn = new RedisConnection({ url, keyPrefix, commandTimeoutMs: 2000 });
      try {
        const { RedisLocker } = await import("../src/redis/locks.js");
        await conn.ready();
        assert.ok((await reconcileTagIntents(shared, conn, new RedisLocker(conn), 0)) >= 1);
        assert.equal(await conn.redis.zcard(conn.key("tagintents", repo)), 0, "no intent is left");
        assert.equal(await conn.redis.zcard(conn.key("tagintents")), 0);
      } finally {
        await conn.close();
      }
      assert.ok(!(await indexed()).includes("doomed"), "the index converged to storage");
    } finally {
      await reg.close();
    }
  });
});
