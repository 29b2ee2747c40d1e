/**
 * ResendWindow (registry/window.ts): the bytes an upload keeps for a resume, with a fixed size or
 * a share that changes while the upload runs (the uploads of a copy share REREAD_WINDOWS).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ResendWindow } from "../src/registry/window.js";

const KiB = 1024;
const chunk = (i: number) => Buffer.alloc(KiB, i);

describe("ResendWindow", () => {
  it("keeps the last `keep` bytes sent (whole chunks, the newest always), from its start offset", () => {
    const w = new ResendWindow(4 * KiB);
    for (let i = 0; i < 8; i++) w.append(chunk(i), false);
    assert.equal(w.start, 4 * KiB);
    assert.deepEqual(Buffer.concat([...w.since(5 * KiB)]), Buffer.concat([5, 6, 7].map(chunk)));
    assert.deepEqual(Buffer.concat([...w.since(4 * KiB + 10)]), Buffer.concat([4, 5, 6, 7].map(chunk)).subarray(10));
  });

  it("a share asked at each append: when it shrinks, the oldest bytes go at the next append; when it grows, more are kept from then on", () => {
    let share = 4 * KiB;
    const w = new ResendWindow(() => share);
    for (let i = 0; i < 8; i++) w.append(chunk(i), false);
    assert.equal(w.start, 4 * KiB);
    share = KiB;
    w.append(chunk(8), false);
    assert.equal(w.start, 8 * KiB, "only the newest chunk is kept");
    assert.deepEqual(Buffer.concat([...w.since(8 * KiB)]), chunk(8));
    share = 16 * KiB;
    for (let i = 9; i < 12; i++) w.append(chunk(i), false);
    assert.equal(w.start, 8 * KiB, "nothing dropped while the share holds all");
    assert.deepEqual(Buffer.concat([...w.since(8 * KiB)]), Buffer.concat([8, 9, 10, 11].map(chunk)));
  });
});
