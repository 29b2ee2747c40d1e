/**
 * `--format` for the listing commands, as Docker's CLI reads it:
 * - `table` (the default): the command's table;
 * - `json`: one JSON object per row;
 * - a Go-template subset: text with `{{.Field}}` and `{{json .}}` / `{{json .Field}}` actions,
 *   `\t` and `\n` written as two characters become a tab and a newline; a leading `table `
 *   prints a header row and aligns the tab-separated cells like Docker's tabwriter (minimum
 *   width 10, padding 3). Field values are made terminal safe before they are placed.
 * Any other action, or an unknown field, is an error naming the fields the command has.
 */
import { jsonSafe, terminalSafe } from "./terminal.js";

export interface Field<R> {
  header: string;
  get(row: R): string;
}

export type Fields<R> = Record<string, Field<R>>;

type Part = string | { field: string; json: boolean } | { whole: true };

export type OutputFormat = { kind: "table" } | { kind: "json" } | { kind: "template"; table: boolean; parts: Part[] };

/** Parses a --format value against a command's fields; throws a one-line error when invalid. */
export function parseFormat<R>(format: string | undefined, fields: Fields<R>, command: string): OutputFormat {
  if (format === undefined || format === "table") return { kind: "table" };
  if (format === "json") return { kind: "json" };
  let text = format;
  const table = text.startsWith("table ");
  if (table) text = text.slice("table ".length);
  text = text.trim().replace(/\\t/g, "\t").replace(/\\n/g, "\n");
  const parts: Part[] = [];
  const known = () => Object.keys(fields).map((f) => `.${f}`).join(", ");
  let rest = text;
  while (rest.length > 0) {
    const open = rest.indexOf("{{");
    if (open < 0) {
      parts.push(rest);
      break;
    }
    if (open > 0) parts.push(rest.slice(0, open));
    const close = rest.indexOf("}}", open);
    if (close < 0) throw new Error(`--format: unclosed action in ${JSON.stringify(format)}`);
    const action = rest.slice(open + 2, close).trim();
    const m = /^(json\s+)?\.([A-Za-z][A-Za-z0-9]*)?$/.exec(action);
    if (!m) throw new Error(`--format: unsupported action {{${action}}} (${command} accepts {{.Field}}, {{json .}} and {{json .Field}}; fields: ${known()})`);
    if (m[2] === undefined) {
      if (!m[1]) throw new Error(`--format: {{.}} is not supported; use {{json .}} (fields: ${known()})`);
      parts.push({ whole: true });
    } else {
      if (!Object.hasOwn(fields, m[2])) throw new Error(`--format: ${command} has no field .${m[2]} (fields: ${known()})`);
      parts.push({ field: m[2], json: m[1] !== undefined });
    }
    rest = rest.slice(close + 2);
  }
  return { kind: "template", table, parts };
}

/** Docker's tabwriter (minwidth 10, padding 3): cells separated by tabs, the last cell of a line unpadded. */
function tabwrite(lines: string[][]): string {
  const widths: number[] = [];
  for (const cells of lines) {
    for (let c = 0; c < cells.length - 1; c++) widths[c] = Math.max(widths[c] ?? 10, [...cells[c]].length + 3);
  }
  return lines.map((cells) => cells.map((cell, c) => (c === cells.length - 1 ? cell : cell + " ".repeat(widths[c] - [...cell].length))).join("")).join("\n");
}

function jsonOfRow<R>(row: R, fields: Fields<R>): Record<string, string> {
  const o: Record<string, string> = {};
  for (const [k, f] of Object.entries(fields)) o[k] = f.get(row);
  return o;
}

/** Renders rows with a template format; each row becomes one line (or one table line). */
export function renderTemplate<R>(rows: readonly R[], fmt: Extract<OutputFormat, { kind: "template" }>, fields: Fields<R>): string {
  const render = (row: R | undefined): string =>
    fmt.parts
      .map((p) => {
        if (typeof p === "string") return p;
        if ("whole" in p) return row === undefined ? "" : jsonSafe(jsonOfRow(row, fields));
        if (row === undefined) return fields[p.field].header;
        const v = fields[p.field].get(row);
        return p.json ? jsonSafe(v) : terminalSafe(v);
      })
      .join("");
  const lines = rows.map((r) => render(r));
  if (!fmt.table) return lines.map((l) => `${l}\n`).join("");
  const table = [render(undefined), ...lines].join("\n").split("\n");
  return `${tabwrite(table.map((l) => l.split("\t")))}\n`;
}

/** Prints rows in `fmt`: the command's own table, one JSON object per row, or a template. */
export function formatRows<R>(rows: readonly R[], fmt: OutputFormat, fields: Fields<R>, opts: { table: string; json?: (row: R) => unknown }): string {
  if (fmt.kind === "json") return rows.map((r) => `${jsonSafe(opts.json ? opts.json(r) : jsonOfRow(r, fields))}\n`).join("");
  if (fmt.kind === "template") return renderTemplate(rows, fmt, fields);
  return renderTemplate(rows, parseFormat(opts.table, fields, "") as Extract<OutputFormat, { kind: "template" }>, fields);
}
