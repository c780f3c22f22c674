/**
 * The cost ledger: `state/costs.jsonl` under the relay's root, one JSON
 * record per API call, append-only.
 *
 * Each record is one line written by one write() on a file opened for
 * appending, then fsync'd, so a kill -9 leaves whole lines. Should the file
 * nevertheless end without a newline (power loss, a full disk), the next
 * append starts with one, so the torn piece never swallows a good record.
 * Reading skips any line that is not a valid record.
 */
import { closeSync, fstatSync, mkdirSync, openSync, readSync, writeSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import * as z from "zod/mini";
import { fsyncFd, PRIVATE_DIR, PRIVATE_FILE, syncDir } from "../store/files.js";
import type { CacheChoice } from "../anthropic/cache-policy.js";
import { costUsd, type Usage } from "./pricing.js";

export interface LedgerRecord {
  /** ISO 8601 time of the call. */
  at: string;
  session: string;
  conversation: string;
  model: string;
  /** permission: chat-Claude deciding a permission prompt under permissions.policy */
  purpose: "reply" | "summary" | "probe" | "permission";
  inputTokens: number;
  outputTokens: number;
  /** cacheWrite5mTokens + cacheWrite1hTokens. */
  cacheWriteTokens: number;
  cacheReadTokens: number;
  cacheWrite5mTokens: number;
  cacheWrite1hTokens: number;
  /** null: the model's price is unknown (never recorded as 0). */
  usd: number | null;
  latencyMs: number;
  /** The call's cache choice and pace (absent on lines written before `cache_ttl: auto`). */
  cache?: CallCache;
}

/** What a call's breakpoints carried, why, and what `relay costs` needs to price the other choices. */
export interface CallCache {
  ttl: CacheChoice;
  reason: string;
  /** ms since the conversation's previous call; null for its first */
  gapMs: number | null;
  /** the tokens of this prompt that the conversation's previous call had sent too (what a live cache could serve) */
  reusableTokens: number;
}

const tokens = z.int().check(z.nonnegative());

export const LedgerRecordSchema = z.object({
  at: z.iso.datetime({ offset: true }),
  session: z.string(),
  conversation: z.string(),
  model: z.string(),
  purpose: z.enum(["reply", "summary", "probe", "permission"]),
  inputTokens: tokens,
  outputTokens: tokens,
  cacheWriteTokens: tokens,
  cacheReadTokens: tokens,
  cacheWrite5mTokens: tokens,
  cacheWrite1hTokens: tokens,
  usd: z.nullable(z.number().check(z.nonnegative())),
  latencyMs: z.number().check(z.nonnegative()),
  cache: z.optional(z.object({ ttl: z.enum(["5m", "1h", "none"]), reason: z.string(), gapMs: z.nullable(z.number().check(z.nonnegative())), reusableTokens: tokens })),
});

export function ledgerPath(root: string): string {
  return join(root, "state", "costs.jsonl");
}

/** A record for one call: cache totals and `usd` are derived from `usage` and the price table. */
export function makeLedgerRecord(args: {
  at?: Date;
  session: string;
  conversation: string;
  model: string;
  purpose: LedgerRecord["purpose"];
  usage: Usage;
  latencyMs: number;
  cache?: CallCache;
}): LedgerRecord {
  const { usage } = args;
  return {
    at: (args.at ?? new Date()).toISOString(),
    session: args.session,
    conversation: args.conversation,
    model: args.model,
    purpose: args.purpose,
    inputTokens: usage.inputTokens,
    outputTokens: usage.outputTokens,
    cacheWriteTokens: usage.cacheWrite5mTokens + usage.cacheWrite1hTokens,
    cacheReadTokens: usage.cacheReadTokens,
    cacheWrite5mTokens: usage.cacheWrite5mTokens,
    cacheWrite1hTokens: usage.cacheWrite1hTokens,
    usd: costUsd(args.model, usage),
    latencyMs: args.latencyMs,
    ...(args.cache ? { cache: args.cache } : {}),
  };
}

/** Append one record (validated first: an invalid record throws and writes nothing). */
export async function appendLedger(root: string, rec: LedgerRecord): Promise<void> {
  const valid = LedgerRecordSchema.parse(rec);
  const file = ledgerPath(root);
  // Direct calls but fsync, as in src/store/files.ts: each on the thread pool costs ~20x the CPU.
  mkdirSync(dirname(file), { recursive: true, mode: PRIVATE_DIR });
  const fd = openSync(file, "a+", PRIVATE_FILE);
  let created = false;
  try {
    const { size } = fstatSync(fd);
    created = size === 0;
    let lead = "";
    if (size > 0) {
      const last = Buffer.alloc(1);
      readSync(fd, last, 0, 1, size - 1);
      if (last[0] !== 0x0a) lead = "\n";
    }
    const buf = Buffer.from(`${lead}${JSON.stringify(valid)}\n`, "utf8");
    const bytesWritten = writeSync(fd, buf, 0, buf.length);
    if (bytesWritten !== buf.length) throw new Error(`short write to ${file}: ${bytesWritten} of ${buf.length} bytes`);
    await fsyncFd(fd);
  } finally {
    closeSync(fd);
  }
  // Make a new file's directory entry durable; not every platform can fsync a directory.
  if (created) await syncDir(dirname(file)).catch(() => undefined);
}

/** Every valid record, in file order. Invalid or torn lines are skipped; a missing file is empty. */
export async function readLedger(root: string): Promise<LedgerRecord[]> {
  let text: string;
  try {
    text = await readFile(ledgerPath(root), "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  const out: LedgerRecord[] = [];
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch {
      continue;
    }
    const r = LedgerRecordSchema.safeParse(json);
    if (r.success) out.push(r.data);
  }
  return out;
}

export type CostsBy = "day" | "session" | "model";

export interface CostRow {
  key: string;
  calls: number;
  inputTokens: number;
  outputTokens: number;
  cacheWriteTokens: number;
  cacheReadTokens: number;
  usd: number;
  unpricedCalls: number;
}

export interface CostReport {
  totalUsd: number;
  unpricedCalls: number;
  rows: CostRow[];
}

/** Float sums of many small costs drift in the last bits: keep nano-dollars. */
const tidy = (usd: number): number => Math.round(usd * 1e9) / 1e9;

const pad = (n: number, width = 2): string => String(n).padStart(width, "0");

function dayKey(ms: number, timeZone: "UTC" | "local"): string {
  const d = new Date(ms);
  return timeZone === "UTC"
    ? `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`
    : `${pad(d.getFullYear(), 4)}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

/**
 * Totals by day (YYYY-MM-DD, UTC unless `timeZone: "local"`), session or
 * model, rows sorted by key. `since` is inclusive. A call whose price is
 * unknown adds 0 to `usd` and 1 to `unpricedCalls`.
 */
export function summarize(
  records: LedgerRecord[],
  by: CostsBy,
  opts: { since?: Date; timeZone?: "UTC" | "local" } = {},
): CostReport {
  const sinceMs = opts.since?.getTime();
  const timeZone = opts.timeZone ?? "UTC";
  const rows = new Map<string, CostRow>();
  let total = 0;
  let unpriced = 0;
  for (const rec of records) {
    const at = Date.parse(rec.at);
    if (sinceMs !== undefined && !(at >= sinceMs)) continue;
    const key = by === "day" ? (Number.isNaN(at) ? "unknown" : dayKey(at, timeZone)) : by === "session" ? rec.session : rec.model;
    let row = rows.get(key);
    if (!row) {
      row = { key, calls: 0, inputTokens: 0, outputTokens: 0, cacheWriteTokens: 0, cacheReadTokens: 0, usd: 0, unpricedCalls: 0 };
      rows.set(key, row);
    }
    row.calls += 1;
    row.inputTokens += rec.inputTokens;
    row.outputTokens += rec.outputTokens;
    row.cacheWriteTokens += rec.cacheWriteTokens;
    row.cacheReadTokens += rec.cacheReadTokens;
    if (rec.usd === null) {
      row.unpricedCalls += 1;
      unpriced += 1;
    } else {
      row.usd += rec.usd;
      total += rec.usd;
    }
  }
  const sorted = [...rows.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  for (const row of sorted) row.usd = tidy(row.usd);
  return { totalUsd: tidy(total), unpricedCalls: unpriced, rows: sorted };
}

/** USD spent at or after `since`, optionally by one session. Calls of unknown price add 0. */
export function spentSince(records: LedgerRecord[], since: Date, session?: string): number {
  const sinceMs = since.getTime();
  let total = 0;
  for (const rec of records) {
    if (session !== undefined && rec.session !== session) continue;
    if (!(Date.parse(rec.at) >= sinceMs)) continue;
    total += rec.usd ?? 0;
  }
  return tidy(total);
}
