/**
 * The oci-archive destination when blobs of unknown digest and size arrive at once (as `copy`
 * sends them, several in flight): each waits for the one spool directory they share, so none
 * fails to open its temp file, and abort leaves nothing beside the archive.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { openDestination } from "../src/transports/open.js";

describe("oci-archive destination: concurrent spooled blobs", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "strata-ociarchive-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("takes 16 blobs of unknown size at once, each with its own digest, then aborts cleanly (50 archives)", async () => {
    for (let round = 0; round < 50; round++) {
      const dst = await openDestination(`oci-archive:${join(dir, "out.tar")}`);
      const blobs = Array.from({ length: 16 }, () => randomBytes(4 * 1024));
      const results = await Promise.all(blobs.map((b) => dst.putBlob(Readable.from([b]), { mediaType: "application/octet-stream" })));
      for (const [i, r] of results.entries()) {
        assert.equal(r.digest, `sha256:${createHash("sha256").update(blobs[i]).digest("hex")}`);
        assert.equal(r.size, blobs[i].length);
      }
      await dst.abort();
      assert.deepEqual(await readdir(dir), []);
    }
  });
});
