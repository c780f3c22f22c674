// dispatch/<session>/input.json: what the current input.txt answers (CONTRACT §5). Written before
// its input.txt appears and never rewritten while input.txt exists, so a reader that sees
// input.txt and then reads input.json gets the matching pair.
import { join } from "node:path";
import * as z from "zod/mini";
import { type RelayPaths, sessionDir } from "../../config/paths.js";
import { readJsonFile } from "../../store/files.js";

export const REPLY_SOURCES = ["envelope", "jc-chat", "jc-direct"] as const;
export type ReplySource = (typeof REPLY_SOURCES)[number];

export const replyMetaSchema = z.looseObject({
  reply_id: z.string(),
  /** the id of the envelope this reply answers; null for JC's unprompted turns */
  in_reply_to: z.nullable(z.string()),
  source: z.enum(REPLY_SOURCES),
  at: z.string(),
});
export type ReplyMeta = z.infer<typeof replyMetaSchema>;

export const replyMetaFile = (paths: RelayPaths, session: string): string => join(sessionDir(paths, session), "input.json");

/** The current input.json of a session; null when missing or unreadable. */
export async function readReplyMeta(paths: RelayPaths, session: string): Promise<ReplyMeta | null> {
  const read = await readJsonFile(replyMetaFile(paths, session), replyMetaSchema);
  return read.ok ? read.value : null;
}
