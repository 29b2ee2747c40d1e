/**
 * Pull progress. The pull pipeline emits `PullEvent`s; a reporter renders them:
 * - `TtyProgress`: one cli-progress bar per layer, like `docker pull` on a terminal
 *   (Waiting / Downloading bytes+rate / Extracting / Pull complete / Already exists);
 * - `PlainProgress`: one line per layer status change (non-TTY);
 * - `silentProgress`: nothing (--quiet, --format json).
 */
import cliProgress from "cli-progress";
import { terminalSafe } from "./terminal.js";

export type LayerStatus = "waiting" | "downloading" | "extracting" | "complete" | "exists" | "failed";

export type PullEvent =
  | { type: "start"; reference: string; repository: string; tagOrDigest: string }
  | { type: "layers"; layers: { id: string; size: number; exists: boolean }[] }
  | { type: "layer"; id: string; status: LayerStatus; current?: number; total?: number }
  | { type: "resume"; id: string; offset: number };

export interface ProgressReporter {
  event(e: PullEvent): void;
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
};

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
function safe(e: PullEvent): PullEvent {
  switch (e.type) {
    case "start":
      return { ...e, reference: terminalSafe(e.reference), repository: terminalSafe(e.repository), tagOrDigest: terminalSafe(e.tagOrDigest) };
    case "layers":
      return { ...e, layers: e.layers.map((l) => ({ ...l, id: terminalSafe(l.id) })) };
    default:
      return { ...e, id: terminalSafe(e.id) };
  }
}

export class PlainProgress implements ProgressReporter {
  private readonly last = new Map<string, LayerStatus>();
  constructor(private readonly out: NodeJS.WritableStream = process.stdout) {}
  event(raw: PullEvent): void {
    const e = safe(raw);
    switch (e.type) {
      case "start":
        this.out.write(`${e.tagOrDigest}: Pulling from ${e.repository}\n`);
        break;
      case "layers":
        for (const l of e.layers) {
          if (l.exists) this.set(l.id, "exists");
          else this.out.write(`${l.id}: Pulling fs layer\n`);
        }
        break;
      case "layer":
        this.set(e.id, e.status);
        break;
      case "resume":
        this.out.write(`${e.id}: Resuming download at ${humanSize(e.offset)}\n`);
        break;
    }
  }
  private set(id: string, status: LayerStatus): void {
    if (this.last.get(id) === status) return;
    this.last.set(id, status);
    if (status === "waiting") return;
    this.out.write(`${id}: ${STATUS_TEXT[status]}\n`);
  }
  stop(): void {}
}

export class TtyProgress implements ProgressReporter {
  private readonly multi: cliProgress.MultiBar;
  private readonly bars = new Map<string, cliProgress.SingleBar>();
  private readonly started = new Map<string, number>();

  constructor(stream: NodeJS.WritableStream = process.stdout) {
    this.multi = new cliProgress.MultiBar(
      {
        stream,
        format: (_opts, params, payload: { id: string; status: string; detail: string; showBar: boolean }) => {
          if (!payload.showBar) return `${payload.id}: ${payload.status}`;
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
      cliProgress.Presets.legacy,
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

  event(raw: PullEvent): void {
    const e = safe(raw);
    switch (e.type) {
      case "start":
        this.multi.log(`${e.tagOrDigest}: Pulling from ${e.repository}\n`);
        break;
      case "layers":
        for (const l of e.layers) {
          const b = this.bar(l.id, l.size);
          b.update(0, { id: l.id, status: l.exists ? "Already exists" : "Waiting", detail: "", showBar: false });
        }
        break;
      case "layer": {
        const b = this.bar(e.id, e.total ?? 1);
        if (e.status === "downloading") {
          if (!this.started.has(e.id)) this.started.set(e.id, Date.now());
          const cur = e.current ?? 0;
          const total = e.total ?? 0;
          const secs = Math.max(0.001, (Date.now() - this.started.get(e.id)!) / 1000);
          if (total > 0) b.setTotal(total);
          b.update(cur, { id: e.id, status: "Downloading", detail: `${humanSize(cur)}/${humanSize(total)} ${humanSize(cur / secs)}/s`, showBar: true });
        } else {
          b.update(e.status === "complete" ? b.getTotal() : b.getProgress() * b.getTotal(), {
            id: e.id,
            status: STATUS_TEXT[e.status],
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
