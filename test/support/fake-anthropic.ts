/**
 * A local stand-in for the Anthropic Messages API (`POST /v1/messages`), so the
 * real `@anthropic-ai/sdk` HTTP code runs against it in tests and benchmarks.
 * Node built-ins only; never reaches the internet.
 *
 * What it models (see ../shared/FACTS.md and the Messages API reference):
 * - Auth: `Authorization: Bearer <key>` (what SDK 1.x sends) or `x-api-key`
 *   (which wins when both are present, as on the real API). A request with
 *   neither is a 401; with `opts.apiKey` set, a different key is a 401.
 * - `anthropic-version` is required (400 without it); `2023-06-01` and
 *   `2026-10-21` are known. Under 2026-10-21 `temperature`, `top_p` and
 *   `top_k` are "Extra inputs are not permitted".
 * - Request validation with the real API's messages (400
 *   `invalid_request_error`). Deliberately STRICTER than the real API in two
 *   places: same-role consecutive turns are refused (the API merges them), and
 *   only `text` content blocks are accepted (no images, tools, documents).
 * - Error bodies: `{"type":"error","error":{"type","message"[,"details"]},
 *   "request_id":"req_…"}` with a matching `request-id` header. Answers the
 *   fake produces itself (400/401/404/413) carry `x-should-retry: false` as the
 *   real API does; scripted errors carry only the headers they script.
 * - Token counting is an estimate: ceil(characters / 4) for each block's text
 *   (a tool definition counts its canonical JSON). Output tokens likewise.
 * - Prompt caching: see `CacheModel` below, with the API's 20-block lookback
 *   from each breakpoint. Simplifications (on purpose): caches are per fake
 *   instance and per model, no eviction other than TTL.
 * - Model names are not checked against a list (any non-empty string works),
 *   unless `opts.models` lists the known ones: then another is a 404
 *   `not_found_error` "model: <id>", as the real API answers.
 * - `POST /v1/messages/count_tokens` (free, not recorded in `requests` but in
 *   `countRequests`): the Messages body without `max_tokens` (which is "Extra
 *   inputs are not permitted" there), answered `{"input_tokens": n}` with the
 *   estimate below; same auth, version and validation as `/v1/messages`.
 */
import { createHash, randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";

export interface RecordedRequest {
  /** Parsed JSON body; the raw text when it was not valid JSON. */
  body: unknown;
  headers: Record<string, string | undefined>;
  /** Wall-clock receipt time (Date.now(), not the `setNow` clock). */
  at: number;
  /** HTTP status answered; 0 while unanswered, or when hung up / reset. */
  response: { status: number };
  /** The same instant as `at`, wall clock with sub-millisecond resolution (performance.timeOrigin + performance.now()). */
  receivedAt?: number;
  /** When the answer was complete (`res.end()` called), same clock as `receivedAt`; absent while unanswered or hung up. */
  sentAt?: number;
}

export interface ParsedMessage {
  role: "user" | "assistant";
  /** The text of the message's blocks, joined with "\n". */
  text: string;
}

export interface ParsedRequest {
  model: string;
  maxTokens: number;
  stream: boolean;
  /** System text (blocks joined with "\n"); "" when absent. */
  system: string;
  messages: ParsedMessage[];
  /** Text of the last user message (always the last message). */
  lastUserText: string;
  stopSequences: string[];
  body: Record<string, unknown>;
}

export type Behaviour =
  | { kind: "reply"; text: string; stopReason?: string }
  | {
      kind: "error";
      status: number;
      type: string;
      message: string;
      headers?: Record<string, string>;
      details?: Record<string, unknown>;
    }
  | { kind: "hang" }
  | { kind: "reset" }
  | { kind: "delay"; ms: number; then: Behaviour };

export interface FakeAnthropic {
  url: string;
  requests: RecordedRequest[];
  /** `POST /v1/messages/count_tokens` requests (free calls, kept apart from `requests`) */
  countRequests: RecordedRequest[];
  enqueue(...behaviours: Behaviour[]): void;
  setResponder(fn: (req: ParsedRequest) => string): void;
  setLatency(ms: number): void;
  /**
   * A delay of its own for each valid request, from its content (after validation, before the
   * scripted behaviour): milliseconds, or a promise the request waits for. Requests are delayed
   * concurrently, never one after the other. `null` removes it. Adds to `setLatency`.
   */
  setDelay(fn: ((req: ParsedRequest) => number | Promise<unknown>) | null): void;
  setNow(fn: () => number): void;
  cacheStats(): { writes: number; reads: number };
  /** Requests received and not yet answered (or hung up) right now, and the most at once since start or `resetConcurrency()`. */
  concurrency(): { inFlight: number; max: number };
  resetConcurrency(): void;
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------
// Constants

const KNOWN_VERSIONS = new Set(["2023-06-01", "2026-10-21"]);
const SAMPLING_FIELDS = new Set(["temperature", "top_p", "top_k"]);
/**
 * Top-level fields accepted. The brief's list, plus the body params of
 * `MessageCreateParams` in SDK 1.12 that the real API accepts too (top-level
 * `cache_control` = automatic caching, `diagnostics`, `inference_geo`,
 * `speed`, `user_profile_id`, `workspace_id`).
 */
const ALLOWED_FIELDS = new Set([
  "model",
  "max_tokens",
  "messages",
  "system",
  "metadata",
  "stop_sequences",
  "stream",
  "tools",
  "tool_choice",
  "thinking",
  "service_tier",
  "container",
  "mcp_servers",
  "context_management",
  "output_config",
  "cache_control",
  "diagnostics",
  "inference_geo",
  "speed",
  "user_profile_id",
  "workspace_id",
]);
const MAX_BODY_BYTES = 32 * 1024 * 1024; // Messages API request size limit
const TTL_MS = { "5m": 5 * 60_000, "1h": 60 * 60_000 } as const;
type Ttl = keyof typeof TTL_MS;
const LARGE_MIN_MODELS = ["claude-haiku-4-5", "claude-opus-4-5", "claude-opus-4-6"];
/** How many block boundaries before a breakpoint the cache looks for a hit (docs: prompt caching, "automatic prefix checking"). */
const LOOKBACK_BLOCKS = 20;

/** Minimum cacheable prefix in tokens (FACTS.md): 4096 for Haiku 4.5 and Opus 4.5/4.6, 1024 otherwise. */
export function minCacheableTokens(model: string): number {
  return LARGE_MIN_MODELS.some((m) => model === m || model.startsWith(`${m}-`)) ? 4096 : 1024;
}

/** The fake's token estimate: ceil(characters / 4). */
export function estimateTokens(text: string): number {
  return Math.ceil(text.length / 4);
}

// ---------------------------------------------------------------------------
// Helpers

const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
function randomId(prefix: string, length: number): string {
  const bytes = randomBytes(length);
  let out = prefix;
  for (const b of bytes) out += BASE62[b % 62];
  return out;
}
const requestId = (): string => randomId("req_011C", 20);
const messageId = (): string => randomId("msg_01", 22);

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** JSON with object keys sorted, so equal values give equal text. */
function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(",")}]`;
  if (isRecord(v)) {
    const keys = Object.keys(v).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(v[k])}`).join(",")}}`;
  }
  return JSON.stringify(v) ?? "null";
}

class InvalidRequest extends Error {}
function invalid(message: string): never {
  throw new InvalidRequest(message);
}

// ---------------------------------------------------------------------------
// Validation

/** One unit of the prompt, in the order the API processes them: tools, system, messages. */
interface PromptBlock {
  role: "tools" | "system" | "user" | "assistant";
  text: string;
  tokens: number;
  /** Present when the block is a cache breakpoint. */
  ttl?: Ttl;
}

interface ValidRequest {
  parsed: ParsedRequest;
  blocks: PromptBlock[];
}

/** Returns the TTL, or undefined for absent/null cache_control. */
function checkCacheControl(v: unknown, path: string): Ttl | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isRecord(v)) return invalid(`${path}: Input should be a valid dictionary`);
  for (const k of Object.keys(v)) {
    if (k !== "type" && k !== "ttl") invalid(`${path}.${k}: Extra inputs are not permitted`);
  }
  if (v.type === undefined) invalid(`${path}.type: Field required`);
  if (v.type !== "ephemeral") invalid(`${path}.type: Input should be 'ephemeral'`);
  if (v.ttl === undefined) return "5m";
  if (v.ttl !== "5m" && v.ttl !== "1h") return invalid(`${path}.ttl: Input should be '5m' or '1h'`);
  return v.ttl;
}

/** `where` is "messages" or "system" (the real API's prefix for the emptiness errors). */
function checkText(text: string, where: string, path: string, hasCache: boolean): void {
  if (text.trim() === "" && hasCache) invalid(`${path}: cache_control cannot be set for empty text blocks`);
  if (text === "") invalid(`${where}: text content blocks must be non-empty`);
  if (text.trim() === "") invalid(`${where}: text content blocks must contain non-whitespace text`);
}

function checkContent(
  content: unknown,
  where: "messages" | "system",
  path: string,
  role: PromptBlock["role"],
): PromptBlock[] {
  if (typeof content === "string") {
    checkText(content, where, path, false);
    return [{ role, text: content, tokens: estimateTokens(content) }];
  }
  if (!Array.isArray(content)) {
    return invalid(`${path}: Input should be a valid string or a valid list`);
  }
  if (content.length === 0) {
    return invalid(
      where === "messages"
        ? `${path.replace(/\.content$/, "")}: all messages must have non-empty content except for the optional final assistant message`
        : `${path}: List should have at least 1 item after validation, not 0`,
    );
  }
  return content.map((block: unknown, i): PromptBlock => {
    const bp = `${path}.${i}`;
    if (!isRecord(block)) return invalid(`${bp}: Input should be a valid dictionary`);
    if (block.type === undefined) invalid(`${bp}.type: Field required`);
    if (block.type !== "text") {
      invalid(`${bp}.type: the fake Anthropic API accepts only 'text' blocks, got ${JSON.stringify(block.type)}`);
    }
    for (const k of Object.keys(block)) {
      if (k !== "type" && k !== "text" && k !== "cache_control") invalid(`${bp}.${k}: Extra inputs are not permitted`);
    }
    if (block.text === undefined) invalid(`${bp}.text: Field required`);
    if (typeof block.text !== "string") return invalid(`${bp}.text: Input should be a valid string`);
    const ttl = checkCacheControl(block.cache_control, `${bp}.cache_control`);
    checkText(block.text, where, bp, ttl !== undefined);
    const out: PromptBlock = { role, text: block.text, tokens: estimateTokens(block.text) };
    if (ttl) out.ttl = ttl;
    return out;
  });
}

function validate(body: unknown, version: string): ValidRequest {
  if (!isRecord(body)) return invalid("Request body must be a JSON object");
  for (const k of Object.keys(body)) {
    const allowed = ALLOWED_FIELDS.has(k) || (SAMPLING_FIELDS.has(k) && version === "2023-06-01");
    if (!allowed) invalid(`${k}: Extra inputs are not permitted`);
  }

  const { model, max_tokens: maxTokens, messages } = body;
  if (model === undefined) invalid("model: Field required");
  if (typeof model !== "string") return invalid("model: Input should be a valid string");
  if (model === "") invalid("model: String should have at least 1 character");

  if (maxTokens === undefined) invalid("max_tokens: Field required");
  if (typeof maxTokens !== "number" || !Number.isInteger(maxTokens)) {
    return invalid("max_tokens: Input should be a valid integer");
  }
  if (maxTokens < 1) invalid("max_tokens: Input should be greater than or equal to 1");

  if (messages === undefined) invalid("messages: Field required");
  if (!Array.isArray(messages)) return invalid("messages: Input should be a valid list");
  if (messages.length === 0) invalid("messages: at least one message is required");

  if (body.stream !== undefined && typeof body.stream !== "boolean") invalid("stream: Input should be a valid boolean");
  if (body.metadata !== undefined && !isRecord(body.metadata)) invalid("metadata: Input should be a valid dictionary");
  const stopSequences: string[] = [];
  if (body.stop_sequences !== undefined) {
    if (!Array.isArray(body.stop_sequences)) invalid("stop_sequences: Input should be a valid list");
    (body.stop_sequences as unknown[]).forEach((s, i) => {
      if (typeof s !== "string") invalid(`stop_sequences.${i}: Input should be a valid string`);
      else stopSequences.push(s);
    });
  }

  const blocks: PromptBlock[] = [];

  // Tools come first in the cache prefix; each definition is one block.
  if (body.tools !== undefined) {
    if (!Array.isArray(body.tools)) invalid("tools: Input should be a valid list");
    (body.tools as unknown[]).forEach((tool, i) => {
      if (!isRecord(tool)) invalid(`tools.${i}: Input should be a valid dictionary`);
      const { cache_control: cc, ...rest } = tool as Record<string, unknown>;
      const ttl = checkCacheControl(cc, `tools.${i}.cache_control`);
      const text = canonicalJson(rest);
      const b: PromptBlock = { role: "tools", text, tokens: estimateTokens(text) };
      if (ttl) b.ttl = ttl;
      blocks.push(b);
    });
  }

  let systemText = "";
  if (body.system !== undefined) {
    const sys = checkContent(body.system, "system", "system", "system");
    systemText = sys.map((b) => b.text).join("\n");
    blocks.push(...sys);
  }

  const parsedMessages: ParsedMessage[] = [];
  messages.forEach((m: unknown, i) => {
    const mp = `messages.${i}`;
    if (!isRecord(m)) return invalid(`${mp}: Input should be a valid dictionary`);
    for (const k of Object.keys(m)) {
      if (k !== "role" && k !== "content") invalid(`${mp}.${k}: Extra inputs are not permitted`);
    }
    if (m.role === undefined) invalid(`${mp}.role: Field required`);
    if (m.role !== "user" && m.role !== "assistant") return invalid(`${mp}.role: Input should be 'user' or 'assistant'`);
    if (m.content === undefined) invalid(`${mp}.content: Field required`);
    const mb = checkContent(m.content, "messages", `${mp}.content`, m.role);
    blocks.push(...mb);
    parsedMessages.push({ role: m.role, text: mb.map((b) => b.text).join("\n") });
  });

  if (parsedMessages[0]?.role !== "user") invalid('messages: first message must use the "user" role');
  for (let i = 1; i < parsedMessages.length; i++) {
    const role = parsedMessages[i]?.role;
    if (role === parsedMessages[i - 1]?.role) {
      // Stricter than the real API, which merges consecutive same-role turns.
      invalid(`messages: roles must alternate between "user" and "assistant", but found multiple "${role}" roles in a row`);
    }
  }
  const last = parsedMessages[parsedMessages.length - 1];
  if (last?.role !== "user") {
    invalid("This model does not support assistant message prefill. The conversation must end with a user message.");
  }

  // Top-level cache_control: automatic caching, a breakpoint on the last block.
  const autoTtl = checkCacheControl(body.cache_control, "cache_control");
  const lastBlock = blocks[blocks.length - 1];
  if (autoTtl && lastBlock && !lastBlock.ttl) lastBlock.ttl = autoTtl;

  const breakpoints = blocks.filter((b) => b.ttl !== undefined);
  if (breakpoints.length > 4) {
    invalid(`A maximum of 4 blocks with cache_control may be provided. Found ${breakpoints.length}.`);
  }
  let seen5m = false;
  for (const b of breakpoints) {
    if (b.ttl === "5m") seen5m = true;
    else if (seen5m) {
      invalid(
        "a ttl='1h' cache_control block must not come after a ttl='5m' cache_control block. " +
          "Note that blocks are processed in the following order: `tools`, `system`, `messages`.",
      );
    }
  }

  return {
    parsed: {
      model,
      maxTokens,
      stream: body.stream === true,
      system: systemText,
      messages: parsedMessages,
      lastUserText: last?.text ?? "",
      stopSequences,
      body,
    },
    blocks,
  };
}

// ---------------------------------------------------------------------------
// Prompt caching

export interface CacheUsage {
  input_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
  cache_creation: { ephemeral_5m_input_tokens: number; ephemeral_1h_input_tokens: number };
}

/**
 * Prompt cache. The request is a sequence of blocks (tools, system, then each
 * message's blocks; a string content is one block). Each block with
 * cache_control is a breakpoint whose prefix is every block up to and
 * including it, keyed by the model and the canonical JSON of the blocks'
 * role+text (the cache_control fields themselves are not part of the key).
 *
 * On a request: each breakpoint looks for a cached prefix (present and
 * unexpired) at its own block and at the 20 block boundaries before it, as
 * the API does ("checks for cache hits at all previous content block
 * boundaries, up to approximately 20 blocks before your explicit
 * breakpoint"), so an entry written at a breakpoint of an earlier request is
 * found even where this request has none. The longest prefix found is read
 * (cache_read_input_tokens: position A of the API's mixed-TTL billing) and
 * its entry's TTL restarts. Then each later breakpoint whose prefix is at
 * least the model's minimum writes the tokens between the previous cached
 * point and itself (cache_creation_input_tokens, split by that breakpoint's
 * TTL: 1h writes up to the last 1h breakpoint, B − A, then 5m writes up to
 * the last breakpoint, C − B). Tokens after the last cached point are
 * input_tokens. Entries live for their TTL from the last write or read.
 * Ignored on purpose: eviction under load, and the cache being shared across
 * an organisation.
 */
class CacheModel {
  private readonly entries = new Map<string, { expiresAt: number; ttl: Ttl }>();
  writes = 0;
  reads = 0;

  apply(model: string, blocks: PromptBlock[], now: number): CacheUsage {
    const usage: CacheUsage = {
      input_tokens: 0,
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: 0,
      cache_creation: { ephemeral_5m_input_tokens: 0, ephemeral_1h_input_tokens: 0 },
    };
    const total = blocks.reduce((n, b) => n + b.tokens, 0);

    // Every block boundary's prefix key and cumulative token count; breakpoints are the blocks with a TTL.
    const boundaries: { key: string; tokens: number; ttl?: Ttl }[] = [];
    const hash = createHash("sha256").update(model).update("\0");
    let tokens = 0;
    for (const b of blocks) {
      hash.update(JSON.stringify([b.role, b.text])).update("\0");
      tokens += b.tokens;
      boundaries.push({ key: hash.copy().digest("hex"), tokens, ...(b.ttl ? { ttl: b.ttl } : {}) });
    }

    // The longest live prefix within the lookback of a breakpoint (expired entries met on the way are dropped).
    let hitAt = -1;
    for (let j = boundaries.length - 1; j > hitAt; j--) {
      if (boundaries[j]?.ttl === undefined) continue;
      for (let i = j; i >= Math.max(0, j - LOOKBACK_BLOCKS) && i > hitAt; i--) {
        const key = boundaries[i]?.key ?? "";
        const e = this.entries.get(key);
        if (!e) continue;
        if (e.expiresAt > now) {
          hitAt = i;
          break;
        }
        this.entries.delete(key);
      }
    }
    const hitPoint = boundaries[hitAt];

    let cachedUpTo = 0;
    if (hitPoint) {
      const e = this.entries.get(hitPoint.key);
      const ttl: Ttl = e?.ttl === "1h" || hitPoint.ttl === "1h" ? "1h" : "5m";
      this.entries.set(hitPoint.key, { expiresAt: now + TTL_MS[ttl], ttl });
      usage.cache_read_input_tokens = hitPoint.tokens;
      cachedUpTo = hitPoint.tokens;
      this.reads++;
    }

    const min = minCacheableTokens(model);
    for (const p of boundaries.slice(hitAt + 1)) {
      if (!p.ttl) continue; // not a breakpoint
      if (p.tokens < min) continue; // too short: its tokens stay uncached unless a later breakpoint writes them
      const written = p.tokens - cachedUpTo;
      usage.cache_creation_input_tokens += written;
      if (p.ttl === "1h") usage.cache_creation.ephemeral_1h_input_tokens += written;
      else usage.cache_creation.ephemeral_5m_input_tokens += written;
      this.entries.set(p.key, { expiresAt: now + TTL_MS[p.ttl], ttl: p.ttl });
      cachedUpTo = p.tokens;
      this.writes++;
    }

    usage.input_tokens = total - cachedUpTo;
    return usage;
  }
}

// ---------------------------------------------------------------------------
// Server

function flatHeaders(req: IncomingMessage): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(req.headers)) out[k] = Array.isArray(v) ? v.join(", ") : v;
  return out;
}

function readBody(req: IncomingMessage): Promise<{ text: string; tooLarge: boolean }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) tooLarge = true;
      else chunks.push(c);
    });
    req.on("end", () => resolve({ text: Buffer.concat(chunks).toString("utf8"), tooLarge }));
    req.on("error", reject);
  });
}

export async function startFakeAnthropic(opts: { apiKey?: string; port?: number; models?: readonly string[] } = {}): Promise<FakeAnthropic> {
  const requests: RecordedRequest[] = [];
  const countRequests: RecordedRequest[] = [];
  const queue: Behaviour[] = [];
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const cache = new CacheModel();
  let responder = (r: ParsedRequest): string => `ack: ${r.lastUserText.slice(0, 60)}`;
  let latency = 0;
  let delayOf: ((req: ParsedRequest) => number | Promise<unknown>) | null = null;
  let inFlight = 0;
  let maxInFlight = 0;
  let now: () => number = Date.now;
  const preciseNow = (): number => performance.timeOrigin + performance.now();
  let closed = false;

  const sleep = (ms: number): Promise<void> =>
    ms <= 0
      ? Promise.resolve()
      : new Promise((resolve) => {
          const t = setTimeout(() => {
            timers.delete(t);
            resolve();
          }, ms);
          timers.add(t);
        });

  function send(
    res: ServerResponse,
    rec: RecordedRequest | undefined,
    status: number,
    body: string,
    headers: Record<string, string>,
  ): void {
    if (closed || res.destroyed || res.headersSent) return;
    if (rec) rec.response.status = status;
    res.writeHead(status, { ...headers, "content-length": String(Buffer.byteLength(body)) });
    res.end(body);
    if (rec) rec.sentAt = preciseNow();
  }

  function sendError(
    res: ServerResponse,
    rec: RecordedRequest | undefined,
    status: number,
    type: string,
    message: string,
    extra: { headers?: Record<string, string>; details?: Record<string, unknown>; scripted?: boolean } = {},
  ): void {
    const id = requestId();
    const error: Record<string, unknown> = { type, message };
    if (extra.details) error.details = extra.details;
    const headers: Record<string, string> = {
      "content-type": "application/json",
      "request-id": id,
      ...(extra.scripted ? {} : { "x-should-retry": "false" }),
      ...extra.headers,
    };
    send(res, rec, status, JSON.stringify({ type: "error", error, request_id: id }), headers);
  }

  function reply(
    res: ServerResponse,
    rec: RecordedRequest,
    req: ValidRequest,
    scripted: { text: string; stopReason?: string } | undefined,
  ): void {
    const { parsed } = req;
    let text = scripted ? scripted.text : responder(parsed);
    let stopReason = scripted?.stopReason ?? "end_turn";
    let stopSequence: string | null = null;
    if (!scripted?.stopReason) {
      // Earliest stop sequence ends the text (not included), else max_tokens truncates.
      let cut = -1;
      for (const s of parsed.stopSequences) {
        const at = s === "" ? -1 : text.indexOf(s);
        if (at >= 0 && (cut < 0 || at < cut)) {
          cut = at;
          stopSequence = s;
        }
      }
      if (cut >= 0) {
        text = text.slice(0, cut);
        stopReason = "stop_sequence";
      }
      if (estimateTokens(text) > parsed.maxTokens) {
        text = text.slice(0, parsed.maxTokens * 4);
        stopReason = "max_tokens";
        stopSequence = null;
      }
    }
    const usage = cache.apply(parsed.model, req.blocks, now());
    const outputTokens = estimateTokens(text);
    const id = messageId();
    const rid = requestId();
    const content = text === "" ? [] : [{ type: "text", text }];
    const fullUsage = { ...usage, output_tokens: outputTokens, service_tier: "standard" };

    if (!parsed.stream) {
      const message = {
        id,
        type: "message",
        role: "assistant",
        model: parsed.model,
        content,
        stop_reason: stopReason,
        stop_sequence: stopSequence,
        stop_details: null,
        usage: fullUsage,
      };
      send(res, rec, 200, JSON.stringify(message), { "content-type": "application/json", "request-id": rid });
      return;
    }

    if (closed || res.destroyed) return;
    rec.response.status = 200;
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", "request-id": rid });
    const event = (type: string, data: Record<string, unknown>): void => {
      res.write(`event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`);
    };
    event("message_start", {
      message: {
        id,
        type: "message",
        role: "assistant",
        model: parsed.model,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        stop_details: null,
        usage: { ...fullUsage, output_tokens: Math.min(1, outputTokens) },
      },
    });
    if (text !== "") {
      event("content_block_start", { index: 0, content_block: { type: "text", text: "" } });
      event("ping", {});
      for (let i = 0; i < text.length; i += 16) {
        event("content_block_delta", { index: 0, delta: { type: "text_delta", text: text.slice(i, i + 16) } });
      }
      event("content_block_stop", { index: 0 });
    }
    event("message_delta", {
      delta: { stop_reason: stopReason, stop_sequence: stopSequence, stop_details: null },
      usage: {
        output_tokens: outputTokens,
        input_tokens: usage.input_tokens,
        cache_creation_input_tokens: usage.cache_creation_input_tokens,
        cache_read_input_tokens: usage.cache_read_input_tokens,
      },
    });
    event("message_stop", {});
    res.end();
    rec.sentAt = preciseNow();
  }

  /** Auth (x-api-key wins over a bearer token, as on the real API), the version header, a body that parsed: the version, or null once refused. */
  function admitted(res: ServerResponse, rec: RecordedRequest, headers: Record<string, string | undefined>, badJson: string | undefined): string | null {
    const xKey = headers["x-api-key"];
    const bearer = /^Bearer (.+)$/i.exec(headers.authorization ?? "")?.[1];
    const key = xKey ?? bearer;
    const version = headers["anthropic-version"];
    if (key === undefined) sendError(res, rec, 401, "authentication_error", "x-api-key header is required");
    else if (opts.apiKey !== undefined && key !== opts.apiKey) sendError(res, rec, 401, "authentication_error", xKey !== undefined ? "invalid x-api-key" : "invalid bearer token");
    else if (version === undefined) sendError(res, rec, 400, "invalid_request_error", "anthropic-version: header is required");
    else if (!KNOWN_VERSIONS.has(version)) sendError(res, rec, 400, "invalid_request_error", `anthropic-version: invalid version '${version}'`);
    else if (badJson !== undefined) sendError(res, rec, 400, "invalid_request_error", `There was an error parsing the body of your request: ${badJson}`);
    else return version;
    return null;
  }

  /** With `opts.models`, a model not in it is refused as the real API refuses one: 404 not_found_error. */
  function unknownModel(res: ServerResponse, rec: RecordedRequest, model: string): boolean {
    if (opts.models === undefined || opts.models.includes(model)) return false;
    sendError(res, rec, 404, "not_found_error", `model: ${model}`);
    return true;
  }

  /** `POST /v1/messages/count_tokens`: the Messages body without max_tokens; `{"input_tokens": n}`. */
  function countTokens(res: ServerResponse, rec: RecordedRequest, body: unknown, headers: Record<string, string | undefined>, badJson: string | undefined, tooLarge: boolean): void {
    if (tooLarge) return sendError(res, rec, 413, "request_too_large", "Request exceeds the maximum allowed number of bytes.");
    const version = admitted(res, rec, headers, badJson);
    if (version === null) return;
    let valid: ValidRequest;
    try {
      if (isRecord(body) && "max_tokens" in body) invalid("max_tokens: Extra inputs are not permitted");
      valid = validate(isRecord(body) ? { ...body, max_tokens: 1 } : body, version);
    } catch (e) {
      if (!(e instanceof InvalidRequest)) throw e;
      return sendError(res, rec, 400, "invalid_request_error", e.message);
    }
    if (unknownModel(res, rec, valid.parsed.model)) return;
    const inputTokens = valid.blocks.reduce((n, b) => n + b.tokens, 0);
    send(res, rec, 200, JSON.stringify({ input_tokens: inputTokens }), { "content-type": "application/json", "request-id": requestId() });
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    res.on("error", () => undefined);
    const path = (req.url ?? "/").split("?")[0];
    const { text, tooLarge } = await readBody(req);
    const counting = path === "/v1/messages/count_tokens";
    if (req.method !== "POST" || (path !== "/v1/messages" && !counting)) {
      sendError(res, undefined, 404, "not_found_error", "Not Found");
      return;
    }

    let body: unknown = text;
    let badJson: string | undefined;
    try {
      if (!tooLarge) body = JSON.parse(text) as unknown;
    } catch (e) {
      badJson = e instanceof Error ? e.message : String(e);
    }
    const headers = flatHeaders(req);
    const rec: RecordedRequest = { body, headers, at: Date.now(), response: { status: 0 }, receivedAt: preciseNow() };
    if (counting) {
      countRequests.push(rec);
      countTokens(res, rec, body, headers, badJson, tooLarge);
      return;
    }
    requests.push(rec);
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    let counted = true;
    res.on("close", () => {
      if (counted) inFlight--;
      counted = false;
    });
    let behaviour = queue.shift();

    await sleep(latency);

    if (tooLarge) {
      // Real API: sent by the edge before the API sees the request.
      sendError(res, rec, 413, "request_too_large", "Request exceeds the maximum allowed number of bytes.");
      return;
    }

    const version = admitted(res, rec, headers, badJson);
    if (version === null) return;

    let valid: ValidRequest;
    try {
      valid = validate(body, version);
    } catch (e) {
      if (!(e instanceof InvalidRequest)) throw e;
      sendError(res, rec, 400, "invalid_request_error", e.message);
      return;
    }
    if (unknownModel(res, rec, valid.parsed.model)) return;

    if (delayOf) {
      const delay = delayOf(valid.parsed);
      await (typeof delay === "number" ? sleep(delay) : delay);
    }
    while (behaviour?.kind === "delay") {
      await sleep(behaviour.ms);
      behaviour = behaviour.then;
    }
    if (closed) return;
    switch (behaviour?.kind) {
      case undefined:
        reply(res, rec, valid, undefined);
        return;
      case "reply":
        reply(res, rec, valid, behaviour);
        return;
      case "error":
        sendError(res, rec, behaviour.status, behaviour.type, behaviour.message, {
          headers: behaviour.headers,
          details: behaviour.details,
          scripted: true,
        });
        return;
      case "hang":
        return; // the socket stays open until the client gives up or close()
      case "reset":
        req.socket.destroy();
        return;
    }
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      // Never crash the test process: answer 500 api_error.
      sendError(res, undefined, 500, "api_error", `fake-anthropic internal error: ${String(e)}`);
    });
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    countRequests,
    enqueue: (...b) => {
      queue.push(...b);
    },
    setResponder: (fn) => {
      responder = fn;
    },
    setLatency: (ms) => {
      latency = ms;
    },
    setDelay: (fn) => {
      delayOf = fn;
    },
    setNow: (fn) => {
      now = fn;
    },
    cacheStats: () => ({ writes: cache.writes, reads: cache.reads }),
    concurrency: () => ({ inFlight, max: maxInFlight }),
    resetConcurrency: () => {
      maxInFlight = inFlight;
    },
    close: () => {
      if (closed) return Promise.resolve();
      closed = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
    },
  };
}
