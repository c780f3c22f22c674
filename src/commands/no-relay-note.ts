import type { RelayPaths } from "../config/paths.js";

/**
 * The warning `send` and `jc` print on standard error when no relay holds the root's lock: what
 * they wrote is kept and taken when one starts, but nothing will answer until then.
 */
export async function noRelayNote(paths: RelayPaths, what: string): Promise<string | null> {
  const { probeLock } = await import("../store/lock.js");
  let held: boolean;
  try {
    held = probeLock(paths.lock).held;
  } catch {
    return null; // a platform without the lock has no relay to find either; say nothing rather than guess
  }
  return held ? null : `relay: warning: no relay is running on ${paths.root}; ${what} waits until one starts (relay run --root ${paths.root})`;
}
