// The conversation's actors, made from the deps: the API call, the commit of a turn to the
// history, and the summary. Every failure comes back as a value the machine decides on.
import { fromPromise } from "xstate";
import { conversationMachine } from "../../machines/conversation.js";
import { permissionDecisionMachine } from "../../machines/permission-decision.js";
import { relayMachine } from "../../machines/relay.js";
import type { CallResult, CommitInput, CommitResult, Note, SummarizeResult, WorkItem } from "../../machines/types.js";
import { type CacheChoice, type CacheDecision, cacheRatesFor, chooseCacheTtl, PACE_WINDOW, paceGaps, type SystemSplit } from "../anthropic/cache-policy.js";
import { buildReplyRequest, buildSummaryRequest, buildTranscriptSummaryRequest, classifyFailure, type ApiReply, type MessagesRequest } from "../anthropic/messages.js";
import { splitSystemPrompt } from "../anthropic/system-split.js";
import type { RelayConfig, SessionConfig } from "../config/config.js";
import { budgetExhausted } from "../costs/budget.js";
import type { CallCache } from "../costs/ledger.js";
import { promptTokensOf } from "../costs/pricing.js";
import { isTurn, noteEntry, splitForSummary, transcript, turnEntry, type HistoryEntry } from "../history/conversation-store.js";
import { recordApiCall, worstCaseUsd } from "./api-calls.js";
import type { MessagesApi, RelayDeps } from "./deps.js";
import { permissionDecider } from "./permission-decider.js";

export const DRY_RUN_PREFIX = "[relay dry-run] Received";

/** A session removed from config.yaml while its turn was in flight is answered in the shared conversation. */
export const sessionOf = (config: RelayConfig, id: string): SessionConfig =>
  config.sessions.find((s) => s.id === id) ?? { id, conversation: "shared", systemPrompt: config.systemPrompt, model: config.model };

/** The conversation's prompt and model: those of its sessions (they share them). */
const conversationSettings = (config: RelayConfig, conversation: string): SessionConfig =>
  config.sessions.find((s) => s.conversation === conversation) ?? { id: conversation, conversation, systemPrompt: config.systemPrompt, model: config.model };

/** When the conversation's calls were made: its turns and summaries, as the history recorded them (ms). */
export function callTimesOf(entries: readonly HistoryEntry[]): number[] {
  const times: number[] = [];
  for (let i = entries.length - 1; i >= 0 && times.length <= PACE_WINDOW; i--) {
    const e = entries[i];
    if (e && e.kind !== "note") {
      const at = Date.parse(e.at);
      if (Number.isFinite(at)) times.unshift(at);
    }
  }
  return times;
}

/** What a conversation's latest call sent and wrote: the next call's reusable prefix, and whether its cache still lives. */
interface LastCall {
  at: number;
  /** a hedged call's is 1h: its 1h part lives on */
  ttl: CacheChoice;
  hedge: boolean;
  promptTokens: number;
  purpose: "reply" | "summary";
}

export function conversationActors(deps: RelayDeps) {
  const lastCalls = new Map<string, LastCall>();
  /** each conversation's recent gaps between calls, as its last decision saw them: a new conversation borrows the others' */
  const paces = new Map<string, number[]>();

  /** Where the conversation's system prompt is cut in two blocks (cache_ttl: auto): the same for every request of the conversation. */
  const systemSplitOf = (settings: SessionConfig): SystemSplit | null => {
    const config = deps.config();
    return config.cacheTtl === "auto" ? splitSystemPrompt(settings.systemPrompt, settings.model, cacheRatesFor(settings.model, config.prices)) : null;
  };

  /** The breakpoints' lifetime for the conversation's next request (cache_ttl: auto decides from its pace). */
  const decideCache = (conversation: string, model: string, entries: readonly HistoryEntry[], promptTokens: number, systemSplit: SystemSplit | null): CacheDecision & { gapMs: number | null } => {
    const config = deps.config();
    const now = deps.now();
    const times = callTimesOf(entries);
    const last = lastCalls.get(conversation);
    const previous = Math.max(times[times.length - 1] ?? Number.NEGATIVE_INFINITY, last?.at ?? Number.NEGATIVE_INFINITY);
    const own = paceGaps(times, now);
    if (own.length > 0) paces.set(conversation, own);
    const relayGaps = [...paces].filter(([c]) => c !== conversation).flatMap(([, gaps]) => gaps);
    const decision = chooseCacheTtl({ setting: config.cacheTtl, callTimes: times, now, lastWrite: last ?? null, rates: cacheRatesFor(model, config.prices), promptTokens, model, relayGaps, systemSplit });
    return { ...decision, gapMs: Number.isFinite(previous) ? Math.max(0, now - previous) : null };
  };

  /** The part of this prompt the conversation's previous call sent too: all of it after a reply, the system prompt after a summary. */
  const reusableTokens = (conversation: string, systemPrompt: string, reply: ApiReply): number => {
    const last = lastCalls.get(conversation);
    const prompt = promptTokensOf(reply.usage);
    if (!last) return reply.usage.cacheReadTokens;
    return Math.min(prompt, last.purpose === "summary" ? Math.ceil(systemPrompt.length / 4) : last.promptTokens);
  };

  const record = (session: SessionConfig, conversation: string, purpose: "reply" | "summary", reply: ApiReply, cache: CallCache, hedge: boolean) => {
    lastCalls.set(conversation, { at: deps.now(), ttl: cache.ttl, hedge, promptTokens: promptTokensOf(reply.usage), purpose });
    recordApiCall(deps, { session: session.id, conversation, purpose, reply, cache });
  };

  // An upstream error message may quote a secret: redacted here, before it reaches the machines
  // (and so the snapshot, status, notifications and rejection reasons).
  const failureOf = (err: unknown) => {
    const failure = classifyFailure(err);
    return { ...failure, message: deps.redact(failure.message) };
  };
  const failed = (err: unknown): CallResult => ({ ok: false, failure: failureOf(err), at: deps.now(), jitter: deps.random() });

  async function callApi({ conversation, item, notes }: { conversation: string; item: WorkItem; notes: Note[] }, signal: AbortSignal): Promise<CallResult> {
    const config = deps.config();
    const session = sessionOf(config, item.session);
    try {
      // After a crash the turn may be in the history already: reuse its reply, call nothing.
      const recorded = await deps.history.has(conversation, item.id);
      if (recorded?.kind === "turn") return { ok: true, text: recorded.reply, at: deps.now(), called: false };
      await deps.crashPoint("before-call");
      const history = await deps.history.entries(conversation);
      const shape = { model: session.model, maxTokens: config.maxTokens, systemPrompt: session.systemPrompt, history, notes, item };
      const estimate = Math.ceil((session.systemPrompt.length + (await deps.history.chars(conversation)) + item.text.length) / 4);
      const systemSplit = systemSplitOf(session);
      const cache = decideCache(conversation, session.model, history, estimate, systemSplit);
      const request = buildReplyRequest({ ...shape, cacheTtl: cache.ttl, hedge: cache.hedge, systemSplit });
      // Today's spend counts every call in the ledger first (a ledger without a summary is read after start).
      await deps.costs.spend.settled();
      // The budget check and the reservation happen together, with nothing awaited between them,
      // so calls in parallel cannot together spend past a budget. JC's own chat turns are JC's
      // decision to spend; envelopes wait when a budget is spent.
      const overBudget = item.source === "envelope" ? budgetExhausted(config, deps.costs.spend, item.session) : null;
      if (overBudget) return { ok: false, failure: overBudget, at: deps.now(), jitter: 0 };
      if (!deps.api) return { ok: true, text: `${DRY_RUN_PREFIX} ${item.text.length} characters from ${item.session}. (No API call was made.)`, at: deps.now(), called: false };
      const release = deps.costs.spend.reserve(item.session, worstCaseUsd(session.model, JSON.stringify(request.messages).length, config.maxTokens, config.prices));
      try {
        const reply = await deps.api.call(request, signal);
        record(session, conversation, "reply", reply, { ttl: cache.ttl, reason: cache.reason, gapMs: cache.gapMs, reusableTokens: reusableTokens(conversation, session.systemPrompt, reply) }, cache.hedge);
        await deps.crashPoint("after-call");
        return { ok: true, text: reply.text, at: deps.now(), called: true };
      } finally {
        release();
      }
    } catch (err) {
      const result = failed(err);
      if (!result.ok) deps.log.warn({ conversation, session: item.session, envelope: item.id, failure: result.failure.kind, status: result.failure.status }, `api call failed: ${result.failure.message}`);
      return result;
    }
  }

  async function commitTurn({ conversation, turn, notes }: CommitInput): Promise<CommitResult> {
    const config = deps.config();
    const at = new Date(deps.now());
    const entries: HistoryEntry[] = [...notes.map((n) => noteEntry(n, at)), ...(turn ? [turnEntry(turn.item, turn.reply, at)] : [])];
    await deps.history.append(conversation, entries);
    await deps.crashPoint("after-commit");
    return { overCap: (await deps.history.chars(conversation)) > config.historyCharCap, noteIds: notes.map((n) => n.id), at: deps.now() };
  }

  /**
   * The summary rides the conversation's cache: its last request's prefix with the same
   * breakpoints, then the instruction. A conversation too long for the model even for that is
   * summarized from the folded part alone, as a transcript (uncached).
   */
  async function summaryCall(api: MessagesApi, conversation: string, settings: SessionConfig, entries: HistoryEntry[], split: { fold: HistoryEntry[]; keep: HistoryEntry[] }, signal: AbortSignal): Promise<ApiReply> {
    const config = deps.config();
    const last = lastCalls.get(conversation);
    const shape = { model: settings.model, maxTokens: config.maxTokens, systemPrompt: settings.systemPrompt, history: entries, summarizationPrompt: config.summarizationPrompt, keptTurns: split.keep.filter(isTurn).length };
    const estimate = Math.ceil((settings.systemPrompt.length + (await deps.history.chars(conversation))) / 4);
    const systemSplit = systemSplitOf(settings);
    const decided = decideCache(conversation, settings.model, entries, estimate, systemSplit);
    // the same breakpoints as the request whose prefix it reads, when that is known
    const ttl = last ? last.ttl : decided.ttl;
    const hedge = last ? last.hedge : decided.hedge;
    const reason = last ? `summary: the prefix of the conversation's last request (${last.ttl}${last.hedge ? ", hedged" : ""})` : `summary: ${decided.reason}`;
    /** reusable: null when the request extends the conversation's last one */
    const call = async (request: MessagesRequest, cache: Omit<CallCache, "reusableTokens">, reusable: number | null): Promise<ApiReply> => {
      const reply = await api.call(request, signal);
      record(settings, conversation, "summary", reply, { ...cache, reusableTokens: reusable ?? reusableTokens(conversation, settings.systemPrompt, reply) }, cache.ttl !== "none" && hedge);
      return reply;
    };
    try {
      return await call(buildSummaryRequest({ ...shape, cacheTtl: ttl, hedge, systemSplit }), { ttl, reason, gapMs: decided.gapMs }, null);
    } catch (err) {
      if (classifyFailure(err).kind !== "tooLong") throw err;
      deps.log.info({ conversation }, "the conversation does not fit the model for a cached summary: summarizing its folded part alone");
      const fallback = buildTranscriptSummaryRequest({ model: settings.model, maxTokens: config.maxTokens, summarizationPrompt: config.summarizationPrompt, transcript: transcript(split.fold) });
      return call(fallback, { ttl: "none", reason: "summary: the folded part alone (the conversation no longer fits the model)", gapMs: decided.gapMs }, 0);
    }
  }

  /** Fold the conversation into a summary plus its most recent turns. Repeated after a crash, it finds the work done. */
  async function summarize({ conversation }: { conversation: string }, signal: AbortSignal): Promise<SummarizeResult> {
    const config = deps.config();
    const settings = conversationSettings(config, conversation);
    try {
      const entries = await deps.history.entries(conversation);
      const split = splitForSummary(entries, config.keepRecentTurns);
      if (!split) return { ok: true, folded: 0, at: deps.now() };
      let summary: string;
      if (!deps.api) {
        summary = `(dry-run summary of ${split.fold.length} entries)`;
      } else {
        await deps.costs.spend.settled(); // its cost is added to today's spend, which counts the ledger first
        const reply = await summaryCall(deps.api, conversation, settings, entries, split, signal);
        summary = reply.text.trim() === "" ? "(the summary came back empty)" : reply.text;
      }
      await deps.crashPoint("before-summary-write");
      const at = new Date(deps.now()).toISOString();
      await deps.history.replace(conversation, [{ kind: "summary", id: `summary-${deps.now()}`, text: summary, folded: split.fold.length, at }, ...split.keep]);
      deps.log.info({ conversation, folded: split.fold.length, kept: split.keep.length }, "history summarized");
      return { ok: true, folded: split.fold.length, at: deps.now() };
    } catch (err) {
      return { ok: false, message: failureOf(err).message, at: deps.now() };
    }
  }

  return { callApi, commitTurn, summarize };
}

/** The root machine with the real conversation actors. */
export function provideMachines(deps: RelayDeps) {
  const actors = conversationActors(deps);
  const conversation = conversationMachine.provide({
    actors: {
      callApi: fromPromise(({ input, signal }) => actors.callApi(input, signal)),
      commitTurn: fromPromise(({ input }) => actors.commitTurn(input)),
      summarize: fromPromise(({ input, signal }) => actors.summarize(input, signal)),
    },
  });
  const decidePermission = permissionDecider(deps);
  const permissionDecision = permissionDecisionMachine.provide({ actors: { decidePermission: fromPromise(({ input, signal }) => decidePermission(input, signal)) } });
  return relayMachine.provide({ actors: { conversation, permissionDecision } });
}
