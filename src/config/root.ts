// Whether a directory is a relay root (CONTRACT §2): one with config.yaml. Commands that only make
// sense on a root (status, send, jc, costs, resume, history, logs) say so instead of pretending.
import { stat } from "node:fs/promises";
import { EXIT, UsageError } from "../errors.js";
import type { RelayPaths } from "./paths.js";

/** One line, exit 2 (a usage error: the wrong directory), naming the ways to point at a root. */
export class NotARootError extends UsageError {
  constructor(root: string) {
    super(`${root} is not a relay root (no config.yaml): pass --root DIR, set RELAY_ROOT, or make it one with: relay init ${root}`, EXIT.usage);
  }
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/** Throws NotARootError unless the root holds config.yaml. */
export async function requireRoot(paths: RelayPaths): Promise<void> {
  if (!(await isFile(paths.config))) throw new NotARootError(paths.root);
}
