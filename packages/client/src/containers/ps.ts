/** `strata ps`: rows and the table. */
import { type Fields, formatRows, type OutputFormat } from "../format.js";
import type { Store } from "../store/store.js";
import { isContainerMounted, listContainers, mergedDir } from "./store.js";

/** Rows of `strata ps`. */
export interface PsRow {
  id: string;
  image: string;
  name: string;
  /** The mount point, or "" when not mounted. */
  mounted: string;
}

export async function psRows(store: Store): Promise<PsRow[]> {
  const rows: PsRow[] = [];
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

/** `--format` fields of `strata ps` (`.Names` as Docker spells it, `.Name` too). */
export const PS_FIELDS: Fields<PsRow> = {
  ID: { header: "CONTAINER ID", get: (r) => r.id.slice(0, 12) },
  Image: { header: "IMAGE", get: (r) => r.image },
  Name: { header: "NAME", get: (r) => r.name },
  Names: { header: "NAMES", get: (r) => r.name },
  Mounted: { header: "MOUNTED", get: (r) => r.mounted || "-" },
};

const PS_TABLE = "table {{.ID}}\t{{.Image}}\t{{.Name}}\t{{.Mounted}}";

/** The output of `strata ps` in `fmt` (JSON rows are PsRow objects). */
export function formatPs(rows: PsRow[], fmt: OutputFormat): string {
  return formatRows(rows, fmt, PS_FIELDS, { table: PS_TABLE, json: (r) => r });
}
