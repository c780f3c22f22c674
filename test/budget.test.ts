import { describe, expect, it } from "vitest";
import { budgetExhausted, SpendTracker, unpricedUnderBudget } from "../src/costs/budget.js";
import { DEFAULT_LIMITS, type RelayConfig } from "../src/config/config.js";

const config = (budget: RelayConfig["budget"]): RelayConfig => ({
  model: "claude-sonnet-4-6",
  maxTokens: 100,
  systemPrompt: "s",
  summarizationPrompt: "s",
  keepRecentTurns: 2,
  historyCharCap: 1000,
  pollIntervalMs: 100,
  maxParallelCalls: 4,
  apiTimeoutMs: 1000,
  cacheTtl: "5m",
  sessions: [{ id: "session-1", conversation: "shared", systemPrompt: "s", model: "claude-sonnet-4-6" }],
  budget,
  limits: DEFAULT_LIMITS,
  anthropic: {},
  ntfy: { server: "http://127.0.0.1:1" },
});

const NOON = Date.parse("2026-11-24T12:00:00Z");
const rec = (at: string, session: string, usd: number | null) => ({ at, session, usd });

describe("budgets", () => {
  it("counts only today's spend (UTC), overall and per session", () => {
    const spend = new SpendTracker(() => NOON, [rec("2026-11-23T23:59:59Z", "session-1", 100), rec("2026-11-24T00:00:01Z", "session-1", 2), rec("2026-11-24T08:00:00Z", "session-2", 3)]);
    expect(spend.today()).toBe(5);
    expect(spend.today("session-1")).toBe(2);
    spend.add(rec("2026-11-24T12:00:00Z", "session-1", null));
    expect(spend.today()).toBe(5);
  });

  it("starts a new day at midnight UTC", () => {
    let now = NOON;
    const spend = new SpendTracker(() => now, [rec("2026-11-24T08:00:00Z", "session-1", 4)]);
    now = Date.parse("2026-11-25T00:00:00Z");
    expect(spend.today()).toBe(0);
  });

  it("stops a call that would start past the daily budget, naming it", () => {
    const spend = new SpendTracker(() => NOON, [rec("2026-11-24T08:00:00Z", "session-1", 5)]);
    const failure = budgetExhausted(config({ dailyUsd: 5 }), spend, "session-1");
    expect(failure?.kind).toBe("budget");
    expect(failure?.message).toMatch(/^\[NEEDS-JC\] The daily budget of \$5\.00 is spent/);
    expect(budgetExhausted(config({ dailyUsd: 5.01 }), spend, "session-1")).toBeNull();
  });

  it("stops a session past its own daily budget but not the others", () => {
    const spend = new SpendTracker(() => NOON, [rec("2026-11-24T08:00:00Z", "session-1", 1)]);
    expect(budgetExhausted(config({ sessionDailyUsd: 1 }), spend, "session-1")?.message).toContain("per-session daily budget");
    expect(budgetExhausted(config({ sessionDailyUsd: 1 }), spend, "session-2")).toBeNull();
    expect(budgetExhausted(config({}), spend, "session-1")).toBeNull();
  });

  it("never forgets a day's spend when the clock steps back across midnight", () => {
    let now = Date.parse("2026-11-25T00:10:00Z");
    const spend = new SpendTracker(() => now, [rec("2026-11-24T20:00:00Z", "session-1", 1)]);
    spend.add(rec("2026-11-25T00:05:00Z", "session-1", 5)); // the 25th's budget is spent
    expect(budgetExhausted(config({ dailyUsd: 5 }), spend, "session-1")?.kind).toBe("budget");
    now = Date.parse("2026-11-24T23:10:00Z"); // the clock is stepped back an hour, into the 24th
    expect(spend.today()).toBe(5);
    expect(budgetExhausted(config({ dailyUsd: 5 }), spend, "session-1")?.kind).toBe("budget");
  });

  it("takes its days from the ledger's summary cells at start", () => {
    const spend = SpendTracker.fromCells(() => NOON, [
      { day: "2026-11-23", session: "session-1", usd: 100 },
      { day: "2026-11-24", session: "session-1", usd: 2 },
      { day: "2026-11-24", session: "session-2", usd: 3 },
    ]);
    expect(spend.today()).toBe(5);
    expect(spend.today("session-2")).toBe(3);
  });
});

describe("today's spend seeded after start", () => {
  it("waits for the ledger's cells: settled() resolves once they are counted", async () => {
    let give: (cells: { day: string; session: string; usd: number }[]) => void = () => undefined;
    const spend = SpendTracker.seededLater(() => NOON, new Promise((resolve) => (give = resolve)));
    let settled = false;
    const waiting = spend.settled().then(() => (settled = true));
    await new Promise((r) => setTimeout(r, 10));
    expect(settled).toBe(false);
    give([{ day: "2026-11-24", session: "session-1", usd: 7 }]);
    await waiting;
    expect(spend.today()).toBe(7);
    expect(budgetExhausted(config({ dailyUsd: 5 }), spend, "session-1")?.kind).toBe("budget");
  });

  it("rejects settled() when the ledger cannot be read, so no budget is checked against nothing", async () => {
    const spend = SpendTracker.seededLater(() => NOON, Promise.reject(new Error("EACCES: state/costs.jsonl")));
    await expect(spend.settled()).rejects.toThrow("EACCES");
  });

  it("is settled at once when seeded as it is made", async () => {
    await expect(new SpendTracker(() => NOON).settled()).resolves.toBeUndefined();
  });
});

describe("a budget never fails open", () => {
  const withModels = (budget: RelayConfig["budget"], model: string, sessionModel = model, prices?: RelayConfig["prices"]): RelayConfig => ({
    ...config(budget),
    model,
    sessions: [
      { id: "session-1", conversation: "shared", systemPrompt: "s", model },
      { id: "session-2", conversation: "session.session-2", systemPrompt: "own", model: sessionModel },
    ],
    ...(prices ? { prices } : {}),
  });

  it("refuses, in one line naming the model and prices:, a budget over a model of unknown price", () => {
    const refusal = unpricedUnderBudget(withModels({ dailyUsd: 1 }, "claude-new-model"));
    expect(refusal).toMatch(/^config\.yaml: a budget is set but the price of claude-new-model \(used by session-1, session-2\) is unknown/);
    expect(refusal).toContain("prices:");
    expect(refusal).not.toMatch(/\n/);
  });

  it("names a session's own unpriced model, and a per-session budget counts as a budget", () => {
    expect(unpricedUnderBudget(withModels({ sessionDailyUsd: 1 }, "claude-sonnet-4-6", "claude-new-model"))).toContain("claude-new-model (used by session-2)");
  });

  it("lets the model run once prices: gives its rates, and lets anything run without a budget", () => {
    const rates = { "claude-new-model": { input: 3, output: 15, cacheWrite5m: 3.75, cacheWrite1h: 6, cacheRead: 0.3 } };
    expect(unpricedUnderBudget(withModels({ dailyUsd: 1 }, "claude-new-model", "claude-new-model", rates))).toBeNull();
    expect(unpricedUnderBudget(withModels({}, "claude-new-model"))).toBeNull();
    expect(unpricedUnderBudget(withModels({ dailyUsd: 1 }, "claude-sonnet-4-6"))).toBeNull();
  });
});
