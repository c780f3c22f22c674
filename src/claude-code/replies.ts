// The hooks' side of dispatch/<session>/ (CONTRACT §5): read input.txt with the input.json that
// says what it answers, take it into the hooks' own inbox (./handover.ts) and only then delete it
// (the acknowledgement), and wait for the reply to the envelope a hook just sent. Also what
// state/status.json says holds the session's conversation.
import { stat, unlink } from "node:fs/promises";
import { dirname } from "node:path";
import { inputFile, type RelayPaths } from "../config/paths.js";
import { readRelayMirror } from "../status/remote-status.js";
import { type QuestionView, readStatusFile, type StatusFile } from "../status/status-file.js";
import { DirWaiter } from "../store/dir-waiter.js";
import { isErrno, readIfPresent, syncDir } from "../store/files.js";
import { ensureSessionDir } from "../transport/file/dispatch.js";
import { readReplyMeta, type ReplyMeta } from "../transport/file/reply-meta.js";
import { type HandoverItem, type HandoverOrigin, storeItem, unlabelledReplyId } from "./handover.js";
import { forgetSent, hasLiveWaiter, readSent } from "./sent-envelopes.js";

export const POLL_MS = 100;

/** input.txt as read, with the input.json that describes it and the file's identity. */
export interface SeenReply {
  text: string;
  meta: ReplyMeta | null;
  /** device, inode, size and mtime: the relay renames each reply into place, so a new reply is a new inode */
  stamp: string;
}

async function stampOf(file: string): Promise<string | null> {
  try {
    const st = await stat(file);
    return `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
  } catch (err) {
    if (isErrno(err, "ENOENT")) return null;
    throw err;
  }
}

/**
 * The reply waiting in input.txt, read in the contract's order: input.txt, then input.json
 * (never rewritten while input.txt exists). Null when there is none, or when input.txt changed
 * while it was read (the next look sees the new one).
 */
export async function peekReply(paths: RelayPaths, session: string): Promise<SeenReply | null> {
  const file = inputFile(paths, session);
  const before = await stampOf(file);
  if (before === null) return null;
  const text = await readIfPresent(file);
  if (text === null) return null;
  const meta = await readReplyMeta(paths, session);
  return (await stampOf(file)) === before ? { text, meta, stamp: before } : null;
}

/** Acknowledge the reply that was read (delete input.txt), and never a newer one; false if it is gone. */
export async function ackReply(paths: RelayPaths, session: string, seen: SeenReply): Promise<boolean> {
  const file = inputFile(paths, session);
  if ((await stampOf(file)) !== seen.stamp) return false;
  try {
    await unlink(file);
    await syncDir(dirname(file));
  } catch (err) {
    if (isErrno(err, "ENOENT")) return false;
    throw err;
  }
  return true;
}

/** Whose reply it is: one a live hook of this session waits for (left to it), or ours to take. */
export type Classified = { kind: "theirs" } | { kind: "ours"; item: HandoverItem };

export async function classifyReply(paths: RelayPaths, session: string, seen: SeenReply, ownId: string | null, now = Date.now()): Promise<Classified> {
  const meta = seen.meta;
  const takenAt = new Date(now).toISOString();
  if (meta === null) {
    return { kind: "ours", item: { replyId: unlabelledReplyId(seen.text, seen.stamp), inReplyTo: null, source: null, origin: { kind: "unlabelled" }, text: seen.text, takenAt, handed: null } };
  }
  const to = meta.in_reply_to;
  let origin: HandoverOrigin = { kind: "jc" };
  if (to !== null) {
    const sent = await readSent(paths, session, to);
    if (sent !== null && to !== ownId && hasLiveWaiter(sent, now)) return { kind: "theirs" };
    origin = sent === null ? { kind: "other" } : { kind: "sent", quote: sent.quote, sentAt: sent.sentAt };
  }
  return { kind: "ours", item: { replyId: meta.reply_id, inReplyTo: to, source: meta.source, origin, text: seen.text, takenAt, handed: null } };
}

/**
 * Take the reply in input.txt into the hooks' inbox, then acknowledge it. Returns the item, or
 * null when there is none, it belongs to a live hook of this session, or it changed meanwhile.
 */
export async function takeReply(paths: RelayPaths, session: string, ownId: string | null): Promise<HandoverItem | null> {
  const seen = await peekReply(paths, session);
  if (seen === null) return null;
  const whose = await classifyReply(paths, session, seen, ownId);
  if (whose.kind === "theirs") return null;
  await storeItem(paths, session, whose.item);
  if (!(await ackReply(paths, session, seen))) return null;
  if (whose.item.inReplyTo !== null) await forgetSent(paths, session, whose.item.inReplyTo);
  return whose.item;
}

/** Why this session's conversation gets no reply for now. */
export type Hold =
  | { kind: "question"; question: QuestionView }
  | { kind: "paused"; message: string }
  /** API calls back off (429, 529, a network fault) until `until` (epoch ms) */
  | { kind: "backingOff"; until: number; message: string }
  /** an agent's root (`transport: nats`) whose mirror of the relay's status is missing or too old */
  | { kind: "unreachable"; ageMs: number | null };

/**
 * What the relay's status says holds this session's conversation: an open question of its own
 * (asked by this session, or in the conversation it belongs to; other conversations' questions
 * do not count), API calls paused by a permanent failure, or a back-off that ends after
 * `deadline`. Null when nothing holds it, and when status.json is absent or unreadable. On an
 * agent's root (`agentRoot`) the status is the mirror in state/remote_status.json, and a mirror
 * that is missing or older than MIRROR_STALE_MS is itself a hold: the relay cannot be reached.
 */
export async function holdOf(paths: RelayPaths, session: string, deadline = Number.POSITIVE_INFINITY, opts: { agentRoot?: boolean } = {}): Promise<Hold | null> {
  let status: StatusFile;
  if (opts.agentRoot) {
    const mirror = await readRelayMirror(paths);
    if (mirror.kind === "none") return { kind: "unreachable", ageMs: null };
    if (mirror.kind === "stale") return { kind: "unreachable", ageMs: mirror.ageMs };
    if (mirror.status === null) return null;
    status = mirror.status;
  } else {
    const read = await readStatusFile(paths);
    if (read.kind !== "ok") return null;
    status = read.status;
  }
  const conversation = status.sessions[session]?.conversation;
  const question = status.questions.find((q) => q.kind !== "permission" && (q.session === session || (conversation !== undefined && q.conversation === conversation)));
  if (question) return { kind: "question", question };
  if (status.retry?.kind === "permanent") return { kind: "paused", message: status.retry.message };
  if (status.retry?.kind === "transient") {
    const until = Date.parse(status.retry.nextTryAt);
    if (Number.isFinite(until) && until > deadline) return { kind: "backingOff", until, message: status.retry.message };
  }
  return null;
}

export type WaitEnd = { kind: "answer"; item: HandoverItem } | { kind: "held"; hold: Hold } | { kind: "timeout" } | { kind: "cancelled" };

export interface WaitOptions {
  ownId: string | null;
  deadline: number;
  pollMs?: number;
  /** End the wait when the conversation is held (block mode); a wake-mode hook waits through it. */
  endOnHold: boolean;
  /** an agent's root: holds come from the mirrored status (see holdOf) */
  agentRoot?: boolean;
  /** Called about every `heartbeatMs` while waiting; returning false ends the wait (`cancelled`). */
  heartbeat?: () => Promise<boolean>;
  heartbeatMs?: number;
}

/**
 * Wait (polling plus fs.watch) until the reply to `ownId` is in input.txt, taking every reply
 * that is not for a live hook of this session on the way (so the relay can deliver the next).
 * With `ownId` null it only takes what is there.
 */
export async function waitForAnswer(paths: RelayPaths, session: string, opts: WaitOptions): Promise<WaitEnd> {
  const pollMs = opts.pollMs ?? POLL_MS;
  const waiter = new DirWaiter(await ensureSessionDir(paths, session));
  try {
    let lastHoldCheck = 0;
    let lastBeat = Date.now();
    for (;;) {
      const item = await takeReply(paths, session, opts.ownId);
      if (item !== null) {
        if (opts.ownId !== null && item.inReplyTo === opts.ownId) return { kind: "answer", item };
        continue; // the next reply may already be there
      }
      if (opts.ownId === null) return { kind: "timeout" };
      if (opts.endOnHold && Date.now() - lastHoldCheck >= 2 * pollMs) {
        lastHoldCheck = Date.now();
        const hold = await holdOf(paths, session, opts.deadline, { agentRoot: opts.agentRoot === true });
        if (hold) return { kind: "held", hold };
      }
      if (opts.heartbeat && Date.now() - lastBeat >= (opts.heartbeatMs ?? 60_000)) {
        lastBeat = Date.now();
        if (!(await opts.heartbeat())) return { kind: "cancelled" };
      }
      const left = opts.deadline - Date.now();
      if (left <= 0) return { kind: "timeout" };
      await waiter.next(Math.min(pollMs, left));
    }
  } finally {
    waiter.close();
  }
}
