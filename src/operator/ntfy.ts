/**
 * Notifications to JC through ntfy (CONTRACT §6, §8; FACTS "ntfy").
 *
 * We always publish as JSON to `POST <server>/` rather than with headers:
 * Node's fetch refuses header values outside latin1, so an emoji or CJK title
 * would never leave this process, and the topic stays out of the URL (it is
 * the only password on a public server, so it must never reach an error
 * message or a log line).
 */

export interface NtfyTarget {
  server: string;
  topic: string;
  token?: string | undefined;
}

export type NtfyAction =
  | { action: "view"; label: string; url: string; clear?: boolean }
  | { action: "http"; label: string; url: string; method?: string; headers?: Record<string, string>; body?: string; clear?: boolean };

export interface Notification {
  title: string;
  message: string;
  priority?: 1 | 2 | 3 | 4 | 5;
  tags?: string[];
  click?: string;
  actions?: NtfyAction[];
}

export interface NotifyLog {
  warn(obj: Record<string, unknown>, msg: string): void;
  debug?(obj: Record<string, unknown>, msg: string): void;
}

export interface PublishOptions {
  /** Whole-request budget, connection included. Default 5000 ms. */
  timeoutMs?: number;
  /** Aborts the request early (e.g. on shutdown). */
  signal?: AbortSignal;
}

export interface NotifierOptions {
  /** Per-notification request budget. Default 5000 ms. */
  timeoutMs?: number;
  /** Notifications accepted less than this long after the previous one are dropped. Default 0 (off). */
  minIntervalMs?: number;
  /** At most this many requests in flight; more are dropped with a warning. Default 10. */
  maxPending?: number;
  /** Clock for the rate guard (tests). Default Date.now. */
  now?: () => number;
}

export interface Notifier {
  /** Fire and forget: returns at once, never throws, never leaves a rejection unhandled. */
  notify(n: Notification): void;
  /** Resolves once every notification in flight has settled. Never rejects. */
  flush(): Promise<void>;
}

export const DEFAULT_TIMEOUT_MS = 5000;
export const DEFAULT_MAX_PENDING = 10;
/** ntfy turns a message over 4,096 bytes into an attachment (FACTS). */
export const MAX_MESSAGE_BYTES = 4096;
/** Titles have no documented limit; keep them short enough for a phone. */
export const MAX_TITLE_BYTES = 1024;
export const MAX_ACTIONS = 3;

const TOPIC_RE = /^[-_A-Za-z0-9]{1,64}$/;
/** What an HTTP header value may hold without fetch throwing (and echoing it). */
const TOKEN_RE = /^[\x21-\x7e]+$/;
const ELLIPSIS = "…";

/** A failed publish. The message names neither the topic nor the token. */
export class NtfyPublishError extends Error {
  override readonly name = "NtfyPublishError";
  readonly status: number | undefined;
  readonly code: string | undefined;

  constructor(message: string, details: { status?: number; code?: string } = {}) {
    super(message);
    this.status = details.status;
    this.code = details.code;
  }
}

/** `https://ntfy.sh//` -> `https://ntfy.sh/`; a path prefix is kept. */
export function publishUrl(server: string): string {
  return `${server.trim().replace(/\/+$/, "")}/`;
}

/**
 * Cuts `text` so that its UTF-8 encoding is at most `maxBytes`, on a code
 * point boundary (never inside a surrogate pair), ending with "…" when cut.
 */
export function truncateUtf8(text: string, maxBytes: number): string {
  if (Buffer.byteLength(text, "utf8") <= maxBytes) return text;
  const budget = maxBytes - Buffer.byteLength(ELLIPSIS, "utf8");
  let used = 0;
  let out = "";
  for (const ch of text) {
    const size = Buffer.byteLength(ch, "utf8");
    if (used + size > budget) break;
    used += size;
    out += ch;
  }
  return out + ELLIPSIS;
}

/** Replaces every occurrence of the secrets in `text`. */
function redact(text: string, secrets: readonly (string | undefined)[]): string {
  let out = text;
  for (const secret of secrets) {
    if (secret !== undefined && secret.length > 0) out = out.split(secret).join("***");
  }
  return out;
}

function describeNetworkError(err: unknown): { detail: string; code: string | undefined } {
  if (!(err instanceof Error)) return { detail: String(err), code: undefined };
  // fetch wraps the socket error: TypeError("fetch failed", { cause: Error("connect ECONNREFUSED ...") })
  const cause: unknown = err.cause;
  if (cause instanceof Error) {
    const code = (cause as NodeJS.ErrnoException).code;
    return { detail: cause.message || code || err.message, code };
  }
  const code = (err as NodeJS.ErrnoException).code;
  return { detail: err.message, code };
}

/** The JSON body ntfy expects on `POST /`; undefined fields are left out. */
export function buildPublishBody(topic: string, n: Notification): Record<string, unknown> {
  return {
    topic,
    message: truncateUtf8(n.message, MAX_MESSAGE_BYTES),
    title: truncateUtf8(n.title, MAX_TITLE_BYTES),
    priority: n.priority,
    tags: n.tags && n.tags.length > 0 ? n.tags : undefined,
    click: n.click,
    actions: n.actions && n.actions.length > 0 ? n.actions.slice(0, MAX_ACTIONS) : undefined,
  };
}

/** The `error` field of an ntfy error body (`{"code":40001,"http":400,"error":"..."}`), if any. */
function ntfyErrorText(body: string): string | undefined {
  try {
    const parsed: unknown = JSON.parse(body);
    if (typeof parsed === "object" && parsed !== null && "error" in parsed) {
      const e = (parsed as { error: unknown }).error;
      if (typeof e === "string" && e.length > 0) return e.slice(0, 200);
    }
  } catch {
    // not JSON: ignore
  }
  return undefined;
}

/**
 * Publishes one notification. Resolves once ntfy answered 2xx; otherwise
 * throws an NtfyPublishError ("ntfy publish failed: HTTP 500", "... timed out
 * after 5000 ms", "... connect ECONNREFUSED 127.0.0.1:1234") that names
 * neither the topic nor the token.
 */
export async function publish(target: NtfyTarget, n: Notification, opts: PublishOptions = {}): Promise<void> {
  const secrets = [target.topic, target.token];
  const fail = (detail: string, details: { status?: number; code?: string } = {}): NtfyPublishError =>
    new NtfyPublishError(`ntfy publish failed: ${redact(detail, secrets)}`, details);

  if (!TOPIC_RE.test(target.topic)) throw fail("invalid topic name (expected [-_A-Za-z0-9]{1,64})");
  if (target.token !== undefined && target.token !== "" && !TOKEN_RE.test(target.token)) {
    throw fail("access token contains characters not allowed in an HTTP header");
  }
  let url: string;
  try {
    url = new URL(publishUrl(target.server)).toString();
  } catch {
    throw fail("invalid server URL");
  }

  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const timeout = AbortSignal.timeout(timeoutMs);
  const signal = opts.signal ? AbortSignal.any([timeout, opts.signal]) : timeout;
  const headers: Record<string, string> = { "Content-Type": "application/json" };
  if (target.token) headers["Authorization"] = `Bearer ${target.token}`;

  const abortedError = (): NtfyPublishError =>
    timeout.aborted
      ? fail(`timed out after ${timeoutMs} ms`, { code: "ETIMEDOUT" })
      : fail("aborted", { code: "ABORT_ERR" });

  let res: Response;
  try {
    res = await fetch(url, {
      method: "POST",
      headers,
      body: JSON.stringify(buildPublishBody(target.topic, n)),
      signal,
    });
  } catch (err) {
    if (signal.aborted) throw abortedError();
    const { detail, code } = describeNetworkError(err);
    throw fail(detail, code === undefined ? {} : { code });
  }

  let text = "";
  try {
    // Always drain the body so the connection can be reused.
    text = await res.text();
  } catch (err) {
    if (res.ok) {
      if (signal.aborted) throw abortedError();
      const { detail, code } = describeNetworkError(err);
      throw fail(detail, code === undefined ? {} : { code });
    }
  }
  if (!res.ok) {
    const reason = ntfyErrorText(text);
    throw fail(`HTTP ${res.status}${reason ? ` (${reason})` : ""}`, { status: res.status });
  }
}

/**
 * A fire-and-forget notifier for the main loop: ntfy being down or slow
 * never delays or breaks the caller (CONTRACT §8). With `target` null (ntfy
 * not configured) every notification is a debug log line and nothing else.
 */
export function createNotifier(target: NtfyTarget | null, log: NotifyLog, opts: NotifierOptions = {}): Notifier {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const minIntervalMs = opts.minIntervalMs ?? 0;
  const maxPending = opts.maxPending ?? DEFAULT_MAX_PENDING;
  const now = opts.now ?? Date.now;
  const inFlight = new Set<Promise<void>>();
  let lastAcceptedAt: number | undefined;
  const secrets = target ? [target.topic, target.token] : [];

  const safe = (fn: () => void): void => {
    try {
      fn();
    } catch {
      // a broken logger must not break the caller either
    }
  };
  const warn = (obj: Record<string, unknown>, msg: string): void => safe(() => log.warn(obj, msg));
  const debug = (obj: Record<string, unknown>, msg: string): void => safe(() => log.debug?.(obj, msg));

  function notify(n: Notification): void {
    try {
      const title = typeof n.title === "string" ? redact(n.title, secrets).slice(0, 120) : "";
      if (target === null) {
        debug({ title }, "ntfy not configured; notification skipped");
        return;
      }
      if (inFlight.size >= maxPending) {
        warn({ title, pending: inFlight.size }, "ntfy notification dropped: too many in flight");
        return;
      }
      const t = now();
      if (minIntervalMs > 0 && lastAcceptedAt !== undefined && t - lastAcceptedAt < minIntervalMs) {
        warn({ title, minIntervalMs }, "ntfy notification dropped: rate guard");
        return;
      }
      lastAcceptedAt = t;
      if (n.actions && n.actions.length > MAX_ACTIONS) {
        debug({ title, actions: n.actions.length }, `ntfy allows ${MAX_ACTIONS} actions; extra ones left out`);
      }

      let started: Promise<void>;
      try {
        started = publish(target, n, { timeoutMs });
      } catch (err) {
        started = Promise.reject(err);
      }
      const p: Promise<void> = started
        .then(
          () => debug({ title }, "ntfy notification sent"),
          (err: unknown) => {
            const error = redact(err instanceof Error ? err.message : String(err), secrets);
            const status = err instanceof NtfyPublishError ? err.status : undefined;
            warn({ title, error, ...(status === undefined ? {} : { status }) }, "ntfy notification failed");
          },
        )
        .finally(() => {
          inFlight.delete(p);
        });
      inFlight.add(p);
    } catch (err) {
      warn({ error: redact(err instanceof Error ? err.message : String(err), secrets) }, "ntfy notification failed");
    }
  }

  async function flush(): Promise<void> {
    while (inFlight.size > 0) {
      await Promise.allSettled([...inFlight]);
    }
  }

  return { notify, flush };
}
