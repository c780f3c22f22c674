// The transcript (JSONL, undocumented): one content block per line, the lines of one message
// share message.id, `content` may be a plain string, and it is written asynchronously.
import { open } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import * as z from "zod/mini";
import { readIfPresent } from "../store/files.js";

/** How long to re-read a transcript that does not yet end with the agent's final text. */
export const TRANSCRIPT_LAG_MS = 3_000;
export const TRANSCRIPT_POLL_MS = 100;

const blockSchema = z.looseObject({ type: z.string(), text: z.optional(z.string()) });
const entrySchema = z.looseObject({
  type: z.optional(z.string()),
  isSidechain: z.optional(z.boolean()),
  isMeta: z.optional(z.boolean()),
  message: z.optional(
    z.looseObject({
      id: z.optional(z.string()),
      role: z.optional(z.string()),
      content: z.optional(z.union([z.string(), z.array(z.unknown())])),
    }),
  ),
});

interface Line {
  role: "user" | "assistant";
  id: string | undefined;
  texts: string[];
}

function conversationLines(jsonl: string): Line[] {
  const lines: Line[] = [];
  for (const raw of jsonl.split("\n")) {
    if (raw.trim() === "") continue;
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch {
      continue; // a line still being written, or not ours to understand
    }
    const entry = entrySchema.safeParse(json);
    if (!entry.success || entry.data.isSidechain === true || entry.data.isMeta === true) continue;
    const { type, message } = entry.data;
    if (type !== undefined && type !== "user" && type !== "assistant") continue; // summaries, system lines, snapshots
    const role = message?.role ?? type;
    if ((role !== "user" && role !== "assistant") || message === undefined) continue;
    const content = message.content;
    const texts =
      typeof content === "string"
        ? [content]
        : (content ?? []).flatMap((b) => {
            const block = blockSchema.safeParse(b);
            return block.success && block.data.type === "text" && block.data.text !== undefined ? [block.data.text] : [];
          });
    lines.push({ role, id: message.id, texts: texts.filter((t) => t.trim() !== "") });
  }
  return lines;
}

export interface TranscriptMessage {
  /** The text of the last assistant message that has any ("" when there is none). */
  text: string;
  /** Whether the transcript ends with assistant text, i.e. the final message looks written. */
  settled: boolean;
}

/** The agent's last message: the text blocks of the last assistant message (by message.id) that has text. */
export function lastAssistantText(jsonl: string): TranscriptMessage {
  const lines = conversationLines(jsonl);
  const last = lines.at(-1);
  const settled = last !== undefined && last.role === "assistant" && last.texts.length > 0;
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i];
    if (!line || line.role !== "assistant" || line.texts.length === 0) continue;
    const texts = line.id === undefined ? line.texts : lines.filter((l) => l.role === "assistant" && l.id === line.id).flatMap((l) => l.texts);
    return { text: texts.join("\n\n").trim(), settled };
  }
  return { text: "", settled };
}

export const expandHome = (path: string): string => (path === "~" || path.startsWith("~/") ? join(homedir(), path.slice(1)) : path);

/**
 * The agent's last message from the transcript. The Stop hook may run before the last lines are
 * written, so until the transcript ends with assistant text (and has stopped growing), re-read it
 * every `pollMs` for up to `lagMs`; then take what is there.
 */
export async function readTranscriptMessage(path: string, opts: { lagMs?: number; pollMs?: number } = {}): Promise<string> {
  const file = expandHome(path);
  const pollMs = opts.pollMs ?? TRANSCRIPT_POLL_MS;
  const deadline = Date.now() + (opts.lagMs ?? TRANSCRIPT_LAG_MS);
  let previous: string | null = null;
  for (;;) {
    const raw = (await readIfPresent(file)) ?? "";
    const found = lastAssistantText(raw);
    if ((found.settled && raw === previous) || Date.now() >= deadline) return found.text;
    previous = found.settled ? raw : null;
    await sleep(pollMs);
  }
}

/** The Claude Code version that writes this transcript (its entries carry `version`), from the file's tail; null if unknown. */
export async function claudeCodeVersion(path: string, tailBytes = 65_536): Promise<string | null> {
  let handle;
  try {
    handle = await open(expandHome(path), "r");
  } catch {
    return null;
  }
  try {
    const { size } = await handle.stat();
    const length = Math.min(size, tailBytes);
    const buffer = Buffer.alloc(length);
    await handle.read(buffer, 0, length, size - length);
    const found = [...buffer.toString("utf8").matchAll(/"version":"(\d+\.\d+\.\d+)"/g)].at(-1);
    return found?.[1] ?? null;
  } finally {
    await handle.close();
  }
}
