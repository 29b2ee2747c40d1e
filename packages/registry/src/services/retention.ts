/**
 * Tag policies from the configuration:
 * - retention: for a repository, the first rule whose globs match it makes the tags matching
 *   its `tags` regex candidates; of those, the `keepLast` most recently pushed and those pushed
 *   within `keepWithinDays` stay (either keeps a tag), the rest are deleted by the next GC run.
 *   The push time of a tag is the time its link was last written.
 * - immutability: a tag matched by a rule can be created, never moved or deleted. It is never
 *   a retention candidate either.
 */
import type { Digest } from "@strata/core";
import { globToRegExp } from "../auth/policy.js";
import type { ImmutableRule, RetentionRule } from "../config.js";
import type { TagPolicy } from "./gc.js";

interface Compiled<R> {
  readonly rule: R;
  readonly index: number;
  readonly repositories: RegExp[];
  readonly tags?: RegExp;
}

function compile<R extends { repositories: string[]; tags?: string }>(rules: readonly R[]): Compiled<R>[] {
  return rules.map((rule, index) => ({
    rule,
    index,
    repositories: rule.repositories.map((g) => globToRegExp(g)),
    tags: rule.tags === undefined ? undefined : new RegExp(rule.tags),
  }));
}

const matchesRepo = (c: Compiled<unknown>, repository: string) => c.repositories.some((r) => r.test(repository));

export class ImmutableTags {
  private readonly rules: Compiled<ImmutableRule>[];

  constructor(rules: readonly ImmutableRule[]) {
    this.rules = compile(rules);
  }

  get empty(): boolean {
    return this.rules.length === 0;
  }

  /** The rule (as text) that makes `repository:tag` immutable, or undefined. */
  ruleFor(repository: string, tag: string): string | undefined {
    const c = this.rules.find((r) => matchesRepo(r, repository) && (r.tags === undefined || r.tags.test(tag)));
    return c ? `immutable rule ${c.index + 1} (repositories ${c.rule.repositories.join(", ")}${c.rule.tags ? `, tags ${c.rule.tags}` : ""})` : undefined;
  }
}

const DAY_MS = 24 * 3600 * 1000;

export class RetentionPolicy implements TagPolicy {
  private readonly rules: Compiled<RetentionRule>[];

  constructor(
    rules: readonly RetentionRule[],
    private readonly immutable: ImmutableTags,
  ) {
    this.rules = compile(rules);
  }

  get empty(): boolean {
    return this.rules.length === 0;
  }

  expired(repository: string, tags: { tag: string; digest: Digest; pushedAt: Date }[], now: Date): { tag: string; reason: string }[] {
    const c = this.rules.find((r) => matchesRepo(r, repository));
    if (!c) return [];
    const { keepLast, keepWithinDays } = c.rule;
    const candidates = tags
      .filter((t) => (c.tags === undefined || c.tags.test(t.tag)) && this.immutable.ruleFor(repository, t.tag) === undefined)
      .sort((a, b) => b.pushedAt.getTime() - a.pushedAt.getTime() || (a.tag < b.tag ? -1 : 1));
    const reason = `retention rule ${c.index + 1} (repositories ${c.rule.repositories.join(", ")}${keepLast !== undefined ? `, keepLast ${keepLast}` : ""}${keepWithinDays !== undefined ? `, keepWithinDays ${keepWithinDays}` : ""}${c.rule.tags ? `, tags ${c.rule.tags}` : ""})`;
    return candidates
      .filter((t, i) => {
        const byCount = keepLast !== undefined && i < keepLast;
        const byAge = keepWithinDays !== undefined && t.pushedAt.getTime() >= now.getTime() - keepWithinDays * DAY_MS;
        return !byCount && !byAge;
      })
      .map((t) => ({ tag: t.tag, reason }));
  }
}
