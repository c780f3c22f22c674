// Pure retry arithmetic for the machine: exponential back-off with full jitter.

export const BACKOFF_BASE_MS = 1_000;
export const BACKOFF_CAP_MS = 5 * 60_000;
/** How often a relay paused by a permanent failure tries the call again by itself. */
export const PROBE_INTERVAL_MS = 5 * 60_000;

/**
 * Delay before retry number `attempt` (1-based): a uniform draw in [0, min(cap, base * 2^(attempt-1))]
 * ("full jitter"), or exactly the server's `retry-after` when it sent one (bounded at an hour).
 */
export function backoffDelayMs(attempt: number, jitter: number, retryAfterMs?: number): number {
  if (retryAfterMs !== undefined && retryAfterMs >= 0) return Math.min(retryAfterMs, BACKOFF_CAP_MS * 12);
  const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** Math.max(0, attempt - 1));
  return Math.round(ceiling * Math.min(1, Math.max(0, jitter)));
}

/** The longest any deadline can be away: a retry-after (bounded above) or a probe. */
export const LONGEST_WAIT_MS = Math.max(BACKOFF_CAP_MS * 12, PROBE_INTERVAL_MS);
