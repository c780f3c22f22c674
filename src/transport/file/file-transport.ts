// The file transport (CONTRACT §5): envelopes are files in queue/, replies are
// dispatch/<session>/input.txt with input.json beside it. Receipts are queue/ file names.
import { type FSWatcher, watch } from "node:fs";
import { renameSync } from "node:fs";
import { join } from "node:path";
import type { Delivery, WorkItem } from "../../../machines/types.js";
import { inputFile, type RelayPaths, sessionDir } from "../../config/paths.js";
import type { Logger } from "../../runtime/log.js";
import { removeIfPresent, syncDir, writeDurable } from "../../store/files.js";
import type { DeliverOutcome, Inbox, Outbox } from "../port.js";
import { ensureSessionDir, inputExists, kindOf } from "./dispatch.js";
import { type Intake, QueueIndex, readEntry, rejectFile } from "./queue.js";
import { readReplyMeta, type ReplyMeta, replyMetaFile } from "./reply-meta.js";

export const stagingFile = (paths: RelayPaths, session: string, replyId: string): string => join(sessionDir(paths, session), `.reply-${replyId}.tmp`);

export class FileInbox implements Inbox {
  private readonly index: QueueIndex;
  /** what each file was found to be, by name and mtime: a file is read once, not on every look */
  private readonly parsed = new Map<string, { mtimeMs: number; intake: Intake }>();
  private readonly touched = new Set<string>();
  private fullScan = true;
  private watcher: FSWatcher | null = null;

  constructor(
    private readonly paths: RelayPaths,
    private readonly sessions: () => ReadonlySet<string>,
    private readonly now: () => number,
    private readonly log: Logger,
  ) {
    this.index = new QueueIndex(paths);
  }

  /** Wake `onChange` when queue/ changes; names are indexed one at a time. */
  watch(onChange: () => void): void {
    if (this.watcher) return;
    try {
      const w = watch(this.paths.queue, { persistent: false }, (_event, name) => {
        if (name) this.touched.add(String(name));
        else this.fullScan = true;
        onChange();
      });
      w.on("error", () => {
        w.close();
        this.watcher = null;
        this.fullScan = true;
      });
      this.watcher = w;
    } catch {
      this.fullScan = true; // the poll interval still covers it
    }
  }

  close(): void {
    this.watcher?.close();
    this.watcher = null;
  }

  /** Whether queue/ is watched (else only the poll notices new envelopes). */
  get watching(): boolean {
    return this.watcher !== null;
  }

  /** The next look re-reads the whole directory (poll ticks: whatever events were missed). */
  rescan(): void {
    this.fullScan = true;
  }

  async offers(ready: ReadonlySet<string>, conversationOf: (session: string) => string | undefined): Promise<WorkItem[]> {
    if (ready.size === 0) return [];
    await this.refresh();
    const held = new Set<string>();
    const offers: WorkItem[] = [];
    for (const entry of this.index.list()) {
      if (offers.length === ready.size) break;
      const intake = await this.intakeOf(entry);
      if (intake.kind === "gone") {
        this.forget(entry.name);
        continue;
      }
      if (intake.kind === "wait") continue;
      if (intake.kind === "reject") {
        await this.reject(entry.name, intake.reason, this.now());
        continue;
      }
      const conversation = conversationOf(intake.item.session);
      if (conversation === undefined || held.has(conversation)) continue;
      held.add(conversation);
      if (ready.has(conversation)) offers.push(intake.item);
    }
    return offers;
  }

  async finish(receipt: string): Promise<void> {
    await removeIfPresent(join(this.paths.queue, receipt));
    this.forget(receipt);
  }

  async reject(receipt: string, reason: string, at: number): Promise<void> {
    const moved = await rejectFile(this.paths, receipt, reason, at);
    if (moved !== null) this.log.warn({ file: receipt }, `envelope rejected: ${reason}`);
    this.forget(receipt);
  }

  private forget(name: string): void {
    this.index.forget(name);
    this.parsed.delete(name);
  }

  private async refresh(): Promise<void> {
    if (this.fullScan || !this.watcher) {
      this.fullScan = false;
      this.touched.clear();
      await this.index.rescan();
      for (const name of this.parsed.keys()) if (!this.index.has(name)) this.parsed.delete(name);
      return;
    }
    const names = [...this.touched];
    this.touched.clear();
    for (const name of names) await this.index.touch(name);
  }

  private async intakeOf(entry: { name: string; mtimeMs: number; regular: boolean }): Promise<Intake> {
    const cached = this.parsed.get(entry.name);
    if (cached && cached.mtimeMs === entry.mtimeMs && cached.intake.kind === "envelope" && this.sessions().has(cached.intake.item.session)) return cached.intake;
    const intake = await readEntry(this.paths, entry, this.sessions(), this.now());
    if (intake.kind === "envelope") this.parsed.set(entry.name, { mtimeMs: entry.mtimeMs, intake });
    return intake;
  }
}

export class FileOutbox implements Outbox {
  private readonly watchers = new Map<string, FSWatcher>();

  constructor(
    private readonly paths: RelayPaths,
    /** fault injection for the crash tests */
    private readonly crashPoint: (name: string) => Promise<void> = async () => {},
  ) {}

  /** Wake `onAck` when a session's input.txt is deleted (or created): the acknowledgement. */
  async watchSession(session: string, onChange: () => void): Promise<void> {
    if (this.watchers.has(session)) return;
    const dir = await ensureSessionDir(this.paths, session);
    try {
      const w = watch(dir, { persistent: false }, (_event, name) => {
        if (name === null || String(name) === "input.txt") onChange();
      });
      w.on("error", () => {
        w.close();
        this.watchers.delete(session);
      });
      this.watchers.set(session, w);
    } catch {
      // the poll interval still covers it
    }
  }

  close(): void {
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
  }

  /**
   * Two data fsyncs and one of the directory make a reply survive a power cut: the reply under a
   * staging name, then input.json (what it answers), then the rename to input.txt. input.json
   * names the reply, so a delivery repeated after a crash finds it done and does nothing.
   */
  async deliver(reply: Delivery): Promise<DeliverOutcome> {
    const { session } = reply;
    const dir = await ensureSessionDir(this.paths, session);
    const staging = stagingFile(this.paths, session, reply.replyId);
    const meta = await readReplyMeta(this.paths, session);
    if (meta?.reply_id === reply.replyId) {
      // input.json names this reply: it was delivered, or a crash came before its rename.
      if ((await kindOf(staging)) === "file") {
        renameSync(staging, inputFile(this.paths, session));
        await syncDir(dir);
      }
      return "delivered";
    }
    if (await inputExists(this.paths, session)) return "busy";
    await writeDurable(staging, reply.text);
    await this.crashPoint("after-stage");
    const record: ReplyMeta = { reply_id: reply.replyId, in_reply_to: reply.inReplyTo, source: reply.source, at: new Date(reply.at).toISOString() };
    const metaTmp = join(dir, ".input.json.tmp");
    await writeDurable(metaTmp, `${JSON.stringify(record)}\n`);
    renameSync(metaTmp, replyMetaFile(this.paths, session));
    await this.crashPoint("after-meta");
    renameSync(staging, inputFile(this.paths, session));
    await syncDir(dir);
    return "delivered";
  }

  async acknowledged(session: string): Promise<boolean> {
    return !(await inputExists(this.paths, session));
  }
}
