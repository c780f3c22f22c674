/**
 * JC's answers from the phone: a subscriber to JC's private ntfy reply topic
 * (issue 6, item 5). Every message published there is handed to `onMessage`,
 * which takes it exactly like state/jc_input.txt (`@session-N: ...` included).
 *
 * Wire format (FACTS "ntfy"): `GET <server>/<topic>/json?since=<unix time>`
 * streams one JSON object a line, events `open`, `keepalive` (every 45 s by
 * default), `message` and `poll_request`. `since=<unix time>` is inclusive,
 * so a reconnect re-sends the newest message(s) already taken: they are
 * deduplicated by id.
 *
 * Exactly once, across restarts too. state/ntfy_replies.json holds
 *  - `firstStart`: the server's time (unix seconds) when this root first
 *    reached the reply topic; nothing published before it is ever taken;
 *  - `since`: the newest message time seen (first `firstStart`), used as
 *    `since=` on every (re)connect;
 *  - `ids`: the last 500 message ids already seen (taken or ignored);
 *  - `pending`: the message being handed to `onMessage` right now.
 *
 * First start: before the first stream, one `?poll=1&since=all` request
 * fetches whatever the server already holds for the topic; those ids are
 * recorded as seen (not taken) and the server's `Date` header becomes
 * `firstStart`. So a message published before the relay ever subscribed is
 * never taken, even one sent in the same second (which `since=` alone, with
 * its one-second resolution, could not tell apart), and the server's clock,
 * not ours, decides.
 *
 * Persist first, then deliver. A message's id is recorded (together with a
 * copy of the message in `pending`) BEFORE `onMessage` runs, and `pending`
 * is cleared once it resolved. A reconnect or a restart never hands a
 * recorded id over again from the stream. A crash while `onMessage` runs
 * leaves the message in `pending`: the next start hands it over again,
 * marked `redelivered: true`, before anything else. So JC's answer is never
 * lost (it does not even depend on the server still caching it), and it is
 * handed over twice only after a crash inside that one window; a consumer
 * that must not apply it twice checks `redelivered` (e.g. skips it when
 * state/jc_input.txt or its claim file already holds the same text).
 * Recording after `onMessage` instead would give the same at-least-once
 * result but lean on the server's 12-hour cache for the retry.
 *
 * `onMessage` rejecting is taken as a transient failure (e.g. an earlier JC
 * answer not read yet): it is retried with back-off, up to
 * `maxDeliveryAttempts` times, then dropped with an error in the log. A
 * consumer that refuses a message for good (an unknown session, say) should
 * resolve, after telling JC, rather than reject.
 *
 * The topic is the only password on a public server, the token a secret:
 * neither appears in a log line or an error message.
 */
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import * as z from "zod/mini";
import type { Logger } from "../runtime/log.js";
import { longGet, type LongGetResponse } from "./long-get.js";
import type { RelayPaths } from "../config/paths.js";
import { ensureDirs, readJsonFile, writeJsonAtomic } from "../store/files.js";

export interface ReplyMessage {
  /** ntfy's message id. */
  id: string;
  /** The message body: what JC typed (or an action button's `body`). */
  text: string;
  /** ntfy's publish time, unix seconds (server clock). */
  time: number;
  /** True when a crash may already have let `onMessage` take this message once. */
  redelivered?: boolean;
}

export interface ReplySubscriberOptions {
  server: string;
  topic: string;
  token?: string;
  paths: RelayPaths;
  log: Logger;
  onMessage: (m: { id: string; text: string; time: number; redelivered?: boolean }) => Promise<void>;
  signal: AbortSignal;
  backoff?: { initialMs?: number; maxMs?: number };
  /** A stream with no line at all (keepalives included) for this long is dead: reconnect. Default 2 x 45 s. */
  idleTimeoutMs?: number;
  /** Attempts at handing one message to `onMessage` before it is dropped. Default 10. */
  maxDeliveryAttempts?: number;
}

export const REPLIES_STATE_FILE = "ntfy_replies.json";
export const DEFAULT_INITIAL_BACKOFF_MS = 1_000;
export const DEFAULT_MAX_BACKOFF_MS = 60_000;
/** ntfy's default keepalive interval is 45 s; two missed ones mean the stream is dead. */
export const DEFAULT_IDLE_TIMEOUT_MS = 2 * 45_000;
export const DEFAULT_MAX_DELIVERY_ATTEMPTS = 10;
/** How many message ids are remembered. */
export const KEEP_IDS = 500;
/** A line longer than this is not ntfy talking (a message is at most 4,096 bytes). */
const MAX_LINE_CHARS = 1 << 20;

const TOPIC_RE = /^[-_A-Za-z0-9]{1,64}$/;
const TOKEN_RE = /^[\x21-\x7e]+$/;

export const repliesStatePath = (paths: RelayPaths): string => join(paths.state, REPLIES_STATE_FILE);

const PendingSchema = z.object({
  id: z.string().check(z.minLength(1)),
  text: z.string(),
  time: z.int().check(z.nonnegative()),
});

const StateSchema = z.object({
  version: z.literal(1),
  firstStart: z.int().check(z.nonnegative()),
  since: z.int().check(z.nonnegative()),
  ids: z.array(z.string()),
  pending: z.array(PendingSchema),
});
export type RepliesState = z.infer<typeof StateSchema>;

/** One line of the JSON stream. Unknown fields are dropped, unknown events ignored. */
const EventSchema = z.object({
  id: z.string().check(z.minLength(1)),
  time: z.int().check(z.nonnegative()),
  event: z.string(),
  message: z.optional(z.string()),
  title: z.optional(z.string()),
  tags: z.optional(z.array(z.string())),
  attachment: z.optional(z.looseObject({})),
});
type StreamEvent = z.infer<typeof EventSchema>;
type PendingMessage = z.infer<typeof PendingSchema>;

/**
 * The relay's own notifications (titles "relay: ...", "relay paused: ...";
 * or the `relay` tag) are not JC's answers, should one land on the reply topic.
 */
export function isRelayNotification(ev: { title?: string | undefined; tags?: string[] | undefined }): boolean {
  if (ev.title !== undefined && /^relay(:|\s+paused\b)/i.test(ev.title.trim())) return true;
  return (ev.tags ?? []).some((t) => t.toLowerCase() === "relay");
}

/** Exponential back-off with equal jitter: half of the capped step, plus up to as much again at random. */
export function backoffDelay(attempt: number, initialMs: number, maxMs: number, random: () => number = Math.random): number {
  const step = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  return Math.round(step / 2 + (random() * step) / 2);
}

class StreamError extends Error {
  override name = "StreamError";
}

export async function subscribeReplies(opts: ReplySubscriberOptions): Promise<void> {
  const { paths, signal, onMessage } = opts;
  const secrets = [opts.topic, opts.token].filter((s): s is string => typeof s === "string" && s.length > 0);
  const redact = (text: string): string => secrets.reduce((out, s) => out.split(s).join("***"), text);
  const describe = (err: unknown): string => {
    if (!(err instanceof Error)) return redact(String(err));
    const cause: unknown = err.cause;
    const detail = cause instanceof Error ? cause.message || err.message : err.message;
    return redact(detail);
  };
  const log = {
    info: (obj: Record<string, unknown>, msg: string) => opts.log.info(obj, msg),
    warn: (obj: Record<string, unknown>, msg: string) => opts.log.warn(obj, msg),
    error: (obj: Record<string, unknown>, msg: string) => opts.log.error(obj, msg),
    debug: (obj: Record<string, unknown>, msg: string) => opts.log.debug(obj, msg),
  };

  if (!TOPIC_RE.test(opts.topic)) throw new Error("ntfy reply topic is invalid (expected 1 to 64 characters from [-_A-Za-z0-9])");
  if (opts.token !== undefined && opts.token !== "" && !TOKEN_RE.test(opts.token)) {
    throw new Error("NTFY_TOKEN contains characters not allowed in an HTTP header");
  }
  let base: string;
  try {
    base = new URL(`${opts.server.trim().replace(/\/+$/, "")}/${opts.topic}/json`).toString();
  } catch {
    throw new Error("ntfy server URL is invalid");
  }
  const initialMs = opts.backoff?.initialMs ?? DEFAULT_INITIAL_BACKOFF_MS;
  const maxMs = Math.max(initialMs, opts.backoff?.maxMs ?? DEFAULT_MAX_BACKOFF_MS);
  const idleMs = opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  const maxAttempts = Math.max(1, opts.maxDeliveryAttempts ?? DEFAULT_MAX_DELIVERY_ATTEMPTS);
  const headers: Record<string, string> = { Accept: "application/x-ndjson" };
  if (opts.token) headers["Authorization"] = `Bearer ${opts.token}`;
  const file = repliesStatePath(paths);

  /** Sleeps unless aborted; false when the signal aborted. */
  const pause = async (ms: number): Promise<boolean> => {
    try {
      await sleep(ms, undefined, { signal });
      return true;
    } catch {
      return false;
    }
  };

  // --- state -------------------------------------------------------------

  // `state` is null until the first contact with the server (prime). It only
  // changes through `record` (written to disk first, adopted after) and
  // `settle` (adopted first, written after).
  let state: RepliesState | null = null;
  let seen = new Set<string>();
  const adopt = (s: RepliesState): void => {
    state = s;
    seen = new Set(s.ids);
  };

  const loaded = await readJsonFile(file, StateSchema);
  if (loaded.ok) adopt(loaded.value);
  else if (!loaded.missing) {
    // Starting over is the safe side: nothing older than the next first contact is taken.
    log.warn({ file, error: redact(loaded.error) }, "ntfy reply state unreadable; starting it afresh");
  }

  const persist = async (s: RepliesState): Promise<void> => {
    await ensureDirs(paths.state);
    await writeJsonAtomic(file, s);
  };

  const withId = (s: RepliesState, id: string, time: number): RepliesState => {
    const ids = s.ids.includes(id) ? s.ids : [...s.ids, id].slice(-KEEP_IDS);
    return { ...s, ids, since: Math.max(s.since, time) };
  };

  /** Records a seen message (and maybe a pending one): on disk first, so a failed write changes nothing. */
  const record = async (s: RepliesState, id: string, time: number, pending?: PendingMessage): Promise<RepliesState> => {
    const next = withId(s, id, time);
    if (pending) next.pending = [...s.pending, pending];
    await persist(next);
    adopt(next);
    return next;
  };

  /** Clears a delivered message from `pending`: in memory at once, on disk as soon as a write works. */
  const settle = async (id: string): Promise<void> => {
    if (state === null) return;
    const next = { ...state, pending: state.pending.filter((p) => p.id !== id) };
    adopt(next);
    try {
      await persist(next);
    } catch (err) {
      log.warn({ error: describe(err) }, "ntfy reply state not saved; the next write brings it up to date");
    }
  };

  // --- HTTP --------------------------------------------------------------

  const get = async (url: string, connSignal: AbortSignal): Promise<LongGetResponse> => {
    const res = await longGet(url, headers, connSignal);
    if (!res.ok) {
      await res.text().catch(() => "");
      const hint = res.status === 401 || res.status === 403 ? " (access refused: check NTFY_TOKEN)" : "";
      throw new StreamError(`HTTP ${res.status}${hint}`);
    }
    return res;
  };

  const parseLine = (line: string): StreamEvent | null => {
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch {
      return null;
    }
    const r = EventSchema.safeParse(json);
    return r.success ? r.data : null;
  };

  /** `?poll=1`: the cached messages, all at once, without an open event. */
  const poll = async (since: string): Promise<{ events: StreamEvent[]; serverTime: number | null }> => {
    const conn = new AbortController();
    const timer = setTimeout(() => conn.abort(), idleMs);
    try {
      const res = await get(`${base}?poll=1&since=${encodeURIComponent(since)}`, AbortSignal.any([signal, conn.signal]));
      const text = await res.text();
      const date = Date.parse(res.headers.get("date") ?? "");
      const events = text
        .split("\n")
        .filter((l) => l.trim() !== "")
        .map(parseLine)
        .filter((e): e is StreamEvent => e !== null && e.event === "message");
      return { events, serverTime: Number.isNaN(date) ? null : Math.floor(date / 1000) };
    } catch (err) {
      if (conn.signal.aborted && !signal.aborted) throw new StreamError(`no answer within ${idleMs} ms`);
      throw err;
    } finally {
      clearTimeout(timer);
    }
  };

  /** First contact: whatever the topic already holds is seen, not taken. */
  const prime = async (): Promise<void> => {
    const { events, serverTime } = await poll("all");
    const newest = events.reduce((t, e) => Math.max(t, e.time), 0);
    const firstStart = Math.max(serverTime ?? Math.floor(Date.now() / 1000), newest);
    let s: RepliesState = { version: 1, firstStart, since: firstStart, ids: [], pending: [] };
    for (const e of [...events].sort((a, b) => a.time - b.time)) s = withId(s, e.id, e.time);
    await persist(s);
    adopt(s);
    log.info({ ignored: events.length }, "ntfy replies: first subscription; messages published before it are not taken");
  };

  // --- delivery ----------------------------------------------------------

  /** Hands one recorded message to onMessage; clears it from `pending` unless shutdown interrupted it. */
  const deliver = async (m: PendingMessage, redelivered: boolean): Promise<void> => {
    for (let attempt = 1; ; attempt++) {
      try {
        await onMessage(redelivered ? { ...m, redelivered: true } : { ...m });
        log.info({ id: m.id, ...(redelivered ? { redelivered } : {}) }, "ntfy reply taken as JC input");
        break;
      } catch (err) {
        if (signal.aborted) {
          log.warn({ id: m.id, error: describe(err) }, "ntfy reply not taken before shutdown; it is handed over again on the next start");
          return;
        }
        if (attempt >= maxAttempts) {
          log.error({ id: m.id, attempts: attempt, error: describe(err) }, "ntfy reply dropped: it could not be taken");
          break;
        }
        const delay = backoffDelay(attempt - 1, initialMs, maxMs);
        log.warn({ id: m.id, attempt, retryInMs: delay, error: describe(err) }, "ntfy reply could not be taken yet; retrying");
        if (!(await pause(delay))) return;
      }
    }
    await settle(m.id);
  };

  const handleMessage = async (s: RepliesState, ev: StreamEvent): Promise<void> => {
    if (seen.has(ev.id)) {
      log.debug({ id: ev.id }, "ntfy reply already seen; skipped");
      return;
    }
    if (ev.time < s.firstStart) {
      log.debug({ id: ev.id }, "ntfy reply older than the first subscription; skipped");
      return;
    }
    const text = ev.message ?? "";
    let ignored: string | null = null;
    if (isRelayNotification(ev)) ignored = "one of the relay's own notifications";
    else if (ev.attachment !== undefined) ignored = "an attachment (the message was over 4,096 bytes); send a shorter answer";
    else if (text.trim() === "") ignored = "empty";
    if (ignored !== null) {
      await record(s, ev.id, ev.time);
      log.warn({ id: ev.id, reason: ignored }, "ntfy reply ignored");
      return;
    }
    const m: PendingMessage = { id: ev.id, text, time: ev.time };
    await record(s, ev.id, ev.time, m);
    await deliver(m, false);
  };

  /** The state as it is now (set by prime before any stream starts). */
  const current = (): RepliesState => {
    if (state === null) throw new StreamError("reply state missing");
    return state;
  };

  // --- the stream --------------------------------------------------------

  /** One connection: resolves when the server ends it, rejects on any failure. */
  const stream = async (onOpen: () => void): Promise<void> => {
    const conn = new AbortController();
    let dead = false;
    let timer: NodeJS.Timeout | undefined;
    const arm = (): void => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        dead = true;
        conn.abort();
      }, idleMs);
    };
    const disarm = (): void => clearTimeout(timer);
    const connSignal = AbortSignal.any([signal, conn.signal]);
    arm();
    try {
      const res = await get(`${base}?since=${current().since}`, connSignal);
      if (res.body === null) throw new StreamError("empty response");
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let buf = "";
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        buf += decoder.decode(value, { stream: true });
        let nl: number;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          arm();
          if (line.trim() === "") continue;
          const ev = parseLine(line);
          if (ev === null) {
            log.debug({}, "ntfy replies: unreadable line skipped");
            continue;
          }
          if (ev.event === "open") {
            onOpen();
          } else if (ev.event === "message") {
            disarm();
            await handleMessage(current(), ev);
            if (signal.aborted) return;
            arm();
          } else if (ev.event === "poll_request") {
            disarm();
            const { events } = await poll(String(current().since));
            for (const e of events) {
              await handleMessage(current(), e);
              if (signal.aborted) return;
            }
            arm();
          }
          // keepalive (and anything newer) only proves the stream is alive
        }
        if (buf.length > MAX_LINE_CHARS) throw new StreamError("line too long");
      }
    } catch (err) {
      if (dead && !signal.aborted) throw new StreamError(`no data for ${idleMs} ms`);
      throw err;
    } finally {
      disarm();
      conn.abort();
    }
  };

  // --- the loop ----------------------------------------------------------

  let failures = 0;
  let connectedOnce = false;
  while (!signal.aborted) {
    let opened = false;
    let reason: string;
    try {
      if (state === null) await prime();
      for (const m of [...current().pending]) {
        await deliver(m, true);
        if (signal.aborted) return;
      }
      await stream(() => {
        opened = true;
        if (failures > 0 || !connectedOnce) log.info({}, "ntfy replies: subscribed");
        connectedOnce = true;
        failures = 0;
      });
      reason = "the server ended the stream";
    } catch (err) {
      if (signal.aborted) break;
      reason = err instanceof StreamError ? err.message : describe(err);
    }
    if (signal.aborted) break;
    const attempt = opened ? 0 : failures++;
    const delay = backoffDelay(attempt, initialMs, maxMs);
    // The first failure of a streak, then every tenth, at warn; the rest at debug.
    const level = attempt === 0 || attempt % 10 === 0 ? "warn" : "debug";
    log[level]({ reason, attempt: attempt + 1, retryInMs: delay }, "ntfy replies: reconnecting");
    if (!(await pause(delay))) break;
  }
}
