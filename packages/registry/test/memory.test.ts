/** compactHeap: the heap's garbage goes back to the operating system; governBuffers: dropped Buffers are collected once over the limit. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { compactHeap, governBuffers, governorStats } from "../src/memory.js";

describe("start-up compaction", () => {
  it("returns the pages of a heap full of garbage: the committed heap shrinks", () => {
    /** Fills the heap with ~40 MB of objects that are garbage once it returns; the heap's committed size then. */
    const litter = (): number => {
      const garbage = Array.from({ length: 40 }, (_, i) => Array.from({ length: 20_000 }, (_, j) => ({ i, j, s: `x${j}` })));
      assert.equal(garbage.length, 40);
      return process.memoryUsage().heapTotal;
    };
    const grown = litter();
    compactHeap();
    const after = process.memoryUsage().heapTotal;
    assert.ok(after < grown - 20 * 1024 * 1024, `heap ${grown} -> ${after} bytes`);
  });
});

describe("buffer governor", () => {
  /** Holds `mib` 1 MiB Buffers through enough allocation for V8 to promote them; they are garbage once it returns. */
  const promoteAndDrop = async (mib: number) => {
    const held = Array.from({ length: mib }, () => Buffer.alloc(1024 * 1024, 1));
    for (let round = 0; round < 20; round++) {
      Array.from({ length: 50_000 }, (_, j) => ({ j }));
      await new Promise((r) => setImmediate(r));
    }
    assert.equal(held.length, mib);
  };
  const waitFor = async (ok: () => boolean, ms: number) => {
    for (const end = Date.now() + ms; Date.now() < end && !ok(); ) await new Promise((r) => setTimeout(r, 50));
    return ok();
  };

  it("has V8 collect dropped Buffers once they hold more than the limit", async () => {
    const base = process.memoryUsage().arrayBuffers;
    const before = governorStats.collections;
    const stop = governBuffers(base + 8 * 1024 * 1024, 20);
    try {
      await promoteAndDrop(40);
      const freed = await waitFor(() => process.memoryUsage().arrayBuffers < base + 16 * 1024 * 1024, 5000);
      assert.ok(governorStats.collections > before, "no collection was asked for");
      assert.ok(freed, `dropped Buffers still held: ${process.memoryUsage().arrayBuffers - base} bytes above the start`);
    } finally {
      stop();
    }
  });

  it("does not count pooled Buffers against the limit: a full pool at the limit asks for nothing, garbage beside it still does", async () => {
    const MiB = 1024 * 1024;
    const base = process.memoryUsage().arrayBuffers;
    // a pool holding 24 MiB of live buffers, the limit 16 MiB above what was there
    const pool = Array.from({ length: 3 }, () => Buffer.alloc(8 * MiB, 1));
    const held = () => pool.reduce((n, b) => n + b.length, 0);
    const before = governorStats.collections;
    const stop = governBuffers(base + 16 * MiB, 20, held);
    try {
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(governorStats.collections, before, "pooled buffers alone asked for a collection");
      // garbage beyond a third of the limit, beside the pool
      await promoteAndDrop(40);
      assert.ok(await waitFor(() => governorStats.collections > before, 5000), "garbage beside the pool asked for no collection");
    } finally {
      stop();
      pool.length = 0;
    }
  });

  it("asks for nothing while Buffers stay under the limit", async () => {
    const before = governorStats.collections;
    const stop = governBuffers(process.memoryUsage().arrayBuffers + 64 * 1024 * 1024, 20);
    try {
      await promoteAndDrop(8);
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(governorStats.collections, before);
    } finally {
      stop();
    }
  });
});
