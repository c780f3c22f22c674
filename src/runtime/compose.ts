// The composition root of `relay run`: the real deps, over the root's files, the Messages API and
// ntfy. Tests build their own RelayDeps instead.
import { existsSync } from "node:fs";
import { chmod } from "node:fs/promises";
import { pendingRequests, writeDecision } from "../operator/permissions.js";
import { stopFailureStreaks } from "../claude-code/stop-failure.js";
import { join } from "node:path";
import type Anthropic from "@anthropic-ai/sdk";
import type { JcAnswer } from "../../machines/relay.js";
import { callMessages } from "../anthropic/messages.js";
import type { RelayConfig } from "../config/config.js";
import { type RelayPaths, sessionDir } from "../config/paths.js";
import type { SpendTracker } from "../costs/budget.js";
import { appendLedger } from "../costs/ledger.js";
import type { LedgerSummary } from "../costs/ledger-summary.js";
import { ConversationStore } from "../history/conversation-store.js";
import { claimJcInput, parseJcInput, refuseJcInput, releaseJcClaim } from "../operator/jc-input.js";
import { type NotificationLinks, notification } from "../operator/notifications.js";
import type { Notifier } from "../operator/ntfy.js";
import { statusFilePath } from "../status/status-file.js";
import { fileSystemKind } from "../store/file-system-kind.js";
import { PUBLIC_FILE, removeIfPresent, removeStaleTemporaries, tightenModes, TRAVERSABLE_DIR, writeAtomic } from "../store/files.js";
import { readSnapshot, SnapshotWriter } from "../store/snapshot-file.js";
import { ensureSessionDir } from "../transport/file/dispatch.js";
import { FileInbox, FileOutbox } from "../transport/file/file-transport.js";
import { pruneRejected } from "../transport/file/queue.js";
import type { NatsRelayParts } from "../transport/nats/start.js";
import { crashPoint } from "./crash-points.js";
import { pollLook } from "./poll-look.js";
import { type StateWatch, watchState } from "./state-watch.js";
import type { JcSource, JcTaken, RelayDeps, WakeReason } from "./deps.js";
import type { Logger } from "./log.js";
import { type Redact, redactDeep, redactorFor } from "./redact.js";
import { wallClock } from "./test-clock.js";

const PRUNE_EVERY_MS = 60_000;

export interface RelayRunOptions {
  paths: RelayPaths;
  config: () => RelayConfig;
  log: Logger;
  notifier: Notifier;
  /** null in --dry-run */
  /** the Messages API client, made (and the SDK loaded) at the first call; null: dry run */
  client: (() => Promise<Anthropic>) | null;
  spend: SpendTracker;
  /** the ledger's totals, summarized at start and kept up to date by reading its tail after each append */
  ledger: LedgerSummary;
  links?: NotificationLinks;
  now?: () => number;
  /** the one redaction step (default: the configuration's secrets) */
  redact?: Redact;
  /** `transport: nats`: the NATS side replaces the file transport's inbox, outbox and wake-ups */
  nats?: NatsRelayParts;
}

/** JC's answers from state/jc_input.txt (the CLI, the page and the phone all write there). */
export function fileJcSource(paths: RelayPaths, registered: () => ReadonlySet<string>): JcSource {
  let leftoversChecked = false;
  return {
    async take(): Promise<JcTaken | null> {
      const claim = await claimJcInput(paths, { leftovers: !leftoversChecked });
      leftoversChecked = true;
      if (!claim) return null;
      if (claim.kind === "refused") return { id: claim.id, kind: "refused", reason: claim.reason, raw: null };
      return jcTakenFrom(claim.id, claim.raw, registered());
    },
    async consume(id) {
      await releaseJcClaim(paths, id);
    },
    async refuse(id, reason, raw) {
      await refuseJcInput(paths, reason, raw);
      await releaseJcClaim(paths, id);
    },
  };
}

/** What JC's text asks for, or why it is refused (the same rules wherever it was written). */
export function jcTakenFrom(id: string, raw: string, registered: ReadonlySet<string>): JcTaken {
  const parsed = parseJcInput(raw);
  switch (parsed.kind) {
    case "empty":
      return { id, kind: "refused", reason: "state/jc_input.txt was empty", raw };
    case "invalid":
      return { id, kind: "refused", reason: parsed.reason, raw };
    case "direct":
      if (!registered.has(parsed.session)) return { id, kind: "refused", reason: `@${parsed.session} is not a session in config.yaml`, raw };
      return { id, kind: "answer", answer: parsed };
    case "chat": {
      const answer: JcAnswer = { kind: "chat", text: parsed.text, ...(parsed.question === undefined ? {} : { question: parsed.question }), ...(parsed.session === undefined ? {} : { session: parsed.session }) };
      return { id, kind: "answer", answer };
    }
  }
}

export async function createRelayDeps(opts: RelayRunOptions): Promise<RelayDeps> {
  const { paths, log } = opts;
  const now = opts.now ?? wallClock();
  const redact = opts.redact ?? redactorFor(opts.config());
  const registered = () => new Set(opts.config().sessions.map((s) => s.id));
  // Temporaries of atomic writes a killed relay left behind (we hold the lock).
  for (const dir of [paths.state, paths.root, paths.history, paths.rejected]) await removeStaleTemporaries(dir);
  // What an earlier version created world-readable: conversation text, the ledger, the snapshot, logs.
  await tightenModes([paths.state, paths.history, paths.logs]);
  // ...but state/status.json is the public read model (anyone reads it): state/ lets others reach it by name.
  await chmod(paths.state, TRAVERSABLE_DIR);

  // queue/.rejected/ keeps the newest limits.rejected_keep, none older than rejected_days:
  // pruned at start, then at most once a minute while envelopes are taken.
  let lastPrune = Number.NEGATIVE_INFINITY;
  const pruneRejectedNow = async () => {
    lastPrune = now();
    const { rejectedKeep: keep, rejectedDays: maxAgeDays } = opts.config().limits;
    const removed = await pruneRejected(paths, { keep, maxAgeDays }, now());
    if (removed > 0) log.info({ removed, keep, maxAgeDays }, "old rejections removed from queue/.rejected/");
  };
  await pruneRejectedNow();
  const fileInbox = new FileInbox(paths, registered, now, log);
  const inbox: RelayDeps["inbox"] = {
    async offers(ready, conversationOf) {
      if (Math.abs(now() - lastPrune) >= PRUNE_EVERY_MS) await pruneRejectedNow().catch((err: unknown) => log.warn({ err: err instanceof Error ? err.message : String(err) }, "cannot prune queue/.rejected/"));
      return fileInbox.offers(ready, conversationOf);
    },
    finish: (receipt) => fileInbox.finish(receipt),
    reject: (receipt, reason, at) => fileInbox.reject(receipt, reason, at),
    rescan: () => fileInbox.rescan(),
  };
  const outbox = new FileOutbox(paths, crashPoint);
  const { nats, client } = opts;
  const localJc = fileJcSource(paths, registered);
  const snapshots = new SnapshotWriter(paths, log, now);

  let ledgerWrites: Promise<void> = Promise.resolve();
  // The totals in status.json: the summary's once it has read the ledger (no call is made before:
  // each waits for today's spend, which comes from it), plus each call as it is recorded (the
  // summary itself catches up after the append, off the reply's path).
  let counted: ReturnType<LedgerSummary["totals"]> | null = null;
  const totalsNow = () => (counted ??= opts.ledger.totals());
  const afterAppend = async () => {
    await opts.ledger.refresh();
    if (opts.ledger.worthSaving) await opts.ledger.save();
  };

  let stateWatch: StateWatch | null = null;
  // Watchers are trusted to see every change only on a local file system (CONTRACT §3).
  const fsKind = await fileSystemKind(paths.root);
  if (!fsKind.local) log.info({ why: fsKind.why }, "file-system events may miss changes made elsewhere: the relay looks every POLL_INTERVAL_MS");
  // Every change a look covers wakes the loop by itself: state/'s watchers, and queue/'s (files) or
  // the NATS side's consumers and slot subscription (nats), once they are up.
  const watchingAll = (): boolean => fsKind.local && stateWatch !== null && stateWatch.up() && (nats ? nats.watching() : fileInbox.watching);
  const look = pollLook(paths, { queue: !nats });
  let wake: (reason: WakeReason) => void = () => undefined;

  return {
    config: opts.config,
    now,
    monotonic: () => performance.now(),
    random: Math.random,
    inbox: nats ? nats.inbox : inbox,
    outbox: nats ? nats.outbox : outbox,
    jc: nats ? nats.jc(localJc) : localJc,
    history: new ConversationStore(paths),
    costs: {
      spend: opts.spend,
      record(rec) {
        const totals = totalsNow();
        totals.calls += 1;
        if (rec.usd === null) totals.unpricedCalls += 1;
        else totals.totalUsd = Math.round((totals.totalUsd + rec.usd) * 1e9) / 1e9;
        // Off the reply's path, in order; a failure is logged (the call is in logs/ too).
        ledgerWrites = ledgerWrites
          .then(() => appendLedger(paths.root, rec))
          .then(afterAppend)
          .catch((err: unknown) => log.error({ err: err instanceof Error ? err.message : String(err) }, "cannot append to state/costs.jsonl"));
      },
      totals: () => ({ ...totalsNow() }),
      flush: async () => {
        await ledgerWrites;
        await opts.ledger.save().catch((err: unknown) => log.warn({ err: err instanceof Error ? err.message : String(err) }, "cannot save state/costs.summary.json"));
      },
    },
    api: client ? { call: async (request, signal) => callMessages(await client(), request, signal) } : null,
    // What leaves the process is redacted: the notification's text (not its buttons' own headers),
    // the snapshot, status.json.
    notify: (params) => opts.notifier.notify(notification(redactDeep(params, redact), opts.links)),
    snapshots: { read: () => readSnapshot(paths), write: (snapshot, o) => snapshots.write(redactDeep(snapshot, redact), o) },
    // The read model is rebuilt from the snapshot after any crash: it needs no fsync.
    status: {
      write: async (status) => {
        const safe = redactDeep(status, redact);
        await writeAtomic(statusFilePath(paths), `${JSON.stringify(safe, null, 1)}\n`, { durable: false, mode: PUBLIC_FILE });
        nats?.onStatus(safe);
      },
    },
    permissions: {
      pending: () => pendingRequests(paths),
      decide: (id, decision) => writeDecision(paths, id, decision),
    },
    stopFailures: { streaks: () => stopFailureStreaks(paths) },
    takeResumeRequest: () => removeIfPresent(paths.resumeRequest),
    v1Staging: {
      exists: (session, id) => existsSync(join(sessionDir(paths, session), `.reply-${id}.tmp`)),
      remove: async (session, id) => {
        await removeIfPresent(join(sessionDir(paths, session), `.reply-${id}.tmp`));
      },
    },
    wakeups: {
      start(onWake) {
        wake = onWake;
        nats?.start(onWake);
        if (process.env.RELAY_NO_WATCH === "1") return; // the benchmark's polling-only baseline
        if (!nats) fileInbox.watch(() => onWake("other"));
        stateWatch = watchState(paths, onWake);
      },
      async watchSessions(sessions) {
        if (nats) return; // the built-in agent watches this root's dispatch/; the slots wake the loop
        for (const session of sessions) {
          try {
            if (process.env.RELAY_NO_WATCH === "1") await ensureSessionDir(paths, session);
            else await outbox.watchSession(session, () => wake("other"));
          } catch (err) {
            log.error({ session, err: err instanceof Error ? err.message : String(err) }, "cannot watch dispatch/<session>/");
          }
        }
      },
      stop() {
        fileInbox.close();
        outbox.close();
        stateWatch?.close();
        stateWatch = null;
      },
      // With NATS the look sees state/ only: a delivery the intake holds wakes the loop itself, and
      // a reply still to write or acknowledge keeps the relay from rest (every tick a full step).
      missedSomething: () => !watchingAll() || look(),
      watchingAll,
    },
    log,
    redact,
    crashPoint,
  };
}
