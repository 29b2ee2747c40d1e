/**
 * Types shared by the registry client and its transport (rawhttp.ts): response headers and the
 * per-request limits.
 */

/**
 * Response headers by lower-case name (repeated headers joined with ", "). The global `Headers`
 * would do, but creating the first one loads undici (~40 ms), in every thread.
 */
export class ResponseHeaders {
  private readonly map = new Map<string, string>();

  append(name: string, value: string): void {
    const k = name.toLowerCase();
    const old = this.map.get(k);
    this.map.set(k, old === undefined ? value : `${old}, ${value}`);
  }

  get(name: string): string | null {
    return this.map.get(name.toLowerCase()) ?? null;
  }
}

/** The minimum-throughput rule for a body: fewer than `bytesPerSec` on average over `windowMs` fails. */
export interface MinRate {
  bytesPerSec: number;
  windowMs: number;
}

export interface HttpRequestOptions {
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Socket idle timeout (ms): no byte sent or received for this long fails with ETIMEDOUT. */
  idleTimeoutMs?: number;
  /** The final response head must arrive within this long (ms) of the request; interim 1xx responses do not extend it. */
  headerTimeoutMs?: number;
  /** The whole exchange, redirects and body included, must end within this long (ms). */
  totalTimeoutMs?: number;
  /** The minimum-throughput rule for the body (ETIMEDOUT below it). */
  minRate?: MinRate;
}
