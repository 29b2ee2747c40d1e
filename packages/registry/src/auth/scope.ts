/**
 * Scopes of distribution's token spec: `type:name:actions`, several per request (space
 * separated, and `scope` may repeat). Names may contain `host:port`, so the type ends at the
 * first ":" and the actions start after the last one. Malformed scopes are skipped, never fatal:
 * a token grants what it can.
 */
import { accessActions } from "../config.js";

export type Action = (typeof accessActions)[number];
export const ACTIONS: readonly Action[] = accessActions;

/** One entry of a token's `access` claim (and one requested scope). */
export interface ResourceActions {
  type: string;
  name: string;
  actions: string[];
}

/** The catalog scope docker and podman ask for. */
export const CATALOG_SCOPE: ResourceActions = { type: "registry", name: "catalog", actions: ["*"] };

const MAX_SCOPES = 64;

/** Parses every scope in `values` (each may hold several, space separated); at most 64 are kept. */
export function parseScopes(values: readonly string[]): ResourceActions[] {
  const out: ResourceActions[] = [];
  for (const v of values) {
    for (const s of v.split(" ")) {
      if (!s || out.length >= MAX_SCOPES) continue;
      const first = s.indexOf(":");
      const last = s.lastIndexOf(":");
      if (first <= 0 || last === first) continue;
      // "repository(plugin)" carries a resource class; the class does not change what is granted.
      const type = s.slice(0, first).replace(/\([a-z0-9]+\)$/, "");
      const name = s.slice(first + 1, last);
      const actions = [...new Set(s.slice(last + 1).split(",").filter((a) => a !== ""))];
      if (actions.length === 0) continue;
      // A name that is no valid repository (e.g. one naming host:port) is kept: it can never match a request.
      if (type === "repository" && name.length > 0 && name.length <= 512) out.push({ type, name, actions });
      else if (type === "registry" && name === "catalog") out.push({ type, name, actions });
    }
  }
  return out;
}

export function formatScope(r: ResourceActions): string {
  return `${r.type}:${r.name}:${r.actions.join(",")}`;
}

/** Actions a scope's list stands for ("*" = every action). */
export function expandActions(actions: readonly string[]): Action[] {
  if (actions.includes("*")) return [...ACTIONS];
  return ACTIONS.filter((a) => actions.includes(a));
}
