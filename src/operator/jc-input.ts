// state/jc_input.txt: JC's answers (CONTRACT §6). The file is claimed by renaming it, so a new
// answer written meanwhile is never deleted unread, and a claimed one survives a crash.
import { randomBytes } from "node:crypto";
import { readdir, readFile, rename } from "node:fs/promises";
import { join } from "node:path";
import type { RelayPaths } from "../config/paths.js";
import { isErrno, removeIfPresent } from "../store/files.js";

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

const CLAIM = /^jc_input\.([0-9a-f]{16})\.claimed$/;
const claimFile = (paths: RelayPaths, id: string) => join(paths.state, `jc_input.${id.replace(/^jc-/, "")}.claimed`);

/** Claimed answers not yet released (at most one, unless a crash left one behind). */
export async function claimedJcFiles(paths: RelayPaths): Promise<string[]> {
  const names = await readdir(paths.state).catch((err: unknown) => (isErrno(err, "ENOENT") ? [] : Promise.reject(err)));
  return names.filter((n) => CLAIM.test(n)).sort().map((n) => join(paths.state, n));
}

/**
 * Take the pending JC input, if any: an earlier claim left by a crash first, else rename
 * jc_input.txt to a claim file with a fresh random name. The name is the input's id, so the
 * same answer written twice is two inputs, and a claim re-read after a crash is the same one.
 */
export async function claimJcInput(paths: RelayPaths, opts: { leftovers?: boolean } = {}): Promise<{ id: string; raw: string } | null> {
  // Leftover claims exist only after a crash: a running daemon looks for them once, at start.
  let [claimed] = opts.leftovers === false ? [] : await claimedJcFiles(paths);
  if (!claimed) {
    claimed = join(paths.state, `jc_input.${randomBytes(8).toString("hex")}.claimed`);
    try {
      await rename(paths.jcInput, claimed);
    } catch (err) {
      if (isErrno(err, "ENOENT")) return null;
      throw err;
    }
  }
  const id = `jc-${CLAIM.exec(claimed.slice(paths.state.length + 1))?.[1] ?? ""}`;
  return { id, raw: await readFile(claimed, "utf8") };
}

export const releaseJcClaim = (paths: RelayPaths, id: string): Promise<boolean> => removeIfPresent(claimFile(paths, id));
