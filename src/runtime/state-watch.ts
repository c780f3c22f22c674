// What others write into state/ wakes the relay at once: JC's answer and a resume request
// (state/ itself), a permission prompt (state/permissions/) and a StopFailure streak
// (state/stop-failures/), each directory with a watcher of its own since a watcher on state/ does
// not see into its subdirectories. The relay's own writes into state/ (snapshot, status, history,
// ledger) wake the watcher's callback only to be dropped by name; a subdirectory made or replaced
// later is watched again when state/'s watcher sees its name.
import { type FSWatcher, watch } from "node:fs";
import { basename } from "node:path";
import { stopFailuresDir } from "../claude-code/stop-failure.js";
import type { RelayPaths } from "../config/paths.js";
import { permissionsDir } from "../operator/permissions.js";
import type { WakeReason } from "./deps.js";

export interface StateWatch {
  /** Every watcher that should be up is up (else only the poll interval notices a change). */
  up(): boolean;
  close(): void;
}

const isAbsent = (err: unknown): boolean => typeof err === "object" && err !== null && "code" in err && err.code === "ENOENT";

export function watchState(paths: RelayPaths, onWake: (reason: WakeReason) => void): StateWatch {
  const subdirs = new Map(
    ([[permissionsDir(paths), "permissions"], [stopFailuresDir(paths), "stopFailures"]] as const).map(([dir, reason]) => [basename(dir), { dir, reason, watcher: null as FSWatcher | null, failed: false }]),
  );
  type Subdir = NonNullable<ReturnType<typeof subdirs.get>>;
  let state: FSWatcher | null = null;

  /** (Re)watch a subdirectory: absent is fine (its creation is an event on state/), any other failure is not. */
  const watchSubdir = (entry: Subdir): void => {
    entry.watcher?.close();
    entry.watcher = null;
    entry.failed = false;
    try {
      const w = watch(entry.dir, { persistent: false }, () => onWake(entry.reason));
      w.on("error", () => {
        w.close();
        if (entry.watcher === w) {
          entry.watcher = null;
          entry.failed = true;
        }
      });
      entry.watcher = w;
    } catch (err) {
      entry.failed = !isAbsent(err);
    }
  };

  try {
    const w = watch(paths.state, { persistent: false }, (_event, name) => {
      if (name === null || name === "jc_input.txt") onWake("jc");
      if (name === null || name === "resume.request") onWake("resume");
      for (const entry of name === null ? [...subdirs.values()] : [subdirs.get(name)]) {
        if (!entry) continue;
        watchSubdir(entry); // made, removed or replaced: watch what is there now
        onWake(entry.reason);
      }
    });
    w.on("error", () => {
      w.close();
      if (state === w) state = null;
    });
    state = w;
  } catch {
    // the poll interval still covers it
  }
  for (const entry of subdirs.values()) watchSubdir(entry);

  return {
    up: () => state !== null && [...subdirs.values()].every((e) => !e.failed),
    close() {
      state?.close();
      state = null;
      for (const entry of subdirs.values()) {
        entry.watcher?.close();
        entry.watcher = null;
      }
    },
  };
}
