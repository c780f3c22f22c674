/**
 * A local stand-in for an ntfy server, speaking its wire formats closely
 * enough for the relay's tests (FACTS "ntfy"; docs.ntfy.sh publish and
 * subscribe/api). It binds 127.0.0.1 on an ephemeral port and never touches
 * the internet.
 *
 * Publishing: `PUT|POST /<topic>` (body = message; Title/X-Title/t,
 * Priority/X-Priority/prio/p, Tags/X-Tags/tag/ta, Click/X-Click,
 * Actions/X-Actions/action headers or query parameters; RFC 2047 encoded
 * words are decoded) and `PUT|POST /` with a JSON body
 * `{topic, message, title, priority, tags, click, actions}`. Answers 200 with
 * the stored message as JSON, like ntfy.
 *
 * Subscribing: `GET /<topic>[,<topic>...]/json` streams one JSON object per
 * line: an `open` event, cached messages selected by `since=` (all | none |
 * latest | <message id> | <unix time>, inclusive | <duration> such as 10m),
 * then new messages as they are published, and `keepalive` events every
 * `keepaliveMs` if set. `since=<unknown id>` returns every cached message, as
 * the real server does. `poll=1` sends the cached messages (all by default)
 * and closes, without an `open` event.
 */
import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";

export interface NtfyMessage {
  id: string;
  time: number;
  expires?: number;
  event: "message";
  topic: string;
  message: string;
  title?: string;
  priority?: number;
  tags?: string[];
  click?: string;
  actions?: unknown[];
  attachment?: { name: string; size: number; type?: string };
}

export type FakeNtfyMode = "ok" | "hang" | "error500";

export interface FakeNtfyRequest {
  method: string;
  path: string;
  headers: Record<string, string | undefined>;
}

export interface FakeNtfy {
  /** Base URL, e.g. http://127.0.0.1:41234 (no trailing slash). */
  url: string;
  /** Every message published, all topics, oldest first. */
  messages: NtfyMessage[];
  /** Publish directly (as if someone else had), notifying subscribers. */
  publish(topic: string, message: string, extra?: Partial<NtfyMessage>): NtfyMessage;
  /** Resolves with the messages once at least `n` were published; rejects after `timeoutMs` (default 2000). */
  waitForMessages(n: number, timeoutMs?: number): Promise<NtfyMessage[]>;
  setMode(m: FakeNtfyMode): void;
  /** Destroys every socket (hung requests and open subscriptions included) and stops listening. */
  close(): Promise<void>;
  /** Every request received, in every mode, in order. Path includes the query string. */
  requests: FakeNtfyRequest[];
}

export interface FakeNtfyOptions {
  /** Require `Authorization: Bearer <token>`: 403 without one, 401 with a wrong one. */
  requireToken?: string;
  /** Topics anyone may publish to without a token (ntfy's `ntfy access everyone TOPIC write-only`). */
  everyoneWrites?: string[];
  /** Interval of keepalive events on subscriptions; 0 or unset: none. */
  keepaliveMs?: number;
}

const TOPIC_RE = /^[-_A-Za-z0-9]{1,64}$/;
const MESSAGE_ID_RE = /^[A-Za-z0-9]{12}$/;
const MESSAGE_SIZE_LIMIT = 4096;
const CACHE_SECONDS = 12 * 3600;
const ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const PRIORITY_NAMES: Record<string, number> = {
  "1": 1, min: 1,
  "2": 2, low: 2,
  "3": 3, default: 3,
  "4": 4, high: 4,
  "5": 5, urgent: 5, max: 5,
};

class HttpError extends Error {
  constructor(
    readonly http: number,
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

function randomId(length: number): string {
  const bytes = randomBytes(length);
  let out = "";
  for (const b of bytes) out += ALPHABET[b % ALPHABET.length];
  return out;
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/** Decodes RFC 2047 encoded words (`=?UTF-8?B?...?=`, `=?UTF-8?Q?...?=`), which ntfy accepts in headers. */
function decodeRfc2047(value: string): string {
  return value.replace(/=\?([^?]+)\?([BbQq])\?([^?]*)\?=/g, (whole, charset: string, enc: string, text: string) => {
    if (!/^utf-?8$/i.test(charset)) return whole;
    if (enc.toUpperCase() === "B") return Buffer.from(text, "base64").toString("utf8");
    const bytes: number[] = [];
    for (let i = 0; i < text.length; i++) {
      const c = text[i] ?? "";
      if (c === "_") bytes.push(0x20);
      else if (c === "=" && /^[0-9A-Fa-f]{2}$/.test(text.slice(i + 1, i + 3))) {
        bytes.push(parseInt(text.slice(i + 1, i + 3), 16));
        i += 2;
      } else bytes.push(...Buffer.from(c, "utf8"));
    }
    return Buffer.from(bytes).toString("utf8");
  });
}

/** Node hands header values over as latin1; ntfy (Go) reads raw bytes as UTF-8. */
function headerText(value: string): string {
  return decodeRfc2047(Buffer.from(value, "latin1").toString("utf8"));
}

function parsePriority(value: string): number {
  const p = PRIORITY_NAMES[value.trim().toLowerCase()];
  if (p === undefined) throw new HttpError(400, 40007, "invalid priority");
  return p;
}

function parseTags(value: string): string[] {
  return value
    .split(",")
    .map((t) => t.trim())
    .filter((t) => t.length > 0);
}

type ActionRecord = Record<string, unknown> & { headers?: Record<string, string>; extras?: Record<string, string> };

/**
 * The "simple" Actions header format:
 * `view, Open, https://x; http, Approve, https://y, method=PUT, body=ok, clear=true`.
 * Positional sections are action, label and (for view/http) url; `key=value`
 * sections set the rest (headers.X=..., extras.X=...). Values may be quoted
 * with ' or " to hold commas and semicolons. A value starting with "[" is
 * parsed as the JSON array form.
 */
function parseActionsHeader(input: string): ActionRecord[] {
  const s = input.trim();
  if (s.startsWith("[")) {
    const parsed: unknown = JSON.parse(s);
    if (!Array.isArray(parsed)) throw new HttpError(400, 40018, "invalid actions");
    return parsed as ActionRecord[];
  }
  const actions: ActionRecord[] = [];
  let pos = 0;
  const isEnd = (c: string | undefined): boolean => c === undefined || c === "," || c === ";";
  const skipSpaces = (): void => {
    while (pos < s.length && /\s/.test(s[pos] ?? "")) pos++;
  };
  while (pos < s.length) {
    const action: ActionRecord = {};
    let section = 0;
    for (;;) {
      skipSpaces();
      let key = "";
      const keyMatch = /^([-.\w]+)\s*=\s*/.exec(s.slice(pos));
      if (keyMatch) {
        key = keyMatch[1] ?? "";
        pos += keyMatch[0].length;
      }
      let value: string;
      const c = s[pos];
      if (c === '"' || c === "'") {
        const start = ++pos;
        while (pos < s.length && !(s[pos] === c && s[pos - 1] !== "\\")) pos++;
        if (pos >= s.length) throw new HttpError(400, 40018, "invalid actions: unterminated quote");
        value = s.slice(start, pos).replace(new RegExp(`\\\\${c}`, "g"), c);
        pos++;
        skipSpaces();
        if (!isEnd(s[pos])) throw new HttpError(400, 40018, "invalid actions: unexpected character");
      } else {
        const start = pos;
        while (!isEnd(s[pos])) pos++;
        value = s.slice(start, pos).trim();
      }
      const terminator = s[pos];
      pos++; // past "," or ";" (or end)
      if (key === "" && section === 0) key = "action";
      else if (key === "" && section === 1) key = "label";
      else if (key === "" && section === 2 && (action["action"] === "view" || action["action"] === "http")) key = "url";
      if (key === "") throw new HttpError(400, 40018, `invalid actions: term '${value}' unknown`);
      if (key.startsWith("headers.")) (action.headers ??= {})[key.slice(8)] = value;
      else if (key.startsWith("extras.")) (action.extras ??= {})[key.slice(7)] = value;
      else if (key === "clear") {
        const v = value.toLowerCase();
        if (!["true", "yes", "1", "false", "no", "0"].includes(v)) {
          throw new HttpError(400, 40018, `invalid actions: 'clear=${value}' not allowed`);
        }
        action["clear"] = v === "true" || v === "yes" || v === "1";
      } else if (["action", "label", "url", "method", "body", "intent"].includes(key.toLowerCase())) {
        action[key.toLowerCase()] = value;
      } else throw new HttpError(400, 40018, `invalid actions: key '${key}' unknown`);
      section++;
      if (terminator === undefined || terminator === ";") break;
    }
    actions.push(action);
  }
  return actions;
}

/** Validates and normalizes actions the way ntfy does (ids, lower-case action, upper-case method, at most 3). */
function normalizeActions(raw: unknown): unknown[] {
  if (!Array.isArray(raw)) throw new HttpError(400, 40018, "invalid actions: not an array");
  if (raw.length > 3) throw new HttpError(400, 40018, "invalid actions: only 3 actions allowed");
  return raw.map((a: unknown) => {
    if (typeof a !== "object" || a === null) throw new HttpError(400, 40018, "invalid actions: not an object");
    const action = { ...(a as Record<string, unknown>) };
    const kind = typeof action["action"] === "string" ? action["action"].toLowerCase() : "";
    if (!["view", "http", "broadcast"].includes(kind)) throw new HttpError(400, 40018, `invalid actions: action '${kind}' unknown`);
    if (typeof action["label"] !== "string" || action["label"] === "") {
      throw new HttpError(400, 40018, "invalid actions: parameter 'label' is required");
    }
    if ((kind === "view" || kind === "http") && (typeof action["url"] !== "string" || action["url"] === "")) {
      throw new HttpError(400, 40018, `invalid actions: parameter 'url' is required for action '${kind}'`);
    }
    action["action"] = kind;
    if (typeof action["method"] === "string") action["method"] = action["method"].toUpperCase();
    return { id: randomId(10), ...action };
  });
}

function pickParam(req: IncomingMessage, query: URLSearchParams, names: string[]): string | undefined {
  for (const name of names) {
    const h = req.headers[name];
    const v = Array.isArray(h) ? h.join(", ") : h;
    if (v !== undefined && v !== "") return headerText(v);
  }
  for (const name of names) {
    const v = query.get(name);
    if (v !== null && v !== "") return v;
  }
  return undefined;
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text) });
  res.end(text);
}

function sendError(res: ServerResponse, e: HttpError): void {
  sendJson(res, e.http, { code: e.code, http: e.http, error: e.message, link: "https://ntfy.sh/docs/publish/" });
}

interface Subscription {
  topics: string[];
  res: ServerResponse;
  timer: NodeJS.Timeout | undefined;
}

export async function startFakeNtfy(opts: FakeNtfyOptions = {}): Promise<FakeNtfy> {
  const messages: NtfyMessage[] = [];
  const requests: FakeNtfyRequest[] = [];
  const sockets = new Set<Socket>();
  const subscriptions = new Set<Subscription>();
  const waiters = new Set<() => void>();
  let mode: FakeNtfyMode = "ok";

  function store(topic: string, message: string, extra: Partial<NtfyMessage> = {}): NtfyMessage {
    const time = extra.time ?? nowSeconds();
    const m: NtfyMessage = {
      id: randomId(12),
      time,
      expires: time + CACHE_SECONDS,
      event: "message",
      topic,
      message,
      ...extra,
    };
    // Like ntfy, a body over 4,096 bytes is not a message but an attachment.
    if (Buffer.byteLength(m.message, "utf8") > MESSAGE_SIZE_LIMIT) {
      m.attachment = { name: "attachment.txt", size: Buffer.byteLength(m.message, "utf8"), type: "text/plain; charset=utf-8" };
      m.message = "You received a file: attachment.txt";
    }
    messages.push(m);
    const line = `${JSON.stringify(m)}\n`;
    for (const sub of subscriptions) {
      if (sub.topics.includes(topic)) sub.res.write(line);
    }
    for (const w of [...waiters]) w();
    return m;
  }

  function checkAuth(req: IncomingMessage, publishTo?: string): void {
    if (opts.requireToken === undefined) return;
    if (publishTo !== undefined && opts.everyoneWrites?.includes(publishTo) && req.headers.authorization === undefined) return;
    const auth = req.headers.authorization;
    if (auth === undefined) throw new HttpError(403, 40301, "forbidden");
    if (auth !== `Bearer ${opts.requireToken}`) throw new HttpError(401, 40101, "unauthorized");
  }

  function selectCached(topics: string[], since: string | null, poll: boolean): NtfyMessage[] {
    const cached = messages.filter((m) => topics.includes(m.topic));
    const s = since ?? "";
    if (s === "") return poll ? cached : [];
    if (s === "all") return cached;
    if (s === "none") return [];
    if (s === "latest") return cached.slice(-1);
    if (MESSAGE_ID_RE.test(s)) {
      const idx = cached.findIndex((m) => m.id === s);
      return idx === -1 ? cached : cached.slice(idx + 1);
    }
    if (/^\d+$/.test(s)) {
      const t = Number(s);
      return cached.filter((m) => m.time >= t);
    }
    const d = /^(\d+)(s|m|h)$/.exec(s);
    if (d) {
      const unit = d[2] === "h" ? 3600 : d[2] === "m" ? 60 : 1;
      const t = nowSeconds() - Number(d[1]) * unit;
      return cached.filter((m) => m.time >= t);
    }
    throw new HttpError(400, 40008, "invalid since parameter");
  }

  function subscribe(req: IncomingMessage, res: ServerResponse, topicsPart: string, query: URLSearchParams): void {
    const topics = topicsPart.split(",");
    if (!topics.every((t) => TOPIC_RE.test(t))) throw new HttpError(400, 40009, "invalid topic");
    const pollValue = (query.get("poll") ?? query.get("po") ?? (req.headers["x-poll"] as string | undefined) ?? "").toLowerCase();
    const poll = ["1", "yes", "true"].includes(pollValue);
    const since = query.get("since") ?? query.get("si") ?? (req.headers["x-since"] as string | undefined) ?? null;
    const cached = selectCached(topics, since, poll);
    res.writeHead(200, { "Content-Type": "application/x-ndjson; charset=utf-8", "Cache-Control": "no-cache" });
    const lines = cached.map((m) => `${JSON.stringify(m)}\n`).join("");
    if (poll) {
      res.end(lines);
      return;
    }
    const topicStr = topics.join(",");
    res.write(`${JSON.stringify({ id: randomId(12), time: nowSeconds(), event: "open", topic: topicStr })}\n`);
    if (lines) res.write(lines);
    const sub: Subscription = { topics, res, timer: undefined };
    if (opts.keepaliveMs !== undefined && opts.keepaliveMs > 0) {
      sub.timer = setInterval(() => {
        res.write(`${JSON.stringify({ id: randomId(12), time: nowSeconds(), event: "keepalive", topic: topicStr })}\n`);
      }, opts.keepaliveMs);
      sub.timer.unref();
    }
    subscriptions.add(sub);
    const drop = (): void => {
      if (sub.timer) clearInterval(sub.timer);
      subscriptions.delete(sub);
    };
    res.on("close", drop);
    req.on("close", drop);
  }

  async function publishFromRequest(req: IncomingMessage, res: ServerResponse, topicPart: string, query: URLSearchParams): Promise<void> {
    const body = await readBody(req);
    if (topicPart === "") {
      // JSON publishing to the root.
      let parsed: unknown;
      try {
        parsed = JSON.parse(body.toString("utf8"));
      } catch {
        throw new HttpError(400, 40017, "invalid request: request body must be message JSON");
      }
      if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
        throw new HttpError(400, 40017, "invalid request: request body must be message JSON");
      }
      const j = parsed as Record<string, unknown>;
      const topic = j["topic"];
      if (typeof topic !== "string" || !TOPIC_RE.test(topic)) throw new HttpError(400, 40009, "invalid topic");
      const extra: Partial<NtfyMessage> = {};
      if (j["title"] !== undefined) {
        if (typeof j["title"] !== "string") throw new HttpError(400, 40017, "invalid request: title");
        if (j["title"] !== "") extra.title = j["title"];
      }
      if (j["priority"] !== undefined) {
        const p = j["priority"];
        if (typeof p !== "number" || !Number.isInteger(p) || p < 0 || p > 5) throw new HttpError(400, 40007, "invalid priority");
        if (p !== 0) extra.priority = p;
      }
      if (j["tags"] !== undefined) {
        const tags = j["tags"];
        if (!Array.isArray(tags) || !tags.every((t) => typeof t === "string")) throw new HttpError(400, 40017, "invalid request: tags");
        if (tags.length > 0) extra.tags = tags as string[];
      }
      if (j["click"] !== undefined) {
        if (typeof j["click"] !== "string") throw new HttpError(400, 40017, "invalid request: click");
        extra.click = j["click"];
      }
      if (j["actions"] !== undefined) extra.actions = normalizeActions(j["actions"]);
      const message = typeof j["message"] === "string" && j["message"] !== "" ? j["message"] : "triggered";
      sendJson(res, 200, store(topic, message, extra));
      return;
    }

    if (!TOPIC_RE.test(topicPart)) throw new HttpError(400, 40009, "invalid topic");
    const extra: Partial<NtfyMessage> = {};
    const title = pickParam(req, query, ["x-title", "title", "ti", "t"]);
    if (title !== undefined) extra.title = title;
    const priority = pickParam(req, query, ["x-priority", "priority", "prio", "p"]);
    if (priority !== undefined) extra.priority = parsePriority(priority);
    const tags = pickParam(req, query, ["x-tags", "tags", "tag", "ta"]);
    if (tags !== undefined) extra.tags = parseTags(tags);
    const click = pickParam(req, query, ["x-click", "click"]);
    if (click !== undefined) extra.click = click;
    const actions = pickParam(req, query, ["x-actions", "actions", "action"]);
    if (actions !== undefined) extra.actions = normalizeActions(parseActionsHeader(actions));
    const queryMessage = query.get("message") ?? query.get("m");
    const text = body.length > 0 ? body.toString("utf8") : (queryMessage ?? "");
    sendJson(res, 200, store(topicPart, text === "" ? "triggered" : text, extra));
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? "GET";
    const path = req.url ?? "/";
    const headers: Record<string, string | undefined> = {};
    for (const [k, v] of Object.entries(req.headers)) headers[k] = Array.isArray(v) ? v.join(", ") : v;
    requests.push({ method, path, headers });

    if (mode === "hang") return; // keep the socket open, never answer
    if (mode === "error500") {
      req.resume();
      sendError(res, new HttpError(500, 50001, "internal server error"));
      return;
    }

    const url = new URL(path, "http://127.0.0.1");
    const segments = url.pathname.split("/").filter((p) => p !== "");
    try {
      if (method === "GET" && url.pathname === "/v1/health") {
        sendJson(res, 200, { healthy: true });
        return;
      }
      checkAuth(req, (method === "POST" || method === "PUT") && segments.length === 1 ? decodeURIComponent(segments[0] ?? "") : undefined);
      if (method === "GET" && segments.length === 2 && segments[1] === "json") {
        subscribe(req, res, decodeURIComponent(segments[0] ?? ""), url.searchParams);
        return;
      }
      if ((method === "POST" || method === "PUT") && segments.length <= 1) {
        await publishFromRequest(req, res, decodeURIComponent(segments[0] ?? ""), url.searchParams);
        return;
      }
      req.resume();
      throw new HttpError(404, 40401, "page not found");
    } catch (err) {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      sendError(res, err instanceof HttpError ? err : new HttpError(500, 50001, String(err)));
    }
  }

  const server = createServer((req, res) => {
    void handle(req, res);
  });
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    messages,
    requests,
    publish(topic: string, message: string, extra: Partial<NtfyMessage> = {}): NtfyMessage {
      if (!TOPIC_RE.test(topic)) throw new Error(`fake ntfy: invalid topic ${JSON.stringify(topic)}`);
      return store(topic, message, extra);
    },
    waitForMessages(n: number, timeoutMs = 2000): Promise<NtfyMessage[]> {
      return new Promise((resolve, reject) => {
        const check = (): boolean => {
          if (messages.length < n) return false;
          clearTimeout(timer);
          waiters.delete(onMessage);
          resolve([...messages]);
          return true;
        };
        const onMessage = (): void => void check();
        const timer = setTimeout(() => {
          waiters.delete(onMessage);
          reject(new Error(`fake ntfy: expected ${n} message(s) within ${timeoutMs} ms, got ${messages.length}`));
        }, timeoutMs);
        if (!check()) waiters.add(onMessage);
      });
    },
    setMode(m: FakeNtfyMode): void {
      mode = m;
    },
    close(): Promise<void> {
      for (const sub of subscriptions) if (sub.timer) clearInterval(sub.timer);
      subscriptions.clear();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      return closed;
    },
  };
}

/** A 127.0.0.1 URL on which nothing listens (for "connection refused" tests). */
export async function closedPortUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}
