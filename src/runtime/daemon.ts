// `relay run`'s loop. Watchers, pollers and the clock only wake it; each step turns what it finds
// into events for the root machine (JC's answers, acknowledgements, envelopes for the
// conversations that can take one, the time) and performs what the machines decided, each side
// effect after the snapshot it depends on is written.
import { type Actor, createActor } from "xstate";
import type { MigratedState, RelayEmitted, relayMachine } from "../../machines/relay.js";
import { readyConversations } from "../../machines/relay.js";
import * as deliveries from "../../machines/deliveries.js";
import { messageOf } from "../../machines/types.js";
import { buildStatus } from "../status/read-model.js";
import { migrateV1 } from "../store/migrate-v1.js";
import { provideMachines, sessionOf } from "./conversation-actors.js";
import type { RelayDeps } from "./deps.js";

export type RelayActor = Actor<typeof relayMachine>;

export interface DaemonHandle {
  actor: RelayActor;
  /** resolves with the exit code once the daemon has stopped */
  done: Promise<number>;
  stop(): void;
  /** wake the loop now (tests, the status page's answer form) */
  wake(): void;
}

type Effect = Exclude<RelayEmitted, { type: "notify" }>;

const DISK_FAILURES = new Set(["ENOSPC", "EROFS", "EACCES", "EPERM", "EDQUOT", "EIO"]);
function isDiskFailure(err: unknown): boolean {
  const code = typeof err === "object" && err !== null && "code" in err ? String((err as { code: unknown }).code) : "";
  return DISK_FAILURES.has(code);
}

/** Conversation states in which work is under way (the grace period waits for them). */
const BUSY = new Set(["calling", "dispatching", "summarizing"]);

export async function startDaemon(deps: RelayDeps, opts: { shutdownGraceMs?: number } = {}): Promise<DaemonHandle> {
  const { log } = deps;
  const machine = provideMachines(deps);
  const restored = await deps.snapshots.read();
  if (restored.kind === "invalid") throw new Error(restored.error);
  let actor: RelayActor;
  try {
    actor = createActor(machine, restored.kind === "ok" ? { snapshot: restored.snapshot } : {});
  } catch (err) {
    throw new Error(`state/snapshot.json cannot be restored (${messageOf(err)}); move it aside to start fresh`);
  }

  const effects: Effect[] = [];
  const stopping = new AbortController();
  let wakeRequested = true;
  let wakeLoop: (() => void) | null = null;
  const wake = () => {
    wakeRequested = true;
    wakeLoop?.();
  };
  for (const type of ["envelope.finished", "envelope.rejected", "jc.consumed", "jc.refused"] as const) {
    actor.on(type, (e) => {
      effects.push(e);
      wake();
    });
  }
  actor.on("notify", ({ type: _, ...params }) => deps.notify(params));
  actor.subscribe({ next: wake, error: (err) => log.error({ err: messageOf(err) }, "machine error") });
  actor.start();

  /** JC answers that could not be parsed: refused with the raw text, kept by id until done */
  const refusedRaw = new Map<string, string | null>();

  let loadedConfig: ReturnType<RelayDeps["config"]> | null = null;
  const loadConfig = async () => {
    const config = deps.config();
    if (config === loadedConfig) return;
    loadedConfig = config;
    actor.send({
      type: "config.loaded",
      routes: Object.fromEntries(config.sessions.map((s) => [s.id, s.conversation])),
      defaultSession: config.sessions[0]?.id ?? null,
      maxParallel: config.maxParallelCalls,
    });
    await deps.wakeups.watchSessions([...config.sessions.map((s) => s.id), ...Object.keys(actor.getSnapshot().context.outbox)]);
  };
  await loadConfig();

  if (restored.kind === "v1") {
    const config = deps.config();
    const conversationOf = (session: string) => sessionOf(config, session).conversation;
    // The turn whose reply asked v1's open question: JC's answer answers its envelope.
    const asking = new Map<string, string>();
    if (restored.context.needsJc) {
      const conversation = conversationOf(restored.context.needsJc.session);
      const turn = (await deps.history.entries(conversation)).findLast((e) => e.kind === "turn" && e.reply === restored.context.needsJc?.question);
      if (turn) asking.set(conversation, turn.id);
    }
    const { state, rejections } = migrateV1(restored.context, {
      stagingExists: (session, id) => deps.v1Staging.exists(session, id),
      conversationOf,
      askedBy: (conversation) => asking.get(conversation) ?? null,
    });
    await migrate(state);
    for (const r of rejections) await deps.inbox.reject(r.file, r.reason, r.at);
    for (const [session, replies] of Object.entries(restored.context.outbox)) for (const r of replies) await deps.v1Staging.remove(session, r.id);
    log.info({ replies: state.outbox.length, conversations: Object.keys(state.conversations) }, "state/snapshot.json of the first version migrated");
  }
  async function migrate(state: MigratedState) {
    actor.send({ type: "migration.v1", state });
    await deps.snapshots.write(actor.getPersistedSnapshot(), { durable: true });
  }

  // A restart tries a paused or backing-off relay at once (CONTRACT §8).
  const gate = actor.getSnapshot().value;
  if (gate === "paused" || gate === "backingOff") actor.send({ type: "operator.resume" });
  log.info({ state: gate, restored: restored.kind }, "relay started");

  const persist = (durable: boolean) => deps.snapshots.write(actor.getPersistedSnapshot(), { durable });

  /** Emitted side effects, once the snapshot that decided them is durable. */
  const performEffects = async () => {
    if (effects.length === 0) return;
    await persist(true);
    while (effects.length > 0) {
      const e = effects.shift() as Effect;
      switch (e.type) {
        case "envelope.finished":
          await deps.inbox.finish(e.receipt);
          break;
        case "envelope.rejected":
          await deps.inbox.reject(e.receipt, e.reason, e.at);
          break;
        case "jc.consumed":
          await deps.jc.consume(e.id);
          break;
        case "jc.refused":
          log.warn({ reason: e.reason }, "JC's answer refused; see state/jc_input.rejected.txt");
          await deps.jc.refuse(e.id, e.reason, refusedRaw.get(e.id) ?? null);
          break;
      }
      refusedRaw.delete("id" in e ? e.id : "");
    }
  };

  const takeJcAnswer = async () => {
    const taken = await deps.jc.take();
    if (!taken) return;
    if (taken.kind === "refused") {
      log.warn({ reason: taken.reason }, "JC's answer refused; see state/jc_input.rejected.txt");
      await deps.jc.refuse(taken.id, taken.reason, taken.raw);
      return;
    }
    await deps.crashPoint("jc-claimed");
    refusedRaw.set(taken.id, taken.answer.text);
    actor.send({ type: "jc.received", id: taken.id, answer: taken.answer, at: deps.now() });
    log.info({ kind: taken.answer.kind }, "JC's answer taken");
  };

  const acknowledge = async () => {
    for (const session of actor.getSnapshot().context.unacked) {
      try {
        if (await deps.outbox.acknowledged(session)) actor.send({ type: "dispatch.acknowledged", session });
      } catch (err) {
        log.error({ session, err: messageOf(err) }, "cannot check the acknowledgement");
      }
    }
  };

  const deliver = async () => {
    const heads = deliveries.heads(actor.getSnapshot().context);
    if (heads.length === 0) return;
    // A reply about to be published is in the persisted snapshot first (restored, it is found
    // delivered by its id rather than delivered again). Unchanged snapshots are not rewritten.
    await persist(false);
    for (const reply of heads) {
      // One session's broken dispatch/<session>/ stops only that session's deliveries.
      try {
        const outcome = await deps.outbox.deliver(reply);
        if (outcome !== "delivered") continue;
        await deps.crashPoint("after-publish");
        actor.send({ type: "dispatch.delivered", session: reply.session, replyId: reply.replyId });
        log.info({ session: reply.session, reply: reply.replyId, inReplyTo: reply.inReplyTo, chars: reply.text.length }, "reply dispatched");
      } catch (err) {
        log.error({ session: reply.session, err: messageOf(err) }, "cannot dispatch");
      }
    }
  };

  const offerEnvelopes = async () => {
    const context = actor.getSnapshot().context;
    const ready = readyConversations(context);
    if (ready.size === 0) return;
    const offers = await deps.inbox.offers(ready, (session) => context.routes[session]);
    for (const item of offers) {
      log.info({ session: item.session, envelope: item.inReplyTo, receipt: item.receipt }, "envelope taken");
      actor.send({ type: "envelope.offered", item, at: deps.now() });
    }
  };

  let lastQuestions = JSON.stringify(actor.getSnapshot().context.questions);
  let lastStatus = "";
  let lastState: string | null = null;
  const writeStatus = async () => {
    const snapshot = actor.getSnapshot();
    const questions = JSON.stringify(snapshot.context.questions);
    if (questions !== lastQuestions) {
      lastQuestions = questions;
      await persist(false); // a question opened or was answered
    }
    const history: Record<string, { chars: number; turns: number }> = {};
    for (const id of Object.keys(snapshot.context.conversations)) {
      const entries = await deps.history.entries(id);
      history[id] = { chars: await deps.history.chars(id), turns: entries.filter((e) => e.kind === "turn").length };
    }
    const totals = deps.costs.totals();
    const status = buildStatus(snapshot, { pid: process.pid, now: deps.now(), history, cost: { ...totals, todayUsd: deps.costs.spend.today() } });
    if (status.state !== lastState) {
      log.info({ from: lastState, to: status.state }, `state ${status.state}`);
      lastState = status.state;
    }
    const body = JSON.stringify({ ...status, updatedAt: "" });
    if (body === lastStatus) return;
    lastStatus = body;
    await deps.status.write(status);
  };

  /** the clock is sent on the timer only: a step that finds nothing to do sends nothing, so it wakes nothing */
  let tickDue = true;
  /** The soonest retry or probe the machines wait for, so the timer fires then. */
  const nextDeadline = (): number => {
    const { context, value } = actor.getSnapshot();
    let next = (value === "backingOff" || value === "paused") && context.failure ? context.failure.nextAt : Number.POSITIVE_INFINITY;
    for (const ref of Object.values(context.conversations)) {
      const child = ref.getSnapshot();
      if (child.value === "backingOff" && child.context.retry) next = Math.min(next, child.context.retry.nextAt);
    }
    return next;
  };

  const step = async () => {
    await loadConfig();
    if (!stopping.signal.aborted) await takeJcAnswer();
    if (await deps.takeResumeRequest()) {
      log.info({}, "resume requested");
      actor.send({ type: "operator.resume" });
    }
    if (tickDue) {
      tickDue = false;
      actor.send({ type: "clock.tick", now: deps.now() });
    }
    await performEffects();
    await acknowledge();
    await deliver();
    if (!stopping.signal.aborted) await offerEnvelopes();
    await performEffects();
    await writeStatus();
  };

  const busy = () => {
    const snapshot = actor.getSnapshot();
    return snapshot.context.inFlight.length > 0 || Object.values(snapshot.context.conversations).some((ref) => BUSY.has(String(ref.getSnapshot().value)));
  };

  deps.wakeups.start(wake);

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
        if (!busy() || Date.now() >= graceDeadline) {
          if (busy()) log.warn({}, "calls still running at the end of the grace period are abandoned; a restart repeats them");
          return 0;
        }
      }
      if (wakeRequested) {
        wakeRequested = false;
        try {
          await step();
        } catch (err) {
          const message = messageOf(err);
          log.error({ err: message }, "relay step failed");
          if (isDiskFailure(err)) {
            log.fatal({}, `relay stopped: cannot write its files: ${message}`);
            return 1;
          }
        }
        continue;
      }
      const poll = deps.config().pollIntervalMs;
      const delay = stopping.signal.aborted ? 50 : Math.max(0, Math.min(poll, nextDeadline() - deps.now()));
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          deps.inbox.rescan(); // the safety net: whatever the events missed
          tickDue = true;
          resolve();
        }, delay);
        wakeLoop = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wakeLoop = null;
      wakeRequested = true;
    }
  };

  const done = loop().then(async (code) => {
    deps.wakeups.stop();
    try {
      if (actor.getSnapshot().status === "active") {
        await persist(true);
        await writeStatus();
      }
    } catch (err) {
      log.error({ err: messageOf(err) }, "cannot save the final snapshot");
    }
    actor.stop();
    await deps.costs.flush();
    log.info({ state: String(actor.getSnapshot().value) }, code === 0 ? "relay stopped" : "relay halted");
    return code;
  });

  return {
    actor,
    done,
    stop() {
      stopping.abort();
      wake();
    },
    wake,
  };
}
