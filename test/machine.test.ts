// Pure transitions of the relay machine: nothing is executed, only decided.
import { describe, expect, it } from "vitest";
import { initialTransition, transition } from "xstate";
import { BACKOFF_CAP_MS, backoffDelayMs, PROBE_INTERVAL_MS } from "../machines/backoff.js";
import { type CallResult, type CommitResult, needsJcIn, type RelayEvent, relayMachine, type WorkItem } from "../machines/relay.js";

type Snap = ReturnType<typeof initialTransition<typeof relayMachine>>[0];
type Step = ReturnType<typeof transition<typeof relayMachine>>;

const invokeId = (state: "calling" | "dispatching" | "summarizing") => {
  const id = relayMachine.root.states[state]?.invoke[0]?.id;
  if (!id) throw new Error(`no invoke in ${state}`);
  return id;
};
// Done/error events of invoked actors are internal xstate events, outside RelayEvent.
const send = (snap: Snap, event: RelayEvent | { type: string; output?: unknown; error?: unknown }): Step =>
  transition(relayMachine, snap, event as RelayEvent);
const callDone = (snap: Snap, output: CallResult) => send(snap, { type: `xstate.done.actor.${invokeId("calling")}`, output });
const commitDone = (snap: Snap, output: Partial<CommitResult> = {}) =>
  send(snap, { type: `xstate.done.actor.${invokeId("dispatching")}`, output: { overCap: [], noteIds: [], at: 10, ...output } });

const envelope = (id: string, session = "session-1", text = `text of ${id}`): WorkItem => ({ id, source: "envelope", session, text, file: `${id}.json` });
const notifications = (step: Step) =>
  step[1].filter((a) => a.type === "notify").map((a) => (a as unknown as { params: { kind: string } }).params.kind);
const jc = (id: string, text: string, direct: { session: string; text: string } | null = null): RelayEvent => ({ type: "jc.inputFound", id, text, direct, defaultSession: "session-1", at: 5 });

function start(): Snap {
  return initialTransition(relayMachine)[0];
}

/** Take an envelope through the API call and the commit. */
function relayOne(snap: Snap, item: WorkItem, reply = `reply to ${item.id}`): Snap {
  let s = send(snap, { type: "queue.envelopeFound", item, at: 1 })[0];
  expect(s.value).toBe("calling");
  s = callDone(s, { ok: true, text: reply, at: 2 })[0];
  expect(s.value).toBe("dispatching");
  return commitDone(s)[0];
}

describe("relay machine: relaying", () => {
  it("starts idle and takes an envelope into calling", () => {
    const s0 = start();
    expect(s0.value).toBe("idle");
    const [s1] = send(s0, { type: "queue.envelopeFound", item: envelope("e1"), at: 1 });
    expect(s1.value).toBe("calling");
    expect(s1.context.current?.id).toBe("e1");
    expect(s1.context.lastSession).toBe("session-1");
  });

  it("queues the reply for its session and waits for the acknowledgement", () => {
    const s = relayOne(start(), envelope("e1"));
    expect(s.value).toBe("awaitingAck");
    expect(s.context.outbox["session-1"]).toEqual([{ id: "e1", text: "reply to e1", staged: false }]);
    expect(s.context.current).toBeNull();
    expect(s.context.done).toContain("e1");
  });

  it("keeps later replies for a session in order behind the first", () => {
    let s = relayOne(start(), envelope("e1"));
    s = relayOne(s, envelope("e2"));
    s = relayOne(s, envelope("e3"));
    expect(s.context.outbox["session-1"]?.map((r) => r.id)).toEqual(["e1", "e2", "e3"]);
  });

  it("goes back to idle once every reply is delivered and acknowledged", () => {
    let s = relayOne(start(), envelope("e1"));
    s = send(s, { type: "dispatch.staged", session: "session-1", id: "e1" })[0];
    expect(s.context.outbox["session-1"]?.[0]?.staged).toBe(true);
    s = send(s, { type: "dispatch.delivered", session: "session-1", id: "e1" })[0];
    expect(s.context.outbox).toEqual({});
    expect(s.context.unacked).toEqual(["session-1"]);
    expect(s.value).toBe("awaitingAck");
    s = send(s, { type: "dispatch.acknowledged", session: "session-1" })[0];
    expect(s.value).toBe("idle");
  });

  it("takes envelopes while replies await acknowledgement", () => {
    const s = relayOne(start(), envelope("e1"));
    expect(s.value).toBe("awaitingAck");
    expect(s.can({ type: "queue.envelopeFound", item: envelope("e2"), at: 3 })).toBe(true);
  });

  it("takes no envelope while a call is under way", () => {
    const [s] = send(start(), { type: "queue.envelopeFound", item: envelope("e1"), at: 1 });
    expect(s.can({ type: "queue.envelopeFound", item: envelope("e2"), at: 2 })).toBe(false);
  });

  it("summarizes when the history is over the cap, then rests", () => {
    let s = send(start(), { type: "queue.envelopeFound", item: envelope("e1"), at: 1 })[0];
    s = callDone(s, { ok: true, text: "r", at: 2 })[0];
    s = commitDone(s, { overCap: ["shared"] })[0];
    expect(s.value).toBe("summarizing");
    expect(s.context.overCap).toEqual(["shared"]);
    expect(s.context.outbox["session-1"]).toHaveLength(1);
    s = send(s, { type: `xstate.done.actor.${invokeId("summarizing")}`, output: { ok: true } })[0];
    expect(s.value).toBe("awaitingAck");
    expect(s.context.overCap).toEqual([]);
  });

  it("halts when the history cannot be written, keeping the turn to redo", () => {
    let s = send(start(), { type: "queue.envelopeFound", item: envelope("e1"), at: 1 })[0];
    s = callDone(s, { ok: true, text: "r", at: 2 })[0];
    s = send(s, { type: `xstate.error.actor.${invokeId("dispatching")}`, error: new Error("ENOSPC: no space left") })[0];
    expect(s.value).toBe("halted");
    expect(s.status).toBe("done");
    expect(s.context.lastError?.message).toContain("ENOSPC");
  });
});

describe("relay machine: needs JC", () => {
  it("detects [NEEDS-JC] only in the first 200 characters", () => {
    expect(needsJcIn("[NEEDS-JC] shall we?")).toBe(true);
    expect(needsJcIn(`${"x".repeat(190)}[NEEDS-JC]`)).toBe(true);
    expect(needsJcIn(`${"x".repeat(191)}[NEEDS-JC]`)).toBe(false);
  });

  it("does not dispatch a [NEEDS-JC] reply and notifies once", () => {
    let s = send(start(), { type: "queue.envelopeFound", item: envelope("e1"), at: 1 })[0];
    s = callDone(s, { ok: true, text: "[NEEDS-JC] Merge now?", at: 2 })[0];
    const step = commitDone(s, { at: 9 });
    s = step[0];
    expect(s.value).toBe("needsJc");
    expect(s.context.needsJc).toEqual({ session: "session-1", question: "[NEEDS-JC] Merge now?", since: 9 });
    expect(s.context.outbox).toEqual({});
    expect(notifications(step)).toEqual(["needsJc"]);
  });

  function needsJcState(): Snap {
    let s = send(start(), { type: "queue.envelopeFound", item: envelope("e1", "session-2"), at: 1 })[0];
    s = callDone(s, { ok: true, text: "[NEEDS-JC] Merge now?", at: 2 })[0];
    return commitDone(s)[0];
  }

  it("takes no envelope while waiting for JC", () => {
    expect(needsJcState().can({ type: "queue.envelopeFound", item: envelope("e2"), at: 3 })).toBe(false);
  });

  it("dispatches @session: text directly, records it, and clears the pause", () => {
    const [s] = send(needsJcState(), jc("j1", "go", { session: "session-2", text: "go" }));
    expect(s.value).toBe("dispatching");
    expect(s.context.needsJc).toBeNull();
    expect(s.context.outbox["session-2"]).toEqual([{ id: "j1", text: "go", staged: false }]);
    expect(s.context.notes).toEqual([{ id: "j1", session: "session-2", text: "go" }]);
    const [after] = commitDone(s, { noteIds: ["j1"] });
    expect(after.context.notes).toEqual([]);
    expect(after.value).toBe("awaitingAck");
  });

  it("sends plain JC text as the next chat turn for the session that asked", () => {
    const [s] = send(needsJcState(), jc("j1", "yes, merge"));
    expect(s.value).toBe("calling");
    expect(s.context.needsJc).toBeNull();
    expect(s.context.current).toEqual({ id: "j1", source: "jc", session: "session-2", text: "yes, merge" });
  });
});

describe("relay machine: JC at any time", () => {
  it("dispatches a direct JC answer during a call without waiting for it", () => {
    const [calling] = send(start(), { type: "queue.envelopeFound", item: envelope("e1"), at: 1 });
    const [s] = send(calling, jc("j1", "stop", { session: "session-2", text: "stop" }));
    expect(s.value).toBe("calling");
    expect(s.context.outbox["session-2"]?.[0]?.text).toBe("stop");
  });

  it("answers a JC chat turn before the next envelope", () => {
    let s = send(start(), { type: "queue.envelopeFound", item: envelope("e1"), at: 1 })[0];
    s = send(s, jc("j1", "how is it going?"))[0];
    expect(s.context.jcChats).toHaveLength(1);
    s = callDone(s, { ok: true, text: "fine", at: 2 })[0];
    s = commitDone(s)[0];
    expect(s.value).toBe("calling");
    expect(s.context.current?.id).toBe("j1");
    expect(s.context.current?.session).toBe("session-1");
  });

  it("remembers consumed JC input so a re-read after a crash is not taken twice", () => {
    const [s] = send(start(), jc("j1", "hello"));
    expect(s.context.done).toContain("j1");
  });
});

describe("relay machine: failures", () => {
  const calling = () => send(start(), { type: "queue.envelopeFound", item: envelope("e1"), at: 1 })[0];
  const transient = (at: number, jitter = 0.5, retryAfterMs?: number): CallResult => ({
    ok: false,
    failure: { kind: "transient", message: "529 overloaded_error: Overloaded", ...(retryAfterMs === undefined ? {} : { retryAfterMs }) },
    at,
    jitter,
  });

  it("backs off on a transient failure, keeps the envelope, notifies once per streak", () => {
    const first = callDone(calling(), transient(1000));
    let s = first[0];
    expect(s.value).toBe("backingOff");
    expect(s.context.current?.id).toBe("e1");
    expect(s.context.failure).toMatchObject({ kind: "transient", attempt: 1, nextAt: 1000 + backoffDelayMs(1, 0.5) });
    expect(notifications(first)).toEqual(["failureStarted"]);
    s = send(s, { type: "clock.tick", now: s.context.failure?.nextAt ?? 0 })[0];
    expect(s.value).toBe("calling");
    const second = callDone(s, transient(5000));
    expect(second[0].context.failure?.attempt).toBe(2);
    expect(notifications(second)).toEqual([]);
  });

  it("waits until the retry is due", () => {
    const s = callDone(calling(), transient(1000, 1))[0];
    const nextAt = s.context.failure?.nextAt ?? 0;
    expect(send(s, { type: "clock.tick", now: nextAt - 1 })[0].value).toBe("backingOff");
    expect(send(s, { type: "clock.tick", now: nextAt })[0].value).toBe("calling");
  });

  it("honours retry-after", () => {
    const s = callDone(calling(), transient(1000, 0, 42_000))[0];
    expect(s.context.failure?.nextAt).toBe(43_000);
  });

  it("tells JC once when calls work again", () => {
    let s = callDone(calling(), transient(1000))[0];
    s = send(s, { type: "operator.resume" })[0];
    const ok = callDone(s, { ok: true, text: "r", at: 3000 });
    expect(ok[0].value).toBe("dispatching");
    expect(ok[0].context.failure).toBeNull();
    expect(notifications(ok)).toEqual(["failureEnded"]);
  });

  it("pauses on a permanent failure, keeps the envelope, and resumes on request", () => {
    const step = callDone(calling(), { ok: false, failure: { kind: "permanent", message: "401 authentication_error" }, at: 1000, jitter: 0 });
    let s = step[0];
    expect(s.value).toBe("paused");
    expect(s.context.current?.id).toBe("e1");
    expect(s.context.failure).toMatchObject({ kind: "permanent", nextAt: 1000 + PROBE_INTERVAL_MS });
    expect(notifications(step)).toEqual(["paused"]);
    expect(send(s, { type: "clock.tick", now: 2000 })[0].value).toBe("paused");
    s = send(s, { type: "operator.resume" })[0];
    expect(s.value).toBe("calling");
  });

  it("probes again by itself after the probe interval", () => {
    const s = callDone(calling(), { ok: false, failure: { kind: "permanent", message: "credit" }, at: 0, jitter: 0 })[0];
    expect(send(s, { type: "clock.tick", now: PROBE_INTERVAL_MS })[0].value).toBe("calling");
  });

  it("rejects an envelope the API refused as its own fault and moves on", () => {
    const [s] = callDone(calling(), { ok: false, failure: { kind: "envelope", message: "400 invalid_request_error: bad" }, at: 7, jitter: 0 });
    expect(s.value).toBe("idle");
    expect(s.context.current).toBeNull();
    expect(s.context.rejections).toEqual([{ id: "e1", file: "e1.json", reason: "400 invalid_request_error: bad", at: 7 }]);
    const [filed] = send(s, { type: "queue.rejectionFiled", id: "e1" });
    expect(filed.context.rejections).toEqual([]);
  });

  it("asks JC instead of calling when a budget is spent, leaving the envelope in the queue", () => {
    const step = callDone(calling(), { ok: false, failure: { kind: "budget", message: "[NEEDS-JC] The daily budget of $5.00 is spent" }, at: 9, jitter: 0 });
    const [s] = step;
    expect(s.value).toBe("needsJc");
    expect(s.context.needsJc).toEqual({ session: "session-1", question: "[NEEDS-JC] The daily budget of $5.00 is spent", since: 9 });
    expect(s.context.current).toBeNull();
    expect(s.context.done).not.toContain("e1");
    expect(notifications(step)).toEqual(["needsJc"]);
  });

  it("treats an unexpected exception as transient", () => {
    const [s] = send(calling(), { type: `xstate.error.actor.${invokeId("calling")}`, error: new Error("boom") });
    expect(s.value).toBe("backingOff");
    expect(s.context.current?.id).toBe("e1");
  });
});

describe("back-off arithmetic", () => {
  it("draws from [0, 1 s * 2^(n-1)] capped at 5 minutes", () => {
    expect(backoffDelayMs(1, 1)).toBe(1000);
    expect(backoffDelayMs(3, 1)).toBe(4000);
    expect(backoffDelayMs(3, 0)).toBe(0);
    expect(backoffDelayMs(30, 1)).toBe(BACKOFF_CAP_MS);
    for (let attempt = 1; attempt < 20; attempt++) {
      const d = backoffDelayMs(attempt, Math.random());
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThanOrEqual(Math.min(BACKOFF_CAP_MS, 1000 * 2 ** (attempt - 1)));
    }
  });
});
