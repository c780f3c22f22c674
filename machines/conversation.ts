// One conversation with chat-Claude: its inputs are answered one at a time, in order. It asks
// the root for a slot before every API call (the root holds the global gate and the limit on
// calls in flight), commits each turn to the history, hands the reply to the root's deliveries,
// and holds itself, and only itself, while a question to JC is open.
//
//   idle → queued → calling → dispatching → idle
//                      ↘ backingOff (its own transient failures)      ↘ needsJc (a question)
//   queued → summarizing (the history is over the cap, or the request was too long) → queued | idle
import { assertEvent, assign, fromPromise, sendParent, setup } from "xstate";
import { backoffDelayMs } from "./backoff.js";
import {
  type CallResult,
  type CommitInput,
  type CommitResult,
  type Delivery,
  type Failure,
  messageOf,
  needsJcIn,
  type Note,
  type Question,
  questionIdFor,
  replyIdFor,
  type RetryState,
  type SummarizeResult,
  type WorkItem,
} from "./types.js";

export interface ConversationContext {
  id: string;
  /** the input being answered */
  current: WorkItem | null;
  /** chat-Claude's reply to `current`, until it is in the history */
  reply: string | null;
  /** JC chat turns for this conversation, answered before any envelope */
  chats: WorkItem[];
  /** JC's direct words to this conversation's sessions, recorded with the next commit */
  notes: Note[];
  /** the open question holding this conversation */
  question: Question | null;
  /** this conversation's own back-off (a 5xx, a dropped connection) */
  retry: RetryState | null;
  /** the next slot is for a summary: the history is over the cap, or the request was too long for the model */
  summaryDue: "overCap" | "tooLong" | null;
}

/** Events the root sends a conversation. */
export type ConversationEvent =
  | { type: "work.assigned"; item: WorkItem }
  | { type: "jc.chat"; item: WorkItem }
  | { type: "jc.direct"; note: Note }
  | { type: "call.granted" }
  | { type: "clock.tick"; now: number }
  | { type: "operator.resume" }
  | { type: "migration.restored"; current: WorkItem | null; reply: string | null; chats: WorkItem[]; notes: Note[]; question: Question | null; summaryDue: boolean };

/** Events a conversation sends the root. */
export type ConversationReport =
  | { type: "call.wanted"; conversation: string }
  /** called: the API answered this call (a probe that made no call proves nothing) */
  | { type: "call.finished"; conversation: string; failure: Failure | null; called: boolean; at: number; jitter: number }
  | { type: "turn.committed"; conversation: string; itemId: string | null; receipt: string | null; delivery: Delivery | null; question: Question | null; at: number }
  | { type: "question.opened"; question: Question }
  | { type: "envelope.refused"; conversation: string; item: WorkItem; reason: string; at: number }
  | { type: "conversation.failed"; conversation: string; message: string; at: number; fatal: boolean };

/** JC's notes a commit did not record: they arrived while it ran, and go with the next. */
const uncommitted = (notes: Note[], commit: CommitResult): Note[] => notes.filter((n) => !commit.noteIds.includes(n.id));

export const conversationMachine = setup({
  types: {
    context: {} as ConversationContext,
    events: {} as ConversationEvent,
    input: {} as { id: string },
  },
  actors: {
    callApi: fromPromise<CallResult, { conversation: string; item: WorkItem; notes: Note[] }>(() => Promise.reject(new Error("callApi is provided by src/runtime"))),
    commitTurn: fromPromise<CommitResult, CommitInput>(() => Promise.reject(new Error("commitTurn is provided by src/runtime"))),
    summarize: fromPromise<SummarizeResult, { conversation: string }>(() => Promise.reject(new Error("summarize is provided by src/runtime"))),
  },
  actions: {
    askForSlot: sendParent(({ context }): ConversationReport => ({ type: "call.wanted", conversation: context.id })),
    takeWork: assign(({ event }) => {
      assertEvent(event, "work.assigned");
      return { current: event.item };
    }),
    takeNextChat: assign(({ context }) => {
      const [next, ...rest] = context.chats;
      return next ? { current: next, chats: rest } : {};
    }),
    queueChat: assign(({ context, event }) => {
      assertEvent(event, "jc.chat");
      return { chats: [...context.chats, event.item] };
    }),
    /** JC's answer to this conversation's question: its chat turn goes first. */
    answerWithChat: assign(({ context, event }) => {
      assertEvent(event, "jc.chat");
      return { chats: [event.item, ...context.chats], question: null };
    }),
    keepNote: assign(({ context, event }) => {
      assertEvent(event, "jc.direct");
      return { notes: [...context.notes, event.note], question: null };
    }),
    /** The slot goes back to the root, with the failure if it concerns every call. */
    releaseSlot: sendParent(({ context }, p: { result: CallResult | null }): ConversationReport => {
      const failure = p.result && !p.result.ok && p.result.failure.kind !== "budget" ? p.result.failure : null;
      const called = p.result !== null && (p.result.ok ? p.result.called : p.result.failure.kind !== "budget");
      return { type: "call.finished", conversation: context.id, failure, called, at: p.result?.at ?? 0, jitter: p.result && !p.result.ok ? p.result.jitter : 0 };
    }),
    /** The turn is in the history: its reply (or its question) goes to the root. */
    reportCommit: sendParent(({ context }, p: { at: number }): ConversationReport => {
      const item = context.current;
      const asks = context.reply !== null && needsJcIn(context.reply);
      const delivery: Delivery | null =
        item && context.reply !== null && !asks
          ? { replyId: replyIdFor(item.id), session: item.session, inReplyTo: item.inReplyTo, source: item.source === "jc" ? "jc-chat" : "envelope", text: context.reply, at: p.at }
          : null;
      return { type: "turn.committed", conversation: context.id, itemId: item?.id ?? null, receipt: item?.receipt ?? null, delivery, question: asks ? context.question : null, at: p.at };
    }),
    restoreMigrated: assign(({ event }) => {
      assertEvent(event, "migration.restored");
      return { current: event.current, reply: event.reply, chats: event.chats, notes: event.notes, question: event.question, summaryDue: event.summaryDue ? ("overCap" as const) : null };
    }),
  },
  guards: {
    hasChat: ({ context }) => context.chats.length > 0,
    hasNotes: ({ context }) => context.notes.length > 0,
    hasWork: ({ context }) => context.current !== null,
    hasReply: ({ context }) => context.current !== null && context.reply !== null,
    summaryDue: ({ context }) => context.summaryDue !== null,
    /** a request too long for the model, with nothing left to fold: it cannot fit even alone */
    cannotFit: ({ context }, p: { result: SummarizeResult }) => context.summaryDue === "tooLong" && p.result.ok && p.result.folded === 0 && context.current !== null,
    migratedQuestion: ({ event }) => event.type === "migration.restored" && event.question !== null,
    retryDue: ({ context, event }) => event.type === "clock.tick" && context.retry !== null && event.now >= context.retry.nextAt,
    replyNeedsJc: ({ context }) => context.reply !== null && needsJcIn(context.reply),
    // Judgements on an actor's output arrive as params, so they have names in the chart.
    callSucceeded: (_, p: { result: CallResult }) => p.result.ok,
    failedOnItsOwn: (_, p: { result: CallResult }) => !p.result.ok && p.result.failure.kind === "transient",
    failedForEveryone: (_, p: { result: CallResult }) => !p.result.ok && (p.result.failure.kind === "rateLimited" || p.result.failure.kind === "permanent"),
    requestAtFault: (_, p: { result: CallResult }) => !p.result.ok && p.result.failure.kind === "envelope",
    requestTooLong: (_, p: { result: CallResult }) => !p.result.ok && p.result.failure.kind === "tooLong",
    budgetExhausted: (_, p: { result: CallResult }) => !p.result.ok && p.result.failure.kind === "budget",
    historyOverCap: (_, p: { commit: CommitResult }) => p.commit.overCap,
    summaryFailed: (_, p: { result: SummarizeResult }) => !p.result.ok,
  },
}).createMachine({
  id: "conversation",
  context: ({ input }) => ({ id: input.id, current: null, reply: null, chats: [], notes: [], question: null, retry: null, summaryDue: null }),
  initial: "idle",
  // JC may speak to a conversation at any time: a chat turn waits for the step under way, a
  // direct note is recorded with the next commit.
  on: {
    "jc.chat": { actions: "queueChat" },
    "jc.direct": { actions: "keepNote" },
  },
  states: {
    idle: {
      always: [
        { guard: "hasChat", target: "queued", actions: "takeNextChat" },
        { guard: "hasNotes", target: "dispatching" },
        { guard: "summaryDue", target: "queued" },
      ],
      on: {
        "work.assigned": { target: "queued", actions: "takeWork" },
        "migration.restored": [
          { guard: "migratedQuestion", target: "needsJc", actions: "restoreMigrated" },
          { target: "migrated", actions: "restoreMigrated" },
        ],
      },
    },
    /** Where a migrated conversation goes on: dispatching a reply it had, or calling again. */
    migrated: {
      always: [{ guard: "hasReply", target: "dispatching" }, { guard: "hasWork", target: "queued" }, { target: "idle" }],
    },
    /** Waiting for the root to grant an API call (the gate is open and a slot is free). */
    queued: {
      entry: "askForSlot",
      on: {
        "call.granted": [{ guard: "summaryDue", target: "summarizing" }, { guard: "hasWork", target: "calling" }, { target: "idle", actions: { type: "releaseSlot", params: { result: null } } }],
      },
    },
    calling: {
      invoke: {
        id: "callApi",
        src: "callApi",
        input: ({ context }) => ({ conversation: context.id, item: context.current as WorkItem, notes: context.notes }),
        onDone: [
          {
            guard: { type: "callSucceeded", params: ({ event }) => ({ result: event.output }) },
            target: "dispatching",
            actions: [assign(({ event }) => (event.output.ok ? { reply: event.output.text, retry: null } : {})), { type: "releaseSlot", params: ({ event }) => ({ result: event.output }) }],
          },
          {
            // 429, 529, auth: the root's gate closes for every conversation; ask again for a slot.
            guard: { type: "failedForEveryone", params: ({ event }) => ({ result: event.output }) },
            target: "queued",
            actions: { type: "releaseSlot", params: ({ event }) => ({ result: event.output }) },
          },
          {
            guard: { type: "failedOnItsOwn", params: ({ event }) => ({ result: event.output }) },
            target: "backingOff",
            actions: [
              assign(({ context, event }) => {
                if (event.output.ok) return {};
                const attempt = (context.retry?.attempt ?? 0) + 1;
                const { failure, at, jitter } = event.output;
                return { retry: { message: failure.message, attempt, nextAt: at + backoffDelayMs(attempt, jitter, failure.retryAfterMs), since: context.retry?.since ?? at } };
              }),
              { type: "releaseSlot", params: ({ event }) => ({ result: event.output }) },
            ],
          },
          {
            // The history no longer fits the model: summarize, then call again.
            guard: { type: "requestTooLong", params: ({ event }) => ({ result: event.output }) },
            target: "queued",
            actions: [assign({ summaryDue: "tooLong" as const }), { type: "releaseSlot", params: ({ event }) => ({ result: event.output }) }],
          },
          {
            // A budget ran out: no call was made. The envelope stays with the transport; JC decides.
            guard: { type: "budgetExhausted", params: ({ event }) => ({ result: event.output }) },
            target: "needsJc",
            actions: [
              { type: "releaseSlot", params: ({ event }) => ({ result: event.output }) },
              assign(({ context, event }) => {
                const item = context.current as WorkItem;
                const question: Question = {
                  id: questionIdFor(`budget-${item.id}-${event.output.at}`),
                  conversation: context.id,
                  session: item.session,
                  text: event.output.ok ? "" : event.output.failure.message,
                  since: event.output.at,
                  kind: "budget",
                  inReplyTo: null,
                };
                // A JC turn is put back first in line; an envelope goes back to the transport.
                return { question, current: null, chats: item.source === "jc" ? [item, ...context.chats] : context.chats };
              }),
              sendParent(({ context }): ConversationReport => ({ type: "question.opened", question: context.question as Question })),
            ],
          },
          {
            // The request itself was at fault (a 400 about this input): refuse it and move on.
            guard: { type: "requestAtFault", params: ({ event }) => ({ result: event.output }) },
            target: "idle",
            actions: [
              { type: "releaseSlot", params: ({ event }) => ({ result: event.output }) },
              sendParent(({ context, event }): ConversationReport => ({
                type: "envelope.refused",
                conversation: context.id,
                item: context.current as WorkItem,
                reason: event.output.ok ? "" : event.output.failure.message,
                at: event.output.at,
              })),
              assign({ current: null, retry: null }),
            ],
          },
        ],
        // The provided actor turns every failure into a value; an exception here is a bug. Back off
        // on our own (retried at the next clock tick) so nothing is lost.
        onError: {
          target: "backingOff",
          actions: [
            assign(({ context, event }) => ({
              retry: { message: messageOf(event.error), attempt: (context.retry?.attempt ?? 0) + 1, nextAt: 0, since: context.retry?.since ?? 0 },
            })),
            { type: "releaseSlot", params: { result: null } },
          ],
        },
      },
    },
    /** This conversation's own back-off; the clock (or `relay resume`) calls again. */
    backingOff: {
      on: {
        "clock.tick": { guard: "retryDue", target: "queued" },
        "operator.resume": { target: "queued" },
      },
    },
    /** The turn (and JC's notes) go into the history; then the reply goes to the deliveries. */
    dispatching: {
      invoke: {
        id: "commitTurn",
        src: "commitTurn",
        input: ({ context }) => ({
          conversation: context.id,
          turn: context.current && context.reply !== null ? { item: context.current, reply: context.reply } : null,
          notes: context.notes,
        }),
        onDone: [
          {
            guard: "replyNeedsJc",
            target: "needsJc",
            actions: [
              assign(({ context, event }) => {
                const item = context.current as WorkItem;
                return {
                  question: {
                    id: questionIdFor(item.id),
                    conversation: context.id,
                    session: item.session,
                    text: context.reply ?? "",
                    since: event.output.at,
                    kind: "reply" as const,
                    inReplyTo: item.inReplyTo,
                  },
                };
              }),
              { type: "reportCommit", params: ({ event }) => ({ at: event.output.at }) },
              assign(({ context, event }) => ({ current: null, reply: null, notes: uncommitted(context.notes, event.output) })),
            ],
          },
          {
            guard: { type: "historyOverCap", params: ({ event }) => ({ commit: event.output }) },
            target: "queued",
            actions: [{ type: "reportCommit", params: ({ event }) => ({ at: event.output.at }) }, assign(({ context, event }) => ({ current: null, reply: null, notes: uncommitted(context.notes, event.output), summaryDue: "overCap" as const }))],
          },
          { target: "idle", actions: [{ type: "reportCommit", params: ({ event }) => ({ at: event.output.at }) }, assign(({ context, event }) => ({ current: null, reply: null, notes: uncommitted(context.notes, event.output) }))] },
        ],
        // The history could not be written (disk full, read-only): the relay stops with the reason.
        onError: {
          target: "halted",
          actions: sendParent(({ context, event }): ConversationReport => ({ type: "conversation.failed", conversation: context.id, message: messageOf(event.error), at: 0, fatal: true })),
        },
      },
    },
    /** Fold the history into a summary plus its most recent turns (it holds a call slot). */
    summarizing: {
      invoke: {
        id: "summarize",
        src: "summarize",
        input: ({ context }) => ({ conversation: context.id }),
        onDone: [
          {
            guard: { type: "summaryFailed", params: ({ event }) => ({ result: event.output }) },
            target: "backingOff",
            actions: [
              assign(({ context, event }) => {
                const attempt = (context.retry?.attempt ?? 0) + 1;
                const message = event.output.ok ? "" : `summarization failed: ${event.output.message}`;
                return { retry: { message, attempt, nextAt: event.output.at + backoffDelayMs(attempt, 0.5), since: context.retry?.since ?? event.output.at } };
              }),
              sendParent(({ context, event }): ConversationReport => ({
                type: "call.finished",
                conversation: context.id,
                failure: { kind: "transient", message: context.retry?.message ?? "summarization failed" },
                called: false,
                at: event.output.at,
                jitter: 0.5,
              })),
            ],
          },
          {
            guard: { type: "cannotFit", params: ({ event }) => ({ result: event.output }) },
            target: "idle",
            actions: [
              sendParent(({ context, event }): ConversationReport => ({ type: "call.finished", conversation: context.id, failure: null, called: false, at: event.output.at, jitter: 0 })),
              sendParent(({ context, event }): ConversationReport => ({
                type: "envelope.refused",
                conversation: context.id,
                item: context.current as WorkItem,
                reason: "the message does not fit the model's context window even alone, after the rest of the conversation was summarized",
                at: event.output.at,
              })),
              assign({ current: null, summaryDue: null, retry: null }),
            ],
          },
          {
            // A call that was too long goes again; otherwise back to rest.
            guard: "hasWork",
            target: "queued",
            actions: [
              assign({ summaryDue: null, retry: null }),
              sendParent(({ context, event }): ConversationReport => ({ type: "call.finished", conversation: context.id, failure: null, called: false, at: event.output.at, jitter: 0 })),
            ],
          },
          {
            target: "idle",
            actions: [
              assign({ summaryDue: null, retry: null }),
              sendParent(({ context, event }): ConversationReport => ({ type: "call.finished", conversation: context.id, failure: null, called: false, at: event.output.at, jitter: 0 })),
            ],
          },
        ],
        onError: {
          target: "halted",
          actions: sendParent(({ context, event }): ConversationReport => ({ type: "conversation.failed", conversation: context.id, message: messageOf(event.error), at: 0, fatal: true })),
        },
      },
    },
    /** A question to JC is open: no call and no envelope for this conversation until JC answers. */
    needsJc: {
      on: {
        "jc.chat": { target: "idle", actions: "answerWithChat" },
        "jc.direct": { target: "idle", actions: "keepNote" },
      },
    },
    /** A write failed: the relay stops with the reason; the last persisted snapshot is kept. */
    halted: { type: "final" },
  },
});
