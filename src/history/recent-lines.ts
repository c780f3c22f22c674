// The last entries of one conversation, read from the end of its history file: a bounded read
// (at most `maxBytes`), however long the history, for the status page and `relay history --last`.
import type { RelayPaths } from "../config/paths.js";
import { readLinesBackward } from "../store/lines-backward.js";
import { historyFile, parseHistoryLine } from "./conversation-store.js";
import { concernsSession, type HistoryLine, historyLine } from "./history-line.js";

export interface RecentLines {
  /** oldest first, at most `last` */
  lines: HistoryLine[];
  /** older entries exist (or may: the byte bound was reached before the start of the file) */
  more: boolean;
  /** bytes read from the history file */
  bytesRead: number;
}

export interface RecentOptions {
  last: number;
  /** only this session's entries (and the summaries) */
  session?: string;
  /** stop after this many bytes from the end (default: no bound) */
  maxBytes?: number;
  /** every entry read on the way (any session's), newest first: a cache for other sessions of the conversation */
  seen?: HistoryLine[];
}

export async function recentLines(paths: RelayPaths, conversation: string, opts: RecentOptions): Promise<RecentLines> {
  const newest: HistoryLine[] = [];
  const read = await readLinesBackward(
    historyFile(paths, conversation),
    (raw) => {
      const entry = parseHistoryLine(raw);
      if (entry === null) return true;
      const line = historyLine(conversation, entry);
      opts.seen?.push(line);
      if (opts.session !== undefined && !concernsSession(line, opts.session)) return true;
      if (newest.length === opts.last) return false; // one more than asked for: older entries exist
      newest.push(line);
      return true;
    },
    opts.maxBytes === undefined ? {} : { maxBytes: opts.maxBytes },
  );
  return { lines: newest.reverse(), more: read.stoppedEarly, bytesRead: read.bytesRead };
}
