/**
 * The cost ledger's totals, kept incrementally: one cell per (UTC day, session, model), and the
 * byte offset of the ledger they cover. Bringing them up to date reads only the ledger's tail
 * since that offset, so the daemon's start, the status page, `relay status` and `relay costs`
 * cost the same with 100,000 lines as with ten.
 *
 * The cells are saved in `state/costs.summary.json` (private, written atomically). The file is a
 * cache: it names the ledger's inode and a fingerprint of the bytes just before its offset, and a
 * ledger that was replaced, truncated or rewritten is summarized again from its start. Only whole
 * lines are taken; a torn last line waits for the newline the next append puts before its record
 * (see ledger.ts), and is then skipped like any invalid line, exactly as `readLedger` does.
 */
import { createHash } from "node:crypto";
import { open, stat } from "node:fs/promises";
import { join } from "node:path";
import * as z from "zod/mini";
import { isErrno, PRIVATE_FILE, readJsonFile, writeAtomic } from "../store/files.js";
import { readLinesBackward } from "../store/lines-backward.js";
import { type CostRow, type CostsBy, type LedgerRecord, LedgerRecordSchema, ledgerPath } from "./ledger.js";
import { counterfactualUsd } from "./cache-counterfactual.js";
import { type ConfiguredPrices, configuredPriceFor, type ModelPrice, priceFor, promptTokensOf } from "./pricing.js";

const FORMAT = "relay-costs-summary/4";
const MARK_BYTES = 64;
/** small reads: 4 MiB chunks left ~60 MB of resident memory behind after a first full read; 256 KiB leave ~10 MB, no slower */
const CHUNK_BYTES = 256 * 1024;
/** the cells are saved again once this many records are not in the saved file */
const SAVE_EVERY_RECORDS = 200;

export const summaryPath = (root: string): string => join(root, "state", "costs.summary.json");

/** The totals of one (UTC day, session, model): a cost row's counts without its key. */
export interface CostCell extends Omit<CostRow, "key"> {
  day: string;
  session: string;
  model: string;
  /** the part of `cacheWriteTokens` written for an hour (the rest for 5 minutes), to price savings at config.yaml's `prices:` */
  cacheWrite1hTokens: number;
  /** what caching saved at the built-in table's prices (0 for a model it does not know) */
  cacheSavingsUsd: number;
  /** the calls recorded with their cache choice and pace, their USD, and what they would have cost under each choice */
  paceCalls: number;
  paceUsd: number;
  noneUsd: number;
  ttl5mUsd: number;
  ttl1hUsd: number;
}

/**
 * A cell as saved: one flat row (a year of ten sessions is a few thousand of them, so the file
 * stays small and is read without a per-field schema).
 */
const cellRow = z.tuple([z.string(), z.string(), z.string(), z.number(), z.number(), z.number(), z.number(), z.number(), z.number(), z.number(), z.number(), z.number(), z.number(), z.number(), z.number(), z.number(), z.number()]);
type CellRow = z.infer<typeof cellRow>;
const toRow = (c: CostCell): CellRow => [c.day, c.session, c.model, c.calls, c.inputTokens, c.outputTokens, c.cacheWriteTokens, c.cacheReadTokens, c.usd, c.unpricedCalls, c.cacheSavingsUsd, c.cacheWrite1hTokens, c.paceCalls, c.paceUsd, c.noneUsd, c.ttl5mUsd, c.ttl1hUsd];
const fromRow = ([day, session, model, calls, inputTokens, outputTokens, cacheWriteTokens, cacheReadTokens, usd, unpricedCalls, cacheSavingsUsd, cacheWrite1hTokens, paceCalls, paceUsd, noneUsd, ttl5mUsd, ttl1hUsd]: CellRow): CostCell => ({
  day,
  session,
  model,
  calls,
  inputTokens,
  outputTokens,
  cacheWriteTokens,
  cacheReadTokens,
  usd,
  unpricedCalls,
  cacheSavingsUsd,
  cacheWrite1hTokens,
  paceCalls,
  paceUsd,
  noneUsd,
  ttl5mUsd,
  ttl1hUsd,
});

const fileSchema = z.object({
  format: z.literal(FORMAT),
  ino: z.number(),
  offset: z.int().check(z.nonnegative()),
  mark: z.string(),
  cells: z.array(cellRow),
  /** the byte offsets of the first record of each day and just after its last, for a --since inside a day */
  dayStart: z.record(z.string(), z.int().check(z.nonnegative())),
  dayEnd: z.record(z.string(), z.int().check(z.nonnegative())),
});

const parsedDay = (iso: string): string => {
  const ms = Date.parse(iso);
  return Number.isNaN(ms) ? "unknown" : new Date(ms).toISOString().slice(0, 10);
};

/**
 * A UTC time as the ledger writes it (`toISOString()`): its day depends on its date alone, since
 * the hour is below 24 and Date.parse truncates a fraction of a second, never rounds it up.
 */
const UTC_TIME = /^(\d{4}-\d{2}-\d{2})T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d+)?Z$/;
/** The day of each date seen (a date V8 takes though it does not exist, like 02-30, rolls over): parsed once, not once a record. */
const dayOfDate = new Map<string, string>();

/** UTC day of an ISO time, "unknown" when it does not parse. */
export const utcDayOf = (iso: string): string => {
  const date = UTC_TIME.exec(iso)?.[1];
  if (date === undefined) return parsedDay(iso);
  let day = dayOfDate.get(date);
  if (day === undefined) {
    day = parsedDay(`${date}T00:00:00Z`);
    if (dayOfDate.size >= 4_096) dayOfDate.clear();
    dayOfDate.set(date, day);
  }
  return day;
};

/**
 * What caching saved on one call: its cached tokens (reads and writes) at the plain input price,
 * minus what they cost. Writes cost more than plain input, so this is negative for a call that
 * wrote a cache no later call read. null when the model's price is unknown.
 */
export function cacheSavingsUsd(rec: Pick<LedgerRecord, "model" | "inputTokens" | "outputTokens" | "cacheReadTokens" | "cacheWrite5mTokens" | "cacheWrite1hTokens">): number | null {
  const rate = priceFor(rec.model, promptTokensOf(rec));
  return rate ? savedAt(rate, rec) : null;
}

/** Cached tokens at `rate`'s plain input price, minus what they cost at its cache prices. */
function savedAt(rate: Readonly<ModelPrice>, t: { cacheReadTokens: number; cacheWrite5mTokens: number; cacheWrite1hTokens: number }): number {
  const cached = t.cacheReadTokens + t.cacheWrite5mTokens + t.cacheWrite1hTokens;
  const paid = t.cacheReadTokens * rate.cacheRead + t.cacheWrite5mTokens * rate.cacheWrite5m + t.cacheWrite1hTokens * rate.cacheWrite1h;
  return (cached * rate.input - paid) / 1_000_000;
}

const NO_PACE = { paceCalls: 0, paceUsd: 0, noneUsd: 0, ttl5mUsd: 0, ttl1hUsd: 0 } as const;
const PACE_KEYS = ["paceCalls", "paceUsd", "noneUsd", "ttl5mUsd", "ttl1hUsd"] as const;

/** On the calls recorded with their pace: what they cost, and what each cache choice would have cost (src/costs/cache-counterfactual.ts). */
export type CacheComparison = Record<(typeof PACE_KEYS)[number], number>;

/**
 * What caching saved in one cell, priced like its calls and the budgets (src/costs/pricing.ts):
 * at config.yaml's `prices:` when they name the model (they take precedence over the table, and
 * are the only price of a model the table does not know), else at the table's prices, as
 * summed when each call was taken.
 */
export function cellSavingsUsd(c: CostCell, configured?: ConfiguredPrices): number {
  const given = configuredPriceFor(c.model, configured);
  if (!given) return c.cacheSavingsUsd;
  return savedAt(given, { cacheReadTokens: c.cacheReadTokens, cacheWrite5mTokens: c.cacheWriteTokens - c.cacheWrite1hTokens, cacheWrite1hTokens: c.cacheWrite1hTokens });
}

/** Cells by (day, session, model): the whole ledger folded, or any part of it. */
export class CostCells {
  readonly map = new Map<string, CostCell>();

  /** Fold one record in; returns its UTC day. */
  add(rec: LedgerRecord): string {
    const day = utcDayOf(rec.at);
    const key = `${day}\u0000${rec.session}\u0000${rec.model}`;
    let cell = this.map.get(key);
    if (!cell) {
      cell = { day, session: rec.session, model: rec.model, calls: 0, inputTokens: 0, outputTokens: 0, cacheWriteTokens: 0, cacheWrite1hTokens: 0, cacheReadTokens: 0, usd: 0, unpricedCalls: 0, cacheSavingsUsd: 0, ...NO_PACE };
      this.map.set(key, cell);
    }
    cell.calls += 1;
    cell.inputTokens += rec.inputTokens;
    cell.outputTokens += rec.outputTokens;
    cell.cacheWriteTokens += rec.cacheWriteTokens;
    cell.cacheWrite1hTokens += rec.cacheWrite1hTokens;
    cell.cacheReadTokens += rec.cacheReadTokens;
    if (rec.usd === null) cell.unpricedCalls += 1;
    else cell.usd += rec.usd;
    cell.cacheSavingsUsd += cacheSavingsUsd(rec) ?? 0;
    const other = counterfactualUsd(rec);
    if (other && rec.usd !== null) {
      cell.paceCalls += 1;
      cell.paceUsd += rec.usd;
      cell.noneUsd += other.none;
      cell.ttl5mUsd += other["5m"];
      cell.ttl1hUsd += other["1h"];
    }
    return day;
  }

  values(): CostCell[] {
    return [...this.map.values()];
  }
}

/** Float sums of many small costs drift in the last bits: keep nano-dollars. */
const tidy = (usd: number): number => Math.round(usd * 1e9) / 1e9;

export interface CellReport {
  totalUsd: number;
  unpricedCalls: number;
  calls: number;
  cacheSavingsUsd: number;
  cacheComparison: CacheComparison;
  rows: (CostRow & { cacheSavingsUsd: number })[];
}

/** Rows by day, session or model, sorted by key, from cells already limited to what counts; savings priced with config.yaml's `prices:` too. */
export function reportOfCells(cells: Iterable<CostCell>, by: CostsBy, configured?: ConfiguredPrices): CellReport {
  const rows = new Map<string, CostRow & { cacheSavingsUsd: number }>();
  let total = 0;
  let unpriced = 0;
  let calls = 0;
  let savings = 0;
  const comparison: CacheComparison = { ...NO_PACE };
  for (const c of cells) {
    for (const k of PACE_KEYS) comparison[k] += c[k];
    const key = by === "day" ? c.day : by === "session" ? c.session : c.model;
    let row = rows.get(key);
    if (!row) {
      row = { key, calls: 0, inputTokens: 0, outputTokens: 0, cacheWriteTokens: 0, cacheReadTokens: 0, usd: 0, unpricedCalls: 0, cacheSavingsUsd: 0 };
      rows.set(key, row);
    }
    row.calls += c.calls;
    row.inputTokens += c.inputTokens;
    row.outputTokens += c.outputTokens;
    row.cacheWriteTokens += c.cacheWriteTokens;
    row.cacheReadTokens += c.cacheReadTokens;
    row.usd += c.usd;
    row.unpricedCalls += c.unpricedCalls;
    const saved = cellSavingsUsd(c, configured);
    row.cacheSavingsUsd += saved;
    total += c.usd;
    unpriced += c.unpricedCalls;
    calls += c.calls;
    savings += saved;
  }
  const sorted = [...rows.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  for (const row of sorted) {
    row.usd = tidy(row.usd);
    row.cacheSavingsUsd = tidy(row.cacheSavingsUsd);
  }
  for (const k of PACE_KEYS) comparison[k] = tidy(comparison[k]);
  return { totalUsd: tidy(total), unpricedCalls: unpriced, calls, cacheSavingsUsd: tidy(savings), cacheComparison: comparison, rows: sorted };
}

/** One valid record per whole line of `buf` (from `base` in the file: the line spans [at, end)); returns the bytes consumed. */
function foldLines(buf: Buffer, base: number, onRecord: (rec: LedgerRecord, at: number, end: number) => void): number {
  let start = 0;
  for (let nl = buf.indexOf(0x0a, start); nl !== -1; nl = buf.indexOf(0x0a, start)) {
    if (nl > start) {
      const line = buf.toString("utf8", start, nl);
      if (line.trim() !== "") {
        try {
          const parsed = LedgerRecordSchema.safeParse(JSON.parse(line));
          if (parsed.success) onRecord(parsed.data, base + start, base + nl + 1);
        } catch {
          // a torn or foreign line: skipped, as readLedger skips it
        }
      }
    }
    start = nl + 1;
  }
  return start;
}

/**
 * Read [from, to) of the ledger in chunks, folding whole lines; returns the offset after the last
 * whole line. One buffer serves every chunk (an unfinished line moves to its start; a line longer
 * than the buffer doubles it), rather than two fresh ones a chunk.
 */
async function readRange(file: string, from: number, to: number, onRecord: (rec: LedgerRecord, at: number, end: number) => void): Promise<number> {
  const fh = await open(file, "r");
  try {
    let buf = Buffer.allocUnsafe(Math.min(CHUNK_BYTES, Math.max(1, to - from)));
    let kept = 0; // bytes of an unfinished line at the buffer's start
    let offset = from;
    let pos = from;
    while (pos < to) {
      if (kept === buf.length) {
        const bigger = Buffer.allocUnsafe(buf.length * 2);
        buf.copy(bigger, 0, 0, kept);
        buf = bigger;
      }
      const { bytesRead } = await fh.read(buf, kept, Math.min(buf.length - kept, to - pos), pos);
      if (bytesRead === 0) break;
      pos += bytesRead;
      const filled = kept + bytesRead;
      const used = foldLines(buf.subarray(0, filled), offset, onRecord);
      offset += used;
      buf.copyWithin(0, used, filled);
      kept = filled - used;
    }
    return offset;
  } finally {
    await fh.close();
  }
}

async function markAt(file: string, offset: number): Promise<string> {
  if (offset === 0) return "";
  const len = Math.min(MARK_BYTES, offset);
  const fh = await open(file, "r");
  try {
    const buf = Buffer.alloc(len);
    const { bytesRead } = await fh.read(buf, 0, len, offset - len);
    return createHash("sha256").update(buf.subarray(0, bytesRead)).digest("hex").slice(0, 32);
  } finally {
    await fh.close();
  }
}

/** The ledger's totals, brought up to date by reading its tail. */
export class LedgerSummary {
  private cells = new CostCells();
  private dayStart: Record<string, number> = {};
  private dayEnd: Record<string, number> = {};
  private ino = -1;
  private offset = 0;
  private savedOffset = -1;
  private unsaved = 0;
  private totalsCache: { totalUsd: number; calls: number; unpricedCalls: number } | null = null;

  private constructor(private readonly root: string) {}

  /** The saved summary (when it still fits the ledger), brought up to date. */
  static async load(root: string): Promise<LedgerSummary> {
    const summary = await LedgerSummary.open(root);
    await summary.refresh();
    return summary;
  }

  /**
   * The saved summary as it is, not yet brought up to date: the first `refresh()` checks it
   * against the ledger and reads what it lacks (the whole ledger when there is no summary yet,
   * which `relay run` does after it is ready, not before).
   */
  static async open(root: string): Promise<LedgerSummary> {
    const summary = new LedgerSummary(root);
    await summary.takeSaved();
    return summary;
  }

  /** Start again from the saved file (state/costs.summary.json), e.g. once another thread has brought it up to date. */
  reopen(): Promise<void> {
    return this.inTurn(async () => {
      this.reset();
      this.ino = -1;
      this.savedOffset = -1;
      this.unsaved = 0;
      this.pendingMark = null;
      await this.takeSaved();
    });
  }

  private async takeSaved(): Promise<void> {
    const saved = await readJsonFile(summaryPath(this.root), fileSchema).catch(() => null);
    if (!saved?.ok) return;
    for (const row of saved.value.cells) {
      const c = fromRow(row);
      this.cells.map.set(`${c.day}\u0000${c.session}\u0000${c.model}`, c);
    }
    this.dayStart = { ...saved.value.dayStart };
    this.dayEnd = { ...saved.value.dayEnd };
    this.ino = saved.value.ino;
    this.offset = saved.value.offset;
    this.savedOffset = saved.value.offset;
    this.pendingMark = saved.value.mark;
  }

  /** Bytes of the ledger the next refresh would read: all of it when the saved summary is not this ledger's (the fingerprint is checked by the refresh itself). */
  async unreadBytes(): Promise<number> {
    try {
      const st = await stat(ledgerPath(this.root));
      return st.ino === this.ino && st.size >= this.offset ? st.size - this.offset : st.size;
    } catch (err) {
      if (isErrno(err, "ENOENT")) return 0;
      throw err;
    }
  }

  /** the fingerprint the saved file claims, checked once by the first refresh */
  private pendingMark: string | null = null;

  private reset(): void {
    this.cells = new CostCells();
    this.dayStart = {};
    this.dayEnd = {};
    this.offset = 0;
    this.totalsCache = null;
  }

  private refreshing: Promise<void> = Promise.resolve();

  /** Take the records appended since the last look (one stat when nothing changed); one at a time, so no range is taken twice. */
  refresh(): Promise<void> {
    return this.inTurn(() => this.takeTail());
  }

  /** Refreshes and saves run one at a time: a save in the middle of a read would write cells past the offset it names. */
  private inTurn(work: () => Promise<void>): Promise<void> {
    const next = this.refreshing.then(work);
    this.refreshing = next.catch(() => undefined);
    return next;
  }

  private async takeTail(): Promise<void> {
    const file = ledgerPath(this.root);
    let st: Awaited<ReturnType<typeof stat>>;
    try {
      st = await stat(file);
    } catch (err) {
      if (!isErrno(err, "ENOENT")) throw err;
      if (this.offset !== 0 || this.cells.map.size > 0) this.reset();
      this.ino = -1;
      return;
    }
    let replaced = st.ino !== this.ino || st.size < this.offset;
    if (!replaced && this.pendingMark !== null) replaced = (await markAt(file, this.offset)) !== this.pendingMark;
    this.pendingMark = null;
    if (replaced) {
      this.reset();
      this.savedOffset = -1;
      this.ino = st.ino;
    }
    if (st.size === this.offset) return;
    const before = this.offset;
    this.offset = await readRange(file, this.offset, st.size, (rec, at, end) => {
      const day = this.cells.add(rec);
      const first = this.dayStart[day];
      if (first === undefined || at < first) this.dayStart[day] = at;
      this.dayEnd[day] = Math.max(this.dayEnd[day] ?? 0, end);
      this.unsaved += 1;
    });
    if (this.offset !== before) this.totalsCache = null;
  }

  /** Whether the saved file is behind by enough records (or bytes) to be worth rewriting. */
  get worthSaving(): boolean {
    return this.offset !== this.savedOffset && (this.savedOffset < 0 || this.unsaved >= SAVE_EVERY_RECORDS);
  }

  /** Save the cells (best effort: the summary is a cache of the ledger), once no refresh is under way. */
  save(): Promise<void> {
    return this.inTurn(() => this.saveNow());
  }

  private async saveNow(): Promise<void> {
    if (this.offset === this.savedOffset || this.ino < 0) return;
    const file = ledgerPath(this.root);
    const body = { format: FORMAT, ino: this.ino, offset: this.offset, mark: await markAt(file, this.offset), cells: this.cells.values().map(toRow), dayStart: this.dayStart, dayEnd: this.dayEnd };
    await writeAtomic(summaryPath(this.root), `${JSON.stringify(body)}\n`, { durable: false, mode: PRIVATE_FILE });
    this.savedOffset = this.offset;
    this.unsaved = 0;
  }

  allCells(): CostCell[] {
    return this.cells.values();
  }

  totals(): { totalUsd: number; calls: number; unpricedCalls: number } {
    if (this.totalsCache) return { ...this.totalsCache };
    const r = reportOfCells(this.cells.values(), "day");
    this.totalsCache = { totalUsd: r.totalUsd, calls: r.calls, unpricedCalls: r.unpricedCalls };
    return { ...this.totalsCache };
  }

  /** USD of one UTC day (and one session), from the cells. */
  spentOn(day: string, session?: string): number {
    let usd = 0;
    for (const c of this.cells.map.values()) if (c.day === day && (session === undefined || c.session === session)) usd += c.usd;
    return tidy(usd);
  }

  /**
   * The report by day, session or model from `since` on (inclusive). A `since` at 00:00 UTC is
   * answered from the cells alone; one inside a day also reads that day's records (the bytes
   * from its first record to just after its last: one day's lines), since cells do not know the hour.
   */
  async report(by: CostsBy, since?: Date, configured?: ConfiguredPrices): Promise<CellReport> {
    if (since === undefined) return reportOfCells(this.cells.values(), by, configured);
    const sinceMs = since.getTime();
    const sinceDay = new Date(sinceMs).toISOString().slice(0, 10);
    const whole = this.cells.values().filter((c) => c.day > sinceDay && c.day !== "unknown");
    if (sinceMs === Date.parse(`${sinceDay}T00:00:00.000Z`)) return reportOfCells([...whole, ...this.cells.values().filter((c) => c.day === sinceDay)], by, configured);
    const partial = new CostCells();
    const from = this.dayStart[sinceDay];
    const to = Math.min(this.offset, this.dayEnd[sinceDay] ?? this.offset);
    if (from !== undefined && from < to) {
      await readRange(ledgerPath(this.root), from, to, (rec) => {
        if (utcDayOf(rec.at) === sinceDay && Date.parse(rec.at) >= sinceMs) partial.add(rec);
      });
    }
    return reportOfCells([...whole, ...partial.values()], by, configured);
  }
}

/**
 * The newest `limit` records, newest first, read backwards from the ledger's end (a bounded
 * read however long the ledger is).
 */
export async function newestRecords(root: string, limit: number): Promise<LedgerRecord[]> {
  const out: LedgerRecord[] = [];
  if (limit <= 0) return out;
  await readLinesBackward(ledgerPath(root), (line) => {
    try {
      const parsed = LedgerRecordSchema.safeParse(JSON.parse(line));
      if (parsed.success) out.push(parsed.data);
    } catch {
      // torn or foreign line
    }
    return out.length < limit;
  });
  return out;
}
