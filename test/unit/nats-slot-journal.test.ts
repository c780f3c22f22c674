// The relay's record of the replies it writes into the reply slots (state/nats-slots.jsonl): the
// last line of a session wins, a power cut's torn last line is cut off (its record was never
// synced, so no write to a slot followed it), the whole-file form before the journal is folded in,
// and the journal is rewritten with one line per session once it grows long.
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { SlotJournal } from "../../src/transport/nats/slot-journal.js";

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});
async function stateDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "relay-slot-journal-"));
  dirs.push(dir);
  return dir;
}
const lines = async (dir: string) => (await readFile(join(dir, "nats-slots.jsonl"), "utf8")).split("\n").filter((l) => l !== "");

describe("the slot journal", () => {
  it("gives each session's last record back after a restart", async () => {
    const dir = await stateDir();
    const journal = new SlotJournal(dir);
    expect(await journal.load()).toEqual({});
    const all = () => ({});
    await journal.append("s1", { replyId: "r1", slotRev: 0, published: false }, true, all);
    await journal.append("s1", { replyId: "r1", slotRev: 0, published: true }, false, all);
    await journal.append("s2", { replyId: "r2", slotRev: 4, published: false }, true, all);
    await journal.close();
    expect(await new SlotJournal(dir).load()).toEqual({ s1: { replyId: "r1", slotRev: 0, published: true }, s2: { replyId: "r2", slotRev: 4, published: false } });
  });

  it("cuts off a torn last line, and appends after the last whole one", async () => {
    const dir = await stateDir();
    await writeFile(join(dir, "nats-slots.jsonl"), `${JSON.stringify({ session: "s1", replyId: "r1", slotRev: 2, published: true })}\n{"session":"s1","replyId":"r`);
    const journal = new SlotJournal(dir);
    expect(await journal.load()).toEqual({ s1: { replyId: "r1", slotRev: 2, published: true } });
    await journal.append("s1", { replyId: "r3", slotRev: 7, published: false }, true, () => ({}));
    await journal.close();
    expect(await lines(dir)).toHaveLength(2);
    expect((await new SlotJournal(dir).load()).s1).toEqual({ replyId: "r3", slotRev: 7, published: false });
  });

  it("refuses a journal unreadable before its last line", async () => {
    const dir = await stateDir();
    await writeFile(join(dir, "nats-slots.jsonl"), `not json\n${JSON.stringify({ session: "s1", replyId: "r1", slotRev: 2, published: true })}\n`);
    await expect(new SlotJournal(dir).load()).rejects.toThrow(/nats-slots.jsonl line 1 is unreadable/);
  });

  it("folds in state/nats-slots.json (the form before the journal), its records under the journal's", async () => {
    const dir = await stateDir();
    await writeFile(join(dir, "nats-slots.json"), JSON.stringify({ s1: { replyId: "r1", slotRev: 3, published: false }, s2: { replyId: "r2", slotRev: 5, published: true } }));
    await writeFile(join(dir, "nats-slots.jsonl"), `${JSON.stringify({ session: "s2", replyId: "r9", slotRev: 8, published: false })}\n`);
    const expected = { s1: { replyId: "r1", slotRev: 3, published: false }, s2: { replyId: "r9", slotRev: 8, published: false } };
    expect(await new SlotJournal(dir).load()).toEqual(expected);
    await expect(readFile(join(dir, "nats-slots.json"))).rejects.toThrow(/ENOENT/);
    expect(await new SlotJournal(dir).load()).toEqual(expected);
  });

  it("rewrites itself with one line per session past 1000 lines", async () => {
    const dir = await stateDir();
    const journal = new SlotJournal(dir);
    await journal.load();
    let slots: Record<string, { replyId: string; slotRev: number; published: boolean }> = {};
    for (let i = 0; i < 1_001; i++) {
      const session = `s${i % 3}`;
      const record = { replyId: `r${i}`, slotRev: i, published: false };
      slots = { ...slots, [session]: record };
      await journal.append(session, record, false, () => slots);
    }
    await journal.close();
    expect((await lines(dir)).length).toBeLessThan(10);
    expect(await new SlotJournal(dir).load()).toEqual(slots);
  });
});
