// A RelayDeps held entirely in memory, for running the real daemon loop (src/runtime/daemon.ts)
// with no files, no network and no clock of its own: an inbox of envelopes with receipts, an
// outbox with one input.txt slot per session, a history store, a Messages API whose calls the
// test can hold and settle, JC's answers, snapshots and status kept in memory, notifications
// recorded.
import type { JcAnswer } from "../../machines/relay.js";
import type { Delivery, NotifyParams, PermissionRequest, StopFailure, WorkItem } from "../../machines/types.js";
import type { ApiReply, MessagesRequest } from "../../src/anthropic/messages.js";
import { DEFAULT_LIMITS, type RelayConfig, type SessionConfig } from "../../src/config/config.js";
import { SpendTracker } from "../../src/costs/budget.js";
import type { LedgerRecord } from "../../src/costs/ledger.js";
import { entryChars, type HistoryEntry } from "../../src/history/conversation-store.js";
import type { HistoryStore, JcSource, JcTaken, MessagesApi, RelayDeps, WakeReason } from "../../src/runtime/deps.js";
import { silentLogger } from "../../src/runtime/log.js";
import { redactorFor } from "../../src/runtime/redact.js";
import type { StatusFile } from "../../src/status/status-file.js";
import type { DeliverOutcome, Inbox, Outbox } from "../../src/transport/port.js";

export const MODEL = "claude-sonnet-4-6";

/** A session with its own conversation (`session.<id>`), or in the shared one. */
export const session = (id: string, own = true): SessionConfig => ({ id, conversation: own ? `session.${id}` : "shared", systemPrompt: own ? `You review ${id}.` : "You review.", model: MODEL });

export function fakeConfig(over: Partial<RelayConfig> = {}): RelayConfig {
  return {
    model: MODEL,
    maxTokens: 1024,
    systemPrompt: "You review.",
    summarizationPrompt: "Summarize.",
    keepRecentTurns: 10,
    historyCharCap: 400_000,
    pollIntervalMs: 20,
    apiTimeoutMs: 30_000,
    cacheTtl: "5m",
    maxParallelCalls: 4,
    sessions: [session("s1", false)],
    budget: {},
    limits: DEFAULT_LIMITS,
    anthropic: {},
    ntfy: { server: "http://127.0.0.1:9" },
    ...over,
  };
}

interface Envelope {
  receipt: string;
  session: string;
  /** the sender's id (or the one assigned), what the reply's in_reply_to names */
  id: string;
  text: string;
}

/** queue/ in memory: envelopes in the order they were dropped, each taken with a receipt. */
export class FakeInbox implements Inbox {
  private seq = 0;
  private readonly waiting: Envelope[] = [];
  /** receipts in the order `finish` was called (a receipt twice means it was finished twice) */
  readonly finished: string[] = [];
  readonly rejected: { receipt: string; reason: string }[] = [];
  /** every envelope ever dropped, by receipt */
  readonly all = new Map<string, Envelope>();
  /** called on each finish, to check what was durable when it happened */
  onFinish: (receipt: string) => void = () => undefined;

  constructor(private readonly registered: () => ReadonlySet<string>) {}

  /** Drop an envelope (as `relay send` would); returns its id. */
  drop(sessionId: string, text: string, id?: string): string {
    this.seq += 1;
    const envelope = { receipt: `${String(this.seq).padStart(4, "0")}.json`, session: sessionId, id: id ?? `e-${this.seq}`, text };
    this.waiting.push(envelope);
    this.all.set(envelope.receipt, envelope);
    return envelope.id;
  }

  /** Envelopes neither finished nor rejected. */
  get depth(): number {
    return this.waiting.length;
  }

  async offers(ready: ReadonlySet<string>, conversationOf: (session: string) => string | undefined): Promise<WorkItem[]> {
    const held = new Set<string>();
    const offers: WorkItem[] = [];
    for (const e of [...this.waiting]) {
      if (!this.registered().has(e.session)) {
        await this.reject(e.receipt, `session ${e.session} is not registered in config.yaml`);
        continue;
      }
      const conversation = conversationOf(e.session);
      // the oldest envelope of each conversation holds back that conversation's later ones
      if (conversation === undefined || held.has(conversation)) continue;
      held.add(conversation);
      if (ready.has(conversation)) offers.push({ id: `h-${e.receipt}`, source: "envelope", session: e.session, text: e.text, inReplyTo: e.id, receipt: e.receipt });
    }
    return offers;
  }

  async finish(receipt: string): Promise<void> {
    this.finished.push(receipt);
    this.onFinish(receipt);
    this.remove(receipt);
  }

  async reject(receipt: string, reason: string): Promise<void> {
    this.rejected.push({ receipt, reason });
    this.remove(receipt);
  }

  rescan(): void {}

  private remove(receipt: string): void {
    const i = this.waiting.findIndex((e) => e.receipt === receipt);
    if (i >= 0) this.waiting.splice(i, 1);
  }
}

/** dispatch/ in memory: one input.txt slot per session, emptied when the CC side acknowledges. */
export class FakeOutbox implements Outbox {
  private readonly slots = new Map<string, Delivery>();
  /** every reply put in place, in the order it was put there */
  readonly delivered: Delivery[] = [];
  /** acknowledge every reply as soon as it is in place (a CC session that reads at once) */
  autoAcknowledge = false;

  constructor(private readonly wake: () => void) {}

  async deliver(reply: Delivery): Promise<DeliverOutcome> {
    const current = this.slots.get(reply.session);
    if (current) return current.replyId === reply.replyId ? "delivered" : "busy";
    this.delivered.push(reply);
    if (!this.autoAcknowledge) this.slots.set(reply.session, reply);
    return "delivered";
  }

  async acknowledged(sessionId: string): Promise<boolean> {
    return !this.slots.has(sessionId);
  }

  /** What input.txt holds for the session now. */
  inputOf(sessionId: string): Delivery | undefined {
    return this.slots.get(sessionId);
  }

  /** The CC session deletes its input.txt. */
  acknowledge(sessionId: string): void {
    this.slots.delete(sessionId);
    this.wake();
  }

  deliveredTo(sessionId: string): Delivery[] {
    return this.delivered.filter((d) => d.session === sessionId);
  }
}

export class FakeHistory implements HistoryStore {
  readonly byConversation = new Map<string, HistoryEntry[]>();

  async entries(conversation: string): Promise<HistoryEntry[]> {
    return [...(this.byConversation.get(conversation) ?? [])];
  }
  async has(conversation: string, id: string): Promise<HistoryEntry | undefined> {
    return this.byConversation.get(conversation)?.find((e) => e.id === id);
  }
  async append(conversation: string, entries: HistoryEntry[]): Promise<void> {
    const known = this.byConversation.get(conversation) ?? [];
    const ids = new Set(known.map((e) => e.id));
    this.byConversation.set(conversation, [...known, ...entries.filter((e) => !ids.has(e.id))]);
  }
  async replace(conversation: string, entries: HistoryEntry[]): Promise<void> {
    this.byConversation.set(conversation, [...entries]);
  }
  async chars(conversation: string): Promise<number> {
    return (this.byConversation.get(conversation) ?? []).reduce((n, e) => n + entryChars(e), 0);
  }
  turns(conversation: string): HistoryEntry[] {
    return (this.byConversation.get(conversation) ?? []).filter((e) => e.kind === "turn");
  }
}

export interface ApiCall {
  /** the last user block of the request: what this call answers, as chat-Claude sees it */
  text: string;
  request: MessagesRequest;
  /** Date.now() when the call started, and when it was answered or failed */
  startedAt: number;
  settledAt: number | null;
  settled: boolean;
  resolve(text: string): void;
  reject(err: unknown): void;
}

const lastUserText = (request: MessagesRequest): string => {
  const last = request.messages.at(-1);
  if (!last || typeof last.content === "string") return typeof last?.content === "string" ? last.content : "";
  const block = last.content.at(-1);
  return block?.type === "text" ? block.text : "";
};

/** What the fake API does with a call: answer with text, fail with an error (an SDK error), or hold it (null). */
export type ApiBehaviour = string | { error: unknown } | null;

/** The Messages API: each call answered after `delayMs` as `reply(text)` says, or held while it says null. */
export class FakeApi implements MessagesApi {
  readonly calls: ApiCall[] = [];
  inFlight = 0;
  maxInFlight = 0;
  delayMs = 0;
  reply: (text: string) => ApiBehaviour = (text) => `reply to ${text}`;

  call(request: MessagesRequest, signal: AbortSignal): Promise<ApiReply> {
    const text = lastUserText(request);
    this.inFlight += 1;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    return new Promise<ApiReply>((resolve, reject) => {
      const call: ApiCall = {
        text,
        request,
        startedAt: Date.now(),
        settledAt: null,
        settled: false,
        resolve: (replyText) => {
          if (call.settled) return;
          call.settled = true;
          call.settledAt = Date.now();
          this.inFlight -= 1;
          resolve({ text: replyText, usage: { inputTokens: 100, outputTokens: 20, cacheWrite5mTokens: 0, cacheWrite1hTokens: 0, cacheReadTokens: 0 }, model: MODEL, latencyMs: this.delayMs });
        },
        reject: (err) => {
          if (call.settled) return;
          call.settled = true;
          call.settledAt = Date.now();
          this.inFlight -= 1;
          reject(err);
        },
      };
      this.calls.push(call);
      signal.addEventListener("abort", () => call.reject(new Error("the call was cancelled")), { once: true });
      const answer = this.reply(text);
      if (typeof answer === "string") setTimeout(() => call.resolve(answer), this.delayMs);
      else if (answer !== null) setTimeout(() => call.reject(answer.error), this.delayMs);
    });
  }

  /** Calls started and not answered yet. */
  open(): ApiCall[] {
    return this.calls.filter((c) => !c.settled);
  }

  /** Calls whose text contains `fragment`. */
  callsFor(fragment: string): ApiCall[] {
    return this.calls.filter((c) => c.text.includes(fragment));
  }
}

/** JC's answers, as state/jc_input.txt would give them. */
export class FakeJc implements JcSource {
  private seq = 0;
  private readonly pending: JcTaken[] = [];
  readonly consumed: string[] = [];
  readonly refused: { id: string; reason: string; raw: string | null }[] = [];

  constructor(private readonly wake: () => void) {}

  /** JC writes an answer; returns its id. */
  answer(answer: JcAnswer): string {
    this.seq += 1;
    const id = `jc-${this.seq}`;
    this.pending.push({ id, kind: "answer", answer });
    this.wake();
    return id;
  }

  async take(): Promise<JcTaken | null> {
    return this.pending.shift() ?? null;
  }
  async consume(id: string): Promise<void> {
    this.consumed.push(id);
  }
  async refuse(id: string, reason: string, raw: string | null): Promise<void> {
    this.refused.push({ id, reason, raw });
  }
}

export interface FakeRelay {
  deps: RelayDeps;
  config: RelayConfig;
  inbox: FakeInbox;
  outbox: FakeOutbox;
  history: FakeHistory;
  api: FakeApi;
  jc: FakeJc;
  notifications: NotifyParams[];
  statuses: StatusFile[];
  /** snapshots written, newest last, as JSON (what state/snapshot.json would hold) */
  snapshots: { snapshot: unknown; durable: boolean }[];
  ledger: LedgerRecord[];
  /** permission prompts hooks wait for (remove one to withdraw it), and the decisions written */
  permissions: { pending: PermissionRequest[]; decisions: Map<string, { allow: boolean; reason: string; by: string }> };
  /** failure streaks the StopFailure hook recorded (state/stop-failures/) */
  stopFailures: StopFailure[];
  /** wake the daemon's loop, as a file-system event would */
  wake(): void;
  /** `relay resume` */
  requestResume(): void;
}

export function fakeRelay(config: RelayConfig = fakeConfig()): FakeRelay {
  let wakeLoop: (reason: WakeReason) => void = () => undefined;
  /** a manual wake-up: as if JC's answer, a resume request, a permission prompt, a StopFailure streak and anything else had arrived */
  const wake = () => {
    wakeLoop("jc");
    wakeLoop("resume");
    wakeLoop("permissions");
    wakeLoop("stopFailures");
  };
  const registered = () => new Set(config.sessions.map((s) => s.id));
  const inbox = new FakeInbox(registered);
  const outbox = new FakeOutbox(wake);
  const history = new FakeHistory();
  const api = new FakeApi();
  const jc = new FakeJc(wake);
  const notifications: NotifyParams[] = [];
  const statuses: StatusFile[] = [];
  const snapshots: FakeRelay["snapshots"] = [];
  const ledger: LedgerRecord[] = [];
  const spend = new SpendTracker(() => Date.now());
  let resumeRequested = false;
  const permissions: FakeRelay["permissions"] = { pending: [], decisions: new Map() };
  const stopFailures: StopFailure[] = [];

  const deps: RelayDeps = {
    config: () => config,
    now: () => Date.now(),
    monotonic: () => performance.now(),
    random: () => 0.5,
    inbox,
    outbox,
    jc,
    history,
    costs: {
      spend,
      record(rec) {
        ledger.push(rec);
      },
      totals: () => ({ totalUsd: ledger.reduce((n, r) => n + (r.usd ?? 0), 0), calls: ledger.length, unpricedCalls: ledger.filter((r) => r.usd === null).length }),
      flush: async () => undefined,
    },
    api,
    notify: (params) => notifications.push(params),
    snapshots: {
      read: async () => ({ kind: "none" }),
      write: async (snapshot, opts) => {
        snapshots.push({ snapshot: JSON.parse(JSON.stringify(snapshot)) as unknown, durable: opts.durable });
      },
    },
    status: {
      write: async (status) => {
        statuses.push(status);
      },
    },
    permissions: {
      pending: async () => [...permissions.pending],
      decide: async (id, decision) => {
        if (!permissions.pending.some((p) => p.id === id)) return false;
        permissions.decisions.set(id, { allow: decision.allow, reason: decision.reason, by: decision.by });
        return true;
      },
    },
    stopFailures: { streaks: async () => [...stopFailures] },
    takeResumeRequest: async () => {
      const asked = resumeRequested;
      resumeRequested = false;
      return asked;
    },
    v1Staging: { exists: () => false, remove: async () => undefined },
    wakeups: {
      start(onWake) {
        wakeLoop = onWake;
      },
      watchSessions: async () => undefined,
      stop() {
        wakeLoop = () => undefined;
      },
    },
    log: silentLogger(),
    redact: redactorFor(config),
    crashPoint: async () => undefined,
  };

  return {
    deps,
    config,
    inbox,
    outbox,
    history,
    api,
    jc,
    notifications,
    statuses,
    snapshots,
    ledger,
    permissions,
    stopFailures,
    wake,
    requestResume() {
      resumeRequested = true;
      wake();
    },
  };
}
