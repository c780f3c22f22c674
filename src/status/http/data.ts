// What the status page shows beyond `relay status --json`: the latest rejection reasons, the
// cost totals by day and by session, and the most recent calls, read from files only.
import { lstat, readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { type CostReport, type LedgerRecord, ledgerPath, readLedger, summarize } from "../../costs/ledger.js";
import type { RelayPaths } from "../../config/paths.js";
import { isErrno } from "../../store/files.js";

export interface Rejection {
  /** the rejected file's name in queue/.rejected/ */
  file: string;
  error: string;
  at: string | null;
}

const REASON_SUFFIX = ".reason.json";
const MAX_REASON_BYTES = 64 * 1024;
const MAX_ERROR_CHARS = 500;
const reasonSchema = z.object({ error: z.string(), at: z.string().optional() });

/** The newest `limit` rejections (by the reason file's mtime), newest first. */
export async function readRejections(paths: RelayPaths, limit = 5): Promise<Rejection[]> {
  let names: string[];
  try {
    names = (await readdir(paths.rejected)).filter((n) => n.endsWith(REASON_SUFFIX));
  } catch (err) {
    if (isErrno(err, "ENOENT")) return [];
    throw err;
  }
  const dated: { name: string; mtime: number; size: number }[] = [];
  for (const name of names) {
    try {
      const st = await lstat(join(paths.rejected, name));
      if (st.isFile()) dated.push({ name, mtime: st.mtimeMs, size: st.size });
    } catch (err) {
      if (!isErrno(err, "ENOENT")) throw err;
    }
  }
  dated.sort((a, b) => b.mtime - a.mtime || (a.name < b.name ? 1 : -1));
  const out: Rejection[] = [];
  for (const { name, size } of dated.slice(0, limit)) {
    const file = name.slice(0, -REASON_SUFFIX.length);
    let error = "(the reason file cannot be read)";
    let at: string | null = null;
    if (size <= MAX_REASON_BYTES) {
      try {
        const parsed = reasonSchema.safeParse(JSON.parse(await readFile(join(paths.rejected, name), "utf8")));
        if (parsed.success) {
          error = parsed.data.error.length > MAX_ERROR_CHARS ? `${parsed.data.error.slice(0, MAX_ERROR_CHARS - 1)}…` : parsed.data.error;
          at = parsed.data.at ?? null;
        }
      } catch {
        // unreadable or not JSON: shown as such
      }
    }
    out.push({ file, error, at });
  }
  return out;
}

/** The ledger, re-read only when the file changed. */
export class LedgerCache {
  private key = "";
  private records: LedgerRecord[] = [];

  constructor(private readonly root: string) {}

  async read(): Promise<LedgerRecord[]> {
    let key: string;
    try {
      const st = await lstat(ledgerPath(this.root));
      key = `${st.mtimeMs}:${st.size}:${st.ino}`;
    } catch (err) {
      if (isErrno(err, "ENOENT")) return [];
      throw err;
    }
    if (key !== this.key) {
      this.records = await readLedger(this.root);
      this.key = key;
    }
    return this.records;
  }
}

export interface CostsView {
  totalUsd: number;
  unpricedCalls: number;
  calls: number;
  byDay: CostReport["rows"];
  bySession: CostReport["rows"];
}

export function costsView(records: LedgerRecord[]): CostsView {
  const byDay = summarize(records, "day");
  return { totalUsd: byDay.totalUsd, unpricedCalls: byDay.unpricedCalls, calls: records.length, byDay: byDay.rows, bySession: summarize(records, "session").rows };
}

export interface CallView {
  at: string;
  session: string;
  model: string;
  purpose: LedgerRecord["purpose"];
  inputTokens: number;
  outputTokens: number;
  cacheWriteTokens: number;
  cacheReadTokens: number;
  /** null: price unknown */
  usd: number | null;
  latencyMs: number;
}

/** The newest `limit` calls, newest first. */
export function recentCalls(records: LedgerRecord[], limit: number): CallView[] {
  return records
    .slice(-limit)
    .reverse()
    .map((r) => ({
      at: r.at,
      session: r.session,
      model: r.model,
      purpose: r.purpose,
      inputTokens: r.inputTokens,
      outputTokens: r.outputTokens,
      cacheWriteTokens: r.cacheWriteTokens,
      cacheReadTokens: r.cacheReadTokens,
      usd: r.usd,
      latencyMs: r.latencyMs,
    }));
}
