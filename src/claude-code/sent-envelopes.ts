// The Stop hook's own envelopes (CONTRACT §5, §10): each carries an id of the hook's making, so
// the reply to it is recognised by input.json's `in_reply_to`. A small ledger under
// state/hooks/<session>.sent/ (one file per envelope, so concurrent hooks never race on one file)
// remembers what each id said and whether a hook still waits for its reply: a reply to an id
// whose hook gave up is a late reply (handed over labelled as such), a reply to an id a live
// hook waits for is left for that hook.
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import * as z from "zod/mini";
import type { RelayPaths } from "../config/paths.js";
import { ensureDirs, isErrno, readdirIfPresent, readJsonFile, removeIfPresent, writeJsonAtomic } from "../store/files.js";
import { ENVELOPE_ID } from "../transport/file/queue.js";

/** Ledger entries older than this are pruned: no late reply is labelled from a week-old memory. */
export const SENT_KEEP_MS = 7 * 24 * 3600_000;
/** A waiting hook that outlives its own deadline by this much is taken to be gone. */
const WAITER_GRACE_MS = 30_000;
const QUOTE_MAX = 120;

/**
 * `cc-<first 8 letters and digits of the Claude Code session id>-<epoch ms, base 36>-<6 hex>`,
 * e.g. `cc-9a0f6c1e-mabc1234-3f9a0c`: the Claude Code session it came from, sortable by time,
 * and unique across concurrent hooks.
 */
export function hookEnvelopeId(ccSession: string | undefined, now = Date.now()): string {
  const cc = (ccSession ?? "").replace(/[^A-Za-z0-9]/g, "").slice(0, 8) || "anon";
  return `cc-${cc}-${now.toString(36)}-${randomBytes(3).toString("hex")}`;
}

// ---------------------------------------------------------------------------
// state/hooks/<session>.sent/<id>.json

const sentSchema = z.object({
  id: z.string(),
  /** The start of the message, on one line, to say what a late reply answers */
  quote: z.string(),
  sentAt: z.string(),
  /** The hook process that waits for the reply, and until when */
  pid: z.int(),
  deadline: z.number(),
  waiting: z.boolean(),
});
export type SentEnvelope = z.infer<typeof sentSchema>;

export const sentDir = (paths: RelayPaths, session: string): string => join(paths.state, "hooks", `${session}.sent`);
const sentFile = (paths: RelayPaths, session: string, id: string): string => join(sentDir(paths, session), `${id.replace(/:/g, "_")}.json`);

export const quoteOf = (text: string, max = QUOTE_MAX): string => {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > max ? `${flat.slice(0, max)}…` : flat;
};

/** Remember an envelope before it is dropped, so its reply can never arrive before the record. */
export async function recordSent(paths: RelayPaths, session: string, entry: { id: string; message: string; deadline: number }, now = Date.now()): Promise<void> {
  await ensureDirs(sentDir(paths, session));
  await pruneSent(paths, session, now);
  const record: SentEnvelope = { id: entry.id, quote: quoteOf(entry.message), sentAt: new Date(now).toISOString(), pid: process.pid, deadline: entry.deadline, waiting: true };
  await writeJsonAtomic(sentFile(paths, session, entry.id), record);
}

export async function readSent(paths: RelayPaths, session: string, id: string): Promise<SentEnvelope | null> {
  if (!ENVELOPE_ID.test(id)) return null;
  const read = await readJsonFile(sentFile(paths, session, id), sentSchema);
  return read.ok ? read.value : null;
}

/** The reply to it was handed over: forget it. */
export async function forgetSent(paths: RelayPaths, session: string, id: string): Promise<void> {
  await removeIfPresent(sentFile(paths, session, id));
}

/** Its hook stopped waiting: a reply to it from now on is a late one. */
export async function abandonSent(paths: RelayPaths, session: string, id: string): Promise<void> {
  const entry = await readSent(paths, session, id);
  if (entry === null || !entry.waiting) return;
  await writeJsonAtomic(sentFile(paths, session, id), { ...entry, waiting: false } satisfies SentEnvelope);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return isErrno(err, "EPERM");
  }
}

/** Whether a hook (this process or another) still waits for the reply to this envelope. */
export function hasLiveWaiter(entry: SentEnvelope, now = Date.now()): boolean {
  return entry.waiting && now <= entry.deadline + WAITER_GRACE_MS && pidAlive(entry.pid);
}

async function pruneSent(paths: RelayPaths, session: string, now: number): Promise<void> {
  const dir = sentDir(paths, session);
  const names = await readdirIfPresent(dir);
  for (const name of names) {
    if (!name.endsWith(".json")) continue;
    const read = await readJsonFile(join(dir, name), sentSchema);
    const old = read.ok ? now - Date.parse(read.value.sentAt) > SENT_KEEP_MS && !hasLiveWaiter(read.value, now) : !read.missing;
    if (!old) continue;
    await removeIfPresent(join(dir, name));
  }
}
