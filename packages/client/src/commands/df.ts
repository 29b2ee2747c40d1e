/** `strata system df`: TYPE TOTAL ACTIVE SIZE SHARED RECLAIMABLE, like `docker system df`. */
import { type Fields, formatRows, type OutputFormat } from "../format.js";
import { humanSize } from "../progress.js";
import type { UsageRow } from "../store/prune.js";

/** Docker's `system df` size: decimal units, 4 significant digits (go-units HumanSize). */
export function dfSize(bytes: number): string {
  return humanSize(bytes, 4);
}

/** Docker's percentage: truncated to an integer. */
function percent(part: number, whole: number): string {
  return whole > 0 ? `${Math.trunc((part * 100) / whole)}%` : "0%";
}

/** `--format` fields (Docker's names; sizes human-readable). */
export const DF_FIELDS: Fields<UsageRow> = {
  Type: { header: "TYPE", get: (r) => r.type },
  TotalCount: { header: "TOTAL", get: (r) => String(r.total) },
  Active: { header: "ACTIVE", get: (r) => String(r.active) },
  Size: { header: "SIZE", get: (r) => dfSize(r.size) },
  Shared: { header: "SHARED", get: (r) => dfSize(r.shared) },
  Reclaimable: { header: "RECLAIMABLE", get: (r) => `${dfSize(r.reclaimable)} (${percent(r.reclaimable, r.size)})` },
};

const DF_TABLE = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Shared}}\t{{.Reclaimable}}";

/** JSON rows carry exact byte counts. */
export function formatDf(rows: UsageRow[], fmt: OutputFormat): string {
  return formatRows(rows, fmt, DF_FIELDS, {
    table: DF_TABLE,
    json: (r) => ({ Type: r.type, TotalCount: r.total, Active: r.active, Size: r.size, SharedSize: r.shared, Reclaimable: r.reclaimable }),
  });
}
