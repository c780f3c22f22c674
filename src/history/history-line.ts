// A history entry as a reader sees it (`relay history`, the status page): who wrote it, when,
// the text, and chat-Claude's reply for a turn.
import type { HistoryEntry } from "./conversation-store.js";

export interface HistoryLine {
  conversation: string;
  at: string;
  kind: "turn" | "note" | "summary";
  session: string | null;
  /** who wrote `text`: the session's agent, JC, or a summary */
  from: "agent" | "jc" | "summary";
  text: string;
  /** chat-Claude's reply, for a turn */
  reply: string | null;
}

export function historyLine(conversation: string, e: HistoryEntry): HistoryLine {
  switch (e.kind) {
    case "turn":
      return { conversation, at: e.at, kind: "turn", session: e.session, from: e.source === "jc" ? "jc" : "agent", text: e.text, reply: e.reply };
    case "note":
      return { conversation, at: e.at, kind: "note", session: e.session, from: "jc", text: e.text, reply: null };
    case "summary":
      return { conversation, at: e.at, kind: "summary", session: null, from: "summary", text: e.text, reply: null };
  }
}

/** What one session's view of its conversation shows: its own turns and notes, and the summaries (they fold its earlier turns too). */
export const concernsSession = (line: HistoryLine, session: string): boolean => line.session === session || line.kind === "summary";
