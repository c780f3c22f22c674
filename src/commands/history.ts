import { Flags } from "@oclif/core";
import type { HistoryLine } from "../history/history-line.js";
import { RelayCommand, UsageError } from "./base.js";

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
    const [{ conversationNames }, { recentLines }, { access }] = await Promise.all([
      import("../history/conversation-store.js"),
      import("../history/recent-lines.js"),
      import("node:fs/promises"),
    ]);
    if (!(await access(paths.config).then(() => true, () => false))) throw new UsageError(`${paths.root} is not a relay root (no config.yaml)`);
    const entries: HistoryLine[] = [];
    for (const conversation of (await conversationNames(paths)).sort((a, b) => a.localeCompare(b))) {
      // read from the file's end: --last N costs the same however long the history
      const { lines } = await recentLines(paths, conversation, { last: flags.last ?? Number.POSITIVE_INFINITY, ...(flags.session === undefined ? {} : { session: flags.session }) });
      // a summary alone is not this session's: its conversation is shown only with an entry of the session's own
      if (flags.session === undefined || lines.some((l) => l.session === flags.session)) entries.push(...lines);
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
