import Anthropic from "@anthropic-ai/sdk";
import fc from "fast-check";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Note, WorkItem } from "../../machines/types.js";
import { buildReplyRequest, buildSummaryRequest, callMessages, classifyFailure, createClient, replyText, type MessagesRequest } from "../../src/anthropic/messages.js";
import { DEFAULT_CACHE_RATES } from "../../src/anthropic/cache-policy.js";
import { splitSystemPrompt } from "../../src/anthropic/system-split.js";
import { noteEntry, turnEntry, type HistoryEntry } from "../../src/history/conversation-store.js";
import { startFakeAnthropic, type Behaviour, type FakeAnthropic } from "../support/fake-anthropic.js";

const MODEL = "claude-sonnet-4-6";
const KEY = "sk-ant-unit-test-key-0123456789";
const AT = new Date("2026-05-02T15:30:00.000Z");

// ---------------------------------------------------------------------------
// Arbitraries: histories as the relay can hold them, including empty replies and blank texts.

const text = fc.oneof(
  { weight: 5, arbitrary: fc.string({ unit: "grapheme", maxLength: 40 }) },
  { weight: 1, arbitrary: fc.constantFrom("", " ", "\n\t ", "\u00a0") },
);
const session = fc.constantFrom("session-1", "session-2", "s.3");
const id = fc.uuid();
const timestamp = fc.option(fc.constant("2026-05-02T15:30:00Z"), { nil: undefined });

const itemArb: fc.Arbitrary<WorkItem> = fc
  .record({ id, source: fc.constantFrom<"envelope" | "jc">("envelope", "jc"), session, text, timestamp })
  .map(({ timestamp: ts, ...rest }) => (ts === undefined ? { ...rest, inReplyTo: null } : { ...rest, inReplyTo: null, timestamp: ts }));
const noteArb: fc.Arbitrary<Note> = fc.record({ id, session, text });
const entryArb: fc.Arbitrary<HistoryEntry> = fc.oneof(
  { weight: 5, arbitrary: fc.tuple(itemArb, text).map(([item, reply]) => turnEntry(item, reply, AT)) },
  { weight: 2, arbitrary: noteArb.map((n) => noteEntry(n, AT)) },
  { weight: 1, arbitrary: fc.record({ id, text }).map(({ id: sid, text: t }): HistoryEntry => ({ kind: "summary", id: sid, text: t, folded: 4, at: AT.toISOString() })) },
);
const historyArb = fc.array(entryArb, { maxLength: 12 });
const ttlArb = fc.constantFrom<"5m" | "1h">("5m", "1h");

const build = (history: HistoryEntry[], notes: Note[], item: WorkItem, cacheTtl: "5m" | "1h" = "5m", systemPrompt = "You review.") =>
  buildReplyRequest({ model: MODEL, maxTokens: 512, systemPrompt, history, notes, item, cacheTtl });

interface FlatBlock {
  role: "system" | "user" | "assistant";
  text: string;
  cache: unknown;
}

/** Every text block of a request in prompt order: system, then messages. */
function flatten(req: MessagesRequest): FlatBlock[] {
  const out: FlatBlock[] = [];
  const system = req.system;
  if (typeof system === "string") out.push({ role: "system", text: system, cache: undefined });
  else for (const b of system ?? []) out.push({ role: "system", text: b.text, cache: b.cache_control });
  for (const m of req.messages) {
    if (typeof m.content === "string") {
      out.push({ role: m.role, text: m.content, cache: undefined });
      continue;
    }
    for (const b of m.content) {
      if (b.type !== "text") throw new Error(`unexpected ${b.type} block`);
      out.push({ role: m.role, text: b.text, cache: b.cache_control });
    }
  }
  return out;
}

describe("buildReplyRequest: the request is always one the API accepts", () => {
  it("property: starts with user, alternates, ends with user, no blank text, ≤ 4 breakpoints, cached system block", () => {
    fc.assert(
      fc.property(historyArb, fc.array(noteArb, { maxLength: 3 }), itemArb, ttlArb, (history, notes, item, ttl) => {
        const req = build(history, notes, item, ttl);
        expect(req.messages.length).toBeGreaterThan(0);
        expect(req.messages[0]?.role).toBe("user");
        expect(req.messages[req.messages.length - 1]?.role).toBe("user");
        for (let i = 1; i < req.messages.length; i++) expect(req.messages[i]?.role).not.toBe(req.messages[i - 1]?.role);
        for (const m of req.messages) {
          expect(Array.isArray(m.content) && m.content.length > 0).toBe(true);
        }
        const blocks = flatten(req);
        for (const b of blocks) expect(b.text.trim()).not.toBe("");
        const breakpoints = blocks.filter((b) => b.cache !== undefined && b.cache !== null);
        expect(breakpoints.length).toBeLessThanOrEqual(4);
        const expected = ttl === "1h" ? { type: "ephemeral", ttl: "1h" } : { type: "ephemeral" };
        for (const b of breakpoints) expect(b.cache).toEqual(expected);
        expect(req.system).toEqual([{ type: "text", text: "You review.", cache_control: expected }]);
        // the end of this request is a breakpoint: the next call reads what this one writes
        expect(blocks[blocks.length - 1]?.cache).toEqual(expected);
        expect(Object.keys(req).sort()).toEqual(["max_tokens", "messages", "model", "system"]);
      }),
      { numRuns: 250 },
    );
  });

  it("property: the prefix of request N is byte-identical inside request N+1, and N's final breakpoint is a breakpoint in N+1", () => {
    fc.assert(
      fc.property(historyArb, fc.array(noteArb, { maxLength: 3 }), itemArb, text, itemArb, ttlArb, (history, notes, item, reply, nextItem, ttl) => {
        const first = build(history, notes, item, ttl);
        // what commitTurn records: the notes, then the turn
        const after = [...history, ...notes.map((n) => noteEntry(n, AT)), turnEntry(item, reply, AT)];
        const second = build(after, [], nextItem, ttl);
        const a = flatten(first);
        const b = flatten(second);
        const strip = (blocks: FlatBlock[]) => JSON.stringify(blocks.map(({ role, text: t }) => [role, t]));
        expect(b.length).toBeGreaterThan(a.length);
        expect(strip(b.slice(0, a.length))).toBe(strip(a));
        expect(b[a.length - 1]?.cache).toEqual(a[a.length - 1]?.cache);
        // and the messages of N, as sent, are the start of N+1 apart from cache markers
        const bare = (req: MessagesRequest) =>
          req.messages.map((m) => ({ role: m.role, content: Array.isArray(m.content) ? m.content.map((c) => (c.type === "text" ? c.text : "")) : m.content }));
        const firstBare = bare(first);
        const secondBare = bare(second);
        expect(JSON.stringify(secondBare.slice(0, firstBare.length))).toBe(JSON.stringify(firstBare));
      }),
      { numRuns: 250 },
    );
  });

  it("an empty history gives one user message with the labelled item", () => {
    const req = build([], [], { id: "e1", source: "envelope", inReplyTo: null, session: "session-1", text: "hello", timestamp: "2026-05-02T15:30:00Z" });
    expect(req.messages).toEqual([{ role: "user", content: [{ type: "text", text: "[session-1 · 2026-05-02T15:30:00Z] hello", cache_control: { type: "ephemeral" } }] }]);
  });

  it("notes waiting for the turn come before the item in the same user message", () => {
    const req = build([], [{ id: "n1", session: "session-2", text: "stop" }], { id: "e1", source: "jc", inReplyTo: null, session: "session-1", text: "go" });
    expect(req.messages).toHaveLength(1);
    const content = req.messages[0]?.content;
    expect(Array.isArray(content) ? content.map((c) => (c.type === "text" ? c.text : "")) : content).toEqual([
      "[JC → session-2, sent directly without you] stop",
      "[JC, about session-1] go",
    ]);
  });

  it("the summary request ends with a user turn asking for the summary", () => {
    const history = [turnEntry({ id: "e1", source: "envelope", session: "session-1", text: "hi", inReplyTo: null }, "ok", AT)];
    const req = buildSummaryRequest({ model: MODEL, maxTokens: 100, systemPrompt: "You review.", history, summarizationPrompt: "Summarize.", keptTurns: 0, cacheTtl: "5m" });
    expect(req.messages[req.messages.length - 1]?.role).toBe("user");
    expect(flatten(req).every((b) => b.text.trim() !== "")).toBe(true);
  });
});

// ---------------------------------------------------------------------------
// The first call's hedge: the system prompt in two blocks

/** ~12,000 characters in 200 lines: long enough that the hedge's share, not Sonnet's 1,024-token minimum, places the cut. */
const LONG_SYSTEM = Array.from({ length: 200 }, (_, i) => `Rule ${String(i).padStart(3, "0")}: review the session's work and answer briefly.`).join("\n");
const SPLIT = splitSystemPrompt(LONG_SYSTEM, MODEL, DEFAULT_CACHE_RATES);
const H1 = { type: "ephemeral", ttl: "1h" };
const M5 = { type: "ephemeral" };
const choiceArb = fc.constantFrom<"5m" | "1h" | "none">("5m", "1h", "none");
const reqWith = (history: HistoryEntry[], notes: Note[], item: WorkItem, cacheTtl: "5m" | "1h" | "none", hedge: boolean) =>
  buildReplyRequest({ model: MODEL, maxTokens: 512, systemPrompt: LONG_SYSTEM, history, notes, item, cacheTtl, hedge, systemSplit: SPLIT });
const systemTexts = (req: MessagesRequest): string[] => (Array.isArray(req.system) ? req.system.map((b) => b.text) : [String(req.system)]);

describe("the first call's hedge: the system prompt in two blocks, alike in every request", () => {
  it("cuts the system prompt at a line break near 60 % of it, the same cut every time", () => {
    expect(SPLIT).not.toBeNull();
    expect(SPLIT?.share).toBeGreaterThan(0.55);
    expect(SPLIT?.share).toBeLessThan(0.65);
    expect(LONG_SYSTEM[(SPLIT?.at ?? 0) - 1]).toBe("\n");
    expect(splitSystemPrompt(LONG_SYSTEM, MODEL, DEFAULT_CACHE_RATES)).toEqual(SPLIT);
  });

  it("property: hedged, 1h on the system's first block and 5m on its second and the turn's; else one lifetime on the second; never more than 4, never a 1h after a 5m", () => {
    fc.assert(
      fc.property(historyArb, fc.array(noteArb, { maxLength: 3 }), itemArb, choiceArb, fc.boolean(), (history, notes, item, ttl, hedge) => {
        const req = reqWith(history, notes, item, ttl, hedge);
        expect(systemTexts(req).join("")).toBe(LONG_SYSTEM);
        expect(systemTexts(req)).toHaveLength(2);
        const blocks = flatten(req);
        const marks = blocks.map((b) => b.cache).filter((c) => c !== undefined && c !== null);
        expect(marks.length).toBeLessThanOrEqual(4);
        const lifetimes = marks.map((c) => JSON.stringify(c));
        const first5m = lifetimes.indexOf(JSON.stringify(M5));
        if (first5m >= 0) expect(lifetimes.slice(first5m)).not.toContain(JSON.stringify(H1));
        const [sys0, sys1] = blocks;
        if (ttl === "none") {
          expect(marks).toEqual([]);
        } else if (hedge) {
          expect([sys0?.cache, sys1?.cache]).toEqual([H1, M5]);
          expect(blocks[blocks.length - 1]?.cache).toEqual(M5);
        } else {
          const one = ttl === "1h" ? H1 : M5;
          expect(sys0?.cache).toBeUndefined();
          expect(sys1?.cache).toEqual(one);
          for (const c of marks) expect(c).toEqual(one);
        }
      }),
      { numRuns: 250 },
    );
  });

  it("property: the hedged first call's blocks are the start of the next call's and of the summary's, byte for byte", () => {
    fc.assert(
      fc.property(fc.array(noteArb, { maxLength: 2 }), itemArb, text, itemArb, choiceArb, (notes, item, reply, nextItem, nextTtl) => {
        const first = reqWith([], notes, item, "1h", true);
        const history = [...notes.map((n) => noteEntry(n, AT)), turnEntry(item, reply, AT)];
        const next = reqWith(history, [], nextItem, nextTtl, false);
        const summary = buildSummaryRequest({ model: MODEL, maxTokens: 512, systemPrompt: LONG_SYSTEM, history, summarizationPrompt: "Fold it.", keptTurns: 0, cacheTtl: "1h", hedge: true, systemSplit: SPLIT });
        const strip = (blocks: FlatBlock[]) => JSON.stringify(blocks.map(({ role, text: t }) => [role, t]));
        const a = flatten(first);
        for (const later of [next, summary]) expect(strip(flatten(later).slice(0, a.length))).toBe(strip(a));
        expect(JSON.stringify(summary.system)).toBe(JSON.stringify(first.system));
      }),
      { numRuns: 100 },
    );
  });

  it("the stand-in accepts the hedged call, and the next call 15 minutes later reads the 1h part the first wrote", async () => {
    const fake = await startFakeAnthropic({ apiKey: KEY });
    let clock = AT.getTime();
    fake.setNow(() => clock);
    try {
      const client = await createClient({ apiKey: KEY, baseUrl: fake.url, timeoutMs: 10_000 });
      const item = (n: number): WorkItem => ({ id: `e${n}`, source: "envelope", session: "session-1", text: `envelope ${n}`, inReplyTo: null });
      const first = await callMessages(client, reqWith([], [], item(0), "1h", true));
      expect(first.usage.cacheWrite1hTokens).toBe(SPLIT?.tokens);
      expect(first.usage.cacheWrite5mTokens).toBeGreaterThan(0);
      clock += 15 * 60_000;
      const second = await callMessages(client, reqWith([turnEntry(item(0), first.text, AT)], [], item(1), "1h", false));
      expect(second.usage.cacheReadTokens).toBe(SPLIT?.tokens);
    } finally {
      await fake.close();
    }
  });
});

describe("replyText", () => {
  it("concatenates the text blocks only, in order", () => {
    const content: Anthropic.ContentBlock[] = [
      { type: "thinking", thinking: "hmm", signature: "sig" },
      { type: "text", text: "Hello, ", citations: null },
      { type: "tool_use", id: "toolu_1", name: "x", input: {}, caller: { type: "direct" } },
      { type: "redacted_thinking", data: "opaque" },
      { type: "text", text: "world.", citations: null },
    ];
    expect(replyText({ content })).toBe("Hello, world.");
  });

  it("no text blocks give the empty string", () => {
    expect(replyText({ content: [] })).toBe("");
  });
});

// ---------------------------------------------------------------------------
// Against the local stand-in: real SDK errors, real validation.

describe("against the fake Messages API", () => {
  let fake: FakeAnthropic;
  let client: Anthropic;

  beforeAll(async () => {
    fake = await startFakeAnthropic({ apiKey: KEY });
    client = await createClient({ apiKey: KEY, baseUrl: fake.url, timeoutMs: 5_000 });
  });
  afterAll(async () => {
    await fake.close();
  });
  beforeEach(() => {
    fake.requests.length = 0;
  });

  const simple = () => build([], [], { id: "e1", source: "envelope", inReplyTo: null, session: "session-1", text: "hello" });

  async function failureOf(behaviour: Behaviour | null, c: Anthropic = client, request: MessagesRequest = simple()): Promise<unknown> {
    if (behaviour) fake.enqueue(behaviour);
    return callMessages(c, request).then(
      () => new Error("expected the call to fail"),
      (e: unknown) => e,
    );
  }
  const apiError = (status: number, type: string, message: string, extra: { headers?: Record<string, string>; details?: Record<string, unknown> } = {}): Behaviour => ({ kind: "error", status, type, message, ...extra });

  describe("buildReplyRequest output is accepted", () => {
    const histories: [string, HistoryEntry[], Note[], "5m" | "1h"][] = [
      ["empty history", [], [], "5m"],
      [
        "turns with an empty and a whitespace reply",
        [turnEntry({ id: "a", source: "envelope", inReplyTo: null, session: "session-1", text: "q1" }, "", AT), turnEntry({ id: "b", source: "jc", inReplyTo: null, session: "session-2", text: "" }, " \n ", AT)],
        [],
        "5m",
      ],
      [
        "summary, notes and pending notes, 1h cache",
        [
          { kind: "summary", id: "s", text: "earlier", folded: 3, at: AT.toISOString() },
          noteEntry({ id: "n0", session: "session-2", text: "" }, AT),
          turnEntry({ id: "c", source: "envelope", inReplyTo: null, session: "session-1", text: "q", timestamp: "2026-05-02T15:30:00Z" }, "a", AT),
          noteEntry({ id: "n1", session: "session-1", text: "direct" }, AT),
        ],
        [{ id: "n2", session: "session-2", text: "pending" }],
        "1h",
      ],
    ];
    for (const [label, history, notes, ttl] of histories) {
      it(`${label}: 200 with a text reply`, async () => {
        const reply = await callMessages(client, build(history, notes, { id: "x", source: "envelope", inReplyTo: null, session: "session-1", text: "now" }, ttl));
        expect(reply.text).toMatch(/^ack: /);
        expect(fake.requests[0]?.response.status).toBe(200);
      });
    }

    it("property: random histories are accepted by the validating fake", async () => {
      await fc.assert(
        fc.asyncProperty(historyArb, fc.array(noteArb, { maxLength: 2 }), itemArb, ttlArb, async (history, notes, item, ttl) => {
          const reply = await callMessages(client, build(history, notes, item, ttl));
          expect(typeof reply.text).toBe("string");
        }),
        { numRuns: 40 },
      );
    });

    it("property: random histories in two system blocks, hedged or not, are accepted by the validating fake (≤ 4 breakpoints, no 1h after a 5m)", async () => {
      await fc.assert(
        fc.asyncProperty(historyArb, fc.array(noteArb, { maxLength: 2 }), itemArb, choiceArb, fc.boolean(), async (history, notes, item, ttl, hedge) => {
          const reply = await callMessages(client, reqWith(history, notes, item, ttl, hedge));
          expect(typeof reply.text).toBe("string");
        }),
        { numRuns: 40 },
      );
    });
  });

  describe("classifyFailure with real SDK error objects", () => {
    it("429 with retry-after closes the gate for every call (rateLimited) and carries retryAfterMs", async () => {
      const err = await failureOf(apiError(429, "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit", { headers: { "retry-after": "7" } }));
      expect(err).toBeInstanceOf(Anthropic.RateLimitError);
      expect(classifyFailure(err)).toMatchObject({ kind: "rateLimited", status: 429, retryAfterMs: 7000 });
    });

    it("429 with retry-after-ms is rateLimited with that delay", async () => {
      const err = await failureOf(apiError(429, "rate_limit_error", "slow down", { headers: { "retry-after-ms": "1500" } }));
      expect(classifyFailure(err)).toMatchObject({ kind: "rateLimited", retryAfterMs: 1500 });
    });

    it("429 without retry-after is rateLimited with no fixed delay", async () => {
      const failure = classifyFailure(await failureOf(apiError(429, "rate_limit_error", "slow down")));
      expect(failure.kind).toBe("rateLimited");
      expect(failure.retryAfterMs).toBeUndefined();
    });

    it("429 with details.error_code enforced_spend_limit_reached is permanent", async () => {
      const err = await failureOf(apiError(429, "rate_limit_error", "You have reached your monthly usage cap.", { details: { error_code: "enforced_spend_limit_reached" } }));
      expect(err).toBeInstanceOf(Anthropic.RateLimitError);
      expect(classifyFailure(err)).toMatchObject({ kind: "permanent", status: 429 });
    });

    it("400 credit balance too low is permanent, not the envelope's fault", async () => {
      const err = await failureOf(
        apiError(400, "invalid_request_error", "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits."),
      );
      expect(err).toBeInstanceOf(Anthropic.BadRequestError);
      expect(classifyFailure(err)).toMatchObject({ kind: "permanent", status: 400 });
    });

    it("400 workspace usage limit is permanent", async () => {
      const err = await failureOf(apiError(400, "invalid_request_error", "You have reached your specified workspace API usage limits. You will regain access on 2026-12-01 at 00:00 UTC."));
      expect(classifyFailure(err).kind).toBe("permanent");
    });

    it("400 about the request itself is the envelope's fault", async () => {
      const err = await failureOf(apiError(400, "invalid_request_error", "messages.0.content.0.text: Extra inputs are not permitted"));
      expect(classifyFailure(err)).toMatchObject({ kind: "envelope", status: 400 });
    });

    it("400 prompt is too long is never the envelope's fault: the conversation is summarized (tooLong)", async () => {
      const err = await failureOf(apiError(400, "invalid_request_error", "prompt is too long: 215000 tokens > 200000 maximum"));
      expect(classifyFailure(err)).toMatchObject({ kind: "tooLong", status: 400 });
    });

    it("a real validation 400 from the fake (empty text block) is the envelope's fault", async () => {
      const bad: MessagesRequest = { model: MODEL, max_tokens: 10, messages: [{ role: "user", content: [{ type: "text", text: "" }] }] };
      const err = await failureOf(null, client, bad);
      expect(err).toBeInstanceOf(Anthropic.BadRequestError);
      expect(classifyFailure(err).kind).toBe("envelope");
    });

    it("a real 401 from a wrong key is permanent, and the message does not carry the key", async () => {
      const wrongKey = "sk-ant-wrong-key-abcdefghijklmnop";
      const wrong = await createClient({ apiKey: wrongKey, baseUrl: fake.url, timeoutMs: 5_000 });
      const err = await failureOf(null, wrong);
      expect(err).toBeInstanceOf(Anthropic.AuthenticationError);
      const failure = classifyFailure(err);
      expect(failure).toMatchObject({ kind: "permanent", status: 401 });
      expect(failure.message).not.toContain(wrongKey);
    });

    for (const [status, type] of [
      [401, "authentication_error"],
      [403, "permission_error"],
      [402, "billing_error"],
      [404, "not_found_error"],
    ] as const) {
      it(`${status} ${type} is permanent`, async () => {
        expect(classifyFailure(await failureOf(apiError(status, type, "refused")))).toMatchObject({ kind: "permanent", status });
      });
    }

    it("413 request_too_large is too long a request (summarize), not the envelope's fault", async () => {
      expect(classifyFailure(await failureOf(apiError(413, "request_too_large", "Request exceeds the maximum allowed number of bytes.")))).toMatchObject({ kind: "tooLong", status: 413 });
    });

    for (const [status, type] of [
      [500, "api_error"],
      [502, "api_error"],
      [503, "api_error"],
      [504, "timeout_error"],
    ] as const) {
      it(`${status} ${type} is transient (that conversation backs off on its own)`, async () => {
        const err = await failureOf(apiError(status, type, "try again"));
        expect(err).toBeInstanceOf(Anthropic.APIError);
        expect(classifyFailure(err)).toMatchObject({ kind: "transient", status });
      });
    }

    it("529 overloaded closes the gate for every call (rateLimited) and honours retry-after", async () => {
      expect(classifyFailure(await failureOf(apiError(529, "overloaded_error", "Overloaded", { headers: { "retry-after": "3" } })))).toMatchObject({ kind: "rateLimited", retryAfterMs: 3000 });
    });

    it("a connection reset is transient", async () => {
      const err = await failureOf({ kind: "reset" });
      expect(err).toBeInstanceOf(Anthropic.APIConnectionError);
      expect(classifyFailure(err).kind).toBe("transient");
    });

    it("a timeout is transient", async () => {
      const impatient = await createClient({ apiKey: KEY, baseUrl: fake.url, timeoutMs: 150 });
      const err = await failureOf({ kind: "hang" }, impatient);
      expect(err).toBeInstanceOf(Anthropic.APIConnectionTimeoutError);
      expect(classifyFailure(err).kind).toBe("transient");
    });

    it("a server that is not there is transient", async () => {
      const nowhere = await createClient({ apiKey: KEY, baseUrl: "http://127.0.0.1:9", timeoutMs: 2_000 });
      const err = await failureOf(null, nowhere);
      expect(err).toBeInstanceOf(Anthropic.APIConnectionError);
      expect(classifyFailure(err).kind).toBe("transient");
    });

    it("the SDK does not retry behind the relay's back (maxRetries 0): one request per failure", async () => {
      await failureOf(apiError(529, "overloaded_error", "Overloaded"));
      expect(fake.requests).toHaveLength(1);
    });
  });
});
