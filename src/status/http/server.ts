// `relay run --http`: the live status page, its JSON API, and JC's answer box (CONTRACT §10).
import { type FSWatcher, watch } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import * as z from "zod/mini";
import { toMermaid } from "../chart.js";
import { toSvg } from "../chart-svg.js";
import { conversationMachine } from "../../../machines/conversation.js";
import type { RelayConfig } from "../../config/config.js";
import { submitJcInput } from "../../transport/file/client.js";
import { type Logger, scrubber } from "../../runtime/log.js";
import type { RelayPaths } from "../../config/paths.js";
import { MAX_CONTENT_BYTES } from "../../transport/file/queue.js";
import { readStatus, type StatusReport } from "../report.js";
import { readStatusFile, statusFilePath } from "../status-file.js";
import { asset, pageHtml } from "./assets.js";
import { LedgerSummary, newestRecords } from "../../costs/ledger-summary.js";
import type { StatusFile } from "../status-file.js";
import { ConversationPanels, costsView, MAX_PANEL_ENTRIES, RejectionsCache, recentCalls, type Rejection } from "./data.js";
import { isLoopbackHost, isWildcardHost, parseListen, urlHost } from "./listen.js";
import { createGuard, type Guard, MIN_TOKEN_LENGTH, SECURITY_HEADERS } from "./security.js";

export { parseListen };

export interface StatusServerOptions {
  paths: RelayPaths;
  config: () => RelayConfig;
  /** port 0: the OS chooses */
  listen: { host: string; port: number };
  /** RELAY_HTTP_TOKEN: required for a non-loopback bind; then every request must carry it */
  token?: string;
  /**
   * The daemon calls the listener on every machine state change; returns the unsubscribe
   * function. Optional: the server also watches state/status.json, which the daemon rewrites
   * after every change that matters.
   */
  subscribe?: (listener: () => void) => () => void;
  log: Logger;
  /** more names the Host header may carry (e.g. behind a reverse proxy); the bound and loopback names always pass */
  allowedHosts?: string[];
  /**
   * The daemon's status as it holds it in memory (what it last wrote to state/status.json): live
   * updates are built from it instead of re-reading the file. Null until the daemon has one.
   */
  current?: () => StatusFile | null;
  /** the daemon's ledger summary (else the server keeps its own): costs come from its cells */
  ledger?: LedgerSummary;
  /** at most this many /events clients at once; one more is refused with 503 (default 16) */
  maxClients?: number;
  /** how often the server looks for what moves without a state change (default 2 s; tests lengthen it to see the watch alone) */
  pollMs?: number;
  /** `public_url`: the page's address behind a proxy; its Host header and its Origin are this server's too */
  publicUrl?: string;
  /** the secrets scrubbed from every response (default: the API key, the page token, NTFY_TOKEN) */
  redact?: (text: string) => string;
}

export interface StatusServer {
  url: string;
  close(): Promise<void>;
}

/** What every server-sent `status` event carries. */
export interface LiveUpdate {
  state: string;
  /** since when the relay is in `state`: the daemon's status write that first showed it to this server */
  stateSince: string;
  status: StatusReport;
  rejected: Rejection[];
  /** the newest call in the cost ledger (every call there succeeded): a `lastError` before it is over */
  lastCallAt: string | null;
}

const DEBOUNCE_MS = 50;
/** a second look after a notification, in case state/status.json was still being written */
const SETTLE_MS = 500;
/** catches what moves without a state change: queue depth, acknowledgements, costs */
const POLL_MS = 2_000;
const KEEPALIVE_MS = 15_000;
const MAX_BODY_BYTES = MAX_CONTENT_BYTES + 64 * 1024;
const MAX_CALLS = 500;
export const DEFAULT_MAX_CLIENTS = 16;
/** a client whose unsent frames pass this is not reading: it is dropped */
export const MAX_CLIENT_BUFFER_BYTES = 1024 * 1024;

/** The page shows a conversation's machine: its states are what status.json's `state` names. Drawn once per process. */
const conversationChart = (() => {
  let chart: { mermaid: string; svg: string } | null = null;
  return () => (chart ??= { mermaid: toMermaid(conversationMachine), svg: toSvg(conversationMachine) });
})();

/** A question id as the page posts it back (the daemon decides whether it is still open). */
const QUESTION_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

const jcBodySchema = z.object({
  text: z.string({ error: 'expected {"text": "..."}' }),
  question: z.optional(z.string()),
  csrf: z.optional(z.string()),
});

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function firstHeader(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const declared = Number(firstHeader(req, "content-length") ?? "0");
  if (declared > MAX_BODY_BYTES) throw new HttpError(413, "the request body is too large");
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    size += buf.length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, "the request body is too large");
    chunks.push(buf);
  }
  return Buffer.concat(chunks);
}

export async function startStatusServer(opts: StatusServerOptions): Promise<StatusServer> {
  const { paths, log } = opts;
  const token = opts.token === undefined || opts.token === "" ? undefined : opts.token;
  const host = opts.listen.host.replace(/^\[|\]$/g, "").toLowerCase();
  if (token !== undefined && token.length < MIN_TOKEN_LENGTH) {
    throw new Error(`RELAY_HTTP_TOKEN is too short: use at least ${MIN_TOKEN_LENGTH} random characters (e.g. openssl rand -hex 24)`);
  }
  if (token === undefined && !isLoopbackHost(host)) {
    throw new Error(`refusing to serve the status page on ${host}: a non-loopback address needs RELAY_HTTP_TOKEN (or bind to 127.0.0.1)`);
  }

  let ownLedger: Promise<LedgerSummary> | null = null;
  const ledger = async (): Promise<LedgerSummary> => {
    if (opts.ledger) return opts.ledger;
    ownLedger ??= LedgerSummary.load(paths.root);
    const summary = await ownLedger;
    await summary.refresh(); // the ledger's tail since the last look
    return summary;
  };
  const rejections = new RejectionsCache(paths);
  const chart = conversationChart();
  const sessions = () => opts.config().sessions;
  const scrub = () => opts.redact ?? scrubber([opts.config().anthropic.apiKey, token, opts.config().ntfy.token]);
  const maxClients = opts.maxClients ?? DEFAULT_MAX_CLIENTS;
  const statusNow = async (): Promise<StatusReport> => {
    const held = opts.current?.() ?? null;
    return readStatus(paths, sessions(), Date.now(), held ? { file: held } : {});
  };
  let since = { state: "", at: "" };
  let lastCall: { calls: number; at: string | null } = { calls: -1, at: null };
  const liveUpdate = async (): Promise<LiveUpdate> => {
    const status = await statusNow();
    if (status.state !== since.state) since = { state: status.state, at: status.updatedAt ?? new Date().toISOString() };
    // the ledger's last line, read again only when the count of calls moved
    if (status.cost.calls !== lastCall.calls) lastCall = { calls: status.cost.calls, at: (await newestRecords(paths.root, 1))[0]?.at ?? null };
    return { state: status.state, stateSince: since.at, status, rejected: await rejections.read(), lastCallAt: lastCall.at };
  };
  const panels = new ConversationPanels(paths);

  // ---- server-sent events ------------------------------------------------------------------
  const clients = new Set<ServerResponse>();
  let lastSent = "";
  let chain: Promise<void> = Promise.resolve();
  let debounce: NodeJS.Timeout | null = null;
  let settle: NodeJS.Timeout | null = null;
  const frame = (json: string) => `event: status\ndata: ${json}\n\n`;
  /** Write to one client, dropping it when it does not read (its unsent frames pile up). */
  const sendTo = (c: ServerResponse, text: string) => {
    if (c.writableLength > MAX_CLIENT_BUFFER_BYTES) {
      clients.delete(c);
      log.warn({ buffered: c.writableLength }, "status page: an /events client does not read; dropped");
      c.destroy();
      return;
    }
    c.write(text);
  };
  const push = (force: boolean) => {
    chain = chain
      .then(async () => {
        if (clients.size === 0) return;
        const json = scrub()(JSON.stringify(await liveUpdate()));
        if (!force && json === lastSent) return;
        lastSent = json;
        for (const c of clients) sendTo(c, frame(json));
      })
      .catch((err: unknown) => log.warn({ err: err instanceof Error ? err.message : String(err) }, "status page: cannot read the status"));
  };
  const changed = () => {
    if (debounce === null) {
      debounce = setTimeout(() => {
        debounce = null;
        push(true);
      }, DEBOUNCE_MS);
    }
    if (settle !== null) clearTimeout(settle);
    settle = setTimeout(() => {
      settle = null;
      push(false);
    }, SETTLE_MS);
  };
  const unsubscribe = opts.subscribe?.(changed) ?? (() => undefined);
  const watcher = watchStatusFile(paths, changed, log);
  const poll = setInterval(() => push(false), opts.pollMs ?? POLL_MS);
  const keepalive = setInterval(() => {
    for (const c of clients) sendTo(c, ": keepalive\n\n");
  }, KEEPALIVE_MS);
  poll.unref();
  keepalive.unref();

  // ---- routes ------------------------------------------------------------------------------
  let guard: Guard | null = null;

  const send = (res: ServerResponse, status: number, type: string, body: string | Buffer, extra: Record<string, string> = {}) => {
    res.writeHead(status, { "Content-Type": type, ...extra });
    res.end(body);
  };
  const sendText = (res: ServerResponse, status: number, text: string, extra: Record<string, string> = {}) =>
    send(res, status, "text/plain; charset=utf-8", `${text}\n`, extra);
  const sendJson = (res: ServerResponse, status: number, value: unknown) =>
    send(res, status, "application/json; charset=utf-8", scrub()(JSON.stringify(value)));

  const routes: Record<string, Partial<Record<string, (req: IncomingMessage, res: ServerResponse, url: URL, g: Guard) => Promise<void>>>> = {
    "/": {
      GET: async (_req, res, _url, g) => send(res, 200, "text/html; charset=utf-8", await pageHtml(g.csrfToken)),
    },
    "/status.json": {
      GET: async (_req, res) => sendJson(res, 200, await statusNow()),
    },
    "/chart.mmd": {
      GET: async (_req, res) => send(res, 200, "text/plain; charset=utf-8", chart.mermaid),
    },
    "/chart.svg": {
      GET: async (_req, res) => send(res, 200, "image/svg+xml; charset=utf-8", chart.svg),
    },
    "/api/costs": {
      GET: async (_req, res) => sendJson(res, 200, costsView((await ledger()).allCells())),
    },
    "/api/calls": {
      GET: async (_req, res, url) => {
        const raw = url.searchParams.get("limit") ?? "50";
        if (!/^\d{1,4}$/.test(raw) || Number(raw) < 1 || Number(raw) > MAX_CALLS) throw new HttpError(400, `limit: expected a whole number from 1 to ${MAX_CALLS}`);
        sendJson(res, 200, { calls: recentCalls(await newestRecords(paths.root, Number(raw))) });
      },
    },
    "/api/history": {
      GET: async (_req, res, url) => {
        const session = url.searchParams.get("session") ?? "";
        const raw = url.searchParams.get("last") ?? "10";
        if (!/^\d{1,3}$/.test(raw) || Number(raw) < 1 || Number(raw) > MAX_PANEL_ENTRIES) throw new HttpError(400, `last: expected a whole number from 1 to ${MAX_PANEL_ENTRIES}`);
        const conversation = sessions().find((s) => s.id === session)?.conversation ?? opts.current?.()?.sessions[session]?.conversation;
        if (conversation === undefined) throw new HttpError(404, `session: expected a session of this relay, got ${JSON.stringify(session.slice(0, 64))}`);
        sendJson(res, 200, await panels.read(session, conversation, Number(raw)));
      },
    },
    "/api/rejected": {
      GET: async (_req, res) => sendJson(res, 200, { rejected: await rejections.read(20) }),
    },
    "/events": {
      GET: async (req, res) => {
        if (req.method !== "HEAD" && clients.size >= maxClients) {
          return sendText(res, 503, `too many live status clients (at most ${maxClients}): close another tab, or reload later`, { "Retry-After": "10" });
        }
        res.writeHead(200, { "Content-Type": "text/event-stream; charset=utf-8", "X-Accel-Buffering": "no" });
        if (req.method === "HEAD") return void res.end();
        res.write("retry: 2000\n\n");
        clients.add(res);
        res.on("close", () => clients.delete(res));
        sendTo(res, frame(scrub()(JSON.stringify(await liveUpdate()))));
      },
    },
    "/jc": {
      POST: async (req, res, _url, g) => {
        if (!g.sameOrigin(req)) throw new HttpError(403, "cross-site request refused: answer from the status page itself");
        const type = (firstHeader(req, "content-type") ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
        const raw = (await readBody(req)).toString("utf8");
        let text: string;
        let question: string | undefined;
        let csrf = firstHeader(req, "x-csrf-token");
        const form = type === "application/x-www-form-urlencoded";
        if (type === "application/json") {
          let json: unknown;
          try {
            json = JSON.parse(raw);
          } catch {
            throw new HttpError(400, "the body is not valid JSON");
          }
          const parsed = jcBodySchema.safeParse(json);
          if (!parsed.success) throw new HttpError(400, 'expected {"text": "..."}');
          text = parsed.data.text;
          question = parsed.data.question;
          csrf ??= parsed.data.csrf;
        } else if (form) {
          const params = new URLSearchParams(raw);
          text = params.get("text") ?? "";
          question = params.get("question") ?? undefined;
          csrf ??= params.get("csrf") ?? undefined;
        } else {
          throw new HttpError(415, "send application/json {\"text\": ...} or a form with a text field");
        }
        if (!g.csrfValid(csrf)) throw new HttpError(403, "missing or wrong CSRF token: reload the status page");
        const refuse = (status: number, error: string) => (form ? sendText(res, status, error) : sendJson(res, status, { ok: false, error }));
        if (question !== undefined) {
          // an answer to one question: state/jc_input.txt gets {"text": "...", "question": "<id>"} (CONTRACT §6)
          if (!QUESTION_ID.test(question)) return refuse(400, "question: expected a question id");
          if (text.trim() === "") return refuse(400, "the answer is empty");
          const open = await readStatusFile(paths);
          if (open.kind === "ok" && !open.status.questions.some((q) => q.id === question)) {
            return refuse(409, `question ${question} is no longer open: reload the status page`);
          }
        }
        const written = question === undefined ? text : JSON.stringify({ text: text.trim(), question });
        const result = await submitJcInput(paths, opts.config(), written);
        if (!result.ok) return refuse(400, result.error);
        const taken = question === undefined ? result.value : { kind: "answer" as const, question };
        log.info(taken, "JC answer taken from the status page");
        if (form) return send(res, 303, "text/plain; charset=utf-8", "answer sent\n", { Location: "/" });
        sendJson(res, 200, { ok: true, ...taken });
      },
    },
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.setHeader(k, v);
    res.setHeader("Cache-Control", "no-store");
    const g = guard;
    if (g === null) return sendText(res, 503, "starting");
    if (!g.hostAllowed(req)) {
      log.debug({ host: req.headers.host }, "status page: Host header refused");
      return sendText(res, 421, "misdirected request: the Host header does not name this server");
    }
    const url = new URL(req.url ?? "/", "http://relay.invalid");
    const access = g.access(req, url);
    if (!access.ok) {
      return sendText(res, access.status, access.message, access.status === 401 ? { "WWW-Authenticate": 'Bearer realm="relay"' } : {});
    }
    if (access.setCookie !== undefined) res.setHeader("Set-Cookie", access.setCookie);
    const method = req.method === "HEAD" ? "GET" : (req.method ?? "GET");

    if (url.pathname.startsWith("/assets/")) {
      if (method !== "GET") return sendText(res, 405, "method not allowed", { Allow: "GET, HEAD" });
      const found = asset(url.pathname.slice("/assets/".length));
      if (found === null) return sendText(res, 404, "not found");
      const a = await found;
      const gzip = /\bgzip\b/.test(firstHeader(req, "accept-encoding") ?? "");
      res.setHeader("Cache-Control", "no-cache");
      res.setHeader("Vary", "Accept-Encoding");
      res.setHeader("ETag", a.etag);
      if ((firstHeader(req, "if-none-match") ?? "").split(/\s*,\s*/).includes(a.etag)) {
        res.writeHead(304);
        return void res.end();
      }
      return send(res, 200, a.type, gzip ? a.gzip : a.body, gzip ? { "Content-Encoding": "gzip" } : {});
    }
    const route = Object.hasOwn(routes, url.pathname) ? routes[url.pathname] : undefined;
    if (!route) return sendText(res, 404, "not found");
    const handler = Object.hasOwn(route, method) ? route[method] : undefined;
    if (!handler) {
      const allow = Object.keys(route).flatMap((m) => (m === "GET" ? ["GET", "HEAD"] : [m]));
      return sendText(res, 405, "method not allowed", { Allow: allow.join(", ") });
    }
    await handler(req, res, url, g);
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      const known = err instanceof HttpError;
      if (!known) log.error({ err: err instanceof Error ? err.message : String(err), path: req.url }, "status page: request failed");
      if (res.headersSent) {
        res.end();
        return;
      }
      const status = known ? err.status : 500;
      const message = known ? err.message : "internal error (see the relay's log)";
      if ((firstHeader(req, "accept") ?? "").includes("application/json") || (req.url ?? "").startsWith("/jc")) {
        sendJson(res, status, { ok: false, error: message });
      } else sendText(res, status, message);
      if (status === 413) req.socket.destroySoon();
    });
  });

  const stopTimers = () => {
    unsubscribe();
    watcher?.close();
    if (debounce !== null) clearTimeout(debounce);
    if (settle !== null) clearTimeout(settle);
    clearInterval(poll);
    clearInterval(keepalive);
  };

  try {
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        reject(new Error(`cannot serve the status page on ${urlHost(host)}:${opts.listen.port}: ${err.code === "EADDRINUSE" ? "the address is already in use" : err.message}`));
      };
      server.once("error", onError);
      server.listen(opts.listen.port, host, () => {
        server.off("error", onError);
        resolve();
      });
    });
  } catch (err) {
    stopTimers();
    throw err;
  }
  const port = (server.address() as AddressInfo).port;
  guard = createGuard({
    bound: { host, port },
    ...(token === undefined ? {} : { token }),
    ...(opts.allowedHosts ? { allowedHosts: opts.allowedHosts } : {}),
    ...(opts.publicUrl === undefined ? {} : { publicUrl: opts.publicUrl }),
  });
  server.on("error", (err) => log.error({ err: err.message }, "status page server error"));

  const shown = isWildcardHost(host) ? (host.includes(":") ? "::1" : "127.0.0.1") : host;
  const url = `http://${urlHost(shown)}:${port}/`;
  log.info({ url, token: token !== undefined }, `status page at ${url}`);

  let closing: Promise<void> | null = null;
  return {
    url,
    close() {
      closing ??= new Promise<void>((resolve) => {
        stopTimers();
        for (const c of clients) c.end();
        clients.clear();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

/**
 * Calls `changed` whenever state/status.json is replaced (the daemon writes it atomically, by
 * rename, so the directory is watched, not the file). Null when state/ cannot be watched: the
 * poll still catches every change, only later.
 */
function watchStatusFile(paths: RelayPaths, changed: () => void, log: Logger): FSWatcher | null {
  const name = statusFilePath(paths).slice(paths.state.length + 1);
  try {
    const watcher = watch(paths.state, { persistent: false }, (_event, file) => {
      if (file === null || file === name) changed();
    });
    watcher.on("error", (err) => log.warn({ err: err.message }, "status page: cannot watch state/status.json any more; polling"));
    return watcher;
  } catch (err) {
    log.warn({ err: err instanceof Error ? err.message : String(err) }, "status page: cannot watch state/status.json; polling");
    return null;
  }
}
