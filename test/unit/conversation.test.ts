import { appendFile, mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  ConversationStore,
  entryBlocks,
  noteEntry,
  parseHistory,
  splitForSummary,
  storedReply,
  transcript,
  turnEntry,
  userText,
  type HistoryEntry,
} from "../../src/history/conversation-store.js";
import { relayPaths, type RelayPaths } from "../../src/config/paths.js";

const AT = "2026-05-02T15:30:00.000Z";
const turn = (id: string, text = `question ${id}`, reply = `answer ${id}`): HistoryEntry => ({ kind: "turn", id, session: "session-1", source: "envelope", text, reply, at: AT });
const note = (id: string): HistoryEntry => ({ kind: "note", id, session: "session-2", text: `note ${id}`, at: AT });
const summary = (id: string): HistoryEntry => ({ kind: "summary", id, text: `summary ${id}`, folded: 3, at: AT });

describe("ConversationStore", () => {
  let root: string;
  let paths: RelayPaths;
  const file = (conversation: string) => join(paths.history, `${conversation}.jsonl`);

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), "relay-conv-"));
    paths = relayPaths(root);
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("an unknown conversation is empty", async () => {
    const store = new ConversationStore(paths);
    expect(await store.entries("shared")).toEqual([]);
    expect(await store.chars("shared")).toBe(0);
  });

  it("append is idempotent by id, in memory and on disk, also across a restart", async () => {
    const store = new ConversationStore(paths);
    await store.append("shared", [turn("t1")]);
    await store.append("shared", [turn("t1"), turn("t2")]);
    await store.append("shared", [turn("t2")]);
    expect((await store.entries("shared")).map((e) => e.id)).toEqual(["t1", "t2"]);
    const onDisk = await readFile(file("shared"), "utf8");
    expect(onDisk.split("\n").filter(Boolean)).toHaveLength(2);

    const restarted = new ConversationStore(paths);
    await restarted.append("shared", [turn("t1"), turn("t2")]);
    expect(await readFile(file("shared"), "utf8")).toBe(onDisk);
    expect((await restarted.entries("shared")).map((e) => e.id)).toEqual(["t1", "t2"]);
  });

  it("a turn with its notes is one append: all of them or none are there after a reload", async () => {
    const store = new ConversationStore(paths);
    await store.append("shared", [note("n1"), note("n2"), turn("t1")]);
    expect((await new ConversationStore(paths).entries("shared")).map((e) => e.id)).toEqual(["n1", "n2", "t1"]);
  });

  it("conversations are kept apart", async () => {
    const store = new ConversationStore(paths);
    await store.append("shared", [turn("a")]);
    await store.append("session.session-2", [turn("b")]);
    const reloaded = new ConversationStore(paths);
    expect((await reloaded.entries("shared")).map((e) => e.id)).toEqual(["a"]);
    expect((await reloaded.entries("session.session-2")).map((e) => e.id)).toEqual(["b"]);
  });

  it("a torn trailing line (half a JSON line) is skipped on reload, the rest kept", async () => {
    const store = new ConversationStore(paths);
    await store.append("shared", [turn("t1"), turn("t2")]);
    const torn = JSON.stringify(turn("t3"));
    await appendFile(file("shared"), torn.slice(0, Math.floor(torn.length / 2)));
    expect((await new ConversationStore(paths).entries("shared")).map((e) => e.id)).toEqual(["t1", "t2"]);
  });

  it("an append after a torn trailing line survives the next reload", async () => {
    const store = new ConversationStore(paths);
    await store.append("shared", [turn("t1")]);
    const torn = JSON.stringify(turn("t2"));
    await appendFile(file("shared"), torn.slice(0, Math.floor(torn.length / 2)));
    const restarted = new ConversationStore(paths);
    await restarted.append("shared", [turn("t2"), turn("t3")]);
    expect((await new ConversationStore(paths).entries("shared")).map((e) => e.id)).toEqual(["t1", "t2", "t3"]);
  });

  it("replace swaps in the new history whole (a new file by rename), leaving no temporary file", async () => {
    const store = new ConversationStore(paths);
    await store.append("shared", [turn("t1"), turn("t2"), turn("t3")]);
    const before = await stat(file("shared"));
    const next = [summary("s1"), turn("t3")];
    await store.replace("shared", next);
    expect(await store.entries("shared")).toEqual(next);
    expect(await new ConversationStore(paths).entries("shared")).toEqual(next);
    expect(await readFile(file("shared"), "utf8")).toBe(next.map((e) => `${JSON.stringify(e)}\n`).join(""));
    expect((await stat(file("shared"))).ino).not.toBe(before.ino);
    expect(await readdir(paths.history)).toEqual(["shared.jsonl"]);
  });

  it("a reader during replace sees the old history or the new one, never a mix or a prefix", async () => {
    const store = new ConversationStore(paths);
    const big = "x".repeat(20_000);
    const old = Array.from({ length: 200 }, (_, i) => turn(`old${i}`, big));
    await store.append("shared", old);
    const next = Array.from({ length: 200 }, (_, i) => turn(`new${i}`, big));
    const oldIds = old.map((e) => e.id).join();
    const newIds = next.map((e) => e.id).join();
    let done = false;
    const replacing = store.replace("shared", next).finally(() => {
      done = true;
    });
    const seen: string[] = [];
    while (!done) {
      seen.push(parseHistory(await readFile(file("shared"), "utf8")).map((e) => e.id).join());
    }
    await replacing;
    seen.push(parseHistory(await readFile(file("shared"), "utf8")).map((e) => e.id).join());
    for (const ids of seen) expect(ids === oldIds || ids === newIds).toBe(true);
    expect(seen[seen.length - 1]).toBe(newIds);
  });

  it("chars counts what chat-Claude sees (labels and stored replies included)", async () => {
    const store = new ConversationStore(paths);
    await store.append("shared", [turn("t1", "hi", "")]);
    expect(await store.chars("shared")).toBe("[session-1] hi".length + "(empty reply)".length);
  });
});

describe("parseHistory", () => {
  it("skips blank, torn and invalid lines and keeps valid ones in order", () => {
    const lines = [JSON.stringify(turn("a")), "", "{not json", JSON.stringify({ kind: "turn", id: "no-fields" }), JSON.stringify(note("b")), JSON.stringify(summary("c")).slice(0, 10)];
    expect(parseHistory(lines.join("\n")).map((e) => e.id)).toEqual(["a", "b"]);
  });
});

describe("splitForSummary", () => {
  const ids = (entries: HistoryEntry[]) => entries.map((e) => e.id);

  it("keeps the last N turns and folds the rest", () => {
    const entries = [turn("t1"), turn("t2"), turn("t3"), turn("t4")];
    const split = splitForSummary(entries, 2);
    expect(split && ids(split.fold)).toEqual(["t1", "t2"]);
    expect(split && ids(split.keep)).toEqual(["t3", "t4"]);
  });

  it("notes just before the first kept turn stay with it", () => {
    const entries = [turn("t1"), note("n1"), turn("t2"), note("n2"), note("n3"), turn("t3"), note("n4"), turn("t4")];
    const split = splitForSummary(entries, 2);
    expect(split && ids(split.fold)).toEqual(["t1", "n1", "t2"]);
    expect(split && ids(split.keep)).toEqual(["n2", "n3", "t3", "n4", "t4"]);
  });

  it("an earlier summary is folded into the next one", () => {
    const split = splitForSummary([summary("s1"), turn("t1"), turn("t2")], 1);
    expect(split && ids(split.fold)).toEqual(["s1", "t1"]);
    expect(split && ids(split.keep)).toEqual(["t2"]);
  });

  it("returns null when nothing can be folded", () => {
    expect(splitForSummary([], 3)).toBeNull();
    expect(splitForSummary([turn("t1"), turn("t2")], 2)).toBeNull();
    expect(splitForSummary([turn("t1"), turn("t2")], 10)).toBeNull();
    expect(splitForSummary([summary("s1"), turn("t1"), turn("t2")], 2)).toBeNull();
    expect(splitForSummary([summary("s1"), note("n1"), turn("t1")], 1)).toBeNull();
    expect(splitForSummary([summary("s1")], 0)).toBeNull();
  });

  it("keep 0 folds everything", () => {
    const split = splitForSummary([turn("t1"), note("n1")], 0);
    expect(split && ids(split.fold)).toEqual(["t1", "n1"]);
    expect(split?.keep).toEqual([]);
  });

  it("property: fold + keep is the history in order; keep has N turns; fold does not end in a note; null only when nothing but summaries would fold", () => {
    const entry = fc.oneof(
      fc.constant<"turn">("turn"),
      fc.constant<"note">("note"),
      fc.constant<"summary">("summary"),
    );
    fc.assert(
      fc.property(fc.array(entry, { maxLength: 30 }), fc.nat({ max: 12 }), (kinds, keepTurns) => {
        const entries = kinds.map((k, i) => (k === "turn" ? turn(`e${i}`) : k === "note" ? note(`e${i}`) : summary(`e${i}`)));
        const split = splitForSummary(entries, keepTurns);
        const turns = entries.filter((e) => e.kind === "turn").length;
        if (split === null) {
          // nothing to fold: too few turns to keep, or only summaries before the kept part
          if (keepTurns > 0 && turns >= keepTurns) {
            let seen = 0;
            let cut = entries.length;
            while (seen < keepTurns) if (entries[--cut]?.kind === "turn") seen++;
            while (cut > 0 && entries[cut - 1]?.kind === "note") cut--;
            expect(entries.slice(0, cut).every((e) => e.kind === "summary")).toBe(true);
          } else if (keepTurns === 0) {
            expect(entries.every((e) => e.kind === "summary")).toBe(true);
          }
          return;
        }
        expect([...split.fold, ...split.keep]).toEqual(entries);
        expect(split.fold.some((e) => e.kind !== "summary")).toBe(true);
        expect(split.keep.filter((e) => e.kind === "turn")).toHaveLength(keepTurns);
        if (keepTurns > 0) {
          expect(split.fold[split.fold.length - 1]?.kind).not.toBe("note");
          expect(split.keep[0]?.kind === "turn" || split.keep[0]?.kind === "note").toBe(true);
        }
      }),
      { numRuns: 1000 },
    );
  });
});

describe("userText labels (byte-stable for prompt caching)", () => {
  it("an envelope with a timestamp", () => {
    expect(userText({ kind: "item", source: "envelope", session: "session-1", text: "PR is open", timestamp: "2026-05-02T15:30:00Z" })).toBe("[session-1 · 2026-05-02T15:30:00Z] PR is open");
  });
  it("an envelope without a timestamp", () => {
    expect(userText({ kind: "item", source: "envelope", session: "session-1", text: "PR is open" })).toBe("[session-1] PR is open");
  });
  it("a JC chat turn", () => {
    expect(userText({ kind: "item", source: "jc", session: "session-2", text: "Go with B" })).toBe("[JC, about session-2] Go with B");
  });
  it("a JC direct note", () => {
    expect(userText({ kind: "note", session: "session-2", text: "stop now" })).toBe("[JC → session-2, sent directly without you] stop now");
  });
  it("a summary", () => {
    expect(userText({ kind: "summary", text: "S" })).toBe("[Summary of the earlier conversation]\nS");
  });

  it("property: a work item and the turn stored for it render the same user text", () => {
    fc.assert(
      fc.property(
        fc.record({ id: fc.string(), session: fc.stringMatching(/^[a-z0-9-]{1,10}$/), source: fc.constantFrom<"envelope" | "jc">("envelope", "jc"), text: fc.string(), timestamp: fc.option(fc.constant(AT), { nil: undefined }) }),
        fc.string(),
        (raw, reply) => {
          const item = raw.timestamp === undefined ? { id: raw.id, session: raw.session, source: raw.source, text: raw.text, inReplyTo: null } : { ...raw, timestamp: raw.timestamp, inReplyTo: null };
          const stored = turnEntry(item, reply, new Date(AT));
          const reloaded = parseHistory(JSON.stringify(stored))[0];
          expect(reloaded).toBeDefined();
          const blocks = reloaded ? entryBlocks(reloaded) : [];
          expect(blocks[0]?.text).toBe(userText({ kind: "item", ...item }));
          expect(blocks[1]?.text).toBe(storedReply(reply));
        },
      ),
    );
  });

  it("an empty or whitespace reply is stored as a visible placeholder, other replies verbatim", () => {
    expect(storedReply("")).toBe("(empty reply)");
    expect(storedReply(" \n\t")).toBe("(empty reply)");
    expect(storedReply(" ok ")).toBe(" ok ");
  });

  it("a note entry renders like the note did in the request", () => {
    const n = { id: "n1", session: "session-2", text: "stop" };
    const stored = noteEntry(n, new Date(AT));
    expect(entryBlocks(stored)).toEqual([{ role: "user", text: userText({ kind: "note", session: "session-2", text: "stop" }) }]);
  });

  it("the summarization transcript labels each side", () => {
    expect(transcript([turn("t1", "hi", "hello"), note("n1")])).toBe("[session-1] hi\n[chat-Claude] hello\n\n[JC → session-2, sent directly without you] note n1");
  });
});
