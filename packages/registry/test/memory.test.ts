/** compactHeap: the heap's garbage goes back to the operating system. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { compactHeap } from "../src/memory.js";

describe("start-up compaction", () => {
  it("returns the pages of a heap full of garbage: the committed heap shrinks", () => {
    let garbage: object[][] | undefined = Array.from({ length: 40 }, (_, i) => Array.from({ length: 20_000 }, (_, j) => ({ i, j, s: `x${j}` })));
    const grown = process.memoryUsage().heapTotal;
    assert.ok(garbage.length === 40);
    garbage = undefined;
    compactHeap();
    const after = process.memoryUsage().heapTotal;
    assert.ok(after < grown - 20 * 1024 * 1024, `heap ${grown} -> ${after} bytes`);
  });
});
