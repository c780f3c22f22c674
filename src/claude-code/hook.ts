// The Claude Code hooks (CONTRACT §10, FACTS "Claude Code hooks"): Stop relays the agent's last
// message and hands the reply over; SessionStart hands over what is waiting; SessionEnd releases
// the session. A reply is handed over as Stop `additionalContext` (block mode: the turn goes on;
// both tested versions show it to the model once, as "Stop hook additional context", without
// the "data" framing a block reason gets on 2.1.332) or, in wake mode, as the stderr of a
// background hook that exits 2 (Claude Code wakes the session).
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import * as z from "zod/mini";
import type { ClientConfig } from "../config/config.js";
import { inputFile, type RelayPaths } from "../config/paths.js";
import { probeLock } from "../store/lock.js";
import { readIfPresent, readJsonFile, writeJsonAtomic } from "../store/files.js";
import { formatAge } from "../status/remote-status.js";
import { dropEnvelope } from "../transport/file/client.js";
import { claimBinding, releaseBinding } from "./binding.js";
import { composeHandover, type Handed, listItems, markHanded, reconcile, type StoredItem } from "./handover.js";
import { parseEndInput, parseStartInput, parseStopInput, type StopInput } from "./hook-input.js";
import type { HookMode } from "./settings.js";
import { type Hold, holdOf, takeReply, waitForAnswer, type WaitEnd } from "./replies.js";
import { abandonSent, forgetSent, hookEnvelopeId, recordSent } from "./sent-envelopes.js";
import { formatEvidence, type GitStat, gitDiffStat, turnActivity } from "./evidence.js";
import { endStopFailureStreak } from "./stop-failure.js";
import { claudeCodeVersion, expandHome, readTranscriptMessage, TRANSCRIPT_LAG_MS } from "./transcript.js";
import { becomeWaiter, endWaiterOf, isWaiter, leaveWaiter } from "./waiter.js";

// DEFAULT_WAIT_S and DEFAULT_MAX_TURNS live in ./defaults.js, which the commands' flags import cheaply.
export { DEFAULT_MAX_TURNS, DEFAULT_WAIT_S } from "./defaults.js";

// ---------------------------------------------------------------------------
// What the hooks print

export interface HookOutcome {
  /** What goes to standard output (one JSON line), or nothing. */
  stdout: string | null;
  /** Lines for standard error; with exit code 2 (a wake), the text Claude Code hands the model. */
  stderr: string[];
  exitCode: 0 | 1 | 2;
}

/**
 * Claude Code keeps hook context up to 10,000 characters in the prompt; a longer one it saves to
 * a file of its own and shows a 2 KB preview with the path, which the agent may Read without a
 * permission prompt (tested on both versions, in -p too). Above this, the text says so up front.
 */
export const INLINE_CONTEXT_MAX = 9_500;
const LONG_NOTE =
  "(relay: this message is longer than Claude Code shows inline. If you see only a preview, Read the whole file it names before you do anything else: all of it is your instruction.)";

/** The Stop output that hands `text` over and lets the turn go on. */
export function stopHandOver(text: string, claudeCodeVersion: string | null): string {
  if (text.length <= INLINE_CONTEXT_MAX) return JSON.stringify({ hookSpecificOutput: { hookEventName: "Stop", additionalContext: text } });
  // Versions up to 2.1.197 show a block reason whole as plain "Stop hook feedback"; later ones frame it as data (FACTS).
  if (claudeCodeVersion !== null && plainBlockReason(claudeCodeVersion)) return JSON.stringify({ decision: "block", reason: text });
  return JSON.stringify({ hookSpecificOutput: { hookEventName: "Stop", additionalContext: `${LONG_NOTE}\n\n${text}` } });
}

/** Whether this Claude Code version shows a Stop block's reason as a plain user message (tested: 2.1.197 does, 2.1.332 does not). */
export function plainBlockReason(version: string): boolean {
  const [major, minor, patch] = version.split(".").map(Number);
  if (major === undefined || minor === undefined || patch === undefined || [major, minor, patch].some(Number.isNaN)) return false;
  return major < 2 || (major === 2 && (minor < 1 || (minor === 1 && patch <= 197)));
}
/** A line shown to the user; it does not continue the turn, so the agent stops. */
export const stopNotice = (message: string): string => JSON.stringify({ systemMessage: message });
export const sessionStartOutput = (context: string): string =>
  JSON.stringify({ hookSpecificOutput: { hookEventName: "SessionStart", additionalContext: context.length <= INLINE_CONTEXT_MAX ? context : `${LONG_NOTE}\n\n${context}` } });

const quiet = (message: string): HookOutcome => ({ stdout: null, stderr: [`relay: ${message}`], exitCode: 0 });
const notice = (message: string): HookOutcome => ({ stdout: stopNotice(`relay: ${message}`), stderr: [`relay: ${message}`], exitCode: 0 });
const failed = (message: string): HookOutcome => ({ stdout: null, stderr: [`relay: ${message}`], exitCode: 1 });
const oneLine = (text: string, max = 200): string => {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > max ? `${flat.slice(0, max)}…` : flat;
};

// ---------------------------------------------------------------------------
// state/hooks/<session>.json: consecutive relayed turns of a session

const hooksDir = (paths: RelayPaths): string => join(paths.state, "hooks");
export const hookStateFile = (paths: RelayPaths, session: string): string => join(hooksDir(paths), `${session}.json`);

const hookStateSchema = z.object({ consecutive: z.int().check(z.gte(0)), updatedAt: z.optional(z.string()) });
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
// Holds, in words

function holdReason(hold: Hold): string {
  if (hold.kind === "unreachable") {
    return `the relay cannot be reached from this host (${hold.ageMs === null ? "its status has not reached this host since the agent started" : `its status here is ${formatAge(hold.ageMs)} old`})`;
  }
  if (hold.kind === "paused") return `API calls are paused (${oneLine(hold.message)})`;
  if (hold.kind === "backingOff") return `API calls back off until ${new Date(hold.until).toISOString().slice(11, 19)} UTC (${oneLine(hold.message)})`;
  const q = hold.question;
  return `JC is needed: this conversation waits for JC's answer to ${q.session}'s question ${q.id} (“${oneLine(q.question)}”)`;
}

function holdRemedy(hold: Hold): string {
  if (hold.kind === "unreachable") return "Check that relay agent runs here and can reach NATS (relay nats check), and that relay run runs on the relay's host.";
  if (hold.kind === "paused") return "Once the cause is fixed: relay resume";
  if (hold.kind === "backingOff") return "The relay retries by itself.";
  return `Answer with: relay jc --question ${hold.question.id} TEXT`;
}

// ---------------------------------------------------------------------------
// Handing over

interface HandContext {
  paths: RelayPaths;
  session: string;
  ccSession: string;
  transcript: string | null;
}

/** Mark every item handed (durably, before it is printed) and compose the text. */
async function handOver(ctx: HandContext, items: readonly StoredItem[], ownId: string | null, channel: Handed["channel"], note?: string): Promise<string> {
  const handed: Handed = { ccSession: ctx.ccSession, transcript: ctx.transcript, at: new Date().toISOString(), channel };
  for (const stored of items) await markHanded(ctx.paths, ctx.session, stored, handed);
  return composeHandover(
    items.map((s) => s.item),
    ownId,
    note,
  );
}

/** The items to hand now: what reconcile returned plus what was taken since (by reply id, in order). */
async function unhanded(ctx: HandContext, known: readonly StoredItem[]): Promise<StoredItem[]> {
  const ids = new Set(known.map((s) => s.item.replyId));
  const fresh = (await listItems(ctx.paths, ctx.session)).filter((s) => s.item.handed === null && !ids.has(s.item.replyId));
  return [...known, ...fresh].sort((a, b) => a.name.localeCompare(b.name));
}

// ---------------------------------------------------------------------------
// Stop

export interface StopHookOptions {
  paths: RelayPaths;
  session: string;
  /** Standard input as read */
  input: string;
  mode: HookMode;
  /** When to give up waiting (epoch ms) */
  deadline: number;
  maxTurns: number;
  /** A bound Claude Code session not seen for this long is taken to be gone */
  releaseAfterMs: number;
  loadConfig: () => Promise<ClientConfig>;
  /** The evidence block's cap in characters; 0 leaves it out */
  evidenceMax: number;
  pollMs?: number;
  lagMs?: number;
  heartbeatMs?: number;
}

/**
 * The Stop hook: relay the agent's last message and hand over the reply (with anything else
 * waiting for this session), or let the agent stop (exit 0, a one-line note) when no relay runs,
 * the conversation is held, there is nothing to send, the turn limit is reached or the wait ends.
 * In wake mode it runs in the background: a clean stop is exit 0, a hand-over is exit 2 with the
 * text on stderr. Never throws for bad input.
 */
export async function runStopHook(opts: StopHookOptions): Promise<HookOutcome> {
  const { paths, session } = opts;
  const parsed = parseStopInput(opts.input);
  if (!parsed.ok) return quiet(`${parsed.error}; nothing relayed, the agent stops`);
  const input = parsed.value;
  if (input.hook_event_name !== undefined && input.hook_event_name !== "Stop") {
    return quiet(`hook claude-stop runs as a Stop hook, not ${input.hook_event_name}; nothing relayed`);
  }
  // A turn that stops normally ends the session's API-error streak (the next failure notifies JC again).
  await endStopFailureStreak(paths, session);
  if (input.session_id === undefined) return quiet("the hook's input has no session_id; nothing relayed, the agent stops");
  const ctx: HandContext = { paths, session, ccSession: input.session_id, transcript: input.transcript_path ?? null };
  const wake = opts.mode === "wake";

  const claim = await claimBinding(paths, session, ctx.ccSession, { now: Date.now(), releaseAfterMs: opts.releaseAfterMs });
  if (!claim.ok) {
    return notice(
      `relay session ${session} is bound to another Claude Code session (${claim.holder.ccSession}, last seen ${claim.holder.seenAt}); this session's message was not relayed and it stops. End that session, or wait until it has been gone for ${Math.round(opts.releaseAfterMs / 60_000)} min.`,
    );
  }
  if (wake) await becomeWaiter(paths, session, ctx.ccSession);
  try {
    return await stopHook(opts, ctx, input);
  } finally {
    if (wake) await leaveWaiter(paths, session);
  }
}

async function stopHook(opts: StopHookOptions, ctx: HandContext, input: StopInput): Promise<HookOutcome> {
  const { paths, session } = ctx;
  const wake = opts.mode === "wake";
  const poll = opts.pollMs === undefined ? {} : { pollMs: opts.pollMs };
  const { toHand } = await reconcile(paths, session, ctx.ccSession);
  // Whatever is in input.txt now is ours too (a reply that came while the agent worked).
  while ((await takeReply(paths, session, null)) !== null);
  let pending = await unhanded(ctx, toHand);

  /**
   * Let the agent stop with `why` and `remedy` (for the user), or, when replies wait for it, hand
   * them over with `why` alone (the turn goes on with them).
   */
  const finish = async (why: string, remedy = "", ownId: string | null = null): Promise<HookOutcome> => {
    pending = await unhanded(ctx, pending);
    if (pending.length === 0) return notice(`${why}; the agent stops.${remedy ? ` ${remedy}` : ""}`);
    const text = await handOver(ctx, pending, ownId, wake ? "wake" : "stop-context", `(relay: ${why}.)`);
    return wake ? { stdout: null, stderr: [text], exitCode: 2 } : { stdout: stopHandOver(text, await versionOf()), stderr: [], exitCode: 0 };
  };
  const versionOf = (): Promise<string | null> => (ctx.transcript === null ? Promise.resolve(null) : claudeCodeVersion(ctx.transcript));

  // Read once, early: on an agent's root (transport: nats) the relay's status is the mirror, and a failure is reported below.
  const loaded: { ok: true; config: ClientConfig } | { ok: false; error: string } = await opts.loadConfig().then(
    (config) => ({ ok: true as const, config }),
    (err: unknown) => ({ ok: false as const, error: (err as Error).message }),
  );
  const agentRoot = loaded.ok && loaded.config.agentName !== undefined;
  if (!probeLock(paths.lock).held) {
    return agentRoot
      ? finish(`no relay agent is running on ${paths.root}, so your latest message was not relayed`, `Start one with: relay agent --root ${paths.root}`)
      : finish(`no relay is running on ${paths.root}, so your latest message was not relayed`, `Start one with: relay run --root ${paths.root}`);
  }
  // An unreachable relay does not stop the message: the agent forwards it from queue/ when the relay is back.
  const hold = wake ? null : await holdOf(paths, session, opts.deadline, { agentRoot });
  if (hold && hold.kind !== "unreachable") return finish(`${holdReason(hold)}; your latest message was not relayed`, holdRemedy(hold));

  const state = await readHookState(paths, session);
  const consecutive = input.stop_hook_active ? state.consecutive : 0;
  if (!input.stop_hook_active && state.consecutive !== 0) await writeHookState(paths, session, 0);
  if (consecutive >= opts.maxTurns) {
    // The limit holds even with replies waiting: they are handed over at the next stop or start.
    return notice(`${consecutive} relayed turns in a row (the limit, --max-turns ${opts.maxTurns}); the agent stops here. Say something to it to go on.`);
  }

  const message =
    typeof input.last_assistant_message === "string"
      ? input.last_assistant_message
      : input.transcript_path
        ? await readTranscriptMessage(input.transcript_path, {
            lagMs: Math.max(0, Math.min(opts.lagMs ?? TRANSCRIPT_LAG_MS, opts.deadline - Date.now())),
            ...poll,
          })
        : "";
  if (message.trim() === "") {
    if (pending.length === 0) return quiet("the agent's last message is empty; nothing relayed, the agent stops");
    return finish("your last message was empty, so nothing was relayed");
  }

  const envelope = opts.evidenceMax > 0 && input.transcript_path ? `${message}\n\n${await turnEvidence(input.transcript_path, input.cwd ?? null, opts.evidenceMax)}` : message;

  if (!loaded.ok) return failed(`${loaded.error}; nothing relayed`);
  const { config } = loaded;

  // Recorded before it is dropped, so the reply can never come before the record of what it answers.
  const id = hookEnvelopeId(input.session_id);
  await recordSent(paths, session, { id, message, deadline: opts.deadline });
  let answered = false;
  try {
    const sent = await dropEnvelope(paths, config, session, envelope, { id });
    if (!sent.ok) {
      await forgetSent(paths, session, id);
      if (pending.length === 0) return failed(`${sent.error}; nothing relayed`);
      return finish(`your latest message was not relayed: ${sent.error}`);
    }
    // A wake-mode hook hands over at once what was already waiting; the reply to this message
    // then comes, labelled as a late reply, with the next stop.
    if (wake && pending.length > 0) return await finish("the reply to your latest message will follow separately", "", id);
    if (hold?.kind === "unreachable") {
      return await finish(`${holdReason(hold)}; your latest message is queued here and goes to the relay when it is back`, "The reply comes at a later stop or session start.");
    }

    const end: WaitEnd = await waitForAnswer(paths, session, {
      ownId: id,
      deadline: opts.deadline,
      endOnHold: !wake,
      agentRoot,
      ...poll,
      ...(opts.heartbeatMs === undefined ? {} : { heartbeatMs: opts.heartbeatMs }),
      heartbeat: async () => {
        const still = await claimBinding(paths, session, ctx.ccSession, { now: Date.now(), releaseAfterMs: opts.releaseAfterMs });
        return still.ok && (!wake || (await isWaiter(paths, session)));
      },
    });
    if (end.kind === "answer") {
      answered = true;
      await writeHookState(paths, session, consecutive + 1);
      pending = await unhanded(ctx, pending);
      const text = await handOver(ctx, pending, id, wake ? "wake" : "stop-context");
      return wake ? { stdout: null, stderr: [text], exitCode: 2 } : { stdout: stopHandOver(text, await versionOf()), stderr: [], exitCode: 0 };
    }
    if (end.kind === "cancelled") return quiet("this session's wait was ended (another stop, or the session ended); the reply will be handed over at the next stop or session start");
    if (end.kind === "held") {
      return finish(`${holdReason(end.hold)}; the reply to your latest message comes at a later stop or session start`, holdRemedy(end.hold));
    }
    return finish(`no reply from the relay in time; the reply to your latest message comes at a later stop or session start`, `It will wait in ${inputFile(paths, session)}.`);
  } finally {
    if (!answered) await abandonSent(paths, session, id);
  }
}

/** The evidence block for the turn so far (never throws; never waits on git for more than its budget). */
export async function turnEvidence(transcriptPath: string, cwd: string | null, max: number): Promise<string> {
  const jsonl = (await readIfPresent(expandHome(transcriptPath))) ?? "";
  const activity = turnActivity(jsonl, cwd);
  const git: GitStat = cwd === null ? { kind: "none" } : await gitDiffStat(cwd);
  return formatEvidence(activity, git, max);
}

// ---------------------------------------------------------------------------
// SessionStart and SessionEnd

/**
 * The SessionStart hook: hand over, as context of the session's first turn, every reply waiting
 * for this session (in input.txt, or handed earlier and not shown to the model), saying what each
 * answers. Prints nothing when there is none, or when the relay session is bound to another
 * Claude Code session.
 */
export async function runStartHook(opts: { paths: RelayPaths; session: string; input: string; releaseAfterMs: number }): Promise<HookOutcome> {
  const nothing: HookOutcome = { stdout: null, stderr: [], exitCode: 0 };
  const parsed = parseStartInput(opts.input);
  // Without Claude Code's session id nothing can be bound or proven delivered: leave everything for the next hook.
  if (!parsed.ok || parsed.value.session_id === undefined) return { stdout: null, stderr: ["relay: the hook's input has no session_id; nothing handed over"], exitCode: 0 };
  const input = parsed.value;
  const ctx: HandContext = { paths: opts.paths, session: opts.session, ccSession: parsed.value.session_id, transcript: input.transcript_path ?? null };
  const claim = await claimBinding(opts.paths, opts.session, ctx.ccSession, { now: Date.now(), releaseAfterMs: opts.releaseAfterMs });
  if (!claim.ok) {
    return { stdout: null, stderr: [`relay: relay session ${opts.session} is bound to Claude Code session ${claim.holder.ccSession}; nothing handed over here`], exitCode: 0 };
  }
  const { toHand } = await reconcile(opts.paths, opts.session, ctx.ccSession);
  while ((await takeReply(opts.paths, opts.session, null)) !== null);
  const items: StoredItem[] = await unhanded(ctx, toHand);
  if (items.length === 0) return nothing;
  const source = input.source ? ` (session ${input.source})` : "";
  const text = await handOver(ctx, items, null, "start-context", `(relay: ${items.length === 1 ? "this reply" : "these replies"} arrived while this session was not waiting${source}; treat ${items.length === 1 ? "it" : "them"} as your next instruction.)`);
  return { stdout: sessionStartOutput(text), stderr: [], exitCode: 0 };
}

/** The SessionEnd hook: release the relay session and end this session's background wait. */
export async function runEndHook(opts: { paths: RelayPaths; session: string; input: string }): Promise<HookOutcome> {
  const parsed = parseEndInput(opts.input);
  const ccSession = parsed.ok ? parsed.value.session_id : undefined;
  if (ccSession === undefined) return quiet("SessionEnd without a session_id; nothing released");
  const released = await releaseBinding(opts.paths, opts.session, ccSession);
  const ended = await endWaiterOf(opts.paths, opts.session, ccSession);
  return { stdout: null, stderr: released || ended ? [`relay: relay session ${opts.session} released by Claude Code session ${ccSession}`] : [], exitCode: 0 };
}

/** An error (oclif's parse errors span several lines) as one line for a hook's stderr. */
export function oneLineError(err: Error): string {
  const lines = (err.message || String(err))
    .split("\n")
    .map((l) => l.replace(/^[\s›]+/, "").trim())
    .filter((l) => l !== "" && !/^The following errors? occurred:?$/.test(l) && !/^See more help with --help$/.test(l));
  return lines.join("; ") || err.name;
}
