// Layer 1: the root machine's transitions (xstate's pure `transition`), and the pure functions the
// root and the runtime decide with: routeJcAnswer (CONTRACT §6), readyConversations, the
// deliveries, needsJcIn. The conversations are spawned by the pure transitions but never started:
// what the root sends them is read off the returned actions.
import { describe, expect, it } from "vitest";
import { createActor, type ExecutableActionObject, initialTransition, type SnapshotFrom, transition } from "xstate";
import { backoffDelayMs, PROBE_INTERVAL_MS } from "../../machines/backoff.js";
import { type ConversationContext, conversationMachine } from "../../machines/conversation.js";
import * as deliveries from "../../machines/deliveries.js";
import { initialContext, type RelayContext, type RelayEvent, readyConversations, relayMachine, routeJcAnswer } from "../../machines/relay.js";
import { type Delivery, needsJcIn, type Question, type WorkItem } from "../../machines/types.js";

type RootSnapshot = SnapshotFrom<typeof relayMachine>;

/** What one root step did: events sent to conversations (by their id) and events emitted to the runtime. */
interface Step {
  sentTo: { to: string; event: unknown }[];
  emitted: unknown[];
}

function stepOf(actions: ExecutableActionObject[]): Step {
  const step: Step = { sentTo: [], emitted: [] };
  for (const { type, params } of actions) {
    if (typeof params !== "object" || params === null || !("event" in params)) continue;
    if (type === "xstate.sendTo" && "to" in params) {
      const to = params.to;
      step.sentTo.push({ to: typeof to === "object" && to !== null && "id" in to ? String(to.id) : String(to), event: params.event });
    }
    if (type === "xstate.emit") step.emitted.push(params.event);
  }
  return step;
}

/** A root driven by pure transitions. */
function root() {
  let [snapshot] = initialTransition(relayMachine);
  return {
    get snapshot(): RootSnapshot {
      return snapshot;
    },
    send(event: RelayEvent): Step {
      const [next, actions] = transition(relayMachine, snapshot, event);
      snapshot = next;
      return stepOf(actions);
    },
  };
}

/** Sessions s1..s4, each in a conversation of its own (A..D), at most `maxParallel` calls. */
function loaded(maxParallel: number) {
  const r = root();
  r.send({ type: "config.loaded", routes: { s1: "A", s2: "B", s3: "C", s4: "D" }, defaultSession: "s1", maxParallel });
  return r;
}

const envelope = (n: number, session = "s1"): WorkItem => ({ id: `h${n}`, source: "envelope", session, text: `envelope ${n}`, inReplyTo: `env-${n}`, receipt: `rcpt-${n}` });
const question = (id: string, conversation: string, session: string, inReplyTo: string | null = `env-of-${id}`): Question => ({ id, conversation, session, text: `[NEEDS-JC] ${id}`, since: 1, kind: "reply", inReplyTo });
const reply = (replyId: string, session = "s1"): Delivery => ({ replyId, session, inReplyTo: null, source: "envelope", text: replyId, at: 0 });
const granted = (to: string) => ({ to, event: { type: "call.granted" } });
const finished = (conversation: string, failure: { kind: "rateLimited" | "permanent" | "transient"; message: string; retryAfterMs?: number } | null, at = 1_000) =>
  ({ type: "call.finished", conversation, failure, called: true, at, jitter: 0.5 }) as const;

describe("routeJcAnswer (CONTRACT §6)", () => {
  const context = (over: Partial<RelayContext> = {}): RelayContext => ({
    ...initialContext,
    routes: { s1: "shared", s2: "shared", s3: "session.s3" },
    defaultSession: "s1",
    ...over,
  });

  it("refuses a direct answer to a session that is not in config.yaml", () => {
    expect(routeJcAnswer(context(), { kind: "direct", session: "ghost", text: "hi" })).toEqual({ kind: "refused", reason: expect.stringContaining("ghost") as unknown });
  });

  it("sends a direct answer to its session, answering that conversation's open question", () => {
    const q = question("q-1", "session.s3", "s3");
    expect(routeJcAnswer(context({ questions: [q] }), { kind: "direct", session: "s3", text: "do it" })).toEqual({ kind: "direct", conversation: "session.s3", session: "s3", question: q });
    expect(routeJcAnswer(context({ questions: [q] }), { kind: "direct", session: "s1", text: "do it" })).toEqual({ kind: "direct", conversation: "shared", session: "s1", question: null });
  });

  it("routes an answer by question id to the question's session and conversation", () => {
    const older = question("q-old", "shared", "s2");
    const asked = question("q-3", "session.s3", "s3");
    expect(routeJcAnswer(context({ questions: [older, asked] }), { kind: "chat", text: "yes", question: "q-3" })).toEqual({ kind: "chat", conversation: "session.s3", session: "s3", question: asked });
  });

  it("refuses an answer to a question that is closed (answered already, or never asked)", () => {
    const route = routeJcAnswer(context({ questions: [question("q-1", "shared", "s1")] }), { kind: "chat", text: "yes", question: "q-gone" });
    expect(route).toEqual({ kind: "refused", reason: expect.stringContaining("q-gone") as unknown });
  });

  it("routes an answer by session to that session, answering its conversation's question", () => {
    const q = question("q-2", "shared", "s2");
    // s1 shares the conversation that asked through s2: the answer is s1's, and it answers that question
    expect(routeJcAnswer(context({ questions: [q] }), { kind: "chat", text: "go", session: "s1" })).toEqual({ kind: "chat", conversation: "shared", session: "s1", question: q });
    expect(routeJcAnswer(context({ questions: [q] }), { kind: "chat", text: "go", session: "s3" })).toEqual({ kind: "chat", conversation: "session.s3", session: "s3", question: null });
    expect(routeJcAnswer(context(), { kind: "chat", text: "go", session: "nobody" }).kind).toBe("refused");
  });

  it("sends plain text to the oldest open question", () => {
    const oldest = question("q-a", "session.s3", "s3");
    const newer = question("q-b", "shared", "s2");
    expect(routeJcAnswer(context({ questions: [oldest, newer], lastSession: "s1" }), { kind: "chat", text: "ok" })).toEqual({ kind: "chat", conversation: "session.s3", session: "s3", question: oldest });
  });

  it("sends plain text with no question open to the session of the latest envelope, else the default session", () => {
    expect(routeJcAnswer(context({ lastSession: "s3" }), { kind: "chat", text: "ok" })).toEqual({ kind: "chat", conversation: "session.s3", session: "s3", question: null });
    expect(routeJcAnswer(context({ lastSession: null }), { kind: "chat", text: "ok" })).toEqual({ kind: "chat", conversation: "shared", session: "s1", question: null });
    // a latest session removed from config.yaml falls back to the default
    expect(routeJcAnswer(context({ lastSession: "removed" }), { kind: "chat", text: "ok" })).toEqual({ kind: "chat", conversation: "shared", session: "s1", question: null });
  });

  it("refuses plain text when no session can take it", () => {
    expect(routeJcAnswer({ ...initialContext }, { kind: "chat", text: "ok" }).kind).toBe("refused");
  });
});

describe("readyConversations", () => {
  const at = (value: string, over: Partial<ConversationContext> = {}) => {
    const context: ConversationContext = { id: "X", current: null, reply: null, chats: [], notes: [], question: null, retry: null, summaryDue: null, ...over };
    return createActor(conversationMachine, { input: { id: context.id }, snapshot: conversationMachine.resolveState({ value, context }) });
  };

  it("offers work only to conversations at rest with nothing of JC's waiting and no summary due", () => {
    const jc: WorkItem = { id: "jc-1", source: "jc", session: "s1", text: "hi", inReplyTo: null };
    const conversations = {
      idle: at("idle"),
      calling: at("calling", { current: envelope(1) }),
      queued: at("queued", { current: envelope(2) }),
      asking: at("needsJc", { question: question("q", "asking", "s1") }),
      backingOff: at("backingOff", { current: envelope(3) }),
      chatWaiting: at("idle", { chats: [jc] }),
      noteWaiting: at("idle", { notes: [{ id: "n", session: "s1", text: "t" }] }),
      summaryDue: at("idle", { summaryDue: "overCap" }),
      halted: at("halted"),
    };
    expect([...readyConversations({ ...initialContext, conversations })]).toEqual(["idle"]);
  });
});

describe("deliveries", () => {
  it("keeps replies per session in the order they were made", () => {
    let d = deliveries.noDeliveries;
    d = deliveries.enqueue(d, reply("r1", "s1"));
    d = deliveries.enqueue(d, reply("r2", "s2"));
    d = deliveries.enqueue(d, reply("r3", "s1"));
    expect(d.outbox).toEqual({ s1: [reply("r1"), reply("r3")], s2: [reply("r2", "s2")] });
    expect(deliveries.heads(d).map((r) => r.replyId)).toEqual(["r1", "r2"]);
    expect(deliveries.pendingFor(d, "s1")).toBe(2);
    expect(deliveries.pendingFor(d, "nobody")).toBe(0);
  });

  it("takes a reply made again (after a crash) only once", () => {
    let d = deliveries.enqueue(deliveries.noDeliveries, reply("r1"));
    const again = deliveries.enqueue(d, { ...reply("r1"), text: "made again" });
    expect(again).toBe(d);
    d = deliveries.delivered(d, "s1", "r1");
    // once delivered it has left the outbox: the runtime's `done` guards a replay, not the outbox
    expect(d.outbox).toEqual({});
  });

  it("marks delivered only the head of the session's queue, then awaits its acknowledgement", () => {
    let d = deliveries.enqueue(deliveries.enqueue(deliveries.noDeliveries, reply("r1")), reply("r2"));
    expect(deliveries.delivered(d, "s1", "r2")).toBe(d);
    d = deliveries.delivered(d, "s1", "r1");
    expect(d.outbox).toEqual({ s1: [reply("r2")] });
    expect(d.unacked).toEqual(["s1"]);
    expect(deliveries.anyAwaiting(d)).toBe(true);
    d = deliveries.acknowledged(d, "s1");
    expect(d.unacked).toEqual([]);
    d = deliveries.delivered(d, "s1", "r2");
    expect(d.outbox).toEqual({});
    d = deliveries.acknowledged(d, "s1");
    expect(deliveries.anyAwaiting(d)).toBe(false);
    expect(deliveries.acknowledged(d, "s1")).toBe(d);
  });
});

describe("needsJcIn", () => {
  it("finds [NEEDS-JC] only within the first 200 characters", () => {
    expect(needsJcIn("[NEEDS-JC] which one?")).toBe(true);
    expect(needsJcIn(`${"a".repeat(190)}[NEEDS-JC]`)).toBe(true); // ends exactly at 200
    expect(needsJcIn(`${"a".repeat(191)}[NEEDS-JC]`)).toBe(false); // its last character is the 201st
    expect(needsJcIn("no mark here")).toBe(false);
    expect(needsJcIn("[needs-jc] lower case")).toBe(false);
  });
});

describe("root: conversations and routing", () => {
  it("spawns one conversation per conversation id in config.yaml, and keeps them on a reload", () => {
    const r = root();
    r.send({ type: "config.loaded", routes: { s1: "shared", s2: "shared", s3: "session.s3" }, defaultSession: "s1", maxParallel: 2 });
    expect(Object.keys(r.snapshot.children).sort()).toEqual(["session.s3", "shared"]);
    const shared = r.snapshot.context.conversations.shared;
    r.send({ type: "config.loaded", routes: { s1: "shared", s4: "session.s4" }, defaultSession: "s1", maxParallel: 0 });
    expect(r.snapshot.context.conversations.shared).toBe(shared);
    expect(Object.keys(r.snapshot.children).sort()).toEqual(["session.s3", "session.s4", "shared"]);
    expect(r.snapshot.context.maxParallel).toBe(1); // never below one
  });

  it("hands an envelope to its session's conversation and remembers the session for JC's plain text", () => {
    const r = loaded(2);
    const step = r.send({ type: "envelope.offered", item: envelope(1, "s3"), at: 1 });
    expect(step.sentTo).toEqual([{ to: "C", event: { type: "work.assigned", item: envelope(1, "s3") } }]);
    expect(r.snapshot.context.lastSession).toBe("s3");
  });

  it("finishes again, and never answers again, an envelope it answered before a crash", () => {
    const r = loaded(2);
    r.send({ type: "turn.committed", conversation: "A", itemId: "h1", receipt: "rcpt-1", delivery: reply("r-h1"), question: null, at: 2 });
    const step = r.send({ type: "envelope.offered", item: { ...envelope(1), receipt: "rcpt-1-again" }, at: 3 });
    expect(step.sentTo).toEqual([]);
    expect(step.emitted).toEqual([{ type: "envelope.finished", receipt: "rcpt-1-again" }]);
  });

  it("takes a committed turn: its reply joins the session's deliveries and its envelope is finished", () => {
    const r = loaded(2);
    const step = r.send({ type: "turn.committed", conversation: "A", itemId: "h1", receipt: "rcpt-1", delivery: reply("r-h1"), question: null, at: 2 });
    expect(r.snapshot.context.outbox).toEqual({ s1: [reply("r-h1")] });
    expect(r.snapshot.context.done).toEqual(["h1"]);
    expect(step.emitted).toEqual([{ type: "envelope.finished", receipt: "rcpt-1" }]);
  });

  it("opens a question from a committed [NEEDS-JC] turn with one notification, and finishes its envelope", () => {
    const r = loaded(2);
    const q = question("q-h1", "A", "s1", "env-1");
    const step = r.send({ type: "turn.committed", conversation: "A", itemId: "h1", receipt: "rcpt-1", delivery: null, question: q, at: 2 });
    expect(r.snapshot.context.questions).toEqual([q]);
    expect(r.snapshot.context.outbox).toEqual({});
    expect(step.emitted).toEqual([
      { type: "notify", kind: "needsJc", session: "s1", questionId: "q-h1", message: q.text },
      { type: "envelope.finished", receipt: "rcpt-1" },
    ]);
  });

  it("opens a budget question with one notification", () => {
    const r = loaded(2);
    const q: Question = { ...question("q-budget-h1", "A", "s1", null), kind: "budget" };
    const step = r.send({ type: "question.opened", question: q });
    expect(r.snapshot.context.questions).toEqual([q]);
    expect(step.emitted).toEqual([{ type: "notify", kind: "needsJc", session: "s1", questionId: "q-budget-h1", message: q.text }]);
  });

  it("rejects a refused envelope through the transport, with the reason", () => {
    const r = loaded(2);
    const step = r.send({ type: "envelope.refused", conversation: "A", item: envelope(5), reason: "400 bad", at: 9 });
    expect(step.emitted).toEqual([{ type: "envelope.rejected", receipt: "rcpt-5", reason: "400 bad", at: 9 }]);
    expect(r.snapshot.context.lastError).toEqual({ message: "400 bad", at: 9 });
  });

  it("halts when a conversation cannot write its history", () => {
    const r = loaded(2);
    r.send({ type: "conversation.failed", conversation: "A", message: "ENOSPC", at: 0, fatal: true });
    expect(r.snapshot.value).toBe("halted");
    expect(r.snapshot.status).toBe("done");
  });

  it("marks a reply delivered and its session acknowledged", () => {
    const r = loaded(2);
    r.send({ type: "turn.committed", conversation: "A", itemId: "h1", receipt: null, delivery: reply("r-h1"), question: null, at: 2 });
    r.send({ type: "turn.committed", conversation: "A", itemId: "h2", receipt: null, delivery: reply("r-h2"), question: null, at: 3 });
    r.send({ type: "dispatch.delivered", session: "s1", replyId: "r-h2" }); // not the head: ignored
    expect(r.snapshot.context.outbox.s1?.map((d) => d.replyId)).toEqual(["r-h1", "r-h2"]);
    r.send({ type: "dispatch.delivered", session: "s1", replyId: "r-h1" });
    expect(r.snapshot.context.outbox.s1?.map((d) => d.replyId)).toEqual(["r-h2"]);
    expect(r.snapshot.context.unacked).toEqual(["s1"]);
    r.send({ type: "dispatch.acknowledged", session: "s1" });
    expect(r.snapshot.context.unacked).toEqual([]);
  });
});

describe("root: JC's answers", () => {
  function asked() {
    const r = loaded(2);
    r.send({ type: "turn.committed", conversation: "B", itemId: "h7", receipt: "rcpt-7", delivery: null, question: question("q-h7", "B", "s2", "env-7"), at: 2 });
    return r;
  }

  it("sends an answer by question id to the asking conversation as a chat turn answering the asking envelope", () => {
    const r = asked();
    const step = r.send({ type: "jc.received", id: "jc-1", answer: { kind: "chat", text: "yes", question: "q-h7" }, at: 3 });
    expect(step.sentTo).toEqual([{ to: "B", event: { type: "jc.chat", item: { id: "jc-1", source: "jc", session: "s2", text: "yes", inReplyTo: "env-7" } } }]);
    expect(step.emitted).toEqual([{ type: "jc.consumed", id: "jc-1" }]);
    expect(r.snapshot.context.questions).toEqual([]);
  });

  it("refuses an answer to a question already answered", () => {
    const r = asked();
    r.send({ type: "jc.received", id: "jc-1", answer: { kind: "chat", text: "yes", question: "q-h7" }, at: 3 });
    const step = r.send({ type: "jc.received", id: "jc-2", answer: { kind: "chat", text: "yes again", question: "q-h7" }, at: 4 });
    expect(step.sentTo).toEqual([]);
    expect(step.emitted).toEqual([{ type: "jc.refused", id: "jc-2", reason: expect.stringContaining("q-h7") as unknown }]);
  });

  it("delivers a direct answer as JC's own words, with no call, answering the question", () => {
    const r = asked();
    const step = r.send({ type: "jc.received", id: "jc-3", answer: { kind: "direct", session: "s2", text: "Merge it." }, at: 5 });
    expect(r.snapshot.context.outbox).toEqual({ s2: [{ replyId: "r-jc-3", session: "s2", inReplyTo: "env-7", source: "jc-direct", text: "Merge it.", at: 5 }] });
    expect(step.sentTo).toEqual([{ to: "B", event: { type: "jc.direct", note: { id: "jc-3", session: "s2", text: "Merge it." } } }]);
    expect(step.emitted).toEqual([{ type: "jc.consumed", id: "jc-3" }]);
    expect(r.snapshot.context.questions).toEqual([]);
  });

  it("an answer sent to another session of the asking conversation does not claim to answer the asking session's envelope", () => {
    const r = root();
    r.send({ type: "config.loaded", routes: { s1: "shared", s2: "shared" }, defaultSession: "s1", maxParallel: 2 });
    r.send({ type: "turn.committed", conversation: "shared", itemId: "h7", receipt: "rcpt-7", delivery: null, question: question("q-h7", "shared", "s2", "env-7"), at: 2 });
    // JC answers s2's question by writing to s1: env-7 is s2's envelope, s1 never sent it (CONTRACT §5: in_reply_to is
    // the envelope the reply answers, for the session that receives it; null when it answers none of its envelopes)
    r.send({ type: "jc.received", id: "jc-4", answer: { kind: "direct", session: "s1", text: "Hold off." }, at: 5 });
    expect(r.snapshot.context.outbox.s1?.[0]).toMatchObject({ session: "s1", source: "jc-direct", inReplyTo: null });
    const r2 = root();
    r2.send({ type: "config.loaded", routes: { s1: "shared", s2: "shared" }, defaultSession: "s1", maxParallel: 2 });
    r2.send({ type: "turn.committed", conversation: "shared", itemId: "h7", receipt: "rcpt-7", delivery: null, question: question("q-h7", "shared", "s2", "env-7"), at: 2 });
    const step = r2.send({ type: "jc.received", id: "jc-5", answer: { kind: "chat", text: "s1 waits", session: "s1" }, at: 5 });
    expect(step.sentTo).toEqual([{ to: "shared", event: { type: "jc.chat", item: { id: "jc-5", source: "jc", session: "s1", text: "s1 waits", inReplyTo: null } } }]);
  });

  it("takes an answer seen again after a crash only once", () => {
    const r = asked();
    r.send({ type: "jc.received", id: "jc-1", answer: { kind: "chat", text: "yes", question: "q-h7" }, at: 3 });
    const again = r.send({ type: "jc.received", id: "jc-1", answer: { kind: "chat", text: "yes", question: "q-h7" }, at: 4 });
    expect(again.sentTo).toEqual([]);
    expect(again.emitted).toEqual([{ type: "jc.consumed", id: "jc-1" }]);
  });
});

describe("root: the API gate", () => {
  it("never grants more than max_parallel_calls slots at once, first come first served", () => {
    const r = loaded(2);
    expect(r.send({ type: "call.wanted", conversation: "A" }).sentTo).toEqual([granted("A")]);
    expect(r.send({ type: "call.wanted", conversation: "B" }).sentTo).toEqual([granted("B")]);
    expect(r.send({ type: "call.wanted", conversation: "C" }).sentTo).toEqual([]);
    expect(r.send({ type: "call.wanted", conversation: "D" }).sentTo).toEqual([]);
    expect(r.snapshot.context.inFlight).toEqual(["A", "B"]);
    expect(r.snapshot.context.waiting).toEqual(["C", "D"]);
    // a slot given back goes to the first waiting
    expect(r.send(finished("B", null)).sentTo).toEqual([granted("C")]);
    expect(r.snapshot.context.inFlight).toEqual(["A", "C"]);
    expect(r.snapshot.context.waiting).toEqual(["D"]);
  });

  it("counts a conversation asking twice once", () => {
    const r = loaded(1);
    r.send({ type: "call.wanted", conversation: "A" });
    expect(r.send({ type: "call.wanted", conversation: "A" }).sentTo).toEqual([]);
    r.send({ type: "call.wanted", conversation: "B" });
    r.send({ type: "call.wanted", conversation: "B" });
    expect(r.snapshot.context.inFlight).toEqual(["A"]);
    expect(r.snapshot.context.waiting).toEqual(["B"]);
  });

  it("a conversation's own transient failure does not close the gate", () => {
    const r = loaded(1);
    r.send({ type: "call.wanted", conversation: "A" });
    r.send({ type: "call.wanted", conversation: "B" });
    const step = r.send(finished("A", { kind: "transient", message: "503" }));
    expect(r.snapshot.value).toBe("available");
    expect(step.sentTo).toEqual([granted("B")]);
  });

  it("a 429 closes the gate for every call until its back-off is over, then one call probes", () => {
    const r = loaded(2);
    r.send({ type: "call.wanted", conversation: "A" });
    r.send({ type: "call.wanted", conversation: "B" });
    r.send({ type: "call.wanted", conversation: "C" });
    const closed = r.send(finished("A", { kind: "rateLimited", message: "429 rate_limit_error" }, 1_000));
    expect(r.snapshot.value).toBe("backingOff");
    const nextAt = 1_000 + backoffDelayMs(1, 0.5);
    expect(r.snapshot.context.failure).toEqual({ kind: "rateLimited", message: "429 rate_limit_error", attempt: 1, nextAt, since: 1_000 });
    expect(closed.sentTo).toEqual([]);
    expect(closed.emitted).toEqual([{ type: "notify", kind: "failureStarted", message: "429 rate_limit_error" }]);

    // the rate-limited conversation asks again; B's call comes back fine: nobody is granted
    expect(r.send({ type: "call.wanted", conversation: "A" }).sentTo).toEqual([]);
    expect(r.send(finished("B", null)).sentTo).toEqual([]);
    expect(r.snapshot.context.inFlight).toEqual([]);
    expect(r.snapshot.context.waiting).toEqual(["C", "A"]);

    // the clock before the deadline only reaches the conversations
    const early = r.send({ type: "clock.tick", now: nextAt - 1 });
    expect(r.snapshot.value).toBe("backingOff");
    expect(early.sentTo.map((s) => s.to).sort()).toEqual(["A", "B", "C", "D"]);

    const probe = r.send({ type: "clock.tick", now: nextAt });
    expect(r.snapshot.value).toBe("probing");
    expect(probe.sentTo.filter((s) => (s.event as { type: string }).type === "call.granted")).toEqual([granted("C")]);
    expect(r.snapshot.context.inFlight).toEqual(["C"]);
    // while probing, nobody else starts
    expect(r.send({ type: "call.wanted", conversation: "B" }).sentTo).toEqual([]);

    const reopened = r.send(finished("C", null, 9_000));
    expect(r.snapshot.value).toBe("available");
    expect(r.snapshot.context.failure).toBeNull();
    expect(reopened.emitted).toEqual([{ type: "notify", kind: "failureEnded", message: expect.stringContaining("1 failed attempt") as unknown }]);
    expect(reopened.sentTo).toEqual([granted("A"), granted("B")]);
  });

  it("honours retry-after, and a failed probe closes the gate again with a longer back-off and no second notification", () => {
    const r = loaded(2);
    r.send({ type: "call.wanted", conversation: "A" });
    r.send(finished("A", { kind: "rateLimited", message: "429", retryAfterMs: 30_000 }, 1_000));
    expect(r.snapshot.context.failure?.nextAt).toBe(31_000);
    r.send({ type: "call.wanted", conversation: "A" });
    r.send({ type: "clock.tick", now: 31_000 });
    expect(r.snapshot.value).toBe("probing");
    const again = r.send(finished("A", { kind: "rateLimited", message: "429" }, 40_000));
    expect(r.snapshot.value).toBe("backingOff");
    expect(r.snapshot.context.failure).toMatchObject({ attempt: 2, since: 1_000, nextAt: 40_000 + backoffDelayMs(2, 0.5) });
    expect(again.emitted).toEqual([]);
  });

  it("a permanent failure pauses every call, probes after the probe interval, and `relay resume` probes at once", () => {
    const r = loaded(2);
    r.send({ type: "call.wanted", conversation: "A" });
    const paused = r.send(finished("A", { kind: "permanent", message: "401 authentication_error" }, 5_000));
    expect(r.snapshot.value).toBe("paused");
    expect(r.snapshot.context.failure).toMatchObject({ kind: "permanent", attempt: 1, nextAt: 5_000 + PROBE_INTERVAL_MS });
    expect(paused.emitted).toEqual([{ type: "notify", kind: "paused", message: "401 authentication_error" }]);
    r.send({ type: "call.wanted", conversation: "A" });
    r.send({ type: "clock.tick", now: 5_000 + PROBE_INTERVAL_MS - 1 });
    expect(r.snapshot.value).toBe("paused");
    const resumed = r.send({ type: "operator.resume" });
    expect(r.snapshot.value).toBe("probing");
    expect(resumed.sentTo).toContainEqual(granted("A"));
  });

  it("a rate limit while paused keeps the relay paused", () => {
    const r = loaded(2);
    r.send({ type: "call.wanted", conversation: "A" });
    r.send({ type: "call.wanted", conversation: "B" });
    r.send(finished("A", { kind: "permanent", message: "401" }));
    r.send(finished("B", { kind: "rateLimited", message: "429" }));
    expect(r.snapshot.value).toBe("paused");
    expect(r.snapshot.context.inFlight).toEqual([]);
  });
});
