// The ledger's incremental summary: the same totals as reading every line, from the tail alone.
import { existsSync } from "node:fs";
import { appendFile, mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { appendLedger, ledgerPath, makeLedgerRecord, readLedger, summarize } from "../../src/costs/ledger.js";
import { LedgerSummary, newestRecords, summaryPath, utcDayOf } from "../../src/costs/ledger-summary.js";
import { LEDGER_WORKER, summarizeAside } from "../../src/costs/ledger-aside.js";

const roots: string[] = [];
afterAll(async () => {
  for (const r of roots) await rm(r, { recursive: true, force: true });
});

async function root(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "relay-summary-"));
  roots.push(dir);
  return dir;
}

const call = (at: string, session = "s1", model = "claude-sonnet-4-6", input = 1_000) =>
  makeLedgerRecord({ at: new Date(at), session, conversation: "shared", model, purpose: "reply", usage: { inputTokens: input, outputTokens: 100, cacheWrite5mTokens: 50, cacheWrite1hTokens: 0, cacheReadTokens: 2_000 }, latencyMs: 10 });

describe("the ledger summary", () => {
  it("gives the same rows as reading every line, by day, session and model", async () => {
    const dir = await root();
    const days = ["2026-11-20T10:00:00Z", "2026-11-21T23:59:59Z", "2026-11-22T00:00:00Z", "2026-11-22T12:30:00Z"];
    for (const [i, at] of days.entries()) await appendLedger(dir, call(at, i % 2 ? "s2" : "s1", i === 3 ? "claude-unknown-9" : "claude-sonnet-4-6", 1_000 * (i + 1)));
    const summary = await LedgerSummary.load(dir);
    const records = await readLedger(dir);
    for (const by of ["day", "session", "model"] as const) {
      const cells = await summary.report(by);
      const full = summarize(records, by);
      expect(cells.rows.map(({ cacheSavingsUsd: _, ...row }) => row)).toEqual(full.rows);
      expect(cells.totalUsd).toBe(full.totalUsd);
    }
    expect(summary.totals()).toEqual({ totalUsd: summarize(records, "day").totalUsd, calls: 4, unpricedCalls: 1 });
  });

  it("answers --since at midnight and inside a day exactly like the full read", async () => {
    const dir = await root();
    for (const at of ["2026-11-20T10:00:00Z", "2026-11-21T08:00:00Z", "2026-11-21T09:00:00Z", "2026-11-21T18:00:00Z", "2026-11-22T01:00:00Z"]) await appendLedger(dir, call(at));
    const summary = await LedgerSummary.load(dir);
    const records = await readLedger(dir);
    for (const since of ["2026-11-21T00:00:00Z", "2026-11-21T09:00:00Z", "2026-11-21T09:00:00.001Z", "2026-11-23T00:00:00Z"]) {
      const cells = await summary.report("day", new Date(since));
      expect(cells.rows.map(({ cacheSavingsUsd: _, ...row }) => row)).toEqual(summarize(records, "day", { since: new Date(since) }).rows);
    }
  });

  it("reads only the tail after a restart: the saved summary covers the rest", async () => {
    const dir = await root();
    for (let i = 0; i < 50; i++) await appendLedger(dir, call(`2026-11-21T10:${String(i).padStart(2, "0")}:00Z`));
    const first = await LedgerSummary.load(dir);
    await first.save();
    const saved = JSON.parse(await readFile(summaryPath(dir), "utf8")) as { offset: number };
    expect(saved.offset).toBe((await stat(ledgerPath(dir))).size);
    // Lines before the saved offset are never read again: corrupting their counts (keeping the
    // fingerprint bytes just before the offset) leaves the totals as saved.
    const text = await readFile(ledgerPath(dir), "utf8");
    await writeFile(ledgerPath(dir), text.replace('"inputTokens":1000', '"inputTokens":9999'));
    await appendLedger(dir, call("2026-11-22T10:00:00Z", "s2"));
    const second = await LedgerSummary.load(dir);
    expect(second.totals().calls).toBe(51);
    expect((await second.report("session")).rows.map((r) => [r.key, r.calls, r.inputTokens])).toEqual([
      ["s1", 50, 50_000],
      ["s2", 1, 1_000],
    ]);
  });

  it("starts over when the ledger is replaced, truncated or rewritten before its offset", async () => {
    const dir = await root();
    for (let i = 0; i < 3; i++) await appendLedger(dir, call(`2026-11-21T10:0${i}:00Z`));
    const s = await LedgerSummary.load(dir);
    await s.save();
    await writeFile(ledgerPath(dir), `${JSON.stringify(call("2026-11-25T10:00:00Z", "other"))}\n`);
    const again = await LedgerSummary.load(dir);
    expect((await again.report("session")).rows.map((r) => [r.key, r.calls])).toEqual([["other", 1]]);
  });

  it("skips a torn last line until the next record's newline, then skips it for good", async () => {
    const dir = await root();
    await appendLedger(dir, call("2026-11-21T10:00:00Z"));
    await appendFile(ledgerPath(dir), '{"at":"2026-11-21T10:01:00Z","sess');
    const s = await LedgerSummary.load(dir);
    expect(s.totals().calls).toBe(1);
    await appendLedger(dir, call("2026-11-21T10:02:00Z"));
    await s.refresh();
    expect(s.totals().calls).toBe(2);
    expect((await readLedger(dir)).length).toBe(2);
  });

  it("takes each appended line once when refreshed from several places at once", async () => {
    const dir = await root();
    await appendLedger(dir, call("2026-11-21T10:00:00Z"));
    const s = await LedgerSummary.load(dir);
    for (let i = 1; i <= 20; i++) await appendLedger(dir, call(`2026-11-21T10:${String(i).padStart(2, "0")}:00Z`));
    await Promise.all([s.refresh(), s.refresh(), s.refresh()]);
    expect(s.totals().calls).toBe(21);
  });

  it("opens its saved file without reading the ledger: the first refresh reads it", async () => {
    const dir = await root();
    for (let i = 0; i < 20; i++) await appendLedger(dir, call(`2026-11-21T10:${String(i).padStart(2, "0")}:00Z`));
    const opened = await LedgerSummary.open(dir);
    expect(opened.totals().calls).toBe(0);
    await opened.refresh();
    expect(opened.totals()).toEqual((await LedgerSummary.load(dir)).totals());
  });

  it("says how much of the ledger its next refresh reads: all of it with no summary, the tail after a saved one", async () => {
    const dir = await root();
    const opened = await LedgerSummary.open(dir);
    expect(await opened.unreadBytes()).toBe(0);
    for (let i = 0; i < 10; i++) await appendLedger(dir, call(`2026-11-21T10:${String(i).padStart(2, "0")}:00Z`));
    const size = (await stat(ledgerPath(dir))).size;
    expect(await opened.unreadBytes()).toBe(size);
    await opened.refresh();
    await opened.save();
    await appendLedger(dir, call("2026-11-22T10:00:00Z"));
    const tail = (await stat(ledgerPath(dir))).size - size;
    expect(await (await LedgerSummary.open(dir)).unreadBytes()).toBe(tail);
  });

  it("reopens from the saved file another process brought up to date, then reads only the tail after it", async () => {
    const dir = await root();
    for (let i = 0; i < 30; i++) await appendLedger(dir, call(`2026-11-21T10:${String(i).padStart(2, "0")}:00Z`));
    const relay = await LedgerSummary.open(dir);
    const other = await LedgerSummary.load(dir);
    await other.save();
    await relay.reopen();
    expect(await relay.unreadBytes()).toBe(0);
    expect(relay.totals()).toEqual(other.totals());
    await appendLedger(dir, call("2026-11-22T10:00:00Z", "s2"));
    await relay.refresh();
    expect(relay.totals().calls).toBe(31);
  });

  it("is summarized and saved by the ledger worker, a process of its own (src/costs/ledger-aside.ts)", async () => {
    expect(existsSync(LEDGER_WORKER), "run `npm run build` first").toBe(true);
    const dir = await root();
    for (let i = 0; i < 40; i++) await appendLedger(dir, call(`2026-11-21T10:${String(i).padStart(2, "0")}:00Z`, i % 2 ? "s2" : "s1"));
    expect(await summarizeAside(dir)).toEqual({ saved: true });
    const saved = await LedgerSummary.open(dir);
    expect(await saved.unreadBytes()).toBe(0);
    expect(saved.totals()).toEqual((await LedgerSummary.load(dir)).totals());
    // a ledger it cannot read: the answer says why, nothing is saved
    const broken = await root();
    await mkdir(join(broken, "state", "costs.jsonl"), { recursive: true });
    const reply = await summarizeAside(broken);
    expect(reply.saved).toBe(false);
    expect(reply.saved ? "" : reply.error).toMatch(/EISDIR|directory/);
  });

  it("saves only between reads: a save asked for while the ledger is read names the cells it wrote", async () => {
    const dir = await root();
    // past one read chunk (256 KiB), so the read awaits between chunks and the save could land inside it
    const lines = Array.from({ length: 3_000 }, (_, i) => JSON.stringify(call(new Date(Date.parse("2026-11-20T00:00:00Z") + i * 60_000).toISOString())));
    await mkdir(join(dir, "state"), { recursive: true });
    await writeFile(ledgerPath(dir), `${lines.join("\n")}\n`);
    const summary = await LedgerSummary.open(dir);
    const reading = summary.refresh();
    while (summary.allCells().length === 0) await new Promise((r) => setImmediate(r)); // the read is under way
    const saving = summary.save();
    await Promise.all([reading, saving]);
    const again = await LedgerSummary.load(dir);
    expect(again.totals()).toEqual(summary.totals());
    expect(again.totals().calls).toBe(3_000);
    const saved = JSON.parse(await readFile(summaryPath(dir), "utf8")) as { offset: number };
    expect(saved.offset).toBe((await stat(ledgerPath(dir))).size);
  });

  it("reads the newest calls backwards from the end, newest first", async () => {
    const dir = await root();
    for (let i = 0; i < 30; i++) await appendLedger(dir, call(`2026-11-21T10:${String(i).padStart(2, "0")}:00Z`, `s${i}`));
    expect((await newestRecords(dir, 3)).map((r) => r.session)).toEqual(["s29", "s28", "s27"]);
    expect(await newestRecords(dir, 100)).toHaveLength(30);
    expect(await newestRecords(join(dir, "nowhere"), 5)).toEqual([]);
  });

  it("is private: state/costs.summary.json and the ledger are created 0600", async () => {
    const dir = await root();
    await appendLedger(dir, call("2026-11-21T10:00:00Z"));
    const s = await LedgerSummary.load(dir);
    await s.save();
    expect((await stat(summaryPath(dir))).mode & 0o777).toBe(0o600);
    expect((await stat(ledgerPath(dir))).mode & 0o777).toBe(0o600);
  });
});

describe("the UTC day of a ledger time", () => {
  /** The day as Date.parse and toISOString give it: what utcDayOf answered before it kept each date's day. */
  const parsedDay = (iso: string): string => {
    const ms = Date.parse(iso);
    return Number.isNaN(ms) ? "unknown" : new Date(ms).toISOString().slice(0, 10);
  };
  const two = (max: number) => fc.integer({ min: 0, max }).map((n) => String(n).padStart(2, "0"));

  it("is the day Date.parse gives, for every time the ledger writes and for dates that do not exist (02-30 rolls over)", () => {
    const time = fc
      .tuple(fc.integer({ min: 1970, max: 2200 }), fc.integer({ min: 1, max: 12 }), fc.integer({ min: 1, max: 31 }), two(23), two(59), two(59), fc.option(fc.stringMatching(/^[0-9]{1,9}$/)))
      .map(([y, mo, d, h, mi, s, frac]) => `${y}-${String(mo).padStart(2, "0")}-${String(d).padStart(2, "0")}T${h}:${mi}:${s}${frac === null ? "" : `.${frac}`}Z`);
    fc.assert(
      fc.property(time, (iso) => {
        expect(utcDayOf(iso)).toBe(parsedDay(iso));
        expect(utcDayOf(iso)).toBe(parsedDay(iso));
      }),
      { numRuns: 2_000 },
    );
  });

  it("parses anything else as before: offsets, the last millisecond, hour 24, garbage", () => {
    for (const iso of ["2026-11-29T23:59:59.9999Z", "2026-11-29T23:30:00-02:00", "2026-11-30T00:30:00+01:00", "2026-11-29T24:00:00Z", "2026-02-30T12:00:00Z", "2024-02-29T00:00:00Z", "2026-13-01T00:00:00Z", "yesterday", ""]) {
      expect(utcDayOf(iso), iso).toBe(parsedDay(iso));
    }
    expect(utcDayOf("2026-11-29T23:30:00-02:00")).toBe("2026-11-30");
    expect(utcDayOf("yesterday")).toBe("unknown");
  });
});
