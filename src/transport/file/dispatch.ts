// dispatch/<session>/input.txt: one unacknowledged reply per session, never overwritten.
// Delivery is two-phase so a crash at any instant neither loses nor doubles a reply: the reply is
// first written to a staging file (and the machine records that), then renamed to input.txt.
// After a restart a staged reply whose staging file is gone was delivered already.
import { lstat, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { inputFile, type RelayPaths, sessionDir } from "../../config/paths.js";
import { isErrno, writeDurable, writeThenRename } from "../../store/files.js";
import { rename } from "node:fs/promises";
import { syncDir } from "../../store/files.js";

export class DispatchPathError extends Error {
  override name = "DispatchPathError";
}

export const stagingFile = (paths: RelayPaths, session: string, replyId: string): string =>
  join(sessionDir(paths, session), `.reply-${replyId}.tmp`);

async function kindOf(path: string): Promise<"missing" | "dir" | "file" | "other"> {
  try {
    const st = await lstat(path);
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
    if (kind === "missing") await mkdir(dir, { recursive: true });
    else if (kind !== "dir") throw new DispatchPathError(`${dir} is not a directory (a link or file there is refused); remove it and the relay will recreate it`);
  }
  return sessionDir(paths, session);
}

export async function inputExists(paths: RelayPaths, session: string): Promise<boolean> {
  return (await kindOf(inputFile(paths, session))) !== "missing";
}

export async function stagingExists(paths: RelayPaths, session: string, replyId: string): Promise<boolean> {
  return (await kindOf(stagingFile(paths, session, replyId))) === "file";
}

export async function stageReply(paths: RelayPaths, session: string, replyId: string, text: string): Promise<void> {
  await ensureSessionDir(paths, session);
  await writeDurable(stagingFile(paths, session, replyId), text);
}

/** Rename the staged reply to input.txt. Only the relay creates input.txt, so checking first is safe. */
export async function publishReply(paths: RelayPaths, session: string, replyId: string): Promise<void> {
  await ensureSessionDir(paths, session);
  await rename(stagingFile(paths, session, replyId), inputFile(paths, session));
  await syncDir(sessionDir(paths, session));
}

export { writeThenRename };
