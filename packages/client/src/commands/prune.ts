/** `strata image prune [--all]`: output like Docker's (deleted references, images and layers, then the bytes freed). */
import type { OutputFormat } from "../format.js";
import { dfSize } from "./df.js";
import type { PruneResult } from "../store/prune.js";
import { jsonSafe, terminalSafe } from "../terminal.js";

/** Docker's API shape: ImagesDeleted [{Untagged}|{Deleted}], SpaceReclaimed (bytes). */
export function pruneJson(r: PruneResult): unknown {
  return {
    ImagesDeleted: [...r.untagged.map((u) => ({ Untagged: u })), ...r.deletedImages.map((d) => ({ Deleted: d })), ...r.deletedLayers.map((d) => ({ Deleted: d }))],
    SpaceReclaimed: r.reclaimed,
  };
}

export function formatPrune(r: PruneResult, fmt: OutputFormat): string {
  if (fmt.kind === "json") return `${jsonSafe(pruneJson(r))}\n`;
  const lines: string[] = [];
  const items = [...r.untagged.map((u) => `untagged: ${terminalSafe(u)}`), ...[...r.deletedImages, ...r.deletedLayers].map((d) => `deleted: ${d}`)];
  if (items.length) lines.push("Deleted Images:", ...items, "");
  lines.push(`Total reclaimed space: ${dfSize(r.reclaimed)}`);
  return `${lines.join("\n")}\n`;
}
