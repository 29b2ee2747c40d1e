/**
 * Access rules: for a (user, repository) pair the first rule whose repository globs and user list
 * both match grants its actions; no matching rule grants nothing.
 *
 * Globs: `*` matches within one path component, `**` any number of components (zero included),
 * `${user}` the requesting user's name (never matches for anonymous requests).
 * Users: "anonymous" (no credentials), "*" (any authenticated user), a name, or "group:NAME".
 */
import type { AccessRule } from "../config.js";
import { type Action, ACTIONS } from "./scope.js";

interface CompiledRule {
  readonly patterns: readonly string[];
  readonly users: readonly string[];
  readonly actions: ReadonlySet<Action>;
  /** Regexes of patterns without ${user}, compiled once. */
  readonly fixed: readonly (RegExp | undefined)[];
}

const NONE: ReadonlySet<Action> = new Set();

/** Without explicit rules, authenticated users may do everything and anonymous requests nothing. */
export const DEFAULT_RULES: AccessRule[] = [{ repositories: ["**"], users: ["*"], actions: ["*"] }];

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&");
}

/** Compiles a repository glob; `${user}` is replaced by `user` (taken literally). */
export function globToRegExp(pattern: string, user?: string): RegExp {
  const segs = pattern.split("/");
  let out = "";
  let skipSep = false;
  segs.forEach((seg, i) => {
    if (seg === "**") {
      if (i === 0) {
        out += segs.length === 1 ? "[^/]+(?:/[^/]+)*" : "(?:[^/]+/)*";
        skipSep = true;
      } else {
        out += "(?:/[^/]+)*";
      }
      return;
    }
    if (i > 0 && !skipSep) out += "/";
    skipSep = false;
    out += seg
      .split("${user}")
      .map((part) => part.split("*").map(escape).join("[^/]*"))
      .join(escape(user ?? ""));
  });
  return new RegExp(`^${out}$`);
}

export class Policy {
  private readonly rules: CompiledRule[];
  private readonly perUser = new Map<string, RegExp>();

  constructor(
    rules: readonly AccessRule[] | undefined,
    private readonly groups: Readonly<Record<string, readonly string[]>> = {},
  ) {
    this.rules = (rules ?? DEFAULT_RULES).map((r) => ({
      patterns: r.repositories,
      users: r.users,
      actions: new Set(r.actions.includes("*") ? ACTIONS : (r.actions as Action[])),
      fixed: r.repositories.map((p) => (p.includes("${user}") ? undefined : globToRegExp(p))),
    }));
  }

  /** The actions `user` (undefined = anonymous) has on `repository`. */
  actions(user: string | undefined, repository: string): ReadonlySet<Action> {
    for (const [i, rule] of this.rules.entries()) {
      if (!this.userMatches(rule, user)) continue;
      if (rule.patterns.some((p, j) => this.patternMatches(i, j, p, rule.fixed[j], user, repository))) return rule.actions;
    }
    return NONE;
  }

  allows(user: string | undefined, repository: string, action: Action): boolean {
    return this.actions(user, repository).has(action);
  }

  private userMatches(rule: CompiledRule, user: string | undefined): boolean {
    for (const u of rule.users) {
      if (u === "anonymous") {
        if (user === undefined) return true;
      } else if (user === undefined) {
        continue;
      } else if (u === "*" || u === user) {
        return true;
      } else if (u.startsWith("group:") && this.groups[u.slice(6)]?.includes(user)) {
        return true;
      }
    }
    return false;
  }

  private patternMatches(i: number, j: number, pattern: string, fixed: RegExp | undefined, user: string | undefined, repository: string): boolean {
    if (fixed) return fixed.test(repository);
    if (user === undefined) return false;
    const key = `${i}\0${j}\0${user}`;
    let re = this.perUser.get(key);
    if (!re) {
      if (this.perUser.size > 10_000) this.perUser.clear();
      re = globToRegExp(pattern, user);
      this.perUser.set(key, re);
    }
    return re.test(repository);
  }
}
