/**
 * chainID: the identity of a layer together with every layer below it.
 *
 *   chainID(1) = diffID(1)
 *   chainID(n) = sha256("<chainID(n-1)> <diffID(n)>")   (full "sha256:<hex>" forms, one space, no newline)
 */
import { type ChainID, type DiffID, digestOf } from "./digest.js";

export function chainIdOf(parent: ChainID | undefined, diffId: DiffID): ChainID {
  if (parent === undefined) return diffId as unknown as ChainID;
  return digestOf(`${parent} ${diffId}`, "sha256") as ChainID;
}

/** chainIDs for every prefix of `diffIds`, in order. */
export function chainIds(diffIds: readonly DiffID[]): ChainID[] {
  const out: ChainID[] = [];
  let parent: ChainID | undefined;
  for (const d of diffIds) {
    parent = chainIdOf(parent, d);
    out.push(parent);
  }
  return out;
}
