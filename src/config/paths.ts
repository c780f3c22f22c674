import { join, resolve } from "node:path";

/** Every path the relay touches, relative to its root (CONTRACT §2). */
export interface RelayPaths {
  root: string;
  config: string;
  env: string;
  queue: string;
  rejected: string;
  dispatch: string;
  state: string;
  logs: string;
  lock: string;
  snapshot: string;
  history: string;
  jcInput: string;
  resumeRequest: string;
}

export function relayPaths(root: string): RelayPaths {
  const state = join(root, "state");
  return {
    root,
    config: join(root, "config.yaml"),
    env: join(root, ".env"),
    queue: join(root, "queue"),
    rejected: join(root, "queue", ".rejected"),
    dispatch: join(root, "dispatch"),
    state,
    logs: join(root, "logs"),
    lock: join(state, ".lock"),
    snapshot: join(state, "snapshot.json"),
    history: join(state, "history"),
    jcInput: join(state, "jc_input.txt"),
    resumeRequest: join(state, "resume.request"),
  };
}

/**
 * `relay run --dry-run` keeps its conversation apart (state/dry-run/history/): its fixed
 * acknowledgements never become part of the history that real calls send to the model.
 */
export const dryRunPaths = (paths: RelayPaths): RelayPaths => ({ ...paths, history: join(paths.state, "dry-run", "history") });

/** The paths of the root a command names: `--root`, else $RELAY_ROOT, else the current directory. */
export function pathsForRoot(root: string | undefined): RelayPaths {
  return relayPaths(resolve(root ?? process.env.RELAY_ROOT ?? process.cwd()));
}

export const sessionDir = (paths: RelayPaths, session: string): string => join(paths.dispatch, session);
export const inputFile = (paths: RelayPaths, session: string): string => join(paths.dispatch, session, "input.txt");
