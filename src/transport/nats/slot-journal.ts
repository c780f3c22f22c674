// The relay's record of the replies it writes into the reply slots (issue 16, Dispatch):
// state/nats-slots.jsonl, one line per record, the last line of a session wins.
//
// A staging record must be on disk before its write to the slot: it is appended with one write()
// and one fdatasync, where a whole-file atomic rewrite costs two fsyncs and a rename (measured on
// the reply's path: 1.4-2.8 ms). A "published" mark is appended without a sync (it survives a
// kill -9 in the page cache; lost in a power cut, it means one more write, which the server
// refuses as "wrong last sequence", read as published). A power cut during an append can leave a
// torn last line: its record was not synced, so no write to the slot followed it; it is cut off.
// Past COMPACT_AFTER lines the journal is rewritten (atomically, fsynced) with one line per session.
// state/nats-slots.json, the whole-file record before this journal, is read first if present.
import { closeSync, openSync, writeSync } from "node:fs";
import { readFile, truncate, unlink } from "node:fs/promises";
import { join } from "node:path";
import * as z from "zod/mini";
import { datasyncFd, isErrno, readJsonFile, syncDir, writeAtomic } from "../../store/files.js";

const recordSchema = z.object({ replyId: z.string(), slotRev: z.int().check(z.gte(0)), published: z.boolean() });
export type SlotRecord = z.infer<typeof recordSchema>;
const lineSchema = z.extend(recordSchema, { session: z.string() });
const legacySchema = z.record(z.string(), recordSchema);

const COMPACT_AFTER = 1_000;

export class SlotJournal {
  private readonly file: string;
  private readonly legacy: string;
  /** the journal opened to append (direct writes; only the data sync runs on the thread pool) */
  private fd: number | null = null;
  private lines = 0;

  constructor(private readonly stateDir: string) {
    this.file = join(stateDir, "nats-slots.jsonl");
    this.legacy = join(stateDir, "nats-slots.json");
  }

  /** Every session's last record (a record of the whole-file form before this journal is folded in, once). */
  async load(): Promise<Record<string, SlotRecord>> {
    const records: Record<string, SlotRecord> = {};
    const old = await readJsonFile(this.legacy, legacySchema);
    if (!old.ok && !old.missing) throw new Error(`state/nats-slots.json is unreadable (${old.error}); move it aside only if no reply is being published`);
    let text = "";
    try {
      text = await readFile(this.file, "utf8");
    } catch (err) {
      if (!isErrno(err, "ENOENT")) throw err;
    }
    let whole = 0; // bytes up to the end of the last whole record
    const lines = text.split("\n");
    for (const [i, line] of lines.entries()) {
      const last = i === lines.length - 1;
      if (last && line === "") break;
      const parsed = lineSchema.safeParse(safeJson(line));
      if (!parsed.success) {
        if (last) break; // torn by a power cut mid-append: cut off below
        throw new Error(`state/nats-slots.jsonl line ${i + 1} is unreadable; move it aside only if no reply is being published`);
      }
      const { session, ...record } = parsed.data;
      records[session] = record;
      whole += Buffer.byteLength(line) + 1;
      this.lines += 1;
    }
    if (whole < Buffer.byteLength(text)) await truncate(this.file, whole);
    if (old.ok) {
      await this.compact({ ...old.value, ...records });
      return { ...old.value, ...records };
    }
    return records;
  }

  /** Append one session's record; `durable` (a staging record) returns once it is on disk. */
  async append(session: string, record: SlotRecord, durable: boolean, all: () => Record<string, SlotRecord>): Promise<void> {
    if (this.lines >= COMPACT_AFTER) await this.compact(all());
    const fd = await this.open();
    const line = Buffer.from(`${JSON.stringify({ session, ...record })}\n`, "utf8");
    if (writeSync(fd, line) !== line.length) throw new Error(`${this.file}: short append`);
    this.lines += 1;
    if (durable) await datasyncFd(fd);
  }

  async close(): Promise<void> {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }

  /** The journal, opened to append once per process; the first open makes sure its name is on disk (it may be new). */
  private async open(): Promise<number> {
    if (this.fd !== null) return this.fd;
    const fd = openSync(this.file, "a", 0o600);
    try {
      await syncDir(this.stateDir);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    this.fd = fd;
    return fd;
  }

  /** One line per session, written whole (fsynced) in place of the journal; the whole-file form goes once folded in. */
  private async compact(records: Record<string, SlotRecord>): Promise<void> {
    await this.close();
    const body = Object.entries(records).map(([session, record]) => `${JSON.stringify({ session, ...record })}\n`);
    await writeAtomic(this.file, body.join(""), { mode: 0o600 });
    this.lines = body.length;
    await unlink(this.legacy).catch((err: unknown) => {
      if (!isErrno(err, "ENOENT")) throw err;
    });
  }
}

/** JSON.parse, or null for text that is not JSON. */
export const safeJson = (text: string): unknown => {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
};
