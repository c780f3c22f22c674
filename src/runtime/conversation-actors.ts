// The conversation's actors, made from the deps: the API call, the commit of a turn to the
// history, and the summary. Every failure comes back as a value the machine decides on.
import { fromPromise } from "xstate";
import { conversationMachine } from "../../machines/conversation.js";
import { permissionDecisionMachine } from "../../machines/permission-decision.js";
import { relayMachine } from "../../machines/relay.js";
import type { CallResult, CommitInput, CommitResult, Note, SummarizeResult, WorkItem } from "../../machines/types.js";
import { buildReplyRequest, buildSummaryRequest, classifyFailure, type ApiReply } from "../anthropic/messages.js";
import type { RelayConfig, SessionConfig } from "../config/config.js";
import { budgetExhausted } from "../costs/budget.js";
import { noteEntry, splitForSummary, transcript, turnEntry, type HistoryEntry } from "../history/conversation-store.js";
import { recordApiCall, worstCaseUsd } from "./api-calls.js";
import type { RelayDeps } from "./deps.js";
import { permissionDecider } from "./permission-decider.js";

export const DRY_RUN_PREFIX = "[relay dry-run] Received";

/** A session removed from config.yaml while its turn was in flight is answered in the shared conversation. */
export const sessionOf = (config: RelayConfig, id: string): SessionConfig =>
  config.sessions.find((s) => s.id === id) ?? { id, conversation: "shared", systemPrompt: config.systemPrompt, model: config.model };

/** The conversation's prompt and model: those of its sessions (they share them). */
const conversationSettings = (config: RelayConfig, conversation: string): SessionConfig =>
  config.sessions.find((s) => s.conversation === conversation) ?? { id: conversation, conversation, systemPrompt: config.systemPrompt, model: config.model };

export function conversationActors(deps: RelayDeps) {
  const record = (session: SessionConfig, conversation: string, purpose: "reply" | "summary", reply: ApiReply) => recordApiCall(deps, { session: session.id, conversation, purpose, reply });

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
      const request = buildReplyRequest({
        model: session.model,
        maxTokens: config.maxTokens,
        systemPrompt: session.systemPrompt,
        history: await deps.history.entries(conversation),
        notes,
        item,
        cacheTtl: config.cacheTtl,
      });
      // The budget check and the reservation happen together, with nothing awaited between them,
      // so calls in parallel cannot together spend past a budget. JC's own chat turns are JC's
      // decision to spend; envelopes wait when a budget is spent.
      const overBudget = item.source === "envelope" ? budgetExhausted(config, deps.costs.spend, item.session) : null;
      if (overBudget) return { ok: false, failure: overBudget, at: deps.now(), jitter: 0 };
      if (!deps.api) return { ok: true, text: `${DRY_RUN_PREFIX} ${item.text.length} characters from ${item.session}. (No API call was made.)`, at: deps.now(), called: false };
      const release = deps.costs.spend.reserve(item.session, worstCaseUsd(session.model, JSON.stringify(request.messages).length, config.maxTokens, config.prices));
      try {
        const reply = await deps.api.call(request, signal);
        record(session, conversation, "reply", reply);
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
        const reply = await deps.api.call(
          buildSummaryRequest({ model: settings.model, maxTokens: config.maxTokens, summarizationPrompt: config.summarizationPrompt, transcript: transcript(split.fold) }),
          signal,
        );
        record(settings, conversation, "summary", reply);
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
