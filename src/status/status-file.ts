// state/status.json: the public read model (CONTRACT §2, §9). The daemon writes it after every
// change that matters; the hook, `relay status`, the status page and scripts read it. It is the
// object `relay status --json` prints, minus what only a reader can know at read time (whether a
// daemon holds the lock, the queue's depth, which input.txt files exist), which readers overlay.
import * as z from "zod/mini";
import type { RelayPaths } from "../config/paths.js";
import { readJsonFile } from "../store/files.js";

export const STATUS_FORMAT = "relay-status/2";

const iso = z.string();

export const questionSchema = z.object({
  id: z.string(),
  session: z.string(),
  conversation: z.string(),
  question: z.string(),
  since: iso,
  /** reply: chat-Claude's [NEEDS-JC]; budget: a call would overspend; permission: Claude Code asks to run a tool */
  kind: z.enum(["reply", "budget", "permission"]),
});
export type QuestionView = z.infer<typeof questionSchema>;

export const conversationViewSchema = z.object({
  state: z.string(),
  sessions: z.array(z.string()),
  chars: z.number(),
  turns: z.number(),
  /** the id of this conversation's open question, if any */
  question: z.nullable(z.string()),
});
export type ConversationView = z.infer<typeof conversationViewSchema>;

export const statusFileSchema = z.looseObject({
  format: z.literal(STATUS_FORMAT),
  updatedAt: iso,
  pid: z.number(),
  state: z.string(),
  needsJc: z.nullable(z.object({ id: z.string(), session: z.string(), question: z.string(), since: iso })),
  questions: z.array(questionSchema),
  conversations: z.record(z.string(), conversationViewSchema),
  /** pending: replies waiting in the relay for that session (not the one in input.txt) */
  sessions: z.record(z.string(), z.object({ pending: z.number(), conversation: z.string(), awaitingAck: z.optional(z.boolean()) })),
  history: z.object({ chars: z.number(), turns: z.number() }),
  lastError: z.nullable(z.object({ message: z.string(), at: iso })),
  retry: z.nullable(z.object({ kind: z.enum(["transient", "permanent"]), attempt: z.number(), nextTryAt: iso, since: iso, message: z.string() })),
  calls: z.object({ inFlight: z.number(), maxParallel: z.number() }),
  cost: z.object({ totalUsd: z.number(), todayUsd: z.number(), calls: z.number(), unpricedCalls: z.number() }),
  /** Claude Code permission prompts: those chat-Claude is deciding (permissions.policy), and the latest decisions with who made them */
  permissions: z.optional(
    z.object({
      deciding: z.array(z.string()),
      recent: z.array(z.object({ id: z.string(), session: z.string(), allow: z.boolean(), by: z.string(), reason: z.string() })),
    }),
  ),
});
export type StatusFile = z.infer<typeof statusFileSchema>;

export type StatusFileRead = { kind: "none" } | { kind: "ok"; status: StatusFile } | { kind: "invalid"; error: string };

export async function readStatusFile(paths: RelayPaths): Promise<StatusFileRead> {
  const read = await readJsonFile(statusFilePath(paths), statusFileSchema);
  if (read.ok) return { kind: "ok", status: read.value };
  if (read.missing) return { kind: "none" };
  return { kind: "invalid", error: read.error };
}

export const statusFilePath = (paths: RelayPaths): string => `${paths.state}/status.json`;
