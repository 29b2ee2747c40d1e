/**
 * The S3 driver against a real S3-compatible server (Swift s3api locally, see
 * test/helpers/s3-server.ts): the shared conformance suite plus what only S3 has.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { createServer, request as httpRequest, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Readable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { HeadObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command, ListPartsCommand } from "@aws-sdk/client-s3";
import type { S3Config } from "../src/config.js";
import { driverConformanceSuite } from "../src/storage/conformance.js";
import { PathNotFoundError, StorageUnavailableError } from "../src/storage/driver.js";
import { type S3StorageDriver, s3Driver } from "../src/storage/s3.js";
import { baseS3TestConfig, dropS3TestBucket, s3SkipReason, s3TestConfig, s3TestEndpoint } from "./helpers/s3-server.js";

const MiB = 1024 * 1024;

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.from(c as Uint8Array));
  return Buffer.concat(chunks);
}
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** Writes `data` in uneven chunks. */
async function writeChunked(w: { write(c: Uint8Array): Promise<void> }, data: Buffer): Promise<void> {
  const sizes = [700 * 1024 + 3, 64 * 1024, 2 * MiB + 1, 17];
  for (let off = 0, i = 0; off < data.length; i++) {
    const end = Math.min(data.length, off + sizes[i % sizes.length]);
    await w.write(data.subarray(off, end));
    off = end;
  }
}

const probe = await s3TestConfig();
if (!probe) {
  console.error(`# ${s3SkipReason()}`);
  it.skip(s3SkipReason());
} else {
  await dropS3TestBucket(probe);

  // A small part size and a key prefix, so that the suite crosses part boundaries and proves
  // that prefixed keys behave like unprefixed ones. The part pool holds two such parts, so a
  // lone writer's parts keep that size (PartBuffers.partSize).
  driverConformanceSuite("s3", async () => {
    const cfg = await s3TestConfig({ partSize: 5 * MiB, partBufferBytes: 10 * MiB, lonePartSize: 0, prefix: "conformance/root" });
    assert.ok(cfg, "S3 server vanished");
    return { driver: s3Driver(cfg), cleanup: () => dropS3TestBucket(cfg) };
  });

  describe("s3 driver specifics", () => {
    let cfg: S3Config;
    const drivers: S3StorageDriver[] = [];
    const make = (over: Partial<S3Config> = {}) => {
      const d = s3Driver({ ...cfg, ...over });
      drivers.push(d);
      return d;
    };
    /** Multipart uploads of the writer of `objectKey`: at the key, or at a physical object written for it. */
    const uploadsFor = async (d: S3StorageDriver, objectKey: string) =>
      ((await d.client.send(new ListMultipartUploadsCommand({ Bucket: d.bucket }))).Uploads ?? []).filter(
        (u) => u.Key === objectKey || u.Key?.startsWith(`~strata-objects/${objectKey}~`),
      );
    /** The object a pointer at `objectKey` names, or the object itself. */
    const physicalOf = async (d: S3StorageDriver, objectKey: string) =>
      (await d.client.send(new HeadObjectCommand({ Bucket: d.bucket, Key: objectKey }))).Metadata?.["strata-target"] ?? objectKey;
    const rawKeys = async (d: S3StorageDriver, prefix = "") =>
      ((await d.client.send(new ListObjectsV2Command({ Bucket: d.bucket, Prefix: prefix }))).Contents ?? []).map((c) => c.Key).sort();

    before(async () => {
      // parts of exactly 5 MiB: a pool of two (PartBuffers.partSize)
      const c = await s3TestConfig({ partSize: 5 * MiB, partBufferBytes: 10 * MiB, lonePartSize: 0 });
      assert.ok(c, "S3 server vanished");
      cfg = c;
    });
    after(async () => {
      for (const d of drivers) await d.close?.();
      if (cfg) await dropS3TestBucket(cfg);
    });

    it("a chunked upload continues in a second driver instance (another replica) and completes as one multipart object", async () => {
      const key = "/v2/repositories/r/_uploads/u1/data";
      const first = randomBytes(12 * MiB + 5);
      const second = randomBytes(7 * MiB + 3);
      const a = make();
      const w1 = await a.writer(key);
      await writeChunked(w1, first);
      assert.equal(w1.size, first.length);
      await w1.close();
      // Closed but not committed: nothing at the key, one multipart upload in progress.
      await assert.rejects(a.stat(key), PathNotFoundError);
      assert.equal((await uploadsFor(a, key.slice(1))).length, 1, "one multipart upload in progress after close");

      const b = make();
      const w2 = await b.writer(key, { append: true });
      assert.equal(w2.size, first.length, "size after resuming in another instance");
      await writeChunked(w2, second);
      assert.equal(w2.size, first.length + second.length);
      await w2.commit();

      const all = Buffer.concat([first, second]);
      assert.equal((await a.stat(key)).size, all.length);
      assert.equal(sha(await readAll(await a.reader(key))), sha(all), "content differs");
      const edge = await readAll(await b.reader(key, { offset: first.length - 10, length: 20 }));
      assert.ok(edge.equals(all.subarray(first.length - 10, first.length + 10)), "bytes around the replica switch differ");
      // S3 gives a multipart object the ETag "<hash>-<number of parts>". Parts of 5 MiB:
      // 12 MiB closes as 2 parts + a 2 MiB segment; the segment and 7 MiB more make a 5 MiB
      // part and a 4 MiB last part.
      const head = await a.client.send(new HeadObjectCommand({ Bucket: a.bucket, Key: await physicalOf(a, key.slice(1)) }));
      assert.match(head.ETag ?? "", /-4"?$/, `ETag ${head.ETag} is not that of a 4-part upload`);
      assert.equal((await uploadsFor(a, key.slice(1))).length, 0, "no multipart upload left after commit");
      assert.deepEqual(await rawKeys(a, "v2/repositories/r/_uploads/u1/"), [key.slice(1)], "only the object itself remains (no writer state)");
      await a.delete("/v2");
    });

    it("many small appended sessions, alternating between two instances, keep exact size and bytes", async () => {
      const key = "/v2/repositories/r/_uploads/u5/data";
      const a = make();
      const b = make();
      const pieces = Array.from({ length: 9 }, (_, i) => randomBytes(i === 4 ? 3 * MiB : 700 * 1024 + i));
      let size = 0;
      for (const [i, piece] of pieces.entries()) {
        const w = await (i % 2 ? b : a).writer(key, { append: i > 0 });
        assert.equal(w.size, size, `size at the start of session ${i}`);
        await w.write(piece);
        size += piece.length;
        if (i < pieces.length - 1) await w.close();
        else await w.commit();
      }
      const all = Buffer.concat(pieces);
      assert.equal(size, all.length);
      assert.equal(sha(await a.getContent(key)), sha(all));
      assert.deepEqual(await rawKeys(a, "v2/repositories/r/_uploads/u5/"), [key.slice(1)]);
      await a.delete("/v2");
    });

    it("an instance resuming what it closed itself sees what another instance appended or cancelled in between", async () => {
      const key = "/v2/repositories/r/_uploads/u7/data";
      const a = make();
      const b = make();
      const pieces = [randomBytes(6 * MiB), randomBytes(5 * MiB + 7), randomBytes(3 * MiB), randomBytes(2 * MiB + 1)];
      const order = [a, a, b, a];
      let size = 0;
      for (const [i, piece] of pieces.entries()) {
        const w = await order[i].writer(key, { append: i > 0 });
        assert.equal(w.size, size, `size at the start of session ${i}`);
        await writeChunked(w, piece);
        size += piece.length;
        if (i < pieces.length - 1) await w.close();
        else await w.commit();
      }
      assert.equal(sha(await a.getContent(key)), sha(Buffer.concat(pieces)));
      assert.deepEqual(await rawKeys(a, "v2/repositories/r/_uploads/u7/"), [key.slice(1)], "only the object itself remains (no writer state)");

      const other = "/v2/repositories/r/_uploads/u8/data";
      const w1 = await a.writer(other);
      await w1.write(randomBytes(6 * MiB));
      await w1.close();
      const gone = await b.writer(other, { append: true });
      await gone.cancel();
      const w2 = await a.writer(other, { append: true });
      assert.equal(w2.size, 0, "a cancelled upload resumes empty in the instance that closed it");
      await w2.cancel();
      await a.delete("/v2");
    });

    it("a session that dies after uploading a part, without close, leaves the last closed state usable", async () => {
      const key = "/v2/repositories/r/_uploads/u6/data";
      const d = make();
      // 6 MiB with 5 MiB parts: part 1 uploaded, 1 MiB kept as a segment.
      const first = randomBytes(6 * MiB);
      const w1 = await d.writer(key);
      await w1.write(first);
      await w1.close();
      // This session fills part 2 (from the closed segment and its own bytes), then is abandoned.
      const dying = await d.writer(key, { append: true });
      await dying.write(randomBytes(5 * MiB));
      const [upload] = await uploadsFor(d, key.slice(1));
      assert.ok(upload, "no multipart upload");
      let seen = 0;
      for (let i = 0; i < 300 && seen < 2; i++) {
        seen = ((await d.client.send(new ListPartsCommand({ Bucket: d.bucket, Key: upload.Key, UploadId: upload.UploadId }))).Parts ?? []).length;
        if (seen < 2) await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(seen, 2, "the abandoned session's part never arrived");
      const w2 = await d.writer(key, { append: true });
      assert.equal(w2.size, first.length, "size is that of the last closed state");
      const rest = randomBytes(4 * MiB);
      await w2.write(rest);
      await w2.commit();
      assert.equal(sha(await d.getContent(key)), sha(Buffer.concat([first, rest])));
      await d.delete("/v2");
    });

    it("cancel aborts the multipart upload and removes the writer state", async () => {
      const key = "/v2/repositories/r/_uploads/u2/data";
      const d = make();
      const w = await d.writer(key);
      await writeChunked(w, randomBytes(6 * MiB));
      await w.close();
      assert.equal((await uploadsFor(d, key.slice(1))).length, 1);
      const w2 = await d.writer(key, { append: true });
      assert.equal(w2.size, 6 * MiB);
      await w2.write(randomBytes(1000));
      await w2.cancel();
      assert.equal((await uploadsFor(d, key.slice(1))).length, 0, "ListMultipartUploads still shows the upload");
      assert.deepEqual(await rawKeys(d, "v2/"), [], "objects left after cancel");
      assert.deepEqual(await rawKeys(d, "~strata-objects/"), [], "physical objects left after cancel");
      const w3 = await d.writer(key, { append: true });
      assert.equal(w3.size, 0);
      await w3.cancel();
    });

    it("abortStaleMultipartUploads aborts only uploads started before the cutoff", async () => {
      const key = "/v2/repositories/r/_uploads/u3/data";
      const d = make();
      const w = await d.writer(key);
      await w.write(randomBytes(5 * MiB + 1));
      await w.close();
      assert.equal(await d.abortStaleMultipartUploads(new Date(Date.now() - 3600_000)), 0);
      assert.equal((await uploadsFor(d, key.slice(1))).length, 1, "a fresh upload was aborted");
      assert.equal(await d.abortStaleMultipartUploads(new Date(Date.now() + 3600_000)), 1);
      assert.equal((await uploadsFor(d, key.slice(1))).length, 0);
      assert.deepEqual(await rawKeys(d, "v2/"), [], "the aborted upload's writer state remains");
    });

    it("deleting an upload directory also aborts its unfinished multipart upload", async () => {
      const d = make();
      const w = await d.writer("/v2/up/u4/data");
      await w.write(randomBytes(5 * MiB + 1));
      await w.close();
      await d.putContent("/v2/up/u4/startedat", Buffer.from("2024-01-01T00:00:00Z"));
      await d.delete("/v2/up/u4");
      assert.equal((await uploadsFor(d, "v2/up/u4/data")).length, 0);
      assert.deepEqual(await rawKeys(d, "v2/"), []);
    });

    it("a move of a parts-written object rewrites its pointer: bytes intact, no second copy, the old upload directory's removal keeps them", async () => {
      const d = make();
      const up = "/v2/repositories/r/_uploads/m1/data";
      const blob = "/v2/blobs/sha256/ab/m1/data";
      const data = randomBytes(11 * MiB + 7);
      const w = await d.writer(up);
      await writeChunked(w, data);
      await w.commit();
      await d.putContent("/v2/repositories/r/_uploads/m1/startedat", Buffer.from("2026-01-01T00:00:00Z"));
      await d.move(up, blob);
      await assert.rejects(d.stat(up), PathNotFoundError);
      assert.equal((await d.stat(blob)).size, data.length);
      const head = await d.client.send(new HeadObjectCommand({ Bucket: d.bucket, Key: blob.slice(1) }));
      assert.equal(head.ContentLength, 0, "the blob key holds a pointer, not a copy");
      const physical = (await rawKeys(d, "~strata-objects/")).filter((k) => !k!.endsWith("~ref"));
      assert.equal(physical.length, 1, `one physical object, got ${physical.join(", ")}`);
      assert.equal(head.Metadata?.["strata-target"], physical[0]);
      await d.delete("/v2/repositories/r/_uploads/m1");
      assert.equal(sha(await readAll(await d.reader(blob))), sha(data), "bytes after the upload directory went");
      assert.equal(sha(await d.getContent(blob)), sha(data));
      const mid = await readAll(await d.reader(blob, { offset: 5 * MiB - 3, length: 9 }));
      assert.ok(mid.equals(data.subarray(5 * MiB - 3, 5 * MiB + 6)), "ranged read of a pointer");
      assert.equal((await readAll(await d.reader(blob, { offset: data.length }))).length, 0, "a read at the end is empty");
      await d.delete("/v2/blobs");
      assert.deepEqual(await rawKeys(d, "~strata-objects/"), [], "deleting the blob removes its bytes");
      assert.deepEqual(await rawKeys(d, "v2/"), []);
    });

    it("a move interrupted after the destination pointer was written: deleting the source keeps the bytes", async () => {
      const d = make();
      const up = "/v2/repositories/r/_uploads/m2/data";
      const blob = "/v2/blobs/sha256/ab/m2/data";
      const data = randomBytes(6 * MiB);
      const w = await d.writer(up);
      await w.write(data);
      await w.commit();
      // The first two steps of move (owner record, destination pointer), then a crash.
      const head = await d.client.send(new HeadObjectCommand({ Bucket: d.bucket, Key: up.slice(1) }));
      const target = head.Metadata!["strata-target"];
      const { PutObjectCommand } = await import("@aws-sdk/client-s3");
      await d.client.send(new PutObjectCommand({ Bucket: d.bucket, Key: `${target}~ref`, Body: Buffer.from(blob) }));
      await d.client.send(new PutObjectCommand({ Bucket: d.bucket, Key: blob.slice(1), Body: Buffer.alloc(0), Metadata: head.Metadata }));
      await d.delete("/v2/repositories/r/_uploads/m2");
      assert.equal(sha(await d.getContent(blob)), sha(data), "the blob lost its bytes with the upload");
      assert.equal(await d.sweepOrphans(new Date(Date.now() + 3600_000)), 0, "the sweep took bytes a pointer uses");
      assert.equal(sha(await d.getContent(blob)), sha(data));
      await d.delete("/v2");
      assert.deepEqual(await rawKeys(d, "~strata-objects/"), []);
    });

    /**
     * Records the commands `d` sends (name and key) while armed; `fail` may make one of them
     * fail as a crash would: before it reaches the server ("before") or after it took effect ("after").
     */
    const tap = (d: S3StorageDriver) => {
      const sent: string[] = [];
      let armed = false;
      let fail: { when: "before" | "after"; match: (command: string, key: string) => boolean } | undefined;
      d.client.middlewareStack.add(
        (next, context) => async (args) => {
          const key = String((args.input as { Key?: string }).Key ?? "");
          const command = context.commandName ?? "";
          const hit = fail !== undefined && fail.match(command, key);
          if (armed) sent.push(`${command.replace(/Command$/, "")} ${key}`);
          if (hit && fail!.when === "before") throw Object.assign(new Error("injected crash"), { name: "InjectedCrash" });
          const out = await next(args);
          if (hit) throw Object.assign(new Error("injected crash"), { name: "InjectedCrash" });
          return out;
        },
        { step: "initialize", name: "testTap" },
      );
      return {
        sent,
        arm(f?: typeof fail) {
          armed = true;
          fail = f;
        },
      };
    };

    it("commitTo completes the upload and writes the pointer at the destination: no pointer at the upload key, no HEAD, no copy, no move", async () => {
      const d = make();
      const up = "/v2/repositories/r/_uploads/c1/data";
      const blob = "/v2/blobs/sha256/ab/c1/data";
      const data = randomBytes(11 * MiB + 7);
      const w1 = await d.writer(up);
      await writeChunked(w1, data.subarray(0, 10 * MiB));
      await w1.close();
      const t = tap(d);
      const w2 = await d.writer(up, { append: true });
      await w2.write(data.subarray(10 * MiB));
      t.arm();
      await w2.commitTo!(blob);
      const sent = [...t.sent];
      const physical = await physicalOf(d, blob.slice(1));
      assert.match(physical, /^~strata-objects\/v2\/repositories\/r\/_uploads\/c1\/data~[0-9a-f]{16}$/);
      // the last part, the completion with the owner record beside it, the pointer, the writer's state
      assert.deepEqual(
        sent.sort(),
        [
          `CompleteMultipartUpload ${physical}`,
          `DeleteObject ${up.slice(1)}~strata-state`,
          "ListObjectsV2 ",
          `PutObject ${blob.slice(1)}`,
          `PutObject ${physical}~ref`,
          `UploadPart ${physical}`,
        ].sort(),
      );
      assert.equal(sha(await d.getContent(blob)), sha(data));
      await assert.rejects(d.stat(up), PathNotFoundError);
      assert.deepEqual(await rawKeys(d, "v2/repositories/r/_uploads/c1/"), [], "nothing left at the upload key");
      assert.equal(await d.sweepOrphans(new Date(Date.now() + 3600_000)), 0, "the sweep took bytes the blob's pointer uses");
      await d.delete("/v2/repositories/r/_uploads/c1").catch(() => {});
      assert.equal(sha(await d.getContent(blob)), sha(data), "bytes after the upload directory went");
      await d.delete("/v2");
      assert.deepEqual(await rawKeys(d, "~strata-objects/"), [], "deleting the blob removes its bytes and owner record");
    });

    it("commitTo told `unless` true completes, then removes the bytes: nothing at the destination, nothing leaked", async () => {
      const d = make();
      const up = "/v2/repositories/r/_uploads/c2/data";
      const blob = "/v2/blobs/sha256/ab/c2/data";
      const w1 = await d.writer(up);
      await w1.write(randomBytes(5 * MiB + 9));
      await w1.close();
      const w2 = await d.writer(up, { append: true });
      await w2.write(randomBytes(100));
      assert.equal(await w2.commitTo!(blob, { unless: new Promise((r) => setTimeout(() => r(true), 50)) }), false);
      await assert.rejects(d.stat(blob), PathNotFoundError);
      await assert.rejects(d.stat(up), PathNotFoundError);
      assert.deepEqual(await rawKeys(d, "~strata-objects/v2/repositories/r/_uploads/c2/"), [], "the completed bytes and owner record went");
      assert.deepEqual(await rawKeys(d, "v2/repositories/r/_uploads/c2/"), []);
      assert.equal((await uploadsFor(d, up.slice(1))).length, 0);
    });

    for (const cut of [
      { what: "after the completion, before the pointer", when: "before" as const, match: (c: string, k: string) => c === "PutObjectCommand" && k.startsWith("v2/blobs/") },
      { what: "after the pointer, before the writer's state went", when: "after" as const, match: (c: string, k: string) => c === "DeleteObjectCommand" && k.endsWith("~strata-state") },
    ]) {
      it(`a commitTo cut short ${cut.what}: the blob is whole or absent, and resuming finishes the commit`, async () => {
        const d = make();
        const id = `x${randomBytes(3).toString("hex")}`;
        const up = `/v2/repositories/r/_uploads/${id}/data`;
        const blob = `/v2/blobs/sha256/ab/${id}/data`;
        const data = randomBytes(6 * MiB + 5);
        const w1 = await d.writer(up);
        await w1.write(data.subarray(0, 5 * MiB + 1));
        await w1.close();
        const w2 = await d.writer(up, { append: true });
        await w2.write(data.subarray(5 * MiB + 1));
        tap(d).arm(cut);
        await assert.rejects(w2.commitTo!(blob));
        const published = cut.when === "after";
        if (published) assert.equal(sha(await d.getContent(blob)), sha(data), "the blob is whole");
        else await assert.rejects(d.stat(blob), PathNotFoundError, "nothing at the blob key");
        // another instance (as after a restart) resumes the writer: the commit is finished
        const e = make();
        const again = await e.writer(up, { append: true });
        assert.equal(again.size, 0, "a committed writer resumes empty");
        if (published) {
          await assert.rejects(e.stat(up), PathNotFoundError, "the blob's bytes are not also at the upload key");
        } else {
          assert.equal(sha(await e.getContent(up)), sha(data), "the bytes are committed at the upload key");
          await e.move(up, blob);
        }
        assert.deepEqual(await rawKeys(e, `v2/repositories/r/_uploads/${id}/`), [], "no writer state left");
        assert.equal(await e.sweepOrphans(new Date(Date.now() + 3600_000)), 0, "the sweep took bytes a pointer uses");
        assert.equal(sha(await e.getContent(blob)), sha(data));
        await e.delete("/v2");
        assert.deepEqual(await rawKeys(e, "~strata-objects/"), [], "nothing leaked");
      });
    }

    it("sweepOrphans removes an old owner record whose physical object never came to be (a commitTo cut short before its completion, then cancelled)", async () => {
      const d = make();
      const up = "/v2/repositories/r/_uploads/c3/data";
      const w1 = await d.writer(up);
      await w1.write(randomBytes(5 * MiB + 1));
      await w1.close();
      const w2 = await d.writer(up, { append: true });
      tap(d).arm({ when: "before", match: (c) => c === "CompleteMultipartUploadCommand" });
      await assert.rejects(w2.commitTo!("/v2/blobs/sha256/ab/c3/data"));
      const e = make();
      const again = await e.writer(up, { append: true });
      assert.equal(again.size, 5 * MiB + 1, "the upload is resumable as the last close() left it");
      await again.cancel();
      const records = await rawKeys(e, "~strata-objects/v2/repositories/r/_uploads/c3/");
      assert.equal(records.length, 1, "the early owner record is all that is left");
      assert.match(records[0]!, /~ref$/);
      assert.equal(await e.sweepOrphans(new Date(Date.now() - 3600_000)), 0);
      assert.equal((await rawKeys(e, "~strata-objects/v2/repositories/r/_uploads/c3/")).length, 1, "a young owner record is left alone");
      await e.sweepOrphans(new Date(Date.now() + 3600_000));
      assert.deepEqual(await rawKeys(e, "~strata-objects/v2/repositories/r/_uploads/c3/"), []);
    });

    it("sweepOrphans removes bytes no pointer uses (overwritten pointer, crash before the pointer) and only once they are old", async () => {
      const d = make();
      const kept = "/v2/blobs/sha256/ab/s1/data";
      const overwritten = "/v2/blobs/sha256/ab/s2/data";
      for (const k of [kept, overwritten]) {
        const w = await d.writer(k);
        await w.write(randomBytes(5 * MiB + 1));
        await w.commit();
      }
      await d.putContent(overwritten, Buffer.from("small"));
      assert.equal(await d.sweepOrphans(new Date(Date.now() - 3600_000)), 0, "young orphans are left alone");
      assert.equal(await d.sweepOrphans(new Date(Date.now() + 3600_000)), 1);
      assert.equal((await d.stat(kept)).size, 5 * MiB + 1);
      assert.equal((await d.getContent(overwritten)).toString(), "small");
      assert.equal((await rawKeys(d, "~strata-objects/")).length, 1);
      await d.delete("/v2");
      assert.deepEqual(await rawKeys(d, "~strata-objects/"), []);
    });

    it("redirect URLs are presigned and fetchable without credentials; off unless configured", async () => {
      const data = randomBytes(100_000);
      const plain = make();
      await plain.putContent("/v2/blobs/x/data", data);
      assert.equal(await plain.redirectURL!("/v2/blobs/x/data", { method: "GET", expiresInSeconds: 60 }), undefined);
      const d = make({ redirect: true });
      const url = await d.redirectURL!("/v2/blobs/x/data", { method: "GET", expiresInSeconds: 60 });
      assert.ok(url, "no URL");
      const res = await fetch(url);
      assert.equal(res.status, 200);
      assert.ok(Buffer.from(await res.arrayBuffer()).equals(data), "fetched bytes differ");
      const headUrl = await d.redirectURL!("/v2/blobs/x/data", { method: "HEAD", expiresInSeconds: 60 });
      const head = await fetch(headUrl!, { method: "HEAD" });
      assert.equal(head.status, 200);
      assert.equal(head.headers.get("content-length"), String(data.length));
      // A URL is bound to its method and key.
      assert.notEqual((await fetch(url.replace("/x/data", "/y/data"))).status, 200);
      // A parts-written object (a pointer) redirects to its bytes.
      const big = randomBytes(5 * MiB + 9);
      const w = await d.writer("/v2/blobs/z/data");
      await w.write(big);
      await w.commit();
      const bigRes = await fetch((await d.redirectURL!("/v2/blobs/z/data", { method: "GET", expiresInSeconds: 60 }))!);
      assert.equal(bigRes.status, 200);
      assert.equal(sha(Buffer.from(await bigRes.arrayBuffer())), sha(big), "bytes behind a pointer's URL differ");
      const bigHead = await fetch((await d.redirectURL!("/v2/blobs/z/data", { method: "HEAD", expiresInSeconds: 60 }))!, { method: "HEAD" });
      assert.equal(bigHead.headers.get("content-length"), String(big.length));
      await d.delete("/v2");
    });

    it("list pages stay in byte order where S3's own order puts a directory after its dashed siblings", async () => {
      // S3 lists "x-1" < "x-2" < "x.3" < "x/" (directory x) < "y"; byte order of the keys is x < x-1 < ...
      const d = make();
      for (const k of ["x/inner", "x-1", "x-2", "x.3", "y"]) await d.putContent(`/v2/l/${k}`, Buffer.from(k));
      const want = ["x", "x-1", "x-2", "x.3", "y"].map((n) => `/v2/l/${n}`);
      for (const limit of [1, 2, 3]) {
        const seen: string[] = [];
        let afterKey: string | undefined;
        for (;;) {
          const page = await d.list("/v2/l", { limit, after: afterKey });
          seen.push(...page.keys);
          if (!page.truncated) break;
          afterKey = page.keys[page.keys.length - 1];
        }
        assert.deepEqual(seen, want, `pages of ${limit}`);
      }
      await d.delete("/v2");
    });

    it("keys live under the prefix; drivers with different prefixes do not see each other", async () => {
      const a = make({ prefix: "tenant-a" });
      const b = make({ prefix: "tenant-b/nested" });
      const none = make();
      await a.putContent("/v2/k", Buffer.from("a"));
      await b.putContent("/v2/k", Buffer.from("b"));
      assert.deepEqual(await rawKeys(none), ["tenant-a/v2/k", "tenant-b/nested/v2/k"]);
      assert.equal((await a.getContent("/v2/k")).toString(), "a");
      assert.equal((await b.getContent("/v2/k")).toString(), "b");
      await assert.rejects(none.getContent("/v2/k"), PathNotFoundError);
      assert.deepEqual((await a.list("/v2")).keys, ["/v2/k"]);
      assert.deepEqual((await none.list("/tenant-b")).keys, ["/tenant-b/nested"]);
      await a.delete("/v2");
      await assert.rejects(a.stat("/v2/k"), PathNotFoundError);
      assert.equal((await b.getContent("/v2/k")).toString(), "b");
      await b.delete("/v2");
      assert.deepEqual(await rawKeys(none), []);
    });
  });

  describe("s3 parts sent while they fill (s3-cutthrough.ts)", () => {
    /** One UploadPart request as the proxy saw it. */
    interface PartRequest {
      readonly part: number;
      /** Body bytes that reached the proxy. */
      received: number;
      readonly declared: number;
      /** How it ended: "stored" (the store answered 200), "cut" (the client went away), or other status. */
      outcome?: string;
    }
    let cfg: S3Config;
    let proxy: Server;
    let parts: PartRequest[] = [];
    /** When set, decides whether to cut an UploadPart request after `bytes` reached the proxy. */
    let sabotage: ((r: PartRequest) => boolean) | undefined;
    const drivers: S3StorageDriver[] = [];

    before(async () => {
      const c = await s3TestConfig({ partSize: 8 * MiB, partBufferBytes: 16 * MiB, lonePartSize: 0 });
      assert.ok(c, "S3 server vanished");
      const upstream = new URL(c.endpoint!);
      // A relay in front of the store that records every UploadPart request (when it began,
      // how many body bytes came, how it ended). The Host header is relayed unchanged, so the
      // requests' signatures still hold.
      proxy = createServer((req, res) => {
        const q = new URL(req.url ?? "/", "http://x").searchParams;
        const rec: PartRequest | undefined =
          req.method === "PUT" && q.has("partNumber") ? { part: Number(q.get("partNumber")), received: 0, declared: Number(req.headers["content-length"]) } : undefined;
        if (rec) parts.push(rec);
        const out = httpRequest({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers }, (up) => {
          if (rec) rec.outcome = up.statusCode === 200 ? "stored" : String(up.statusCode);
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        });
        out.on("error", () => res.destroy());
        req.on("data", (c: Buffer) => {
          if (!rec) return;
          rec.received += c.length;
          if (sabotage?.(rec)) {
            rec.outcome = "sabotaged";
            req.destroy();
            out.destroy();
          }
        });
        req.on("close", () => {
          if (req.complete) return;
          if (rec && rec.outcome === undefined) rec.outcome = "cut";
          out.destroy();
        });
        req.pipe(out);
      });
      await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", r));
      cfg = { ...c, endpoint: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}` };
    });
    after(async () => {
      for (const d of drivers) await d.close?.();
      proxy?.close();
      if (cfg) await dropS3TestBucket({ ...cfg, endpoint: s3TestEndpoint() });
    });
    const make = (extra: Partial<S3Config> = {}) => {
      const d = s3Driver({ ...cfg, ...extra });
      drivers.push(d);
      parts = [];
      sabotage = undefined;
      return d;
    };
    const until = async (what: string, cond: () => boolean) => {
      for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
      assert.ok(cond(), what);
    };

    it("a long session's parts go out while they fill; a part cut off by close() is sent again at its real size, and the bytes are whole", async () => {
      const d = make();
      const key = "/v2/cut/a";
      // parts of 8 MiB (a lone writer's share of the 16 MiB pool)
      const data = randomBytes(21 * MiB + 11);
      const w = await d.writer(key);
      await w.write(data.subarray(0, 6 * MiB));
      // past S3's 5 MiB minimum, the first part is on its way though 2 MiB are missing
      await until("part 1 went out before it was full", () => parts.some((p) => p.part === 1));
      assert.equal(parts[0].declared, 8 * MiB, "the request declares the whole part");
      await w.write(data.subarray(6 * MiB, 13 * MiB));
      // part 1 is full; part 2 began at its first byte and is 3 MiB short
      await until("part 2 went out before it was full", () => parts.some((p) => p.part === 2));
      await w.close();
      const p2 = parts.filter((p) => p.part === 2);
      assert.deepEqual(
        p2.map((p) => [p.declared, p.outcome]),
        [
          [8 * MiB, "cut"],
          [5 * MiB, "stored"],
        ],
        "the cut-off part 2 is sent again with the 5 MiB it has",
      );
      assert.deepEqual(
        parts.filter((p) => p.part === 1).map((p) => [p.declared, p.received, p.outcome]),
        [[8 * MiB, 8 * MiB, "stored"]],
        "part 1 went out once",
      );
      const w2 = await d.writer(key, { append: true });
      await w2.write(data.subarray(13 * MiB));
      await w2.commit();
      assert.equal(sha(await readAll(await d.reader(key))), sha(data), "content differs");
      await d.delete("/v2/cut");
    });

    it("an upload alone uses parts of lonePartSize beyond the pool; beside another upload, parts of the pool's share", async () => {
      // pool 16 MiB, lone parts 16 MiB: alone, 16 MiB parts; two writers share 16 MiB as 8 MiB parts
      const d = make({ lonePartSize: 16 * MiB });
      const data = randomBytes(33 * MiB);
      const w = await d.writer("/v2/lone/a", { expect: data.length });
      await w.write(data);
      await w.commit();
      assert.deepEqual(
        parts.filter((p) => p.outcome === "stored").map((p) => [p.part, p.declared]),
        [
          [1, 16 * MiB],
          [2, 16 * MiB],
          [3, 1 * MiB],
        ],
        "alone: 16 MiB parts",
      );
      assert.equal(sha(await readAll(await d.reader("/v2/lone/a"))), sha(data), "content differs");
      parts = [];
      const crowd = make({ lonePartSize: 16 * MiB });
      const [x, y] = [randomBytes(17 * MiB), randomBytes(17 * MiB)];
      const wx = await crowd.writer("/v2/lone/x", { expect: x.length });
      const wy = await crowd.writer("/v2/lone/y", { expect: y.length });
      // x takes its first part alone (16 MiB); y joins while it is still filling and gets the pool's share beside it
      await wx.write(x.subarray(0, MiB));
      const yFirst = wy.write(y.subarray(0, MiB));
      await Promise.all([wx.write(x.subarray(MiB)).then(() => wx.commit()), yFirst.then(() => wy.write(y.subarray(MiB))).then(() => wy.commit())]);
      // from the second join on, the pool's share
      const sizes = parts.filter((p) => p.outcome === "stored").map((p) => p.declared / MiB);
      assert.ok(sizes.filter((n) => n === 8).length >= 2, `two writers: 8 MiB parts (${sizes} MiB)`);
      assert.ok(sizes.filter((n) => n === 16).length <= 1, `at most the part taken alone has 16 MiB (${sizes} MiB)`);
      assert.equal(sha(await readAll(await crowd.reader("/v2/lone/x"))), sha(x));
      assert.equal(sha(await readAll(await crowd.reader("/v2/lone/y"))), sha(y));
      await d.delete("/v2/lone");
    });

    it("a session that says how much it writes sends only the parts it fills while they fill", async () => {
      const d = make();
      const key = "/v2/cut/b";
      const data = randomBytes(14 * MiB);
      // 14 MiB announced: part 1 (8 MiB) fills, part 2 would be cut off at 6 MiB
      const w = await d.writer(key, { expect: data.length });
      await w.write(data.subarray(0, 1 * MiB));
      await until("part 1 went out from its first MiB", () => parts.some((p) => p.part === 1));
      await w.write(data.subarray(1 * MiB));
      await w.close();
      assert.deepEqual(
        parts.map((p) => [p.part, p.declared, p.outcome]),
        [
          [1, 8 * MiB, "stored"],
          [2, 6 * MiB, "stored"],
        ],
        "no request for part 2 before the session ended, none cut",
      );
      const w2 = await d.writer(key, { append: true, expect: 0 });
      await w2.commit();
      assert.equal(sha(await readAll(await d.reader(key))), sha(data), "content differs");
      await d.delete("/v2/cut");
    });

    it("a part whose request fails on the way is uploaded again from its buffer: the write goes on and the bytes are whole", async () => {
      const d = make();
      const key = "/v2/cut/c";
      const data = randomBytes(20 * MiB + 7);
      // the first request for part 2 is cut after 3 MiB reached the relay
      let struck = false;
      sabotage = (r) => {
        if (struck || r.part !== 2 || r.received < 3 * MiB) return false;
        struck = true;
        return true;
      };
      const w = await d.writer(key);
      await writeChunked(w, data);
      await w.commit();
      const p2 = parts.filter((p) => p.part === 2);
      assert.equal(p2[0]?.outcome, "sabotaged", "the first attempt at part 2 was cut");
      assert.equal(p2.at(-1)?.outcome, "stored", "part 2 was stored by a later request");
      assert.equal(p2.at(-1)?.declared, 8 * MiB);
      assert.equal(sha(await readAll(await d.reader(key))), sha(data), "content differs");
      await d.delete("/v2/cut");
    });
  });

  describe("s3 driver failures", () => {
    const servers: Server[] = [];
    after(() => {
      for (const s of servers) s.close();
    });
    const listen = async (handler: Parameters<typeof createServer>[1]) => {
      const s = createServer(handler);
      servers.push(s);
      await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
      return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
    };

    it("an endpoint refusing connections yields StorageUnavailableError", { timeout: 60_000 }, async () => {
      const endpoint = await listen(() => {});
      servers.pop()!.close();
      await new Promise((r) => setTimeout(r, 50));
      const d = s3Driver(baseS3TestConfig({ endpoint, maxAttempts: 2 }));
      await assert.rejects(d.getContent("/v2/x"), StorageUnavailableError);
      await assert.rejects(d.putContent("/v2/x", Buffer.from("x")), StorageUnavailableError);
      await assert.rejects(d.list("/v2"), StorageUnavailableError);
      await d.close?.();
    });

    it("a server that accepts but never answers times out into StorageUnavailableError", { timeout: 60_000 }, async () => {
      const endpoint = await listen(() => {
        /* never responds */
      });
      const d = s3Driver(baseS3TestConfig({ endpoint, maxAttempts: 2, requestTimeoutMs: 300 }));
      await assert.rejects(d.stat("/v2/x"), StorageUnavailableError);
      const w = await d.writer("/v2/w");
      await w.write(Buffer.from("x"));
      await assert.rejects(w.commit(), StorageUnavailableError);
      await d.close?.();
    });

    it("503 SlowDown is retried maxAttempts times, then StorageUnavailableError", { timeout: 60_000 }, async () => {
      let hits = 0;
      const endpoint = await listen((req, res) => {
        hits++;
        req.resume();
        res.writeHead(503, { "content-type": "application/xml" });
        res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>');
      });
      const d = s3Driver(baseS3TestConfig({ endpoint, maxAttempts: 3 }));
      await assert.rejects(d.getContent("/v2/x"), StorageUnavailableError);
      assert.equal(hits, 3);
      await d.close?.();
    });

    it("a missing bucket is StorageUnavailableError, not PathNotFoundError", async () => {
      const d = s3Driver(baseS3TestConfig({ bucket: `strata-missing-${randomBytes(4).toString("hex")}` }));
      await assert.rejects(d.getContent("/v2/x"), StorageUnavailableError);
      await d.close?.();
    });
  });
}
