// The relay's control flow: every state it can be in and why it moves. No I/O here: actors are
// typed stubs and `notify` is a no-op; src/daemon.ts provides the real ones through `.provide()`.
import { assign, enqueueActions, fromPromise, setup } from "xstate";
import { backoffDelayMs, PROBE_INTERVAL_MS } from "./backoff.js";

/** An incoming message the relay answers: an envelope from queue/ or a JC chat turn. */
export interface WorkItem {
  id: string;
  source: "envelope" | "jc";
  session: string;
  text: string;
  /** queue/ file name, for envelopes */
  file?: string;
  /** the envelope's own ISO timestamp, when it had one */
  timestamp?: string;
}

/** A JC `@session: text` direct dispatch, recorded in that session's conversation. */
export interface Note {
  id: string;
  session: string;
  text: string;
}

export interface OutboxReply {
  id: string;
  text: string;
  /** the reply's staging file exists and is about to become input.txt (see src/dispatch.ts) */
  staged: boolean;
}

export interface Failure {
  /** transient: retry with back-off; permanent: pause; envelope: reject it; budget: ask JC first */
  kind: "transient" | "permanent" | "envelope" | "budget";
  message: string;
  status?: number;
  retryAfterMs?: number;
}

export type CallResult =
  | { ok: true; text: string; at: number }
  | { ok: false; failure: Failure; at: number; jitter: number };

export interface CommitInput {
  turn: { item: WorkItem; reply: string } | null;
  notes: Note[];
}
export interface CommitResult {
  /** the conversations this commit pushed past the char cap */
  overCap: string[];
  noteIds: string[];
  at: number;
}

export type SummarizeResult = { ok: true } | { ok: false; message: string };

export interface RelayContext {
  current: WorkItem | null;
  reply: string | null;
  notes: Note[];
  jcChats: WorkItem[];
  outbox: Record<string, OutboxReply[]>;
  /** sessions whose dispatch/<id>/input.txt exists */
  unacked: string[];
  needsJc: { session: string; question: string; since: number } | null;
  failure: { kind: "transient" | "permanent"; message: string; attempt: number; nextAt: number; since: number } | null;
  lastError: { message: string; at: number } | null;
  lastSession: string | null;
  /** ids of recently finished inputs, so a file seen again after a crash is not answered twice */
  done: string[];
  /** envelopes the API refused as their own fault, for the daemon to move to queue/.rejected/ */
  rejections: { id: string; file: string; reason: string; at: number }[];
  /** conversations past the char cap, to summarize */
  overCap: string[];
}

export type RelayEvent =
  | { type: "queue.envelopeFound"; item: WorkItem; at: number }
  | { type: "jc.inputFound"; id: string; text: string; direct: { session: string; text: string } | null; defaultSession: string; at: number }
  | { type: "dispatch.staged"; session: string; id: string }
  | { type: "dispatch.delivered"; session: string; id: string }
  | { type: "dispatch.acknowledged"; session: string }
  | { type: "queue.rejectionFiled"; id: string }
  | { type: "clock.tick"; now: number }
  | { type: "operator.resume" };

export type NotifyKind = "needsJc" | "failureStarted" | "failureEnded" | "paused" | "error";
export interface NotifyParams {
  kind: NotifyKind;
  session?: string;
  message: string;
}

export { stateName } from "./state-name.js";

/** A relay that has done nothing yet. */
export const initialContext: RelayContext = {
  current: null,
  reply: null,
  notes: [],
  jcChats: [],
  outbox: {},
  unacked: [],
  needsJc: null,
  failure: null,
  lastError: null,
  lastSession: null,
  done: [],
  rejections: [],
  overCap: [],
};

const DONE_KEPT = 200;
const NEEDS_JC_MARK = "[NEEDS-JC]";
const NEEDS_JC_WINDOW = 200;

export const needsJcIn = (reply: string): boolean => reply.slice(0, NEEDS_JC_WINDOW).includes(NEEDS_JC_MARK);

const remember = (done: string[], id: string): string[] => [...done.filter((d) => d !== id), id].slice(-DONE_KEPT);

const enqueueReply = (outbox: RelayContext["outbox"], session: string, id: string, text: string): RelayContext["outbox"] => ({
  ...outbox,
  [session]: [...(outbox[session] ?? []), { id, text, staged: false }],
});

/** After the turn is in the history: hand its reply to the outbox and forget the work item. */
const finishTurn = (context: RelayContext, noteIds: string[]): Partial<RelayContext> => {
  const { current, reply } = context;
  return {
    current: null,
    reply: null,
    notes: context.notes.filter((n) => !noteIds.includes(n.id)),
    outbox: current && reply !== null ? enqueueReply(context.outbox, current.session, current.id, reply) : context.outbox,
    done: current?.file ? remember(context.done, current.id) : context.done,
  };
};

const isJc = (e: RelayEvent): e is Extract<RelayEvent, { type: "jc.inputFound" }> => e.type === "jc.inputFound";

export const relayMachine = setup({
  types: {
    context: {} as RelayContext,
    events: {} as RelayEvent,
  },
  actors: {
    callApi: fromPromise<CallResult, { item: WorkItem; notes: Note[] }>(() =>
      Promise.reject(new Error("callApi is provided by src/daemon.ts")),
    ),
    commitTurn: fromPromise<CommitResult, CommitInput>(() =>
      Promise.reject(new Error("commitTurn is provided by src/daemon.ts")),
    ),
    summarize: fromPromise<SummarizeResult, { conversations: string[] }>(() =>
      Promise.reject(new Error("summarize is provided by src/daemon.ts")),
    ),
  },
  actions: {
    notify: (_, _params: NotifyParams) => {},
    /** JC's `@session: text`: a reply queued without an API call, and a note for the history. */
    dispatchDirect: assign(({ context, event }) => {
      if (!isJc(event) || !event.direct) return {};
      const { session, text } = event.direct;
      return {
        outbox: enqueueReply(context.outbox, session, event.id, text),
        notes: [...context.notes, { id: event.id, session, text }],
        done: remember(context.done, event.id),
        needsJc: null,
      };
    }),
    /** JC's plain text: the next chat turn, for the session that asked, else the latest one. */
    queueJcChat: assign(({ context, event }) => {
      if (!isJc(event)) return {};
      const session = context.needsJc?.session ?? context.lastSession ?? event.defaultSession;
      const item: WorkItem = { id: event.id, source: "jc", session, text: event.text };
      return { jcChats: [...context.jcChats, item], done: remember(context.done, event.id), needsJc: null };
    }),
    startNextJcChat: assign(({ context }) => {
      const [next, ...rest] = context.jcChats;
      return next ? { current: next, jcChats: rest, lastSession: next.session } : {};
    }),
    takeEnvelope: assign(({ event }) =>
      event.type === "queue.envelopeFound" ? { current: event.item, lastSession: event.item.session } : {},
    ),
    markStaged: assign(({ context, event }) => {
      if (event.type !== "dispatch.staged") return {};
      const queue = context.outbox[event.session] ?? [];
      return {
        outbox: {
          ...context.outbox,
          [event.session]: queue.map((r) => (r.id === event.id ? { ...r, staged: true } : r)),
        },
      };
    }),
    markDelivered: assign(({ context, event }) => {
      if (event.type !== "dispatch.delivered") return {};
      const queue = (context.outbox[event.session] ?? []).filter((r) => r.id !== event.id);
      const { [event.session]: _, ...others } = context.outbox;
      return {
        outbox: queue.length > 0 ? { ...others, [event.session]: queue } : others,
        unacked: context.unacked.includes(event.session) ? context.unacked : [...context.unacked, event.session],
      };
    }),
    markAcknowledged: assign(({ context, event }) =>
      event.type === "dispatch.acknowledged" ? { unacked: context.unacked.filter((s) => s !== event.session) } : {},
    ),
    forgetRejection: assign(({ context, event }) =>
      event.type === "queue.rejectionFiled" ? { rejections: context.rejections.filter((r) => r.id !== event.id) } : {},
    ),
  },
  guards: {
    isDirect: ({ event }) => isJc(event) && event.direct !== null,
    hasJcChat: ({ context }) => context.jcChats.length > 0,
    hasNotes: ({ context }) => context.notes.length > 0,
    awaitingAnyAck: ({ context }) => context.unacked.length > 0 || Object.keys(context.outbox).length > 0,
    replyNeedsJc: ({ context }) => context.reply !== null && needsJcIn(context.reply),
    // Judgements on an actor's output arrive as params, so they have names in the chart.
    callSucceeded: (_, p: { result: CallResult }) => p.result.ok,
    failureIsTransient: (_, p: { result: CallResult }) => !p.result.ok && p.result.failure.kind === "transient",
    failureIsPermanent: (_, p: { result: CallResult }) => !p.result.ok && p.result.failure.kind === "permanent",
    requestAtFault: (_, p: { result: CallResult }) => !p.result.ok && p.result.failure.kind === "envelope",
    budgetExhausted: (_, p: { result: CallResult }) => !p.result.ok && p.result.failure.kind === "budget",
    historyOverCap: (_, p: { commit: CommitResult }) => p.commit.overCap.length > 0,
    summaryFailed: (_, p: { result: SummarizeResult }) => !p.result.ok,
    nothingAwaitingAck: ({ context }) => context.unacked.length === 0 && Object.keys(context.outbox).length === 0,
    retryDue: ({ context, event }) => event.type === "clock.tick" && context.failure !== null && event.now >= context.failure.nextAt,
  },
}).createMachine({
  id: "relay",
  context: initialContext,
  initial: "idle",
  // Facts that can arrive in any state. JC input takes priority over the queue at any time:
  // a direct dispatch is queued at once, a chat turn waits only for the step under way.
  on: {
    "jc.inputFound": [{ guard: "isDirect", actions: "dispatchDirect" }, { actions: "queueJcChat" }],
    "dispatch.staged": { actions: "markStaged" },
    "dispatch.delivered": { actions: "markDelivered" },
    "dispatch.acknowledged": { actions: "markAcknowledged" },
    "queue.rejectionFiled": { actions: "forgetRejection" },
  },
  states: {
    idle: {
      always: [
        { guard: "hasJcChat", target: "calling", actions: "startNextJcChat" },
        { guard: "hasNotes", target: "dispatching" },
        { guard: "awaitingAnyAck", target: "awaitingAck" },
      ],
      on: { "queue.envelopeFound": { target: "calling", actions: "takeEnvelope" } },
    },
    awaitingAck: {
      always: [
        { guard: "hasJcChat", target: "calling", actions: "startNextJcChat" },
        { guard: "hasNotes", target: "dispatching" },
        { guard: "nothingAwaitingAck", target: "idle" },
      ],
      on: { "queue.envelopeFound": { target: "calling", actions: "takeEnvelope" } },
    },
    calling: {
      invoke: {
        src: "callApi",
        input: ({ context }) => ({ item: context.current as WorkItem, notes: context.notes }),
        onDone: [
          {
            guard: { type: "callSucceeded", params: ({ event }) => ({ result: event.output }) },
            target: "dispatching",
            actions: enqueueActions(({ context, event, enqueue }) => {
              if (!event.output.ok) return;
              if (context.failure) {
                enqueue({ type: "notify", params: { kind: "failureEnded", message: `API calls work again after ${context.failure.attempt} failed attempt(s).` } });
              }
              enqueue.assign({ reply: event.output.text, failure: null });
            }),
          },
          {
            guard: { type: "failureIsTransient", params: ({ event }) => ({ result: event.output }) },
            target: "backingOff",
            actions: [
              assign(({ context, event }) => {
                if (event.output.ok) return {};
                const attempt = (context.failure?.kind === "transient" ? context.failure.attempt : 0) + 1;
                const { failure, at, jitter } = event.output;
                return {
                  failure: {
                    kind: "transient" as const,
                    message: failure.message,
                    attempt,
                    nextAt: at + backoffDelayMs(attempt, jitter, failure.retryAfterMs),
                    since: context.failure?.since ?? at,
                  },
                  lastError: { message: failure.message, at },
                };
              }),
              // One notification when a failure streak starts, not one per attempt.
              enqueueActions(({ context, enqueue }) => {
                if (context.failure?.attempt === 1) {
                  enqueue({ type: "notify", params: { kind: "failureStarted", message: context.failure.message } });
                }
              }),
            ],
          },
          {
            guard: { type: "failureIsPermanent", params: ({ event }) => ({ result: event.output }) },
            target: "paused",
            actions: [
              assign(({ context, event }) => {
                if (event.output.ok) return {};
                const { failure, at } = event.output;
                return {
                  failure: {
                    kind: "permanent" as const,
                    message: failure.message,
                    attempt: (context.failure?.kind === "permanent" ? context.failure.attempt : 0) + 1,
                    nextAt: at + PROBE_INTERVAL_MS,
                    since: context.failure?.kind === "permanent" ? context.failure.since : at,
                  },
                  lastError: { message: failure.message, at },
                };
              }),
              enqueueActions(({ context, enqueue }) => {
                if (context.failure?.attempt === 1) {
                  enqueue({ type: "notify", params: { kind: "paused", message: context.failure.message } });
                }
              }),
            ],
          },
          {
            // A budget ran out: no call was made. The envelope goes back to the queue (it was never
            // removed from it) and JC decides.
            guard: { type: "budgetExhausted", params: ({ event }) => ({ result: event.output }) },
            target: "needsJc",
            actions: [
              assign(({ context, event }) => {
                if (event.output.ok || !context.current) return {};
                return {
                  needsJc: { session: context.current.session, question: event.output.failure.message, since: event.output.at },
                  current: null,
                  failure: null,
                };
              }),
              {
                type: "notify",
                params: ({ context }) => ({ kind: "needsJc" as const, session: context.needsJc?.session ?? "", message: context.needsJc?.question ?? "" }),
              },
            ],
          },
          {
            // The request itself was at fault (a 400 about this envelope): reject it and move on.
            guard: { type: "requestAtFault", params: ({ event }) => ({ result: event.output }) },
            target: "idle",
            actions: assign(({ context, event }) => {
              if (event.output.ok || !context.current) return {};
              const { failure, at } = event.output;
              const { current } = context;
              return {
                current: null,
                failure: null,
                lastError: { message: failure.message, at },
                rejections: current.file
                  ? [...context.rejections, { id: current.id, file: current.file, reason: failure.message, at }]
                  : context.rejections,
                done: current.file ? context.done : remember(context.done, current.id),
              };
            }),
          },
        ],
        // An exception is a bug or an unforeseen failure: treat it as transient so nothing is lost.
        onError: {
          target: "backingOff",
          actions: assign(({ context, event }) => {
            const at = Date.now();
            const attempt = (context.failure?.attempt ?? 0) + 1;
            const message = event.error instanceof Error ? event.error.message : String(event.error);
            return {
              failure: { kind: "transient" as const, message, attempt, nextAt: at + backoffDelayMs(attempt, 0.5), since: context.failure?.since ?? at },
              lastError: { message, at },
            };
          }),
        },
      },
    },
    backingOff: {
      on: {
        "clock.tick": { guard: "retryDue", target: "calling" },
        "operator.resume": { target: "calling" },
      },
    },
    paused: {
      on: {
        "clock.tick": { guard: "retryDue", target: "calling" },
        "operator.resume": { target: "calling" },
      },
    },
    dispatching: {
      invoke: {
        src: "commitTurn",
        input: ({ context }) => ({
          turn: context.current && context.reply !== null ? { item: context.current, reply: context.reply } : null,
          notes: context.notes,
        }),
        onDone: [
          {
            guard: "replyNeedsJc",
            target: "needsJc",
            actions: [
              assign(({ context, event }) => ({
                ...finishTurn({ ...context, reply: null }, event.output.noteIds),
                needsJc:
                  context.current && context.reply !== null
                    ? { session: context.current.session, question: context.reply, since: event.output.at }
                    : null,
              })),
              {
                type: "notify",
                params: ({ context }) => ({
                  kind: "needsJc" as const,
                  session: context.needsJc?.session ?? "",
                  message: context.needsJc?.question ?? "",
                }),
              },
            ],
          },
          {
            guard: { type: "historyOverCap", params: ({ event }) => ({ commit: event.output }) },
            target: "summarizing",
            actions: assign(({ context, event }) => ({ ...finishTurn(context, event.output.noteIds), overCap: event.output.overCap })),
          },
          { target: "idle", actions: assign(({ context, event }) => finishTurn(context, event.output.noteIds)) },
        ],
        // The history could not be written (disk full, read-only): the daemon stops with the reason.
        onError: {
          target: "halted",
          actions: assign(({ event }) => ({
            lastError: { message: event.error instanceof Error ? event.error.message : String(event.error), at: Date.now() },
          })),
        },
      },
    },
    summarizing: {
      invoke: {
        src: "summarize",
        input: ({ context }) => ({ conversations: context.overCap }),
        onDone: [
          {
            guard: { type: "summaryFailed", params: ({ event }) => ({ result: event.output }) },
            target: "idle",
            actions: [
              assign(({ event }) => (event.output.ok ? {} : { overCap: [], lastError: { message: `summarization failed: ${event.output.message}`, at: Date.now() } })),
              { type: "notify", params: ({ context }) => ({ kind: "error" as const, message: context.lastError?.message ?? "summarization failed" }) },
            ],
          },
          { target: "idle", actions: assign({ overCap: [] }) },
        ],
        onError: { target: "halted", actions: assign(({ event }) => ({ lastError: { message: String(event.error), at: Date.now() } })) },
      },
    },
    needsJc: {
      on: {
        "jc.inputFound": [
          { guard: "isDirect", target: "dispatching", actions: "dispatchDirect" },
          { target: "calling", actions: ["queueJcChat", "startNextJcChat"] },
        ],
      },
    },
    /** A write failed: the daemon exits with the reason; the last persisted snapshot is kept. */
    halted: { type: "final" },
  },
});
