// The public read model (state/status.json) derived from the machines' snapshot: what the relay
// is doing, the open questions, each conversation and session, costs. Pure: the runtime passes in
// the facts that live outside the machines (history sizes, cost totals).
import type { SnapshotFrom } from "xstate";
import * as deliveries from "../../machines/deliveries.js";
import type { relayMachine } from "../../machines/relay.js";
import { STATUS_FORMAT, type ConversationView, type QuestionView, type StatusFile } from "./status-file.js";

type RootSnapshot = SnapshotFrom<typeof relayMachine>;

export interface StatusFacts {
  pid: number;
  now: number;
  /** characters and turns in each conversation's history */
  history: Record<string, { chars: number; turns: number }>;
  cost: StatusFile["cost"];
}

const iso = (ms: number) => new Date(ms).toISOString();

/** Busiest first: the relay's `state` is the busiest conversation's (CONTRACT §9). */
const BUSY_ORDER = ["calling", "summarizing", "dispatching", "awaitingAck", "idle"] as const;

/** A conversation's state as the contract names it: waiting for a slot counts as calling. */
function conversationState(value: string, awaiting: boolean): string {
  if (value === "queued" || value === "migrated") return "calling";
  if (value === "idle" && awaiting) return "awaitingAck";
  return value;
}

export function buildStatus(snapshot: RootSnapshot, facts: StatusFacts): StatusFile {
  const { context } = snapshot;
  const gate = typeof snapshot.value === "string" ? snapshot.value : "available";
  const sessionsOf = new Map<string, string[]>();
  for (const [session, conversation] of Object.entries(context.routes)) sessionsOf.set(conversation, [...(sessionsOf.get(conversation) ?? []), session]);

  const questions: QuestionView[] = context.questions.map((q) => ({ id: q.id, session: q.session, conversation: q.conversation, question: q.text, since: iso(q.since), kind: q.kind }));

  const conversations: Record<string, ConversationView> = {};
  let ownBackOff: { message: string; attempt: number; nextAt: number; since: number } | null = null;
  for (const [id, ref] of Object.entries(context.conversations)) {
    const child = ref.getSnapshot();
    const sessions = sessionsOf.get(id) ?? [];
    const awaiting = sessions.some((s) => context.unacked.includes(s) || deliveries.pendingFor(context, s) > 0);
    const value = typeof child.value === "string" ? child.value : "idle";
    if (value === "backingOff" && child.context.retry && (!ownBackOff || child.context.retry.nextAt < ownBackOff.nextAt)) ownBackOff = child.context.retry;
    conversations[id] = {
      state: conversationState(value, awaiting),
      sessions,
      chars: facts.history[id]?.chars ?? 0,
      turns: facts.history[id]?.turns ?? 0,
      question: context.questions.find((q) => q.conversation === id && q.kind !== "permission")?.id ?? null,
    };
  }

  const failure = context.failure;
  let state: string;
  if (questions.length > 0) state = "needsJc";
  else if (gate === "paused" || (gate === "probing" && failure?.kind === "permanent")) state = "paused";
  else if (gate === "backingOff" || (gate === "probing" && failure?.kind === "rateLimited") || ownBackOff) state = "backingOff";
  else if (gate === "halted") state = "halted";
  else {
    const states = new Set(Object.values(conversations).map((c) => c.state));
    if (deliveries.anyAwaiting(context)) states.add("awaitingAck");
    state = BUSY_ORDER.find((s) => states.has(s)) ?? "idle";
  }

  const sessions: StatusFile["sessions"] = {};
  // awaitingAck as the relay last saw it (readers overlay whether input.txt exists now)
  const view = (session: string, conversation: string) => ({ pending: deliveries.pendingFor(context, session), conversation, awaitingAck: context.unacked.includes(session) });
  for (const [session, conversation] of Object.entries(context.routes)) sessions[session] = view(session, conversation);
  for (const session of [...Object.keys(context.outbox), ...context.unacked]) sessions[session] ??= view(session, "shared");

  const oldest = questions[0];
  const retry = failure ?? (ownBackOff ? { ...ownBackOff, kind: "transient" as const } : null);
  return {
    format: STATUS_FORMAT,
    updatedAt: iso(facts.now),
    pid: facts.pid,
    state,
    needsJc: oldest ? { id: oldest.id, session: oldest.session, question: oldest.question, since: oldest.since } : null,
    questions,
    conversations,
    sessions,
    history: Object.values(facts.history).reduce((t, h) => ({ chars: t.chars + h.chars, turns: t.turns + h.turns }), { chars: 0, turns: 0 }),
    lastError: context.lastError ? { message: context.lastError.message, at: iso(context.lastError.at) } : null,
    retry: retry
      ? { kind: retry.kind === "permanent" ? "permanent" : "transient", attempt: retry.attempt, nextTryAt: iso(retry.nextAt), since: iso(retry.since), message: retry.message }
      : null,
    calls: { inFlight: context.inFlight.length, maxParallel: context.maxParallel },
    cost: facts.cost,
    permissions: { deciding: [...(context.deciding ?? [])], recent: [...(context.permissionLog ?? [])] },
  };
}
