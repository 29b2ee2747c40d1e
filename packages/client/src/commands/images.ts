/** `strata images`: a table like `docker images` (REPOSITORY TAG IMAGE ID CREATED SIZE). */
import { humanSize } from "../progress.js";
import { imageSize, listImages } from "../store/images.js";
import type { Store } from "../store/store.js";

export interface ImageRow {
  repository: string;
  tag: string;
  id: string;
  created: string;
  size: number;
}

/** Docker's "X ago" wording (go-units HumanDuration). */
export function humanDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 1) return "Less than a second";
  if (s === 1) return "1 second";
  if (s < 60) return `${s} seconds`;
  const m = Math.round(s / 60);
  if (m === 1) return "About a minute";
  if (m < 60) return `${m} minutes`;
  const h = Math.round(s / 3600);
  if (h === 1) return "About an hour";
  if (h < 48) return `${h} hours`;
  if (h < 24 * 7 * 2) return `${Math.floor(h / 24)} days`;
  if (h < 24 * 30 * 2) return `${Math.floor(h / 24 / 7)} weeks`;
  if (h < 24 * 365 * 2) return `${Math.floor(h / 24 / 30)} months`;
  return `${Math.floor(h / 24 / 365)} years`;
}

export async function imageRows(store: Store): Promise<ImageRow[]> {
  const rows: (ImageRow & { t: number })[] = [];
  for (const img of await listImages(store)) {
    const size = await imageSize(store, img);
    const created = img.config.config.created;
    const t = created ? Date.parse(created) : Number.NaN;
    const base = { id: img.id, created: created ?? "", size, t: Number.isNaN(t) ? 0 : t };
    if (img.repoTags.length === 0) {
      const repo = img.repoDigests[0]?.split("@")[0] ?? "<none>";
      rows.push({ ...base, repository: repo, tag: "<none>" });
    }
    for (const rt of img.repoTags) {
      const colon = rt.lastIndexOf(":");
      rows.push({ ...base, repository: rt.slice(0, colon), tag: rt.slice(colon + 1) });
    }
  }
  rows.sort((a, b) => b.t - a.t || a.repository.localeCompare(b.repository) || a.tag.localeCompare(b.tag));
  return rows.map(({ t: _t, ...r }) => r);
}

export function formatImageTable(rows: ImageRow[], now = Date.now()): string {
  const table = [["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]];
  for (const r of rows) {
    const t = Date.parse(r.created);
    table.push([r.repository, r.tag, r.id.slice(7, 19), Number.isNaN(t) ? "N/A" : `${humanDuration(now - t)} ago`, humanSize(r.size)]);
  }
  // docker's tabwriter: cell width = max(10, widest text + 3 padding); the last column unpadded
  const widths = table[0].map((_, c) => Math.max(10, Math.max(...table.map((row) => [...row[c]].length)) + 3));
  return table.map((row) => row.map((cell, c) => (c === row.length - 1 ? cell : cell + " ".repeat(widths[c] - [...cell].length))).join("")).join("\n");
}
