// Budgets fail closed (CONTRACT §10): with a budget set, `relay run` refuses a model whose price
// it does not know, in one line; `prices:` in config.yaml prices such a model, and its calls are
// then counted against the budget at those rates.
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, it } from "vitest";
import { configYaml, killAll, makeRoot, runCli, Scope, secretsCheck } from "../support/cli.js";

afterAll(killAll);

const UNPRICED = "claude-new-model";
const budgetFor = (model: string, extra = "") => `${configYaml({ model })}budget:\n  daily_usd: 0.0001\n${extra}`;

describe("a budget with a model of unknown price", () => {
  it("refuses `relay run` at once with one line naming the model and prices:, exit 2, before it takes the lock or calls anything", async (ctx) => {
    const { expect } = ctx;
    const scope = await Scope.create(ctx);
    const root = await makeRoot({ config: budgetFor(UNPRICED) });
    const started = Date.now();
    const r = await runCli(["run", "--root", root], { env: scope.vars() });
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(r.signal).toBeNull();
    expect(r.code).toBe(2);
    const lines = r.stderr.trim().split("\n");
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toContain(UNPRICED);
    expect(lines[0]).toContain("prices:");
    expect(scope.fake.requests).toHaveLength(0);
  });

  it("runs once `prices:` gives the model's rates, and records each call's cost at those rates", async (ctx) => {
    const { expect } = ctx;
    const scope = await Scope.create(ctx);
    const prices = `prices:\n  ${UNPRICED}: {input: 3, output: 15, cache_write_5m: 3.75, cache_write_1h: 6, cache_read: 0.3}\n`;
    const root = await makeRoot({ config: `${configYaml({ model: UNPRICED })}budget:\n  daily_usd: 50\n${prices}` });
    const daemon = await scope.start(root);
    expect(daemon.alive(), daemon.stderr()).toBe(true);
    const sent = await runCli(["send", "--root", root, "--session", "session-1", "--wait", "30", "priced by config.yaml"], { env: scope.vars(), timeoutMs: 40_000 });
    expect(sent.code, sent.stderr).toBe(0);
    const [record] = (await readFile(join(root, "state", "costs.jsonl"), "utf8"))
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { model: string; usd: number | null; inputTokens: number; outputTokens: number; cacheWrite5mTokens: number; cacheWrite1hTokens: number; cacheReadTokens: number });
    expect(record?.model).toBe(UNPRICED);
    const r = record as NonNullable<typeof record>;
    const expected = (r.inputTokens * 3 + r.outputTokens * 15 + r.cacheWrite5mTokens * 3.75 + r.cacheWrite1hTokens * 6 + r.cacheReadTokens * 0.3) / 1_000_000;
    expect(r.usd).not.toBeNull();
    expect(r.usd).toBeCloseTo(expected, 12);
    expect(r.usd).toBeGreaterThan(0);
  });

  it("ignores a live edit of config.yaml that would put an unpriced model under the budget, saying so on the phone, and keeps running", async (ctx) => {
    const { expect } = ctx;
    const scope = await Scope.create(ctx);
    const root = await makeRoot({ config: budgetFor("claude-sonnet-4-6") });
    const daemon = await scope.start(root);
    expect(daemon.alive(), daemon.stderr()).toBe(true);
    await writeFile(join(root, "config.yaml"), budgetFor(UNPRICED));
    const [warning] = await scope.ntfy.waitForMessages(1, 15_000);
    expect(warning?.title).toContain("config.yaml edit ignored");
    expect(warning?.message).toContain(UNPRICED);
    expect(daemon.alive()).toBe(true);
  });
});

secretsCheck();
