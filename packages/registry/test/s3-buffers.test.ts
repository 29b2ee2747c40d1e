/** PartBuffers: the shared, bounded memory of the S3 writers' parts. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { PartBuffers } from "../src/storage/s3-buffers.js";

const settled = async <T>(p: Promise<T>) => {
  let done = false;
  void p.then(() => (done = true));
  await new Promise((r) => setImmediate(r));
  return done;
};

describe("S3 part buffers", () => {
  it("hands out at most the capacity; a taker waits until a buffer comes back, and base-size buffers are reused", async () => {
    const pool = new PartBuffers(4, 8);
    const a = await pool.take(4);
    const b = await pool.take(4);
    assert.equal(pool.inUse, 8);
    const c = pool.take(4);
    assert.equal(await settled(c), false, "a third buffer exceeds the capacity");
    pool.give(a);
    const got = await c;
    assert.equal(got, a, "the given-back buffer is reused");
    assert.equal(pool.inUse, 8);
    pool.give(b);
    pool.give(got);
    assert.equal(pool.inUse, 0);
  });

  it("waiters are served in order, and a buffer larger than the capacity is granted when nothing else is held", async () => {
    const pool = new PartBuffers(4, 8);
    const a = await pool.take(8);
    const big = pool.take(20);
    const small = pool.take(4);
    pool.give(a);
    const g = await big;
    assert.equal(g.length, 20);
    assert.equal(await settled(small), false, "the small request waits behind the big one");
    pool.give(g);
    pool.give(await small);
  });

  it("a taker that waits too long is granted anyway (stalled holders cannot block everyone)", async () => {
    const pool = new PartBuffers(4, 4, 50);
    const a = await pool.take(4);
    const b = await pool.take(4);
    assert.equal(pool.inUse, 8);
    pool.give(a);
    pool.give(b);
  });

  it("an aborted wait rejects and leaves the queue", async () => {
    const pool = new PartBuffers(4, 4);
    const a = await pool.take(4);
    const ac = new AbortController();
    const w = pool.take(4, ac.signal);
    ac.abort();
    await assert.rejects(w, (e: Error) => e.name === "AbortError");
    pool.give(a);
    assert.equal(pool.inUse, 0);
    pool.give(await pool.take(4));
  });
});
