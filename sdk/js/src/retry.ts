// When to retry and how long to wait (the same rules as the Python SDK):
// - 429 and 503 mean the gateway refused the call and did nothing: retried for every method,
//   after the server's Retry-After (or retry-after-ms) when sent, else exponential backoff.
// - A connection refused before the request was sent is retried for every method.
// - 502/504 and a connection lost after the body was sent may mean the call was done: retried
//   only for idempotent calls, or with `retryNonIdempotent: true`.

export const REFUSED = new Set([429, 503]);
export const MAYBE_DONE = new Set([502, 504]);

export interface RetryPolicy {
  maxRetries: number;
  initialBackoffMs: number;
  maxBackoffMs: number;
  maxRetryAfterMs: number;
  retryNonIdempotent: boolean;
}

export function backoffMs(policy: RetryPolicy, attempt: number): number {
  const ceiling = Math.min(policy.maxBackoffMs, policy.initialBackoffMs * 2 ** (attempt - 1));
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

/** Milliseconds before retry `attempt` (1-based) after an error status, or null: don't retry. */
export function delayForStatus(
  policy: RetryPolicy,
  attempt: number,
  status: number,
  idempotent: boolean,
  retryAfterS: number | null,
): number | null {
  if (attempt > policy.maxRetries) return null;
  if (REFUSED.has(status) || (MAYBE_DONE.has(status) && (idempotent || policy.retryNonIdempotent))) {
    if (retryAfterS !== null) return retryAfterS * 1000 <= policy.maxRetryAfterMs ? retryAfterS * 1000 : null;
    return backoffMs(policy, attempt);
  }
  return null;
}

/** Milliseconds before retry `attempt` after a connection failure, or null. */
export function delayForConnection(policy: RetryPolicy, attempt: number, sent: boolean, idempotent: boolean): number | null {
  if (attempt > policy.maxRetries) return null;
  return !sent || idempotent || policy.retryNonIdempotent ? backoffMs(policy, attempt) : null;
}

/** Seconds from `retry-after-ms` (finer) or `retry-after` (seconds or an HTTP date). */
export function parseRetryAfter(headers: Headers, now: number = Date.now()): number | null {
  const ms = headers.get("retry-after-ms");
  if (ms && !Number.isNaN(Number(ms))) return Math.max(0, Number(ms) / 1000);
  const value = headers.get("retry-after");
  if (!value) return null;
  if (!Number.isNaN(Number(value))) return Math.max(0, Number(value));
  const when = Date.parse(value);
  return Number.isNaN(when) ? null : Math.max(0, (when - now) / 1000);
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
