// The conversation's actors with fake deps (layer 2): callApi takes each request's cache lifetime
// from the conversation's pace as its history records it, logs it in the ledger, and the
// summary rides the last request's prefix with the same lifetime.
import { describe, expect, it } from "vitest";
import type { WorkItem } from "../../machines/types.js";
import type { MessagesRequest } from "../../src/anthropic/messages.js";
import { conversationActors } from "../../src/runtime/conversation-actors.js";
import { fakeConfig, fakeRelay, session } from "../support/fake-deps.js";

const MIN = 60_000;
const T0 = Date.parse("2026-11-29T08:00:00Z");
const item = (i: number): WorkItem => ({ id: `e${i}`, source: "envelope", session: "s1", text: `message ${i}`, inReplyTo: null });
const ttlOf = (req: MessagesRequest | undefined): string => {
  const system = req?.system;
  const cc = Array.isArray(system) ? system[0]?.cache_control : undefined;
  return cc ? (cc.ttl ?? "5m") : "none";
};

/** The actors over fake deps whose clock the test sets; `turn(i, at)` is one answered, committed turn. */
function setUp(over: Parameters<typeof fakeConfig>[0] = {}) {
  const fake = fakeRelay(fakeConfig({ cacheTtl: "auto", ...over }));
  let clock = T0;
  const actors = conversationActors({ ...fake.deps, now: () => clock });
  const signal = new AbortController().signal;
  const turn = async (i: number, at: number) => {
    clock = at;
    const result = await actors.callApi({ conversation: "shared", item: item(i), notes: [] }, new AbortController().signal);
    if (!result.ok) throw new Error(result.failure.message);
    await actors.commitTurn({ conversation: "shared", turn: { item: item(i), reply: result.text }, notes: [] });
  };
  return { fake, actors, turn, signal, setClock: (ms: number) => (clock = ms) };
}

describe("callApi under cache_ttl: auto", () => {
  it("takes each request's lifetime from the conversation's pace and records the choice, its reason and the gap", async () => {
    const { fake, turn } = setUp();
    const gaps = [0, 1, 1, 1, 15, 15, 15, 90, 90, 90, 90, 90].map((m) => m * MIN);
    let at = T0;
    for (const [i, gap] of gaps.entries()) await turn(i, (at += gap));
    const ttls = fake.api.calls.map((c) => ttlOf(c.request));
    expect(ttls).toEqual(["1h", "5m", "5m", "5m", "1h", "1h", "1h", "1h", "1h", "1h", "none", "none"]);
    expect(fake.ledger.map((r) => r.cache?.ttl)).toEqual(ttls);
    expect(fake.ledger[0]?.cache?.gapMs).toBeNull();
    expect(fake.ledger[0]?.cache?.reason).toMatch(/^auto: no pace yet \(first call\), 1h: .*; the prompt \(~\d+ tokens\) is below claude-sonnet-4-6's minimum cacheable prefix \(1024\)/);
    expect(fake.ledger[4]?.cache?.gapMs).toBe(15 * MIN);
    expect(fake.ledger[4]?.cache?.reason).toMatch(/^auto: 4 gaps, median 1m; expected prefix price 5m 0\.39x, 1h 0\.10x, none 1\.00x/);
  });

  it("gives a new conversation's first call the pace of the relay's other conversations", async () => {
    const { fake, actors, turn, setClock } = setUp({ sessions: [session("s1", false), session("s2", true)] });
    for (let i = 0; i < 4; i++) await turn(i, T0 + i * MIN);
    setClock(T0 + 4 * MIN);
    const s2 = { id: "b0", source: "envelope" as const, session: "s2", text: "first of s2", inReplyTo: null };
    const result = await actors.callApi({ conversation: "session.s2", item: s2, notes: [] }, new AbortController().signal);
    expect(result.ok).toBe(true);
    expect(ttlOf(fake.api.calls.at(-1)?.request)).toBe("5m");
    expect(fake.ledger.at(-1)?.cache?.reason).toMatch(/^auto: no pace yet \(first call\); the relay's other conversations: \d+ gaps, median 1m/);
    // the first conversation's own first call had nothing to borrow
    expect(fake.ledger[0]?.cache?.reason).toMatch(/^auto: no pace yet \(first call\), 1h/);
  });

  it("keeps a fixed cache_ttl whatever the pace", async () => {
    const { fake, turn } = setUp({ cacheTtl: "5m" });
    for (let i = 0; i < 3; i++) await turn(i, T0 + i * 90 * MIN);
    expect(fake.api.calls.map((c) => ttlOf(c.request))).toEqual(["5m", "5m", "5m"]);
    expect(fake.ledger.map((r) => r.cache?.reason)).toEqual(["cache_ttl: 5m", "cache_ttl: 5m", "cache_ttl: 5m"]);
  });
});

describe("a brand-new conversation's first call hedges", () => {
  /** ~8,000 characters in lines: a system prompt long enough to cut */
  const LONG = Array.from({ length: 160 }, (_, i) => `Rule ${i}: review the session's work and answer it briefly.`).join("\n");
  const systemOf = (req: MessagesRequest | undefined) => (Array.isArray(req?.system) ? req.system : []);

  it("writes 1h on the system prompt's first block and 5m after it, records 1h with the hedge's reason, and keeps the cut on every later call and the summary", async () => {
    const { fake, actors, turn, signal, setClock } = setUp({ keepRecentTurns: 1, sessions: [{ id: "s1", conversation: "shared", systemPrompt: LONG, model: "claude-sonnet-4-6" }] });
    await turn(0, T0);
    const first = fake.api.calls[0]?.request;
    expect(systemOf(first).map((b) => b.cache_control)).toEqual([{ type: "ephemeral", ttl: "1h" }, { type: "ephemeral" }]);
    expect(systemOf(first).map((b) => b.text).join("")).toBe(LONG);
    expect(JSON.stringify(first?.messages)).toContain('"cache_control":{"type":"ephemeral"}');
    expect(JSON.stringify(first?.messages)).not.toContain('"ttl":"1h"');
    expect(fake.ledger[0]?.cache).toMatchObject({ ttl: "1h", gapMs: null });
    expect(fake.ledger[0]?.cache?.reason).toMatch(/^auto: no pace yet \(first call\), hedge: 1h on the first \d+ % of the system prompt/);

    // the next call, 15 minutes on: the same two blocks, its lifetime on the second
    await turn(1, T0 + 15 * MIN);
    const second = fake.api.calls[1]?.request;
    expect(systemOf(second).map((b) => b.text)).toEqual(systemOf(first).map((b) => b.text));
    expect(systemOf(second).map((b) => b.cache_control)).toEqual([undefined, { type: "ephemeral", ttl: "1h" }]);
    expect(fake.ledger[1]?.cache?.ttl).toBe("1h");

    setClock(T0 + 15 * MIN + 1000);
    expect(await actors.summarize({ conversation: "shared" }, signal)).toMatchObject({ ok: true });
    expect(JSON.stringify(systemOf(fake.api.calls.at(-1)?.request))).toBe(JSON.stringify(systemOf(second)));
  });

  it("a summary right after the hedged first call repeats its breakpoints", async () => {
    const { fake, actors, turn, signal, setClock } = setUp({ keepRecentTurns: 0, sessions: [{ id: "s1", conversation: "shared", systemPrompt: LONG, model: "claude-sonnet-4-6" }] });
    await turn(0, T0);
    setClock(T0 + 1000);
    expect(await actors.summarize({ conversation: "shared" }, signal)).toMatchObject({ ok: true });
    const [first, summary] = [fake.api.calls[0]?.request, fake.api.calls[1]?.request];
    expect(JSON.stringify(summary?.system)).toBe(JSON.stringify(first?.system));
    expect(JSON.stringify(summary?.messages.slice(0, first?.messages.length))).toBe(JSON.stringify(first?.messages));
    expect(fake.ledger.at(-1)?.cache?.reason).toBe("summary: the prefix of the conversation's last request (1h, hedged)");
  });

  it("a fixed cache_ttl keeps the system prompt in one block", async () => {
    const { fake, turn } = setUp({ cacheTtl: "1h", sessions: [{ id: "s1", conversation: "shared", systemPrompt: LONG, model: "claude-sonnet-4-6" }] });
    await turn(0, T0);
    expect(systemOf(fake.api.calls[0]?.request)).toEqual([{ type: "text", text: LONG, cache_control: { type: "ephemeral", ttl: "1h" } }]);
  });
});

describe("summarize rides the cache", () => {
  it("sends the last request byte for byte with its lifetime, then the reply and the summarization prompt, and records a summary call", async () => {
    const { fake, actors, turn, signal, setClock } = setUp({ keepRecentTurns: 1 });
    for (let i = 0; i < 5; i++) await turn(i, T0 + i * 15 * MIN);
    const last = fake.api.calls.at(-1)?.request;
    expect(ttlOf(last)).toBe("1h");
    setClock(T0 + 4 * 15 * MIN + 1000);
    const result = await actors.summarize({ conversation: "shared" }, signal);
    expect(result).toMatchObject({ ok: true, folded: 4 });
    const summary = fake.api.calls.at(-1)?.request;
    expect(JSON.stringify(summary?.system)).toBe(JSON.stringify(last?.system));
    expect(JSON.stringify(summary?.messages.slice(0, last?.messages.length))).toBe(JSON.stringify(last?.messages));
    expect(JSON.stringify(summary?.messages.at(-1))).toContain("[relay] Summarize.");
    expect(fake.ledger.at(-1)).toMatchObject({ purpose: "summary", cache: { ttl: "1h", reason: "summary: the prefix of the conversation's last request (1h)" } });
    // the history is the summary plus the last turn, as before
    expect((await fake.history.entries("shared")).map((e) => e.kind)).toEqual(["summary", "turn"]);
  });
});
