/**
 * chainIDs against the golden Docker store captured from a real dockerd (test/fixtures/docker-golden/edge):
 * expected.json lists each layer's diff_id and chain_id, and the store's layerdb directories are named by
 * chainID and hold `diff` and `parent` files written by dockerd itself.
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { chainIdOf, chainIds, digestOf, parseChainID, parseDiffID } from "../src/index.js";

/** The golden fixture in the repository (test/fixtures/docker-golden; dist/test/x.test.js is four levels below the root). */
const EDGE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../../test/fixtures/docker-golden/edge");

interface ExpectedLayer {
  n: number;
  diff_id: string;
  chain_id: string;
  parent_chain_id: string | null;
}
const expected = JSON.parse(readFileSync(path.join(EDGE, "expected.json"), "utf8")) as { layers: ExpectedLayer[] };

describe("chainIds against the golden fixture", () => {
  it("the fixture has several layers", () => {
    assert.ok(expected.layers.length >= 3);
  });

  it("chainIds(diff_ids) equals every layer's chain_id in expected.json", () => {
    const layers = [...expected.layers].sort((a, b) => a.n - b.n);
    const got = chainIds(layers.map((l) => parseDiffID(l.diff_id)));
    assert.deepEqual(
      got,
      layers.map((l) => l.chain_id),
    );
  });

  it("chainIdOf(parent_chain_id, diff_id) equals chain_id for each layer", () => {
    for (const l of expected.layers) {
      const parent = l.parent_chain_id === null ? undefined : parseChainID(l.parent_chain_id);
      assert.equal(chainIdOf(parent, parseDiffID(l.diff_id)), l.chain_id, `layer ${l.n}`);
    }
  });

  it("every layerdb directory written by dockerd is named by chainIdOf(parent, diff)", () => {
    const layerdb = path.join(EDGE, "docker/image/overlay2/layerdb/sha256");
    const dirs = readdirSync(layerdb);
    assert.ok(dirs.length >= expected.layers.length);
    for (const hex of dirs) {
      const diff = parseDiffID(readFileSync(path.join(layerdb, hex, "diff"), "utf8").trim());
      const parentFile = path.join(layerdb, hex, "parent");
      const parent = existsSync(parentFile) ? parseChainID(readFileSync(parentFile, "utf8").trim()) : undefined;
      assert.equal(chainIdOf(parent, diff), `sha256:${hex}`, `layerdb/sha256/${hex}`);
    }
  });
});

describe("chainID definition", () => {
  const d1 = parseDiffID(digestOf("layer one"));
  const d2 = parseDiffID(digestOf("layer two"));
  const d3 = parseDiffID(digestOf("layer three"));

  it("chainID(1) is diffID(1)", () => {
    assert.equal(chainIdOf(undefined, d1), d1);
    assert.deepEqual(chainIds([d1]), [d1]);
  });

  it('chainID(n) = sha256("<chainID(n-1)> <diffID(n)>") with one space and no newline', () => {
    const c2 = digestOf(`${d1} ${d2}`);
    const c3 = digestOf(`${c2} ${d3}`);
    assert.deepEqual(chainIds([d1, d2, d3]), [d1, c2, c3]);
    assert.notEqual(c2, digestOf(`${d1} ${d2}\n`));
  });

  it("empty input gives no chainIDs", () => {
    assert.deepEqual(chainIds([]), []);
  });

  it("order matters", () => {
    const ab = chainIds([d1, d2]);
    const ba = chainIds([d2, d1]);
    assert.notEqual(ab[1], ba[1]);
  });
});
