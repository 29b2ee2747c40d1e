/** `strata rmi IMAGE...`: untag, and delete images and layers nothing else references (Docker-style). */
import { type RemoveResult, removeImage } from "../store/images.js";
import type { Store } from "../store/store.js";

export async function rmiImages(store: Store, images: string[], opts: { force?: boolean } = {}): Promise<RemoveResult> {
  const all: RemoveResult = { untagged: [], deleted: [] };
  for (const arg of images) {
    const r = await store.withLock(async () => {
      await store.recover();
      return removeImage(store, arg, opts);
    });
    all.untagged.push(...r.untagged);
    all.deleted.push(...r.deleted);
  }
  return all;
}

export function formatRemoveResult(r: RemoveResult): string {
  return [...r.untagged.map((u) => `Untagged: ${u}`), ...r.deleted.map((d) => `Deleted: ${d}`)].join("\n");
}
