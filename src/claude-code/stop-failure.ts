// The StopFailure hook (Claude Code runs it instead of Stop when a turn ended on an API error:
// a rate limit, an overload, a refused key). Each failure of a relay session is recorded in
// state/stop-failures/<session>.json; the first of a streak makes the relay notify JC once, with
// the error and how to resume; the Stop hook ends the streak when a turn of the session stops
// normally. Claude Code ignores this hook's output and exit code; it exits 0 and writes nothing
// when no relay is running.
import { join } from "node:path";
import * as z from "zod/mini";
import type { StopFailure } from "../../machines/types.js";
import type { RelayPaths } from "../config/paths.js";
import { ensureDirs, readdirIfPresent, readJsonFile, removeIfPresent, writeAtomic } from "../store/files.js";
import { acquireLockWaiting, probeLock } from "../store/lock.js";
import { redact } from "./evidence.js";
import type { HookOutcome } from "./hook.js";
import { parseJsonWith } from "./hook-input.js";

export const stopFailuresDir = (paths: RelayPaths): string => join(paths.state, "stop-failures");
const failureFile = (paths: RelayPaths, session: string): string => join(stopFailuresDir(paths), `${session}.json`);
// Held while one hook reads and rewrites the session's record: Claude Code starts StopFailure
// hooks without waiting for them, so two failures in quick succession run two hooks at once.
const recordLock = (paths: RelayPaths, session: string): string => join(stopFailuresDir(paths), `.${session}.lock`);
const RECORD_LOCK_WAIT_MS = 10_000;

const recordSchema = z.object({
  streak: z.string(),
  session: z.string(),
  ccSession: z.nullable(z.string()),
  cwd: z.nullable(z.string()),
  error: z.string(),
  message: z.string(),
  resetsAt: z.nullable(z.string()),
  count: z.int().check(z.positive()),
  first: z.string(),
  last: z.string(),
});

const inputSchema = z.looseObject({
  session_id: z.optional(z.string()),
  cwd: z.optional(z.string()),
  hook_event_name: z.optional(z.string()),
  error: z.optional(z.string()),
  error_details: z.optional(z.string()),
  last_assistant_message: z.optional(z.string()),
});

/** "resets at 3pm (Europe/Paris)", "resets in 2 hours": the limit's reset, when the error says it. */
export function resetTimeIn(text: string): string | null {
  const m = /\breset(?:s|ting)?\s+((?:at|in|on)\s+[^.·\n]{1,60})/i.exec(text);
  return m?.[1] ? m[1].trim() : null;
}

const oneLine = (text: string, max: number): string => {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > max ? `${flat.slice(0, max)}…` : flat;
};

/**
 * The hook: record this failure in the session's streak (a new streak when there is none), under
 * the session's record lock so that hooks running at once each count. A lock still held after
 * RECORD_LOCK_WAIT_MS (a hung hook) does not stop the failure being recorded.
 */
export async function recordStopFailure(paths: RelayPaths, session: string, input: z.infer<typeof inputSchema>, now: Date): Promise<StopFailure> {
  await ensureDirs(stopFailuresDir(paths));
  const lock = await acquireLockWaiting(recordLock(paths, session), RECORD_LOCK_WAIT_MS);
  try {
    return await updateRecord(paths, session, input, now);
  } finally {
    lock?.release();
  }
}

async function updateRecord(paths: RelayPaths, session: string, input: z.infer<typeof inputSchema>, now: Date): Promise<StopFailure> {
  const file = failureFile(paths, session);
  const earlier = await readJsonFile(file, recordSchema);
  const message = redact(oneLine([input.last_assistant_message, input.error_details].filter((t): t is string => typeof t === "string" && t.trim() !== "").join(" · ") || "(no message)", 500));
  const record: StopFailure = {
    streak: earlier.ok ? earlier.value.streak : `sf-${session}-${now.getTime().toString(36)}`,
    session,
    ccSession: input.session_id ?? null,
    cwd: input.cwd ?? null,
    error: input.error ?? "unknown",
    message,
    resetsAt: resetTimeIn(message),
    count: earlier.ok ? earlier.value.count + 1 : 1,
    first: earlier.ok ? earlier.value.first : now.toISOString(),
    last: now.toISOString(),
  };
  await writeAtomic(file, `${JSON.stringify(record)}\n`, { mode: 0o600 });
  return record;
}

/** The Stop hook: a turn stopped normally, so the session's failure streak is over. */
export async function endStopFailureStreak(paths: RelayPaths, session: string): Promise<void> {
  await removeIfPresent(failureFile(paths, session));
}

/** The relay: every session's current failure streak. */
export async function stopFailureStreaks(paths: RelayPaths): Promise<StopFailure[]> {
  const names = (await readdirIfPresent(stopFailuresDir(paths))).filter((n) => n.endsWith(".json") && !n.startsWith("."));
  const out: StopFailure[] = [];
  for (const name of names) {
    const read = await readJsonFile(join(stopFailuresDir(paths), name), recordSchema);
    if (read.ok) out.push(read.value);
  }
  return out.sort((a, b) => a.first.localeCompare(b.first));
}

export async function runStopFailureHook(opts: { paths: RelayPaths; session: string; input: string; now?: Date }): Promise<HookOutcome> {
  const { paths, session } = opts;
  const parsed = parseJsonWith(opts.input, inputSchema);
  if (!parsed.ok) return { stdout: null, stderr: [`relay: ${parsed.error}; nothing recorded`], exitCode: 0 };
  if (!probeLock(paths.lock).held) return { stdout: null, stderr: [], exitCode: 0 };
  const record = await recordStopFailure(paths, session, parsed.value, opts.now ?? new Date());
  return { stdout: null, stderr: [`relay: ${session}'s turn ended on an API error (${record.error}); failure ${record.count} of this streak${record.count === 1 ? ", JC is told" : ""}`], exitCode: 0 };
}
