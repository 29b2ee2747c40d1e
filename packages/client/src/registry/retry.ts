/**
 * Bounded retries with exponential backoff. A retryable failure is a network error, a 5xx or a
 * 429; `Retry-After` (seconds or an HTTP date) overrides the computed delay, capped at `maxDelayMs`.
 */

export interface RetryPolicy {
  /** Total attempts including the first (default 5). */
  attempts: number;
  /** First backoff delay (default 200 ms); doubles each attempt. */
  baseDelayMs: number;
  /** Upper bound for one delay, including a server's Retry-After (default 10 s). */
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 5, baseDelayMs: 200, maxDelayMs: 10_000 };

/** An HTTP status that is worth retrying. */
export function isRetryableStatus(status: number): boolean {
  return status === 429 || (status >= 500 && status <= 599 && status !== 501 && status !== 505);
}

/** Parses a Retry-After header into milliseconds (undefined when absent or malformed). */
export function parseRetryAfter(value: string | null | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const t = Date.parse(v);
  if (Number.isNaN(t)) return undefined;
  return Math.max(0, t - now);
}

export function backoffDelay(policy: RetryPolicy, attempt: number, retryAfterMs?: number): number {
  if (retryAfterMs !== undefined) return Math.min(policy.maxDelayMs, retryAfterMs);
  const exp = policy.baseDelayMs * 2 ** attempt;
  const jitter = Math.random() * policy.baseDelayMs;
  return Math.min(policy.maxDelayMs, exp + jitter);
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason ?? new Error("aborted"));
      return;
    }
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal?.reason ?? new Error("aborted"));
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Whether an error thrown by fetch or a body read is a transient network failure. */
export function isNetworkError(e: unknown): boolean {
  if (!(e instanceof Error)) return false;
  if (e.name === "AbortError") return false;
  if (e.name === "TypeError" && /fetch failed|terminated|network/i.test(e.message)) return true;
  const code = (e as { code?: string }).code ?? (e.cause as { code?: string } | undefined)?.code;
  return (
    code !== undefined &&
    ["ECONNRESET", "ECONNREFUSED", "EPIPE", "ETIMEDOUT", "EAI_AGAIN", "UND_ERR_SOCKET", "UND_ERR_CLOSED", "UND_ERR_CONNECT_TIMEOUT", "ECONNABORTED"].includes(
      code,
    )
  );
}
