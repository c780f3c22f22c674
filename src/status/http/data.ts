// What the status page shows beyond `relay status --json`: the latest rejection reasons, the
// cost totals by day and by session, the most recent calls, and each session's last turns, read
// from files only.
import { lstat, readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import * as z from "zod/mini";
import type { CostRow, LedgerRecord } from "../../costs/ledger.js";
import { type CellReport, type CostCell, reportOfCells } from "../../costs/ledger-summary.js";
import type { RelayPaths } from "../../config/paths.js";
import { isErrno } from "../../store/files.js";
import { historyFile } from "../../history/conversation-store.js";
import { concernsSession, type HistoryLine } from "../../history/history-line.js";
import { recentLines } from "../../history/recent-lines.js";

export interface Rejection {
  /** the rejected file's name in queue/.rejected/ */
  file: string;
  error: string;
  at: string | null;
}

const REASON_SUFFIX = ".reason.json";
const MAX_REASON_BYTES = 64 * 1024;
const MAX_ERROR_CHARS = 500;
const reasonSchema = z.object({ error: z.string(), at: z.optional(z.string()) });

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

export interface CostsView {
  totalUsd: number;
  unpricedCalls: number;
  calls: number;
  byDay: CostRow[];
  bySession: CostRow[];
}

/** Totals by day and by session, from the ledger's summary cells (no re-read of the ledger). */
export function costsView(cells: CostCell[]): CostsView {
  const byDay = reportOfCells(cells, "day");
  const strip = (rows: CellReport["rows"]): CostRow[] => rows.map(({ cacheSavingsUsd: _, ...row }) => row);
  return { totalUsd: byDay.totalUsd, unpricedCalls: byDay.unpricedCalls, calls: byDay.calls, byDay: strip(byDay.rows), bySession: strip(reportOfCells(cells, "session").rows) };
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

/** The calls as the page shows them (`newest`: newest first, as newestRecords reads them). */
export function recentCalls(newest: LedgerRecord[]): CallView[] {
  return newest.map((r) => ({
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

/** The newest rejections, re-read only when queue/.rejected/ changed (a rename in or out changes its mtime). */
export class RejectionsCache {
  private key = "";
  private value: Rejection[] = [];

  constructor(private readonly paths: RelayPaths) {}

  async read(limit = 5): Promise<Rejection[]> {
    let key: string;
    try {
      const st = await lstat(this.paths.rejected);
      key = `${st.ino}:${st.mtimeMs}:${st.size}:${limit}`;
    } catch (err) {
      if (isErrno(err, "ENOENT")) return [];
      throw err;
    }
    if (key !== this.key) {
      this.value = await readRejections(this.paths, limit);
      this.key = key;
    }
    return this.value;
  }
}

/** The conversation panel reads at most this much of a history file's end per refresh. */
export const HISTORY_READ_BYTES = 2 * 1024 * 1024;
/** A text longer than this is cut in the panel (`relay history` prints it whole). */
export const PANEL_TEXT_CHARS = 20_000;
export const MAX_PANEL_ENTRIES = 50;

/** A history entry as the panel shows it: texts cut to PANEL_TEXT_CHARS, with their full lengths. */
export interface PanelEntry extends HistoryLine {
  textChars: number;
  replyChars: number | null;
}

export interface ConversationPanel {
  session: string;
  conversation: string;
  /** newest first */
  entries: PanelEntry[];
  /** older entries exist (or may: the read stopped at HISTORY_READ_BYTES) */
  more: boolean;
}

const clip = (text: string): string => (text.length > PANEL_TEXT_CHARS ? text.slice(0, PANEL_TEXT_CHARS) : text);

/**
 * One session's last entries, read from the end of its conversation's history (a bounded read).
 * What a read passes on the way, every session's entries, is kept until the file changes (its
 * inode, size or mtime): the other sessions of a shared conversation are mostly answered from it,
 * so a change costs about one read of the history's end, not one per session.
 */
export class ConversationPanels {
  /** by conversation: what was read of its file's end, whether that reached the file's start, or the byte bound */
  private readonly cache = new Map<string, { key: string; seen: HistoryLine[]; start: boolean; bounded: boolean }>();

  constructor(private readonly paths: RelayPaths) {}

  async read(session: string, conversation: string, last: number): Promise<ConversationPanel> {
    let key = "none";
    try {
      const st = await lstat(historyFile(this.paths, conversation));
      key = `${st.ino}:${st.size}:${st.mtimeMs}`;
    } catch (err) {
      if (!isErrno(err, "ENOENT")) throw err;
    }
    let known = this.cache.get(conversation);
    if (known?.key !== key) known = { key, seen: [], start: false, bounded: false };
    let mine = known.seen.filter((l) => concernsSession(l, session));
    if (mine.length <= last && !known.start && !known.bounded) {
      const seen: HistoryLine[] = [];
      const read = await recentLines(this.paths, conversation, { last, session, maxBytes: HISTORY_READ_BYTES, seen });
      // read from the end again: `seen` now reaches at least as far back as before (it holds the
      // entry after the session's last N when there is one)
      known = { key, seen, start: !read.more, bounded: read.more && read.lines.length < last };
      mine = seen.filter((l) => concernsSession(l, session));
    }
    this.cache.set(conversation, known);
    const more = mine.length > last || known.bounded;
    const entries = mine.slice(0, last).map((l) => ({ ...l, text: clip(l.text), reply: l.reply === null ? null : clip(l.reply), textChars: l.text.length, replyChars: l.reply?.length ?? null }));
    return { session, conversation, entries, more };
  }
}
