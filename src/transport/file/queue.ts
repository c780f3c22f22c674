// queue/ intake (CONTRACT §5): list, read safely, validate, reject with a reason file.
import { createHash } from "node:crypto";
import { constants, lstatSync } from "node:fs";
import { lstat, open, readdir, rename } from "node:fs/promises";
import { join } from "node:path";
import * as z from "zod/mini";
import type { WorkItem } from "../../../machines/types.js";
import { SESSION_ID } from "../../config/config.js";
import type { RelayPaths } from "../../config/paths.js";
import { isErrno, removeIfPresent, writeJsonAtomic } from "../../store/files.js";

export const SETTLE_MS = 2_000;
/** An envelope's own id (CONTRACT §5), echoed as in_reply_to in its reply's input.json. */
export const ENVELOPE_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
export const MAX_CONTENT_BYTES = 1024 * 1024;
/** JSON escapes can make content up to 6x longer on disk; anything bigger cannot be valid. */
const MAX_FILE_BYTES = 6 * MAX_CONTENT_BYTES + 64 * 1024;

export interface QueueEntry {
  name: string;
  mtimeMs: number;
  regular: boolean;
}

export type Intake =
  | { kind: "envelope"; item: WorkItem }
  | { kind: "reject"; reason: string }
  | { kind: "wait" }
  | { kind: "gone" };

/** In-progress writes: `.NAME`, `NAME.tmp`. */
export const isInProgressName = (name: string): boolean => name.startsWith(".") || name.endsWith(".tmp");

/** The files waiting in queue/, oldest first (mtime, then name). */
export async function listQueue(paths: RelayPaths): Promise<QueueEntry[]> {
  let names: string[];
  try {
    names = await readdir(paths.queue);
  } catch (err) {
    if (isErrno(err, "ENOENT")) return [];
    throw err;
  }
  const entries: QueueEntry[] = [];
  for (const name of names) {
    if (isInProgressName(name)) continue;
    try {
      const st = await lstat(join(paths.queue, name));
      entries.push({ name, mtimeMs: st.mtimeMs, regular: st.isFile() });
    } catch (err) {
      if (!isErrno(err, "ENOENT")) throw err; // vanished between listing and lstat
    }
  }
  return entries.sort((a, b) => a.mtimeMs - b.mtimeMs || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

const envelopeSchema = z.object(
  {
    session_id: z.string({ error: "session_id must be a string" }),
    content: z
      .string({ error: "content must be a string" })
      .check(
        z.refine((s) => s.trim().length > 0, { error: "content must be a non-empty string" }),
        z.refine((s) => Buffer.byteLength(s, "utf8") <= MAX_CONTENT_BYTES, { error: "content is over 1 MiB (UTF-8 bytes)" }),
      ),
    id: z.optional(z.string({ error: "id must be a string" }).check(z.regex(ENVELOPE_ID, { error: `id must match ${ENVELOPE_ID.source}` }))),
    timestamp: z.optional(
      z.union([z.iso.datetime({ offset: true, local: true }), z.iso.datetime({ offset: true, local: true, precision: -1 })], {
        error: "timestamp must be an ISO 8601 time",
      }),
    ),
  },
  { error: "the envelope must be a JSON object" },
);

/** Same bytes, same name, same mtime: the same envelope, even after a restart. */
export const envelopeId = (name: string, mtimeMs: number, raw: Buffer): string =>
  createHash("sha256").update(name).update("\0").update(String(mtimeMs)).update("\0").update(raw).digest("hex").slice(0, 24);

/** Validate an envelope's bytes (pure, for tests and fuzzing). */
export function parseEnvelope(raw: Buffer, sessions: ReadonlySet<string>): { ok: true; session: string; content: string; id?: string; timestamp?: string } | { ok: false; reason: string; json: boolean } {
  let json: unknown;
  try {
    json = JSON.parse(raw.toString("utf8").replace(/^\uFEFF/, ""));
  } catch (err) {
    return { ok: false, json: false, reason: `invalid JSON: ${(err as Error).message}` };
  }
  const parsed = envelopeSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue?.path[0];
    const missing = issue?.code === "invalid_type" && field !== undefined && typeof json === "object" && json !== null && !(String(field) in json);
    return { ok: false, json: true, reason: missing ? `${String(field)} is missing` : (issue?.message ?? "invalid envelope") };
  }
  const { session_id: session, content, id, timestamp } = parsed.data;
  if (!SESSION_ID.test(session)) return { ok: false, json: true, reason: `session_id ${JSON.stringify(session.slice(0, 80))} does not match ${SESSION_ID.source}` };
  if (!sessions.has(session)) return { ok: false, json: true, reason: `session_id ${JSON.stringify(session)} is not registered in config.yaml` };
  return { ok: true, session, content, ...(id === undefined ? {} : { id }), ...(timestamp === undefined ? {} : { timestamp }) };
}

/** Read one queue entry without following links or blocking on FIFOs, and decide what it is. */
export async function readEntry(paths: RelayPaths, entry: QueueEntry, sessions: ReadonlySet<string>, now: number): Promise<Intake> {
  const intake = await readEntryWithBytes(paths, entry, sessions, now);
  return intake.kind === "envelope" ? { kind: "envelope", item: intake.item } : intake;
}

/** readEntry, keeping a valid envelope's bytes and mtime (an agent publishes them as they are). */
export async function readEntryWithBytes(
  paths: RelayPaths,
  entry: QueueEntry,
  sessions: ReadonlySet<string>,
  now: number,
): Promise<Exclude<Intake, { kind: "envelope" }> | { kind: "envelope"; item: WorkItem; raw: Buffer; mtimeMs: number }> {
  if (!entry.regular) return { kind: "reject", reason: "not a regular file (links, directories and FIFOs are refused, never followed)" };
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(join(paths.queue, entry.name), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    if (isErrno(err, "ENOENT")) return { kind: "gone" };
    if (isErrno(err, "ELOOP")) return { kind: "reject", reason: "not a regular file (links are refused, never followed)" };
    throw err;
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) return { kind: "reject", reason: "not a regular file" };
    if (st.size > MAX_FILE_BYTES) return { kind: "reject", reason: "content is over 1 MiB (UTF-8 bytes)" };
    const raw = await handle.readFile();
    // A writer still at work (the file created, its bytes written after our stat): the bytes may
    // be whole while the mtime we saw is the creation's, and the key would change at the next
    // read. Only a read that the file did not change under is taken (measured: 11 of 600 reads
    // woken by a watcher on a busy machine saw the whole file with the mtime from before the write).
    const after = await handle.stat();
    if (after.mtimeMs !== st.mtimeMs || after.size !== raw.length) return { kind: "wait" };
    const result = parseEnvelope(raw, sessions);
    if (!result.ok) {
      // A half-written file is not rejected until it has settled.
      if (!result.json && now - st.mtimeMs < SETTLE_MS) return { kind: "wait" };
      return { kind: "reject", reason: result.reason };
    }
    const key = envelopeId(entry.name, st.mtimeMs, raw);
    return {
      kind: "envelope",
      raw,
      mtimeMs: st.mtimeMs,
      item: {
        id: key,
        source: "envelope",
        session: result.session,
        text: result.content,
        inReplyTo: result.id ?? key,
        receipt: entry.name,
        ...(result.timestamp === undefined ? {} : { timestamp: result.timestamp }),
      },
    };
  } finally {
    await handle.close();
  }
}

/**
 * Move queue/NAME to queue/.rejected/NAME beside NAME.reason.json. The reason is written first,
 * so a crash in between only means the file is rejected again. A name already taken in
 * .rejected/ gets a numeric suffix rather than overwriting an earlier rejection.
 */
export async function rejectFile(paths: RelayPaths, name: string, reason: string, now: number): Promise<string | null> {
  if (!(await exists(join(paths.queue, name)))) return null; // moved already (a repeat after a crash)
  let target = name;
  for (let n = 2; (await exists(join(paths.rejected, target))) || (await exists(join(paths.rejected, `${target}.reason.json`))); n++) target = `${name}.${n}`;
  const reasonFile = join(paths.rejected, `${target}.reason.json`);
  await writeJsonAtomic(reasonFile, { error: reason, at: new Date(now).toISOString(), ...(target === name ? {} : { file: name }) });
  try {
    await rename(join(paths.queue, name), join(paths.rejected, target));
    return target;
  } catch (err) {
    if (!isErrno(err, "ENOENT")) throw err;
    await removeIfPresent(reasonFile); // it vanished meanwhile: leave no orphan reason
    return null;
  }
}

export async function exists(path: string): Promise<boolean> {
  try {
    lstatSync(path); // direct, not on the thread pool: see src/store/files.ts
    return true;
  } catch (err) {
    if (isErrno(err, "ENOENT")) return false;
    throw err;
  }
}

export async function countRejected(paths: RelayPaths): Promise<number> {
  try {
    return (await readdir(paths.rejected)).filter((n) => n.endsWith(".reason.json")).length;
  } catch (err) {
    if (isErrno(err, "ENOENT")) return 0;
    throw err;
  }
}

/**
 * The queue's files and mtimes, kept up to date one name at a time from file-system events and
 * re-read in full on every poll tick (the safety net), so a burst of envelopes costs one lstat
 * each instead of a whole listing each.
 */
export class QueueIndex {
  private readonly entries = new Map<string, QueueEntry>();

  constructor(private readonly paths: RelayPaths) {}

  async rescan(): Promise<void> {
    const fresh = await listQueue(this.paths);
    this.entries.clear();
    for (const e of fresh) this.entries.set(e.name, e);
  }

  /** Re-check one name after an event (created, renamed, changed or gone). */
  async touch(name: string): Promise<void> {
    if (isInProgressName(name)) return;
    try {
      const st = await lstat(join(this.paths.queue, name));
      this.entries.set(name, { name, mtimeMs: st.mtimeMs, regular: st.isFile() });
    } catch (err) {
      if (!isErrno(err, "ENOENT")) throw err;
      this.entries.delete(name);
    }
  }

  forget(name: string): void {
    this.entries.delete(name);
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  /** Oldest first (mtime, then name). */
  list(): QueueEntry[] {
    return [...this.entries.values()].sort((a, b) => a.mtimeMs - b.mtimeMs || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }
}

/**
 * Keep queue/.rejected/ bounded: the newest `keep` rejections, none older than `maxAgeDays`
 * (by the time of the reason file, else of the rejected file). A rejection is its file and its
 * NAME.reason.json; both go together. Returns how many rejections were removed.
 */
export async function pruneRejected(paths: RelayPaths, opts: { keep: number; maxAgeDays: number }, now: number): Promise<number> {
  let names: string[];
  try {
    names = await readdir(paths.rejected);
  } catch (err) {
    if (isErrno(err, "ENOENT")) return 0;
    throw err;
  }
  const REASON = ".reason.json";
  const groups = new Map<string, { names: string[]; mtimeMs: number }>();
  for (const name of names) {
    if (isInProgressName(name)) continue; // an atomic write under way (or a temporary swept at start)
    const base = name.endsWith(REASON) ? name.slice(0, -REASON.length) : name;
    let mtimeMs = 0;
    try {
      mtimeMs = (await lstat(join(paths.rejected, name))).mtimeMs;
    } catch (err) {
      if (!isErrno(err, "ENOENT")) throw err;
      continue;
    }
    const g = groups.get(base) ?? { names: [], mtimeMs: 0 };
    g.names.push(name);
    g.mtimeMs = Math.max(g.mtimeMs, mtimeMs);
    groups.set(base, g);
  }
  const oldest = now - opts.maxAgeDays * 86_400_000;
  const newestFirst = [...groups.values()].sort((a, b) => b.mtimeMs - a.mtimeMs);
  let removed = 0;
  for (const [i, g] of newestFirst.entries()) {
    if (i < opts.keep && g.mtimeMs >= oldest) continue;
    for (const name of g.names) await removeIfPresent(join(paths.rejected, name));
    removed += 1;
  }
  return removed;
}
