/**
 * Health of the registry's dependencies (storage, and Redis in a fleet), for /healthz and
 * /readyz. Each check must answer within a deadline; a check that fails or is late reports
 * its cause. Concurrent callers share one probe, so a storm of health requests does not
 * multiply the load on a struggling dependency. A dependency going down or coming back is
 * logged once per transition.
 */
import type { Logger } from "pino";
import { isNotFound, type StorageDriver } from "../storage/driver.js";
import { ROOT } from "../storage/paths.js";

/** Resolves when the dependency answered; rejects with the cause otherwise. */
export type Check = (signal: AbortSignal) => Promise<void>;

export interface CheckResult {
  readonly status: "ok" | "unavailable";
  /** Why the check failed (never credentials). */
  readonly error?: string;
  readonly ms: number;
}

export interface HealthReport {
  readonly ok: boolean;
  readonly checks: Readonly<Record<string, CheckResult>>;
  /** Date.now() when the probe finished. */
  readonly at: number;
}

export class Health {
  private inflight: Promise<HealthReport> | undefined;
  private readonly down = new Set<string>();

  constructor(
    private readonly checks: Readonly<Record<string, Check>>,
    private readonly deadlineMs: number,
    private readonly logger?: Logger,
  ) {}

  /** Runs every check now (joining a probe already under way). */
  probe(): Promise<HealthReport> {
    this.inflight ??= this.run().finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  private async run(): Promise<HealthReport> {
    const names = Object.keys(this.checks);
    const results = await Promise.all(names.map((n) => this.one(this.checks[n])));
    const checks: Record<string, CheckResult> = {};
    names.forEach((n, i) => {
      checks[n] = results[i];
      const failing = results[i].status !== "ok";
      if (failing && !this.down.has(n)) {
        this.logger?.error({ dependency: n, err: results[i].error }, `${n} unavailable: requests that need it answer 503 until it recovers`);
      }
      if (!failing && this.down.has(n)) this.logger?.info({ dependency: n }, `${n} available again`);
      if (failing) this.down.add(n);
      else this.down.delete(n);
    });
    return { ok: results.every((r) => r.status === "ok"), checks, at: Date.now() };
  }

  private async one(check: Check): Promise<CheckResult> {
    const t0 = Date.now();
    const ac = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const e = new Error(`no answer within ${this.deadlineMs} ms`);
        ac.abort(e);
        reject(e);
      }, this.deadlineMs);
    });
    try {
      await Promise.race([check(ac.signal), late]);
      return { status: "ok", ms: Date.now() - t0 };
    } catch (e) {
      return { status: "unavailable", error: describe(e), ms: Date.now() - t0 };
    } finally {
      clearTimeout(timer);
      late.catch(() => {});
    }
  }
}

/** A one-line cause: the error's message, and the underlying error's when it adds one. */
export function describe(e: unknown): string {
  const err = e as Error & { cause?: unknown };
  const msg = err?.message ?? String(e);
  const cause = err?.cause as Error | undefined;
  return cause?.message && !msg.includes(cause.message) ? `${msg} (${cause.message})` : msg;
}

/**
 * Storage answers when a stat of the registry's root reaches it (an empty registry has no
 * root yet: not found is an answer). With `createBucket`, a missing bucket is created.
 */
export function storageCheck(driver: StorageDriver, createBucket?: () => Promise<void>): Check {
  return async (signal) => {
    try {
      await driver.stat(ROOT, signal);
    } catch (e) {
      if (isNotFound(e)) return;
      if (createBucket && (e as { cause?: { name?: string } }).cause?.name === "NoSuchBucket") return createBucket();
      throw e;
    }
  };
}
