/**
 * `relay costs` (CONTRACT §10) as a user runs it: the real CLI (built to dist/ by `npm run
 * build`, which `npm test` runs first) on a temporary root whose ledger is written by
 * appendLedger, the code the daemon appends with.
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { appendLedger, makeLedgerRecord, type LedgerRecord } from "../src/costs/ledger.js";
import { costUsd, type Usage } from "../src/costs/pricing.js";
import { configYaml, killAll, makeRoot, removeRoots, runCli } from "./support/cli.js";

afterEach(killAll);
afterAll(removeRoots);

interface JsonRow {
  key: string;
  calls: number;
  inputTokens: number;
  outputTokens: number;
  cacheWriteTokens: number;
  cacheReadTokens: number;
  usd: number;
  unpricedCalls?: number;
  cacheSavingsUsd?: number;
}
interface JsonReport {
  totalUsd: number;
  rows: JsonRow[];
  cacheSavingsUsd?: number;
  unpricedCalls?: number;
}

const usage = (inputTokens: number, outputTokens: number, cacheWrite5mTokens = 0, cacheWrite1hTokens = 0, cacheReadTokens = 0): Usage => ({
  inputTokens,
  outputTokens,
  cacheWrite5mTokens,
  cacheWrite1hTokens,
  cacheReadTokens,
});

const call = (at: string, session: string, model: string, u: Usage): LedgerRecord =>
  makeLedgerRecord({ at: new Date(at), session, conversation: "shared", model, purpose: "reply", usage: u, latencyMs: 500 });

/** Three days, two sessions, two priced models and one retired (unpriced) one, with cache traffic. */
const LEDGER: LedgerRecord[] = [
  call("2026-11-08T23:59:59.000Z", "session-1", "claude-sonnet-4-6", usage(1_000, 200, 8_000, 0, 0)),
  call("2026-11-09T00:00:00.000Z", "session-1", "claude-sonnet-4-6", usage(500, 300, 0, 0, 8_000)),
  call("2026-11-09T12:00:00.000Z", "session-2", "claude-haiku-4-5", usage(2_000, 100, 0, 4_096, 0)),
  call("2026-11-10T08:00:00.000Z", "session-2", "claude-haiku-4-5", usage(300, 50, 0, 0, 4_096)),
  call("2026-11-10T09:00:00.000Z", "session-1", "claude-opus-4-1", usage(100, 10)),
];

async function rootWith(records: LedgerRecord[]): Promise<string> {
  const root = await makeRoot({ config: null });
  for (const r of records) await appendLedger(root, r);
  return root;
}

async function costsJson(root: string, ...args: string[]): Promise<JsonReport> {
  const r = await runCli(["costs", "--root", root, "--json", ...args]);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as JsonReport;
}

const sumUsd = (records: LedgerRecord[]): number => records.reduce((s, r) => s + (r.usd ?? 0), 0);
const tokens = (records: LedgerRecord[]) => ({
  calls: records.length,
  inputTokens: records.reduce((s, r) => s + r.inputTokens, 0),
  outputTokens: records.reduce((s, r) => s + r.outputTokens, 0),
  cacheWriteTokens: records.reduce((s, r) => s + r.cacheWriteTokens, 0),
  cacheReadTokens: records.reduce((s, r) => s + r.cacheReadTokens, 0),
});

function expectRow(row: JsonRow | undefined, key: string, records: LedgerRecord[]): void {
  expect(row).toBeDefined();
  expect(row).toMatchObject({ key, ...tokens(records) });
  expect(row?.usd).toBeCloseTo(sumUsd(records), 9);
}

describe("relay costs", () => {
  it("prints {totalUsd: 0, rows: []} for a root without a ledger, and says so in words", async () => {
    const root = await makeRoot({ config: null });
    const report = await costsJson(root);
    expect(report.totalUsd).toBe(0);
    expect(report.rows).toEqual([]);
    const human = await runCli(["costs", "--root", root]);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain("no API calls recorded");
  });

  it("--json has the contract's shape, one row per UTC day, and sums that match the ledger", async () => {
    const root = await rootWith(LEDGER);
    const report = await costsJson(root);
    expect(typeof report.totalUsd).toBe("number");
    expect(report.totalUsd).toBeCloseTo(sumUsd(LEDGER), 9);
    expect(report.rows.map((r) => r.key)).toEqual(["2026-11-08", "2026-11-09", "2026-11-10"]);
    for (const row of report.rows) {
      for (const k of ["key", "calls", "inputTokens", "outputTokens", "cacheWriteTokens", "cacheReadTokens", "usd"] as const) expect(row).toHaveProperty(k);
      expect(typeof row.key).toBe("string");
      for (const k of ["calls", "inputTokens", "outputTokens", "cacheWriteTokens", "cacheReadTokens", "usd"] as const) expect(typeof row[k]).toBe("number");
    }
    expectRow(report.rows[0], "2026-11-08", LEDGER.slice(0, 1));
    expectRow(report.rows[1], "2026-11-09", LEDGER.slice(1, 3));
    expectRow(report.rows[2], "2026-11-10", LEDGER.slice(3));
    // The 1-hour write counts as a cache write, at its own price.
    expect(report.rows[1]?.cacheWriteTokens).toBe(4_096);
  });

  it("--by session and --by model group the same calls", async () => {
    const root = await rootWith(LEDGER);
    const bySession = await costsJson(root, "--by", "session");
    expect(bySession.rows.map((r) => r.key)).toEqual(["session-1", "session-2"]);
    expectRow(bySession.rows[0], "session-1", LEDGER.filter((r) => r.session === "session-1"));
    expectRow(bySession.rows[1], "session-2", LEDGER.filter((r) => r.session === "session-2"));
    expect(bySession.totalUsd).toBeCloseTo(sumUsd(LEDGER), 9);

    const byModel = await costsJson(root, "--by", "model");
    expect(byModel.rows.map((r) => r.key)).toEqual(["claude-haiku-4-5", "claude-opus-4-1", "claude-sonnet-4-6"]);
    for (const row of byModel.rows) expectRow(row, row.key, LEDGER.filter((r) => r.model === row.key));
  });

  it("never prices an unknown model as zero: its calls are counted as price unknown", async () => {
    const root = await rootWith(LEDGER);
    const byModel = await costsJson(root, "--by", "model");
    const opus41 = byModel.rows.find((r) => r.key === "claude-opus-4-1");
    expect(opus41?.unpricedCalls).toBe(1);
    expect(byModel.unpricedCalls).toBe(1);
    const human = await runCli(["costs", "--root", root, "--by", "model"]);
    expect(human.code).toBe(0);
    const line = human.stdout.split("\n").find((l) => l.startsWith("claude-opus-4-1"));
    expect(line).toContain("price unknown");
    expect(line).not.toContain("$0.00");
    expect(human.stdout).toMatch(/1 call of unknown price/);
  });

  it("--since keeps calls at or after a day (from 00:00 UTC) or an ISO time", async () => {
    const root = await rootWith(LEDGER);
    const fromDay = await costsJson(root, "--since", "2026-11-09");
    expect(fromDay.rows.map((r) => r.key)).toEqual(["2026-11-09", "2026-11-10"]);
    expect(fromDay.totalUsd).toBeCloseTo(sumUsd(LEDGER.slice(1)), 9);

    const fromTime = await costsJson(root, "--since", "2026-11-09T12:00:00Z", "--by", "session");
    expectRow(fromTime.rows.find((r) => r.key === "session-2"), "session-2", LEDGER.slice(2, 4));
    expectRow(fromTime.rows.find((r) => r.key === "session-1"), "session-1", LEDGER.slice(4));

    const withOffset = await costsJson(root, "--since", "2026-11-10T10:00:00+02:00");
    expect(withOffset.rows.map((r) => r.key)).toEqual(["2026-11-10"]);
    expect(withOffset.rows[0]?.calls).toBe(2);

    const future = await costsJson(root, "--since", "2030-01-01");
    expect(future).toMatchObject({ totalUsd: 0, rows: [] });
  });

  it("refuses a bad --since with one line and a non-zero exit", async () => {
    const root = await rootWith(LEDGER);
    for (const bad of ["yesterday", "2026-02-30", "11/10/2026"]) {
      const r = await runCli(["costs", "--root", root, "--since", bad]);
      expect(r.code).not.toBe(0);
      expect(r.stdout).toBe("");
      const lines = r.stderr.trim().split("\n");
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain("--since");
      expect(lines[0]).toContain("YYYY-MM-DD");
    }
  });

  it("refuses a bad --by with one line and a non-zero exit", async () => {
    const root = await rootWith(LEDGER);
    const r = await runCli(["costs", "--root", root, "--by", "week"]);
    expect(r.code).not.toBe(0);
    expect(r.stdout).toBe("");
    expect(r.stderr.trim().split("\n")).toEqual(['relay: --by: expected day, session or model, got "week"']);
  });

  it("shows what prompt caching saved: cached tokens at the input price minus what they cost", async () => {
    const root = await rootWith(LEDGER);
    const report = await costsJson(root, "--by", "model");
    // Sonnet 4.6: input $3, 5-minute write $3.75, read $0.30 per million tokens.
    const sonnet = 8_000 * (3 - 3.75) + 8_000 * (3 - 0.3);
    // Haiku 4.5: input $1, 1-hour write $2, read $0.10 per million tokens.
    const haiku = 4_096 * (1 - 2) + 4_096 * (1 - 0.1);
    expect(report.rows.find((r) => r.key === "claude-sonnet-4-6")?.cacheSavingsUsd).toBeCloseTo(sonnet / 1e6, 9);
    expect(report.rows.find((r) => r.key === "claude-haiku-4-5")?.cacheSavingsUsd).toBeCloseTo(haiku / 1e6, 9);
    expect(report.cacheSavingsUsd).toBeCloseTo((sonnet + haiku) / 1e6, 9);
    // Cross-check against the price table: what the calls would have cost uncached, minus what they cost.
    const uncached = LEDGER.filter((r) => r.usd !== null).reduce((s, r) => {
      const u = usage(r.inputTokens + r.cacheReadTokens + r.cacheWriteTokens, r.outputTokens);
      return s + (costUsd(r.model, u) ?? 0);
    }, 0);
    expect(report.cacheSavingsUsd).toBeCloseTo(uncached - sumUsd(LEDGER), 9);

    const human = await runCli(["costs", "--root", root]);
    expect(human.stdout).toContain("prompt caching saved $0.0152");
  });

  it("prices what caching saved at config.yaml's prices:, like the calls and the budgets (a model the table does not know, and one it does)", async () => {
    const model = "claude-new-model";
    // 5-minute writes, 1-hour writes and reads, on two days (the second call read from the saved summary)
    const known = call("2026-11-10T09:00:00.000Z", "session-1", "claude-sonnet-4-6", usage(100, 10, 0, 0, 1_000));
    const records = [call("2026-11-10T10:00:00.000Z", "session-1", model, usage(100, 10, 2_000, 1_000, 10_000)), call("2026-11-11T10:00:00.000Z", "session-2", model, usage(100, 10, 0, 0, 5_000)), known];
    const root = await rootWith(records);
    const rowOf = (r: JsonReport, key: string) => r.rows.find((row) => row.key === key)?.cacheSavingsUsd;
    const before = await costsJson(root, "--by", "model");
    expect(rowOf(before, model)).toBe(0); // price unknown: nothing counted
    expect(rowOf(before, "claude-sonnet-4-6")).toBeCloseTo((1_000 * (3 - 0.3)) / 1e6, 9); // the table's price
    await writeFile(
      join(root, "config.yaml"),
      `${configYaml()}prices:\n  ${model}: {input: 3, output: 15, cache_write_5m: 3.75, cache_write_1h: 6, cache_read: 0.3}\n  claude-sonnet-4-6: {input: 2, output: 10, cache_write_5m: 2.5, cache_write_1h: 4, cache_read: 0.1}\n`,
    );
    const saved = (2_000 * (3 - 3.75) + 1_000 * (3 - 6) + 15_000 * (3 - 0.3)) / 1e6;
    const after = await costsJson(root, "--by", "model");
    expect(rowOf(after, model)).toBeCloseTo(saved, 9);
    // config.yaml's price wins over the table, as it does for the calls' cost and the budgets
    expect(rowOf(after, "claude-sonnet-4-6")).toBeCloseTo((1_000 * (2 - 0.1)) / 1e6, 9);
    expect(after.cacheSavingsUsd).toBeCloseTo(saved + (1_000 * (2 - 0.1)) / 1e6, 9);
    // the same through --since (inside a day: that day's lines are read again)
    const since = await costsJson(root, "--by", "model", "--since", "2026-11-10T09:30:00Z");
    expect(rowOf(since, model)).toBeCloseTo(saved, 9);
  });

  it("prints the totals and an aligned table for people", async () => {
    const root = await rootWith(LEDGER);
    const r = await runCli(["costs", "--root", root, "--by", "session"]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("");
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^total: \$0\.\d+ over 5 calls/);
    const header = lines.find((l) => l.startsWith("session "));
    expect(header).toMatch(/session\s+calls\s+input\s+output\s+cache write\s+cache read\s+USD/);
    const row = lines.find((l) => l.startsWith("session-2"));
    expect(row).toMatch(/session-2\s+2\s+2,300\s+150\s+4,096\s+4,096\s+\$0\.\d+/);
  });
});
