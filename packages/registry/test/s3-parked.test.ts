/** ParkedWriters (storage/s3-parked.ts): taken once, bounded in parts and in age. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type ParkedState, ParkedWriters } from "../src/storage/s3-parked.js";

const state = (parts: number, tag = "e"): ParkedState => ({
  stateETag: tag,
  uploadId: "u",
  uploadKey: "k",
  parts: Array.from({ length: parts }, (_, i) => ({ PartNumber: i + 1, ETag: `p${i}`, Size: 5 })),
  segments: [],
  size: parts * 5,
});

describe("ParkedWriters", () => {
  it("hands a parked state out once; a newer park of the key replaces it", () => {
    const p = new ParkedWriters();
    p.park("a", state(2, "old"));
    p.park("a", state(3, "new"));
    assert.equal(p.take("a")?.stateETag, "new");
    assert.equal(p.take("a"), undefined);
  });

  it("keeps at most maxParts parts, dropping the oldest entries first", () => {
    const p = new ParkedWriters(10);
    p.park("a", state(4));
    p.park("b", state(4));
    p.park("c", state(4));
    assert.equal(p.take("a"), undefined, "the oldest entry stays although the budget is exceeded");
    assert.ok(p.take("b"));
    assert.ok(p.take("c"));
    p.park("huge", state(11));
    assert.equal(p.take("huge"), undefined, "a state larger than the whole budget is parked");
  });

  it("does not hand out states older than maxAgeMs", async () => {
    const p = new ParkedWriters(100, 20);
    p.park("a", state(1));
    await new Promise((r) => setTimeout(r, 40));
    assert.equal(p.take("a"), undefined);
    assert.equal(p.size, 0);
  });
});
