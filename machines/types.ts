// The words the machines speak: work items, replies, questions, failures. No I/O, no file names:
// a transport hands the relay work items with opaque receipts and takes deliveries back.

/** An incoming message the relay answers: an envelope, or a JC chat turn. */
export interface WorkItem {
  /** unique key of this input (an envelope's content hash, a JC claim's id), to answer it once */
  id: string;
  source: "envelope" | "jc";
  session: string;
  text: string;
  /** what the reply answers: the envelope's own id, or for JC's answer the asking envelope's; null for JC's unprompted turns */
  inReplyTo: string | null;
  /** the transport's handle on an envelope, to acknowledge or reject it; absent for JC turns */
  receipt?: string;
  /** the envelope's own ISO timestamp, when it had one */
  timestamp?: string;
}

/** JC's own words sent straight to a session, recorded in its conversation's history. */
export interface Note {
  id: string;
  session: string;
  text: string;
}

export type ReplySource = "envelope" | "jc-chat" | "jc-direct";

/** A reply for a session, waiting to be delivered (one input.txt per session, in order). */
export interface Delivery {
  replyId: string;
  session: string;
  inReplyTo: string | null;
  source: ReplySource;
  text: string;
  /** when the reply was made (ms) */
  at: number;
}

/** A question to JC: it holds its conversation until answered. */
export interface Question {
  id: string;
  conversation: string;
  session: string;
  text: string;
  since: number;
  /**
   * reply: chat-Claude asked ([NEEDS-JC]); budget: a call would overspend; permission: Claude
   * Code asks to run a tool (it does not hold the conversation: the agent waits, not the reviewer)
   */
  kind: "reply" | "budget" | "permission";
  /** what JC's answer, relayed to the session, answers */
  inReplyTo: string | null;
}

/**
 * Why a call failed. rateLimited and permanent concern every call (the root's gate);
 * transient is this conversation's own (a 5xx, a dropped connection) and backs off alone;
 * envelope: a 400 about this request; tooLong: the request does not fit the model's context;
 * budget: no call was made, a budget ran out.
 */
export interface Failure {
  kind: "transient" | "rateLimited" | "permanent" | "envelope" | "tooLong" | "budget";
  message: string;
  status?: number;
  retryAfterMs?: number;
}

/** called: the API was really asked (not a reply found in the history after a crash, not a dry run) */
export type CallResult = { ok: true; text: string; at: number; called: boolean } | { ok: false; failure: Failure; at: number; jitter: number };

export interface CommitInput {
  conversation: string;
  turn: { item: WorkItem; reply: string } | null;
  notes: Note[];
}
export interface CommitResult {
  /** the conversation's history is past the char cap after this commit */
  overCap: boolean;
  /** the notes this commit recorded (notes that arrived meanwhile wait for the next) */
  noteIds: string[];
  at: number;
}

/** folded: how many entries went into the summary (0: nothing was left to fold) */
export type SummarizeResult = { ok: true; folded: number; at: number } | { ok: false; message: string; at: number };

export interface RetryState {
  message: string;
  attempt: number;
  nextAt: number;
  since: number;
}

export type NotifyKind = "needsJc" | "permission" | "stopFailure" | "failureStarted" | "failureEnded" | "paused" | "error";

/** A Claude Code session's turns ending on API errors, as the StopFailure hook records them: one streak until a turn stops normally. */
export interface StopFailure {
  /** the streak's id: JC is told once per streak */
  streak: string;
  session: string;
  /** Claude Code's session id, for `claude --resume` */
  ccSession: string | null;
  /** the project directory Claude Code ran in */
  cwd: string | null;
  /** Claude Code's error class: rate_limit, overloaded, server_error, authentication_failed, billing_error, … */
  error: string;
  /** what Claude Code said (redacted, one line) */
  message: string;
  /** when the limit resets, if the message says so */
  resetsAt: string | null;
  /** failures in this streak so far */
  count: number;
  first: string;
  last: string;
}

/** A Claude Code permission prompt the PermissionRequest hook put before JC. */
export interface PermissionRequest {
  id: string;
  session: string;
  /** what the agent wants to do, in one paragraph: the tool, the command or path, its stated reason */
  text: string;
  since: number;
  /** the tool Claude Code asks to run (absent in requests of hooks before permissions.policy) */
  tool?: string;
  /** Bash's command, as the agent wrote it */
  command?: string;
  /** the file the tool would read or write */
  path?: string;
  /** the agent's stated reason (Bash's description) */
  reason?: string;
  /** what the agent did so far in this turn (redacted, capped), for whoever decides */
  evidence?: string;
  /** when the hook gives up and denies (epoch ms) */
  deadline?: number;
}

/** What chat-Claude answered a prompt the policy let it decide; undecided: it goes to JC, saying why. */
export type PolicyVerdict = { kind: "allow" | "deny"; reason: string } | { kind: "undecided"; why: string };

/** Who decided a permission prompt, as logged and written in its decision. */
export const DECIDED_BY = { jc: "jc", policy: "chat-claude (policy)", timeout: "timeout", relay: "relay" } as const;

/** An answer beginning with "allow" (any case) allows; anything else denies, with the answer as the reason. */
export const allowsPermission = (answer: string): boolean => /^\s*allow\b/i.test(answer);
export interface NotifyParams {
  kind: NotifyKind;
  session?: string;
  questionId?: string;
  message: string;
}

const NEEDS_JC_MARK = "[NEEDS-JC]";
const NEEDS_JC_WINDOW = 200;

/** A reply that asks JC: `[NEEDS-JC]` in its first 200 characters. */
export const needsJcIn = (reply: string): boolean => reply.slice(0, NEEDS_JC_WINDOW).includes(NEEDS_JC_MARK);

/** Reply ids follow from what they answer, so a reply made again after a crash has the same id. */
export const replyIdFor = (itemId: string): string => `r-${itemId}`;
export const questionIdFor = (itemId: string): string => `q-${itemId}`;

export const messageOf = (err: unknown): string => (err instanceof Error ? err.message : String(err));
