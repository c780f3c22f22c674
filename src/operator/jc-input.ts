// state/jc_input.txt: JC's answers (CONTRACT §6). The file is claimed by renaming it, so a new
// answer written meanwhile is never deleted unread, and a claimed one survives a crash. The
// claim is then opened without following a symlink and without blocking, and read only when it
// is a regular file of at most 1 MiB; anything else is refused unread.
//
// A refusal is written to state/jc_input.rejected.txt (replacing an earlier one): the reason,
// made one line, is the whole first line (no prefix); the refused text, when it was read, follows
// verbatim from the second line on.
import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { lstat, open, readdir, rename, rm, unlink } from "node:fs/promises";
import { join } from "node:path";
import * as z from "zod/mini";
import "../zod-english.js";
import type { RelayPaths } from "../config/paths.js";
import { isErrno, PRIVATE_FILE, writeAtomic } from "../store/files.js";

export type JcInput =
  | { kind: "direct"; session: string; text: string }
  | { kind: "chat"; text: string; question?: string; session?: string }
  | { kind: "empty" }
  | { kind: "invalid"; reason: string };

/** The most JC input the relay reads (UTF-8 bytes); a larger file is refused unread. */
export const MAX_JC_INPUT_BYTES = 1024 * 1024;

const SESSION = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const DIRECT = /^@([A-Za-z0-9][A-Za-z0-9._-]{0,63}):[ \t]*([\s\S]*)$/;

const jcObjectSchema = z.object({
  direct: z.optional(z.boolean({ error: "direct must be true or false" })),
  session: z.optional(z.string({ error: "session must be a string" }).check(z.regex(SESSION, { error: `session must match ${SESSION.source}` }))),
  text: z.string({ error: "text must be a non-empty string" }).check(z.trim(), z.minLength(1, { error: "text must be a non-empty string" })),
  question: z.optional(z.string({ error: "question must be a non-empty string" }).check(z.minLength(1, { error: "question must be a non-empty string" }))),
});

/** `{...}` that parses as a JSON object; anything else (including `{` prose) is not the JSON form. */
function jsonObject(text: string): Record<string, unknown> | null {
  if (!text.startsWith("{")) return null;
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

const oneLine = (s: string): string => s.replace(/\s+/g, " ").trim();

function parseJcObject(obj: Record<string, unknown>): JcInput {
  const parsed = jcObjectSchema.safeParse(obj);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { kind: "invalid", reason: `JSON answer: ${oneLine(issue?.message ?? "not a valid answer")}` };
  }
  const { direct, session, text, question } = parsed.data;
  if (direct === true) {
    if (session === undefined) return { kind: "invalid", reason: "JSON answer: direct requires a session" };
    if (question !== undefined) return { kind: "invalid", reason: "JSON answer: a direct answer takes a session, not a question" };
    return { kind: "direct", session, text };
  }
  if (question !== undefined && session !== undefined) return { kind: "invalid", reason: "JSON answer: give a question or a session, not both" };
  if (question !== undefined) return { kind: "chat", text, question };
  if (session !== undefined) return { kind: "chat", text, session };
  return { kind: "chat", text };
}

/**
 * `@session-1: do X` is a direct dispatch; a JSON object (`{"direct": true, "session", "text"}`,
 * `{"text", "question"}`, `{"text", "session"}`) is checked and taken as such; anything else is a
 * chat turn. A leading BOM is ignored.
 */
export function parseJcInput(raw: string): JcInput {
  const text = raw.replace(/^\uFEFF/, "").trim();
  if (text === "") return { kind: "empty" };
  const obj = jsonObject(text);
  if (obj !== null) return parseJcObject(obj);
  const direct = DIRECT.exec(text);
  if (direct?.[1] !== undefined && direct[2] !== undefined) {
    const body = direct[2].trim();
    return body === "" ? { kind: "empty" } : { kind: "direct", session: direct[1], text: body };
  }
  return { kind: "chat", text };
}

/**
 * How long an empty state/jc_input.txt is left alone as a file still being written: a shell's
 * `echo … > jc_input.txt` creates the file empty and writes it an instant later, and a watcher can
 * wake the relay in between. An empty file older than this (or dated in the future by more than
 * this, a clock stepped back) is taken, and refused as empty.
 */
export const JC_WRITE_SETTLE_MS = 1_000;

/** Whether jc_input.txt is a regular file created empty a moment ago, so probably not yet written. */
async function beingWritten(path: string, nowMs: number): Promise<boolean> {
  try {
    const st = await lstat(path);
    return st.isFile() && st.size === 0 && Math.abs(nowMs - st.mtimeMs) < JC_WRITE_SETTLE_MS;
  } catch {
    return false; // gone, or not ours to judge: the rename below says which
  }
}

const CLAIM = /^jc_input\.([0-9a-f]{16})\.claimed$/;
const claimFile = (paths: RelayPaths, id: string) => join(paths.state, `jc_input.${id.replace(/^jc-/, "")}.claimed`);

/** Claimed answers not yet released (at most one, unless a crash left one behind). */
export async function claimedJcFiles(paths: RelayPaths): Promise<string[]> {
  const names = await readdir(paths.state).catch((err: unknown) => (isErrno(err, "ENOENT") ? [] : Promise.reject(err)));
  return names.filter((n) => CLAIM.test(n)).sort().map((n) => join(paths.state, n));
}

/** A claim: its text when it was safe to read, else why it was refused unread. */
export type JcClaim = { id: string; kind: "read"; raw: string } | { id: string; kind: "refused"; reason: string };

type SafeRead = { kind: "read"; raw: string } | { kind: "refused"; reason: string };

const NOT_REGULAR = "state/jc_input.txt is not a regular file";

/** Open without following a symlink or blocking on a FIFO; read only a regular file of at most 1 MiB. */
async function readSafely(path: string): Promise<SafeRead> {
  let handle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    if (isErrno(err, "ELOOP")) return { kind: "refused", reason: `${NOT_REGULAR} (a symlink); removed unopened` };
    if (isErrno(err, "ENXIO")) return { kind: "refused", reason: `${NOT_REGULAR} (a socket or device); removed unopened` };
    const code = typeof err === "object" && err !== null && "code" in err ? String(err.code) : "unknown error";
    return { kind: "refused", reason: `state/jc_input.txt could not be opened (${code}); removed unread` };
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) {
      const what = st.isFIFO() ? "a FIFO" : st.isDirectory() ? "a directory" : "a special file";
      return { kind: "refused", reason: `${NOT_REGULAR} (${what}); removed unread` };
    }
    if (st.size > MAX_JC_INPUT_BYTES) return { kind: "refused", reason: `state/jc_input.txt is over 1 MiB (${st.size} bytes); removed unread` };
    // Read at most one byte past the limit, in case it grew after the stat.
    const buf = Buffer.alloc(MAX_JC_INPUT_BYTES + 1);
    let length = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buf, length, buf.length - length, null);
      if (bytesRead === 0) break;
      length += bytesRead;
      if (length > MAX_JC_INPUT_BYTES) return { kind: "refused", reason: "state/jc_input.txt is over 1 MiB; removed unread" };
    }
    return { kind: "read", raw: buf.subarray(0, length).toString("utf8") };
  } finally {
    await handle.close();
  }
}

/**
 * Take the pending JC input, if any: an earlier claim left by a crash first, else rename
 * jc_input.txt to a claim file with a fresh random name (a rename never opens the file). The name
 * is the input's id, so the same answer written twice is two inputs, and a claim re-read after a
 * crash is the same one. The claim is read safely (see readSafely); a refused one is still a
 * claim, to be reported with refuseJcInput and removed with releaseJcClaim. An empty file written
 * less than JC_WRITE_SETTLE_MS ago is left for a later look (see beingWritten).
 */
export async function claimJcInput(paths: RelayPaths, opts: { leftovers?: boolean; nowMs?: number } = {}): Promise<JcClaim | null> {
  // Leftover claims exist only after a crash: a running daemon looks for them once, at start.
  let [claimed] = opts.leftovers === false ? [] : await claimedJcFiles(paths);
  if (!claimed) {
    if (await beingWritten(paths.jcInput, opts.nowMs ?? Date.now())) return null;
    claimed = join(paths.state, `jc_input.${randomBytes(8).toString("hex")}.claimed`);
    try {
      await rename(paths.jcInput, claimed);
    } catch (err) {
      if (isErrno(err, "ENOENT")) return null;
      throw err;
    }
  }
  const id = `jc-${CLAIM.exec(claimed.slice(paths.state.length + 1))?.[1] ?? ""}`;
  return { id, ...(await readSafely(claimed)) };
}

/** Remove a claim (a symlink itself, never its target; a directory put there too). */
export async function releaseJcClaim(paths: RelayPaths, id: string): Promise<boolean> {
  const path = claimFile(paths, id);
  try {
    await unlink(path);
    return true;
  } catch (err) {
    if (isErrno(err, "ENOENT")) return false;
    if (!isErrno(err, "EISDIR") && !isErrno(err, "EPERM")) throw err;
  }
  await rm(path, { recursive: true, force: true });
  return true;
}

/**
 * Write state/jc_input.rejected.txt atomically, replacing an earlier one: the reason as its one
 * first line, then the refused text when it was read (null: refused unread).
 */
export async function refuseJcInput(paths: RelayPaths, reason: string, raw: string | null): Promise<void> {
  await writeAtomic(join(paths.state, "jc_input.rejected.txt"), `${oneLine(reason)}\n${raw ?? ""}`, { mode: PRIVATE_FILE });
}
