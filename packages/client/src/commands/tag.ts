/**
 * `strata tag SOURCE TARGET` (Docker's `docker tag`): TARGET, a name Docker accepts (`name`
 * means `name:latest`; `alpine` is `docker.io/library/alpine`), is added to repositories.json for
 * SOURCE's image (a reference or a full or short image ID), under the store lock. An existing
 * TARGET is moved to the image. A digest reference cannot be a tag.
 */
import { formatFamiliar, parseReference, type Reference } from "@strata/core";
import { referenceKeys, resolveImage } from "../store/images.js";
import type { Store } from "../store/store.js";

export async function tagImage(store: Store, source: string, target: string): Promise<{ id: string; tag: string }> {
  let ref: Reference;
  try {
    ref = parseReference(target);
  } catch (e) {
    throw new Error(`invalid target name ${JSON.stringify(target)}: ${(e as Error).message}`, { cause: e });
  }
  if (ref.digest) throw new Error(`refusing to create a tag with a digest reference: ${target}`);
  const { repo, key } = referenceKeys(ref);
  return store.withLock(async () => {
    const { id } = await resolveImage(store, source);
    await store.updateRepositories((r) => {
      r[repo] ??= {};
      r[repo][key] = id;
    });
    return { id, tag: formatFamiliar(ref) };
  });
}
