// Never more than one background (wake-mode) Stop hook per relay session:
// state/hooks/<session>.waiter.json names the one waiting. A new one replaces it (the old one is
// sent SIGTERM and ends quietly: the reply to its message becomes a late reply, handed over
// labelled); SessionEnd ends it.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as z from "zod/mini";
import type { RelayPaths } from "../config/paths.js";
import { ensureDirs, readJsonFile, removeIfPresent, writeAtomic } from "../store/files.js";

const waiterSchema = z.object({ pid: z.int(), ccSession: z.string(), since: z.string() });
export type Waiter = z.infer<typeof waiterSchema>;

export const waiterFile = (paths: RelayPaths, session: string): string => join(paths.state, "hooks", `${session}.waiter.json`);

export async function readWaiter(paths: RelayPaths, session: string): Promise<Waiter | null> {
  const read = await readJsonFile(waiterFile(paths, session), waiterSchema);
  return read.ok ? read.value : null;
}

/** Whether `pid` is a live relay Stop hook (on Linux its command line says so; elsewhere, alive is enough). */
function isLiveHook(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("claude-stop");
  } catch {
    return process.platform !== "linux";
  }
}

/** End a waiter that is not this process. */
function endWaiter(waiter: Waiter): void {
  if (waiter.pid === process.pid || !isLiveHook(waiter.pid)) return;
  try {
    process.kill(waiter.pid, "SIGTERM");
  } catch {
    // gone meanwhile
  }
}

/** This process becomes the session's waiter, ending the previous one. */
export async function becomeWaiter(paths: RelayPaths, session: string, ccSession: string, now = Date.now()): Promise<void> {
  const previous = await readWaiter(paths, session);
  if (previous) endWaiter(previous);
  await ensureDirs(join(paths.state, "hooks"));
  await writeAtomic(waiterFile(paths, session), `${JSON.stringify({ pid: process.pid, ccSession, since: new Date(now).toISOString() } satisfies Waiter)}\n`, { mode: 0o600 });
}

export async function isWaiter(paths: RelayPaths, session: string): Promise<boolean> {
  return (await readWaiter(paths, session))?.pid === process.pid;
}

/** Give up the waiter role if this process has it. */
export async function leaveWaiter(paths: RelayPaths, session: string): Promise<void> {
  if (await isWaiter(paths, session)) await removeIfPresent(waiterFile(paths, session));
}

/** SessionEnd: end the waiter of that Claude Code session, if any. */
export async function endWaiterOf(paths: RelayPaths, session: string, ccSession: string): Promise<boolean> {
  const waiter = await readWaiter(paths, session);
  if (waiter === null || waiter.ccSession !== ccSession) return false;
  endWaiter(waiter);
  await removeIfPresent(waiterFile(paths, session));
  return true;
}
