/**
 * `strata system df`: TYPE TOTAL ACTIVE SIZE SHARED RECLAIMABLE, like `docker system df`; with
 * `-v`, docker's per-image (SIZE, SHARED SIZE, UNIQUE SIZE, CONTAINERS) and per-container tables.
 */
import { type Fields, formatRows, type OutputFormat } from "../format.js";
import { humanSize } from "../progress.js";
import { type ContainerUsage, diskUsageVerbose, type ImageUsage, type UsageRow } from "../store/prune.js";
import type { Store } from "../store/store.js";
import { jsonSafe } from "../terminal.js";
import { humanDuration, imageFields, type ImageRow, imageRows } from "./images.js";

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

/** A row of `system df -v`'s images section: one per repository tag, as `docker system df -v`. */
export interface ImageDfRow extends ImageRow, ImageUsage {}

const IMAGE_DF_TABLE = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}";
const CONTAINER_DF_TABLE = "table {{.ID}}\t{{.Image}}\t{{.Size}}\t{{.CreatedSince}}\t{{.Status}}\t{{.Names}}";

function imageDfFields(now: number): Fields<ImageDfRow> {
  const base = imageFields(now);
  return {
    Repository: base.Repository,
    Tag: base.Tag,
    ID: base.ID,
    CreatedSince: base.CreatedSince,
    // as docker: SIZE with 3 significant digits (as `images`), SHARED and UNIQUE with 4
    Size: base.Size,
    SharedSize: { header: "SHARED SIZE", get: (r) => dfSize(r.shared) },
    UniqueSize: { header: "UNIQUE SIZE", get: (r) => dfSize(r.size - r.shared) },
    Containers: { header: "CONTAINERS", get: (r) => String(r.containers) },
  };
}

function containerDfFields(now: number): Fields<ContainerUsage> {
  return {
    ID: { header: "CONTAINER ID", get: (c) => c.id.slice(0, 12) },
    Image: { header: "IMAGE", get: (c) => c.image },
    Size: { header: "SIZE", get: (c) => dfSize(c.size) },
    CreatedSince: {
      header: "CREATED",
      get: (c) => {
        const t = Date.parse(c.created);
        return Number.isNaN(t) ? "N/A" : `${humanDuration(now - t)} ago`;
      },
    },
    Status: { header: "STATUS", get: (c) => (c.mounted ? "Mounted" : "Created") },
    Names: { header: "NAMES", get: (c) => c.name },
  };
}

/** `system df -v`: the image rows (one per repository tag) and the container rows. */
export async function dfVerbose(store: Store): Promise<{ images: ImageDfRow[]; containers: ContainerUsage[] }> {
  const [rows, usage] = await Promise.all([imageRows(store), diskUsageVerbose(store)]);
  const images = rows.map((r) => ({ ...r, ...(usage.images.get(r.id) ?? { size: r.size, shared: 0, containers: 0 }) }));
  return { images, containers: usage.containers };
}

/**
 * `system df -v` output: docker's "Images space usage" and "Containers space usage" tables, or
 * with `json` one object {Images, Containers} whose sizes are exact byte counts.
 */
export function formatDfVerbose(v: { images: ImageDfRow[]; containers: ContainerUsage[] }, kind: "table" | "json", now = Date.now()): string {
  if (kind === "json") {
    return `${jsonSafe({
      Images: v.images.map((r) => ({ Repository: r.repository, Tag: r.tag, ID: r.id, CreatedAt: r.created, Size: r.size, SharedSize: r.shared, UniqueSize: r.size - r.shared, Containers: r.containers })),
      Containers: v.containers.map((c) => ({ ID: c.id, Names: c.name, Image: c.image, CreatedAt: c.created, Size: c.size, Status: c.mounted ? "Mounted" : "Created" })),
    })}\n`;
  }
  const images = formatRows(v.images, { kind: "table" }, imageDfFields(now), { table: IMAGE_DF_TABLE });
  const containers = formatRows(v.containers, { kind: "table" }, containerDfFields(now), { table: CONTAINER_DF_TABLE });
  return `Images space usage:\n\n${images}\nContainers space usage:\n\n${containers}`;
}
