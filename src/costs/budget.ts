// Daily spending limits (CONTRACT §10). Days are UTC days, like `relay costs --by day`.
import type { Failure } from "../../machines/types.js";
import type { RelayConfig } from "../config/config.js";
import type { LedgerRecord } from "./ledger.js";
import { priceFor } from "./pricing.js";

const dayOf = (ms: number) => new Date(ms).toISOString().slice(0, 10);

const DAYS_KEPT = 8;

/** A (UTC day, session) total from the ledger's summary. */
export interface SpentCell {
  day: string;
  session: string;
  usd: number;
}

/**
 * Today's spend, kept in memory: seeded from the ledger's summary at start, plus every call since.
 * "Today" is the later of the clock's UTC day and the latest day a call was recorded on, so a
 * clock stepped back (across midnight too) never forgets what was spent: days come from the
 * ledger, not from the clock alone.
 */
export class SpendTracker {
  /** UTC day → total and by session, for the last few days seen */
  private readonly days = new Map<string, { total: number; bySession: Map<string, number> }>();
  private latestDay = "";
  /** what the calls in flight may cost at most, so parallel calls cannot together overspend */
  private readonly reserved = new Map<number, { session: string; usd: number }>();
  private nextReservation = 0;

  constructor(
    private readonly now: () => number,
    records: Pick<LedgerRecord, "at" | "session" | "usd">[] = [],
  ) {
    for (const r of records) this.add(r);
  }

  /** Resolves once the spend is seeded from the ledger; rejects when the ledger could not be read. */
  private seeded: Promise<void> = Promise.resolve();

  /** Seeded from the ledger's summary: each (day, session) cell's spend. */
  static fromCells(now: () => number, cells: Iterable<SpentCell>): SpendTracker {
    const spend = new SpendTracker(now);
    spend.seed(cells);
    return spend;
  }

  /**
   * Seeded once `cells` arrive (`relay run` summarizes a ledger that has no summary yet after it
   * is ready): until then `settled()` waits, and every budget check and reservation waits on it.
   */
  static seededLater(now: () => number, cells: Promise<Iterable<SpentCell>>): SpendTracker {
    const spend = new SpendTracker(now);
    spend.seeded = cells.then((c) => spend.seed(c));
    spend.seeded.catch(() => undefined); // reported by whoever awaits settled()
    return spend;
  }

  /** Resolves once today's spend counts every call in the ledger (at once for a tracker seeded when made). */
  settled(): Promise<void> {
    return this.seeded;
  }

  private seed(cells: Iterable<SpentCell>): void {
    const recent = [...cells].filter((c) => /^\d{4}-\d{2}-\d{2}$/.test(c.day)).sort((a, b) => (a.day < b.day ? -1 : a.day > b.day ? 1 : 0));
    for (const c of recent) this.addTo(c.day, c.session, c.usd);
  }

  add(record: Pick<LedgerRecord, "at" | "session" | "usd">): void {
    const ms = Date.parse(record.at);
    if (Number.isNaN(ms)) return;
    this.addTo(dayOf(ms), record.session, record.usd ?? 0);
  }

  private addTo(day: string, session: string, usd: number): void {
    let bucket = this.days.get(day);
    if (!bucket) {
      bucket = { total: 0, bySession: new Map() };
      this.days.set(day, bucket);
      if (this.days.size > DAYS_KEPT) {
        const oldest = [...this.days.keys()].sort()[0];
        if (oldest !== undefined && oldest !== day) this.days.delete(oldest);
      }
    }
    bucket.total += usd;
    bucket.bySession.set(session, (bucket.bySession.get(session) ?? 0) + usd);
    if (day > this.latestDay) this.latestDay = day;
  }

  /** The budget's day: the clock's, unless a call was already recorded on a later one. */
  day(): string {
    const clock = dayOf(this.now());
    return clock > this.latestDay ? clock : this.latestDay;
  }

  today(session?: string): number {
    const bucket = this.days.get(this.day());
    if (!bucket) return 0;
    return session === undefined ? bucket.total : (bucket.bySession.get(session) ?? 0);
  }

  /** Spent today plus what the calls in flight may still cost. */
  committed(session?: string): number {
    let held = 0;
    for (const r of this.reserved.values()) if (session === undefined || r.session === session) held += r.usd;
    return this.today(session) + held;
  }

  /** Hold `usd` against today's budgets until the call ends; returns the release. */
  reserve(session: string, usd: number): () => void {
    const id = this.nextReservation++;
    this.reserved.set(id, { session, usd });
    return () => this.reserved.delete(id);
  }
}

/** The budget a call for `session` would start past, as the question for JC; null if none. */
export function budgetExhausted(config: RelayConfig, spend: SpendTracker, session: string): Failure | null {
  const { dailyUsd, sessionDailyUsd } = config.budget;
  const today = spend.committed();
  if (dailyUsd !== undefined && today >= dailyUsd) {
    return {
      kind: "budget",
      message: `[NEEDS-JC] The daily budget of $${dailyUsd.toFixed(2)} is spent ($${today.toFixed(2)} today, UTC). No API call was made; the envelope from ${session} waits in queue/. Raise budget.daily_usd in config.yaml and answer to go on, or answer "@${session}: ..." to instruct the session directly.`,
    };
  }
  const sessionToday = spend.committed(session);
  if (sessionDailyUsd !== undefined && sessionToday >= sessionDailyUsd) {
    return {
      kind: "budget",
      message: `[NEEDS-JC] The per-session daily budget of $${sessionDailyUsd.toFixed(2)} is spent by ${session} ($${sessionToday.toFixed(2)} today, UTC). No API call was made; its envelope waits in queue/. Raise budget.session_daily_usd in config.yaml and answer to go on, or answer "@${session}: ..." directly.`,
    };
  }
  return null;
}

/**
 * A budget never fails open (CONTRACT §10): with one set, every model config.yaml uses (the
 * default and each session's) must have a price, from the table or `prices:`. The one line that
 * refuses the configuration, or null when it may run.
 */
export function unpricedUnderBudget(config: RelayConfig): string | null {
  const { dailyUsd, sessionDailyUsd } = config.budget;
  if (dailyUsd === undefined && sessionDailyUsd === undefined) return null;
  const users = new Map<string, string[]>();
  for (const { id, model } of [{ id: "model:", model: config.model }, ...config.sessions]) {
    if (priceFor(model, undefined, config.prices) === null) users.set(model, [...(users.get(model) ?? []), id]);
  }
  const [first] = users;
  if (!first) return null;
  const [model, usedBy] = first;
  const which = usedBy.filter((u) => u !== "model:");
  const more = users.size > 1 ? ` (and ${users.size - 1} more unpriced model${users.size > 2 ? "s" : ""})` : "";
  return (
    `config.yaml: a budget is set but the price of ${model}${which.length > 0 ? ` (used by ${which.join(", ")})` : ""} is unknown${more}, so the budget could not count its calls: ` +
    `give its rates under prices: (input, output, cache_write_5m, cache_write_1h, cache_read, USD per million tokens) or use a priced model`
  );
}
