// The running conversations: append-only JSON-lines history per conversation in state/history/,
// rendered into Messages API turns, and folded into a summary past the char cap.
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import * as z from "zod/mini";
import type { Note, WorkItem } from "../../machines/types.js";
import type { RelayPaths } from "../config/paths.js";
import { appendLine, ensureDirs, isErrno, PRIVATE_FILE, writeAtomic } from "../store/files.js";

const entrySchema = z.discriminatedUnion("kind", [
  z.object({
    kind: z.literal("turn"),
    id: z.string(),
    session: z.string(),
    source: z.enum(["envelope", "jc"]),
    text: z.string(),
    reply: z.string(),
    timestamp: z.optional(z.string()),
    at: z.string(),
  }),
  z.object({ kind: z.literal("note"), id: z.string(), session: z.string(), text: z.string(), at: z.string() }),
  z.object({ kind: z.literal("summary"), id: z.string(), text: z.string(), folded: z.number(), at: z.string() }),
]);
export type HistoryEntry = z.infer<typeof entrySchema>;

export interface Block {
  role: "user" | "assistant";
  text: string;
}

/** The user-side text of an entry or work item, exactly as chat-Claude sees it (byte-stable for caching). */
export function userText(e: { kind: "turn" | "item"; source: "envelope" | "jc"; session: string; text: string; timestamp?: string | undefined } | { kind: "note"; session: string; text: string } | { kind: "summary"; text: string }): string {
  switch (e.kind) {
    case "summary":
      return `[Summary of the earlier conversation]\n${e.text}`;
    case "note":
      return `[JC → ${e.session}, sent directly without you] ${e.text}`;
    default:
      return e.source === "jc" ? `[JC, about ${e.session}] ${e.text}` : `[${e.session}${e.timestamp ? ` · ${e.timestamp}` : ""}] ${e.text}`;
  }
}

/** A reply the model left empty still needs non-empty text in the next request. */
export const storedReply = (reply: string): string => (reply.trim() === "" ? "(empty reply)" : reply);

export function entryBlocks(e: HistoryEntry): Block[] {
  if (e.kind === "turn") {
    return [
      { role: "user", text: userText({ ...e, kind: "turn" }) },
      { role: "assistant", text: storedReply(e.reply) },
    ];
  }
  return [{ role: "user", text: userText(e) }];
}

export const entryChars = (e: HistoryEntry): number => entryBlocks(e).reduce((n, b) => n + b.text.length, 0);

export const isTurn = (e: HistoryEntry): boolean => e.kind === "turn";

export const historyFile = (paths: RelayPaths, conversation: string): string => join(paths.history, `${conversation}.jsonl`);

/** One line of a history file, or null when it is torn (a kill mid-append) or not an entry. */
export function parseHistoryLine(line: string): HistoryEntry | null {
  if (line.trim() === "") return null;
  try {
    const parsed = entrySchema.safeParse(JSON.parse(line));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

/** Parse a history file, skipping a torn or invalid line instead of failing the whole file. */
export function parseHistory(raw: string): HistoryEntry[] {
  return raw.split("\n").flatMap((line) => parseHistoryLine(line) ?? []);
}

/** The history of every conversation, kept in memory and written through to state/history/. */
export class ConversationStore {
  private readonly cache = new Map<string, HistoryEntry[]>();
  private readonly charCount = new Map<string, number>();

  constructor(private readonly paths: RelayPaths) {}

  async entries(conversation: string): Promise<HistoryEntry[]> {
    const cached = this.cache.get(conversation);
    if (cached) return cached;
    let raw = "";
    try {
      raw = await readFile(historyFile(this.paths, conversation), "utf8");
    } catch (err) {
      if (!isErrno(err, "ENOENT")) throw err;
    }
    const entries = parseHistory(raw);
    // A kill mid-append can leave a torn last line: rewrite the file without it, so the next
    // append does not glue a good entry onto the fragment.
    if (raw !== "" && !raw.endsWith("\n")) await this.replace(conversation, entries);
    this.cache.set(conversation, entries);
    return entries;
  }

  async has(conversation: string, id: string): Promise<HistoryEntry | undefined> {
    return (await this.entries(conversation)).find((e) => e.id === id);
  }

  /** Append entries whose ids are not there yet (a repeated commit after a crash adds nothing). */
  async append(conversation: string, add: HistoryEntry[]): Promise<void> {
    const entries = await this.entries(conversation);
    const known = new Set(entries.map((e) => e.id));
    const fresh = add.filter((e) => !known.has(e.id));
    if (fresh.length === 0) return;
    await ensureDirs(this.paths.history);
    // One write of all lines: a kill cannot leave the notes without their turn.
    await appendLine(historyFile(this.paths, conversation), fresh.map((e) => JSON.stringify(e)).join("\n"));
    entries.push(...fresh);
    const counted = this.charCount.get(conversation);
    if (counted !== undefined) this.charCount.set(conversation, counted + fresh.reduce((n, e) => n + entryChars(e), 0));
  }

  async replace(conversation: string, next: HistoryEntry[]): Promise<void> {
    await ensureDirs(this.paths.history);
    await writeAtomic(historyFile(this.paths, conversation), next.map((e) => `${JSON.stringify(e)}\n`).join(""), { mode: PRIVATE_FILE });
    this.cache.set(conversation, next);
    this.charCount.delete(conversation);
  }

  /** Characters the conversation sends (kept as a running count, not re-rendered per call). */
  async chars(conversation: string): Promise<number> {
    const known = this.charCount.get(conversation);
    if (known !== undefined) return known;
    const count = (await this.entries(conversation)).reduce((n, e) => n + entryChars(e), 0);
    this.charCount.set(conversation, count);
    return count;
  }
}

/** Every conversation on disk (for status). */
export async function readAllHistories(paths: RelayPaths): Promise<Map<string, HistoryEntry[]>> {
  const out = new Map<string, HistoryEntry[]>();
  for (const name of await conversationNames(paths)) out.set(name, parseHistory(await readFile(historyFile(paths, name), "utf8")));
  return out;
}

/** The conversations that have a history file. */
export async function conversationNames(paths: RelayPaths): Promise<string[]> {
  try {
    return (await readdir(paths.history)).filter((n) => n.endsWith(".jsonl")).map((n) => n.slice(0, -".jsonl".length));
  } catch (err) {
    if (isErrno(err, "ENOENT")) return [];
    throw err;
  }
}

export const turnEntry = (item: WorkItem, reply: string, at: Date): HistoryEntry => ({
  kind: "turn",
  id: item.id,
  session: item.session,
  source: item.source,
  text: item.text,
  reply,
  ...(item.timestamp === undefined ? {} : { timestamp: item.timestamp }),
  at: at.toISOString(),
});

export const noteEntry = (note: Note, at: Date): HistoryEntry => ({ kind: "note", id: note.id, session: note.session, text: note.text, at: at.toISOString() });

/**
 * Split a history for summarization: the entries to fold into the summary, and the most
 * recent `keepTurns` turns (with the notes among them) kept verbatim. Nothing to fold → null.
 */
export function splitForSummary(entries: HistoryEntry[], keepTurns: number): { fold: HistoryEntry[]; keep: HistoryEntry[] } | null {
  let cut = entries.length;
  let turns = 0;
  while (cut > 0 && turns < keepTurns) {
    cut--;
    if (entries[cut]?.kind === "turn") turns++;
  }
  if (keepTurns === 0) cut = entries.length;
  // keep the notes that led up to the first kept turn with it
  while (cut > 0 && entries[cut - 1]?.kind === "note" && keepTurns > 0) cut--;
  const fold = entries.slice(0, cut);
  if (!fold.some((e) => e.kind !== "summary") || fold.length === 0) return null;
  return { fold, keep: entries.slice(cut) };
}

/** The folded entries as a plain transcript for the summarization call. */
export function transcript(entries: HistoryEntry[]): string {
  return entries
    .map((e) =>
      e.kind === "turn" ? `${userText({ ...e, kind: "turn" })}\n[chat-Claude] ${storedReply(e.reply)}` : userText(e),
    )
    .join("\n\n");
}
