import { appendFile, mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  appendLedger,
  ledgerPath,
  makeLedgerRecord,
  readLedger,
  spentSince,
  summarize,
  type LedgerRecord,
} from "../src/costs/ledger.js";

let root: string;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "relay-ledger-"));
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

const rec = (over: Partial<LedgerRecord> = {}): LedgerRecord => ({
  at: "2026-11-10T12:00:00.000Z",
  session: "s1",
  conversation: "c1",
  model: "claude-sonnet-4-6",
  purpose: "reply",
  inputTokens: 100,
  outputTokens: 50,
  cacheWriteTokens: 30,
  cacheReadTokens: 20,
  cacheWrite5mTokens: 10,
  cacheWrite1hTokens: 20,
  usd: 0.01,
  latencyMs: 1234,
  ...over,
});

describe("ledgerPath", () => {
  it("is state/costs.jsonl under the root", () => {
    expect(ledgerPath("/srv/relay")).toBe(join("/srv/relay", "state", "costs.jsonl"));
  });
});

describe("append and read", () => {
  it("reads nothing from a root without a ledger", async () => {
    expect(await readLedger(root)).toEqual([]);
  });

  it("round-trips records, one line each, in order", async () => {
    const a = rec({ session: "a", usd: 0.5 });
    const b = rec({ session: "b", usd: null, model: "claude-opus-4-1", purpose: "probe" });
    await appendLedger(root, a);
    await appendLedger(root, b);
    expect(await readLedger(root)).toEqual([a, b]);
    const text = await readFile(ledgerPath(root), "utf8");
    expect(text.split("\n")).toHaveLength(3);
    expect(text.endsWith("\n")).toBe(true);
    expect(JSON.parse(text.split("\n")[1] ?? "")).toEqual(b);
  });

  it("skips a torn last line and never throws", async () => {
    await appendLedger(root, rec({ session: "whole" }));
    const line = JSON.stringify(rec({ session: "torn" }));
    await appendFile(ledgerPath(root), line.slice(0, line.length - 7));
    const got = await readLedger(root);
    expect(got.map((r) => r.session)).toEqual(["whole"]);
  });

  it("starts the next append on a new line after a torn tail, so the new record survives", async () => {
    await appendLedger(root, rec({ session: "one" }));
    await appendFile(ledgerPath(root), '{"at":"2026-11-10T1');
    await appendLedger(root, rec({ session: "two" }));
    expect((await readLedger(root)).map((r) => r.session)).toEqual(["one", "two"]);
  });

  it("skips lines that are JSON but not records, and blank lines", async () => {
    const good = rec();
    await appendLedger(root, good);
    await appendFile(
      ledgerPath(root),
      ["", "[]", "null", JSON.stringify({ ...good, usd: "0.01" }), JSON.stringify({ ...good, purpose: "other" }), JSON.stringify({ ...good, at: "yesterday" }), "\u0000\u0000", ""].join("\n"),
    );
    await appendLedger(root, rec({ session: "after" }));
    expect((await readLedger(root)).map((r) => r.session)).toEqual(["s1", "after"]);
  });

  it("refuses to write an invalid record", async () => {
    await expect(appendLedger(root, rec({ inputTokens: -1 }))).rejects.toThrow();
    await expect(appendLedger(root, rec({ usd: Number.NaN }))).rejects.toThrow();
    await expect(stat(ledgerPath(root))).rejects.toThrow();
  });
});

describe("makeLedgerRecord", () => {
  it("derives the cache total and the price", () => {
    const r = makeLedgerRecord({
      at: new Date("2026-11-10T08:00:00Z"),
      session: "s",
      conversation: "c",
      model: "claude-sonnet-4-6",
      purpose: "summary",
      usage: { inputTokens: 1_000_000, outputTokens: 0, cacheWrite5mTokens: 1_000_000, cacheWrite1hTokens: 1_000_000, cacheReadTokens: 0 },
      latencyMs: 5,
    });
    expect(r.at).toBe("2026-11-10T08:00:00.000Z");
    expect(r.cacheWriteTokens).toBe(2_000_000);
    expect(r.usd).toBeCloseTo(3 + 3.75 + 6, 10);
    const unknown = makeLedgerRecord({ session: "s", conversation: "c", purpose: "reply", latencyMs: 1, model: "claude-opus-4", usage: { inputTokens: 1, outputTokens: 1, cacheWrite5mTokens: 0, cacheWrite1hTokens: 0, cacheReadTokens: 0 } });
    expect(unknown.usd).toBeNull();
  });
});

describe("summarize", () => {
  const records: LedgerRecord[] = [
    rec({ at: "2026-11-08T23:59:59.999Z", session: "alpha", model: "claude-sonnet-4-6", usd: 0.1234, inputTokens: 1, outputTokens: 2, cacheWriteTokens: 3, cacheReadTokens: 4 }),
    rec({ at: "2026-11-09T00:00:00.000Z", session: "beta", model: "claude-opus-5-5", usd: 1.1, inputTokens: 10, outputTokens: 20, cacheWriteTokens: 30, cacheReadTokens: 40 }),
    rec({ at: "2026-11-09T13:30:00.000Z", session: "alpha", model: "claude-opus-5-5", usd: 0.2, inputTokens: 100, outputTokens: 200, cacheWriteTokens: 300, cacheReadTokens: 400 }),
    rec({ at: "2026-11-10T08:00:00.000Z", session: "beta", model: "claude-opus-4-1", usd: null, inputTokens: 1000, outputTokens: 2000, cacheWriteTokens: 3000, cacheReadTokens: 4000 }),
    rec({ at: "2026-11-10T09:00:00.000Z", session: "alpha", model: "claude-sonnet-4-6", usd: 0.0066, inputTokens: 5, outputTokens: 5, cacheWriteTokens: 5, cacheReadTokens: 5 }),
  ];

  it("groups by UTC day, sorted, with unpriced calls counted apart", () => {
    const r = summarize([...records].reverse(), "day");
    expect(r.rows.map((x) => x.key)).toEqual(["2026-11-08", "2026-11-09", "2026-11-10"]);
    expect(r.rows.map((x) => x.calls)).toEqual([1, 2, 2]);
    expect(r.rows.map((x) => x.unpricedCalls)).toEqual([0, 0, 1]);
    expect(r.rows[1]).toEqual({ key: "2026-11-09", calls: 2, inputTokens: 110, outputTokens: 220, cacheWriteTokens: 330, cacheReadTokens: 440, usd: 1.3, unpricedCalls: 0 });
    expect(r.rows[2]?.usd).toBe(0.0066);
    expect(r.unpricedCalls).toBe(1);
    expect(r.totalUsd).toBe(1.43);
  });

  it("groups by session and by model", () => {
    const bySession = summarize(records, "session");
    expect(bySession.rows.map((x) => [x.key, x.calls, x.usd, x.unpricedCalls])).toEqual([
      ["alpha", 3, 0.33, 0],
      ["beta", 2, 1.1, 1],
    ]);
    const byModel = summarize(records, "model");
    expect(byModel.rows.map((x) => [x.key, x.calls, x.usd, x.unpricedCalls])).toEqual([
      ["claude-opus-4-1", 1, 0, 1],
      ["claude-opus-5-5", 2, 1.3, 0],
      ["claude-sonnet-4-6", 2, 0.13, 0],
    ]);
    expect(byModel.rows.reduce((s, x) => s + x.inputTokens, 0)).toBe(1116);
  });

  it("keeps only calls at or after since", () => {
    const r = summarize(records, "model", { since: new Date("2026-11-09T00:00:00.000Z") });
    expect(r.rows.map((x) => [x.key, x.calls])).toEqual([
      ["claude-opus-4-1", 1],
      ["claude-opus-5-5", 2],
      ["claude-sonnet-4-6", 1],
    ]);
    expect(r.totalUsd).toBe(1.3066);
    expect(summarize(records, "day", { since: new Date("2026-11-11T00:00:00Z") })).toEqual({ totalUsd: 0, unpricedCalls: 0, rows: [] });
  });

  it("totals many small calls to the cent", () => {
    const many = Array.from({ length: 10_000 }, (_, i) => rec({ at: new Date(Date.UTC(2026, 10, 1) + i * 60_000).toISOString(), usd: 0.0001 + (i % 3) * 0.00001 }));
    // 10,000 x 0.0001 = 1; (i % 3) sums 0+1+2 over 3,333 full cycles plus i = 9,999 (0): 9,999 x 0.00001 = 0.09999
    const r = summarize(many, "day");
    expect(Math.round(r.totalUsd * 100)).toBe(110);
    expect(r.totalUsd).toBeCloseTo(1.09999, 9);
    expect(r.rows.reduce((s, x) => s + x.calls, 0)).toBe(10_000);
    expect(r.rows.map((x) => x.key)).toEqual(["2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04", "2026-11-05", "2026-11-06", "2026-11-07"]);
  });

  it("can key days in local time", () => {
    const saved = process.env.TZ;
    process.env.TZ = "Pacific/Auckland"; // UTC+13 in November
    try {
      const at = "2026-11-08T23:30:00.000Z";
      expect(new Date(at).getDate()).toBe(9); // the zone took effect
      expect(summarize([rec({ at })], "day", { timeZone: "local" }).rows[0]?.key).toBe("2026-11-09");
      expect(summarize([rec({ at })], "day", { timeZone: "UTC" }).rows[0]?.key).toBe("2026-11-08");
      expect(summarize([rec({ at })], "day").rows[0]?.key).toBe("2026-11-08");
    } finally {
      if (saved === undefined) delete process.env.TZ;
      else process.env.TZ = saved;
    }
  });
});

describe("spentSince", () => {
  const records: LedgerRecord[] = [
    rec({ at: "2026-11-09T23:59:59.000Z", session: "a", usd: 5 }),
    rec({ at: "2026-11-10T00:00:00.000Z", session: "a", usd: 0.25 }),
    rec({ at: "2026-11-10T10:00:00.000Z", session: "b", usd: 0.5 }),
    rec({ at: "2026-11-10T11:00:00.000Z", session: "b", usd: null }),
  ];

  it("sums from since, inclusive, optionally for one session", () => {
    const since = new Date("2026-11-10T00:00:00.000Z");
    expect(spentSince(records, since)).toBe(0.75);
    expect(spentSince(records, since, "a")).toBe(0.25);
    expect(spentSince(records, since, "b")).toBe(0.5);
    expect(spentSince(records, since, "nobody")).toBe(0);
    expect(spentSince(records, new Date(0))).toBe(5.75);
  });
});

describe("the file on disk", () => {
  it("survives a read-append-read cycle across many records", async () => {
    for (let i = 0; i < 25; i++) await appendLedger(root, rec({ session: `s${i}`, usd: 0.01 }));
    const all = await readLedger(root);
    expect(all).toHaveLength(25);
    expect(spentSince(all, new Date(0))).toBe(0.25);
  });
});
