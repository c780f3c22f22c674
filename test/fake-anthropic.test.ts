import Anthropic from "@anthropic-ai/sdk";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { startFakeAnthropic, type FakeAnthropic } from "./support/fake-anthropic.js";

type CreateParams = Anthropic.MessageCreateParamsNonStreaming;

const SONNET = "claude-sonnet-4-6";
const HAIKU = "claude-haiku-4-5";

let fake: FakeAnthropic;
let client: Anthropic;

beforeEach(async () => {
  fake = await startFakeAnthropic({ apiKey: "sk-ant-test" });
  client = new Anthropic({ apiKey: "sk-ant-test", baseURL: fake.url, maxRetries: 0 });
});
afterEach(async () => {
  await fake.close();
});

/** Exactly `tokens` tokens under the fake's ceil(chars/4) estimate. */
const textOf = (tokens: number, seed = "x"): string => seed.repeat(tokens * 4).slice(0, tokens * 4);

const base = (over: Record<string, unknown> = {}): CreateParams =>
  ({ model: SONNET, max_tokens: 256, messages: [{ role: "user", content: "Hello there" }], ...over }) as CreateParams;

/** Calls `fn` expecting it to reject; returns the rejection. */
async function failure(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => {
      throw new Error("expected the call to fail");
    },
    (e: unknown) => e,
  );
}

async function badRequest(body: object): Promise<string> {
  const err = await failure(client.messages.create(body as unknown as CreateParams));
  expect(err).toBeInstanceOf(Anthropic.BadRequestError);
  const e = err as InstanceType<typeof Anthropic.BadRequestError>;
  expect(e.status).toBe(400);
  expect(e.type).toBe("invalid_request_error");
  expect(e.requestID).toMatch(/^req_/);
  return e.apiMessage ?? "";
}

describe("fake Anthropic: happy path", () => {
  it("answers a valid call with text and usage, and records the request", async () => {
    const msg = await client.messages.create(base());
    expect(msg.type).toBe("message");
    expect(msg.role).toBe("assistant");
    expect(msg.id).toMatch(/^msg_/);
    expect(msg.model).toBe(SONNET);
    expect(msg.content).toEqual([{ type: "text", text: "ack: Hello there" }]);
    expect(msg.stop_reason).toBe("end_turn");
    expect(msg.stop_sequence).toBeNull();
    expect(msg.usage).toMatchObject({
      input_tokens: 3, // "Hello there" = 11 chars
      output_tokens: 4, // "ack: Hello there" = 16 chars
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: 0,
      cache_creation: { ephemeral_5m_input_tokens: 0, ephemeral_1h_input_tokens: 0 },
    });
    expect(fake.requests).toHaveLength(1);
    const rec = fake.requests[0];
    expect(rec?.headers.authorization).toBe("Bearer sk-ant-test");
    expect(rec?.headers["anthropic-version"]).toBe("2026-10-21");
    expect(rec?.body).toMatchObject({ model: SONNET, max_tokens: 256 });
    expect(rec?.response.status).toBe(200);
  });

  it("uses scripted replies FIFO, then the responder", async () => {
    fake.enqueue({ kind: "reply", text: "first" }, { kind: "reply", text: "second", stopReason: "refusal" });
    fake.setResponder((r) => `echo ${r.messages.length} ${r.system}`);
    const texts: string[] = [];
    const reasons: (string | null)[] = [];
    for (let i = 0; i < 3; i++) {
      const m = await client.messages.create(base({ system: "sys" }));
      texts.push(m.content[0]?.type === "text" ? m.content[0].text : "");
      reasons.push(m.stop_reason);
    }
    expect(texts).toEqual(["first", "second", "echo 1 sys"]);
    expect(reasons).toEqual(["end_turn", "refusal", "end_turn"]);
  });

  it("honours stop_sequences and max_tokens", async () => {
    fake.enqueue({ kind: "reply", text: "alpha STOP beta" }, { kind: "reply", text: "y".repeat(100) });
    const a = await client.messages.create(base({ stop_sequences: ["STOP"] }));
    expect(a.content).toEqual([{ type: "text", text: "alpha " }]);
    expect(a.stop_reason).toBe("stop_sequence");
    expect(a.stop_sequence).toBe("STOP");
    const b = await client.messages.create(base({ max_tokens: 5 }));
    expect(b.content).toEqual([{ type: "text", text: "y".repeat(20) }]);
    expect(b.stop_reason).toBe("max_tokens");
    expect(b.usage.output_tokens).toBe(5);
  });

  it("streams the real SSE sequence so finalMessage() works", async () => {
    fake.setResponder(() => "a reply long enough to need several text deltas");
    const stream = client.messages.stream({ ...base(), stream: true } as Anthropic.MessageStreamParams);
    const events: string[] = [];
    stream.on("streamEvent", (e) => events.push(e.type));
    const final = await stream.finalMessage();
    expect(final.content).toEqual([{ type: "text", text: "a reply long enough to need several text deltas" }]);
    expect(final.stop_reason).toBe("end_turn");
    expect(final.usage.output_tokens).toBe(12);
    expect(final.usage.input_tokens).toBe(3);
    expect(events[0]).toBe("message_start");
    expect(events.filter((t) => t === "content_block_delta").length).toBeGreaterThan(1);
    expect(events.slice(-3)).toEqual(["content_block_stop", "message_delta", "message_stop"]);
  });

  it("applies latency and delay behaviours", async () => {
    fake.setLatency(60);
    fake.enqueue({ kind: "delay", ms: 60, then: { kind: "reply", text: "late" } });
    const t0 = Date.now();
    const m = await client.messages.create(base());
    expect(Date.now() - t0).toBeGreaterThanOrEqual(110);
    expect(m.content).toEqual([{ type: "text", text: "late" }]);
  });
});

describe("fake Anthropic: validation (400 invalid_request_error)", () => {
  const long = textOf(10);
  const cases: [string, object, string][] = [
    ["missing model", { max_tokens: 10, messages: [{ role: "user", content: "hi" }] }, "model: Field required"],
    ["non-string model", { model: 5, max_tokens: 10, messages: [{ role: "user", content: "hi" }] }, "model: Input should be a valid string"],
    ["missing max_tokens", { model: SONNET, messages: [{ role: "user", content: "hi" }] }, "max_tokens: Field required"],
    ["zero max_tokens", base({ max_tokens: 0 }), "max_tokens: Input should be greater than or equal to 1"],
    ["fractional max_tokens", base({ max_tokens: 1.5 }), "max_tokens: Input should be a valid integer"],
    ["missing messages", { model: SONNET, max_tokens: 10 }, "messages: Field required"],
    ["empty messages", base({ messages: [] }), "messages: at least one message is required"],
    ["unknown field", base({ foo: 1 }), "foo: Extra inputs are not permitted"],
    ["temperature under 2026-10-21", base({ temperature: 1 }), "temperature: Extra inputs are not permitted"],
    ["top_p under 2026-10-21", base({ top_p: 0.9 }), "top_p: Extra inputs are not permitted"],
    ["top_k under 2026-10-21", base({ top_k: 5 }), "top_k: Extra inputs are not permitted"],
    ["bad role", base({ messages: [{ role: "system", content: "hi" }] }), "messages.0.role: Input should be 'user' or 'assistant'"],
    [
      "first turn from assistant",
      base({ messages: [{ role: "assistant", content: "hi" }, { role: "user", content: "hi" }] }),
      'messages: first message must use the "user" role',
    ],
    [
      "same role twice",
      base({ messages: [{ role: "user", content: "a" }, { role: "user", content: "b" }] }),
      'roles must alternate between "user" and "assistant", but found multiple "user" roles in a row',
    ],
    [
      "final assistant turn (prefill)",
      base({ messages: [{ role: "user", content: "a" }, { role: "assistant", content: "b" }] }),
      "This model does not support assistant message prefill. The conversation must end with a user message.",
    ],
    ["empty string content", base({ messages: [{ role: "user", content: "" }] }), "messages: text content blocks must be non-empty"],
    [
      "whitespace text block",
      base({ messages: [{ role: "user", content: [{ type: "text", text: " \n " }] }] }),
      "messages: text content blocks must contain non-whitespace text",
    ],
    [
      "empty content array",
      base({ messages: [{ role: "user", content: [] }] }),
      "messages.0: all messages must have non-empty content",
    ],
    [
      "extra field on a text block",
      base({ messages: [{ role: "user", content: [{ type: "text", text: "hi", extra: 1 }] }] }),
      "messages.0.content.0.extra: Extra inputs are not permitted",
    ],
    [
      "non-text block",
      base({ messages: [{ role: "user", content: [{ type: "image", source: {} }] }] }),
      "messages.0.content.0.type",
    ],
    [
      "cache_control on an empty block",
      base({ messages: [{ role: "user", content: [{ type: "text", text: "", cache_control: { type: "ephemeral" } }] }] }),
      "cache_control cannot be set for empty text blocks",
    ],
    [
      "bad cache_control type",
      base({ messages: [{ role: "user", content: [{ type: "text", text: "hi", cache_control: { type: "persistent" } }] }] }),
      "messages.0.content.0.cache_control.type: Input should be 'ephemeral'",
    ],
    [
      "bad ttl",
      base({ system: [{ type: "text", text: "s", cache_control: { type: "ephemeral", ttl: "10m" } }] }),
      "system.0.cache_control.ttl: Input should be '5m' or '1h'",
    ],
    ["empty system", base({ system: "" }), "system: text content blocks must be non-empty"],
    [
      "five breakpoints",
      base({
        system: [1, 2, 3].map((i) => ({ type: "text", text: `${long}${i}`, cache_control: { type: "ephemeral" } })),
        messages: [
          { role: "user", content: [{ type: "text", text: "a", cache_control: { type: "ephemeral" } }] },
          { role: "assistant", content: "b" },
          { role: "user", content: [{ type: "text", text: "c", cache_control: { type: "ephemeral" } }] },
        ],
      }),
      "A maximum of 4 blocks with cache_control may be provided. Found 5.",
    ],
    [
      "1h breakpoint after a 5m one",
      base({
        system: [{ type: "text", text: long, cache_control: { type: "ephemeral" } }],
        messages: [{ role: "user", content: [{ type: "text", text: "a", cache_control: { type: "ephemeral", ttl: "1h" } }] }],
      }),
      "a ttl='1h' cache_control block must not come after a ttl='5m' cache_control block",
    ],
  ];

  it.each(cases)("refuses %s", async (_name, body, message) => {
    expect(await badRequest(body)).toContain(message);
    expect(fake.requests.at(-1)?.response.status).toBe(400);
  });

  it("accepts sampling fields under anthropic-version 2023-06-01", async () => {
    const old = new Anthropic({
      apiKey: "sk-ant-test",
      baseURL: fake.url,
      maxRetries: 0,
      defaultHeaders: { "anthropic-version": "2023-06-01" },
    });
    const m = await old.messages.create(base({ temperature: 0.5 }));
    expect(fake.requests[0]?.headers["anthropic-version"]).toBe("2023-06-01");
    expect(m.stop_reason).toBe("end_turn");
  });

  it("accepts a 1h breakpoint before a 5m one, system as blocks, and alternating turns", async () => {
    const m = await client.messages.create(
      base({
        system: [{ type: "text", text: "sys", cache_control: { type: "ephemeral", ttl: "1h" } }],
        messages: [
          { role: "user", content: "a" },
          { role: "assistant", content: [{ type: "text", text: "b" }] },
          { role: "user", content: [{ type: "text", text: "c", cache_control: { type: "ephemeral", ttl: "5m" } }] },
        ],
      }),
    );
    expect(m.content).toEqual([{ type: "text", text: "ack: c" }]);
  });

  it("answers bad JSON, missing headers, a wrong key and unknown routes with the real error shape", async () => {
    const post = (headers: Record<string, string>, body: string, path = "/v1/messages") =>
      fetch(`${fake.url}${path}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body });
    const good = { authorization: "Bearer sk-ant-test", "anthropic-version": "2026-10-21" };

    const badJson = await post(good, "{not json");
    expect(badJson.status).toBe(400);
    const badJsonBody = (await badJson.json()) as { type: string; error: { type: string }; request_id: string };
    expect(badJsonBody).toMatchObject({ type: "error", error: { type: "invalid_request_error" } });
    expect(badJsonBody.request_id).toBe(badJson.headers.get("request-id"));
    expect(fake.requests[0]?.body).toBe("{not json");

    const noVersion = await post({ authorization: "Bearer sk-ant-test" }, JSON.stringify(base()));
    expect(noVersion.status).toBe(400);
    expect(await noVersion.json()).toMatchObject({ error: { message: "anthropic-version: header is required" } });

    const viaXApiKey = await post({ "x-api-key": "sk-ant-test", "anthropic-version": "2026-10-21" }, JSON.stringify(base()));
    expect(viaXApiKey.status).toBe(200);

    const noKey = await post({ "anthropic-version": "2026-10-21" }, JSON.stringify(base()));
    expect(noKey.status).toBe(401);

    const notFound = await post(good, "{}", "/v1/complete");
    expect(notFound.status).toBe(404);
    expect(await notFound.json()).toMatchObject({ type: "error", error: { type: "not_found_error" } });
    expect(fake.requests).toHaveLength(4); // the 404 is not a /v1/messages request
  });

  it("refuses a wrong API key as AuthenticationError", async () => {
    const wrong = new Anthropic({ apiKey: "sk-ant-wrong", baseURL: fake.url, maxRetries: 0 });
    const err = await failure(wrong.messages.create(base()));
    expect(err).toBeInstanceOf(Anthropic.AuthenticationError);
    expect((err as InstanceType<typeof Anthropic.AuthenticationError>).type).toBe("authentication_error");
  });
});

describe("fake Anthropic: scripted failures", () => {
  it("delivers a 429 with retry-after as RateLimitError, without adding x-should-retry", async () => {
    fake.enqueue({
      kind: "error",
      status: 429,
      type: "rate_limit_error",
      message: "Number of request tokens has exceeded your per-minute rate limit",
      headers: { "retry-after": "7" },
    });
    const err = await failure(client.messages.create(base()));
    expect(err).toBeInstanceOf(Anthropic.RateLimitError);
    const e = err as InstanceType<typeof Anthropic.RateLimitError>;
    expect(e.headers.get("retry-after")).toBe("7");
    expect(e.headers.get("x-should-retry")).toBeNull();
    expect(e.requestID).toMatch(/^req_/);
    expect(e.error).toMatchObject({ type: "error", error: { type: "rate_limit_error" } });
    expect(fake.requests[0]?.response.status).toBe(429);
    // The queue is consumed: the next call gets the default reply.
    await expect(client.messages.create(base())).resolves.toMatchObject({ type: "message" });
  });

  it("carries details (spend cap) and scripted headers only", async () => {
    fake.enqueue({
      kind: "error",
      status: 429,
      type: "rate_limit_error",
      message: "You have reached your specified API usage limits.",
      details: { error_code: "enforced_spend_limit_reached" },
      headers: { "x-should-retry": "false" },
    });
    const err = await failure(client.messages.create(base()));
    const e = err as InstanceType<typeof Anthropic.RateLimitError>;
    expect(e.errorCode).toBe("enforced_spend_limit_reached");
    expect(e.headers.get("x-should-retry")).toBe("false");
    expect(e.headers.get("retry-after")).toBeNull();
  });

  it("delivers 529 as OverloadedError", async () => {
    fake.enqueue({ kind: "error", status: 529, type: "overloaded_error", message: "Overloaded" });
    const err = await failure(client.messages.create(base()));
    expect(err).toBeInstanceOf(Anthropic.OverloadedError);
    expect((err as InstanceType<typeof Anthropic.OverloadedError>).status).toBe(529);
  });

  it("hang makes the SDK time out with APIConnectionTimeoutError", async () => {
    fake.enqueue({ kind: "hang" });
    const impatient = new Anthropic({ apiKey: "sk-ant-test", baseURL: fake.url, maxRetries: 0, timeout: 150 });
    const err = await failure(impatient.messages.create(base()));
    expect(err).toBeInstanceOf(Anthropic.APIConnectionTimeoutError);
    expect(fake.requests[0]?.response.status).toBe(0);
  });

  it("reset surfaces as APIConnectionError (not a timeout)", async () => {
    fake.enqueue({ kind: "reset" });
    const err = await failure(client.messages.create(base()));
    expect(err).toBeInstanceOf(Anthropic.APIConnectionError);
    expect(err).not.toBeInstanceOf(Anthropic.APIConnectionTimeoutError);
  });

  it("close() ends a hanging request promptly", async () => {
    fake.enqueue({ kind: "hang" });
    const pending = failure(client.messages.create(base()));
    while (fake.requests.length === 0) await new Promise((r) => setTimeout(r, 5));
    const t0 = Date.now();
    await fake.close();
    expect(Date.now() - t0).toBeLessThan(10_000); // the request hangs for ever otherwise
    expect(await pending).toBeInstanceOf(Anthropic.APIConnectionError);
  });

  it("validates even when a failure is scripted, and still consumes it", async () => {
    fake.enqueue({ kind: "error", status: 529, type: "overloaded_error", message: "Overloaded" });
    await badRequest(base({ foo: 1 }));
    await expect(client.messages.create(base())).resolves.toMatchObject({ type: "message" });
  });
});

describe("fake Anthropic: prompt caching", () => {
  let clock = 1_000_000;
  beforeEach(() => {
    clock = 1_000_000;
    fake.setNow(() => clock);
  });

  const cachedSystem = (tokens: number, ttl?: "5m" | "1h"): CreateParams =>
    base({
      system: [{ type: "text", text: textOf(tokens, "s"), cache_control: ttl ? { type: "ephemeral", ttl } : { type: "ephemeral" } }],
      messages: [{ role: "user", content: "Question one" }], // 12 chars = 3 tokens
    });

  it("writes a long system prefix once, then reads it", async () => {
    const first = await client.messages.create(cachedSystem(1500));
    expect(first.usage).toMatchObject({
      input_tokens: 3,
      cache_creation_input_tokens: 1500,
      cache_read_input_tokens: 0,
      cache_creation: { ephemeral_5m_input_tokens: 1500, ephemeral_1h_input_tokens: 0 },
    });
    const second = await client.messages.create(cachedSystem(1500));
    expect(second.usage).toMatchObject({ input_tokens: 3, cache_creation_input_tokens: 0, cache_read_input_tokens: 1500 });
    expect(fake.cacheStats()).toEqual({ writes: 1, reads: 1 });
  });

  it("caches nothing below the model's minimum (1024 Sonnet, 4096 Haiku 4.5)", async () => {
    for (let i = 0; i < 2; i++) {
      const m = await client.messages.create(cachedSystem(1000));
      expect(m.usage).toMatchObject({ input_tokens: 1003, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 });
    }
    const haiku = await client.messages.create({ ...cachedSystem(2000), model: HAIKU });
    expect(haiku.usage).toMatchObject({ input_tokens: 2003, cache_creation_input_tokens: 0 });
    const sonnet = await client.messages.create(cachedSystem(2000));
    expect(sonnet.usage.cache_creation_input_tokens).toBe(2000);
    expect(fake.cacheStats()).toEqual({ writes: 1, reads: 0 });
  });

  it("keys the cache by model", async () => {
    await client.messages.create(cachedSystem(1500));
    const other = await client.messages.create({ ...cachedSystem(1500), model: "claude-sonnet-5" });
    expect(other.usage).toMatchObject({ cache_creation_input_tokens: 1500, cache_read_input_tokens: 0 });
  });

  it("expires a 5-minute entry 5 minutes after the last write or read", async () => {
    await client.messages.create(cachedSystem(1500));
    clock += 4 * 60_000;
    expect((await client.messages.create(cachedSystem(1500))).usage.cache_read_input_tokens).toBe(1500);
    clock += 4 * 60_000; // 8 min after the write, 4 after the read that refreshed it
    expect((await client.messages.create(cachedSystem(1500))).usage.cache_read_input_tokens).toBe(1500);
    clock += 5 * 60_000 + 1;
    const expired = await client.messages.create(cachedSystem(1500));
    expect(expired.usage).toMatchObject({ cache_read_input_tokens: 0, cache_creation_input_tokens: 1500 });
  });

  it("keeps a 1-hour entry past 5 minutes and reports it as ephemeral_1h", async () => {
    const first = await client.messages.create(cachedSystem(1500, "1h"));
    expect(first.usage.cache_creation).toEqual({ ephemeral_5m_input_tokens: 0, ephemeral_1h_input_tokens: 1500 });
    clock += 59 * 60_000;
    expect((await client.messages.create(cachedSystem(1500, "1h"))).usage.cache_read_input_tokens).toBe(1500);
    clock += 60 * 60_000 + 1;
    expect((await client.messages.create(cachedSystem(1500, "1h"))).usage.cache_read_input_tokens).toBe(0);
  });

  it("reads the longest cached breakpoint and writes the rest, split by TTL", async () => {
    const sys = [{ type: "text", text: textOf(1200, "a"), cache_control: { type: "ephemeral", ttl: "1h" } }];
    const turn1 = base({
      system: sys,
      messages: [{ role: "user", content: [{ type: "text", text: textOf(300, "b"), cache_control: { type: "ephemeral" } }] }],
    });
    const a = await client.messages.create(turn1);
    expect(a.usage).toMatchObject({
      input_tokens: 0,
      cache_creation_input_tokens: 1500,
      cache_read_input_tokens: 0,
      cache_creation: { ephemeral_1h_input_tokens: 1200, ephemeral_5m_input_tokens: 300 },
    });

    // Next turn: the conversation grows; the old last breakpoint is still marked.
    const turn2 = base({
      system: sys,
      messages: [
        { role: "user", content: [{ type: "text", text: textOf(300, "b"), cache_control: { type: "ephemeral" } }] },
        { role: "assistant", content: textOf(100, "c") },
        { role: "user", content: [{ type: "text", text: textOf(50, "d"), cache_control: { type: "ephemeral" } }] },
      ],
    });
    const b = await client.messages.create(turn2);
    expect(b.usage).toMatchObject({
      input_tokens: 0,
      cache_read_input_tokens: 1500,
      cache_creation_input_tokens: 150,
      cache_creation: { ephemeral_1h_input_tokens: 0, ephemeral_5m_input_tokens: 150 },
    });

    // After 10 minutes only the 1h system prefix survives.
    clock += 10 * 60_000;
    const c = await client.messages.create(turn2);
    expect(c.usage).toMatchObject({ cache_read_input_tokens: 1200, cache_creation_input_tokens: 450, input_tokens: 0 });
  });

  it("bills a system prompt in two blocks, 1h then 5m, as the API's mixed lifetimes: 1h up to the last 1h breakpoint, 5m after it", async () => {
    const text = (t: number, seed: string) => ({ type: "text" as const, text: textOf(t, seed) });
    const hedged = base({
      system: [
        { ...text(1200, "a"), cache_control: { type: "ephemeral", ttl: "1h" } },
        { ...text(800, "b"), cache_control: { type: "ephemeral" } },
      ],
      messages: [{ role: "user", content: [{ ...text(100, "u"), cache_control: { type: "ephemeral" } }] }],
    });
    const first = await client.messages.create(hedged);
    expect(first.usage).toMatchObject({ input_tokens: 0, cache_read_input_tokens: 0, cache_creation_input_tokens: 2100, cache_creation: { ephemeral_1h_input_tokens: 1200, ephemeral_5m_input_tokens: 900 } });

    // 15 minutes on, the next request marks only the system's second block and the turns (1h now):
    // the 5m entries are dead, the 1h one is found by the lookback from the system's breakpoint
    clock += 15 * 60_000;
    const next = base({
      system: [text(1200, "a"), { ...text(800, "b"), cache_control: { type: "ephemeral", ttl: "1h" } }],
      messages: [
        { role: "user", content: [{ ...text(100, "u"), cache_control: { type: "ephemeral", ttl: "1h" } }] },
        { role: "assistant", content: textOf(50, "r") },
        { role: "user", content: [{ ...text(30, "v"), cache_control: { type: "ephemeral", ttl: "1h" } }] },
      ],
    });
    const second = await client.messages.create(next);
    expect(second.usage).toMatchObject({ input_tokens: 0, cache_read_input_tokens: 1200, cache_creation_input_tokens: 980, cache_creation: { ephemeral_1h_input_tokens: 980, ephemeral_5m_input_tokens: 0 } });

    // two hours on, everything is dead: written again
    clock += 120 * 60_000;
    expect((await client.messages.create(next)).usage).toMatchObject({ cache_read_input_tokens: 0, cache_creation_input_tokens: 2180 });
  });

  it("finds an earlier request's entry up to 20 blocks before a breakpoint, and not further (the API's lookback)", async () => {
    const sys = { type: "text" as const, text: textOf(1500, "s") };
    // one user message of `blocks` small blocks after the system prompt, the last one marked
    const body = (blocks: number, markSystem: boolean) =>
      base({
        system: [markSystem ? { ...sys, cache_control: { type: "ephemeral" } } : sys],
        messages: [{ role: "user", content: Array.from({ length: blocks }, (_, i) => ({ type: "text", text: `block ${i}`, ...(i === blocks - 1 ? { cache_control: { type: "ephemeral" } } : {}) })) }],
      });
    await client.messages.create(body(1, true)); // writes the system prefix (and the one after the first block)
    const near = await client.messages.create(body(20, false)); // the system's boundary is 20 blocks before the breakpoint
    expect(near.usage.cache_read_input_tokens).toBeGreaterThanOrEqual(1500);
    const fresh = await startFakeAnthropic({ apiKey: "sk-ant-test" });
    try {
      const other = new Anthropic({ apiKey: "sk-ant-test", baseURL: fresh.url, maxRetries: 0 });
      await other.messages.create(body(1, true));
      const far = await other.messages.create(body(22, false)); // 22 blocks: the system's boundary is 22 before the breakpoint
      expect(far.usage).toMatchObject({ cache_read_input_tokens: 0 });
      expect(far.usage.cache_creation_input_tokens).toBeGreaterThan(1500);
    } finally {
      await fresh.close();
    }
  });

  it("writes from the start when an earlier breakpoint is too short to cache", async () => {
    const body = base({
      system: [{ type: "text", text: textOf(500, "a"), cache_control: { type: "ephemeral" } }],
      messages: [{ role: "user", content: [{ type: "text", text: textOf(700, "b"), cache_control: { type: "ephemeral" } }] }],
    });
    const m = await client.messages.create(body);
    expect(m.usage).toMatchObject({ cache_creation_input_tokens: 1200, input_tokens: 0 });
    expect(fake.cacheStats()).toEqual({ writes: 1, reads: 0 });
  });

  it("does not key the prefix on cache_control itself, and a changed prefix misses", async () => {
    await client.messages.create(cachedSystem(1500, "5m"));
    const sameTextOtherMarker = await client.messages.create(cachedSystem(1500, "1h"));
    expect(sameTextOtherMarker.usage.cache_read_input_tokens).toBe(1500);
    const changed = await client.messages.create(
      base({ system: [{ type: "text", text: `${textOf(1500, "s")}!`, cache_control: { type: "ephemeral" } }] }),
    );
    expect(changed.usage).toMatchObject({ cache_read_input_tokens: 0, cache_creation_input_tokens: 1501 });
  });

  it("supports top-level (automatic) cache_control on the last block", async () => {
    const auto = base({ cache_control: { type: "ephemeral" }, system: textOf(1500, "s") });
    const first = await client.messages.create(auto);
    expect(first.usage).toMatchObject({ cache_creation_input_tokens: 1503, input_tokens: 0 });
    const second = await client.messages.create(auto);
    expect(second.usage).toMatchObject({ cache_read_input_tokens: 1503, input_tokens: 0 });
  });

  it("reports cache usage in a stream's message_start", async () => {
    await client.messages.create(cachedSystem(1500));
    const final = await client.messages.stream({ ...cachedSystem(1500), stream: true } as Anthropic.MessageStreamParams).finalMessage();
    expect(final.usage).toMatchObject({ cache_read_input_tokens: 1500, input_tokens: 3 });
  });
});
