/** compactHeap: the heap's garbage goes back to the operating system. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { compactHeap } from "../src/memory.js";

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
