// Layer 2: the whole daemon loop (src/runtime/daemon.ts) with the real machines and the real
// conversation actors, over deps held in memory (test/support/fake-deps.ts). Real time, short
// waits: the loop polls every 20 ms.
import Anthropic from "@anthropic-ai/sdk";
import { afterEach, describe, expect, it, vi } from "vitest";
import { type DaemonHandle, startDaemon } from "../../src/runtime/daemon.js";
import { statusFileSchema } from "../../src/status/status-file.js";
import { type FakeRelay, fakeConfig, fakeRelay, session } from "../support/fake-deps.js";

const running: DaemonHandle[] = [];

async function start(fake: FakeRelay): Promise<DaemonHandle> {
  const handle = await startDaemon(fake.deps, { shutdownGraceMs: 1_000 });
  running.push(handle);
  return handle;
}

afterEach(async () => {
  for (const handle of running.splice(0)) {
    handle.stop();
    await Promise.race([handle.done, new Promise((r) => setTimeout(r, 5_000))]);
  }
});

const until = (assertion: () => void, timeout = 10_000) => vi.waitFor(assertion, { timeout, interval: 10 });
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `context.done` of a persisted root snapshot, read as plain JSON. */
function doneIn(snapshot: unknown): string[] {
  if (typeof snapshot !== "object" || snapshot === null || !("context" in snapshot)) return [];
  const context = snapshot.context;
  if (typeof context !== "object" || context === null || !("done" in context) || !Array.isArray(context.done)) return [];
  return context.done.filter((d): d is string => typeof d === "string");
}

/** Records, for each envelope finished, whether a durable snapshot already said it was answered. */
function watchFinishes(fake: FakeRelay): Map<string, boolean> {
  const durableBeforeFinish = new Map<string, boolean>();
  fake.inbox.onFinish = (receipt) => {
    const durable = fake.snapshots.filter((s) => s.durable).at(-1);
    durableBeforeFinish.set(receipt, durable !== undefined && doneIn(durable.snapshot).includes(`h-${receipt}`));
  };
  return durableBeforeFinish;
}

describe("the daemon with its deps in memory", () => {
  it.each([
    { conversations: 4, maxParallel: 2 },
    { conversations: 3, maxParallel: 4 },
  ])("runs $conversations conversations' calls in parallel, never more than max_parallel_calls ($maxParallel) at once", async ({ conversations, maxParallel }) => {
    const ids = Array.from({ length: conversations }, (_, i) => `s${i + 1}`);
    const fake = fakeRelay(fakeConfig({ sessions: ids.map((id) => session(id)), maxParallelCalls: maxParallel }));
    fake.api.delayMs = 150;
    fake.outbox.autoAcknowledge = true;
    for (const id of ids) for (const n of [1, 2]) fake.inbox.drop(id, `${id} message ${n}`);
    await start(fake);

    await until(() => expect(fake.outbox.delivered).toHaveLength(2 * conversations));
    expect(fake.api.maxInFlight).toBe(Math.min(conversations, maxParallel));
    expect(fake.api.calls).toHaveLength(2 * conversations);
  });

  it("one conversation's slow call does not delay another conversation's replies", async () => {
    const fake = fakeRelay(fakeConfig({ sessions: [session("s1"), session("s2")], maxParallelCalls: 4 }));
    fake.outbox.autoAcknowledge = true;
    fake.api.reply = (text) => (text.includes("slow") ? null : `reply to ${text}`);
    fake.inbox.drop("s1", "a slow question");
    for (const n of [1, 2, 3]) fake.inbox.drop("s2", `quick ${n}`);
    await start(fake);

    await until(() => expect(fake.outbox.deliveredTo("s2")).toHaveLength(3));
    expect(fake.outbox.deliveredTo("s1")).toEqual([]);
    const [slow] = fake.api.open();
    expect(slow?.text).toContain("a slow question");

    slow?.resolve("the slow answer");
    await until(() => expect(fake.outbox.deliveredTo("s1").map((d) => d.text)).toEqual(["the slow answer"]));
  });

  it("finishes each envelope exactly once, after a durable snapshot holds its answer", async () => {
    const fake = fakeRelay(fakeConfig({ sessions: [session("s1"), session("s2"), session("s3", false)], maxParallelCalls: 2 }));
    fake.api.delayMs = 30;
    fake.outbox.autoAcknowledge = true;
    const durableBeforeFinish = watchFinishes(fake);
    for (const n of [1, 2, 3]) for (const s of ["s1", "s2", "s3"]) fake.inbox.drop(s, `${s} #${n}`);
    await start(fake);

    await until(() => expect(fake.inbox.depth).toBe(0));
    await pause(100);
    const receipts = [...fake.inbox.all.keys()];
    expect([...fake.inbox.finished].sort()).toEqual(receipts.sort());
    expect([...durableBeforeFinish.values()].every(Boolean)).toBe(true);
    // every envelope answered once in the history, and its reply dispatched once
    const turns = [...fake.history.byConversation.values()].flat().filter((e) => e.kind === "turn");
    expect(turns.map((t) => t.id).sort()).toEqual(receipts.map((r) => `h-${r}`).sort());
    expect(fake.outbox.delivered.map((d) => d.replyId).sort()).toEqual(receipts.map((r) => `r-h-${r}`).sort());
  });

  it("never overwrites an unacknowledged reply, and delivers a session's replies in the order its envelopes were taken", async () => {
    const fake = fakeRelay(fakeConfig({ sessions: [session("s1")] }));
    const ids = [1, 2, 3].map((n) => fake.inbox.drop("s1", `message ${n}`, `my-${n}`));
    await start(fake);

    await until(() => expect(fake.outbox.inputOf("s1")?.inReplyTo).toBe("my-1"));
    // the other two are answered and wait in the relay
    await until(() => expect(fake.statuses.at(-1)?.sessions.s1?.pending).toBe(2));
    await pause(60);
    expect(fake.outbox.delivered).toHaveLength(1);

    for (const expected of ["my-2", "my-3"]) {
      fake.outbox.acknowledge("s1");
      await until(() => expect(fake.outbox.inputOf("s1")?.inReplyTo).toBe(expected));
    }
    expect(fake.outbox.delivered.map((d) => d.inReplyTo)).toEqual(ids);
    expect(fake.outbox.delivered.map((d) => d.source)).toEqual(["envelope", "envelope", "envelope"]);
  });

  it("a question holds only its conversation; JC's direct answer is delivered with no API call and answers it", async () => {
    const fake = fakeRelay(fakeConfig({ sessions: [session("s1"), session("s2")] }));
    fake.outbox.autoAcknowledge = true;
    fake.api.reply = (text) => (text.includes("force-push?") ? "[NEEDS-JC] May s1 force-push its branch?" : `reply to ${text}`);
    const asking = fake.inbox.drop("s1", "may I force-push?");
    const next = fake.inbox.drop("s1", "the next step");
    await start(fake);

    await until(() => expect(fake.notifications).toContainEqual(expect.objectContaining({ kind: "needsJc", session: "s1" })));
    await until(() => expect(fake.statuses.at(-1)?.state).toBe("needsJc"));
    const status = fake.statuses.at(-1);
    expect(status?.questions).toEqual([expect.objectContaining({ session: "s1", conversation: "session.s1", kind: "reply" })]);
    expect(status?.needsJc).toMatchObject({ session: "s1", question: "[NEEDS-JC] May s1 force-push its branch?" });

    // s2 goes on while s1's conversation waits; s1's next envelope waits in the queue
    for (const n of [1, 2]) fake.inbox.drop("s2", `s2 step ${n}`);
    await until(() => expect(fake.outbox.deliveredTo("s2")).toHaveLength(2));
    await pause(100);
    expect(fake.api.callsFor("the next step")).toEqual([]);
    expect(fake.outbox.deliveredTo("s1")).toEqual([]);
    expect(fake.inbox.finished).toHaveLength(3); // the asking envelope is answered (in the history); the next one waits
    expect(fake.inbox.depth).toBe(1);

    const answer = fake.jc.answer({ kind: "direct", session: "s1", text: "Yes, force-push." });
    await until(() => expect(fake.outbox.deliveredTo("s1")[0]).toMatchObject({ source: "jc-direct", inReplyTo: asking, text: "Yes, force-push." }));
    expect(fake.api.callsFor("Yes, force-push.")).toEqual([]);
    await until(() => expect(fake.jc.consumed).toEqual([answer]));

    // the conversation goes on: its next envelope is answered, with JC's words in its history
    await until(() => expect(fake.outbox.deliveredTo("s1")[1]).toMatchObject({ source: "envelope", inReplyTo: next }));
    const [nextCall] = fake.api.callsFor("the next step");
    expect(JSON.stringify(nextCall?.request.messages)).toContain("Yes, force-push.");
    await until(() => expect(fake.statuses.at(-1)?.questions).toEqual([]));
  });

  it("JC's answer by question id is relayed through chat-Claude as a reply to the asking envelope", async () => {
    const fake = fakeRelay(fakeConfig({ sessions: [session("s1"), session("s2")] }));
    fake.outbox.autoAcknowledge = true;
    fake.api.reply = (text) => (text.includes("which") ? "[NEEDS-JC] rebase or merge?" : `relayed: ${text}`);
    const asking = fake.inbox.drop("s2", "which way?");
    await start(fake);
    await until(() => expect(fake.statuses.at(-1)?.questions).toHaveLength(1));
    const questionId = fake.statuses.at(-1)?.questions[0]?.id ?? "";

    const answer = fake.jc.answer({ kind: "chat", text: "Merge.", question: questionId });
    await until(() => expect(fake.outbox.deliveredTo("s2")).toEqual([expect.objectContaining({ source: "jc-chat", inReplyTo: asking, text: "relayed: [JC, about s2] Merge." })]));
    expect(fake.jc.consumed).toEqual([answer]);

    // the question is closed: answering it again is refused
    const late = fake.jc.answer({ kind: "chat", text: "Rebase!", question: questionId });
    await until(() => expect(fake.jc.refused).toEqual([expect.objectContaining({ id: late, reason: expect.stringContaining(questionId) as unknown })]));
    await pause(60);
    expect(fake.api.callsFor("Rebase!")).toEqual([]);
  });

  it("a 429 holds every conversation's calls until its retry-after, then one call probes and the rest follow", async () => {
    const fake = fakeRelay(fakeConfig({ sessions: [session("s1"), session("s2")], maxParallelCalls: 2 }));
    fake.outbox.autoAcknowledge = true;
    fake.api.delayMs = 50;
    let limited = false;
    const rateLimit = Anthropic.APIError.generate(429, { type: "error", error: { type: "rate_limit_error", message: "Number of requests has exceeded your rate limit" } }, undefined, new Headers({ "retry-after-ms": "300" }));
    fake.api.reply = (text) => {
      if (text.includes("first") && !limited) {
        limited = true;
        return { error: rateLimit };
      }
      return `reply to ${text}`;
    };
    fake.inbox.drop("s1", "first");
    fake.inbox.drop("s2", "second");
    fake.inbox.drop("s2", "third");
    await start(fake);

    await until(() => expect(fake.outbox.delivered).toHaveLength(3));
    const limitedCall = fake.api.calls.find((c) => c.text.includes("first"));
    const limitedAt = limitedCall?.settledAt ?? 0;
    const startedAfter = fake.api.calls.filter((c) => c.startedAt > limitedAt);
    expect(startedAfter.length).toBeGreaterThan(0);
    for (const call of startedAfter) expect(call.startedAt).toBeGreaterThanOrEqual(limitedAt + 300);
    // the first of them probed alone: the next started only once it had come back
    const [probe, ...rest] = startedAfter;
    expect(probe?.text).toContain("first");
    for (const call of rest) expect(call.startedAt).toBeGreaterThanOrEqual(probe?.settledAt ?? Infinity);
    expect(fake.notifications.map((n) => n.kind)).toEqual(["failureStarted", "failureEnded"]);
    expect(fake.statuses.some((s) => s.state === "backingOff")).toBe(true);
    await until(() => expect(fake.statuses.at(-1)?.retry).toBeNull());
  });

  it("summarizes a conversation past the char cap and goes on answering", async () => {
    const fake = fakeRelay(fakeConfig({ sessions: [session("s1")], historyCharCap: 300, keepRecentTurns: 1 }));
    fake.outbox.autoAcknowledge = true;
    for (const n of [1, 2, 3, 4]) fake.inbox.drop("s1", `message ${n} ${"x".repeat(100)}`);
    await start(fake);
    await until(() => expect(fake.outbox.delivered).toHaveLength(4));
    await until(() => expect(fake.history.byConversation.get("session.s1")?.[0]?.kind).toBe("summary"));
    // the summary rides the cache: the conversation's messages, then the summarization prompt as the last user turn
    expect(fake.api.calls.filter((c) => c.request.messages.length > 1 && c.text.startsWith("[relay] Summarize.") && c.text.includes("Write the summary"))).not.toHaveLength(0);
    expect(fake.inbox.finished).toHaveLength(4);
  });

  it("writes a status with the keys CONTRACT §9 promises", async () => {
    const fake = fakeRelay(fakeConfig({ sessions: [session("s1"), session("s2", false)] }));
    fake.inbox.drop("s1", "hello");
    await start(fake);
    await until(() => expect(fake.statuses.at(-1)?.history.turns).toBe(1));
    const status = fake.statuses.at(-1);
    expect(statusFileSchema.safeParse(status).success).toBe(true);
    for (const key of ["state", "needsJc", "questions", "conversations", "sessions", "history", "lastError", "cost"]) expect(status).toHaveProperty(key);
    expect(status?.state).toBe("awaitingAck"); // the reply sits in input.txt
    expect(status?.conversations["session.s1"]).toMatchObject({ state: "awaitingAck", sessions: ["s1"], turns: 1 });
    expect(status?.conversations.shared).toMatchObject({ state: "idle", sessions: ["s2"], chars: 0, turns: 0 });
    expect(status?.sessions.s1).toMatchObject({ pending: 0, awaitingAck: true });
    expect(status?.sessions.s2).toMatchObject({ pending: 0, awaitingAck: false });
    expect(status?.cost.totalUsd).toEqual(expect.any(Number));
    expect(status?.needsJc).toBeNull();
    expect(status?.lastError).toBeNull();
  });

  it("stop() resolves done with 0 and saves a last durable snapshot", async () => {
    const fake = fakeRelay();
    const handle = await start(fake);
    await until(() => expect(fake.statuses.length).toBeGreaterThan(0));
    handle.stop();
    expect(await handle.done).toBe(0);
    expect(fake.snapshots.at(-1)?.durable).toBe(true);
  });

  it("stop() lets a call in flight finish within the grace period, and its reply reaches the session before exit", async () => {
    const fake = fakeRelay(fakeConfig({ sessions: [session("s1")] }));
    fake.api.reply = () => null;
    const id = fake.inbox.drop("s1", "one more thing");
    const handle = await start(fake);
    await until(() => expect(fake.api.open()).toHaveLength(1));
    handle.stop();
    await pause(100);
    fake.api.open()[0]?.resolve("done in time");
    expect(await handle.done).toBe(0);
    // the turn is in the history and the snapshot, whatever happens next
    expect(fake.history.turns("session.s1")).toHaveLength(1);
    expect(doneIn(fake.snapshots.at(-1)?.snapshot)).toContain(`h-${[...fake.inbox.all.keys()][0] ?? ""}`);
    // and the call that was let finish is delivered and its envelope finished, not left for the next start
    expect(fake.outbox.delivered.map((d) => d.inReplyTo)).toEqual([id]);
    expect(fake.inbox.finished).toHaveLength(1);
  });

  it("stop() abandons a call still running at the end of the grace period and exits 0", async () => {
    const fake = fakeRelay(fakeConfig({ sessions: [session("s1")] }));
    fake.api.reply = () => null;
    fake.inbox.drop("s1", "never answered");
    const handle = await start(fake);
    await until(() => expect(fake.api.open()).toHaveLength(1));
    const stoppedAt = Date.now();
    handle.stop();
    expect(await handle.done).toBe(0);
    expect(Date.now() - stoppedAt).toBeGreaterThanOrEqual(900);
    expect(fake.inbox.finished).toEqual([]); // the envelope stays for the next start
  });
});
