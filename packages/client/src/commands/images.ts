/** `strata images`: a table like `docker images` (REPOSITORY TAG IMAGE ID CREATED SIZE). */
import { type Fields, formatRows, type OutputFormat } from "../format.js";
import { humanSize } from "../progress.js";
import { imageSize, listImages } from "../store/images.js";
import type { Store } from "../store/store.js";

export interface ImageRow {
  repository: string;
  tag: string;
  id: string;
  created: string;
  size: number;
  /** The repository digest ("sha256:...") of this repository, when the image was pulled by it. */
  digest?: string;
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
    const digestOf = (repo: string) => img.repoDigests.find((d) => d.startsWith(`${repo}@`))?.slice(repo.length + 1);
    if (img.repoTags.length === 0) {
      const repo = img.repoDigests[0]?.split("@")[0] ?? "<none>";
      rows.push({ ...base, repository: repo, tag: "<none>", digest: digestOf(repo) });
    }
    for (const rt of img.repoTags) {
      const colon = rt.lastIndexOf(":");
      const repo = rt.slice(0, colon);
      rows.push({ ...base, repository: repo, tag: rt.slice(colon + 1), digest: digestOf(repo) });
    }
  }
  rows.sort((a, b) => b.t - a.t || a.repository.localeCompare(b.repository) || a.tag.localeCompare(b.tag));
  return rows.map(({ t: _t, digest, ...r }) => (digest ? { ...r, digest } : r));
}

/** Docker's CreatedAt form ("2006-01-02 15:04:05 +0000 UTC"). */
function createdAt(created: string): string {
  const t = Date.parse(created);
  return Number.isNaN(t) ? "N/A" : `${new Date(t).toISOString().slice(0, 19).replace("T", " ")} +0000 UTC`;
}

/** `--format` fields of `strata images` (Docker's names). */
export function imageFields(now = Date.now()): Fields<ImageRow> {
  return {
    ID: { header: "IMAGE ID", get: (r) => r.id.slice(7, 19) },
    Repository: { header: "REPOSITORY", get: (r) => r.repository },
    Tag: { header: "TAG", get: (r) => r.tag },
    Digest: { header: "DIGEST", get: (r) => r.digest ?? "<none>" },
    CreatedSince: {
      header: "CREATED",
      get: (r) => {
        const t = Date.parse(r.created);
        return Number.isNaN(t) ? "N/A" : `${humanDuration(now - t)} ago`;
      },
    },
    CreatedAt: { header: "CREATED AT", get: (r) => createdAt(r.created) },
    Size: { header: "SIZE", get: (r) => humanSize(r.size) },
  };
}

const IMAGES_TABLE = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";

/** The output of `strata images` in `fmt` (JSON rows are ImageRow objects). */
export function formatImages(rows: ImageRow[], fmt: OutputFormat, now = Date.now()): string {
  return formatRows(rows, fmt, imageFields(now), { table: IMAGES_TABLE, json: (r) => r });
}
