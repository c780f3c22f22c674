// Snapshots of the single-machine version (format relay-snapshot/1): its schema, and the mapping
// of its context onto the root machine and its conversations. Nothing of it is lost: the input
// under way and its reply, JC's waiting turns and notes, the replies not yet delivered, the open
// question, the failure, and the ids already answered.
import * as z from "zod/mini";
import type { MigratedState } from "../../machines/relay.js";
import type { Delivery, Question, WorkItem } from "../../machines/types.js";

const v1Item = z.object({
  id: z.string(),
  source: z.enum(["envelope", "jc"]),
  session: z.string(),
  text: z.string(),
  file: z.optional(z.string()),
  timestamp: z.optional(z.string()),
});

export const v1ContextSchema = z.object({
  current: z.nullable(v1Item),
  reply: z.nullable(z.string()),
  notes: z.array(z.object({ id: z.string(), session: z.string(), text: z.string() })),
  jcChats: z.array(v1Item),
  outbox: z.record(z.string(), z.array(z.object({ id: z.string(), text: z.string(), staged: z.boolean() }))),
  unacked: z.array(z.string()),
  needsJc: z.nullable(z.object({ session: z.string(), question: z.string(), since: z.number() })),
  failure: z.nullable(z.object({ kind: z.enum(["transient", "permanent"]), message: z.string(), attempt: z.number(), nextAt: z.number(), since: z.number() })),
  lastError: z.nullable(z.object({ message: z.string(), at: z.number() })),
  lastSession: z.nullable(z.string()),
  done: z.array(z.string()),
  rejections: z.array(z.object({ id: z.string(), file: z.string(), reason: z.string(), at: z.number() })),
  overCap: z.array(z.string()),
});
export type V1Context = z.infer<typeof v1ContextSchema>;

const BUDGET_QUESTION = /^\[NEEDS-JC\] The (per-session )?daily budget/;

function workItem(item: z.infer<typeof v1Item>): WorkItem {
  return {
    id: item.id,
    source: item.source,
    session: item.session,
    text: item.text,
    // v1 envelopes had no ids of their own: the content hash was their id
    inReplyTo: item.source === "envelope" ? item.id : null,
    ...(item.file === undefined ? {} : { receipt: item.file }),
    ...(item.timestamp === undefined ? {} : { timestamp: item.timestamp }),
  };
}

export interface V1Files {
  /** the v1 staging file dispatch/<session>/.reply-<id>.tmp of a staged reply still exists */
  stagingExists(session: string, replyId: string): boolean;
  /** the conversation of a session (sessions removed from config.yaml go to the shared one) */
  conversationOf(session: string): string;
  /** the id of the input whose reply asked this question (the turn in the history), if found */
  askedBy(conversation: string, question: string): string | null;
}

/**
 * The v1 context as the v2 machines' state. A staged v1 reply whose staging file is gone was
 * renamed to input.txt already (v1's two-phase delivery): it is delivered, not queued again.
 */
export function migrateV1(v1: V1Context, files: V1Files): { state: MigratedState; rejections: V1Context["rejections"] } {
  const outbox: Delivery[] = [];
  const unacked = new Set(v1.unacked);
  for (const [session, replies] of Object.entries(v1.outbox)) {
    for (const r of replies) {
      if (r.staged && !files.stagingExists(session, r.id)) {
        unacked.add(session);
        continue;
      }
      const fromJc = r.id.startsWith("jc-");
      outbox.push({ replyId: `r-${r.id}`, session, inReplyTo: fromJc ? null : r.id, source: fromJc ? "jc-chat" : "envelope", text: r.text, at: 0 });
    }
  }

  const conversations: MigratedState["conversations"] = {};
  const of = (id: string) => (conversations[id] ??= { current: null, reply: null, chats: [], notes: [], question: null, summaryDue: false });
  // A summary v1 was making, or was due: the conversation makes it first.
  for (const conversation of v1.overCap) of(conversation).summaryDue = true;
  if (v1.current) {
    const c = of(files.conversationOf(v1.current.session));
    c.current = workItem(v1.current);
    c.reply = v1.reply;
  }
  for (const chat of v1.jcChats) of(files.conversationOf(chat.session)).chats.push(workItem(chat));
  for (const note of v1.notes) of(files.conversationOf(note.session)).notes.push(note);
  if (v1.needsJc) {
    const conversation = files.conversationOf(v1.needsJc.session);
    const question: Question = {
      id: `q-v1-${v1.needsJc.since}`,
      conversation,
      session: v1.needsJc.session,
      text: v1.needsJc.question,
      since: v1.needsJc.since,
      kind: BUDGET_QUESTION.test(v1.needsJc.question) ? "budget" : "reply",
      inReplyTo: BUDGET_QUESTION.test(v1.needsJc.question) ? null : files.askedBy(conversation, v1.needsJc.question),
    };
    of(conversation).question = question;
  }

  const failure = v1.failure
    ? { kind: v1.failure.kind === "permanent" ? ("permanent" as const) : ("rateLimited" as const), message: v1.failure.message, attempt: v1.failure.attempt, nextAt: v1.failure.nextAt, since: v1.failure.since }
    : null;

  return {
    state: { outbox, unacked: [...unacked], done: v1.done, lastSession: v1.lastSession, lastError: v1.lastError, failure, conversations },
    rejections: v1.rejections,
  };
}
