/**
 * Text on its way to a terminal. Everything the CLI prints may carry bytes from the network
 * (registry error messages, manifest fields, image names and tags, labels and history from
 * configs), so it passes through `terminalSafe`: C0 controls (ESC, BEL, CR, TAB, ...), DEL, C1
 * controls (U+0080-U+009F, e.g. the 8-bit CSI) and the Unicode bidi controls (embeddings,
 * overrides, isolates, marks) are shown as escapes (`\x1b`, `\u202e`) instead of being acted upon.
 * `print`/`printError` are the CLI's only ways out; JSON output stays valid JSON (`jsonSafe`).
 */

// C0 except TAB and LF (kept between fields and lines made safe one by one), DEL, C1, ALM,
// LRM/RLM, LRE..RLO, LRI..PDI.
const UNSAFE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
const UNSAFE_OR_NEWLINE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
// What JSON.stringify leaves raw among the above (it escapes C0 itself).
const JSON_UNSAFE = /[\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

function escape(c: string): string {
  const n = c.charCodeAt(0);
  return n < 0x100 ? `\\x${n.toString(16).padStart(2, "0")}` : `\\u${n.toString(16).padStart(4, "0")}`;
}

/** One line of text safe to show on a terminal (newlines are escaped too). */
export function terminalSafe(s: string): string {
  return s.replace(UNSAFE_OR_NEWLINE, escape);
}

/** Several lines: each line made safe, the newlines (and tabs) between them kept. */
function terminalSafeLines(s: string): string {
  return s.replace(UNSAFE, escape);
}

/** JSON text that is also terminal safe (the characters JSON.stringify leaves raw become \u escapes). */
export function jsonSafe(value: unknown, indent?: number): string {
  return JSON.stringify(value, null, indent).replace(JSON_UNSAFE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/** Writes `text` (lines separated by \n) to stdout, every line terminal safe. */
export function print(text: string, stream: NodeJS.WritableStream = process.stdout): void {
  stream.write(terminalSafeLines(text));
}

/**
 * The CLI's error contract: `strata: <message>` on stderr, one line (newlines inside escaped,
 * except in an error marked `multiline`, whose message is several lines by design), and the exit
 * code the error carries (default 1).
 */
export function printError(e: unknown): number {
  const msg = e instanceof Error ? e.message : String(e);
  const text = (e as { multiline?: unknown })?.multiline === true ? terminalSafeLines(msg) : terminalSafe(msg);
  process.stderr.write(`strata: ${text}\n`);
  const code = (e as { exitCode?: unknown })?.exitCode;
  return typeof code === "number" ? code : 1;
}
