// The hooks' own inbox (CONTRACT §10 "A reply counts as delivered only once Claude Code has it").
// A reply taken from dispatch/<session>/input.txt is first written here (durably), then input.txt
// is deleted (the relay's acknowledgement), so the relay can deliver the next one. A reply stays
// here until the Claude Code transcript proves the model has seen it: the text handed over starts
// with a marker, `[relay <reply id>]`, and once a transcript entry the model is shown (a user
// entry, or a hook_additional_context attachment) carries the marker and an assistant entry
// follows it, the reply is delivered and forgotten. A reply Claude Code dropped (its block cap,
// `--max-turns`, a wake it did not deliver, the hook killed at its timeout) is handed over again
// at the next stop or session start.
import { createHash } from "node:crypto";
import { join } from "node:path";
import * as z from "zod/mini";
import type { RelayPaths } from "../config/paths.js";
import { REPLY_SOURCES } from "../transport/file/reply-meta.js";
import { ensureDirs, readdirIfPresent, readIfPresent, readJsonFile, removeIfPresent, writeAtomic } from "../store/files.js";

export const handoverDir = (paths: RelayPaths, session: string): string => join(paths.state, "hooks", `${session}.handover`);

const handedSchema = z.object({
  /** The Claude Code session it was handed to, and that session's transcript */
  ccSession: z.string(),
  transcript: z.nullable(z.string()),
  at: z.string(),
  channel: z.enum(["stop-context", "wake", "start-context"]),
});

const originSchema = z.discriminatedUnion("kind", [
  /** the reply to an envelope a hook of this session sent: its quote and time */
  z.object({ kind: z.literal("sent"), quote: z.string(), sentAt: z.string() }),
  /** the reply to an envelope no hook of this session sent (`relay send`, a script) */
  z.object({ kind: z.literal("other") }),
  /** no envelope: a turn JC started */
  z.object({ kind: z.literal("jc") }),
  /** no input.json beside input.txt (a relay older than CONTRACT version 2) */
  z.object({ kind: z.literal("unlabelled") }),
]);
export type HandoverOrigin = z.infer<typeof originSchema>;

const itemSchema = z.object({
  replyId: z.string(),
  inReplyTo: z.nullable(z.string()),
  source: z.nullable(z.enum(REPLY_SOURCES)),
  origin: originSchema,
  text: z.string(),
  takenAt: z.string(),
  handed: z.nullable(handedSchema),
});
export type HandoverItem = z.infer<typeof itemSchema>;
export type Handed = z.infer<typeof handedSchema>;

/** A stored item with its file name (which orders items by when they were taken). */
export interface StoredItem {
  name: string;
  item: HandoverItem;
}

/** `[relay r-…]`: the first words of every text handed over, searched for in the transcript. */
export const markerOf = (replyId: string): string => `[relay ${replyId}]`;

/** A reply id for a reply without input.json: stable for the same file content and identity. */
export const unlabelledReplyId = (text: string, stamp: string): string =>
  `u-${createHash("sha256").update(stamp).update("\0").update(text).digest("hex").slice(0, 12)}`;

const fileNameOf = (item: HandoverItem): string => `${Date.parse(item.takenAt).toString(36).padStart(10, "0")}-${item.replyId.replace(/[^A-Za-z0-9._-]/g, "_")}.json`;

/** Store a reply taken from input.txt; durable before the caller deletes input.txt. Idempotent by reply id. */
export async function storeItem(paths: RelayPaths, session: string, item: HandoverItem): Promise<void> {
  const dir = handoverDir(paths, session);
  await ensureDirs(dir);
  const existing = (await listItems(paths, session)).find((s) => s.item.replyId === item.replyId);
  if (existing) return;
  await writeAtomic(join(dir, fileNameOf(item)), `${JSON.stringify(item)}\n`, { mode: 0o600, durable: true });
}

/** Every stored item, oldest first; unreadable files are skipped (a write cut short by a crash is a temporary). */
export async function listItems(paths: RelayPaths, session: string): Promise<StoredItem[]> {
  const dir = handoverDir(paths, session);
  const names = await readdirIfPresent(dir);
  const items: StoredItem[] = [];
  for (const name of names.filter((n) => n.endsWith(".json") && !n.startsWith(".")).sort()) {
    const read = await readJsonFile(join(dir, name), itemSchema);
    if (read.ok) items.push({ name, item: read.value });
  }
  return items;
}

export async function markHanded(paths: RelayPaths, session: string, stored: StoredItem, handed: Handed): Promise<void> {
  const item: HandoverItem = { ...stored.item, handed };
  await writeAtomic(join(handoverDir(paths, session), stored.name), `${JSON.stringify(item)}\n`, { mode: 0o600, durable: true });
}

export async function forgetItem(paths: RelayPaths, session: string, stored: StoredItem): Promise<void> {
  await removeIfPresent(join(handoverDir(paths, session), stored.name));
}

// ---------------------------------------------------------------------------
// What the transcript proves

/** delivered: the model was shown it and answered after; queued: it is in the transcript, not yet answered; absent: not there. */
export type DeliveryState = "delivered" | "queued" | "absent";

const lineSchema = z.looseObject({
  type: z.optional(z.string()),
  isSidechain: z.optional(z.boolean()),
  message: z.optional(z.looseObject({ role: z.optional(z.string()), content: z.unknown() })),
  attachment: z.optional(z.looseObject({ type: z.optional(z.string()), content: z.unknown() })),
});

const textsOf = (content: unknown): string[] => {
  if (typeof content === "string") return [content];
  if (!Array.isArray(content)) return [];
  return content.flatMap((part: unknown) => {
    if (typeof part === "string") return [part];
    if (typeof part === "object" && part !== null && typeof (part as { text?: unknown }).text === "string") return [(part as { text: string }).text];
    return [];
  });
};

/**
 * Where each marker stands in a transcript (JSONL as Claude Code writes it). Only entries the
 * model is shown count: user entries (a block's "Stop hook feedback", a wake's task
 * notification) and hook_additional_context attachments; the hook's raw stdout (hook_success)
 * and a wake only queued (queue-operation) do not.
 */
export function deliveryStates(jsonl: string, markers: readonly string[]): Map<string, DeliveryState> {
  const seenAt = new Map<string, number>();
  let lastAssistant = -1;
  let index = 0;
  for (const raw of jsonl.split("\n")) {
    if (raw.trim() === "") continue;
    index++;
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch {
      continue;
    }
    const line = lineSchema.safeParse(json);
    if (!line.success || line.data.isSidechain === true) continue;
    const { type, message, attachment } = line.data;
    if (type === "assistant") {
      lastAssistant = index;
      continue;
    }
    let texts: string[] = [];
    if (type === "user" && message) texts = textsOf(message.content);
    else if (type === "attachment" && attachment?.type === "hook_additional_context") texts = textsOf(attachment.content);
    if (texts.length === 0) continue;
    for (const marker of markers) if (!seenAt.has(marker) && texts.some((t) => t.includes(marker))) seenAt.set(marker, index);
  }
  const states = new Map<string, DeliveryState>();
  for (const marker of markers) {
    const at = seenAt.get(marker);
    states.set(marker, at === undefined ? "absent" : lastAssistant > at ? "delivered" : "queued");
  }
  return states;
}

export interface Reconciled {
  /** Items to hand over now: never handed, or handed and not found where they were handed. */
  toHand: StoredItem[];
  /** Items the transcript shows delivered (now forgotten). */
  delivered: StoredItem[];
}

/**
 * Bring the inbox up to date with what Claude Code shows the model: forget what was delivered,
 * keep what is queued in the current session's transcript, and return what must be handed over
 * (again). `ccSession` is the session now running the hook.
 */
export async function reconcile(paths: RelayPaths, session: string, ccSession: string): Promise<Reconciled> {
  const items = await listItems(paths, session);
  const transcripts = new Map<string, string>();
  const toHand: StoredItem[] = [];
  const delivered: StoredItem[] = [];
  for (const stored of items) {
    const handed = stored.item.handed;
    if (handed === null) {
      toHand.push(stored);
      continue;
    }
    if (handed.transcript === null) {
      // Handed to a Claude Code that named no transcript: nothing can prove it either way, and handing it again forever is worse.
      await forgetItem(paths, session, stored);
      delivered.push(stored);
      continue;
    }
    const jsonl = transcripts.get(handed.transcript) ?? (await readIfPresent(handed.transcript)) ?? "";
    transcripts.set(handed.transcript, jsonl);
    const state = deliveryStates(jsonl, [markerOf(stored.item.replyId)]).get(markerOf(stored.item.replyId));
    if (state === "delivered") {
      await forgetItem(paths, session, stored);
      delivered.push(stored);
    } else if (state === "queued" && handed.ccSession === ccSession) {
      continue; // in this session's history: the model sees it with its next request
    } else {
      toHand.push(stored);
    }
  }
  return { toHand, delivered };
}

// ---------------------------------------------------------------------------
// The words handed over

const clock = (iso: string): string => {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : `${d.toISOString().slice(0, 16).replace("T", " ")} UTC`;
};

/** The heading of one reply: the marker, then who speaks and what it answers. */
export function headingOf(item: HandoverItem, ownId: string | null): string {
  const marker = markerOf(item.replyId);
  const afterJc = item.source === "jc-chat" ? " (after a turn with JC, the human overseeing this session)" : "";
  if (item.source === "jc-direct") return `${marker} JC, the human overseeing this session, writes to you directly:`;
  if (item.inReplyTo !== null && item.inReplyTo === ownId) return `${marker} The reviewer's reply to your latest message${afterJc}:`;
  switch (item.origin.kind) {
    case "sent":
      return `${marker} A late reply from the reviewer${afterJc} to your earlier message of ${clock(item.origin.sentAt)} (“${item.origin.quote}”). It is NOT the reply to your latest message:`;
    case "other":
      return `${marker} A reply from the reviewer${afterJc} to another message on this relay session (envelope ${item.inReplyTo ?? "?"}). It is NOT the reply to your latest message:`;
    case "jc":
      return `${marker} A message from the reviewer${afterJc}, not a reply to any message of yours:`;
    case "unlabelled":
      return `${marker} A reply from the relay that does not say which message it answers:`;
  }
}

/** The first line of every hand-over: whose words follow. */
export const RELAY_INTRO = "Message from the relay: the words below are from your reviewer (chat-Claude) and JC (the human overseeing this work), addressed to you as your next instructions.";

/**
 * The text handed to the agent: each reply under its heading, oldest first, the reply to the
 * latest message last, then an optional note (why the latest reply is not there, say).
 */
export function composeHandover(items: readonly HandoverItem[], ownId: string | null, note?: string): string {
  const ordered = [...items.filter((i) => i.inReplyTo === null || i.inReplyTo !== ownId), ...items.filter((i) => i.inReplyTo !== null && i.inReplyTo === ownId)];
  const parts = ordered.map((item) => `${headingOf(item, ownId)}\n\n${item.text.trimEnd()}`);
  if (note !== undefined) parts.push(note);
  return [RELAY_INTRO, ...parts].join("\n\n---\n\n");
}
