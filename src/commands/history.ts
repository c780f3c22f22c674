import { Flags } from "@oclif/core";
import { RelayCommand } from "./base.js";

/** One line of the printed conversation: who, when, what. */
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

export default class History extends RelayCommand {
  static override description = "Print the conversations: each turn (who, when, the message, chat-Claude's reply), JC's notes, and summaries marked as such.";
  static override examples = ["<%= config.bin %> history --session session-1 --last 5", "<%= config.bin %> history --json"];
  static override enableJsonFlag = true;
  static override flags = {
    session: Flags.string({ char: "s", description: "only this session's conversation (and only its turns, in a shared conversation)" }),
    last: Flags.integer({ char: "n", description: "only the last N entries of each conversation", min: 1 }),
  };

  async run(): Promise<{ entries: HistoryLine[] }> {
    const { flags } = await this.parse(History);
    const paths = this.resolvePaths(flags.root);
    const { readAllHistories } = await import("../history/conversation-store.js");
    await (await import("../config/root.js")).requireRoot(paths);
    const histories = await readAllHistories(paths);
    const entries: HistoryLine[] = [];
    for (const [conversation, list] of [...histories.entries()].sort(([a], [b]) => a.localeCompare(b))) {
      const lines: HistoryLine[] = list.map((e) =>
        e.kind === "turn"
          ? { conversation, at: e.at, kind: "turn", session: e.session, from: e.source === "jc" ? "jc" : "agent", text: e.text, reply: e.reply }
          : e.kind === "note"
            ? { conversation, at: e.at, kind: "note", session: e.session, from: "jc", text: e.text, reply: null }
            : { conversation, at: e.at, kind: "summary", session: null, from: "summary", text: e.text, reply: null },
      );
      const mine = flags.session === undefined ? lines : lines.filter((l) => l.session === flags.session || (l.kind === "summary" && lines.some((x) => x.session === flags.session)));
      entries.push(...(flags.last === undefined ? mine : mine.slice(-flags.last)));
    }
    if (!this.jsonEnabled()) {
      if (entries.length === 0) this.log(flags.session ? `no history for session ${flags.session} yet` : "no history yet");
      for (const e of entries) this.log(formatLine(e));
    }
    return { entries };
  }
}

function formatLine(e: HistoryLine): string {
  const when = e.at.replace("T", " ").slice(0, 19);
  const indent = (t: string) => t.trimEnd().split("\n").map((l) => `    ${l}`).join("\n");
  if (e.kind === "summary") return `── ${when} [${e.conversation}] summary of earlier turns\n${indent(e.text)}\n`;
  if (e.kind === "note") return `── ${when} [${e.conversation}] JC to ${e.session ?? "?"} directly\n${indent(e.text)}\n`;
  const who = e.from === "jc" ? `JC (about ${e.session ?? "?"})` : (e.session ?? "?");
  return `── ${when} [${e.conversation}] ${who}\n${indent(e.text)}\n   chat-Claude:\n${indent(e.reply ?? "")}\n`;
}
