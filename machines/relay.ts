// The relay's root machine: it routes work to one child actor per conversation and holds what is
// global. Its states are the API gate: `available` (calls may start, up to max_parallel_calls at
// once), `backingOff` (a 429 or 529: every call waits), `paused` (the API refuses this key: every
// call waits for a probe, a restart or `relay resume`), `probing` (one call at a time tests the
// API again). In every state it routes envelopes and JC's answers, keeps the open questions, and
// keeps the deliveries: one input.txt per session, replies in order.
//
// No I/O here: the conversation's actors are stubs, provided by src/runtime/. Side effects arrive
// at the runtime as emitted events: envelope.finished, envelope.rejected, jc.consumed and
// jc.refused (performed once the snapshot that decided them is persisted), and notify.
import { type ActorRefFrom, assertEvent, assign, emit, enqueueActions, setup } from "xstate";
import { backoffDelayMs, PROBE_INTERVAL_MS } from "./backoff.js";
import { type ConversationReport, conversationMachine } from "./conversation.js";
import * as deliveries from "./deliveries.js";
import { type PermissionDecisionReport, permissionDecisionMachine } from "./permission-decision.js";
import { describeRule, type PolicyRule, policyRuleFor } from "./permission-policy.js";
import { allowsPermission, DECIDED_BY, type Delivery, type Failure, type NotifyParams, type PermissionRequest, type Question, replyIdFor, type RetryState, type StopFailure, type WorkItem } from "./types.js";

export type ConversationRef = ActorRefFrom<typeof conversationMachine>;

/** JC's answer as the operator module parsed it. */
export type JcAnswer =
  | { kind: "direct"; session: string; text: string }
  | { kind: "chat"; text: string; question?: string; session?: string };

export interface RelayContext extends deliveries.Deliveries {
  /** session id → its conversation id (from config.yaml) */
  routes: Record<string, string>;
  /** where JC's plain text goes with no question open and no envelope seen yet */
  defaultSession: string | null;
  maxParallel: number;
  conversations: Record<string, ConversationRef>;
  /** conversations holding a call slot */
  inFlight: string[];
  /** conversations waiting for a call slot, first come first served */
  waiting: string[];
  /** why the gate is closed, when it is */
  failure: (RetryState & { kind: "rateLimited" | "permanent" }) | null;
  questions: Question[];
  /** ids of recently finished inputs, so one seen again after a crash is not answered twice */
  done: string[];
  lastError: { message: string; at: number } | null;
  /** the session of the latest envelope taken, for JC's plain text */
  lastSession: string | null;
  /** `permissions.policy`: the prompts chat-Claude may decide alone (absent in older snapshots) */
  policy?: PolicyRule[];
  /** ids of permission prompts chat-Claude is deciding now (each a `policy-<id>` child) */
  deciding?: string[];
  /** the latest permission decisions, newest last, with who made them (for status) */
  permissionLog?: PermissionLogEntry[];
}

/** One decided permission prompt as status shows it. */
export interface PermissionLogEntry {
  id: string;
  session: string;
  allow: boolean;
  by: string;
  reason: string;
}
const PERMISSION_LOG_KEPT = 10;
const logged = (context: RelayContext, entry: PermissionLogEntry): PermissionLogEntry[] => [...(context.permissionLog ?? []), entry].slice(-PERMISSION_LOG_KEPT);

export type RelayEvent =
  | { type: "config.loaded"; routes: Record<string, string>; defaultSession: string | null; maxParallel: number; policy?: PolicyRule[] }
  | { type: "envelope.offered"; item: WorkItem; at: number }
  | { type: "jc.received"; id: string; answer: JcAnswer; at: number }
  | { type: "permission.requested"; request: PermissionRequest }
  | { type: "permission.withdrawn"; id: string }
  /** the StopFailure hook recorded a session's turn ending on an API error (the streak's latest) */
  | { type: "stopFailure.reported"; failure: StopFailure }
  | { type: "dispatch.delivered"; session: string; replyId: string }
  | { type: "dispatch.acknowledged"; session: string }
  | { type: "clock.tick"; now: number }
  | { type: "operator.resume" }
  | { type: "migration.v1"; state: MigratedState }
  | PermissionDecisionReport
  | ConversationReport;

/** What a snapshot of the single-machine version carried (see src/store/migrate-v1.ts). */
export interface MigratedState {
  outbox: Delivery[];
  unacked: string[];
  done: string[];
  lastSession: string | null;
  lastError: { message: string; at: number } | null;
  failure: (RetryState & { kind: "rateLimited" | "permanent" }) | null;
  /** per conversation: the input under way (and its reply), JC's waiting turns and notes, the open question */
  conversations: Record<string, { current: WorkItem | null; reply: string | null; chats: WorkItem[]; notes: { id: string; session: string; text: string }[]; question: Question | null; summaryDue: boolean }>;
}

export type RelayEmitted =
  | { type: "envelope.finished"; receipt: string }
  | { type: "envelope.rejected"; receipt: string; reason: string; at: number }
  | { type: "jc.consumed"; id: string }
  | { type: "jc.refused"; id: string; reason: string }
  /** a permission prompt answered: the hook waiting for it returns this decision */
  | { type: "permission.decided"; id: string; allow: boolean; reason: string; by: string }
  | ({ type: "notify" } & NotifyParams);

export const initialContext: RelayContext = {
  routes: {},
  defaultSession: null,
  maxParallel: 4,
  conversations: {},
  inFlight: [],
  waiting: [],
  failure: null,
  questions: [],
  outbox: {},
  unacked: [],
  done: [],
  lastError: null,
  lastSession: null,
  policy: [],
  deciding: [],
};

const DONE_KEPT = 500;
const remember = (done: string[], id: string): string[] => [...done.filter((d) => d !== id), id].slice(-DONE_KEPT);
const conversationOf = (context: RelayContext, session: string): string | undefined => context.routes[session];
/** The conversation's own question (a permission prompt is the agent's, and never holds a conversation). */
const questionOf = (context: RelayContext, conversation: string): Question | undefined =>
  context.questions.find((q) => q.conversation === conversation && q.kind !== "permission");

const withQuestion = (questions: Question[], question: Question): Question[] => [...questions.filter((q) => q.id !== question.id), question];
const needsJcNotice = (q: Question): RelayEmitted => ({ type: "notify", kind: "needsJc", session: q.session, questionId: q.id, message: q.text });
const decidingChild = (id: string): string => `policy-${id}`;
const shellWord = (word: string): string => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`);

/** What JC is told once per failure streak: the error, when the limit resets if known, and how to resume the session. */
export function stopFailureNotice(f: StopFailure): string {
  const resume = f.ccSession === null ? "claude --continue" : `claude --resume ${shellWord(f.ccSession)}`;
  const where = f.cwd === null ? resume : `cd ${shellWord(f.cwd)} && ${resume}`;
  return [
    `${f.session}: Claude Code's turn ended on an API error (${f.error}): ${f.message}`,
    f.resetsAt === null ? "Resume it once the limit has reset:" : `The limit resets ${f.resetsAt}; then resume it:`,
    where,
    `Replies waiting for ${f.session} are handed over as it starts; relay jc "@${f.session}: continue where you left off" queues an instruction for it now.`,
    "Further failures of this session are not notified until one of its turns ends normally.",
  ].join("\n");
}
/** A permission prompt in the relay's hands: before JC, before chat-Claude, or decided. */
const permissionKnown = (context: RelayContext, id: string): boolean =>
  context.questions.some((q) => q.id === id) || context.done.includes(id) || (context.deciding ?? []).includes(id);
/** A permission prompt as JC's question, Allow and Deny on the phone; `note` says why chat-Claude did not decide it. */
const permissionQuestion = (request: PermissionRequest, conversation: string, note: string | null): Question => ({
  id: request.id,
  conversation,
  session: request.session,
  text: note === null ? request.text : `${request.text} [${note}]`,
  since: request.since,
  kind: "permission",
  inReplyTo: null,
});

/** Where JC's answer goes, decided from the open questions and the routes (CONTRACT §6). */
export type JcRoute =
  | { kind: "direct"; conversation: string; session: string; question: Question | null }
  | { kind: "chat"; conversation: string; session: string; question: Question | null }
  | { kind: "refused"; reason: string };

export function routeJcAnswer(context: RelayContext, answer: JcAnswer): JcRoute {
  const known = (session: string) => conversationOf(context, session);
  if (answer.kind === "direct") {
    const conversation = known(answer.session);
    if (!conversation) return { kind: "refused", reason: `@${answer.session} is not a session in config.yaml` };
    return { kind: "direct", conversation, session: answer.session, question: questionOf(context, conversation) ?? null };
  }
  if (answer.question !== undefined) {
    const question = context.questions.find((q) => q.id === answer.question);
    if (!question) return { kind: "refused", reason: `question ${answer.question} is not open (answered already, or never asked)` };
    return { kind: "chat", conversation: question.conversation, session: question.session, question };
  }
  if (answer.session !== undefined) {
    const conversation = known(answer.session);
    if (!conversation) return { kind: "refused", reason: `session ${answer.session} is not in config.yaml` };
    return { kind: "chat", conversation, session: answer.session, question: questionOf(context, conversation) ?? null };
  }
  const oldest = context.questions[0];
  if (oldest) return { kind: "chat", conversation: oldest.conversation, session: oldest.session, question: oldest };
  const session = [context.lastSession, context.defaultSession].find((s): s is string => s !== null && known(s) !== undefined);
  if (!session) return { kind: "refused", reason: "no session is configured to receive JC's turn" };
  return { kind: "chat", conversation: known(session) as string, session, question: null };
}

/** The conversations that can take an envelope now: at rest, nothing of JC's waiting, no question. */
export function readyConversations(context: RelayContext): Set<string> {
  const ready = new Set<string>();
  for (const [id, ref] of Object.entries(context.conversations)) {
    const snap = ref.getSnapshot();
    if (snap.status === "active" && snap.value === "idle" && snap.context.chats.length === 0 && snap.context.notes.length === 0 && !snap.context.summaryDue) ready.add(id);
  }
  return ready;
}

export const relayMachine = setup({
  types: {
    context: {} as RelayContext,
    events: {} as RelayEvent,
    emitted: {} as RelayEmitted,
  },
  actors: { conversation: conversationMachine, permissionDecision: permissionDecisionMachine },
  actions: {
    loadConfig: enqueueActions(({ context, event, enqueue }) => {
      assertEvent(event, "config.loaded");
      const missing = [...new Set(Object.values(event.routes))].filter((c) => !context.conversations[c]);
      if (missing.length > 0) {
        enqueue.assign({
          conversations: ({ context: c, spawn }) => ({
            ...c.conversations,
            ...Object.fromEntries(missing.map((id) => [id, spawn("conversation", { id, input: { id } })])),
          }),
        });
      }
      enqueue.assign({ routes: event.routes, defaultSession: event.defaultSession, maxParallel: Math.max(1, event.maxParallel), policy: event.policy ?? [] });
    }),
    /** An envelope answered before a crash is finished again, not answered again. */
    finishAgain: emit(({ event }) => {
      assertEvent(event, "envelope.offered");
      return { type: "envelope.finished" as const, receipt: event.item.receipt ?? "" };
    }),
    assignEnvelope: enqueueActions(({ context, event, enqueue }) => {
      assertEvent(event, "envelope.offered");
      const ref = context.conversations[conversationOf(context, event.item.session) ?? ""];
      if (!ref) return;
      enqueue.sendTo(ref, { type: "work.assigned", item: event.item });
      enqueue.assign({ lastSession: event.item.session });
    }),
    takeJcAnswer: enqueueActions(({ context, event, enqueue }) => {
      assertEvent(event, "jc.received");
      const route = routeJcAnswer(context, event.answer);
      if (route.kind === "refused") {
        enqueue.emit({ type: "jc.refused", id: event.id, reason: route.reason });
        return;
      }
      const ref = context.conversations[route.conversation];
      if (!ref) {
        enqueue.emit({ type: "jc.refused", id: event.id, reason: `the conversation of ${route.session} is not running` });
        return;
      }
      if (route.question?.kind === "permission") {
        const { id } = route.question;
        const allow = allowsPermission(event.answer.text);
        enqueue.emit({ type: "permission.decided", id, allow, reason: event.answer.text, by: DECIDED_BY.jc });
        const entry: PermissionLogEntry = { id, session: route.question.session, allow, by: DECIDED_BY.jc, reason: event.answer.text };
        enqueue.assign(({ context: c }) => ({ questions: c.questions.filter((q) => q.id !== id), done: remember(remember(c.done, event.id), id), permissionLog: logged(c, entry) }));
        enqueue.emit({ type: "jc.consumed", id: event.id });
        return;
      }
      // JC's answer answers the asking envelope only for the session that asked.
      const inReplyTo = route.question && route.question.session === route.session ? route.question.inReplyTo : null;
      if (route.kind === "direct") {
        const reply: Delivery = { replyId: replyIdFor(event.id), session: route.session, inReplyTo, source: "jc-direct", text: event.answer.text, at: event.at };
        enqueue.assign(({ context: c }) => deliveries.enqueue(c, reply));
        enqueue.sendTo(ref, { type: "jc.direct", note: { id: event.id, session: route.session, text: event.answer.text } });
      } else {
        const item: WorkItem = { id: event.id, source: "jc", session: route.session, text: event.answer.text, inReplyTo };
        enqueue.sendTo(ref, { type: "jc.chat", item });
      }
      enqueue.assign(({ context: c }) => ({
        questions: route.question ? c.questions.filter((q) => q.id !== route.question?.id) : c.questions,
        done: remember(c.done, event.id),
      }));
      enqueue.emit({ type: "jc.consumed", id: event.id });
    }),
    forgetJcAgain: emit(({ event }) => {
      assertEvent(event, "jc.received");
      return { type: "jc.consumed" as const, id: event.id };
    }),
    markDelivered: assign(({ context, event }) => {
      assertEvent(event, "dispatch.delivered");
      return deliveries.delivered(context, event.session, event.replyId);
    }),
    markAcknowledged: assign(({ context, event }) => {
      assertEvent(event, "dispatch.acknowledged");
      return deliveries.acknowledged(context, event.session);
    }),
    /** A turn is in the history: its reply joins the deliveries, its envelope is finished. */
    takeCommit: enqueueActions(({ context, event, enqueue }) => {
      assertEvent(event, "turn.committed");
      let next: deliveries.Deliveries = context;
      if (event.delivery) next = deliveries.enqueue(next, event.delivery);
      enqueue.assign({ outbox: next.outbox, unacked: next.unacked, done: event.itemId ? remember(context.done, event.itemId) : context.done });
      if (event.question) {
        enqueue.assign({ questions: withQuestion(context.questions, event.question) });
        enqueue.emit(needsJcNotice(event.question));
      }
      if (event.receipt) enqueue.emit({ type: "envelope.finished", receipt: event.receipt });
    }),
    /**
     * A permission prompt: one `permissions.policy` covers goes to chat-Claude (while API calls
     * flow); any other becomes a question of its own, with Allow and Deny on JC's phone.
     */
    takePermissionRequest: enqueueActions(({ context, event, enqueue }) => {
      assertEvent(event, "permission.requested");
      const { request } = event;
      if (permissionKnown(context, request.id)) return;
      const conversation = conversationOf(context, request.session);
      if (!conversation) {
        enqueue.emit({ type: "permission.decided", id: request.id, allow: false, reason: `session ${request.session} is not in the relay's config.yaml`, by: DECIDED_BY.relay });
        enqueue.assign({ done: remember(context.done, request.id) });
        return;
      }
      const rule = policyRuleFor(context.policy ?? [], request);
      if (rule && context.failure === null) {
        enqueue.spawnChild("permissionDecision", { id: decidingChild(request.id), input: { request, rule } });
        enqueue.assign({ deciding: [...(context.deciding ?? []), request.id] });
        return;
      }
      const note = rule ? `permissions.policy lets chat-Claude decide ${describeRule(rule)}, but API calls are held (${context.failure?.message ?? "the API failed"}): JC decides` : null;
      const question = permissionQuestion(request, conversation, note);
      enqueue.assign({ questions: withQuestion(context.questions, question) });
      enqueue.emit({ type: "notify", kind: "permission", session: request.session, questionId: request.id, message: question.text });
    }),
    /** chat-Claude decided a prompt (allow or deny), or did not: then JC decides, told why. */
    takePolicyVerdict: enqueueActions(({ context, event, enqueue }) => {
      assertEvent(event, "permission.policyDecided");
      const { request, verdict } = event;
      enqueue.stopChild(decidingChild(request.id));
      enqueue.assign({ deciding: (context.deciding ?? []).filter((d) => d !== request.id) });
      if (context.done.includes(request.id)) return; // withdrawn meanwhile: the hook denied it
      if (verdict.kind !== "undecided") {
        enqueue.emit({ type: "permission.decided", id: request.id, allow: verdict.kind === "allow", reason: verdict.reason, by: DECIDED_BY.policy });
        enqueue.assign({ done: remember(context.done, request.id), permissionLog: logged(context, { id: request.id, session: request.session, allow: verdict.kind === "allow", by: DECIDED_BY.policy, reason: verdict.reason }) });
        return;
      }
      const conversation = conversationOf(context, request.session);
      if (!conversation) {
        enqueue.emit({ type: "permission.decided", id: request.id, allow: false, reason: `session ${request.session} is not in the relay's config.yaml`, by: DECIDED_BY.relay });
        enqueue.assign({ done: remember(context.done, request.id) });
        return;
      }
      const question = permissionQuestion(request, conversation, `chat-Claude did not decide: ${verdict.why}; JC decides`);
      enqueue.assign({ questions: withQuestion(context.questions, question) });
      enqueue.emit({ type: "notify", kind: "permission", session: request.session, questionId: request.id, message: question.text });
    }),
    /** The hook stopped waiting (its timeout denied it): a later answer to it, or chat-Claude's verdict, is refused. */
    withdrawPermission: enqueueActions(({ context, event, enqueue }) => {
      assertEvent(event, "permission.withdrawn");
      const asked = context.questions.find((q) => q.id === event.id);
      const deciding = (context.deciding ?? []).includes(event.id);
      if (!asked && !deciding) return;
      if (deciding) enqueue.stopChild(decidingChild(event.id));
      enqueue.assign({
        questions: context.questions.filter((q) => q.id !== event.id),
        deciding: (context.deciding ?? []).filter((d) => d !== event.id),
        done: remember(context.done, event.id),
        permissionLog: logged(context, { id: event.id, session: asked?.session ?? "", allow: false, by: DECIDED_BY.timeout, reason: "the hook stopped waiting (no answer in time)" }),
      });
    }),
    /** The first report of a streak notifies JC; the rest of the streak does not. */
    takeStopFailure: enqueueActions(({ context, event, enqueue }) => {
      assertEvent(event, "stopFailure.reported");
      const { failure } = event;
      if (context.done.includes(failure.streak)) return;
      enqueue.assign({ done: remember(context.done, failure.streak) });
      enqueue.emit({ type: "notify", kind: "stopFailure", session: failure.session, message: stopFailureNotice(failure) });
    }),
    takeQuestion: enqueueActions(({ context, event, enqueue }) => {
      assertEvent(event, "question.opened");
      enqueue.assign({ questions: withQuestion(context.questions, event.question) });
      enqueue.emit(needsJcNotice(event.question));
    }),
    refuseEnvelope: enqueueActions(({ context, event, enqueue }) => {
      assertEvent(event, "envelope.refused");
      enqueue.assign({ lastError: { message: event.reason, at: event.at } });
      if (event.item.receipt) enqueue.emit({ type: "envelope.rejected", receipt: event.item.receipt, reason: event.reason, at: event.at });
      else {
        // JC's own turn refused by the API: JC is told, in state/jc_input.rejected.txt
        enqueue.assign({ done: remember(context.done, event.item.id) });
        enqueue.emit({ type: "jc.refused", id: event.item.id, reason: `the API refused JC's turn: ${event.reason}` });
      }
    }),
    noteFailure: assign(({ event }) => {
      assertEvent(event, "conversation.failed");
      return { lastError: { message: event.message, at: event.at } };
    }),
    wantSlot: assign(({ context, event }) => {
      assertEvent(event, "call.wanted");
      return context.waiting.includes(event.conversation) || context.inFlight.includes(event.conversation) ? {} : { waiting: [...context.waiting, event.conversation] };
    }),
    releaseSlot: assign(({ context, event }) => {
      assertEvent(event, "call.finished");
      return { inFlight: context.inFlight.filter((c) => c !== event.conversation) };
    }),
    /** Start as many waiting calls as the limit allows. */
    grantSlots: enqueueActions(({ context, enqueue }, p: { limit: "max" | "one" }) => {
      const limit = p.limit === "max" ? context.maxParallel : 1;
      const free = Math.max(0, limit - context.inFlight.length);
      const granted = context.waiting.filter((c) => context.conversations[c]).slice(0, free);
      if (granted.length === 0) return;
      enqueue.assign({ inFlight: [...context.inFlight, ...granted], waiting: context.waiting.filter((c) => !granted.includes(c)) });
      for (const c of granted) enqueue.sendTo(context.conversations[c] as ConversationRef, { type: "call.granted" });
    }),
    /** A 429 or 529 closes the gate for everyone, with back-off and jitter, honouring retry-after. */
    backOff: enqueueActions(({ context, event, enqueue }) => {
      assertEvent(event, "call.finished");
      const failure = event.failure as Failure;
      const attempt = (context.failure?.kind === "rateLimited" ? context.failure.attempt : 0) + 1;
      enqueue.assign({
        failure: { kind: "rateLimited", message: failure.message, attempt, nextAt: event.at + backoffDelayMs(attempt, event.jitter, failure.retryAfterMs), since: context.failure?.since ?? event.at },
        lastError: { message: failure.message, at: event.at },
      });
      if (attempt === 1) enqueue.emit({ type: "notify", kind: "failureStarted", message: failure.message });
    }),
    pause: enqueueActions(({ context, event, enqueue }) => {
      assertEvent(event, "call.finished");
      const failure = event.failure as Failure;
      const attempt = (context.failure?.kind === "permanent" ? context.failure.attempt : 0) + 1;
      enqueue.assign({
        failure: { kind: "permanent", message: failure.message, attempt, nextAt: event.at + PROBE_INTERVAL_MS, since: context.failure?.kind === "permanent" ? context.failure.since : event.at },
        lastError: { message: failure.message, at: event.at },
      });
      if (attempt === 1) enqueue.emit({ type: "notify", kind: "paused", message: failure.message });
    }),
    reopen: enqueueActions(({ context, enqueue }) => {
      if (context.failure) enqueue.emit({ type: "notify", kind: "failureEnded", message: `API calls work again after ${context.failure.attempt} failed attempt(s).` });
      enqueue.assign({ failure: null });
    }),
    forwardToConversations: enqueueActions(({ context, event, enqueue }) => {
      for (const ref of Object.values(context.conversations)) enqueue.sendTo(ref, event as { type: "clock.tick"; now: number } | { type: "operator.resume" });
    }),
    restoreV1: enqueueActions(({ context, event, enqueue }) => {
      assertEvent(event, "migration.v1");
      const { state } = event;
      let next: deliveries.Deliveries = { outbox: {}, unacked: state.unacked };
      for (const reply of state.outbox) next = deliveries.enqueue(next, reply);
      const questions = Object.values(state.conversations).flatMap((c) => (c.question ? [c.question] : []));
      enqueue.assign({ outbox: next.outbox, unacked: next.unacked, done: state.done, lastSession: state.lastSession, lastError: state.lastError, failure: state.failure, questions });
      for (const [id, c] of Object.entries(state.conversations)) {
        const ref = context.conversations[id];
        if (ref) enqueue.sendTo(ref, { type: "migration.restored", current: c.current, reply: c.reply, chats: c.chats, notes: c.notes, question: c.question, summaryDue: c.summaryDue });
      }
    }),
  },
  guards: {
    answeredBefore: ({ context, event }) => (event.type === "envelope.offered" || event.type === "jc.received") && context.done.includes(event.type === "envelope.offered" ? event.item.id : event.id),
    rateLimited: ({ event }) => event.type === "call.finished" && event.failure?.kind === "rateLimited",
    refused: ({ event }) => event.type === "call.finished" && event.failure?.kind === "permanent",
    callWorked: ({ event }) => event.type === "call.finished" && event.failure === null && event.called,
    probeDue: ({ context, event }) => event.type === "clock.tick" && context.failure !== null && event.now >= context.failure.nextAt,
    gateWasClosed: ({ event }) => event.type === "migration.v1" && event.state.failure !== null,
    fatal: ({ event }) => event.type === "conversation.failed" && event.fatal,
  },
}).createMachine({
  id: "relay",
  context: initialContext,
  initial: "available",
  // Routing, questions and deliveries work the same whatever the gate's state.
  on: {
    "config.loaded": { actions: "loadConfig" },
    "envelope.offered": [{ guard: "answeredBefore", actions: "finishAgain" }, { actions: "assignEnvelope" }],
    "jc.received": [{ guard: "answeredBefore", actions: "forgetJcAgain" }, { actions: "takeJcAnswer" }],
    "dispatch.delivered": { actions: "markDelivered" },
    "dispatch.acknowledged": { actions: "markAcknowledged" },
    "turn.committed": { actions: "takeCommit" },
    "question.opened": { actions: "takeQuestion" },
    "permission.requested": { actions: "takePermissionRequest" },
    "permission.withdrawn": { actions: "withdrawPermission" },
    "permission.policyDecided": { actions: "takePolicyVerdict" },
    "stopFailure.reported": { actions: "takeStopFailure" },
    "envelope.refused": { actions: "refuseEnvelope" },
    "conversation.failed": [{ guard: "fatal", target: ".halted", actions: "noteFailure" }, { actions: "noteFailure" }],
    "migration.v1": [{ guard: "gateWasClosed", target: ".probing", actions: "restoreV1" }, { actions: "restoreV1" }],
    "clock.tick": { actions: "forwardToConversations" },
    "operator.resume": { actions: "forwardToConversations" },
  },
  states: {
    available: {
      entry: { type: "grantSlots", params: { limit: "max" } },
      on: {
        "call.wanted": { actions: ["wantSlot", { type: "grantSlots", params: { limit: "max" } }] },
        "call.finished": [
          { guard: "rateLimited", target: "backingOff", actions: ["releaseSlot", "backOff"] },
          { guard: "refused", target: "paused", actions: ["releaseSlot", "pause"] },
          { actions: ["releaseSlot", { type: "grantSlots", params: { limit: "max" } }] },
        ],
      },
    },
    /** A 429 or 529: no call starts until the back-off is over; then one call probes. */
    backingOff: {
      on: {
        "call.wanted": { actions: "wantSlot" },
        "call.finished": [
          { guard: "rateLimited", actions: ["releaseSlot", "backOff"] },
          { guard: "refused", target: "paused", actions: ["releaseSlot", "pause"] },
          { actions: "releaseSlot" },
        ],
        "clock.tick": { guard: "probeDue", target: "probing", actions: "forwardToConversations" },
        "operator.resume": { target: "probing", actions: "forwardToConversations" },
      },
    },
    /** The API refuses this key (authentication, permission, credit, spend limit): JC must act. */
    paused: {
      on: {
        "call.wanted": { actions: "wantSlot" },
        "call.finished": [{ guard: "refused", actions: ["releaseSlot", "pause"] }, { actions: "releaseSlot" }],
        "clock.tick": { guard: "probeDue", target: "probing", actions: "forwardToConversations" },
        "operator.resume": { target: "probing", actions: "forwardToConversations" },
      },
    },
    /** One call at a time tests the API: if it works the gate opens, else it closes again. */
    probing: {
      entry: { type: "grantSlots", params: { limit: "one" } },
      on: {
        "call.wanted": { actions: ["wantSlot", { type: "grantSlots", params: { limit: "one" } }] },
        "call.finished": [
          { guard: "rateLimited", target: "backingOff", actions: ["releaseSlot", "backOff"] },
          { guard: "refused", target: "paused", actions: ["releaseSlot", "pause"] },
          { guard: "callWorked", target: "available", actions: ["releaseSlot", "reopen"] },
          { actions: ["releaseSlot", { type: "grantSlots", params: { limit: "one" } }] },
        ],
      },
    },
    /** A write failed: the runtime exits with the reason; the last persisted snapshot is kept. */
    halted: { type: "final" },
  },
});
