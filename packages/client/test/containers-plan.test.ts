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

test("130+ layers mount with relative paths up to the page limit (134 with an upper dir)", () => {
  for (const n of [130, 131, 134]) {
    const plan = planMount({ root: ROOT, lowerLinks: links(n), upper: MOUNT_ID, target: "/t" });
    assert.equal(plan.cwd, `${ROOT}/overlay2`);
    assert.equal(plan.shortLinks, undefined);
    assert.ok(plan.options.length <= 4095);
  }
  // 206 fixed bytes + 135 * 28 + 134 separators = 4120 > 4095: relative l/ paths no longer fit
  const relative135 = `index=off,redirect_dir=off,metacopy=off,lowerdir=${links(135)
    .map((x) => `l/${x}`)
    .join(":")},upperdir=${MOUNT_ID}/diff,workdir=${MOUNT_ID}/work`;
  assert.equal(relative135.length, 4120);
});

test("past the relative limit: one short symlink per layer in a private dir, up to 500 layers", () => {
  const target = `${ROOT}/overlay2/${MOUNT_ID}/merged`;
  const l = links(500);
  const plan = planMount({ root: ROOT, lowerLinks: l, upper: MOUNT_ID, target });
  assert.ok(plan.shortLinks);
  assert.equal(plan.cwd, plan.shortLinks.dir);
  assert.ok(plan.cwd?.startsWith(`${ROOT}/strata/lowers/`));
  assert.ok(plan.options.length <= 4095, `${plan.options.length}`);
  const names = l.map((_x, i) => i.toString(36));
  assert.equal(plan.options, `index=off,redirect_dir=off,metacopy=off,lowerdir=${names.join(":")},upperdir=U,workdir=W`);
  // every name points at the right l/ link, in order, plus the upper and work dirs
  assert.deepEqual(plan.shortLinks.links, [
    ...l.map((x, i) => [i.toString(36), `${ROOT}/overlay2/l/${x}`]),
    ["U", `${ROOT}/overlay2/${MOUNT_ID}/diff`],
    ["W", `${ROOT}/overlay2/${MOUNT_ID}/work`],
  ]);
  // a plan is a pure function of its facts
  assert.deepEqual(planMount({ root: ROOT, lowerLinks: l, upper: MOUNT_ID, target }), plan);
  // another target gets another private dir
  assert.notEqual(planMount({ root: ROOT, lowerLinks: l, upper: MOUNT_ID, target: "/other" }).cwd, plan.cwd);
  const ro = planMount({ root: ROOT, lowerLinks: links(140), target });
  assert.ok(ro.shortLinks);
  assert.ok(!ro.options.includes("upperdir"));
});

test("501 layers never (overlayfs limit); an option string that fits no page fails before mounting", () => {
  assert.throws(
    () => planMount({ root: ROOT, lowerLinks: links(501), upper: MOUNT_ID, target: "/t" }),
    (e: unknown) => {
      assert.ok(e instanceof MountPlanError);
      assert.match((e as Error).message, /cannot mount 501 lower layers: overlayfs supports at most 500/);
      return true;
    },
  );
  assert.throws(
    () => planMount({ root: ROOT, lowerLinks: links(500), upper: MOUNT_ID, target: "/t", pageSize: 1024 }),
    (e: unknown) => {
      assert.ok(e instanceof MountPlanError);
      assert.match((e as Error).message, /500 lower layers: .* even with short symlinked paths, more than the 1023 bytes/);
      return true;
    },
  );
  const big = planMount({ root: ROOT, lowerLinks: links(500), upper: MOUNT_ID, target: "/t", pageSize: 65536 });
  assert.equal(big.cwd, undefined, "a 64 KiB page holds 500 absolute paths");
});

test("read-only mounts (no upper dir) fit a few more layers with relative paths", () => {
  const plan = planMount({ root: ROOT, lowerLinks: links(139), target: "/t" });
  assert.equal(plan.readOnly, true);
  assert.equal(plan.cwd, `${ROOT}/overlay2`);
  assert.ok(!plan.options.includes("upperdir"));
  assert.ok(!plan.options.includes("workdir"));
  assert.ok(planMount({ root: ROOT, lowerLinks: links(140), target: "/t" }).shortLinks);
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
