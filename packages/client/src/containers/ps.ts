/** `strata ps`: rows and the table. */
import type { Store } from "../store/store.js";
import { isContainerMounted, listContainers, mergedDir } from "./store.js";

/** Rows of `strata ps`. */
export async function psRows(store: Store): Promise<Array<{ id: string; image: string; name: string; mounted: string }>> {
  const rows = [];
  for (const c of await listContainers(store)) {
    rows.push({
      id: c.id,
      image: c.imageName ?? (c.image ? c.image.slice(7, 19) : ""),
      name: c.name,
      mounted: isContainerMounted(store, c) ? mergedDir(store, c) : "",
    });
  }
  return rows;
}

export function formatPsTable(rows: Array<{ id: string; image: string; name: string; mounted: string }>): string {
  const table = [["CONTAINER ID", "IMAGE", "NAME", "MOUNTED"], ...rows.map((r) => [r.id.slice(0, 12), r.image, r.name, r.mounted || "-"])];
  const widths = table[0].map((_h, i) => Math.max(...table.map((r) => r[i].length)));
  return table
    .map((r) =>
      r
        .map((v, i) => (i === r.length - 1 ? v : v.padEnd(widths[i] + 3)))
        .join("")
        .trimEnd(),
    )
    .join("\n");
}
