// Opt-in: `npm run test:live` with a billed ANTHROPIC_API_KEY. Never part of `npm test`.
import { describe, expect, it } from "vitest";
import { buildReplyRequest, callMessages, classifyFailure, createClient } from "../../src/anthropic/messages.js";

const key = process.env.ANTHROPIC_API_KEY;
const model = process.env.RELAY_LIVE_MODEL ?? "claude-haiku-4-5";

describe("live Messages API", () => {
  it.skipIf(!key)("answers one relayed envelope with text and usage", async (ctx) => {
    const client = await createClient({ apiKey: key ?? "", timeoutMs: 60_000, ...(process.env.ANTHROPIC_BASE_URL ? { baseUrl: process.env.ANTHROPIC_BASE_URL } : {}) });
    const request = buildReplyRequest({
      model,
      maxTokens: 64,
      systemPrompt: "You are a terse reviewer. Answer in at most ten words.",
      history: [],
      notes: [],
      item: { id: "live-1", source: "envelope", inReplyTo: null, session: "session-1", text: "Tests pass. Should I open the PR?" },
      cacheTtl: "5m",
    });
    try {
      const reply = await callMessages(client, request);
      expect(reply.text.trim().length).toBeGreaterThan(0);
      expect(reply.usage.outputTokens).toBeGreaterThan(0);
    } catch (err) {
      const failure = classifyFailure(err);
      if (failure.kind === "permanent" && /credit balance/i.test(failure.message)) ctx.skip("the key's credit balance is too low");
      throw err;
    }
  });
});
