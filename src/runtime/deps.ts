// The one seam: every side effect the relay performs goes through this record, built in one place
// (src/runtime/compose.ts) for `relay run` and replaced whole by tests.
import type { NotifyParams, PermissionRequest, StopFailure } from "../../machines/types.js";
import type { ApiReply, MessagesRequest } from "../anthropic/messages.js";
import type { RelayConfig } from "../config/config.js";
import type { SpendTracker } from "../costs/budget.js";
import type { LedgerRecord } from "../costs/ledger.js";
import type { HistoryEntry } from "../history/conversation-store.js";
import type { JcAnswer } from "../../machines/relay.js";
import type { StatusFile } from "../status/status-file.js";
import type { SnapshotRead } from "../store/snapshot-file.js";
import type { Inbox, Outbox } from "../transport/port.js";
import type { Logger } from "./log.js";

/** JC's answer, claimed from wherever it was written (state/jc_input.txt, the phone, the page). */
export type JcTaken =
  | { id: string; kind: "answer"; answer: JcAnswer }
  /** refused before it was applied (unreadable, empty, malformed): raw is the text when it was read */
  | { id: string; kind: "refused"; reason: string; raw: string | null };

export interface JcSource {
  /** The next answer, claimed so that a crash keeps it; null when there is none. */
  take(): Promise<JcTaken | null>;
  /** The answer is applied (and the snapshot saying so is on disk): forget it. */
  consume(id: string): Promise<void>;
  /** The answer is refused: tell JC why (state/jc_input.rejected.txt) and forget it. */
  refuse(id: string, reason: string, raw: string | null): Promise<void>;
}

export interface HistoryStore {
  entries(conversation: string): Promise<HistoryEntry[]>;
  has(conversation: string, id: string): Promise<HistoryEntry | undefined>;
  /** Append entries whose ids are not there yet, durably (one of the two fsyncs a reply needs). */
  append(conversation: string, entries: HistoryEntry[]): Promise<void>;
  replace(conversation: string, entries: HistoryEntry[]): Promise<void>;
  chars(conversation: string): Promise<number>;
}

export interface Costs {
  spend: SpendTracker;
  /** Record a call in the ledger (off the reply's path, in order). */
  record(rec: LedgerRecord): void;
  totals(): { totalUsd: number; calls: number; unpricedCalls: number };
  flush(): Promise<void>;
}

export interface MessagesApi {
  call(request: MessagesRequest, signal: AbortSignal): Promise<ApiReply>;
}

/**
 * What a wake-up says changed: JC's answer or `relay resume` arrived, a permission prompt or a
 * StopFailure streak changed (else: look at everything else). Each of the four is looked for
 * only when an event names it, and at every safety-net tick.
 */
export type WakeReason = "jc" | "resume" | "permissions" | "stopFailures" | "other";

/** Wake-ups: file-system events (or a NATS subscription) that make the loop look sooner. */
export interface Wakeups {
  start(wake: (reason: WakeReason) => void): void;
  /** Sessions whose acknowledgements to watch (called again when config.yaml adds some). */
  watchSessions(sessions: string[]): Promise<void>;
  stop(): void;
  /**
   * At a poll tick while the relay is at rest: a synchronous look, true when a step should run
   * because the watchers may have missed something (always true when they are not up). Without
   * it, every tick runs a step.
   */
  missedSomething?(): boolean;
  /**
   * Every watcher is up and sees every change the look covers (file transport): a relay at rest
   * then looks only every REST_LOOK_INTERVAL_MS (or the poll interval, if longer), a safety net
   * for an event the watchers missed. Absent or false: a look every poll interval.
   */
  watchingAll?(): boolean;
}

export interface RelayDeps {
  config(): RelayConfig;
  /** wall-clock time (ms since the epoch): what records and deadlines are stamped with */
  now(): number;
  /** a clock that never jumps (ms, arbitrary origin): what waits are measured with */
  monotonic(): number;
  random(): number;
  inbox: Inbox & { rescan(): void };
  outbox: Outbox;
  jc: JcSource;
  history: HistoryStore;
  costs: Costs;
  /** null in --dry-run: replies are a fixed acknowledgement */
  api: MessagesApi | null;
  notify(params: NotifyParams): void;
  snapshots: {
    read(): Promise<SnapshotRead>;
    write(snapshot: unknown, opts: { durable: boolean }): Promise<void>;
  };
  status: { write(status: StatusFile): Promise<void> };
  /** Claude Code permission prompts waiting for JC (state/permissions/) */
  permissions: {
    pending(): Promise<PermissionRequest[]>;
    /** false when the hook no longer waits */
    decide(id: string, decision: { allow: boolean; reason: string; by: string; at: string }): Promise<boolean>;
  };
  /** Claude Code sessions whose turns end on API errors: each session's current streak (state/stop-failures/) */
  stopFailures: { streaks(): Promise<StopFailure[]> };
  /** `relay resume` asks a paused relay to try again: true once per request */
  takeResumeRequest(): Promise<boolean>;
  /** for the migration of a v1 snapshot: whether a v1 staging file exists, and removing it */
  v1Staging: { exists(session: string, replyId: string): boolean; remove(session: string, replyId: string): Promise<void> };
  wakeups: Wakeups;
  log: Logger;
  /** the one redaction step (src/runtime/redact.ts): the secrets out of any text that leaves the process */
  redact(text: string): string;
  /** fault injection for the crash tests (a no-op in normal use) */
  crashPoint(name: string): Promise<void>;
}
