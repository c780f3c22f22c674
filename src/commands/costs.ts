import { Flags } from "@oclif/core";
import type { CostsBy } from "../costs/ledger.js";
import type { CellReport } from "../costs/ledger-summary.js";
import type * as Pricing from "../costs/pricing.js";
import { RelayCommand, UsageError } from "./base.js";

/** What the report is printed with: the pricing code, which run() loads only when `relay costs` runs. */
export type CostsLib = Pick<typeof Pricing, "formatUsd">;

export type CostsRow = CellReport["rows"][number];

/** `relay costs --json` (CONTRACT §10: `totalUsd` and `rows`; the other keys are extras). */
export interface CostsReport {
  totalUsd: number;
  rows: CostsRow[];
  by: CostsBy;
  since: string | null;
  calls: number;
  unpricedCalls: number;
  cacheSavingsUsd: number;
}

const DAY = /^(\d{4})-(\d{2})-(\d{2})$/;
const TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?$/i;

const BY: readonly CostsBy[] = ["day", "session", "model"];

export function parseBy(value: string): CostsBy {
  const by = BY.find((b) => b === value.trim().toLowerCase());
  if (by === undefined) throw new UsageError(`--by: expected day, session or model, got ${JSON.stringify(value)}`);
  return by;
}

/** `YYYY-MM-DD` (that day from 00:00 UTC) or an ISO 8601 time (UTC when it has no offset). */
export function parseSince(value: string): Date {
  const v = value.trim();
  const day = DAY.exec(v);
  if (day) {
    const [y, m, d] = [Number(day[1]), Number(day[2]), Number(day[3])];
    const date = new Date(Date.UTC(y, m - 1, d));
    if (date.getUTCFullYear() === y && date.getUTCMonth() === m - 1 && date.getUTCDate() === d) return date;
  } else if (TIME.test(v)) {
    const hasOffset = /(Z|[+-]\d{2}:?\d{2})$/i.test(v);
    const ms = Date.parse(hasOffset ? v : `${v}Z`);
    if (!Number.isNaN(ms)) return new Date(ms);
  }
  throw new UsageError(`--since: expected a date (YYYY-MM-DD) or an ISO 8601 time (e.g. 2026-11-10T09:00:00Z), got ${JSON.stringify(value)}`);
}

const int = (n: number): string => n.toLocaleString("en-US");

/** "$1.23", "price unknown" when no call of the row had a price, "$1.23 + 2 unknown" when some had none. */
function usdCell(usd: number, calls: number, unpriced: number, formatUsd: CostsLib["formatUsd"]): string {
  if (unpriced === 0) return formatUsd(usd);
  if (unpriced === calls) return formatUsd(null);
  return `${formatUsd(usd)} + ${unpriced} price unknown`;
}

/** The human report: totals, then one aligned table. */
export function formatCosts(r: CostsReport, { formatUsd }: Pick<CostsLib, "formatUsd">): string[] {
  const scope = r.since ? ` since ${r.since}` : "";
  if (r.rows.length === 0) return [`no API calls recorded${scope}`];
  const lines: string[] = [];
  const unknown = r.unpricedCalls > 0 ? ` (${r.unpricedCalls} ${r.unpricedCalls === 1 ? "call" : "calls"} of unknown price not included)` : "";
  lines.push(`total: ${formatUsd(r.totalUsd)} over ${int(r.calls)} ${r.calls === 1 ? "call" : "calls"}${scope}${unknown}`);
  const savedWord = r.cacheSavingsUsd >= 0 ? "saved" : "cost an extra";
  lines.push(`prompt caching ${savedWord} ${formatUsd(Math.abs(r.cacheSavingsUsd))} (cached tokens at the plain input price, minus what they cost)`);
  lines.push("");
  const header = [r.by, "calls", "input", "output", "cache write", "cache read", "USD"];
  const body = r.rows.map((row) => [
    row.key,
    int(row.calls),
    int(row.inputTokens),
    int(row.outputTokens),
    int(row.cacheWriteTokens),
    int(row.cacheReadTokens),
    usdCell(row.usd, row.calls, row.unpricedCalls, formatUsd),
  ]);
  const table = [header, ...body];
  const widths = header.map((_, i) => Math.max(...table.map((cells) => (cells[i] ?? "").length)));
  for (const cells of table) {
    lines.push(
      cells
        .map((cell, i) => (i === 0 || i === cells.length - 1 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0)))
        .join("  ")
        .trimEnd(),
    );
  }
  return lines;
}

export default class Costs extends RelayCommand {
  static override description = "Totals from the cost ledger (state/costs.jsonl) by day (UTC), session or model, and what prompt caching saved.";
  static override enableJsonFlag = true;
  static override examples = ["<%= config.bin %> costs", "<%= config.bin %> costs --by session --since 2026-11-01", "<%= config.bin %> costs --by model --json"];
  static override flags = {
    // A plain string checked below, so a bad value is one line like every other usage error.
    by: Flags.string({ description: "one row per UTC day, per session or per model", helpValue: "day|session|model", default: "day" }),
    since: Flags.string({ helpValue: "DATE", description: "only calls at or after DATE: YYYY-MM-DD (from 00:00 UTC) or an ISO 8601 time (UTC without an offset)" }),
  };

  async run(): Promise<CostsReport> {
    const { flags } = await this.parse(Costs);
    const by = parseBy(flags.by);
    const since = flags.since === undefined ? undefined : parseSince(flags.since);
    const paths = this.resolvePaths(flags.root);
    const [{ LedgerSummary }, { formatUsd }, { loadConfig }] = await Promise.all([import("../costs/ledger-summary.js"), import("../costs/pricing.js"), import("../config/config.js")]);
    // What caching saved is priced like the calls and the budgets: config.yaml's `prices:` first,
    // then the table (the table alone when config.yaml cannot be read).
    const prices = await loadConfig(paths, process.env, { seed: false }).then(
      (c) => c.prices,
      () => undefined,
    );
    // The saved summary plus the ledger's tail since it was saved: bounded however long the ledger.
    const summary = await LedgerSummary.load(paths.root);
    if (summary.worthSaving) await summary.save().catch(() => undefined); // a cache: a read-only root still gets its report
    const cells = await summary.report(by, since, prices);
    const report: CostsReport = { ...cells, by, since: since ? since.toISOString() : null };
    const lib: CostsLib = { formatUsd };
    for (const line of formatCosts(report, lib)) this.log(line);
    return report;
  }
}
