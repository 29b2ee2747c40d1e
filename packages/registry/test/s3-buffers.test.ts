/** PartBuffers: the shared, bounded memory of the S3 writers' parts. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { PartBuffers, pooledBufferBytes } from "../src/storage/s3-buffers.js";

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
    const pool = new PartBuffers(4, 4, { maxWaitMs: 50 });
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

  it("part size: the capacity shared out two parts per joined writer, a power-of-two multiple of base, never below base", () => {
    const pool = new PartBuffers(4, 32);
    assert.equal(pool.partSize(), 16, "no writer counts as one");
    const a = pool.join();
    assert.equal(pool.partSize(), 16);
    const b = pool.join();
    assert.equal(pool.partSize(), 8);
    const c = pool.join();
    assert.equal(pool.partSize(), 4, "32 / 6 rounds down to base");
    const more = Array.from({ length: 5 }, () => pool.join());
    assert.equal(pool.partSize(), 4, "never below base");
    for (const leave of [c, ...more]) leave();
    b();
    b();
    assert.equal(pool.partSize(), 16, "leaving twice counts once");
    a();
    assert.equal(pool.partSize(), 16);
  });

  it("a lone writer gets two parts of lonePart beyond the capacity; a second writer brings the limit back and waits for one of them", async () => {
    assert.equal(new PartBuffers(4, 32, { lonePart: 8 }).partSize(), 16, "a lonePart within half the capacity changes nothing");
    const big = new PartBuffers(4, 16, { lonePart: 16 });
    const a = big.join();
    assert.equal(big.limit, 32);
    assert.equal(big.partSize(), 16, "alone: parts of lonePart");
    const x = await big.take(16);
    const y = await big.take(16);
    assert.equal(big.inUse, 32, "two lone parts, twice the capacity");
    const b = big.join();
    assert.equal(big.limit, 32, "two writers: the capacity, plus one lone part while lone parts are out");
    assert.equal(big.partSize(), 4, "two writers share the capacity");
    const w = big.take(4);
    assert.equal(await settled(w), false, "the newcomer waits while both lone parts are out");
    big.give(x);
    // y stays out, as the part a slow client is still filling would
    assert.equal(await settled(w), true, "one lone part back: the newcomer goes on beside the other");
    const got = await w;
    const more = big.take(13);
    assert.equal(await settled(more), false, "beside the lone part, no more than the capacity (16 + 4 + 13 > 32)");
    big.give(y);
    assert.equal(big.limit, 16, "no lone part out: the capacity");
    assert.equal(await settled(more), false, "4 + 13 > 16");
    big.give(got);
    big.give(await more);
    b();
    assert.equal(big.limit, 16, "alone again, but a crowd was there within quietMs");
    a();
    const quick = new PartBuffers(4, 16, { lonePart: 16, quietMs: 30 });
    const l1 = quick.join();
    const l2 = quick.join();
    l2();
    assert.equal(quick.limit, 16);
    await new Promise((r) => setTimeout(r, 40));
    assert.equal(quick.limit, 32, "alone and quiet for quietMs: the lone limit again");
    l1();
  });

  it("a writer leaving raises the limit and wakes a waiter; free buffers beyond the capacity go when writers share it again", async () => {
    const start = pooledBufferBytes();
    const pool = new PartBuffers(4, 16, { lonePart: 16, quietMs: 0 });
    const a = pool.join();
    const b = pool.join();
    const x = await pool.take(8);
    const y = await pool.take(8);
    const w = pool.take(16);
    assert.equal(await settled(w), false, "over the shared capacity");
    b();
    assert.equal(await settled(w), true, "woken when the other writer left");
    const z = await w;
    assert.equal(pool.inUse, 32, "alone again: the limit is two lone parts");
    pool.give(x);
    pool.give(y);
    pool.give(z);
    assert.equal(pooledBufferBytes() - start, 32, "kept for reuse while the writer is joined");
    a();
    assert.equal(pooledBufferBytes() - start, 32, "still kept for the next lone upload");
    const c = pool.join();
    const d = pool.join();
    const s = await pool.take(4);
    assert.ok(pooledBufferBytes() - start <= 16, `two writers: held and kept bytes within the capacity (${pooledBufferBytes() - start})`);
    pool.give(s);
    c();
    d();
  });

  it("buffers of any size are reused by requests of that size while held and free bytes stay within the capacity", async () => {
    const pool = new PartBuffers(4, 16);
    const a = await pool.take(8);
    const b = await pool.take(8);
    pool.give(a);
    pool.give(b);
    const x = await pool.take(8);
    const y = await pool.take(8);
    assert.ok([a, b].includes(x) && [a, b].includes(y) && x !== y, "both 8-byte buffers were kept and reused");
    pool.give(x);
    pool.give(y);
    const s = await pool.take(4);
    assert.ok(s !== a && s !== b && s.length === 4, "another size is a new buffer");
    const z = await pool.take(8);
    assert.ok([a, b].includes(z), "one 8-byte buffer is still free");
    pool.give(s);
    assert.equal(await pool.take(4), s, "the 4-byte buffer is reused");
    assert.equal(pool.inUse, 12);
  });
  it("pooledBufferBytes counts what every pool holds, lent out or kept for reuse, until it is dropped", async () => {
    const MiB = 1024 * 1024;
    const start = pooledBufferBytes();
    const a = new PartBuffers(5 * MiB, 10 * MiB, { idleMs: 50 });
    const b = new PartBuffers(5 * MiB, 10 * MiB, { idleMs: 50 });
    const x = await a.take(5 * MiB);
    const y = await b.take(5 * MiB);
    const z = await b.take(5 * MiB);
    assert.equal(pooledBufferBytes() - start, 15 * MiB, "lent out");
    a.give(x);
    b.give(y);
    assert.equal(pooledBufferBytes() - start, 15 * MiB, "given back and kept for reuse");
    b.give(z);
    // after idleMs without buffers out, kept buffers are dropped
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(pooledBufferBytes() - start, 0, "dropped");
  });
});
