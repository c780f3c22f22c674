// Summarization (CONTRACT §4): past HISTORY_CHAR_CAP the conversation is summarized with
// summarization_prompt and becomes the summary plus its keep_recent_turns latest turns.
import { afterAll, describe, it, type TestContext } from "vitest";
import type { RecordedRequest } from "../support/fake-anthropic.js";
import {
  configYaml,
  dropEnvelope,
  type HistoryLine,
  killAll,
  lastUserText,
  makeRoot,
  messageTexts,
  queueNames,
  readHistory,
  runCli,
  Scope,
  secretsCheck,
  SUMMARIZATION_PROMPT,
  systemText,
  waitFor,
} from "../support/cli.js";

// Each test has its own root, fakes and daemon (a Scope, torn down as the test finishes), so the
// tests of this file run concurrently; killAll is the backstop.
afterAll(killAll);

/** A scope whose fake answers the summarization prompt with a summary, anything else with ~250 characters. */
async function setUp(ctx: TestContext): Promise<Scope> {
  const scope = await Scope.create(ctx);
  scope.fake.setResponder((r) =>
    r.lastUserText.includes(SUMMARIZATION_PROMPT)
      ? "SUMMARY-E2E: env-1 and env-2 were discussed."
      : `reply to ${/env-\d/.exec(r.lastUserText)?.[0] ?? "?"} `.padEnd(250, "r"),
  );
  return scope;
}

/** ~300 characters each: with 250-character replies a turn is ~560 characters, so the 4th passes 2000. */
const content = (i: number) => `env-${i} `.padEnd(300, "c");
const ago = (s: number) => new Date(Date.now() - s * 1000);
/** A summary rides the conversation's cache: the summarization prompt is its last user turn. */
const isSummaryRequest = (r: RecordedRequest) => lastUserText(r).includes(SUMMARIZATION_PROMPT);

describe.concurrent("summarization", () => {
  it("summarizes past HISTORY_CHAR_CAP into the summary plus the last keep_recent_turns turns, and later requests start with the summary", async (ctx) => {
    const { expect } = ctx;
    const scope = await setUp(ctx);
    const { fake } = scope;
    const root = await makeRoot({ config: configYaml({ keepRecentTurns: 2 }) });
    for (let i = 1; i <= 4; i++) await dropEnvelope(root, `${i}.json`, { session_id: "session-1", content: content(i) }, ago(60 - i));
    await scope.start(root, { HISTORY_CHAR_CAP: "2000" });

    // The summary's history file: summary first, then the last 2 turns.
    const summarized = await waitFor(
      async () => {
        const h = (await readHistory(root))["shared.jsonl"] ?? Object.values(await readHistory(root))[0];
        return h?.[0]?.kind === "summary" ? h : null;
      },
      { what: "a summarized history", timeoutMs: 30_000 }, // several calls of a daemon on a busy machine: 8 s was not enough at load 17
    );
    expect(summarized.map((e: HistoryLine) => e.kind)).toEqual(["summary", "turn", "turn"]);
    expect(summarized[0]?.text).toBe("SUMMARY-E2E: env-1 and env-2 were discussed.");
    expect(summarized.slice(1).map((e) => e.text)).toEqual([content(3), content(4)]);

    // Exactly one summarization request, after the 4th reply: the conversation as sent (system
    // prompt and turns), then the prompt as the last user turn, which keeps the last 2 turns out.
    expect(fake.requests).toHaveLength(5);
    const summaries = fake.requests.flatMap((r, i) => (isSummaryRequest(r) ? [i] : []));
    expect(summaries).toEqual([4]);
    expect(systemText(fake.requests[4])).toBe(systemText(fake.requests[3]));
    const folded = messageTexts(fake.requests[4]).join("\n");
    expect(folded).toContain("env-1");
    expect(folded).toContain("env-2");
    expect(lastUserText(fake.requests[4])).toContain("except its last 2 turns");

    // The next request starts with the summary, then the kept turns.
    await dropEnvelope(root, "5.json", { session_id: "session-1", content: content(5) });
    await waitFor(() => fake.requests.length === 6, { what: "the 6th request" });
    const texts = messageTexts(fake.requests[5]);
    expect(texts[0]).toMatch(/SUMMARY-E2E: env-1 and env-2 were discussed\./);
    expect(texts[0]).not.toContain("env-1 ccc");
    expect(texts.join("\n")).toContain("env-3");
    expect(texts.join("\n")).not.toContain(content(1));
    await waitFor(async () => (await queueNames(root)).length === 0, { what: "the queue to empty" });
    await waitFor(async () => (await readHistory(root))["shared.jsonl"]?.length === 4, { what: "the 5th turn recorded" });
  });

  it("loses no turn when killed before the summary is written: after a restart the history is the summary plus the last turns", async (ctx) => {
    const { expect } = ctx;
    const scope = await setUp(ctx);
    const root = await makeRoot({ config: configYaml({ keepRecentTurns: 2 }) });
    for (let i = 1; i <= 4; i++) await dropEnvelope(root, `${i}.json`, { session_id: "session-1", content: content(i) }, ago(60 - i));
    const crashing = await scope.start(root, { HISTORY_CHAR_CAP: "2000", RELAY_CRASH_AT: "before-summary-write" });
    expect((await crashing.exited).signal).toBe("SIGKILL");
    const before = Object.values(await readHistory(root))[0] ?? [];
    expect(before.map((e) => e.kind)).toEqual(["turn", "turn", "turn", "turn"]);

    await scope.start(root, { HISTORY_CHAR_CAP: "2000" });
    const after = await waitFor(
      async () => {
        const h = Object.values(await readHistory(root))[0];
        return h?.[0]?.kind === "summary" ? h : null;
      },
      { what: "a summarized history", timeoutMs: 30_000 }, // several calls of a daemon on a busy machine: 8 s was not enough at load 17
    );
    expect(after.map((e) => e.kind)).toEqual(["summary", "turn", "turn"]);
    expect(after.slice(1).map((e) => e.text)).toEqual([content(3), content(4)]);
    await waitFor(async () => (await queueNames(root)).length === 0, { what: "the queue to empty" });
    expect(Object.values(await readHistory(root))[0]?.map((e) => e.kind)).toEqual(["summary", "turn", "turn"]);
  });

  it("summarizes a conversation that a JC note pushed past the cap, even when the latest turn was in another conversation", async (ctx) => {
    const { expect } = ctx;
    const scope = await setUp(ctx);
    const { fake } = scope;
    const root = await makeRoot({
      config: configYaml({ keepRecentTurns: 1, sessions: ["session-1", { id: "solo", systemPrompt: "SOLO-PROMPT: review docs only." }] }),
    });
    const vars = scope.vars({ HISTORY_CHAR_CAP: "2000" });
    // Shared conversation: two turns of ~560 characters (1120). The solo session's turn comes last.
    await dropEnvelope(root, "1.json", { session_id: "session-1", content: content(1) }, ago(30));
    await dropEnvelope(root, "2.json", { session_id: "session-1", content: content(2) }, ago(20));
    await dropEnvelope(root, "3.json", { session_id: "solo", content: "env-3 solo" }, ago(10));
    await scope.start(root, { HISTORY_CHAR_CAP: "2000" });
    await waitFor(async () => fake.requests.length === 3 && (await queueNames(root)).length === 0, { what: "three envelopes answered" });
    const shared = async () => (await readHistory(root))["shared.jsonl"] ?? [];
    await waitFor(async () => (await shared()).length === 2, { what: "two shared turns" });

    // JC's direct note (~1000 characters) takes the shared conversation past 2000.
    expect((await runCli(["jc", "--root", root, `@session-1: ${"n".repeat(1000)}`], { env: vars })).code).toBe(0);
    await waitFor(async () => (await shared()).some((e) => e.kind === "note"), { what: "the note recorded" });

    // It is summarized: before (or at the latest with) the next shared request, history is summary first.
    await waitFor(async () => (await shared())[0]?.kind === "summary", { what: "the shared conversation summarized", timeoutMs: 3_000 });
    expect(fake.requests.filter(isSummaryRequest)).toHaveLength(1);
  });
});

secretsCheck();
