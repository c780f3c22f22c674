// `relay run`: wires the file system, the clock, Anthropic and ntfy to the machine. Pollers and
// watchers only wake the loop; the loop turns what it finds into events; side effects on files
// happen after the snapshot that decided them is on disk.
import { watch, type FSWatcher } from "node:fs";
import { join } from "node:path";
import type Anthropic from "@anthropic-ai/sdk";
import { type Actor, createActor, fromPromise, type SnapshotFrom } from "xstate";
import {
  type CallResult,
  type CommitInput,
  type CommitResult,
  type NotifyParams,
  relayMachine,
  stateName,
  type SummarizeResult,
  type WorkItem,
  type Note,
} from "../../machines/relay.js";
import { buildReplyRequest, buildSummaryRequest, callMessages, classifyFailure } from "../anthropic/messages.js";
import type { RelayConfig, SessionConfig } from "../config/config.js";
import { ConversationStore, noteEntry, splitForSummary, transcript, turnEntry, type HistoryEntry } from "../history/conversation-store.js";
import { ensureSessionDir, inputExists, publishReply, stageReply, stagingExists } from "../transport/file/dispatch.js";
import { claimJcInput, parseJcInput, releaseJcClaim } from "../operator/jc-input.js";
import { appendLedger, makeLedgerRecord } from "../costs/ledger.js";
import type { Logger } from "./log.js";
import type { Notification, Notifier, NtfyAction } from "../operator/ntfy.js";
import type { RelayPaths } from "../config/paths.js";
import { idOfQueueFile, listQueue, QueueIndex, readEntry, rejectFile } from "../transport/file/queue.js";
import { readSnapshot, SnapshotWriter } from "../store/snapshot-file.js";
import { removeIfPresent, writeAtomic } from "../store/files.js";
import { crashPoint } from "./crash-points.js";
import { budgetExhausted, type SpendTracker } from "../costs/budget.js";

export type RelayActor = Actor<typeof relayMachine>;
type RelaySnapshot = SnapshotFrom<typeof relayMachine>;

export interface DaemonDeps {
  /** today's spend, for budgets */
  spend: SpendTracker;
  paths: RelayPaths;
  config: () => RelayConfig;
  log: Logger;
  notifier: Notifier;
  /** null in --dry-run: replies are a fixed acknowledgement */
  client: Anthropic | null;
  now: () => number;
  random: () => number;
  /** for the needs-JC notification's buttons: JC's reply topic URL and the status page */
  links?: NotificationLinks;
}

export interface NotificationLinks {
  replyUrl?: string;
  statusUrl?: string;
  /** sent with the buttons' requests, for ntfy servers with access control */
  token?: string;
}

export const DRY_RUN_PREFIX = "[relay dry-run] Received";

const sessionOf = (config: RelayConfig, id: string): SessionConfig =>
  config.sessions.find((s) => s.id === id) ?? {
    // a session removed from config.yaml while its turn was in flight: answer it in the shared conversation
    id,
    conversation: "shared",
    systemPrompt: config.systemPrompt,
    model: config.model,
  };


const RESTING = new Set(["idle", "awaitingAck", "needsJc", "backingOff", "paused"]);

/** The real actors, from the deps. */
export function provideMachine(deps: DaemonDeps) {
  const history = new ConversationStore(deps.paths);
  let ledgerWrites: Promise<void> = Promise.resolve();

  const record = async (session: SessionConfig, purpose: "reply" | "summary", reply: { usage: Parameters<typeof makeLedgerRecord>[0]["usage"]; model: string; latencyMs: number }) => {
    const rec = makeLedgerRecord({ session: session.id, conversation: session.conversation, model: reply.model, purpose, usage: reply.usage, latencyMs: reply.latencyMs });
    deps.log.info(
      {
        session: session.id,
        purpose,
        model: rec.model,
        inputTokens: rec.inputTokens,
        outputTokens: rec.outputTokens,
        cacheWriteTokens: rec.cacheWriteTokens,
        cacheReadTokens: rec.cacheReadTokens,
        usd: rec.usd,
        latencyMs: rec.latencyMs,
      },
      "api call",
    );
    deps.spend.add(rec);
    // Off the reply's path, in order; a failure is logged (the call is in logs/ too).
    ledgerWrites = ledgerWrites.then(() => appendLedger(deps.paths.root, rec)).catch((err: unknown) => deps.log.error({ err: (err as Error).message }, "cannot append to state/costs.jsonl"));
  };

  const callApi = async ({ item, notes }: { item: WorkItem; notes: Note[] }, signal: AbortSignal): Promise<CallResult> => {
    const config = deps.config();
    const session = sessionOf(config, item.session);
    // After a crash the turn may be in the history already: reuse its reply, call nothing.
    const recorded = await history.has(session.conversation, item.id);
    if (recorded?.kind === "turn") return { ok: true, text: recorded.reply, at: deps.now() };
    await crashPoint("before-call");
    // JC's own chat turns are JC's decision to spend; envelopes wait when a budget is spent.
    const overBudget = item.source === "envelope" ? budgetExhausted(config, deps.spend, item.session) : null;
    if (overBudget) return { ok: false, failure: overBudget, at: deps.now(), jitter: 0 };
    if (!deps.client) {
      return { ok: true, text: `${DRY_RUN_PREFIX} ${item.text.length} characters from ${item.session}. (No API call was made.)`, at: deps.now() };
    }
    const request = buildReplyRequest({
      model: session.model,
      maxTokens: config.maxTokens,
      systemPrompt: session.systemPrompt,
      history: await history.entries(session.conversation),
      notes: notes.filter((n) => sessionOf(config, n.session).conversation === session.conversation),
      item,
      cacheTtl: config.cacheTtl,
    });
    try {
      const reply = await callMessages(deps.client, request, signal);
      await record(session, "reply", reply);
      await crashPoint("after-call");
      return { ok: true, text: reply.text, at: deps.now() };
    } catch (err) {
      const failure = classifyFailure(err);
      deps.log.warn({ session: item.session, envelope: item.id, failure: failure.kind, status: failure.status }, `api call failed: ${failure.message}`);
      return { ok: false, failure, at: deps.now(), jitter: deps.random() };
    }
  };

  const commitTurn = async ({ turn, notes }: CommitInput): Promise<CommitResult> => {
    const config = deps.config();
    const at = new Date(deps.now());
    const byConversation = new Map<string, HistoryEntry[]>();
    const add = (conversation: string, entry: HistoryEntry) => byConversation.set(conversation, [...(byConversation.get(conversation) ?? []), entry]);
    for (const note of notes) add(sessionOf(config, note.session).conversation, noteEntry(note, at));
    if (turn) add(sessionOf(config, turn.item.session).conversation, turnEntry(turn.item, turn.reply, at));
    const overCap: string[] = [];
    for (const [conversation, entries] of byConversation) {
      await history.append(conversation, entries);
      if ((await history.chars(conversation)) > config.historyCharCap) overCap.push(conversation);
    }
    await crashPoint("after-commit");
    return { overCap, noteIds: notes.map((n) => n.id), at: deps.now() };
  };

  /** Fold each conversation past the cap into a summary plus its most recent turns. */
  const summarize = async ({ conversations }: { conversations: string[] }, signal: AbortSignal): Promise<SummarizeResult> => {
    for (const conversation of conversations) {
      const result = await summarizeOne(conversation, signal);
      if (!result.ok) return result;
    }
    return { ok: true };
  };

  const summarizeOne = async (conversation: string, signal: AbortSignal): Promise<SummarizeResult> => {
    const config = deps.config();
    // the conversation's sessions share its prompt and model; a vanished one falls back to the defaults
    const session = config.sessions.find((s) => s.conversation === conversation) ?? sessionOf(config, conversation);
    const entries = await history.entries(conversation);
    // Repeated after a crash, this finds the work done already and does nothing.
    if ((await history.chars(conversation)) <= config.historyCharCap) return { ok: true };
    const split = splitForSummary(entries, config.keepRecentTurns);
    if (!split) return { ok: true };
    let summary: string;
    if (!deps.client) {
      summary = `(dry-run summary of ${split.fold.length} entries)`;
    } else {
      try {
        const reply = await callMessages(
          deps.client,
          buildSummaryRequest({ model: session.model, maxTokens: config.maxTokens, summarizationPrompt: config.summarizationPrompt, transcript: transcript(split.fold) }),
          signal,
        );
        await record({ ...session, conversation }, "summary", reply);
        summary = reply.text.trim() === "" ? "(the summary came back empty)" : reply.text;
      } catch (err) {
        return { ok: false, message: classifyFailure(err).message };
      }
    }
    await crashPoint("before-summary-write");
    const at = new Date(deps.now()).toISOString();
    await history.replace(conversation, [{ kind: "summary", id: `summary-${deps.now()}`, text: summary, folded: split.fold.length, at }, ...split.keep]);
    deps.log.info({ conversation, folded: split.fold.length, kept: split.keep.length }, "history summarized");
    return { ok: true };
  };

  const notify = (params: NotifyParams) => deps.notifier.notify(notification(params, deps.links));

  const machine = relayMachine.provide({
    actors: {
      callApi: fromPromise(({ input, signal }) => callApi(input, signal)),
      commitTurn: fromPromise(({ input }) => commitTurn(input)),
      summarize: fromPromise(({ input, signal }) => summarize(input, signal)),
    },
    actions: { notify: (_, params: NotifyParams) => notify(params) },
  });
  return { machine, flushLedger: () => ledgerWrites };
}

/** The buttons of a needs-JC notification: answers published to JC's reply topic, and the page. */
export function needsJcActions(links: NotificationLinks = {}): NtfyAction[] {
  const actions: NtfyAction[] = [];
  const headers = links.token ? { Authorization: `Bearer ${links.token}` } : undefined;
  if (links.replyUrl) {
    actions.push({ action: "http", label: "Approve", url: links.replyUrl, method: "POST", body: "Approved: go ahead.", clear: true, ...(headers ? { headers } : {}) });
    actions.push({ action: "http", label: "Reject", url: links.replyUrl, method: "POST", body: "Rejected: do not do that; propose another way.", clear: true, ...(headers ? { headers } : {}) });
  }
  if (links.statusUrl) actions.push({ action: "view", label: "Status", url: links.statusUrl });
  return actions;
}

export function notification(p: NotifyParams, links?: NotificationLinks): Notification {
  const start = p.message.length > 600 ? `${p.message.slice(0, 600)}…` : p.message;
  switch (p.kind) {
    case "needsJc": {
      const actions = needsJcActions(links);
      return {
        title: `relay: ${p.session ?? "a session"} needs JC`,
        message: `${start}\n\nAnswer with: relay jc "…" (or "@${p.session}: …" to send directly)${links?.replyUrl ? ", or publish your answer to your reply topic" : ""}`,
        priority: 4,
        tags: ["raising_hand"],
        ...(actions.length > 0 ? { actions } : {}),
      };
    }
    case "failureStarted":
      return { title: "relay: API calls failing, retrying", message: start, priority: 3, tags: ["warning"] };
    case "failureEnded":
      return { title: "relay: API calls work again", message: start, priority: 2, tags: ["white_check_mark"] };
    case "paused":
      return { title: "relay paused: the API refuses calls", message: `${start}\n\nFix it, then: relay resume`, priority: 5, tags: ["no_entry"] };
    case "error":
      return { title: "relay: error", message: start, priority: 4, tags: ["x"] };
  }
}

export interface DaemonHandle {
  actor: RelayActor;
  /** resolves with the exit code once the daemon has stopped */
  done: Promise<number>;
  stop(): void;
}

export async function startDaemon(deps: DaemonDeps, opts: { shutdownGraceMs?: number } = {}): Promise<DaemonHandle> {
  const { paths, log } = deps;
  const { machine, flushLedger } = provideMachine(deps);
  const restored = await readSnapshot(paths);
  if (restored.kind === "invalid") throw new Error(restored.error);
  const actor = createActor(machine, restored.kind === "ok" ? { snapshot: restored.snapshot } : {});
  const writer = new SnapshotWriter(paths, log);
  const stopping = new AbortController();
  let wakeRequested = true;
  let wakeLoop: (() => void) | null = null;
  const wake = () => {
    wakeRequested = true;
    wakeLoop?.();
  };
  /** queue files of finished turns, deleted once the snapshot that finished them is on disk */
  const finishedFiles: string[] = [];
  let swept = false;
  let claimsChecked = false;
  /** the next queue intake re-reads the whole directory (poll ticks, lost events) */
  let fullScan = true;

  let previous: RelaySnapshot | null = null;
  actor.subscribe({
    next(snapshot) {
      if (snapshot.status === "active") writer.save(actor.getPersistedSnapshot());
      const prevState = previous ? stateName(previous.value) : null;
      const state = stateName(snapshot.value);
      if (prevState !== state) log.info({ from: prevState, to: state }, `state ${state}`);
      const prevCurrent = previous?.context.current;
      if (prevCurrent?.file && snapshot.context.current?.id !== prevCurrent.id && snapshot.context.done.includes(prevCurrent.id)) {
        finishedFiles.push(prevCurrent.file);
      }
      previous = snapshot;
      wake();
    },
    error(err) {
      log.error({ err }, "machine error");
    },
  });
  actor.start();
  log.info({ state: stateName(actor.getSnapshot().value), restored: restored.kind === "ok" }, "relay started");

  /** Send an event; the snapshot it leads to is written in the background (latest wins). */
  const send = (event: Parameters<RelayActor["send"]>[0]) => {
    actor.send(event);
  };
  /** Send an event and wait until its snapshot is on disk: for a decision a side effect relies on. */
  const sendDurable = async (event: Parameters<RelayActor["send"]>[0]) => {
    actor.send(event);
    await writer.flush();
  };

  const tick = async () => {
    const config = deps.config();
    const registered = new Set(config.sessions.map((s) => s.id));
    let snap = actor.getSnapshot();
    if (config !== watchedConfig || Object.keys(snap.context.outbox).some((s) => !watchedSessions.has(s))) await watchAll(); // sessions added by a reload

    // 1. JC input, first and in any state.
    const jc = await claimJcInput(paths, { leftovers: !claimsChecked });
    claimsChecked = true;
    if (jc) {
      if (snap.context.done.includes(jc.id)) {
        await releaseJcClaim(paths, jc.id);
      } else {
        const parsed = parseJcInput(jc.raw);
        if (parsed.kind === "empty") {
          log.warn({}, "state/jc_input.txt was empty; ignored");
          await releaseJcClaim(paths, jc.id);
        } else if (parsed.kind === "direct" && !registered.has(parsed.session)) {
          log.error({ session: parsed.session }, "JC input names an unknown session; kept as state/jc_input.rejected.txt");
          await rejectJc(paths, `@${parsed.session} is not a session in config.yaml`, jc.raw);
          await releaseJcClaim(paths, jc.id);
        } else {
          await crashPoint("jc-claimed");
          await sendDurable({
            type: "jc.inputFound",
            id: jc.id,
            text: parsed.text,
            direct: parsed.kind === "direct" ? { session: parsed.session, text: parsed.text } : null,
            defaultSession: config.sessions[0]?.id ?? "session-1",
            at: deps.now(),
          });
          log.info({ kind: parsed.kind, session: parsed.kind === "direct" ? parsed.session : undefined }, "JC input taken");
          await releaseJcClaim(paths, jc.id);
        }
      }
      snap = actor.getSnapshot();
    }

    // 2. `relay resume`.
    if (await removeIfPresent(paths.resumeRequest)) {
      log.info({}, "resume requested");
      send({ type: "operator.resume" });
    }

    // 3. Files of finished and rejected envelopes (their fate is on disk already).
    await writer.flush();
    while (finishedFiles.length > 0) {
      const file = finishedFiles.shift() as string;
      await removeIfPresent(join(paths.queue, file));
      queueIndex.forget(file);
    }
    for (const r of actor.getSnapshot().context.rejections) {
      await rejectFile(paths, r.file, r.reason, r.at);
      log.warn({ file: r.file }, `envelope rejected by the API: ${r.reason}`);
      send({ type: "queue.rejectionFiled", id: r.id });
    }

    // After a restart, queue files of envelopes answered just before the crash go, whatever the state.
    if (!swept) {
      swept = true;
      const done = new Set(actor.getSnapshot().context.done);
      for (const entry of await listQueue(paths)) {
        const id = await idOfQueueFile(paths, entry.name);
        if (id && done.has(id)) await removeIfPresent(join(paths.queue, entry.name));
      }
    }

    // 4. Acknowledgements: CC deleted input.txt.
    for (const session of actor.getSnapshot().context.unacked) {
      if (!(await inputExists(paths, session))) send({ type: "dispatch.acknowledged", session });
    }

    // 5. Deliveries: the head of each session's outbox, when its input.txt is free.
    for (const [session, replies] of Object.entries(actor.getSnapshot().context.outbox)) {
      const head = replies[0];
      if (!head) continue;
      try {
        if (!head.staged) {
          if (await inputExists(paths, session)) continue;
          await stageReply(paths, session, head.id, head.text);
          await sendDurable({ type: "dispatch.staged", session, id: head.id });
          await crashPoint("after-stage");
        }
        if (await stagingExists(paths, session, head.id)) {
          if (await inputExists(paths, session)) continue;
          await publishReply(paths, session, head.id);
          await crashPoint("after-publish");
        }
        send({ type: "dispatch.delivered", session, id: head.id });
        log.info({ session, reply: head.id, chars: head.text.length }, "reply dispatched");
      } catch (err) {
        log.error({ session, err: (err as Error).message }, "cannot dispatch");
      }
    }

    // 6. The clock, for back-off and probes.
    const state = stateName(actor.getSnapshot().value);
    if (state === "backingOff" || state === "paused") actor.send({ type: "clock.tick", now: deps.now() });

    // 7. The queue, oldest first, when the machine can take an envelope.
    snap = actor.getSnapshot();
    if (!snap.can({ type: "queue.envelopeFound", item: { id: "", source: "envelope", session: "", text: "" }, at: 0 })) return;
    if (fullScan || !watchers.has(paths.queue)) {
      fullScan = false;
      touched.clear();
      await queueIndex.rescan();
    } else {
      const names = [...touched];
      touched.clear();
      for (const name of names) await queueIndex.touch(name);
    }
    for (const entry of queueIndex.list()) {
      const intake = await readEntry(paths, entry, registered, deps.now());
      if (intake.kind === "gone") {
        queueIndex.forget(entry.name);
        continue;
      }
      if (intake.kind === "wait") break;
      if (intake.kind === "reject") {
        await rejectFile(paths, entry.name, intake.reason, deps.now());
        queueIndex.forget(entry.name);
        log.warn({ file: entry.name }, `envelope rejected: ${intake.reason}`);
        continue;
      }
      if (snap.context.done.includes(intake.item.id)) {
        await removeIfPresent(join(paths.queue, entry.name)); // answered before a crash
        queueIndex.forget(entry.name);
        continue;
      }
      await ensureSessionDir(paths, intake.item.session);
      log.info({ session: intake.item.session, envelope: intake.item.id, file: entry.name }, "envelope taken");
      send({ type: "queue.envelopeFound", item: intake.item, at: deps.now() });
      break;
    }
  };

  // Wake-ups: file-system events for speed, the poll interval as the safety net.
  // RELAY_NO_WATCH=1 turns the events off (the benchmark's baseline of a polling-only relay).
  const watchers = new Map<string, FSWatcher>();
  const useWatch = process.env.RELAY_NO_WATCH !== "1";
  const queueIndex = new QueueIndex(paths);
  const touched = new Set<string>();
  /** The queue's watcher reports names, so the index is updated one file at a time. */
  const watchQueue = () => {
    if (!useWatch || watchers.has(paths.queue)) return;
    try {
      const w = watch(paths.queue, { persistent: false }, (_event, name) => {
        if (name) touched.add(String(name));
        else fullScan = true;
        wake();
      });
      w.on("error", () => {
        w.close();
        watchers.delete(paths.queue);
        fullScan = true;
      });
      watchers.set(paths.queue, w);
    } catch {
      // the poll interval still covers it
    }
  };
  const watchDir = (dir: string) => {
    if (!useWatch || watchers.has(dir)) return;
    try {
      const w = watch(dir, { persistent: false }, () => wake());
      w.on("error", () => {
        w.close();
        watchers.delete(dir);
      });
      watchers.set(dir, w);
    } catch {
      // the poll interval still covers it
    }
  };
  let watchedConfig: RelayConfig | null = null;
  const watchedSessions = new Set<string>();
  const watchAll = async () => {
    watchedConfig = deps.config();
    watchQueue();
    watchDir(paths.state);
    for (const s of [...watchedConfig.sessions.map((c) => c.id), ...Object.keys(actor.getSnapshot().context.outbox)]) {
      watchDir(await ensureSessionDir(paths, s));
      watchedSessions.add(s);
    }
  };
  await watchAll();

  const loop = async (): Promise<number> => {
    const grace = opts.shutdownGraceMs ?? 30_000;
    let graceDeadline = Number.POSITIVE_INFINITY;
    for (;;) {
      const snapshot = actor.getSnapshot();
      if (snapshot.status === "done") {
        log.fatal({ lastError: snapshot.context.lastError?.message }, `relay stopped: ${snapshot.context.lastError?.message ?? "halted"}`);
        return 1;
      }
      if (stopping.signal.aborted) {
        if (graceDeadline === Number.POSITIVE_INFINITY) graceDeadline = Date.now() + grace;
        if (RESTING.has(stateName(snapshot.value)) || Date.now() >= graceDeadline) break;
      }
      if (wakeRequested) {
        wakeRequested = false;
        try {
          if (!stopping.signal.aborted) await tick();
        } catch (err) {
          const message = (err as Error).message;
          log.error({ err: message }, "relay step failed");
          if (isDiskFailure(err)) {
            log.fatal({}, `relay stopped: cannot write its files: ${message}`);
            return 1;
          }
        }
        continue;
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          fullScan = true; // the safety net: whatever the events missed
          resolve();
        }, stopping.signal.aborted ? 50 : deps.config().pollIntervalMs);
        wakeLoop = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wakeLoop = null;
      wakeRequested = true;
    }
    return 0;
  };

  const done = loop().then(async (code) => {
    for (const w of watchers.values()) w.close();
    actor.stop();
    await writer.flush();
    await flushLedger();
    await deps.notifier.flush();
    log.info({ state: stateName(actor.getSnapshot().value) }, code === 0 ? "relay stopped" : "relay halted");
    return code;
  });

  return {
    actor,
    done,
    stop() {
      stopping.abort();
      wake();
    },
  };
}

function isDiskFailure(err: unknown): boolean {
  const code = typeof err === "object" && err !== null && "code" in err ? String((err as { code: unknown }).code) : "";
  return ["ENOSPC", "EROFS", "EACCES", "EPERM", "EDQUOT", "EIO"].includes(code);
}

async function rejectJc(paths: RelayPaths, reason: string, raw: string): Promise<void> {
  await writeAtomic(join(paths.state, "jc_input.rejected.txt"), `# ${reason}\n${raw}`);
}


