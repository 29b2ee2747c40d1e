// Mount planning as pure data: no root, no filesystem. Lengths follow the kernel rule that
// overlay mount data must fit in one page (at most pageSize - 1 bytes).
import assert from "node:assert/strict";
import { test } from "node:test";
import { MountPlanError, planMount } from "../src/containers/plan.js";

const ROOT = "/var/lib/strata-test-root-with-a-longish-path";
const MOUNT_ID = "a".repeat(64);

/** Distinct valid link names (26 chars of A-Z2-7). */
function links(n: number): string[] {
  const B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    let s = "";
    for (let v = i; s.length < 4; v = Math.floor(v / 32)) s = B32[v % 32] + s;
    out.push(`LINK${s}`.padEnd(26, "Q"));
  }
  return out;
}

test("link generator gives valid distinct names", () => {
  const l = links(600);
  assert.equal(new Set(l).size, 600);
  for (const x of l) assert.match(x, /^[A-Z2-7]{26}$/);
});

test("a small stack mounts with absolute l/ paths and no working directory", () => {
  const [a, b, c] = links(3);
  const plan = planMount({ root: ROOT, lowerLinks: [a, b, c], upper: MOUNT_ID, target: `${ROOT}/overlay2/${MOUNT_ID}/merged` });
  assert.equal(plan.cwd, undefined);
  assert.equal(plan.type, "overlay");
  assert.equal(plan.source, "overlay");
  assert.equal(plan.readOnly, false);
  assert.equal(
    plan.options,
    `index=off,redirect_dir=off,metacopy=off,lowerdir=${ROOT}/overlay2/l/${a}:${ROOT}/overlay2/l/${b}:${ROOT}/overlay2/l/${c},` +
      `upperdir=${ROOT}/overlay2/${MOUNT_ID}/diff,workdir=${ROOT}/overlay2/${MOUNT_ID}/work`,
  );
});

test("128 layers: too long with absolute paths, so relative l/ paths from <root>/overlay2", () => {
  const l = links(128);
  const plan = planMount({ root: ROOT, lowerLinks: l, upper: MOUNT_ID, target: `${ROOT}/overlay2/${MOUNT_ID}/merged` });
  assert.equal(plan.cwd, `${ROOT}/overlay2`);
  assert.ok(plan.options.length <= 4095, `${plan.options.length}`);
  assert.ok(plan.options.includes(`lowerdir=l/${l[0]}:l/${l[1]}:`));
  assert.ok(plan.options.endsWith(`,upperdir=${MOUNT_ID}/diff,workdir=${MOUNT_ID}/work`));
  assert.equal(plan.lowers, 128);
  // the target stays absolute
  assert.equal(plan.target, `${ROOT}/overlay2/${MOUNT_ID}/merged`);
});

test("the relative form is used exactly when the absolute one exceeds pageSize - 1", () => {
  // find the largest stack whose absolute form fits
  let n = 1;
  while (planMount({ root: ROOT, lowerLinks: links(n + 1), upper: MOUNT_ID, target: "/t" }).cwd === undefined) n++;
  const abs = planMount({ root: ROOT, lowerLinks: links(n), upper: MOUNT_ID, target: "/t" });
  const rel = planMount({ root: ROOT, lowerLinks: links(n + 1), upper: MOUNT_ID, target: "/t" });
  assert.ok(abs.options.length <= 4095);
  assert.equal(rel.cwd, `${ROOT}/overlay2`);
  const absNext = `index=off,redirect_dir=off,metacopy=off,lowerdir=${links(n + 1)
    .map((x) => `${ROOT}/overlay2/l/${x}`)
    .join(":")},upperdir=${ROOT}/overlay2/${MOUNT_ID}/diff,workdir=${ROOT}/overlay2/${MOUNT_ID}/work`;
  assert.ok(absNext.length > 4095);
});

test("130+ layers mount with relative paths up to the page limit (134 with an upper dir), then fail before mounting", () => {
  for (const n of [130, 131, 134]) {
    const plan = planMount({ root: ROOT, lowerLinks: links(n), upper: MOUNT_ID, target: "/t" });
    assert.equal(plan.cwd, `${ROOT}/overlay2`);
    assert.ok(plan.options.length <= 4095);
  }
  // 206 fixed bytes + 135 * 28 + 134 separators = 4120 > 4095
  assert.throws(
    () => planMount({ root: ROOT, lowerLinks: links(135), upper: MOUNT_ID, target: "/t" }),
    (e: unknown) => {
      assert.ok(e instanceof MountPlanError);
      assert.match((e as Error).message, /135 lower layers/);
      assert.match((e as Error).message, /4095 bytes/);
      return true;
    },
  );
});

test("read-only mounts (no upper dir) fit a few more layers", () => {
  const plan = planMount({ root: ROOT, lowerLinks: links(139), target: "/t" });
  assert.equal(plan.readOnly, true);
  assert.ok(!plan.options.includes("upperdir"));
  assert.ok(!plan.options.includes("workdir"));
  assert.throws(() => planMount({ root: ROOT, lowerLinks: links(140), target: "/t" }), MountPlanError);
});

test("500 layers do not fit a 4 KiB page; with a 64 KiB page they do; 501 never (overlayfs limit)", () => {
  assert.throws(() => planMount({ root: ROOT, lowerLinks: links(500), upper: MOUNT_ID, target: "/t" }), /even with relative l\/ paths/);
  const big = planMount({ root: ROOT, lowerLinks: links(500), upper: MOUNT_ID, target: "/t", pageSize: 65536 });
  assert.equal(big.cwd, undefined);
  assert.equal(big.lowers, 500);
  assert.throws(() => planMount({ root: ROOT, lowerLinks: links(501), upper: MOUNT_ID, target: "/t", pageSize: 65536 }), /at most 500/);
});

test("a one-layer read-only mount needs a pad lower dir", () => {
  const [a] = links(1);
  assert.throws(() => planMount({ root: ROOT, lowerLinks: [a], target: "/t" }), /at least two lower dirs/);
  const plan = planMount({ root: ROOT, lowerLinks: [a], target: "/t", padLower: "/pad" });
  assert.ok(plan.options.endsWith(`lowerdir=${ROOT}/overlay2/l/${a}:/pad`));
  assert.equal(plan.lowers, 2);
});

test("bad input is refused", () => {
  assert.throws(() => planMount({ root: "rel", lowerLinks: links(2), target: "/t" }), MountPlanError);
  assert.throws(() => planMount({ root: ROOT, lowerLinks: ["../../etc"], upper: MOUNT_ID, target: "/t" }), /invalid layer link/);
  assert.throws(() => planMount({ root: ROOT, lowerLinks: links(2), upper: "../x", target: "/t" }), /invalid rw layer id/);
  assert.throws(() => planMount({ root: ROOT, lowerLinks: [], upper: MOUNT_ID, target: "/t" }), /no lower layers/);
  // an -init layer can be an upper dir (Docker mounts it to set it up)
  assert.equal(planMount({ root: ROOT, lowerLinks: links(2), upper: `${MOUNT_ID}-init`, target: "/t" }).readOnly, false);
});
