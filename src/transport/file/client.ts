// The two ways in, shared by the CLI, the status page and the Claude Code hook: an envelope
// dropped into queue/ (the contract's atomic way), with a wait for its reply in
// dispatch/<session>/, and JC's answer in state/jc_input.txt.
import { randomBytes } from "node:crypto";
import { type FSWatcher, watch } from "node:fs";
import { access, type FileHandle, open, rename, stat, unlink } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { type ClientConfig, SESSION_ID } from "../../config/config.js";
import { inputFile, type RelayPaths, sessionDir } from "../../config/paths.js";
import { parseJcInput } from "../../operator/jc-input.js";
import { readRelayStatus } from "../../status/remote-status.js";
import type { QuestionView } from "../../status/status-file.js";
import { monotonicMs } from "../../runtime/monotonic.js";
import { ensureDirs, isErrno, syncDir, writeAtomic, writeDurable } from "../../store/files.js";
import { ENVELOPE_ID, MAX_CONTENT_BYTES } from "./queue.js";
import { type ReplyMeta, readReplyMeta } from "./reply-meta.js";

export type InboxResult<T> = { ok: true; value: T } | { ok: false; error: string };

/** A fresh envelope id: `send-<base36 time>-<8 hex>`. */
export const newEnvelopeId = (): string => `send-${Date.now().toString(36)}-${randomBytes(4).toString("hex")}`;

const known = (config: ClientConfig, session: string) => config.sessions.some((s) => s.id === session);
const sessionList = (config: ClientConfig) => config.sessions.map((s) => s.id).join(", ");

/** Write queue/.NAME.tmp, then rename it to queue/NAME.json. The envelope carries `id` (given, or a fresh one). */
export async function dropEnvelope(
  paths: RelayPaths,
  config: ClientConfig,
  session: string,
  content: string,
  opts: { id?: string } = {},
): Promise<InboxResult<{ file: string; id: string }>> {
  if (!SESSION_ID.test(session)) return { ok: false, error: `${JSON.stringify(session)} is not a valid session id (${SESSION_ID.source})` };
  if (!known(config, session)) return { ok: false, error: `session ${session} is not in config.yaml (sessions: ${sessionList(config)})` };
  if (opts.id !== undefined && !ENVELOPE_ID.test(opts.id)) return { ok: false, error: `${JSON.stringify(opts.id)} is not a valid envelope id (${ENVELOPE_ID.source})` };
  if (content.trim() === "") return { ok: false, error: "the message is empty" };
  if (Buffer.byteLength(content, "utf8") > MAX_CONTENT_BYTES) return { ok: false, error: "the message is over 1 MiB" };
  const id = opts.id ?? newEnvelopeId();
  await ensureDirs(paths.queue);
  const name = `${Date.now()}-${session}-${randomBytes(4).toString("hex")}`;
  const tmp = join(paths.queue, `.${name}.tmp`);
  await writeDurable(tmp, JSON.stringify({ session_id: session, id, timestamp: new Date().toISOString(), content }));
  await rename(tmp, join(paths.queue, `${name}.json`));
  await syncDir(paths.queue);
  return { ok: true, value: { file: `${name}.json`, id } };
}

export type AwaitedReply = { kind: "reply"; text: string; meta: ReplyMeta } | { kind: "timeout" };

/**
 * The reply in dispatch/<session>/input.txt when its input.json says it answers `id`; it is then
 * acknowledged (input.txt deleted, the directory fsync'd). A reply to anything else is left alone.
 * input.txt is read first and input.json second; the open input.txt still being linked afterwards
 * proves the pair matches (the relay never rewrites input.json while input.txt exists).
 */
export async function takeReplyTo(paths: RelayPaths, session: string, id: string): Promise<{ text: string; meta: ReplyMeta } | null> {
  const file = inputFile(paths, session);
  let handle;
  try {
    handle = await open(file, "r");
  } catch (err) {
    if (isErrno(err, "ENOENT")) return null;
    throw err;
  }
  let text: string;
  try {
    text = await handle.readFile("utf8");
    const meta = await readReplyMeta(paths, session);
    if (meta?.in_reply_to !== id) return null;
    // Taken meanwhile (deleted, or renamed away by the reader it was for): input.json may be the next reply's.
    if (!(await stillAt(handle, file))) return null;
    await unlink(file);
    await syncDir(sessionDir(paths, session));
    return { text, meta };
  } finally {
    await handle.close();
  }
}

/** Whether the file open as `handle` is still the one at `path` (not deleted, not renamed away and replaced). */
async function stillAt(handle: FileHandle, path: string): Promise<boolean> {
  const opened = await handle.stat();
  if (opened.nlink === 0) return false;
  const there = await stat(path).catch(() => null);
  return there !== null && there.ino === opened.ino && there.dev === opened.dev;
}

/** The open questions that hold `session`'s conversation, from state/status.json. */
async function questionsFor(paths: RelayPaths, config: ClientConfig, session: string): Promise<QuestionView[]> {
  const read = await readRelayStatus(paths, { agentRoot: config.agentName !== undefined });
  if (read.kind !== "ok") return [];
  // On an agent's root the conversation is the relay's to know: its status says which one the session is in.
  const conversation = config.sessions.find((s) => s.id === session)?.conversation ?? read.status.sessions[session]?.conversation;
  return read.status.questions.filter((q) => q.session === session || q.conversation === conversation);
}

/**
 * Wait (fs.watch on dispatch/<session>/, and polling) for the reply to envelope `id`, take it and
 * acknowledge it. A question the relay opens in that conversation meanwhile is reported once
 * through `onQuestion` and the wait goes on (JC will answer it). The deadline is monotonic.
 */
export async function awaitReply(
  paths: RelayPaths,
  config: ClientConfig,
  session: string,
  id: string,
  opts: { timeoutMs: number; pollMs?: number; onQuestion?: (q: QuestionView) => void },
): Promise<AwaitedReply> {
  const dir = sessionDir(paths, session);
  await ensureDirs(dir);
  const pollMs = opts.pollMs ?? Math.min(250, config.pollIntervalMs);
  const deadline = monotonicMs() + opts.timeoutMs;
  let wake: () => void = () => undefined;
  let watcher: FSWatcher | null = null;
  try {
    watcher = watch(dir, () => wake());
    watcher.on("error", () => undefined); // polling carries on
  } catch {
    watcher = null; // no file-system events here: polling alone
  }
  let noted = false;
  try {
    for (;;) {
      const reply = await takeReplyTo(paths, session, id);
      if (reply) return { kind: "reply", ...reply };
      if (!noted && opts.onQuestion) {
        const [question] = await questionsFor(paths, config, session);
        if (question) {
          noted = true;
          opts.onQuestion(question);
        }
      }
      const left = deadline - monotonicMs();
      if (left <= 0) return { kind: "timeout" };
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(pollMs, left));
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wake = () => undefined;
    }
  } finally {
    watcher?.close();
  }
}

const exists = (path: string) => access(path).then(() => true, () => false);

const excerpt = (s: string, n: number) => {
  const flat = s.replace(/\s+/g, " ").trim();
  return flat.length > n ? `${flat.slice(0, n)}…` : flat;
};

/** Why plain text cannot go in now: several questions are open and it would answer only the oldest. */
async function ambiguity(paths: RelayPaths, config: ClientConfig): Promise<string | null> {
  const read = await readRelayStatus(paths, { agentRoot: config.agentName !== undefined });
  if (read.kind !== "ok" || read.status.questions.length < 2) return null;
  const list = read.status.questions.map((q) => `${q.id} (${q.session}: ${JSON.stringify(excerpt(q.question, 60))})`).join(", ");
  return `${read.status.questions.length} questions are open: ${list}; pick one with --question ID (or --session ID)`;
}

export interface JcSubmitOptions {
  /** how long to wait for the relay to take an earlier unread answer */
  waitMs?: number;
  /** answer this open question: written as {"text", "question"} */
  question?: string;
  /** a turn in this session's conversation: written as {"text", "session"} */
  session?: string;
  /** refuse plain chat text (no @session:, no question or session) while 2+ questions are open */
  refuseAmbiguous?: boolean;
}

export type JcSubmitted = { kind: "direct"; session: string } | { kind: "chat"; session?: string; question?: string };

/**
 * Write JC's answer atomically to state/jc_input.txt: plain text as given, or the JSON form when a
 * question or session is named. An earlier answer not yet read is never overwritten: this waits
 * for the relay to take it (a few poll intervals at most).
 */
export async function submitJcInput(paths: RelayPaths, config: ClientConfig, text: string, opts: JcSubmitOptions = {}): Promise<InboxResult<JcSubmitted>> {
  let body: string;
  let taken: JcSubmitted;
  if (opts.question !== undefined && opts.session !== undefined) return { ok: false, error: "name a question or a session, not both" };
  if (opts.question !== undefined || opts.session !== undefined) {
    if (text.trim() === "") return { ok: false, error: "the answer is empty" };
    if (opts.question !== undefined) {
      if (opts.question.trim() === "") return { ok: false, error: "the question id is empty" };
      body = JSON.stringify({ text, question: opts.question });
      taken = { kind: "chat", question: opts.question };
    } else {
      const session = opts.session ?? "";
      if (!SESSION_ID.test(session) || !known(config, session)) return { ok: false, error: `session ${session} is not in config.yaml (sessions: ${sessionList(config)})` };
      body = JSON.stringify({ text, session });
      taken = { kind: "chat", session };
    }
  } else {
    const parsed = parseJcInput(text);
    if (parsed.kind === "empty") return { ok: false, error: "the answer is empty" };
    if (parsed.kind === "invalid") return { ok: false, error: parsed.reason };
    if (parsed.session !== undefined && !known(config, parsed.session)) {
      return { ok: false, error: `${parsed.session} is not a session in config.yaml (sessions: ${sessionList(config)})` };
    }
    if (parsed.kind === "chat" && parsed.question === undefined && parsed.session === undefined && opts.refuseAmbiguous) {
      const why = await ambiguity(paths, config);
      if (why !== null) return { ok: false, error: why };
    }
    body = text.trim();
    taken =
      parsed.kind === "direct"
        ? { kind: "direct", session: parsed.session }
        : { kind: "chat", ...(parsed.session === undefined ? {} : { session: parsed.session }), ...(parsed.question === undefined ? {} : { question: parsed.question }) };
  }
  await ensureDirs(paths.state);
  const deadline = monotonicMs() + (opts.waitMs ?? Math.max(5_000, 3 * config.pollIntervalMs));
  while (await exists(paths.jcInput)) {
    if (monotonicMs() > deadline) return { ok: false, error: "an earlier JC answer in state/jc_input.txt has not been read yet; is `relay run` running?" };
    await sleep(25);
  }
  await writeAtomic(paths.jcInput, `${body}\n`);
  return { ok: true, value: taken };
}
