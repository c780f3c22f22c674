// The Messages API: pure mappers (history → request, reply → text, error → failure kind) and one
// thin call through @anthropic-ai/sdk.
import type Anthropic from "@anthropic-ai/sdk";
// At load only the SDK's error classes (the same classes as Anthropic.APIError & co.): the SDK
// itself (about 20 MB and a third of a second of start-up) loads with the first client.
import { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from "@anthropic-ai/sdk/error";
import type { Failure, Note, WorkItem } from "../../machines/types.js";
import type { Block, HistoryEntry } from "../history/conversation-store.js";
import { entryBlocks, userText } from "../history/conversation-store.js";
import { type Usage, usageFromApi } from "../costs/pricing.js";
import type { CacheChoice, CacheTtl, SystemSplit } from "./cache-policy.js";
import { systemBlocks } from "./system-split.js";

type TextBlockParam = Anthropic.TextBlockParam;
type MessageParam = Anthropic.MessageParam;
export type MessagesRequest = Anthropic.MessageCreateParamsNonStreaming;
const cacheControl = (ttl: CacheTtl): Anthropic.CacheControlEphemeral =>
  ttl === "1h" ? { type: "ephemeral", ttl: "1h" } : { type: "ephemeral" };

/** Group blocks into alternating messages; consecutive same-role blocks share one message. */
export function toMessages(blocks: Block[]): MessageParam[] {
  const messages: { role: "user" | "assistant"; content: TextBlockParam[] }[] = [];
  for (const block of blocks) {
    const last = messages[messages.length - 1];
    const param: TextBlockParam = { type: "text", text: block.text };
    if (last && last.role === block.role) last.content.push(param);
    else messages.push({ role: block.role, content: [param] });
  }
  return messages;
}

/** The conversation's blocks: its history, JC's notes waiting for the turn, then the item. */
function conversationBlocks(history: HistoryEntry[], notes: Note[], item: WorkItem | null): Block[] {
  return [
    ...history.flatMap(entryBlocks),
    ...notes.map((n) => ({ role: "user" as const, text: userText({ kind: "note", session: n.session, text: n.text }) })),
    ...(item ? [{ role: "user" as const, text: userText({ kind: "item", source: item.source, session: item.session, text: item.text, timestamp: item.timestamp }) }] : []),
  ];
}

/** How a request's breakpoints are laid (cache_ttl and the conversation's system prompt split). */
export interface RequestCache {
  /** the lifetime of every breakpoint, or none at all */
  cacheTtl: CacheChoice;
  /** the conversation's system prompt split (splitSystemPrompt): two system blocks, alike in every request of the conversation */
  systemSplit?: SystemSplit | null;
  /** the first call's hedge (needs systemSplit): 1h on the system's first block, 5m on its second and on the turn's breakpoints */
  hedge?: boolean;
}

/**
 * The request over `blocks`. Cache breakpoints (at most 3 of the 4 allowed, all with one
 * lifetime, so a 1-hour one never follows a 5-minute one): the system prompt's last block and
 * the ends of the last two user messages before `uncachedTail` (the previous call's prefix, and
 * this one's). The hedge adds a fourth, 1h on the system's first block, before the 5m others.
 * `none`: no breakpoint at all.
 */
function conversationRequest(args: { model: string; maxTokens: number; systemPrompt: string; blocks: Block[]; uncachedTail?: Block } & RequestCache): MessagesRequest {
  const messages = toMessages(args.uncachedTail ? [...args.blocks, args.uncachedTail] : args.blocks);
  const ttl = args.cacheTtl;
  const system: TextBlockParam[] = systemBlocks(args.systemPrompt, args.systemSplit).map((text) => ({ type: "text", text }));
  if (ttl !== "none") {
    const hedged = args.hedge === true && system.length === 2;
    const cc = cacheControl(hedged ? "5m" : ttl);
    let marked = 0;
    for (let i = messages.length - (args.uncachedTail ? 2 : 1); i >= 0 && marked < 2; i--) {
      const m = messages[i];
      if (m?.role !== "user" || !Array.isArray(m.content)) continue;
      const tail = m.content[m.content.length - 1];
      if (tail && tail.type === "text") tail.cache_control = cc;
      marked++;
    }
    const last = system[system.length - 1];
    if (last) last.cache_control = cc;
    const first = system[0];
    if (hedged && first) first.cache_control = cacheControl("1h");
  }
  return { model: args.model, max_tokens: args.maxTokens, system, messages };
}

/**
 * The request for one turn: the history, the notes and the item. Everything before the newest
 * turn is byte-identical from call to call, so each call reads what the one before wrote.
 */
export function buildReplyRequest(args: {
  model: string;
  maxTokens: number;
  systemPrompt: string;
  history: HistoryEntry[];
  notes: Note[];
  item: WorkItem;
} & RequestCache): MessagesRequest {
  return conversationRequest({ ...args, blocks: conversationBlocks(args.history, args.notes, args.item) });
}

/** The last user turn of a summary request: the summarization prompt, and what to fold. */
export function summaryInstruction(summarizationPrompt: string, keptTurns: number): string {
  const scope = keptTurns > 0 ? `everything above except its last ${keptTurns} ${keptTurns === 1 ? "turn" : "turns"}, which stay verbatim after your summary` : "everything above";
  return `[relay] ${summarizationPrompt.trim()}\n\nWrite the summary of ${scope} now. Reply with the summary only.`;
}

/**
 * The summary request rides the conversation's cache: the same system prompt and messages with
 * the same breakpoints as the conversation's last request (its whole prompt is read from the
 * cache), then its reply, then the summarization instruction as the last user turn, uncached.
 */
export function buildSummaryRequest(args: {
  model: string;
  maxTokens: number;
  systemPrompt: string;
  history: HistoryEntry[];
  summarizationPrompt: string;
  keptTurns: number;
} & RequestCache): MessagesRequest {
  return conversationRequest({
    ...args,
    blocks: conversationBlocks(args.history, [], null),
    uncachedTail: { role: "user", text: summaryInstruction(args.summarizationPrompt, args.keptTurns) },
  });
}

/** The fallback when the conversation itself no longer fits the model: the folded part alone, as a transcript. */
export function buildTranscriptSummaryRequest(args: { model: string; maxTokens: number; summarizationPrompt: string; transcript: string }): MessagesRequest {
  return {
    model: args.model,
    max_tokens: args.maxTokens,
    system: [{ type: "text", text: args.summarizationPrompt }],
    messages: [
      {
        role: "user",
        content: [{ type: "text", text: `${args.transcript}\n\n[relay] Write the summary of the conversation above now.` }],
      },
    ],
  };
}

/** The request's prompt in tokens, estimated at four characters a token. */
export function estimatePromptTokens(request: MessagesRequest): number {
  let chars = 0;
  const add = (content: string | readonly { type: string; text?: string }[]) => {
    if (typeof content === "string") chars += content.length;
    else for (const b of content) chars += b.text?.length ?? 0;
  };
  if (request.system !== undefined) add(request.system);
  for (const m of request.messages) add(m.content);
  return Math.ceil(chars / 4);
}

/** The text blocks of a reply, concatenated. */
export const replyText = (message: Pick<Anthropic.Message, "content">): string =>
  message.content.map((b) => (b.type === "text" ? b.text : "")).join("");

function retryAfterMs(headers: Headers | undefined): number | undefined {
  if (!headers) return undefined;
  const ms = headers.get("retry-after-ms");
  if (ms && Number.isFinite(Number(ms))) return Math.max(0, Number(ms));
  const after = headers.get("retry-after");
  if (!after) return undefined;
  if (/^\d+(\.\d+)?$/.test(after.trim())) return Math.round(Number(after) * 1000);
  const date = Date.parse(after);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

const PERMANENT_400 = /credit balance|spend(ing)? limit|usage limit|billing|quota/i;
const TOO_LONG = /prompt is too long|too many (input )?tokens|exceeds? the (model's )?(maximum )?context|context (window|length)/i;

/**
 * Tell failures apart by error type and message, not status alone (FACTS.md): an exhausted
 * credit balance or a spend limit is a 400 or a 429 but stops every call, so it pauses the relay.
 */
export function classifyFailure(err: unknown): Failure {
  if (err instanceof APIConnectionTimeoutError) return { kind: "transient", message: "the API did not answer in time" };
  if (err instanceof APIUserAbortError) return { kind: "transient", message: "the call was cancelled" };
  if (err instanceof APIConnectionError) return { kind: "transient", message: `cannot reach the API: ${err.message}` };
  if (err instanceof APIError) {
    const status = err.status ?? 0;
    const apiMessage = err.apiMessage ?? err.message;
    const message = `${status} ${err.type ?? "error"}: ${apiMessage}`;
    const base = { message, status };
    if (status === 429) {
      if (err.errorCode === "enforced_spend_limit_reached" || /spend limit/i.test(apiMessage)) return { ...base, kind: "permanent" };
      const after = retryAfterMs(err.headers);
      return { ...base, kind: "rateLimited", ...(after === undefined ? {} : { retryAfterMs: after }) };
    }
    if (status === 529) {
      const after = retryAfterMs(err.headers);
      return { ...base, kind: "rateLimited", ...(after === undefined ? {} : { retryAfterMs: after }) };
    }
    if (status === 400 && PERMANENT_400.test(apiMessage)) return { ...base, kind: "permanent" };
    // The history no longer fits the model: never the envelope's fault (CONTRACT §4).
    if ((status === 400 && TOO_LONG.test(apiMessage)) || status === 413) return { ...base, kind: "tooLong" };
    if (status === 400 || status === 422) return { ...base, kind: "envelope" };
    if (status === 401 || status === 402 || status === 403 || status === 404) return { ...base, kind: "permanent" };
    if (status === 408 || status === 409 || status >= 500) {
      const after = retryAfterMs(err.headers);
      return { ...base, kind: "transient", ...(after === undefined ? {} : { retryAfterMs: after }) };
    }
    return { ...base, kind: "permanent" };
  }
  return { kind: "transient", message: err instanceof Error ? err.message : String(err) };
}

export interface ApiReply {
  text: string;
  usage: Usage;
  model: string;
  latencyMs: number;
}

/**
 * The SDK's own retries are off (maxRetries 0): the machine's back-off owns retrying, so a
 * failure streak is visible in `relay status` and a retry never doubles behind our back.
 */
export async function createClient(opts: { apiKey: string; baseUrl?: string; timeoutMs: number }): Promise<Anthropic> {
  const { default: Sdk } = await import("@anthropic-ai/sdk");
  return new Sdk({
    apiKey: opts.apiKey,
    ...(opts.baseUrl === undefined ? {} : { baseURL: opts.baseUrl }),
    maxRetries: 0,
    timeout: opts.timeoutMs,
  });
}

export async function callMessages(client: Anthropic, request: MessagesRequest, signal?: AbortSignal): Promise<ApiReply> {
  const started = performance.now();
  const message = await client.messages.create(request, signal ? { signal } : {});
  return {
    text: replyText(message),
    usage: usageFromApi(message.usage),
    model: message.model,
    latencyMs: Math.round(performance.now() - started),
  };
}
