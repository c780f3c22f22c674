// What a poll tick looks at when the relay is at rest and its watchers are up: a synchronous
// look (two stats and two listings, within the one wake-up of the timer) at everything the
// watchers cover, so that an idle relay wakes once per poll interval instead of once for every
// file operation of a full step. It answers whether a step should run: something is there that
// a watcher may have missed.
import { existsSync, readdirSync, statSync } from "node:fs";
import { stopFailuresDir } from "../claude-code/stop-failure.js";
import type { RelayPaths } from "../config/paths.js";
import { permissionsDir } from "../operator/permissions.js";
import { isInProgressName } from "../transport/file/queue.js";

/**
 * How often a relay at rest looks when every watcher is up: the watchers notice a change at once,
 * so this tick is only the safety net for an event they missed, and its own wake-up is most of an
 * idle relay's (issue 15: at most one a second in all). A relay with work under way, or whose
 * watchers are not all up, keeps the poll interval.
 */
export const REST_LOOK_INTERVAL_MS = 5_000;

function namesIn(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return []; // absent (or unreadable: the step that reads it reports that)
  }
}

/** A directory's modification time (a file written into it or removed from it moves it); -1 when absent. */
function stampOf(dir: string): number {
  try {
    return statSync(dir).mtimeMs;
  } catch {
    return -1;
  }
}

/**
 * A look for each tick. True when JC's answer or a resume request is there, when queue/ holds an
 * envelope (with `queue`: the file transport), or when state/permissions/ or state/stop-failures/
 * changed since the last look (the first look always counts as a change).
 */
export function pollLook(paths: RelayPaths, opts: { queue: boolean }): () => boolean {
  let lastPermissions: string | null = null;
  let lastFailures: number | null = null;
  return () => {
    const permissions = namesIn(permissionsDir(paths)).sort().join("\n");
    const failures = stampOf(stopFailuresDir(paths));
    const changed = permissions !== lastPermissions || failures !== lastFailures;
    lastPermissions = permissions;
    lastFailures = failures;
    if (changed || existsSync(paths.jcInput) || existsSync(paths.resumeRequest)) return true;
    return opts.queue && namesIn(paths.queue).some((name) => !isInProgressName(name));
  };
}
