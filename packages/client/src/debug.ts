/**
 * Debug lines on stderr, when `STRATA_DEBUG` is set (to anything but "" or "0"). Callers pass
 * no secrets; the text is made terminal safe here, since it names hosts from the network.
 */
import { terminalSafe } from "./terminal.js";

export function debugEnabled(): boolean {
  const v = process.env.STRATA_DEBUG;
  return v !== undefined && v !== "" && v !== "0";
}

export function debug(message: string): void {
  if (debugEnabled()) process.stderr.write(`strata: debug: ${terminalSafe(message)}\n`);
}
