// Layer 1: the conversation machine's transitions, computed without running anything.
//
// xstate's own `transition()` cannot go through a `sendParent` (its inert scope has no parent and
// throws "Unable to send event to actor '#_parent'"), and every report of a conversation to the
// root is a `sendParent`. So `step()` below is `transition()` with a parent in the scope: the
// machine's own `transition` with an action executor that only records. Nothing is executed: the
// invoked actors are created but never started, and their results are fed in as done events.
import { describe, expect, it } from "vitest";
import { type ActorScope, createActor, createEmptyActor, type ExecutableActionObject, type SnapshotFrom } from "xstate";
import { backoffDelayMs } from "../../machines/backoff.js";
import { type ConversationEvent, conversationMachine } from "../../machines/conversation.js";
import type { CallResult, CommitResult, Failure, Note, SummarizeResult, WorkItem } from "../../machines/types.js";

type Snapshot = SnapshotFrom<typeof conversationMachine>;
type Scope = ActorScope<Snapshot, ConversationEvent>;

/** What one step did: the events sent to the root, and the actors it started. */
interface Step {
  sent: unknown[];
  started: string[];
}

/** xstate's done/error events are not among the machine's declared events, so they come in through this one door. */
type ActorResult =
  | { type: "xstate.done.actor.callApi"; output: CallResult }
  | { type: "xstate.done.actor.commitTurn"; output: CommitResult }
  | { type: "xstate.done.actor.summarize"; output: SummarizeResult }
  | { type: `xstate.error.actor.${"callApi" | "commitTurn" | "summarize"}`; error: unknown };

function conversation(id = "A") {
  const self = createActor(conversationMachine, { parent: createEmptyActor(), input: { id } });
  let step: Step = { sent: [], started: [] };
  const record = (action: ExecutableActionObject) => {
    const params = action.params;
    if (action.type === "xstate.sendTo" && typeof params === "object" && params !== null && "event" in params) step.sent.push(params.event);
    if (action.type === "xstate.spawnChild" && typeof params === "object" && params !== null && "id" in params) step.started.push(String(params.id));
  };
  const scope: Scope = { self, id: "", sessionId: "", logger: () => undefined, defer: () => undefined, emit: () => undefined, system: self.system, stopChild: () => undefined, actionExecutor: record };
  let snapshot: Snapshot = conversationMachine.getInitialSnapshot(scope, { id });
  const run = (event: ConversationEvent | ActorResult): Step => {
    step = { sent: [], started: [] };
    // The one cast: done and error events of invoked actors are xstate's, not the machine's declared events.
    snapshot = conversationMachine.transition(snapshot, event as ConversationEvent, scope);
    return step;
  };
  return {
    get snapshot() {
      return snapshot;
    },
    send: (event: ConversationEvent) => run(event),
    called: (output: CallResult) => run({ type: "xstate.done.actor.callApi", output }),
    /** the commit recorded every note it was given, unless the output says otherwise */
    committed: (output: Omit<CommitResult, "noteIds"> & { noteIds?: string[] }) =>
      run({ type: "xstate.done.actor.commitTurn", output: { noteIds: snapshot.context.notes.map((n) => n.id), ...output } }),
    summarized: (output: SummarizeResult) => run({ type: "xstate.done.actor.summarize", output }),
    failed: (actor: "callApi" | "commitTurn" | "summarize", error: unknown) => run({ type: `xstate.error.actor.${actor}`, error }),
  };
}
type Conversation = ReturnType<typeof conversation>;

const envelope = (n: number, session = "s1"): WorkItem => ({ id: `h${n}`, source: "envelope", session, text: `envelope ${n}`, inReplyTo: `env-${n}`, receipt: `rcpt-${n}` });
const jcTurn = (id: string, inReplyTo: string | null = null, session = "s1"): WorkItem => ({ id, source: "jc", session, text: `JC says ${id}`, inReplyTo });
const failure = (kind: Failure["kind"], extra: Partial<Failure> = {}): CallResult => ({ ok: false, failure: { kind, message: `${kind} failure`, ...extra }, at: 10_000, jitter: 0.5 });

/** A conversation calling the API for `item`. */
function calling(item: WorkItem = envelope(1)): Conversation {
  const c = conversation();
  c.send({ type: "work.assigned", item });
  c.send({ type: "call.granted" });
  expect(c.snapshot.value).toBe("calling");
  return c;
}

/** A conversation committing `reply` to `item`. */
function dispatching(reply: string, item: WorkItem = envelope(1)): Conversation {
  const c = calling(item);
  c.called({ ok: true, text: reply, at: 5_000, called: true });
  expect(c.snapshot.value).toBe("dispatching");
  return c;
}

describe("conversation: taking work and asking for a slot", () => {
  it("asks the root for a call slot when it takes an envelope, and calls only once granted", () => {
    const c = conversation("A");
    expect(c.snapshot.value).toBe("idle");
    const took = c.send({ type: "work.assigned", item: envelope(1) });
    expect(c.snapshot.value).toBe("queued");
    expect(c.snapshot.context.current).toEqual(envelope(1));
    expect(took.sent).toEqual([{ type: "call.wanted", conversation: "A" }]);
    expect(took.started).toEqual([]);

    const granted = c.send({ type: "call.granted" });
    expect(c.snapshot.value).toBe("calling");
    expect(granted.started).toEqual(["callApi"]);
  });

  it("answers JC's chat turns before any envelope", () => {
    const c = conversation("A");
    c.send({ type: "work.assigned", item: envelope(1) });
    c.send({ type: "jc.chat", item: jcTurn("jc-1") });
    c.send({ type: "call.granted" });
    c.called({ ok: true, text: "reply to envelope 1", at: 1, called: true });
    c.committed({ overCap: false, at: 2 });
    // back at rest, the waiting chat turn is taken at once
    expect(c.snapshot.value).toBe("queued");
    expect(c.snapshot.context.current).toEqual(jcTurn("jc-1"));
    expect(c.snapshot.context.chats).toEqual([]);
  });

  it("ignores work offered while it is busy (the root offers only to conversations at rest)", () => {
    const c = calling(envelope(1));
    c.send({ type: "work.assigned", item: envelope(2) });
    expect(c.snapshot.value).toBe("calling");
    expect(c.snapshot.context.current).toEqual(envelope(1));
  });
});

describe("conversation: what a call's result leads to", () => {
  it("dispatches a reply that worked and gives the slot back with no failure", () => {
    const c = calling();
    const step = c.called({ ok: true, text: "the reply", at: 5_000, called: true });
    expect(c.snapshot.value).toBe("dispatching");
    expect(c.snapshot.context.reply).toBe("the reply");
    expect(step.sent).toEqual([{ type: "call.finished", conversation: "A", failure: null, called: true, at: 5_000, jitter: 0 }]);
    expect(step.started).toEqual(["commitTurn"]);
  });

  it.each(["rateLimited", "permanent"] as const)("on a %s failure keeps the envelope, queues again and hands the failure to the root's gate", (kind) => {
    const c = calling();
    const result = failure(kind, { status: kind === "rateLimited" ? 429 : 401, retryAfterMs: 3_000 });
    const step = c.called(result);
    expect(c.snapshot.value).toBe("queued");
    expect(c.snapshot.context.current).toEqual(envelope(1));
    expect(c.snapshot.context.retry).toBeNull(); // the gate's back-off is the root's, not this conversation's
    expect(step.sent).toEqual([
      { type: "call.finished", conversation: "A", failure: { kind, message: `${kind} failure`, status: kind === "rateLimited" ? 429 : 401, retryAfterMs: 3_000 }, called: true, at: 10_000, jitter: 0.5 },
      { type: "call.wanted", conversation: "A" },
    ]);
  });

  it("on a transient failure backs off on its own, from the failure's time, and retries at the deadline", () => {
    const c = calling();
    const step = c.called(failure("transient", { status: 503 }));
    expect(c.snapshot.value).toBe("backingOff");
    const nextAt = 10_000 + backoffDelayMs(1, 0.5);
    expect(c.snapshot.context.retry).toEqual({ message: "transient failure", attempt: 1, nextAt, since: 10_000 });
    expect(step.sent).toEqual([{ type: "call.finished", conversation: "A", failure: { kind: "transient", message: "transient failure", status: 503 }, called: true, at: 10_000, jitter: 0.5 }]);

    expect(c.send({ type: "clock.tick", now: nextAt - 1 }).sent).toEqual([]);
    expect(c.snapshot.value).toBe("backingOff");

    const retried = c.send({ type: "clock.tick", now: nextAt });
    expect(c.snapshot.value).toBe("queued");
    expect(retried.sent).toEqual([{ type: "call.wanted", conversation: "A" }]);
    expect(c.snapshot.context.current).toEqual(envelope(1));
  });

  it("grows its back-off with each transient failure in a row and honours retry-after", () => {
    const c = calling();
    c.called(failure("transient"));
    c.send({ type: "clock.tick", now: 1e12 });
    c.send({ type: "call.granted" });
    c.called({ ok: false, failure: { kind: "transient", message: "again", retryAfterMs: 7_000 }, at: 20_000, jitter: 0.1 });
    expect(c.snapshot.context.retry).toEqual({ message: "again", attempt: 2, nextAt: 27_000, since: 10_000 });
    // a success clears it
    c.send({ type: "clock.tick", now: 27_000 });
    c.send({ type: "call.granted" });
    c.called({ ok: true, text: "ok", at: 30_000, called: true });
    expect(c.snapshot.context.retry).toBeNull();
  });

  it("retries at once when `relay resume` asks, without waiting for the deadline", () => {
    const c = calling();
    c.called(failure("transient"));
    c.send({ type: "operator.resume" });
    expect(c.snapshot.value).toBe("queued");
  });

  it("on a request too long for the model summarizes first, then calls again", () => {
    const c = calling();
    const step = c.called(failure("tooLong", { status: 400 }));
    expect(c.snapshot.value).toBe("queued");
    expect(c.snapshot.context.summaryDue).toBe("tooLong");
    expect(c.snapshot.context.current).toEqual(envelope(1));
    expect(step.sent[0]).toMatchObject({ type: "call.finished", failure: { kind: "tooLong" } });

    const granted = c.send({ type: "call.granted" });
    expect(c.snapshot.value).toBe("summarizing");
    expect(granted.started).toEqual(["summarize"]);

    const summarized = c.summarized({ ok: true, folded: 12, at: 11_000 });
    expect(c.snapshot.value).toBe("queued");
    expect(c.snapshot.context.summaryDue).toBeNull();
    expect(summarized.sent).toEqual([
      { type: "call.finished", conversation: "A", failure: null, called: false, at: 11_000, jitter: 0 },
      { type: "call.wanted", conversation: "A" },
    ]);
    c.send({ type: "call.granted" });
    expect(c.snapshot.value).toBe("calling");
  });

  it("when a budget ran out, asks JC and gives the envelope back to the transport", () => {
    const c = calling(envelope(1));
    const step = c.called({ ok: false, failure: { kind: "budget", message: "[NEEDS-JC] The daily budget is spent" }, at: 12_000, jitter: 0 });
    expect(c.snapshot.value).toBe("needsJc");
    expect(c.snapshot.context.current).toBeNull();
    expect(c.snapshot.context.chats).toEqual([]);
    const question = { id: "q-budget-h1-12000", conversation: "A", session: "s1", text: "[NEEDS-JC] The daily budget is spent", since: 12_000, kind: "budget", inReplyTo: null };
    // each time the budget stops the envelope is a new question: an answer to an earlier one is stale
    expect(c.snapshot.context.question).toEqual(question);
    expect(step.sent).toEqual([
      // no call was made: the gate stays as it is
      { type: "call.finished", conversation: "A", failure: null, called: false, at: 12_000, jitter: 0 },
      { type: "question.opened", question },
    ]);
  });

  it("when a budget ran out for JC's own turn, puts that turn back first in line", () => {
    const c = conversation();
    c.send({ type: "jc.chat", item: jcTurn("jc-1") });
    expect(c.snapshot.value).toBe("queued");
    c.send({ type: "jc.chat", item: jcTurn("jc-2") });
    c.send({ type: "call.granted" });
    c.called({ ok: false, failure: { kind: "budget", message: "spent" }, at: 1, jitter: 0 });
    expect(c.snapshot.value).toBe("needsJc");
    expect(c.snapshot.context.chats).toEqual([jcTurn("jc-1"), jcTurn("jc-2")]);
  });

  it("refuses an envelope the API says is at fault and goes back to rest", () => {
    const c = calling(envelope(3));
    const step = c.called(failure("envelope", { status: 400, message: "400 invalid_request_error: bad" }));
    expect(c.snapshot.value).toBe("idle");
    expect(c.snapshot.context.current).toBeNull();
    expect(step.sent).toEqual([
      { type: "call.finished", conversation: "A", failure: { kind: "envelope", message: "400 invalid_request_error: bad", status: 400 }, called: true, at: 10_000, jitter: 0.5 },
      { type: "envelope.refused", conversation: "A", item: envelope(3), reason: "400 invalid_request_error: bad", at: 10_000 },
    ]);
  });

  it("backs off (never loses the envelope) when the call actor throws instead of returning a failure", () => {
    const c = calling();
    const step = c.failed("callApi", new Error("boom"));
    expect(c.snapshot.value).toBe("backingOff");
    expect(c.snapshot.context.current).toEqual(envelope(1));
    expect(c.snapshot.context.retry).toMatchObject({ message: "boom", attempt: 1 });
    expect(step.sent).toEqual([{ type: "call.finished", conversation: "A", failure: null, called: false, at: 0, jitter: 0 }]);
  });
});

describe("conversation: dispatching a reply", () => {
  it("hands a plain reply to the root's deliveries with what it answers, and rests", () => {
    const c = dispatching("Looks good.");
    const step = c.committed({ overCap: false, at: 6_000 });
    expect(c.snapshot.value).toBe("idle");
    expect(c.snapshot.context).toMatchObject({ current: null, reply: null, notes: [], question: null });
    expect(step.sent).toEqual([
      {
        type: "turn.committed",
        conversation: "A",
        itemId: "h1",
        receipt: "rcpt-1",
        delivery: { replyId: "r-h1", session: "s1", inReplyTo: "env-1", source: "envelope", text: "Looks good.", at: 6_000 },
        question: null,
        at: 6_000,
      },
    ]);
  });

  it("labels a reply to JC's chat turn jc-chat, answering what JC's turn answered", () => {
    const c = conversation();
    c.send({ type: "jc.chat", item: jcTurn("jc-7", "env-1") });
    c.send({ type: "call.granted" });
    c.called({ ok: true, text: "Understood.", at: 1, called: true });
    const step = c.committed({ overCap: false, at: 2 });
    expect(step.sent[0]).toMatchObject({ type: "turn.committed", itemId: "jc-7", receipt: null, delivery: { replyId: "r-jc-7", source: "jc-chat", inReplyTo: "env-1", session: "s1" } });
  });

  it("does not dispatch a reply with [NEEDS-JC] in its first 200 characters: it opens a question and holds", () => {
    const reply = `${"x".repeat(190)}[NEEDS-JC] which branch?`;
    const c = dispatching(reply);
    const step = c.committed({ overCap: false, at: 7_000 });
    expect(c.snapshot.value).toBe("needsJc");
    const question = { id: "q-h1", conversation: "A", session: "s1", text: reply, since: 7_000, kind: "reply", inReplyTo: "env-1" };
    expect(c.snapshot.context.question).toEqual(question);
    expect(c.snapshot.context.current).toBeNull();
    // the turn is in the history (its envelope is finished), but nothing is delivered
    expect(step.sent).toEqual([{ type: "turn.committed", conversation: "A", itemId: "h1", receipt: "rcpt-1", delivery: null, question, at: 7_000 }]);
  });

  it("dispatches a reply whose [NEEDS-JC] starts past the first 200 characters", () => {
    const reply = `${"x".repeat(195)}[NEEDS-JC] late mark`;
    const c = dispatching(reply);
    const step = c.committed({ overCap: false, at: 7_000 });
    expect(c.snapshot.value).toBe("idle");
    expect(step.sent[0]).toMatchObject({ delivery: { text: reply }, question: null });
  });

  it("holds only itself while a question is open: it takes no work and asks for no slot", () => {
    const c = dispatching("[NEEDS-JC] help");
    c.committed({ overCap: false, at: 1 });
    expect(c.send({ type: "work.assigned", item: envelope(2) }).sent).toEqual([]);
    expect(c.send({ type: "clock.tick", now: 1e12 }).sent).toEqual([]);
    expect(c.snapshot.value).toBe("needsJc");
  });

  it("queues a summary when the history is past the cap after the commit", () => {
    const c = dispatching("fine");
    const step = c.committed({ overCap: true, at: 8_000 });
    expect(c.snapshot.value).toBe("queued");
    expect(c.snapshot.context.summaryDue).toBe("overCap");
    expect(step.sent.map((e) => (e as { type: string }).type)).toEqual(["turn.committed", "call.wanted"]);
    c.send({ type: "call.granted" });
    expect(c.snapshot.value).toBe("summarizing");
    c.summarized({ ok: true, folded: 4, at: 9_000 });
    expect(c.snapshot.value).toBe("idle");
    expect(c.snapshot.context.summaryDue).toBeNull();
  });

  it("halts, telling the root, when the history cannot be written", () => {
    const c = dispatching("fine");
    const step = c.failed("commitTurn", new Error("ENOSPC: no space left on device"));
    expect(c.snapshot.value).toBe("halted");
    expect(c.snapshot.status).toBe("done");
    expect(step.sent).toEqual([{ type: "conversation.failed", conversation: "A", message: "ENOSPC: no space left on device", at: 0, fatal: true }]);
  });
});

describe("conversation: summarizing", () => {
  function summarizingTooLong(item: WorkItem = envelope(1)): Conversation {
    const c = calling(item);
    c.called(failure("tooLong"));
    c.send({ type: "call.granted" });
    expect(c.snapshot.value).toBe("summarizing");
    return c;
  }

  it("refuses an envelope that cannot fit the model even alone, after everything else was folded", () => {
    const c = summarizingTooLong(envelope(4));
    const step = c.summarized({ ok: true, folded: 0, at: 13_000 });
    expect(c.snapshot.value).toBe("idle");
    expect(c.snapshot.context).toMatchObject({ current: null, summaryDue: null, retry: null });
    expect(step.sent).toEqual([
      { type: "call.finished", conversation: "A", failure: null, called: false, at: 13_000, jitter: 0 },
      { type: "envelope.refused", conversation: "A", item: envelope(4), reason: expect.stringContaining("does not fit the model's context window even alone") as unknown, at: 13_000 },
    ]);
  });

  it("backs off and summarizes again when the summary call fails", () => {
    const c = summarizingTooLong();
    const step = c.summarized({ ok: false, message: "529 overloaded", at: 14_000 });
    expect(c.snapshot.value).toBe("backingOff");
    expect(c.snapshot.context.retry).toEqual({ message: "summarization failed: 529 overloaded", attempt: 1, nextAt: 14_000 + backoffDelayMs(1, 0.5), since: 14_000 });
    expect(step.sent).toEqual([{ type: "call.finished", conversation: "A", failure: { kind: "transient", message: "summarization failed: 529 overloaded" }, called: false, at: 14_000, jitter: 0.5 }]);
    c.send({ type: "clock.tick", now: 1e12 });
    c.send({ type: "call.granted" });
    expect(c.snapshot.value).toBe("summarizing");
  });

  it("halts when the summarized history cannot be written", () => {
    const c = summarizingTooLong();
    c.failed("summarize", new Error("EROFS"));
    expect(c.snapshot.value).toBe("halted");
  });
});

describe("conversation: JC's answers", () => {
  function asking(): Conversation {
    const c = dispatching("[NEEDS-JC] merge now?");
    c.committed({ overCap: false, at: 1 });
    expect(c.snapshot.value).toBe("needsJc");
    return c;
  }

  it("takes JC's chat answer first, closes its question and calls with it", () => {
    const c = asking();
    // the root sends a chat turn to an asking conversation only as JC's answer: it is the next call
    c.send({ type: "jc.chat", item: jcTurn("jc-early") });
    expect(c.snapshot.value).toBe("queued");
    expect(c.snapshot.context.question).toBeNull();
    expect(c.snapshot.context.current).toEqual(jcTurn("jc-early"));
  });

  it("puts JC's answer ahead of JC's chat turns that were already waiting", () => {
    const c = conversation();
    // a question from a budget: JC's own turn waits in chats
    c.send({ type: "jc.chat", item: jcTurn("jc-1") });
    c.send({ type: "call.granted" });
    c.called({ ok: false, failure: { kind: "budget", message: "spent" }, at: 1, jitter: 0 });
    expect(c.snapshot.context.chats).toEqual([jcTurn("jc-1")]);
    c.send({ type: "jc.chat", item: jcTurn("jc-answer", null) });
    expect(c.snapshot.context.current).toEqual(jcTurn("jc-answer", null));
    expect(c.snapshot.context.chats).toEqual([jcTurn("jc-1")]);
  });

  it("records JC's direct words in the history with no API call, and rests", () => {
    const c = asking();
    const note: Note = { id: "jc-d1", session: "s1", text: "Merge it." };
    const step = c.send({ type: "jc.direct", note });
    expect(c.snapshot.value).toBe("dispatching");
    expect(step.started).toEqual(["commitTurn"]);
    expect(c.snapshot.context.notes).toEqual([note]);
    expect(c.snapshot.context.question).toBeNull();
    const committed = c.committed({ overCap: false, at: 2 });
    expect(c.snapshot.value).toBe("idle");
    expect(c.snapshot.context.notes).toEqual([]);
    // the reply (JC's own words) is the root's delivery; the conversation delivers nothing itself
    expect(committed.sent).toEqual([{ type: "turn.committed", conversation: "A", itemId: null, receipt: null, delivery: null, question: null, at: 2 }]);
  });

  it("keeps JC's direct words that arrive mid-call for the next commit", () => {
    const c = calling();
    const note: Note = { id: "jc-d2", session: "s1", text: "FYI" };
    c.send({ type: "jc.direct", note });
    expect(c.snapshot.value).toBe("calling");
    expect(c.snapshot.context.notes).toEqual([note]);
    c.called({ ok: true, text: "reply", at: 1, called: true });
    c.committed({ overCap: false, at: 2 });
    expect(c.snapshot.context.notes).toEqual([]);
  });
});

describe("conversation: migration from the first version", () => {
  it("dispatches a reply the first version had made and not yet committed", () => {
    const c = conversation();
    const step = c.send({ type: "migration.restored", summaryDue: false, current: envelope(1), reply: "made before", chats: [], notes: [], question: null });
    expect(c.snapshot.value).toBe("dispatching");
    expect(step.started).toEqual(["commitTurn"]);
  });

  it("calls again for an envelope the first version had under way", () => {
    const c = conversation();
    c.send({ type: "migration.restored", summaryDue: false, current: envelope(1), reply: null, chats: [], notes: [], question: null });
    expect(c.snapshot.value).toBe("queued");
  });

  it("keeps a question the first version had open", () => {
    const c = conversation();
    const question = { id: "q-h1", conversation: "A", session: "s1", text: "[NEEDS-JC] ?", since: 1, kind: "reply" as const, inReplyTo: "env-1" };
    c.send({ type: "migration.restored", summaryDue: false, current: null, reply: null, chats: [], notes: [], question });
    expect(c.snapshot.value).toBe("needsJc");
  });
});

describe("conversation: JC's notes are never lost to a commit under way", () => {
  it("a direct note that arrives while a commit runs is kept, and recorded by the next commit", () => {
    const c = dispatching("the reply");
    const note = { id: "jc-late", session: "s1", text: "stop after this" };
    c.send({ type: "jc.direct", note });
    // the commit under way was started without the note, and says so
    c.committed({ overCap: false, noteIds: [], at: 6_000 });
    // back at rest, the note is still there, so the conversation commits it at once
    expect(c.snapshot.value).toBe("dispatching");
    expect(c.snapshot.context.notes).toEqual([note]);
    c.committed({ overCap: false, noteIds: ["jc-late"], at: 6_100 });
    expect(c.snapshot.value).toBe("idle");
    expect(c.snapshot.context.notes).toEqual([]);
  });
});
