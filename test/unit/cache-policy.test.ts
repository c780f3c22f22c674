// cache_ttl: auto (src/anthropic/cache-policy.ts), the requests it shapes (src/anthropic/messages.ts)
// and what relay costs says the other choices would have cost (src/costs/cache-counterfactual.ts).
import { describe, expect, it } from "vitest";
import type { WorkItem } from "../../machines/types.js";
import { type CacheChoice, cacheRatesFor, chooseCacheTtl, DEFAULT_CACHE_RATES, expectedPrice, firstCallHedge, firstCallTtl, hedgeWorstCase, minCacheablePrefixTokens, paceGaps } from "../../src/anthropic/cache-policy.js";
import { splitSystemPrompt } from "../../src/anthropic/system-split.js";
import { buildReplyRequest, buildSummaryRequest, type MessagesRequest } from "../../src/anthropic/messages.js";
import { counterfactualUsd } from "../../src/costs/cache-counterfactual.js";
import { makeLedgerRecord } from "../../src/costs/ledger.js";
import { turnEntry, type HistoryEntry } from "../../src/history/conversation-store.js";
import { callTimesOf } from "../../src/runtime/conversation-actors.js";
import { startFakeAnthropic } from "../support/fake-anthropic.js";

const MIN = 60_000;
const T0 = Date.parse("2026-11-29T08:00:00Z");
const MODEL = "claude-sonnet-4-6";

/** `n` call times `gap` apart, and the moment of the next call. */
const paced = (gapMs: number, n = 8) => ({ callTimes: Array.from({ length: n }, (_, i) => T0 + i * gapMs), now: T0 + n * gapMs });

const decide = (gapMs: number, extra: Partial<Parameters<typeof chooseCacheTtl>[0]> = {}) =>
  chooseCacheTtl({ setting: "auto", ...paced(gapMs), lastWrite: null, rates: DEFAULT_CACHE_RATES, promptTokens: 20_000, model: MODEL, ...extra });

describe("cache_ttl: auto picks the cheapest lifetime for the conversation's pace", () => {
  it("calls a minute apart: 5m (every call reads the prefix at 0.1x, writes cost 1.25x)", () => {
    expect(decide(1 * MIN).ttl).toBe("5m");
  });

  it("calls 15 minutes apart: 1h (a 5-minute cache would be rewritten at every call)", () => {
    expect(decide(15 * MIN).ttl).toBe("1h");
  });

  it("calls 90 minutes apart: no cache write (any cache is dead before the next call)", () => {
    expect(decide(90 * MIN).ttl).toBe("none");
  });

  it("the first call of a conversation has no pace yet: 1h, whose worse case (calls minutes apart) loses less than 5m's (a quarter-hour apart)", () => {
    const d = chooseCacheTtl({ setting: "auto", callTimes: [], now: T0, lastWrite: null, rates: DEFAULT_CACHE_RATES, promptTokens: 20_000, model: MODEL });
    expect(d.ttl).toBe("1h");
    expect(d.reason).toContain("no pace yet");
    expect(d.reason).toContain("1h costs 0.75x the prompt more than 5m");
    expect(d.reason).toContain("5m costs 1.15x more than 1h");
  });

  it("the first call of a conversation borrows the pace of the relay's other conversations when they have one", () => {
    const first = (relayGaps: number[]) => chooseCacheTtl({ setting: "auto", callTimes: [], now: T0, lastWrite: null, rates: DEFAULT_CACHE_RATES, promptTokens: 20_000, model: MODEL, relayGaps });
    expect(first([MIN, MIN, 2 * MIN]).ttl).toBe("5m");
    expect(first([MIN, MIN, 2 * MIN]).reason).toMatch(/^auto: no pace yet \(first call\); the relay's other conversations: 3 gaps, median 1m; expected prefix price 5m 0\.10x/);
    expect(first([15 * MIN, 20 * MIN]).ttl).toBe("1h");
    expect(first([90 * MIN, 120 * MIN, 90 * MIN]).ttl).toBe("none");
    // none to borrow: the worse-case rule, as before
    expect(first([]).ttl).toBe("1h");
    expect(first([]).reason).toContain("no pace yet (first call), 1h");
    // a conversation with a pace of its own keeps it
    const { callTimes } = paced(15 * MIN);
    expect(chooseCacheTtl({ setting: "auto", callTimes, now: (callTimes.at(-1) ?? 0) + 15 * MIN, lastWrite: null, rates: DEFAULT_CACHE_RATES, promptTokens: 20_000, model: MODEL, relayGaps: [MIN, MIN, MIN] }).ttl).toBe("1h");
  });

  it("the first call's choice follows the rates: were a 1h write dear enough, 5m", () => {
    expect(firstCallTtl({ read: 0.05, write5m: 1.25, write1h: 2 }).ttl).toBe("1h");
    expect(firstCallTtl({ read: 0.1, write5m: 1.25, write1h: 2.5 }).ttl).toBe("5m");
  });

  it("never gives up a cache that is still alive: hours apart, but the last 1h write is 20 minutes old, so it is read (1h)", () => {
    const { callTimes } = paced(90 * MIN);
    const last = callTimes[callTimes.length - 1] ?? 0;
    const d = decide(90 * MIN, { callTimes, now: last + 20 * MIN, lastWrite: { ttl: "1h", at: last } });
    expect(d.ttl).not.toBe("none");
  });

  it("a mixed pace is priced by the share of gaps each lifetime covers", () => {
    // 6 gaps of 2 minutes and 2 of 40: 5m covers 6/8, 1h covers 8/8.
    const gaps = [...Array<number>(6).fill(2 * MIN), 40 * MIN, 40 * MIN];
    const price = expectedPrice(gaps, DEFAULT_CACHE_RATES);
    expect(price["5m"]).toBeCloseTo(0.75 * 0.1 + 0.25 * 1.25);
    expect(price["1h"]).toBeCloseTo(0.1);
    expect(price.none).toBe(1);
  });

  it("a fixed setting is kept whatever the pace", () => {
    expect(decide(90 * MIN, { setting: "5m" }).ttl).toBe("5m");
    expect(decide(1 * MIN, { setting: "1h" }).ttl).toBe("1h");
  });

  it("the reason names the pace and each option's expected price", () => {
    expect(decide(15 * MIN).reason).toMatch(/^auto: 8 gaps, median 15m; expected prefix price 5m 1\.25x, 1h 0\.10x, none 1\.00x/);
  });

  it("uses the model's own cache rates: reads at 0.05x for Sonnet 5.5", () => {
    expect(cacheRatesFor("claude-sonnet-5-5").read).toBeCloseTo(0.05);
    const sonnet = cacheRatesFor("claude-sonnet-4-6");
    expect([sonnet.read, sonnet.write5m, sonnet.write1h].map((r) => r.toFixed(4))).toEqual(["0.1000", "1.2500", "2.0000"]);
    expect(cacheRatesFor("not-a-model")).toEqual(DEFAULT_CACHE_RATES);
  });

  it("knows each model's minimum cacheable prefix and says when the prompt is below it", () => {
    expect(minCacheablePrefixTokens("claude-haiku-4-5")).toBe(4096);
    expect(minCacheablePrefixTokens("claude-opus-4-6-20260101")).toBe(4096);
    expect(minCacheablePrefixTokens("claude-sonnet-4-6")).toBe(1024);
    expect(decide(1 * MIN, { promptTokens: 300 }).reason).toContain("below claude-sonnet-4-6's minimum cacheable prefix (1024)");
  });

  it("paces by the last 8 gaps, the current one included", () => {
    expect(paceGaps([T0, T0 + MIN, T0 + 3 * MIN], T0 + 10 * MIN)).toEqual([MIN, 2 * MIN, 7 * MIN]);
    expect(paceGaps(Array.from({ length: 20 }, (_, i) => T0 + i * MIN), T0 + 20 * MIN)).toHaveLength(8);
  });

  it("takes the conversation's call times from its turns and summaries, not from JC's notes", () => {
    const at = (m: number) => new Date(T0 + m * MIN).toISOString();
    const entries: HistoryEntry[] = [
      { kind: "summary", id: "s", text: "x", folded: 3, at: at(0) },
      { kind: "note", id: "n", session: "session-1", text: "x", at: at(1) },
      { kind: "turn", id: "t", session: "session-1", source: "envelope", text: "x", reply: "y", at: at(2) },
    ];
    expect(callTimesOf(entries)).toEqual([T0, T0 + 2 * MIN]);
  });
});

describe("a brand-new conversation's first call hedges its cache lifetime", () => {
  /** 20,000 characters in 400 lines of 49 and a line break */
  const LINES = Array.from({ length: 400 }, (_, i) => `line ${String(i).padStart(3, "0")} of the reviewer's instructions.`.padEnd(49, ".")).join("\n");
  const SPLIT = splitSystemPrompt(LINES, MODEL, DEFAULT_CACHE_RATES);
  const first = (extra: Partial<Parameters<typeof chooseCacheTtl>[0]> = {}) =>
    chooseCacheTtl({ setting: "auto", callTimes: [], now: T0, lastWrite: null, rates: DEFAULT_CACHE_RATES, promptTokens: 5_500, model: MODEL, systemSplit: SPLIT, ...extra });

  it("the 1h share makes both worse cases equal: lossIf5m / (lossIf1h + lossIf5m), from the model's rates", () => {
    // list rates: 1.15 / (0.75 + 1.15) = 0.605; the worse case 0.45x the prompt instead of 0.75x
    expect(firstCallHedge(DEFAULT_CACHE_RATES)?.share).toBeCloseTo(1.15 / 1.9, 6);
    expect(firstCallHedge(DEFAULT_CACHE_RATES)?.worstCase).toBeCloseTo(0.454, 3);
    // Sonnet 5.5 reads at 0.05x: 1.2 / 1.95 = 0.615
    expect(firstCallHedge(cacheRatesFor("claude-sonnet-5-5"))?.share).toBeCloseTo(1.2 / 1.95, 6);
    for (const share of [0.3, 0.5, 0.7, 0.9]) expect(hedgeWorstCase(share, DEFAULT_CACHE_RATES)).toBeGreaterThan(hedgeWorstCase(1.15 / 1.9, DEFAULT_CACHE_RATES));
    // a 1h write no dearer than a 5m one: nothing to hedge
    expect(firstCallHedge({ read: 0.1, write5m: 1.25, write1h: 1.25 })).toBeNull();
  });

  it("cuts the system prompt at the line break nearest the share, after a space when it has none, and not at all when too short", () => {
    expect(LINES[(SPLIT?.at ?? 0) - 1]).toBe("\n");
    expect(Math.abs((SPLIT?.share ?? 0) - 1.15 / 1.9)).toBeLessThan(50 / LINES.length);
    const words = "Review the work and answer briefly. ".repeat(500).trim();
    const bySpace = splitSystemPrompt(words, MODEL, DEFAULT_CACHE_RATES);
    expect(words[(bySpace?.at ?? 0) - 1]).toBe(" ");
    expect(Math.abs((bySpace?.share ?? 0) - 1.15 / 1.9)).toBeLessThan(0.01);
    // a first block below the model's minimum cacheable prefix is never written: the cut moves later
    const haiku = splitSystemPrompt(LINES, "claude-haiku-4-5", DEFAULT_CACHE_RATES);
    expect(haiku?.tokens).toBeGreaterThanOrEqual(4096);
    expect(haiku?.share).toBeGreaterThan(0.8);
    // too short for a cacheable first block and a second one, or nowhere to cut: no split
    expect(splitSystemPrompt("You review.", MODEL, DEFAULT_CACHE_RATES)).toBeNull();
    expect(splitSystemPrompt("x".repeat(20_000), MODEL, DEFAULT_CACHE_RATES)).toBeNull();
    expect(splitSystemPrompt(LINES.slice(0, 4_500), "claude-haiku-4-5", DEFAULT_CACHE_RATES)).toBeNull();
  });

  it("no pace yet, a system prompt to split: the hedge, 1h on its first part and 5m after, and a reason with the arithmetic", () => {
    const d = first();
    expect(d).toMatchObject({ ttl: "1h", hedge: true });
    expect(d.reason).toMatch(/^auto: no pace yet \(first call\), hedge: 1h on the first 6\d % of the system prompt \(\d+ % of this prompt\), 5m after it; worst case 0\.\d\dx the prompt instead of 0\.75x$/);
  });

  it("no system prompt split: the whole-1h choice, as before", () => {
    expect(first({ systemSplit: null })).toMatchObject({ ttl: "1h", hedge: false });
  });

  it("a pace of its own or a borrowed one: no hedge", () => {
    const { callTimes, now } = paced(MIN);
    expect(first({ callTimes, now })).toMatchObject({ ttl: "5m", hedge: false });
    expect(first({ relayGaps: [15 * MIN, 15 * MIN] })).toMatchObject({ ttl: "1h", hedge: false });
    expect(first({ relayGaps: [MIN, MIN] })).toMatchObject({ ttl: "5m", hedge: false });
  });

  it("a fixed setting is untouched by the split", () => {
    expect(first({ setting: "5m" })).toEqual({ ttl: "5m", hedge: false, reason: "cache_ttl: 5m" });
    expect(first({ setting: "1h" })).toEqual({ ttl: "1h", hedge: false, reason: "cache_ttl: 1h" });
  });

  it("the next call treats the hedge's 1h part as alive: never none within its hour", () => {
    // a slow pace (the conversation had summaries long ago), but the hedged call 40 minutes ago still lives
    const times = [T0 - 6 * 90 * MIN, T0 - 4 * 90 * MIN, T0 - 2 * 90 * MIN, T0];
    const d = chooseCacheTtl({ setting: "auto", callTimes: times, now: T0 + 40 * MIN, lastWrite: { ttl: first().ttl, at: T0 }, rates: DEFAULT_CACHE_RATES, promptTokens: 5_500, model: MODEL, systemSplit: SPLIT });
    expect(d.ttl).not.toBe("none");
    expect(d.hedge).toBe(false);
  });
});

// ---------------------------------------------------------------------------
// Requests

const item = (n: number): WorkItem => ({ id: `e${n}`, source: "envelope", session: "session-1", text: `message ${n} `.padEnd(2000, "m"), inReplyTo: null });
const SYSTEM = "You review. ".repeat(500);
const historyOf = (turns: number): HistoryEntry[] => Array.from({ length: turns }, (_, i) => turnEntry(item(i), `reply ${i} `.padEnd(1500, "r"), new Date(T0 + i * MIN)));
const reply = (turns: number, cacheTtl: CacheChoice) => buildReplyRequest({ model: MODEL, maxTokens: 512, systemPrompt: SYSTEM, history: historyOf(turns), notes: [], item: item(turns), cacheTtl });
const breakpoints = (req: MessagesRequest): string[] => JSON.stringify(req).match(/"cache_control":\{[^}]*\}/g) ?? [];

describe("the request carries the chosen lifetime, within the API's rules", () => {
  it("5m, 1h: three breakpoints of one lifetime (so a 1h never follows a 5m); none: no breakpoint", () => {
    expect(breakpoints(reply(3, "5m"))).toEqual(Array(3).fill('"cache_control":{"type":"ephemeral"}'));
    expect(breakpoints(reply(3, "1h"))).toEqual(Array(3).fill('"cache_control":{"type":"ephemeral","ttl":"1h"}'));
    expect(breakpoints(reply(3, "none"))).toEqual([]);
  });

  it("the stand-in accepts every choice, and reads the prefix the previous call wrote", async () => {
    const fake = await startFakeAnthropic({ apiKey: "k" });
    try {
      const send = async (req: MessagesRequest) => {
        const res = await fetch(`${fake.url}/v1/messages`, { method: "POST", headers: { "content-type": "application/json", "x-api-key": "k", "anthropic-version": "2023-06-01" }, body: JSON.stringify(req) });
        expect(res.status).toBe(200);
        return ((await res.json()) as { usage: { cache_read_input_tokens: number; cache_creation_input_tokens: number } }).usage;
      };
      for (const ttl of ["5m", "1h", "none"] as const) await send(reply(1, ttl));
      expect((await send(reply(2, "1h"))).cache_read_input_tokens).toBeGreaterThan(0);
    } finally {
      await fake.close();
    }
  });
});

describe("summaries ride the cache", () => {
  it("the summary request is the last conversation request, byte for byte, then its reply and the instruction", () => {
    for (const ttl of ["5m", "1h", "none"] as const) {
      const last = reply(4, ttl);
      const history = [...historyOf(4), turnEntry(item(4), "reply 4", new Date(T0 + 4 * MIN))];
      const summary = buildSummaryRequest({ model: MODEL, maxTokens: 512, systemPrompt: SYSTEM, history, summarizationPrompt: "Fold it.", keptTurns: 2, cacheTtl: ttl });
      expect(JSON.stringify(summary.system)).toBe(JSON.stringify(last.system));
      expect(JSON.stringify(summary.messages.slice(0, last.messages.length))).toBe(JSON.stringify(last.messages));
      expect(summary.messages.slice(last.messages.length)).toEqual([
        { role: "assistant", content: [{ type: "text", text: "reply 4" }] },
        { role: "user", content: [{ type: "text", text: "[relay] Fold it.\n\nWrite the summary of everything above except its last 2 turns, which stay verbatim after your summary now. Reply with the summary only." }] },
      ]);
    }
  });

  it("the stand-in bills the summary request's whole conversation as a cache read, and writes nothing", async () => {
    const fake = await startFakeAnthropic({ apiKey: "k" });
    try {
      const send = async (req: MessagesRequest) => {
        const res = await fetch(`${fake.url}/v1/messages`, { method: "POST", headers: { "content-type": "application/json", "x-api-key": "k", "anthropic-version": "2023-06-01" }, body: JSON.stringify(req) });
        return ((await res.json()) as { usage: { input_tokens: number; cache_read_input_tokens: number; cache_creation_input_tokens: number } }).usage;
      };
      const last = reply(4, "5m");
      const sent = await send(last);
      const history = [...historyOf(4), turnEntry(item(4), "reply 4", new Date(T0 + 4 * MIN))];
      const usage = await send(buildSummaryRequest({ model: MODEL, maxTokens: 512, systemPrompt: SYSTEM, history, summarizationPrompt: "Fold it.", keptTurns: 2, cacheTtl: "5m" }));
      expect(usage.cache_read_input_tokens).toBe(sent.input_tokens + sent.cache_creation_input_tokens + sent.cache_read_input_tokens);
      expect(usage.cache_creation_input_tokens).toBe(0);
    } finally {
      await fake.close();
    }
  });
});

// ---------------------------------------------------------------------------
// relay costs: the other choices on the same calls

describe("what the other choices would have cost", () => {
  const usage = { inputTokens: 100, outputTokens: 0, cacheWrite5mTokens: 0, cacheWrite1hTokens: 9_900, cacheReadTokens: 90_000 };
  const rec = (gapMs: number | null) =>
    makeLedgerRecord({ session: "s", conversation: "c", model: MODEL, purpose: "reply", usage, latencyMs: 1, cache: { ttl: "1h", reason: "auto", gapMs, reusableTokens: 90_000 } });

  it("15 minutes after the previous call: 1h reads the prefix, 5m writes it all again, none pays it all as input", () => {
    const costs = counterfactualUsd(rec(15 * MIN));
    // Sonnet 4.6: input 3, 5m write 3.75, 1h write 6, read 0.3 (USD per million tokens)
    expect(costs?.["1h"]).toBeCloseTo((90_000 * 0.3 + 10_000 * 6) / 1e6);
    expect(costs?.["5m"]).toBeCloseTo((100_000 * 3.75) / 1e6);
    expect(costs?.none).toBeCloseTo((100_000 * 3) / 1e6);
  });

  it("a minute after: both lifetimes read it", () => {
    const costs = counterfactualUsd(rec(MIN));
    expect(costs?.["5m"]).toBeCloseTo((90_000 * 0.3 + 10_000 * 3.75) / 1e6);
  });

  it("a conversation's first call reads nothing under any choice; a line without a cache record has no comparison", () => {
    expect(counterfactualUsd(rec(null))?.["1h"]).toBeCloseTo((100_000 * 6) / 1e6);
    const { cache: _omitted, ...old } = rec(MIN);
    expect(counterfactualUsd(old)).toBeNull();
  });
});
