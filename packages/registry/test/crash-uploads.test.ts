/**
 * A completing PUT interrupted by a crash can be retried: whether the crash came after the
 * upload's data was committed, after the blob was published or after it was linked, the
 * repeated PUT (same digest, same final chunk) answers 201 and the blob reads back whole. Runs
 * with Redis sessions on the filesystem, and on S3 when STRATA_TEST_BACKENDS includes s3.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import type { Server } from "node:http";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import request from "supertest";
import { createRegistry } from "../src/app.js";
import { parseConfig, type RegistryConfig } from "../src/config.js";
import { createDriver } from "../src/storage/factory.js";
import { backendNames, dropRedisPrefix, testRedisUrl } from "./helpers/backends.js";
import { type CrashingDriver, type DriverOp, runUntilCrash } from "./helpers/crash.js";
import { dropS3TestBucket, s3SkipReason, s3TestConfig } from "./helpers/s3-server.js";

const MiB = 1024 * 1024;
const sha = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

interface Setup {
  config: RegistryConfig;
  cleanup(): Promise<void>;
}

const setups: Record<string, () => Promise<Setup>> = {
  "filesystem+redis": async () => {
    const root = await mkdtemp(join(tmpdir(), "strata-crash-up-"));
    const keyPrefix = `strata-test:${randomBytes(6).toString("hex")}:`;
    const config = parseConfig({ log: { level: "silent" }, storage: { driver: "filesystem", filesystem: { root } }, redis: { url: testRedisUrl(), keyPrefix } });
    return {
      config,
      cleanup: async () => {
        await rm(root, { recursive: true, force: true });
        await dropRedisPrefix(testRedisUrl(), keyPrefix);
      },
    };
  },
  "s3+redis": async () => {
    const s3 = await s3TestConfig({ partSize: 5 * MiB, partBufferBytes: 10 * MiB, lonePartSize: 0 });
    if (!s3) throw new Error(s3SkipReason());
    const keyPrefix = `strata-test:${randomBytes(6).toString("hex")}:`;
    const config = parseConfig({ log: { level: "silent" }, storage: { driver: "s3", s3 }, redis: { url: testRedisUrl(), keyPrefix } });
    return {
      config,
      cleanup: async () => {
        await dropS3TestBucket(s3);
        await dropRedisPrefix(testRedisUrl(), keyPrefix);
      },
    };
  },
};

/**
 * Where the crash comes. `direct`: drivers whose writers commit straight to the blob's key
 * (FileWriter.commitTo: S3) have no separate commit of the upload data and no move; their
 * crashes inside that commit are covered by the driver's own tests (storage-s3.test.ts).
 */
const crashPoints: { what: string; op: DriverOp; key: (digest: string) => RegExp; direct: boolean }[] = [
  { what: "the upload's data was committed", op: "commit", key: () => /\/_uploads\/[^/]+\/data$/, direct: false },
  { what: "the blob was published", op: "move", key: (d) => new RegExp(`/blobs/sha256/../${d.slice(7)}/data$`), direct: false },
  { what: "the blob was committed straight to its key", op: "commit", key: (d) => new RegExp(`/blobs/sha256/../${d.slice(7)}/data$`), direct: true },
  { what: "the blob was linked", op: "putContent", key: (d) => new RegExp(`/_layers/sha256/${d.slice(7)}/link$`), direct: false },
  { what: "the blob was linked", op: "putContent", key: (d) => new RegExp(`/_layers/sha256/${d.slice(7)}/link$`), direct: true },
];

/**
 * On a registry that will crash: starts an upload of `repo`, PATCHes `first`, then lets `complete`
 * arm the crash and send the completing PUT. Returns the upload's location.
 */
async function startUpload(
  config: RegistryConfig,
  repo: string,
  first: Buffer,
  complete: (server: Server, crashing: CrashingDriver, location: string) => { sent: PromiseLike<unknown> },
): Promise<string> {
  let location = "";
  await runUntilCrash(config, await createDriver(config), async (server, crashing) => {
    location = (await request(server).post(`/v2/${repo}/blobs/uploads/`).expect(202)).headers.location as string;
    await request(server)
      .patch(location)
      .set("Content-Type", "application/octet-stream")
      .set("Content-Range", `0-${first.length - 1}`)
      .send(first)
      .expect(202);
    return complete(server, crashing, location);
  });
  return location;
}

for (const [name, make] of Object.entries(setups)) {
  const enabled = name === "filesystem+redis" || backendNames().includes("s3");
  describe(`completing PUT interrupted [${name}]`, { skip: enabled ? false : "needs STRATA_TEST_BACKENDS to include s3" }, () => {
    let setup: Setup | undefined;
    after(async () => {
      await setup?.cleanup();
    });

    // the S3 driver's writers commit straight to another key (FileWriter.commitTo)
    const direct = name.startsWith("s3");
    for (const point of crashPoints.filter((p) => p.direct === direct)) {
      it(`a retried PUT after a crash once ${point.what} answers 201 and the blob reads back`, async () => {
        setup ??= await make();
        const config = setup.config;
        const repo = `crash/up${randomBytes(4).toString("hex")}`;
        const first = randomBytes(6 * MiB + 17);
        const last = randomBytes(1000);
        const whole = Buffer.concat([first, last]);
        const digest = sha(whole);

        const location = await startUpload(config, repo, first, (server, crashing, loc) => {
          crashing.crashAfter(point.op, (k) => point.key(digest).test(k));
          const sent = request(server)
            .put(`${loc}?digest=${digest}`)
            .set("Content-Type", "application/octet-stream")
            .set("Content-Range", `${first.length}-${whole.length - 1}`)
            .send(last);
          return { sent };
        });

        const reg = await createRegistry(config);
        try {
          const app = reg.app.callback();
          const retried = await request(app)
            .put(`${location}?digest=${digest}`)
            .set("Content-Type", "application/octet-stream")
            .set("Content-Range", `${first.length}-${whole.length - 1}`)
            .send(last);
          assert.equal(retried.status, 201, `retried PUT: ${retried.status} ${retried.text}`);
          assert.equal(retried.headers.location, `/v2/${repo}/blobs/${digest}`);
          const got = await request(app).get(`/v2/${repo}/blobs/${digest}`).buffer(true).parse((res, cb) => {
            const chunks: Buffer[] = [];
            res.on("data", (c: Buffer) => chunks.push(c));
            res.on("end", () => cb(null, Buffer.concat(chunks)));
          });
          assert.equal(got.status, 200);
          assert.equal(sha(got.body as Buffer), digest, "the blob holds exactly the uploaded bytes");
          // once more, as a client whose answer to the retry was lost would
          await request(app).put(`${location}?digest=${digest}`).set("Content-Type", "application/octet-stream").send(last).expect(201);
        } finally {
          await reg.close();
        }
      });
    }

    it("a retried PUT whose bytes do not give the digest is refused, and nothing is published", async () => {
      setup ??= await make();
      const config = setup.config;
      const repo = `crash/up${randomBytes(4).toString("hex")}`;
      const first = randomBytes(6 * MiB);
      const last = randomBytes(1000);
      const digest = sha(Buffer.concat([first, last]));
      const location = await startUpload(config, repo, first, (server, crashing, loc) => {
        crashing.crashAfter("commit", (k) => k.endsWith("/data"));
        return { sent: request(server).put(`${loc}?digest=${digest}`).set("Content-Type", "application/octet-stream").send(last) };
      });
      const reg = await createRegistry(config);
      try {
        const app = reg.app.callback();
        // the same digest claimed with other final bytes: the upload cannot be completed
        const forged = await request(app).put(`${location}?digest=${digest}`).set("Content-Type", "application/octet-stream").send(randomBytes(1000));
        assert.equal(forged.status, 404);
        await request(app).head(`/v2/${repo}/blobs/${digest}`).expect(404);
      } finally {
        await reg.close();
      }
    });
  });
}
