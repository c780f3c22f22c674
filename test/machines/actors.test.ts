// Layer 2: the real root and conversation machines running, with the conversation's actors replaced
// by controllable fakes. An API call is a deferred promise the test settles; a call never settled
// holds its conversation in `calling`.
import { describe, expect, it, vi } from "vitest";
import { type Actor, createActor, fromPromise, type Snapshot, waitFor } from "xstate";
import { backoffDelayMs } from "../../machines/backoff.js";
import { conversationMachine } from "../../machines/conversation.js";
import { readyConversations, type RelayEmitted, relayMachine } from "../../machines/relay.js";
import type { CallResult, CommitInput, CommitResult, Note, SummarizeResult, WorkItem } from "../../machines/types.js";

interface PendingCall {
  conversation: string;
  item: WorkItem;
  notes: Note[];
  settled: boolean;
  resolve(result: CallResult): void;
}

/** The conversation's actors as fakes: calls wait for the test; commits and summaries succeed at once. */
function fakeActors(opts: { holdSummaries?: boolean } = {}) {
  const calls: PendingCall[] = [];
  const summaries: { conversation: string; resolve(result: SummarizeResult): void }[] = [];
  const commits: CommitInput[] = [];
  let open = 0;
  let maxOpen = 0;
  const callApi = fromPromise<CallResult, { conversation: string; item: WorkItem; notes: Note[] }>(
    ({ input }) =>
      new Promise<CallResult>((resolve) => {
        open += 1;
        maxOpen = Math.max(maxOpen, open);
        const call: PendingCall = {
          ...input,
          settled: false,
          resolve(result) {
            if (call.settled) throw new Error(`the call for ${input.item.id} was settled already`);
            call.settled = true;
            open -= 1;
            resolve(result);
          },
        };
        calls.push(call);
      }),
  );
  const commitTurn = fromPromise<CommitResult, CommitInput>(async ({ input }) => {
    commits.push(input);
    return { overCap: false, noteIds: input.notes.map((n) => n.id), at: 1 };
  });
  const summarize = fromPromise<SummarizeResult, { conversation: string }>(({ input }) =>
    opts.holdSummaries ? new Promise((resolve) => summaries.push({ conversation: input.conversation, resolve })) : Promise.resolve({ ok: true, folded: 3, at: 1 }),
  );
  const machine = relayMachine.provide({ actors: { conversation: conversationMachine.provide({ actors: { callApi, commitTurn, summarize } }) } });
  return {
    machine,
    calls,
    commits,
    summaries,
    /** calls started and not settled, in the order they started */
    open: () => calls.filter((c) => !c.settled),
    maxOpen: () => maxOpen,
    /** the one unsettled call of `conversation` */
    callOf(conversation: string): PendingCall {
      const found = calls.filter((c) => !c.settled && c.conversation === conversation);
      if (found.length !== 1) throw new Error(`expected one call in flight for ${conversation}, found ${found.length}`);
      return found[0] as PendingCall;
    },
  };
}

type Relay = Actor<ReturnType<typeof fakeActors>["machine"]>;

const ok = (text: string, at = 1): CallResult => ({ ok: true, text, at, called: true });
const envelope = (n: number, session: string): WorkItem => ({ id: `h${n}`, source: "envelope", session, text: `envelope ${n}`, inReplyTo: `env-${n}`, receipt: `rcpt-${n}` });
const stateOf = (relay: Relay, conversation: string): string => {
  const ref = relay.getSnapshot().context.conversations[conversation];
  if (!ref) throw new Error(`no conversation ${conversation}`);
  return String(ref.getSnapshot().value);
};

/** A started relay with sessions s1..s4 in conversations A..D, every emitted event recorded. */
function started(maxParallel: number, fakes = fakeActors()) {
  const relay = createActor(fakes.machine);
  const emitted: RelayEmitted[] = [];
  relay.on("*", (e) => emitted.push(e));
  relay.start();
  relay.send({ type: "config.loaded", routes: { s1: "A", s2: "B", s3: "C", s4: "D" }, defaultSession: "s1", maxParallel });
  return { relay, fakes, emitted };
}

const offer = (relay: Relay, item: WorkItem) => relay.send({ type: "envelope.offered", item, at: 1 });
const until = (assertion: () => void) => vi.waitFor(assertion, { timeout: 5_000, interval: 5 });

describe("relay with its conversations running", () => {
  it("never runs more than max_parallel_calls calls at once, and a freed slot starts the next waiting call", async () => {
    const { relay, fakes } = started(2);
    for (const [n, s] of [[1, "s1"], [2, "s2"], [3, "s3"], [4, "s4"]] as const) offer(relay, envelope(n, s));

    await until(() => expect(fakes.open().map((c) => c.conversation)).toEqual(["A", "B"]));
    expect(relay.getSnapshot().context.inFlight).toEqual(["A", "B"]);
    expect(relay.getSnapshot().context.waiting).toEqual(["C", "D"]);
    expect([stateOf(relay, "C"), stateOf(relay, "D")]).toEqual(["queued", "queued"]);

    fakes.callOf("B").resolve(ok("reply to 2"));
    await until(() => expect(fakes.open().map((c) => c.conversation)).toEqual(["A", "C"]));
    expect(stateOf(relay, "B")).toBe("idle");

    fakes.callOf("A").resolve(ok("reply to 1"));
    fakes.callOf("C").resolve(ok("reply to 3"));
    await until(() => expect(fakes.open().map((c) => c.conversation)).toEqual(["D"]));
    fakes.callOf("D").resolve(ok("reply to 4"));
    await until(() => expect(Object.keys(relay.getSnapshot().context.outbox).sort()).toEqual(["s1", "s2", "s3", "s4"]));
    expect(fakes.maxOpen()).toBe(2);
    expect(relay.getSnapshot().context.inFlight).toEqual([]);
    relay.stop();
  });

  it("a 429 closes the gate: no call starts until the back-off is over, one call probes, and success reopens it", async () => {
    const { relay, fakes, emitted } = started(2);
    for (const [n, s] of [[1, "s1"], [2, "s2"], [3, "s3"], [4, "s4"]] as const) offer(relay, envelope(n, s));
    await until(() => expect(fakes.open()).toHaveLength(2));

    fakes.callOf("A").resolve({ ok: false, failure: { kind: "rateLimited", message: "429 rate_limit_error", status: 429 }, at: 1_000, jitter: 0.5 });
    await waitFor(relay, (s) => s.value === "backingOff");
    const nextAt = 1_000 + backoffDelayMs(1, 0.5);
    expect(emitted).toContainEqual({ type: "notify", kind: "failureStarted", message: "429 rate_limit_error" });

    // B's call was already in flight: it finishes, and its slot is not given to anyone
    fakes.callOf("B").resolve(ok("reply to 2"));
    await until(() => expect(stateOf(relay, "B")).toBe("idle"));
    expect(fakes.open()).toEqual([]);
    expect(stateOf(relay, "A")).toBe("queued"); // the envelope is kept
    expect(relay.getSnapshot().context.inFlight).toEqual([]);

    relay.send({ type: "clock.tick", now: nextAt - 1 });
    await new Promise((r) => setTimeout(r, 20));
    expect(relay.getSnapshot().value).toBe("backingOff");
    expect(fakes.open()).toEqual([]);

    relay.send({ type: "clock.tick", now: nextAt });
    await waitFor(relay, (s) => s.value === "probing");
    await until(() => expect(fakes.open()).toHaveLength(1));
    await new Promise((r) => setTimeout(r, 20));
    expect(fakes.open()).toHaveLength(1); // exactly one probe
    const probe = fakes.open()[0] as PendingCall;

    probe.resolve(ok("the API works again", 9_000));
    await waitFor(relay, (s) => s.value === "available");
    expect(emitted).toContainEqual({ type: "notify", kind: "failureEnded", message: expect.stringContaining("1 failed attempt") as unknown });
    await until(() => expect(fakes.open()).toHaveLength(2));
    expect(fakes.maxOpen()).toBe(2);
    expect(relay.getSnapshot().context.failure).toBeNull();
    relay.stop();
  });

  it("a probe that made no call (a budget ran out) does not reopen the gate", async () => {
    const { relay, fakes } = started(2);
    offer(relay, envelope(1, "s1"));
    offer(relay, envelope(2, "s2"));
    await until(() => expect(fakes.open()).toHaveLength(2));
    fakes.callOf("A").resolve({ ok: false, failure: { kind: "rateLimited", message: "429" }, at: 1_000, jitter: 0 });
    fakes.callOf("B").resolve({ ok: false, failure: { kind: "rateLimited", message: "429" }, at: 1_000, jitter: 0 });
    await waitFor(relay, (s) => s.value === "backingOff" && s.context.inFlight.length === 0);
    relay.send({ type: "clock.tick", now: 1e9 });
    await until(() => expect(fakes.open()).toHaveLength(1));
    const probe = fakes.open()[0] as PendingCall;
    // the probe's conversation is over its budget: the call actor returns without calling the API
    probe.resolve({ ok: false, failure: { kind: "budget", message: "[NEEDS-JC] budget spent" }, at: 2_000, jitter: 0 });
    await until(() => expect(stateOf(relay, probe.conversation)).toBe("needsJc"));
    // nothing proved that the API accepts calls again: the gate must not open for everyone
    expect(relay.getSnapshot().value).toBe("probing");
    relay.stop();
  });

  it("one conversation's transient failure backs off only that conversation", async () => {
    const { relay, fakes } = started(2);
    offer(relay, envelope(1, "s1"));
    offer(relay, envelope(2, "s2"));
    await until(() => expect(fakes.open()).toHaveLength(2));
    fakes.callOf("A").resolve({ ok: false, failure: { kind: "transient", message: "503" }, at: 1_000, jitter: 0.5 });
    await until(() => expect(stateOf(relay, "A")).toBe("backingOff"));
    expect(relay.getSnapshot().value).toBe("available");
    // B goes on, and takes its next envelope
    fakes.callOf("B").resolve(ok("reply to 2"));
    await until(() => expect(stateOf(relay, "B")).toBe("idle"));
    offer(relay, envelope(3, "s2"));
    await until(() => expect(fakes.callOf("B").item.id).toBe("h3"));
    // A retries on the clock, with the same envelope
    relay.send({ type: "clock.tick", now: 1_000 + backoffDelayMs(1, 0.5) });
    await until(() => expect(fakes.callOf("A").item.id).toBe("h1"));
    relay.stop();
  });

  it("a [NEEDS-JC] reply holds only its conversation; JC's answer by question id is answered as a reply to the asking envelope", async () => {
    const { relay, fakes, emitted } = started(2);
    offer(relay, envelope(1, "s1"));
    offer(relay, envelope(2, "s2"));
    await until(() => expect(fakes.open()).toHaveLength(2));

    fakes.callOf("A").resolve(ok("[NEEDS-JC] should s1 rebase or merge?"));
    await until(() => expect(stateOf(relay, "A")).toBe("needsJc"));
    const [question] = relay.getSnapshot().context.questions;
    expect(question).toMatchObject({ id: "q-h1", conversation: "A", session: "s1", inReplyTo: "env-1", kind: "reply" });
    expect(emitted).toContainEqual({ type: "notify", kind: "needsJc", session: "s1", questionId: "q-h1", message: "[NEEDS-JC] should s1 rebase or merge?" });
    expect(emitted).toContainEqual({ type: "envelope.finished", receipt: "rcpt-1" });
    expect(relay.getSnapshot().context.outbox).toEqual({}); // nothing dispatched
    expect(readyConversations(relay.getSnapshot().context).has("A")).toBe(false);

    // B keeps calling
    fakes.callOf("B").resolve(ok("reply to 2"));
    await until(() => expect(stateOf(relay, "B")).toBe("idle"));
    expect(readyConversations(relay.getSnapshot().context).has("B")).toBe(true);
    offer(relay, envelope(3, "s2"));
    await until(() => expect(fakes.callOf("B").item.id).toBe("h3"));
    expect(stateOf(relay, "A")).toBe("needsJc");

    relay.send({ type: "jc.received", id: "jc-1", answer: { kind: "chat", text: "Merge.", question: "q-h1" }, at: 5 });
    expect(emitted).toContainEqual({ type: "jc.consumed", id: "jc-1" });
    await until(() => expect(fakes.callOf("A").item).toEqual({ id: "jc-1", source: "jc", session: "s1", text: "Merge.", inReplyTo: "env-1" }));
    expect(relay.getSnapshot().context.questions).toEqual([]);
    fakes.callOf("A").resolve(ok("s1: merge it, then continue.", 6));
    await until(() => expect(relay.getSnapshot().context.outbox.s1).toEqual([{ replyId: "r-jc-1", session: "s1", inReplyTo: "env-1", source: "jc-chat", text: "s1: merge it, then continue.", at: 1 }]));

    // the question is closed: a second answer to it is refused
    relay.send({ type: "jc.received", id: "jc-2", answer: { kind: "chat", text: "Rebase!", question: "q-h1" }, at: 7 });
    expect(emitted).toContainEqual({ type: "jc.refused", id: "jc-2", reason: expect.stringContaining("q-h1") as unknown });
    await new Promise((r) => setTimeout(r, 20));
    expect(fakes.open().map((c) => c.conversation)).toEqual(["B"]);
    relay.stop();
  });

  it("delivers JC's direct answer with no API call and resumes the conversation", async () => {
    const { relay, fakes } = started(2);
    offer(relay, envelope(1, "s1"));
    await until(() => expect(fakes.open()).toHaveLength(1));
    fakes.callOf("A").resolve(ok("[NEEDS-JC] ok to deploy?"));
    await until(() => expect(stateOf(relay, "A")).toBe("needsJc"));
    const callsBefore = fakes.calls.length;
    relay.send({ type: "jc.received", id: "jc-9", answer: { kind: "direct", session: "s1", text: "Deploy." }, at: 3 });
    expect(relay.getSnapshot().context.outbox.s1).toEqual([{ replyId: "r-jc-9", session: "s1", inReplyTo: "env-1", source: "jc-direct", text: "Deploy.", at: 3 }]);
    await until(() => expect(stateOf(relay, "A")).toBe("idle"));
    expect(fakes.calls.length).toBe(callsBefore);
    expect(fakes.commits.at(-1)).toEqual({ conversation: "A", turn: null, notes: [{ id: "jc-9", session: "s1", text: "Deploy." }] });
    expect(readyConversations(relay.getSnapshot().context).has("A")).toBe(true);
    relay.stop();
  });

  it("keeps replies to one session in the order their envelopes were taken", async () => {
    const { relay, fakes } = started(2);
    for (const n of [1, 2, 3]) {
      await until(() => expect(readyConversations(relay.getSnapshot().context).has("A")).toBe(true));
      offer(relay, envelope(n, "s1"));
      await until(() => expect(fakes.open()).toHaveLength(1));
      fakes.callOf("A").resolve(ok(`reply ${n}`));
    }
    await until(() => expect(relay.getSnapshot().context.outbox.s1?.map((d) => d.inReplyTo)).toEqual(["env-1", "env-2", "env-3"]));
    // only the head can be marked delivered
    relay.send({ type: "dispatch.delivered", session: "s1", replyId: "r-h2" });
    expect(relay.getSnapshot().context.outbox.s1).toHaveLength(3);
    relay.send({ type: "dispatch.delivered", session: "s1", replyId: "r-h1" });
    expect(relay.getSnapshot().context.outbox.s1?.map((d) => d.replyId)).toEqual(["r-h2", "r-h3"]);
    relay.stop();
  });

  it("a summary holds a call slot like a call", async () => {
    const { relay, fakes } = started(1, fakeActors({ holdSummaries: true }));
    offer(relay, envelope(1, "s1"));
    offer(relay, envelope(2, "s2"));
    await until(() => expect(fakes.open().map((c) => c.conversation)).toEqual(["A"]));
    fakes.callOf("A").resolve({ ok: false, failure: { kind: "tooLong", message: "prompt is too long", status: 400 }, at: 1, jitter: 0 });
    // A gives its slot back and asks again behind B, which was waiting first
    await until(() => expect(fakes.open().map((c) => c.conversation)).toEqual(["B"]));
    expect(stateOf(relay, "A")).toBe("queued");
    fakes.callOf("B").resolve(ok("reply to 2"));
    // A's summary now holds the only slot: nobody calls while it runs
    await until(() => expect(stateOf(relay, "A")).toBe("summarizing"));
    expect(relay.getSnapshot().context.inFlight).toEqual(["A"]);
    offer(relay, envelope(3, "s2"));
    await until(() => expect(stateOf(relay, "B")).toBe("queued"));
    expect(fakes.open()).toEqual([]);
    fakes.summaries[0]?.resolve({ ok: true, folded: 5, at: 2 });
    // the slot goes to B, waiting first; then A calls again with the same envelope
    await until(() => expect(fakes.open().map((c) => [c.conversation, c.item.id])).toEqual([["B", "h3"]]));
    expect(stateOf(relay, "A")).toBe("queued");
    fakes.callOf("B").resolve(ok("reply to 3"));
    await until(() => expect(fakes.open().map((c) => [c.conversation, c.item.id])).toEqual([["A", "h1"]]));
    expect(fakes.maxOpen()).toBe(1);
    relay.stop();
  });

  it("a restored snapshot taken mid-call re-runs the calls in flight and keeps the slots consistent", async () => {
    const first = started(2);
    for (const [n, s] of [[1, "s1"], [2, "s2"], [3, "s3"]] as const) offer(first.relay, envelope(n, s));
    await until(() => expect(first.fakes.open()).toHaveLength(2));
    // as state/snapshot.json keeps it: plain JSON
    const persisted: Snapshot<unknown> = JSON.parse(JSON.stringify(first.relay.getPersistedSnapshot())) as Snapshot<unknown>;
    first.relay.stop();

    const fakes = fakeActors();
    const relay = createActor(fakes.machine, { snapshot: persisted });
    relay.start();
    await until(() => expect(fakes.open().map((c) => [c.conversation, c.item.id])).toEqual([["A", "h1"], ["B", "h2"]]));
    expect(relay.getSnapshot().context.inFlight).toEqual(["A", "B"]);
    expect(relay.getSnapshot().context.waiting).toEqual(["C"]);
    expect(stateOf(relay, "C")).toBe("queued");

    fakes.callOf("A").resolve(ok("reply to 1 after the restart"));
    await until(() => expect(fakes.open().map((c) => c.conversation)).toEqual(["B", "C"]));
    expect(relay.getSnapshot().context.outbox.s1?.[0]).toMatchObject({ replyId: "r-h1", inReplyTo: "env-1" });
    expect(fakes.maxOpen()).toBe(2);
    relay.stop();
  });
});
