/**
 * Pull and push progress. The pull pipeline and the copy (push) emit `ProgressEvent`s; a reporter
 * renders them:
 * - `TtyProgress`: one cli-progress bar per layer, like `docker pull` / `docker push` on a terminal
 *   (Waiting / Downloading or Pushing bytes+rate / Extracting / Pull complete / Pushed /
 *   Already exists / Layer already exists / Mounted from REPO);
 * - `PlainProgress`: one line per layer status change (non-TTY);
 * - `silentProgress`: nothing (--quiet, --format json).
 */
import { createRequire } from "node:module";
import type cliProgress from "cli-progress";
import { terminalSafe } from "./terminal.js";

export type LayerStatus =
  | "waiting"
  | "downloading"
  | "extracting"
  | "complete"
  | "exists"
  | "failed"
  // push and copy
  | "preparing"
  | "pushing"
  | "pushed"
  | "copying"
  | "copied"
  | "layer-exists"
  | "mounted";

export type ProgressEvent =
  | { type: "start"; reference: string; repository: string; tagOrDigest: string }
  | { type: "layers"; layers: { id: string; size: number; exists: boolean }[] }
  /** `from`: the repository a mounted layer came from. */
  | { type: "layer"; id: string; status: LayerStatus; current?: number; total?: number; from?: string }
  | { type: "resume"; id: string; offset: number }
  /** A line of its own ("The push refers to repository [...]"). */
  | { type: "message"; text: string };

export type PullEvent = ProgressEvent;

export interface ProgressReporter {
  event(e: ProgressEvent): void;
  /** Stops rendering (bars are left on screen). */
  stop(): void;
}

/** The 12-hex short form Docker prints for a blob digest. */
export function shortId(digest: string): string {
  return digest.slice(digest.indexOf(":") + 1, digest.indexOf(":") + 13);
}

const STATUS_TEXT: Record<LayerStatus, string> = {
  waiting: "Waiting",
  downloading: "Downloading",
  extracting: "Extracting",
  complete: "Pull complete",
  exists: "Already exists",
  failed: "Failed",
  preparing: "Preparing",
  pushing: "Pushing",
  pushed: "Pushed",
  copying: "Copying",
  copied: "Copied",
  "layer-exists": "Layer already exists",
  mounted: "Mounted from",
};

/** Statuses shown with a bar of bytes and a rate. */
const WITH_BAR = new Set<LayerStatus>(["downloading", "pushing", "copying"]);

/** The status as shown: "Mounted from REPO" names the repository. */
function statusText(status: LayerStatus, from?: string): string {
  return status === "mounted" && from ? `${STATUS_TEXT.mounted} ${from}` : STATUS_TEXT[status];
}

/** Docker's decimal human size, `digits` significant digits ("205kB", "5.57MB" with 3). */
export function humanSize(bytes: number, digits = 3): string {
  const units = ["B", "kB", "MB", "GB", "TB", "PB"];
  let v = bytes;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${Number.parseFloat(v.toPrecision(digits))}${units[i]}`;
}

export const silentProgress: ProgressReporter = { event() {}, stop() {} };

/** The event with every text field terminal safe (names and tags come from the user or a registry). */
function safe(e: ProgressEvent): ProgressEvent {
  switch (e.type) {
    case "start":
      return { ...e, reference: terminalSafe(e.reference), repository: terminalSafe(e.repository), tagOrDigest: terminalSafe(e.tagOrDigest) };
    case "layers":
      return { ...e, layers: e.layers.map((l) => ({ ...l, id: terminalSafe(l.id) })) };
    case "message":
      return { ...e, text: terminalSafe(e.text) };
    case "layer":
      return { ...e, id: terminalSafe(e.id), ...(e.from !== undefined ? { from: terminalSafe(e.from) } : {}) };
    default:
      return { ...e, id: terminalSafe(e.id) };
  }
}

export class PlainProgress implements ProgressReporter {
  private readonly last = new Map<string, LayerStatus>();
  constructor(private readonly out: NodeJS.WritableStream = process.stdout) {}
  event(raw: ProgressEvent): void {
    const e = safe(raw);
    switch (e.type) {
      case "start":
        this.out.write(`${e.tagOrDigest}: Pulling from ${e.repository}\n`);
        break;
      case "message":
        this.out.write(`${e.text}\n`);
        break;
      case "layers":
        for (const l of e.layers) {
          if (l.exists) this.set(l.id, "exists");
          else this.out.write(`${l.id}: Pulling fs layer\n`);
        }
        break;
      case "layer":
        this.set(e.id, e.status, e.from);
        break;
      case "resume":
        this.out.write(`${e.id}: Resuming download at ${humanSize(e.offset)}\n`);
        break;
    }
  }
  private set(id: string, status: LayerStatus, from?: string): void {
    if (this.last.get(id) === status) return;
    this.last.set(id, status);
    if (status === "waiting") return;
    this.out.write(`${id}: ${statusText(status, from)}\n`);
  }
  stop(): void {}
}

export class TtyProgress implements ProgressReporter {
  private readonly multi: cliProgress.MultiBar;
  private readonly bars = new Map<string, cliProgress.SingleBar>();
  private readonly started = new Map<string, number>();

  constructor(stream: NodeJS.WritableStream = process.stdout) {
    // loaded when bars are drawn (about 20 files a run without a terminal does not need)
    const bars = createRequire(import.meta.url)("cli-progress") as typeof cliProgress;
    this.multi = new bars.MultiBar(
      {
        stream,
        format: (_opts, params, payload: { id: string; status: string; detail: string; showBar: boolean }) => {
          if (!payload.showBar) return `${payload.id}: ${payload.status}${payload.detail ? ` ${payload.detail}` : ""}`;
          const width = 40;
          const filled = Math.round(params.progress * width);
          const bar = `[${"=".repeat(Math.max(0, filled - 1))}${filled > 0 ? ">" : ""}${" ".repeat(width - filled)}]`;
          return `${payload.id}: ${payload.status} ${bar} ${payload.detail}`;
        },
        hideCursor: true,
        clearOnComplete: false,
        stopOnComplete: false,
        fps: 8,
        forceRedraw: false,
      },
      bars.Presets.legacy,
    );
  }

  private bar(id: string, total: number): cliProgress.SingleBar {
    let b = this.bars.get(id);
    if (!b) {
      b = this.multi.create(Math.max(1, total), 0, { id, status: "Waiting", detail: "", showBar: false });
      this.bars.set(id, b);
    }
    return b;
  }

  event(raw: ProgressEvent): void {
    const e = safe(raw);
    switch (e.type) {
      case "start":
        this.multi.log(`${e.tagOrDigest}: Pulling from ${e.repository}\n`);
        break;
      case "message":
        this.multi.log(`${e.text}\n`);
        break;
      case "layers":
        for (const l of e.layers) {
          const b = this.bar(l.id, l.size);
          b.update(0, { id: l.id, status: l.exists ? "Already exists" : "Waiting", detail: "", showBar: false });
        }
        break;
      case "layer": {
        const b = this.bar(e.id, e.total ?? 1);
        if (WITH_BAR.has(e.status)) {
          if (!this.started.has(e.id)) this.started.set(e.id, Date.now());
          const cur = e.current ?? 0;
          const total = e.total ?? 0;
          const secs = Math.max(0.001, (Date.now() - this.started.get(e.id)!) / 1000);
          if (total > 0) b.setTotal(total);
          // an unknown total (a layer compressed on the way): bytes and rate, no bar
          const of = total > 0 ? `/${humanSize(total)}` : "";
          b.update(cur, { id: e.id, status: STATUS_TEXT[e.status], detail: `${humanSize(cur)}${of} ${humanSize(cur / secs)}/s`, showBar: total > 0 });
        } else {
          b.update(e.status === "complete" || e.status === "pushed" || e.status === "copied" ? b.getTotal() : b.getProgress() * b.getTotal(), {
            id: e.id,
            status: statusText(e.status, e.from),
            detail: "",
            showBar: false,
          });
        }
        break;
      }
      case "resume":
        this.multi.log(`${e.id}: resuming download at ${humanSize(e.offset)}\n`);
        break;
    }
  }

  stop(): void {
    this.multi.stop();
  }
}
