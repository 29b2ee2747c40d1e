/**
 * Blob GET from S3 storage without re-hashing (services/verified.ts): a blob is served
 * unhashed only while its object is the version verified at push or at a whole read; an object
 * replaced in the bucket afterwards (same size, other bytes) is never served whole, and the
 * driver's version identity follows pointers and changes with every rewrite. A verified version
 * goes out through the native relay (http/relay.ts).
 * Real registry over a socket, real S3 server (Swift s3api) and Redis.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { HeadObjectCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import type { S3Config } from "../src/config.js";
import { parseConfig } from "../src/config.js";
import { relayStats } from "../src/http/relay.js";
import { type RunningServer, startServer } from "../src/server.js";
import { pathFor } from "../src/storage/paths.js";
import { createS3Client, type S3StorageDriver, s3Driver } from "../src/storage/s3.js";
import { dropRedisPrefix, testRedisUrl } from "./helpers/backends.js";
import { dropS3TestBucket, s3SkipReason, s3TestConfig } from "./helpers/s3-server.js";
import { rawGet } from "./helpers/raw-get.js";

const MiB = 1024 * 1024;
const sha256 = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

/** Monolithic push (POST ?digest= with the body). */
async function pushWhole(base: string, repo: string, blob: Buffer): Promise<string> {
  const digest = sha256(blob);
  const res = await fetch(`${base}/v2/${repo}/blobs/uploads/?digest=${digest}`, { method: "POST", body: blob });
  assert.equal(res.status, 201, await res.text());
  return digest;
}

/** Chunked push: POST, PATCH pieces, PUT ?digest=. */
async function pushChunked(base: string, repo: string, blob: Buffer, piece: number): Promise<string> {
  const digest = sha256(blob);
  const start = await fetch(`${base}/v2/${repo}/blobs/uploads/`, { method: "POST" });
  assert.equal(start.status, 202);
  let loc = new URL(start.headers.get("location")!, base);
  for (let off = 0; off < blob.length; off += piece) {
    const end = Math.min(blob.length, off + piece);
    const res = await fetch(loc, {
      method: "PATCH",
      body: blob.subarray(off, end),
      headers: { "Content-Type": "application/octet-stream", "Content-Range": `${off}-${end - 1}` },
    });
    assert.equal(res.status, 202, await res.text());
    loc = new URL(res.headers.get("location")!, base);
  }
  loc.searchParams.set("digest", digest);
  const put = await fetch(loc, { method: "PUT" });
  assert.equal(put.status, 201, await put.text());
  return digest;
}

const cfg = await s3TestConfig();

describe("blob GET from S3 without re-hashing [s3]", { skip: cfg ? false : s3SkipReason() }, () => {
  const s3 = cfg as S3Config;
  const keyPrefix = `strata-test:${randomBytes(6).toString("hex")}:`;
  let srv: RunningServer;
  let client: S3Client;
  let driver: S3StorageDriver;

  /** Object key holding the blob's bytes (a pointer's physical object). */
  const bytesKey = async (digest: string): Promise<string> => {
    const key = pathFor({ kind: "blobData", digest: digest as never }).slice(1);
    const head = await client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: key }));
    return head.Metadata?.["strata-target"] ?? key;
  };
  const replace = (key: string, body: Buffer) => client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: body, ContentLength: body.length }));

  before(async () => {
    srv = await startServer(parseConfig({ addr: "127.0.0.1:0", log: { level: "silent" }, storage: { driver: "s3", s3 }, redis: { url: testRedisUrl(), keyPrefix } }));
    client = createS3Client(s3);
    driver = s3Driver(s3);
  });
  after(async () => {
    await srv?.close();
    client?.destroy();
    await driver?.close?.();
    await dropS3TestBucket(s3);
    await dropRedisPrefix(testRedisUrl(), keyPrefix);
  });

  for (const how of ["monolithic", "chunked"] as const) {
    it(`a ${how} push whose object is then replaced in the bucket (same size, other bytes) is never served whole; the original put back is`, async () => {
      const blob = randomBytes(6 * MiB + 11);
      const repo = `verified/${how}`;
      const digest = how === "monolithic" ? await pushWhole(srv.url, repo, blob) : await pushChunked(srv.url, repo, blob, 2 * MiB);
      const url = `${srv.url}/v2/${repo}/blobs/${digest}`;
      const relayed = relayStats.responses;
      for (let i = 0; i < 2; i++) {
        const ok = await rawGet(url);
        assert.equal(ok.status, 200);
        assert.ok(ok.complete && ok.body.equals(blob), "the pushed blob is served whole");
      }
      assert.equal(relayStats.responses, relayed + 2, "the verified version went out through the native relay");
      const key = await bytesKey(digest);
      const tampered = Buffer.from(blob);
      tampered[blob.length - 3] ^= 0xff;
      await replace(key, tampered);
      const relayedBefore = relayStats.responses;
      for (let i = 0; i < 2; i++) {
        const res = await rawGet(url);
        assert.ok(!(res.status === 200 && res.complete && res.body.length === blob.length), "the replaced object was served whole");
        assert.ok(!res.body.equals(tampered));
      }
      assert.equal(relayStats.responses, relayedBefore, "a replaced object is hashed, never relayed");
      await replace(key, blob);
      const back = await rawGet(url);
      assert.equal(back.status, 200);
      assert.ok(back.complete && back.body.equals(blob), "the original bytes are verified again and served");
    });
  }

  it("the driver's version identity is the same from a GET and from HEADs, follows a pointer, and changes with a rewrite", async () => {
    const plain = "/v2/verified-ids/plain";
    await driver.putContent(plain, Buffer.from("one"));
    const parts = "/v2/verified-ids/parts";
    const w = await driver.writer(parts);
    await w.write(randomBytes(6 * MiB));
    await w.write(randomBytes(3 * MiB));
    await w.commit();
    for (const key of [plain, parts]) {
      const read = await driver.readObject!(key);
      read.stream.resume();
      assert.ok(read.identity, `${key} has an identity`);
      assert.equal(await driver.identify!(key), read.identity, `${key}: HEAD and GET name the same version`);
    }
    const whole = await driver.readObject!(parts);
    whole.stream.destroy();
    assert.equal(whole.size, 9 * MiB, "a pointer's read is its physical object's");
    const before = await driver.identify!(plain);
    await new Promise((r) => setTimeout(r, 1100));
    await driver.putContent(plain, Buffer.from("one"));
    assert.notEqual(await driver.identify!(plain), before, "a rewrite of the same bytes is another version");
    assert.equal(await driver.identify!("/v2/verified-ids/none"), undefined);
  });
});
