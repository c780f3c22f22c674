// Reading the end of a JSON-lines file backwards (the ledger's newest calls, a conversation's last
// entries for the status page and `relay history --last`): whole lines only, bounded in bytes.
import { appendFile, mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { relayPaths, type RelayPaths } from "../../src/config/paths.js";
import { ConversationStore, historyFile, type HistoryEntry } from "../../src/history/conversation-store.js";
import { recentLines } from "../../src/history/recent-lines.js";
import { ensureDirs } from "../../src/store/files.js";
import { readLinesBackward } from "../../src/store/lines-backward.js";

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function tempRoot(): Promise<RelayPaths> {
  const dir = await mkdtemp(join(tmpdir(), "relay-recent-"));
  dirs.push(dir);
  const paths = relayPaths(dir);
  await ensureDirs(paths.history);
  return paths;
}

async function linesOf(file: string, opts: { maxBytes?: number; stopAfter?: number } = {}): Promise<{ lines: string[]; stoppedEarly: boolean; bytesRead: number }> {
  const lines: string[] = [];
  const read = await readLinesBackward(
    file,
    (line) => {
      lines.push(line);
      return opts.stopAfter === undefined || lines.length < opts.stopAfter;
    },
    opts.maxBytes === undefined ? {} : { maxBytes: opts.maxBytes },
  );
  return { lines, stoppedEarly: read.stoppedEarly, bytesRead: read.bytesRead };
}

const at = (i: number) => new Date(Date.UTC(2026, 10, 28, 10, 0, i)).toISOString();
const turn = (i: number, session: string, text: string, reply = `reply ${i}`): HistoryEntry => ({ kind: "turn", id: `e-${i}`, session, source: "envelope", text, reply, at: at(i) });

describe("readLinesBackward", () => {
  it("gives every whole line newest first, lines longer than a read chunk included", async () => {
    const paths = await tempRoot();
    const file = join(paths.root, "f.jsonl");
    const long = "x".repeat(700 * 1024); // spans several 256 KiB chunks
    await writeFile(file, `first\n${long}\nthird\n\nfourth`);
    const { lines, stoppedEarly } = await linesOf(file);
    expect(lines.map((l) => (l.length > 20 ? `${l.length}` : l))).toEqual(["fourth", "third", String(long.length), "first"]);
    expect(stoppedEarly).toBe(false);
  });

  it("stops where the visitor says, and never reads past maxBytes (a line cut by the bound is not seen)", async () => {
    const paths = await tempRoot();
    const file = join(paths.root, "f.jsonl");
    await writeFile(file, Array.from({ length: 1000 }, (_, i) => `line-${String(i).padStart(4, "0")}`).join("\n") + "\n");
    expect((await linesOf(file, { stopAfter: 3 })).lines).toEqual(["line-0999", "line-0998", "line-0997"]);
    // each line is 10 bytes: 35 bytes hold 3 whole lines and half of a fourth
    const bounded = await linesOf(file, { maxBytes: 35 });
    expect(bounded.lines).toEqual(["line-0999", "line-0998", "line-0997"]);
    expect(bounded.stoppedEarly).toBe(true);
    expect(bounded.bytesRead).toBeLessThanOrEqual(35);
    expect(await readLinesBackward(join(paths.root, "missing.jsonl"), () => true)).toEqual({ missing: true, bytesRead: 0, stoppedEarly: false });
  });
});

describe("recentLines: a conversation's last entries from its file's end", () => {
  it("gives one session's last N entries and the summaries, oldest first, and says whether older ones exist", async () => {
    const paths = await tempRoot();
    const store = new ConversationStore(paths);
    await store.append("shared", [
      { kind: "summary", id: "sum-1", text: "Earlier: the parser was planned.", folded: 4, at: at(0) },
      turn(1, "session-1", "I wrote the parser."),
      turn(2, "session-2", "Docs updated."),
      { kind: "note", id: "n-3", session: "session-1", text: "Skip the benchmarks.", at: at(3) },
      turn(4, "session-1", "Parser tests added."),
    ]);
    const mine = await recentLines(paths, "shared", { last: 10, session: "session-1" });
    expect(mine.lines.map((l) => [l.kind, l.from, l.text])).toEqual([
      ["summary", "summary", "Earlier: the parser was planned."],
      ["turn", "agent", "I wrote the parser."],
      ["note", "jc", "Skip the benchmarks."],
      ["turn", "agent", "Parser tests added."],
    ]);
    expect(mine.more).toBe(false);
    const two = await recentLines(paths, "shared", { last: 2, session: "session-1" });
    expect(two.lines.map((l) => l.text)).toEqual(["Skip the benchmarks.", "Parser tests added."]);
    expect(two.more).toBe(true);
    expect((await recentLines(paths, "shared", { last: 1 })).lines[0]?.reply).toBe("reply 4");
    expect(await recentLines(paths, "session.none", { last: 5 })).toEqual({ lines: [], more: false, bytesRead: 0 });
  });

  it("reads only the end of a 400,000-character history shared by 20 sessions, and skips a torn last line", async () => {
    const paths = await tempRoot();
    const store = new ConversationStore(paths);
    const entries: HistoryEntry[] = [];
    for (let i = 0; i < 420; i++) entries.push(turn(i, `session-${(i % 20) + 1}`, `report ${i}: ${"all tests pass. ".repeat(40)}`, `next ${i}: ${"carry on. ".repeat(30)}`));
    await store.append("shared", entries);
    await appendFile(historyFile(paths, "shared"), '{"kind":"turn","id":"torn","ses');
    const size = (await stat(historyFile(paths, "shared"))).size;
    expect(await store.chars("shared")).toBeGreaterThan(400_000);

    const last = await recentLines(paths, "shared", { last: 10, session: "session-7", maxBytes: 2 * 1024 * 1024 });
    expect(last.lines.map((l) => l.text.split(":")[0])).toEqual(Array.from({ length: 10 }, (_, k) => `report ${226 + 20 * k}`));
    expect(last.more).toBe(true);
    // 10 of one session's turns among 20 sessions: about 200 of the 420 entries, read from the end
    expect(last.bytesRead).toBeLessThan(size * 0.6);
    const bounded = await recentLines(paths, "shared", { last: 50, session: "session-7", maxBytes: 64 * 1024 });
    expect(bounded.bytesRead).toBeLessThanOrEqual(64 * 1024);
    expect(bounded.more).toBe(true);
    expect(bounded.lines.length).toBeGreaterThan(0);
    expect(bounded.lines.every((l) => l.session === "session-7")).toBe(true);
  });
});
