// dispatch/ and dispatch/<session>/: real directories only (a link or file there is refused), and
// whether a session's input.txt exists (its acknowledgement). Delivery itself is FileOutbox's
// (file-transport.ts).
import { lstatSync, mkdirSync } from "node:fs";
import { inputFile, type RelayPaths, sessionDir } from "../../config/paths.js";
import { isErrno } from "../../store/files.js";

export class DispatchPathError extends Error {
  override name = "DispatchPathError";
}

export async function kindOf(path: string): Promise<"missing" | "dir" | "file" | "other"> {
  try {
    const st = lstatSync(path); // direct, not on the thread pool: see src/store/files.ts
    return st.isDirectory() ? "dir" : st.isFile() ? "file" : "other";
  } catch (err) {
    if (isErrno(err, "ENOENT")) return "missing";
    throw err;
  }
}

/** dispatch/ and dispatch/<session>/ as real directories: a symlink there is refused, never followed. */
export async function ensureSessionDir(paths: RelayPaths, session: string): Promise<string> {
  for (const dir of [paths.dispatch, sessionDir(paths, session)]) {
    const kind = await kindOf(dir);
    if (kind === "missing") mkdirSync(dir, { recursive: true });
    else if (kind !== "dir") throw new DispatchPathError(`${dir} is not a directory (a link or file there is refused); remove it and the relay will recreate it`);
  }
  return sessionDir(paths, session);
}

export async function inputExists(paths: RelayPaths, session: string): Promise<boolean> {
  return (await kindOf(inputFile(paths, session))) !== "missing";
}
