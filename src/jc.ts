// state/jc_input.txt: JC's answers (CONTRACT §6). The file is claimed by renaming it, so a new
// answer written meanwhile is never deleted unread, and a claimed one survives a crash.
import { createHash } from "node:crypto";
import { readFile, rename, stat } from "node:fs/promises";
import { join } from "node:path";
import type { RelayPaths } from "./paths.js";
import { isErrno, removeIfPresent } from "./store.js";

export type JcInput = { kind: "direct"; session: string; text: string } | { kind: "chat"; text: string } | { kind: "empty" };

const DIRECT = /^@([A-Za-z0-9][A-Za-z0-9._-]{0,63}):[ \t]*([\s\S]*)$/;

/** `@session-1: do X` is a direct dispatch; anything else is a chat turn. */
export function parseJcInput(raw: string): JcInput {
  const text = raw.replace(/^\uFEFF/, "").trim();
  if (text === "") return { kind: "empty" };
  const direct = DIRECT.exec(text);
  if (direct?.[1] !== undefined && direct[2] !== undefined) {
    const body = direct[2].trim();
    return body === "" ? { kind: "empty" } : { kind: "direct", session: direct[1], text: body };
  }
  return { kind: "chat", text };
}

export const claimedJcFile = (paths: RelayPaths): string => join(paths.state, "jc_input.claimed");

/**
 * Take the pending JC input, if any: an earlier claim left by a crash first, else rename
 * jc_input.txt to the claim file. Returns its text and a stable id.
 */
export async function claimJcInput(paths: RelayPaths): Promise<{ id: string; raw: string } | null> {
  const claimed = claimedJcFile(paths);
  let st: Awaited<ReturnType<typeof stat>>;
  try {
    st = await stat(claimed);
  } catch (err) {
    if (!isErrno(err, "ENOENT")) throw err;
    try {
      await rename(paths.jcInput, claimed);
    } catch (renameErr) {
      if (isErrno(renameErr, "ENOENT")) return null;
      throw renameErr;
    }
    st = await stat(claimed);
  }
  const raw = await readFile(claimed, "utf8");
  const id = `jc-${createHash("sha256").update(String(st.mtimeMs)).update("\0").update(String(st.ino)).update("\0").update(raw).digest("hex").slice(0, 20)}`;
  return { id, raw };
}

export const releaseJcClaim = (paths: RelayPaths): Promise<boolean> => removeIfPresent(claimedJcFile(paths));
