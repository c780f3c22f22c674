// The Claude Code side of the relay (CONTRACT §10, FACTS "Claude Code hooks"): what the Stop and
// SessionStart hooks read on stdin, the agent's last message, the decision printed back, the wait
// for dispatch/<session>/input.txt, and the entries merged into .claude/settings.json.
import { existsSync, type FSWatcher, watch } from "node:fs";
import { mkdir, stat, unlink } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import type { RelayConfig } from "../config/config.js";
import { ensureSessionDir } from "../transport/file/dispatch.js";
import { dropEnvelope } from "../transport/file/client.js";
import { readReplyMeta, type ReplyMeta, type ReplySource } from "../transport/file/reply-meta.js";
import { type QuestionView, readStatusFile } from "../status/status-file.js";
import { probeLock } from "../store/lock.js";
import { inputFile, type RelayPaths } from "../config/paths.js";
import { abandonSent, forgetSent, hasLiveWaiter, hookEnvelopeId, readSent, recordSent } from "./sent-envelopes.js";
import { isErrno, readIfPresent, readJsonFile, syncDir, writeAtomic, writeJsonAtomic } from "../store/files.js";

// ---------------------------------------------------------------------------
// Knobs

// DEFAULT_WAIT_S (our own wait by default: Claude Code's default hook timeout minus the margin
// below) and DEFAULT_MAX_TURNS live in ./defaults.js, which the commands' flags import cheaply.
export { DEFAULT_MAX_TURNS, DEFAULT_WAIT_S } from "./defaults.js";
/** The installed hook `timeout` is the wait plus this, so Claude Code never discards our output. */
export const HOOK_TIMEOUT_MARGIN_S = 60;
/** The SessionStart hook only reads one file. */
export const START_HOOK_TIMEOUT_S = 30;
/** Hook output over 10,000 characters is replaced by a file path and a preview; keep well below. */
export const INLINE_REPLY_MAX = 9_000;
/** How long to re-read a transcript that does not yet end with the agent's final text. */
export const TRANSCRIPT_LAG_MS = 3_000;
export const POLL_MS = 100;

// ---------------------------------------------------------------------------
// Standard input

const stopInputSchema = z.looseObject({
  session_id: z.string().optional(),
  transcript_path: z.string().optional(),
  cwd: z.string().optional(),
  hook_event_name: z.string().optional(),
  stop_hook_active: z.boolean().default(false),
  permission_mode: z.string().optional(),
  last_assistant_message: z.string().nullable().optional(),
});
export type StopInput = z.infer<typeof stopInputSchema>;

const startInputSchema = z.looseObject({
  session_id: z.string().optional(),
  hook_event_name: z.string().optional(),
  source: z.string().optional(),
});
export type StartInput = z.infer<typeof startInputSchema>;

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

function parseJsonWith<T>(raw: string, schema: z.ZodType<T>): Parsed<T> {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (err) {
    return { ok: false, error: raw.trim() === "" ? "standard input is empty" : `standard input is not JSON (${(err as Error).message})` };
  }
  const parsed = schema.safeParse(json);
  if (parsed.success) return { ok: true, value: parsed.data };
  const [issue] = parsed.error.issues;
  const where = issue && issue.path.length > 0 ? `${issue.path.map(String).join(".")}: ` : "";
  return { ok: false, error: `standard input is not the hook's JSON (${where}${issue?.message ?? "invalid"})` };
}

export const parseStopInput = (raw: string): Parsed<StopInput> => parseJsonWith(raw, stopInputSchema);
export const parseStartInput = (raw: string): Parsed<StartInput> => parseJsonWith(raw, startInputSchema);

/** All of standard input, or what arrived before `timeoutMs` (Claude Code writes it and closes it). */
export async function readStdin(stream: NodeJS.ReadStream = process.stdin, timeoutMs = 5_000): Promise<string> {
  if (stream.isTTY) return "";
  const chunks: Buffer[] = [];
  await new Promise<void>((resolve) => {
    const timer = setTimeout(finish, timeoutMs);
    function finish(): void {
      clearTimeout(timer);
      stream.off("data", onData);
      stream.off("end", finish);
      stream.off("error", finish);
      stream.pause();
      resolve();
    }
    function onData(chunk: Buffer | string): void {
      chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : chunk);
    }
    stream.on("data", onData);
    stream.once("end", finish);
    stream.once("error", finish);
  });
  if (!stream.readableEnded) stream.destroy();
  return Buffer.concat(chunks).toString("utf8");
}

// ---------------------------------------------------------------------------
// The transcript (JSONL, undocumented): one content block per line, the lines of one message
// share message.id, `content` may be a plain string, and it is written asynchronously.

const blockSchema = z.looseObject({ type: z.string(), text: z.string().optional() });
const entrySchema = z.looseObject({
  type: z.string().optional(),
  isSidechain: z.boolean().optional(),
  isMeta: z.boolean().optional(),
  message: z
    .looseObject({
      id: z.string().optional(),
      role: z.string().optional(),
      content: z.union([z.string(), z.array(z.unknown())]).optional(),
    })
    .optional(),
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

const expandHome = (path: string): string => (path === "~" || path.startsWith("~/") ? join(homedir(), path.slice(1)) : path);

/**
 * The agent's last message from the transcript. The Stop hook may run before the last lines are
 * written, so until the transcript ends with assistant text (and has stopped growing), re-read it
 * every `pollMs` for up to `lagMs`; then take what is there.
 */
export async function readTranscriptMessage(path: string, opts: { lagMs?: number; pollMs?: number } = {}): Promise<string> {
  const file = expandHome(path);
  const pollMs = opts.pollMs ?? POLL_MS;
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

// ---------------------------------------------------------------------------
// What the hooks print

export const blockDecision = (reason: string): string => JSON.stringify({ decision: "block", reason });
/** A line shown to the user; it does not block, so the agent stops. */
export const stopNotice = (message: string): string => JSON.stringify({ systemMessage: message });
export const sessionStartOutput = (context: string): string =>
  JSON.stringify({ hookSpecificOutput: { hookEventName: "SessionStart", additionalContext: context } });

/** The reason printed instead of a reply too long for Claude Code's hook output cap. */
export function longReplyPointer(file: string, reply: string): string {
  const preview: string[] = [];
  let chars = 0;
  for (const line of reply.split("\n").slice(0, 20)) {
    if (chars + line.length > 1_500) break;
    preview.push(line);
    chars += line.length + 1;
  }
  return [
    `The relay's reply is ${reply.length} characters long, too long to pass here, so it was saved to a file.`,
    `Read the whole file before you go on; it is your next instruction: ${file}`,
    "",
    "It begins:",
    "",
    ...preview,
    "[…]",
  ].join("\n");
}

/** The reply as the reason, or, when it is too long, saved under state/hooks/ and pointed at. */
export async function fitReply(paths: RelayPaths, session: string, text: string): Promise<string> {
  if (text.length <= INLINE_REPLY_MAX) return text;
  const dir = hooksDir(paths);
  await mkdir(dir, { recursive: true });
  const file = join(dir, `${session}-reply-${Date.now()}.md`);
  await writeAtomic(file, text.endsWith("\n") ? text : `${text}\n`);
  return longReplyPointer(file, text);
}

// ---------------------------------------------------------------------------
// state/hooks/<session>.json: consecutive relayed turns (blocks) of a session

const hooksDir = (paths: RelayPaths): string => join(paths.state, "hooks");
export const hookStateFile = (paths: RelayPaths, session: string): string => join(hooksDir(paths), `${session}.json`);

const hookStateSchema = z.object({ consecutive: z.number().int().min(0), updatedAt: z.string().optional() });
export type HookState = z.infer<typeof hookStateSchema>;

export async function readHookState(paths: RelayPaths, session: string): Promise<HookState> {
  const read = await readJsonFile(hookStateFile(paths, session), hookStateSchema);
  return read.ok ? read.value : { consecutive: 0 };
}

async function writeHookState(paths: RelayPaths, session: string, consecutive: number): Promise<void> {
  await mkdir(hooksDir(paths), { recursive: true });
  await writeJsonAtomic(hookStateFile(paths, session), { consecutive, updatedAt: new Date().toISOString() });
}

// ---------------------------------------------------------------------------
// dispatch/<session>/input.txt and the input.json that says what it answers (CONTRACT §5)

/** What a reply answers, when it is not the reply to the message the hook just sent. */
export type ReplyOrigin =
  /** an earlier envelope of this session's hooks, whose wait ended before the reply came */
  | { kind: "late"; inReplyTo: string; quote: string; sentAt: string; source: ReplySource }
  /** an envelope no hook of this session sent (`relay send`, a script) */
  | { kind: "other"; inReplyTo: string; source: ReplySource }
  /** no envelope: a turn JC started */
  | { kind: "jc"; source: ReplySource }
  /** no input.json beside input.txt (a relay older than CONTRACT version 2) */
  | { kind: "unlabelled" };

export interface OtherReply {
  text: string;
  origin: ReplyOrigin;
}

const viaJc = (source: ReplySource): string => (source === "envelope" ? "" : ", by way of JC");

/** What the reply is, as a phrase: "the reply to your earlier message “…” (…)". */
export function describeOrigin(origin: ReplyOrigin): string {
  switch (origin.kind) {
    case "late":
      return `the reply to your earlier message “${origin.quote}” (envelope ${origin.inReplyTo}, sent ${origin.sentAt}${viaJc(origin.source)})`;
    case "other":
      return `a reply to another message on this relay session (envelope ${origin.inReplyTo}${viaJc(origin.source)})`;
    case "jc":
      return origin.source === "jc-direct" ? "a message from JC" : "a message from the reviewer after a turn of JC's";
    case "unlabelled":
      return "a reply from the relay that does not say which message it answers (no input.json beside it)";
  }
}

/** The heading of a reply handed over beside (before) the reply to the latest message. */
export function otherReplyHeading(origin: ReplyOrigin): string {
  const what = describeOrigin(origin);
  if (origin.kind === "late") return `Late reply: ${what}, which arrived after that wait had ended. It is NOT the reply to your latest message:`;
  return `Also from the relay: ${what}. It is NOT the reply to your latest message:`;
}

/**
 * The block reason: replies that are not the answer first (they came first: replies to one
 * session arrive in order), each under its heading, then the reply to the latest message, or a
 * note saying why it is not there yet. The answer alone is passed as it is.
 */
export function composeReason(others: readonly OtherReply[], latest: { answer: string } | { note: string }): string {
  if (others.length === 0) return "answer" in latest ? latest.answer : latest.note;
  const parts: string[] = [];
  for (const other of others) parts.push(otherReplyHeading(other.origin), "", other.text.trimEnd(), "", "---", "");
  if ("answer" in latest) parts.push("The reply to your latest message:", "", latest.answer);
  else parts.push(latest.note);
  return parts.join("\n");
}

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

export type Classified = { kind: "answer" } | { kind: "theirs" } | { kind: "other"; origin: ReplyOrigin };

/**
 * Whose reply it is: the answer to `ownId`; one a live hook of this session waits for (left to
 * it); or another, handed over labelled.
 */
export async function classifyReply(paths: RelayPaths, session: string, meta: ReplyMeta | null, ownId: string | null): Promise<Classified> {
  if (meta === null) return { kind: "other", origin: { kind: "unlabelled" } };
  const to = meta.in_reply_to;
  if (to === null) return { kind: "other", origin: { kind: "jc", source: meta.source } };
  if (to === ownId) return { kind: "answer" };
  const sent = await readSent(paths, session, to);
  if (sent === null) return { kind: "other", origin: { kind: "other", inReplyTo: to, source: meta.source } };
  if (hasLiveWaiter(sent)) return { kind: "theirs" };
  return { kind: "other", origin: { kind: "late", inReplyTo: to, quote: sent.quote, sentAt: sent.sentAt, source: meta.source } };
}

/** Why this session's conversation gets no reply for now. */
export type Hold = { kind: "question"; question: QuestionView } | { kind: "paused"; message: string };

/**
 * What state/status.json says holds this session's conversation: an open question of its own
 * (asked by this session, or in the conversation it belongs to; other conversations' questions
 * do not count), or API calls paused by a permanent failure. Null when nothing holds it, and
 * when status.json is absent or unreadable (a relay that does not write it yet).
 */
export async function holdOf(paths: RelayPaths, session: string): Promise<Hold | null> {
  const read = await readStatusFile(paths);
  if (read.kind !== "ok") return null;
  const { status } = read;
  const conversation = status.sessions[session]?.conversation;
  const question = status.questions.find((q) => q.session === session || (conversation !== undefined && q.conversation === conversation));
  if (question) return { kind: "question", question };
  if (status.retry?.kind === "permanent") return { kind: "paused", message: status.retry.message };
  return null;
}

export type WaitEnd = { kind: "answer"; text: string } | { kind: "held"; hold: Hold } | { kind: "timeout" };
export interface WaitResult {
  /** Replies taken (acknowledged) on the way that are not the answer, oldest first */
  others: OtherReply[];
  end: WaitEnd;
}

/**
 * Wait (polling plus fs.watch) until the reply to `ownId` is in input.txt, taking and
 * acknowledging on the way every reply that is not for a live hook of this session, so the relay
 * can deliver the next one. Ends early when status.json says the conversation is held, and at
 * `deadline`. With `ownId` null it only takes what is there.
 */
export async function waitForAnswer(paths: RelayPaths, session: string, opts: { ownId: string | null; deadline: number; pollMs?: number }): Promise<WaitResult> {
  const pollMs = opts.pollMs ?? POLL_MS;
  const others: OtherReply[] = [];
  const dir = await ensureSessionDir(paths, session);
  let wake: (() => void) | null = null;
  let watcher: FSWatcher | null = null;
  try {
    watcher = watch(dir, () => wake?.());
    watcher.on("error", () => undefined);
  } catch {
    watcher = null; // polling alone still notices within pollMs
  }
  try {
    let lastHoldCheck = 0;
    for (;;) {
      const seen = await peekReply(paths, session);
      if (seen !== null) {
        const whose = await classifyReply(paths, session, seen.meta, opts.ownId);
        if (whose.kind !== "theirs" && (await ackReply(paths, session, seen))) {
          if (whose.kind === "answer") return { others, end: { kind: "answer", text: seen.text } };
          if (whose.origin.kind === "late") await forgetSent(paths, session, whose.origin.inReplyTo);
          others.push({ text: seen.text, origin: whose.origin });
          continue; // the next reply may already be there
        }
      }
      if (Date.now() - lastHoldCheck >= 2 * pollMs) {
        lastHoldCheck = Date.now();
        const hold = await holdOf(paths, session);
        if (hold) return { others, end: { kind: "held", hold } };
      }
      const left = opts.deadline - Date.now();
      if (left <= 0) return { others, end: { kind: "timeout" } };
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.min(pollMs, left));
        function done(): void {
          clearTimeout(timer);
          wake = null;
          resolve();
        }
        wake = done;
      });
    }
  } finally {
    watcher?.close();
  }
}

// ---------------------------------------------------------------------------
// The hooks

export interface HookOutcome {
  /** What goes to standard output (one JSON line), or nothing. */
  stdout: string | null;
  stderr: string[];
  exitCode: 0 | 1;
}

const quiet = (message: string): HookOutcome => ({ stdout: null, stderr: [`relay: ${message}`], exitCode: 0 });
const notice = (message: string): HookOutcome => ({ stdout: stopNotice(`relay: ${message}`), stderr: [`relay: ${message}`], exitCode: 0 });
const failed = (message: string): HookOutcome => ({ stdout: null, stderr: [`relay: ${message}`], exitCode: 1 });
const oneLine = (text: string, max = 200): string => {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > max ? `${flat.slice(0, max)}…` : flat;
};

export interface StopHookOptions {
  paths: RelayPaths;
  session: string;
  /** Standard input as read */
  input: string;
  /** When to give up waiting (epoch ms) */
  deadline: number;
  maxTurns: number;
  loadConfig: () => Promise<RelayConfig>;
  pollMs?: number;
  lagMs?: number;
}

/**
 * The Stop hook: relay the agent's last message and block with the reply, or let the agent stop
 * (exit 0, no block) when no relay runs, the relay needs JC, there is nothing to send, the turn
 * limit is reached or the wait times out. Never throws for bad input.
 */
export async function runStopHook(opts: StopHookOptions): Promise<HookOutcome> {
  const { paths, session } = opts;
  const parsed = parseStopInput(opts.input);
  if (!parsed.ok) return quiet(`${parsed.error}; nothing relayed, the agent stops`);
  const input = parsed.value;
  if (input.hook_event_name !== undefined && input.hook_event_name !== "Stop") {
    return quiet(`hook claude-stop runs as a Stop hook, not ${input.hook_event_name}; nothing relayed`);
  }

  if (!probeLock(paths.lock).held) return notice(`no relay is running on ${paths.root}; the message was not relayed (start one with: relay run --root ${paths.root})`);
  const hold = await holdOf(paths, session);
  if (hold) return notice(`${holdReason(hold)}; nothing relayed, the agent stops. ${holdRemedy(hold)}`);

  const state = await readHookState(paths, session);
  const consecutive = input.stop_hook_active ? state.consecutive : 0;
  if (!input.stop_hook_active && state.consecutive !== 0) await writeHookState(paths, session, 0);
  if (consecutive >= opts.maxTurns) {
    return notice(`${consecutive} relayed turns in a row (the limit, --max-turns ${opts.maxTurns}); the agent stops here. Say something to it to go on.`);
  }

  const message =
    typeof input.last_assistant_message === "string"
      ? input.last_assistant_message
      : input.transcript_path
        ? await readTranscriptMessage(input.transcript_path, {
            lagMs: Math.max(0, Math.min(opts.lagMs ?? TRANSCRIPT_LAG_MS, opts.deadline - Date.now())),
            ...(opts.pollMs === undefined ? {} : { pollMs: opts.pollMs }),
          })
        : "";
  if (message.trim() === "") return quiet("the agent's last message is empty; nothing relayed, the agent stops");

  let config: RelayConfig;
  try {
    config = await opts.loadConfig();
  } catch (err) {
    return failed(`${(err as Error).message}; nothing relayed`);
  }
  const poll = opts.pollMs === undefined ? {} : { pollMs: opts.pollMs };

  // Recorded before it is dropped, so the reply can never come before the record of what it answers.
  const id = hookEnvelopeId(input.session_id);
  await recordSent(paths, session, { id, message, deadline: opts.deadline });
  let answered = false;
  try {
    const sent = await dropEnvelope(paths, config, session, message, { id });
    if (!sent.ok) {
      await forgetSent(paths, session, id);
      // Nothing to wait for; still hand over what is already there for this session.
      const { others } = await waitForAnswer(paths, session, { ownId: null, deadline: Date.now(), ...poll });
      if (others.length > 0) return await block(opts, consecutive, composeReason(others, { note: `Your latest message was not relayed: ${sent.error}.` }));
      return failed(`${sent.error}; nothing relayed`);
    }

    const { others, end } = await waitForAnswer(paths, session, { ownId: id, deadline: opts.deadline, ...poll });
    if (end.kind === "answer") {
      answered = true;
      await forgetSent(paths, session, id);
      return await block(opts, consecutive, composeReason(others, { answer: end.text }));
    }
    if (others.length > 0) {
      const why = end.kind === "held" ? holdReason(end.hold) : "no reply from the relay in time";
      return await block(opts, consecutive, composeReason(others, { note: `The reply to your latest message has not come yet (${why}); it will be handed over at your next stop or session start.` }));
    }
    if (end.kind === "held") {
      return notice(`${holdReason(end.hold)}; the agent stops, and the reply to its message will be handed over at the next stop or session start. ${holdRemedy(end.hold)}`);
    }
    return notice(`no reply from the relay in time; the agent stops. The reply will be left in ${inputFile(paths, session)} and handed over at the next stop or session start.`);
  } finally {
    if (!answered) await abandonSent(paths, session, id);
  }
}

function holdReason(hold: Hold): string {
  if (hold.kind === "paused") return `API calls are paused (${oneLine(hold.message)})`;
  const q = hold.question;
  return `JC is needed: this conversation waits for JC's answer to ${q.session}'s question ${q.id} (“${oneLine(q.question)}”)`;
}

function holdRemedy(hold: Hold): string {
  return hold.kind === "paused" ? "Once the cause is fixed: relay resume" : `Answer with: relay jc --question ${hold.question.id} TEXT`;
}

async function block(opts: StopHookOptions, consecutive: number, reply: string): Promise<HookOutcome> {
  await writeHookState(opts.paths, opts.session, consecutive + 1);
  return { stdout: blockDecision(await fitReply(opts.paths, opts.session, reply)), stderr: [], exitCode: 0 };
}

/**
 * The SessionStart hook: hand over a reply waiting in input.txt (and delete it), saying what it
 * answers, else print nothing. A reply a live Stop hook of this session waits for is left to it.
 */
export async function runStartHook(opts: { paths: RelayPaths; session: string; input: string }): Promise<HookOutcome> {
  const nothing: HookOutcome = { stdout: null, stderr: [], exitCode: 0 };
  const parsed = parseStartInput(opts.input);
  const source = parsed.ok && parsed.value.source ? parsed.value.source : null;
  const seen = await peekReply(opts.paths, opts.session);
  if (seen === null) return nothing;
  const whose = await classifyReply(opts.paths, opts.session, seen.meta, null);
  if (whose.kind !== "other" || !(await ackReply(opts.paths, opts.session, seen))) return nothing;
  if (whose.origin.kind === "late") await forgetSent(opts.paths, opts.session, whose.origin.inReplyTo);
  const context = [
    `A reply from the relay (relay session ${opts.session}) arrived while this session was not waiting for it${source ? ` (session ${source})` : ""}.`,
    `It is ${describeOrigin(whose.origin)}; treat it as your next instruction:`,
    "",
    seen.text,
  ].join("\n");
  return { stdout: sessionStartOutput(await fitReply(opts.paths, opts.session, context)), stderr: [], exitCode: 0 };
}

// ---------------------------------------------------------------------------
// .claude/settings.json

/** bin/relay.js of this installation (from dist/src/ when built, from src/ under a test runner). */
export function relayBin(): string {
  for (const rel of ["../../../bin/relay.js", "../../bin/relay.js"]) {
    const path = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(path)) return path;
  }
  return fileURLToPath(new URL("../../../bin/relay.js", import.meta.url));
}

/** POSIX shell quoting, only where needed: hook commands run through a shell. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

export interface HookSpec {
  node: string;
  bin: string;
  root: string;
  session: string;
  /** The relay's own wait, seconds */
  waitS: number;
  maxTurns?: number;
}

export type HookKind = "claude-stop" | "claude-start";
const EVENT_OF = { "claude-stop": "Stop", "claude-start": "SessionStart" } as const satisfies Record<HookKind, string>;

export function hookCommand(kind: HookKind, spec: HookSpec): string {
  const base = [shellQuote(spec.node), shellQuote(spec.bin), "hook", kind, "--session", spec.session, "--root", shellQuote(spec.root)];
  if (kind === "claude-stop") {
    base.push("--timeout", String(spec.waitS));
    if (spec.maxTurns !== undefined) base.push("--max-turns", String(spec.maxTurns));
  }
  return base.join(" ");
}

export interface CommandHook {
  type: "command";
  command: string;
  timeout: number;
}

export function relayHooks(spec: HookSpec): { event: "Stop" | "SessionStart"; kind: HookKind; hook: CommandHook }[] {
  return [
    { event: "Stop", kind: "claude-stop", hook: { type: "command", command: hookCommand("claude-stop", spec), timeout: spec.waitS + HOOK_TIMEOUT_MARGIN_S } },
    { event: "SessionStart", kind: "claude-start", hook: { type: "command", command: hookCommand("claude-start", spec), timeout: START_HOOK_TIMEOUT_S } },
  ];
}

const escapeRe = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** Whether a settings.json hook entry is this session's relay hook of that kind. */
export function isRelayHook(entry: unknown, kind: HookKind, session: string): boolean {
  if (!isRecord(entry) || typeof entry.command !== "string") return false;
  return new RegExp(`(?:^|\\s)hook ${kind} --session ${escapeRe(session)}(?=\\s|$)`).test(entry.command);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The parts of settings.json we touch, checked before anything is changed. */
const groupSchema = z.looseObject({
  matcher: z.string({ error: "expected a string" }).optional(),
  hooks: z.array(z.looseObject({}, { error: "expected an object" }), { error: "expected a list of hooks" }),
}, { error: "expected an object with a hooks list" });
const settingsSchema = z.looseObject(
  {
    hooks: z
      .looseObject(
        {
          Stop: z.array(groupSchema, { error: "expected a list" }).optional(),
          SessionStart: z.array(groupSchema, { error: "expected a list" }).optional(),
        },
        { error: "expected an object" },
      )
      .optional(),
  },
  { error: "expected a JSON object" },
);

export interface SettingsFile {
  /** The parsed JSON, untouched (key order kept). */
  value: Record<string, unknown>;
  indent: string;
  finalNewline: boolean;
}

/** Parse settings.json text (null: no file yet). Errors are one line. */
export function parseSettings(text: string | null, file = ".claude/settings.json"): Parsed<SettingsFile> {
  if (text === null || text.trim() === "") return { ok: true, value: { value: {}, indent: "  ", finalNewline: true } };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    return { ok: false, error: `${file} is not valid JSON (${(err as Error).message}); fix it or move it aside, nothing was changed` };
  }
  const checked = settingsSchema.safeParse(json);
  if (!checked.success || !isRecord(json)) {
    const issue = checked.success ? undefined : checked.error.issues[0];
    const where = issue && issue.path.length > 0 ? issue.path.map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`)).join("").slice(1) : "(top level)";
    return { ok: false, error: `${file}: ${where}: ${issue?.message ?? "expected a JSON object"}; fix it or move it aside, nothing was changed` };
  }
  const indent = /^\{\s*\n([ \t]+)\S/.exec(text)?.[1] ?? "  ";
  return { ok: true, value: { value: json, indent, finalNewline: text.endsWith("\n") } };
}

export function formatSettings(file: SettingsFile): string {
  return `${JSON.stringify(file.value, null, file.indent)}${file.finalNewline ? "\n" : ""}`;
}

function sameHook(entry: Record<string, unknown>, hook: CommandHook): boolean {
  return entry.type === hook.type && entry.command === hook.command && entry.timeout === hook.timeout;
}

/**
 * Add (or bring up to date) this session's Stop and SessionStart hooks, keeping every other key
 * and hook as it is. `changed` is false when they were there already, exactly so.
 */
export function mergeRelayHooks(settings: Record<string, unknown>, spec: HookSpec): { value: Record<string, unknown>; changed: boolean } {
  const value = structuredClone(settings);
  let changed = false;
  const hooks = isRecord(value.hooks) ? value.hooks : (value.hooks = {});
  for (const { event, kind, hook } of relayHooks(spec)) {
    const existing = hooks[event];
    const groups: unknown[] = Array.isArray(existing) ? existing : [];
    hooks[event] = groups;
    let found = false;
    for (const group of groups) {
      if (!isRecord(group) || !Array.isArray(group.hooks)) continue;
      for (let i = 0; i < group.hooks.length; i++) {
        const entry: unknown = group.hooks[i];
        if (!isRelayHook(entry, kind, spec.session) || !isRecord(entry)) continue;
        if (found) {
          group.hooks.splice(i--, 1); // a duplicate of ours
          changed = true;
        } else if (!sameHook(entry, hook)) {
          Object.assign(entry, hook);
          changed = true;
        }
        found = true;
      }
    }
    if (!found) {
      groups.push({ hooks: [{ ...hook }] });
      changed = true;
    }
  }
  return { value: changed ? value : settings, changed };
}

/**
 * Remove exactly this session's relay hooks; a group, event list or `hooks` object left empty by
 * that goes too. Everything else stays as it is.
 */
export function removeRelayHooks(settings: Record<string, unknown>, session: string): { value: Record<string, unknown>; removed: number } {
  const value = structuredClone(settings);
  let removed = 0;
  const hooks = value.hooks;
  if (!isRecord(hooks)) return { value: settings, removed };
  for (const kind of ["claude-stop", "claude-start"] as const) {
    const event = EVENT_OF[kind];
    const groups = hooks[event];
    if (!Array.isArray(groups)) continue;
    let goneHere = 0;
    for (let g = 0; g < groups.length; g++) {
      const group: unknown = groups[g];
      if (!isRecord(group) || !Array.isArray(group.hooks)) continue;
      const entries: unknown[] = group.hooks;
      const kept = entries.filter((entry) => !isRelayHook(entry, kind, session));
      const gone = entries.length - kept.length;
      if (gone === 0) continue;
      goneHere += gone;
      group.hooks = kept;
      if (kept.length === 0) groups.splice(g--, 1);
    }
    removed += goneHere;
    if (goneHere > 0 && groups.length === 0) delete hooks[event];
  }
  if (removed > 0 && Object.keys(hooks).length === 0) delete value.hooks;
  return { value: removed > 0 ? value : settings, removed };
}

/** An error (oclif's parse errors span several lines) as one line for a hook's stderr. */
export function oneLineError(err: Error): string {
  const lines = (err.message || String(err))
    .split("\n")
    .map((l) => l.replace(/^[\s›]+/, "").trim())
    .filter((l) => l !== "" && !/^The following errors? occurred:?$/.test(l) && !/^See more help with --help$/.test(l));
  return lines.join("; ") || err.name;
}
