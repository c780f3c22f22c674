// The hooks' own inbox (src/claude-code/handover.ts) and the shapes of a hand-over: what the
// transcript proves delivered (deliveryStates), what is handed again (reconcile), the words
// handed over (composeHandover, headings), and how the Stop hook prints them (stopHandOver).
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  composeHandover,
  deliveryStates,
  type Handed,
  handoverDir,
  type HandoverItem,
  headingOf,
  listItems,
  markerOf,
  markHanded,
  reconcile,
  RELAY_INTRO,
  storeItem,
} from "../../src/claude-code/handover.js";
import { INLINE_CONTEXT_MAX, plainBlockReason, sessionStartOutput, stopHandOver } from "../../src/claude-code/hook.js";
import { relayPaths, type RelayPaths } from "../../src/config/paths.js";
import { FakeTranscript, parseHandover, removeTranscripts } from "./cc-transcript.js";

const CC = "9a0f6c1e-2d4b-4f8e-b1a7-3c5d7e9f0a21";
const OTHER_CC = "5b2e9c47-8f1a-4d3b-a6c0-2e7f9d1b3c58";

const roots: string[] = [];
afterAll(async () => {
  for (const r of roots.splice(0)) await rm(r, { recursive: true, force: true });
  await removeTranscripts();
});
async function tempPaths(): Promise<RelayPaths> {
  const root = await mkdtemp(join(tmpdir(), "relay-handover-"));
  roots.push(root);
  return relayPaths(root);
}

let taken = Date.parse("2026-05-02T15:00:00Z");
const item = (replyId: string, fields: Partial<HandoverItem> = {}): HandoverItem => ({
  replyId,
  inReplyTo: null,
  source: "envelope",
  origin: { kind: "jc" },
  text: `Text of ${replyId}.`,
  takenAt: new Date((taken += 1_000)).toISOString(),
  handed: null,
  ...fields,
});

// ---------------------------------------------------------------------------

describe("deliveryStates: what the transcript proves", () => {
  const M = markerOf("r-1");
  const line = (entry: Record<string, unknown>): string => JSON.stringify({ isSidechain: false, sessionId: CC, version: "2.1.332", uuid: "x", ...entry });
  const user = (content: unknown, extra: Record<string, unknown> = {}) => line({ type: "user", message: { role: "user", content }, ...extra });
  const assistant = line({ type: "assistant", message: { role: "assistant", content: [{ type: "text", text: "On it." }] } });
  const attachment = (type: string, content: unknown) => line({ type: "attachment", attachment: { type, content, hookName: "Stop", hookEvent: "Stop" } });
  const stateOf = (lines: string[], marker = M) => deliveryStates(lines.join("\n"), [marker]).get(marker);

  it("a user entry with the marker, then an assistant entry: delivered (a block's feedback, a wake's notification)", () => {
    expect(stateOf([user(`Stop hook feedback:\n${RELAY_INTRO}\n\n---\n\n${M} The reviewer's reply…`), assistant])).toBe("delivered");
    expect(stateOf([user([{ type: "text", text: `<task-notification>${M}</task-notification>` }]), assistant])).toBe("delivered");
  });

  it("a hook_additional_context attachment with the marker, then an assistant entry: delivered", () => {
    expect(stateOf([attachment("hook_additional_context", [`${RELAY_INTRO}\n\n---\n\n${M} …`]), assistant])).toBe("delivered");
    expect(stateOf([attachment("hook_additional_context", `${M} as a plain string`), assistant])).toBe("delivered");
  });

  it("the marker with no assistant entry after it: queued, whatever came before", () => {
    expect(stateOf([user(M)])).toBe("queued");
    expect(stateOf([assistant, attachment("hook_additional_context", [M])])).toBe("queued");
  });

  it("the hook's raw stdout (hook_success), a queued wake (queue-operation), a sidechain or another entry type do not count", () => {
    expect(stateOf([attachment("hook_success", `{"hookSpecificOutput":{"additionalContext":"${M}"}}`), assistant])).toBe("absent");
    expect(stateOf([line({ type: "queue-operation", operation: "enqueue", content: M }), assistant])).toBe("absent");
    expect(stateOf([user(M, { isSidechain: true }), assistant])).toBe("absent");
    expect(stateOf([line({ type: "system", content: M }), assistant])).toBe("absent");
    expect(stateOf([line({ type: "assistant", message: { role: "assistant", content: M } })])).toBe("absent");
    expect(stateOf([])).toBe("absent");
  });

  it("skips torn or foreign lines, and tells markers apart exactly ([relay r-1] is not [relay r-10])", () => {
    const jsonl = ["{not json", user(markerOf("r-10")), '{"type":', assistant, user(markerOf("r-2"))].join("\n");
    const states = deliveryStates(jsonl, [markerOf("r-1"), markerOf("r-10"), markerOf("r-2")]);
    expect([...states]).toEqual([
      [markerOf("r-1"), "absent"],
      [markerOf("r-10"), "delivered"],
      [markerOf("r-2"), "queued"],
    ]);
  });

  it("the first time the marker is shown counts: a later re-hand-over not yet answered does not undo a delivery", () => {
    expect(stateOf([user(M), assistant, attachment("hook_additional_context", [M])])).toBe("delivered");
  });
});

// ---------------------------------------------------------------------------

describe("reconcile: the inbox brought up to date with the transcript", () => {
  async function stored(paths: RelayPaths, entry: HandoverItem, handed: Handed | null): Promise<void> {
    await storeItem(paths, "session-1", entry);
    if (handed === null) return;
    const found = (await listItems(paths, "session-1")).find((s) => s.item.replyId === entry.replyId);
    if (!found) throw new Error(`${entry.replyId} not stored`);
    await markHanded(paths, "session-1", found, handed);
  }
  const handedTo = (cc: FakeTranscript | null, ccSession = CC): Handed => ({ ccSession, transcript: cc?.path ?? null, at: new Date().toISOString(), channel: "stop-context" });

  it("forgets what was delivered, hands again what was dropped, keeps what is queued in the same session", async () => {
    const paths = await tempPaths();
    const cc = await FakeTranscript.create(CC);
    await stored(paths, item("r-1"), handedTo(cc)); // delivered
    await stored(paths, item("r-2"), handedTo(cc)); // dropped: never in the transcript
    await stored(paths, item("r-3"), handedTo(cc)); // queued: in the transcript, not answered yet
    await stored(paths, item("r-4"), null); // taken, never handed
    await stored(paths, item("r-5"), handedTo(null)); // handed where no transcript was known: nothing can prove it, so it is not repeated
    await cc.additionalContext(`${RELAY_INTRO}\n\n---\n\n${markerOf("r-1")} …`);
    await cc.assistant("Done.");
    await cc.user(`${markerOf("r-3")} …`);

    const same = await reconcile(paths, "session-1", CC);
    expect(same.delivered.map((s) => s.item.replyId)).toEqual(["r-1", "r-5"]);
    expect(same.toHand.map((s) => s.item.replyId)).toEqual(["r-2", "r-4"]);
    expect((await listItems(paths, "session-1")).map((s) => s.item.replyId)).toEqual(["r-2", "r-3", "r-4"]);

    // Another Claude Code session is handed the queued one too: it is not in its history.
    const other = await reconcile(paths, "session-1", OTHER_CC);
    expect(other.delivered).toEqual([]);
    expect(other.toHand.map((s) => s.item.replyId)).toEqual(["r-2", "r-3", "r-4"]);

    // Once the model answers after it, the queued one is delivered too.
    await cc.assistant("Read it.");
    const later = await reconcile(paths, "session-1", CC);
    expect(later.delivered.map((s) => s.item.replyId)).toEqual(["r-3"]);
    expect(later.toHand.map((s) => s.item.replyId)).toEqual(["r-2", "r-4"]);
  });

  it("hands again a reply handed to a transcript that is gone", async () => {
    const paths = await tempPaths();
    await stored(paths, item("r-1"), { ccSession: CC, transcript: "/nonexistent/transcript.jsonl", at: new Date().toISOString(), channel: "wake" });
    expect((await reconcile(paths, "session-1", CC)).toHand.map((s) => s.item.replyId)).toEqual(["r-1"]);
  });

  it("stores each reply once, by reply id, oldest first, durably under state/hooks/<session>.handover/", async () => {
    const paths = await tempPaths();
    const first = item("r-7");
    await storeItem(paths, "session-1", first);
    await storeItem(paths, "session-1", { ...first, text: "a second copy" });
    await storeItem(paths, "session-1", item("r-8"));
    expect((await listItems(paths, "session-1")).map((s) => [s.item.replyId, s.item.text])).toEqual([
      ["r-7", "Text of r-7."],
      ["r-8", "Text of r-8."],
    ]);
    expect(await readdir(handoverDir(paths, "session-1"))).toHaveLength(2);
    expect(await listItems(paths, "session-2")).toEqual([]);
  });
});

// ---------------------------------------------------------------------------

describe("the words handed over", () => {
  const own = "cc-9a0f6c1e-mabc1234-3f9a0c";
  const sentAt = "2026-05-02T14:05:09.000Z";

  it("heads each reply with its marker and says whose it is and what it answers", () => {
    expect(headingOf(item("r-1", { inReplyTo: own, origin: { kind: "sent", quote: "Q", sentAt } }), own)).toBe("[relay r-1] The reviewer's reply to your latest message:");
    expect(headingOf(item("r-1", { inReplyTo: own, source: "jc-chat", origin: { kind: "sent", quote: "Q", sentAt } }), own)).toBe(
      "[relay r-1] The reviewer's reply to your latest message (after a turn with JC, the human overseeing this session):",
    );
    expect(headingOf(item("r-2", { inReplyTo: "cc-9a0f6c1e-maaa0000-000001", origin: { kind: "sent", quote: "Sub-PR A is open.", sentAt } }), own)).toBe(
      "[relay r-2] A late reply from the reviewer to your earlier message of 2026-05-02 14:05 UTC (“Sub-PR A is open.”). It is NOT the reply to your latest message:",
    );
    expect(headingOf(item("r-3", { inReplyTo: "s1-0042", origin: { kind: "other" } }), own)).toBe(
      "[relay r-3] A reply from the reviewer to another message on this relay session (envelope s1-0042). It is NOT the reply to your latest message:",
    );
    expect(headingOf(item("r-4", { source: "jc-direct" }), own)).toBe("[relay r-4] JC, the human overseeing this session, writes to you directly:");
    expect(headingOf(item("r-5"), own)).toBe("[relay r-5] A message from the reviewer, not a reply to any message of yours:");
    expect(headingOf(item("u-0123456789ab", { source: null, origin: { kind: "unlabelled" } }), own)).toBe("[relay u-0123456789ab] A reply from the relay that does not say which message it answers:");
    // With no message of its own (SessionStart), nothing is the reply to the latest message.
    expect(headingOf(item("r-6", { inReplyTo: own, origin: { kind: "sent", quote: "Q", sentAt } }), null)).toMatch(/^\[relay r-6\] A late reply /);
  });

  it("puts the intro first, the other replies in order, the answer last, then the note", () => {
    const answer = item("r-9", { inReplyTo: own, origin: { kind: "sent", quote: "Q", sentAt }, text: "The answer.\n\n" });
    const text = composeHandover([answer, item("r-1", { source: "jc-direct", text: "JC here." }), item("r-2", { text: "Reviewer aside." })], own, "(relay: a note.)");
    expect(text.split("\n\n---\n\n")).toEqual([
      RELAY_INTRO,
      "[relay r-1] JC, the human overseeing this session, writes to you directly:\n\nJC here.",
      "[relay r-2] A message from the reviewer, not a reply to any message of yours:\n\nReviewer aside.",
      "[relay r-9] The reviewer's reply to your latest message:\n\nThe answer.",
      "(relay: a note.)",
    ]);
    const parsed = parseHandover(text);
    expect(parsed.answer).toBe("The answer.");
    expect(parsed.note).toBe("(relay: a note.)");
    expect(composeHandover([item("r-3")], null)).toBe(`${RELAY_INTRO}\n\n---\n\n[relay r-3] A message from the reviewer, not a reply to any message of yours:\n\nText of r-3.`);
  });
});

// ---------------------------------------------------------------------------

describe("stopHandOver: the three shapes of a Stop hand-over", () => {
  const short = `${RELAY_INTRO}\n\n---\n\n[relay r-1] The reviewer's reply to your latest message:\n\nGo on.`;
  const long = `${RELAY_INTRO}\n\n---\n\n[relay r-1] The reviewer's reply to your latest message:\n\n${"Step. ".repeat(2_000)}END`;
  const parse = (s: string) => JSON.parse(s) as { decision?: string; reason?: string; hookSpecificOutput?: { hookEventName: string; additionalContext: string } };

  it("up to INLINE_CONTEXT_MAX characters: Stop additionalContext, the text as it is, on every version", () => {
    expect(long.length).toBeGreaterThan(INLINE_CONTEXT_MAX);
    for (const version of [null, "2.1.197", "2.1.332"]) {
      expect(parse(stopHandOver(short, version))).toEqual({ hookSpecificOutput: { hookEventName: "Stop", additionalContext: short } });
    }
    const edge = "x".repeat(INLINE_CONTEXT_MAX);
    expect(parse(stopHandOver(edge, null)).hookSpecificOutput?.additionalContext).toBe(edge);
  });

  it("longer, on a version that frames a block reason as data (or an unknown one): additionalContext with a note to read it all first", () => {
    for (const version of [null, "2.1.198", "2.1.332", "not-a-version"]) {
      const out = parse(stopHandOver(long, version));
      expect(out.decision).toBeUndefined();
      const context = String(out.hookSpecificOutput?.additionalContext);
      expect(context.startsWith("(relay: this message is longer than Claude Code shows inline. If you see only a preview, Read the whole file it names")).toBe(true);
      expect(context.endsWith(`\n\n${long}`)).toBe(true);
    }
    const edge = "x".repeat(INLINE_CONTEXT_MAX + 1);
    expect(parse(stopHandOver(edge, null)).hookSpecificOutput?.additionalContext).not.toBe(edge);
  });

  it("longer, on a version that shows a block reason whole and plain (up to 2.1.197): a block with the text as the reason", () => {
    for (const version of ["2.1.197", "2.1.40", "2.0.77", "1.0.128"]) {
      expect(parse(stopHandOver(long, version))).toEqual({ decision: "block", reason: long });
    }
  });

  it("plainBlockReason compares versions numerically and refuses what is not one", () => {
    expect(["2.1.197", "2.1.9", "2.0.999", "1.99.0"].map(plainBlockReason)).toEqual([true, true, true, true]);
    expect(["2.1.198", "2.1.332", "2.2.0", "3.0.0", "2.1", "", "2.x.1"].map(plainBlockReason)).toEqual([false, false, false, false, false, false, false]);
  });

  it("SessionStart context: whole up to the limit, the same note above it", () => {
    expect(JSON.parse(sessionStartOutput(short))).toEqual({ hookSpecificOutput: { hookEventName: "SessionStart", additionalContext: short } });
    const context = (JSON.parse(sessionStartOutput(long)) as { hookSpecificOutput: { additionalContext: string } }).hookSpecificOutput.additionalContext;
    expect(context).toMatch(/^\(relay: this message is longer than Claude Code shows inline\./);
    expect(context.endsWith(long)).toBe(true);
  });
});
