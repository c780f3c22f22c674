// `relay run`'s loop. Watchers, pollers and the clock only wake it; each step turns what it finds
// into events for the root machine (JC's answers, acknowledgements, envelopes for the
// conversations that can take one, the time) and performs what the machines decided, each side
// effect after the snapshot it depends on is written.
import { type Actor, createActor } from "xstate";
import * as deliveries from "../../machines/deliveries.js";
import { readyConversations, type RelayEmitted, type relayMachine } from "../../machines/relay.js";
import { LONGEST_WAIT_MS } from "../../machines/backoff.js";
import { DECIDED_BY, messageOf } from "../../machines/types.js";
import type { RelayConfig } from "../config/config.js";
import { buildStatus } from "../status/read-model.js";
import type { StatusFile } from "../status/status-file.js";
import { provideMachines } from "./conversation-actors.js";
import type { RelayDeps, WakeReason } from "./deps.js";
import { migrateFromV1 } from "./migrate.js";
import { REST_LOOK_INTERVAL_MS } from "./poll-look.js";

export type RelayActor = Actor<typeof relayMachine>;

type LookedFor = Exclude<WakeReason, "other">;
const LOOKED_FOR: readonly LookedFor[] = ["jc", "resume", "permissions", "stopFailures"];

export interface DaemonHandle {
  actor: RelayActor;
  /** resolves with the exit code once the daemon has stopped */
  done: Promise<number>;
  stop(): void;
  /** wake the loop now */
  wake(): void;
  /** the status as the daemon last built it (what state/status.json holds), for the status page */
  status(): StatusFile | null;
}

type Effect = Exclude<RelayEmitted, { type: "notify" }>;

const DISK_FAILURES = new Set(["ENOSPC", "EROFS", "EACCES", "EPERM", "EDQUOT", "EIO"]);
const isDiskFailure = (err: unknown): boolean =>
  typeof err === "object" && err !== null && "code" in err && DISK_FAILURES.has(String((err as { code: unknown }).code));

/** Conversation states in which work is under way (the grace period waits for them). */
const BUSY = new Set(["calling", "dispatching", "summarizing"]);

/** Restore the machines from state/snapshot.json (migrating a first-version one), or start them fresh. */
async function restoreActor(deps: RelayDeps): Promise<{ actor: RelayActor; restored: string; migrate: (() => Promise<void>) | null }> {
  const restored = await deps.snapshots.read();
  if (restored.kind === "invalid") throw new Error(restored.error);
  try {
    const actor = createActor(provideMachines(deps), restored.kind === "ok" ? { snapshot: restored.snapshot } : {});
    return { actor, restored: restored.kind, migrate: restored.kind === "v1" ? () => migrateFromV1(actor, restored.context, deps) : null };
  } catch (err) {
    throw new Error(`state/snapshot.json cannot be restored (${messageOf(err)}); move it aside to start fresh`);
  }
}

class RelayLoop {
  private readonly effects: Effect[] = [];
  private readonly stopping = new AbortController();
  private wakeRequested = true;
  private wakeLoop: (() => void) | null = null;
  /** the clock is sent when a deadline the machines wait for is due: an idle step sends nothing, so it wakes nothing */
  private tickDue = true;
  /**
   * What to look at in state/ at the next step: JC's answer, a resume request, the permission
   * prompts, the StopFailure streaks. Each is looked for when an event names it and at every
   * safety-net tick, not on every step.
   */
  private readonly due = new Set<LookedFor>(LOOKED_FOR);
  private loadedConfig: RelayConfig | null = null;
  /** the text of JC's answers under way, for the refusal file */
  private readonly jcTexts = new Map<string, string>();
  private lastQuestions: string;
  private lastStatus = "";
  /** each waiting owner's deadline ("" for the gate, else a conversation id) on the monotonic clock */
  private readonly dueAt = new Map<string, { nextAt: number; due: number }>();
  /** the status last written, held for the status page's live updates */
  current: StatusFile | null = null;
  private lastState: string | null = null;
  /** the root's snapshot changed since status.json was last written (a child's change reaches the root as an event) */
  private statusDirty = true;

  constructor(
    readonly actor: RelayActor,
    private readonly deps: RelayDeps,
    private readonly graceMs: number,
  ) {
    for (const type of ["envelope.finished", "envelope.rejected", "jc.consumed", "jc.refused", "permission.decided"] as const) {
      actor.on(type, (e) => {
        this.effects.push(e);
        this.wake("other");
      });
    }
    actor.on("notify", ({ type: _, ...params }) => deps.notify(params));
    actor.subscribe({
      next: () => {
        this.statusDirty = true;
        this.wake("other");
      },
      error: (err) => deps.log.error({ err: messageOf(err) }, "machine error"),
    });
    this.lastQuestions = JSON.stringify(actor.getSnapshot().context.questions);
  }

  readonly wake = (reason: WakeReason = "other"): void => {
    if (reason !== "other") this.due.add(reason);
    this.wakeRequested = true;
    this.wakeLoop?.();
  };

  stop(): void {
    this.stopping.abort();
    this.wake();
  }

  /** Routes and the limit from config.yaml, at start and after every reload. */
  async loadConfig(): Promise<void> {
    const config = this.deps.config();
    if (config === this.loadedConfig) return;
    this.loadedConfig = config;
    this.actor.send({
      type: "config.loaded",
      routes: Object.fromEntries(config.sessions.map((s) => [s.id, s.conversation])),
      defaultSession: config.sessions[0]?.id ?? null,
      maxParallel: config.maxParallelCalls,
      policy: config.permissions?.policy ?? [],
    });
    await this.deps.wakeups.watchSessions([...config.sessions.map((s) => s.id), ...Object.keys(this.actor.getSnapshot().context.outbox)]);
  }

  private persist(durable: boolean): Promise<void> {
    return this.deps.snapshots.write(this.actor.getPersistedSnapshot(), { durable });
  }

  /** One pass over everything that may have changed. */
  async step(): Promise<void> {
    const { deps, actor } = this;
    await this.loadConfig();
    if (!this.stopping.signal.aborted && this.due.delete("jc")) {
      await this.takeJcAnswer();
    }
    if (this.due.delete("permissions")) await this.syncPermissions();
    if (this.due.delete("stopFailures")) await this.syncStopFailures();
    if (this.due.delete("resume")) {
      if (await deps.takeResumeRequest()) {
        deps.log.info({}, "resume requested");
        actor.send({ type: "operator.resume" });
      }
    }
    if (this.tickDue) {
      this.tickDue = false;
      actor.send({ type: "clock.tick", now: this.tickTime() });
    }
    // Replies first: finishing their envelopes (a durable snapshot, then the queue file) comes
    // after, off the reply's path.
    await this.acknowledge();
    await this.deliver();
    await this.performEffects();
    if (!this.stopping.signal.aborted) await this.offerEnvelopes();
    // A reply made meanwhile (a fast API answers while the taking step writes its snapshot
    // durably, as transport: nats does before its ack) goes out before its envelope is finished.
    await this.deliver();
    await this.performEffects();
    await this.writeStatus();
  }

  private async takeJcAnswer(): Promise<void> {
    const taken = await this.deps.jc.take();
    if (!taken) return;
    if (taken.kind === "refused") {
      this.deps.log.warn({ reason: taken.reason }, "JC's answer refused; see state/jc_input.rejected.txt");
      await this.deps.jc.refuse(taken.id, taken.reason, taken.raw);
      return;
    }
    await this.deps.crashPoint("jc-claimed");
    this.jcTexts.set(taken.id, taken.answer.text);
    this.actor.send({ type: "jc.received", id: taken.id, answer: taken.answer, at: this.deps.now() });
    this.deps.log.info({ kind: taken.answer.kind }, "JC's answer taken");
  }

  /** Permission prompts hooks put before JC: new ones open questions, withdrawn ones (the hook gave up) close theirs. */
  private async syncPermissions(): Promise<void> {
    let pending;
    try {
      pending = await this.deps.permissions.pending();
    } catch (err) {
      this.due.add("permissions"); // again at the next step
      this.deps.log.error({ err: messageOf(err) }, "cannot read state/permissions/");
      return;
    }
    const { questions, done, deciding = [] } = this.actor.getSnapshot().context;
    const waiting = new Set(pending.map((p) => p.id));
    for (const request of pending) {
      if (questions.some((q) => q.id === request.id) || done.includes(request.id) || deciding.includes(request.id)) continue;
      this.actor.send({ type: "permission.requested", request });
      const now = this.actor.getSnapshot().context;
      const who = now.deciding?.includes(request.id) ? "chat-Claude (permissions.policy)" : now.questions.some((q) => q.id === request.id) ? "JC" : null;
      if (who) this.deps.log.info({ session: request.session, permission: request.id, tool: request.tool }, `permission prompt put before ${who}`);
    }
    const open = [...questions.filter((q) => q.kind === "permission").map((q) => ({ id: q.id, session: q.session })), ...deciding.map((id) => ({ id, session: undefined }))];
    for (const { id, session } of open) {
      if (waiting.has(id)) continue;
      this.deps.log.info({ session, permission: id, allow: false, by: DECIDED_BY.timeout }, "permission denied: the hook stopped waiting (no answer in time)");
      this.actor.send({ type: "permission.withdrawn", id });
    }
  }

  /** Failure streaks the StopFailure hook recorded: the first report of each notifies JC. */
  private async syncStopFailures(): Promise<void> {
    let streaks;
    try {
      streaks = await this.deps.stopFailures.streaks();
    } catch (err) {
      this.due.add("stopFailures"); // again at the next step
      this.deps.log.error({ err: messageOf(err) }, "cannot read state/stop-failures/");
      return;
    }
    for (const failure of streaks) {
      if (this.actor.getSnapshot().context.done.includes(failure.streak)) continue;
      this.deps.log.warn({ session: failure.session, error: failure.error, ccSession: failure.ccSession, resetsAt: failure.resetsAt }, `Claude Code's turn ended on an API error: ${failure.message}`);
      this.actor.send({ type: "stopFailure.reported", failure });
    }
  }

  /** CC deleted input.txt: the session may have its next reply. */
  private async acknowledge(): Promise<void> {
    for (const session of this.actor.getSnapshot().context.unacked) {
      try {
        if (await this.deps.outbox.acknowledged(session)) this.actor.send({ type: "dispatch.acknowledged", session });
      } catch (err) {
        this.deps.log.error({ session, err: messageOf(err) }, "cannot check the acknowledgement");
      }
    }
  }

  /** The head reply of each session whose input.txt is free. */
  private async deliver(): Promise<void> {
    const heads = deliveries.heads(this.actor.getSnapshot().context);
    if (heads.length === 0) return;
    // A reply about to be published is in the persisted snapshot first (restored, it is found
    // delivered by its id rather than delivered again). Unchanged snapshots are not rewritten.
    await this.persist(false);
    for (const reply of heads) {
      // One session's broken dispatch/<session>/ stops only that session's deliveries.
      try {
        if ((await this.deps.outbox.deliver(reply)) !== "delivered") continue;
        await this.deps.crashPoint("after-publish");
        this.actor.send({ type: "dispatch.delivered", session: reply.session, replyId: reply.replyId });
        this.deps.log.info({ session: reply.session, reply: reply.replyId, inReplyTo: reply.inReplyTo, chars: reply.text.length }, "reply dispatched");
      } catch (err) {
        this.deps.log.error({ session: reply.session, err: messageOf(err) }, "cannot dispatch");
      }
    }
  }

  /** Emitted side effects, once the snapshot that decided them is durable. */
  private async performEffects(): Promise<void> {
    if (this.effects.length === 0) return;
    await this.persist(true);
    for (let e = this.effects.shift(); e; e = this.effects.shift()) {
      switch (e.type) {
        case "envelope.finished":
          await this.deps.inbox.finish(e.receipt);
          break;
        case "envelope.rejected":
          await this.deps.inbox.reject(e.receipt, this.deps.redact(e.reason), e.at);
          break;
        case "jc.consumed":
          await this.deps.jc.consume(e.id);
          this.jcTexts.delete(e.id);
          break;
        case "permission.decided": {
          const written = await this.deps.permissions.decide(e.id, { allow: e.allow, reason: e.reason, by: e.by, at: new Date(this.deps.now()).toISOString() });
          this.deps.log.info({ permission: e.id, allow: e.allow, by: e.by, delivered: written }, e.allow ? "permission allowed" : "permission denied");
          break;
        }
        case "jc.refused":
          this.deps.log.warn({ reason: e.reason }, "JC's answer refused; see state/jc_input.rejected.txt");
          await this.deps.jc.refuse(e.id, this.deps.redact(e.reason), this.jcTexts.get(e.id) ?? null);
          this.jcTexts.delete(e.id);
          break;
      }
    }
  }

  /** The oldest waiting envelope of each conversation that can take one. */
  private async offerEnvelopes(): Promise<void> {
    const { context } = this.actor.getSnapshot();
    const ready = readyConversations(context);
    if (ready.size === 0) return;
    const offered = await this.deps.inbox.offers(ready, (session) => context.routes[session]);
    for (const item of offered) {
      this.deps.log.info({ session: item.session, envelope: item.inReplyTo, receipt: item.receipt }, "envelope taken");
      this.actor.send({ type: "envelope.offered", item, at: this.deps.now() });
    }
    // A transport that lets go of an envelope once it is taken does so after the snapshot that holds it.
    if (offered.length > 0 && this.deps.inbox.taken) {
      await this.persist(true);
      await this.deps.inbox.taken(offered.flatMap((item) => (item.receipt === undefined ? [] : [item.receipt])));
    }
  }

  /** state/status.json, when it changed; the snapshot too when a question opened or closed. */
  async writeStatus(): Promise<void> {
    if (!this.statusDirty) return;
    this.statusDirty = false;
    const { deps } = this;
    if (JSON.stringify(this.actor.getSnapshot().context.questions) !== this.lastQuestions) {
      this.lastQuestions = JSON.stringify(this.actor.getSnapshot().context.questions);
      await this.persist(false); // a question opened or was answered
    }
    const history: Record<string, { chars: number; turns: number }> = {};
    for (const id of Object.keys(this.actor.getSnapshot().context.conversations)) {
      const entries = await deps.history.entries(id);
      history[id] = { chars: await deps.history.chars(id), turns: entries.filter((e) => e.kind === "turn").length };
    }
    // The cost totals once the ledger is read (a ledger without a summary is read after start).
    await deps.costs.spend.settled();
    // The root and its children read at one instant, after every await: buildStatus reads the
    // children's snapshots as they are now, so the root's must be of now too.
    const status = buildStatus(this.actor.getSnapshot(), { pid: process.pid, now: deps.now(), history, cost: { ...deps.costs.totals(), todayUsd: deps.costs.spend.today() } });
    if (status.state !== this.lastState) {
      deps.log.info({ from: this.lastState, to: status.state }, `state ${status.state}`);
      this.lastState = status.state;
    }
    const body = JSON.stringify({ ...status, updatedAt: "" });
    if (body === this.lastStatus) return;
    this.lastStatus = body;
    await deps.status.write(status);
    this.current = status;
  }

  private busy(): boolean {
    const { context } = this.actor.getSnapshot();
    return context.inFlight.length > 0 || Object.values(context.conversations).some((ref) => BUSY.has(String(ref.getSnapshot().value)));
  }

  /** Every retry or probe the machines wait for: who waits, and until when by the wall clock. */
  private deadlines(): Map<string, number> {
    const { context, value } = this.actor.getSnapshot();
    const out = new Map<string, number>();
    if ((value === "backingOff" || value === "paused") && context.failure) out.set("", context.failure.nextAt);
    for (const [id, ref] of Object.entries(context.conversations)) {
      const child = ref.getSnapshot();
      if (child.value === "backingOff" && child.context.retry) out.set(id, child.context.retry.nextAt);
    }
    return out;
  }

  /**
   * Each deadline as a time on the monotonic clock, fixed when the daemon first sees it: a wall
   * clock stepped back (or forward) later moves none of them, and one further away than the
   * longest back-off (a clock that was ahead when it was set) waits only that long.
   */
  private monotonicDeadlines(): { owner: string; nextAt: number; due: number }[] {
    const current = this.deadlines();
    for (const owner of this.dueAt.keys()) if (!current.has(owner)) this.dueAt.delete(owner);
    const out: { owner: string; nextAt: number; due: number }[] = [];
    for (const [owner, nextAt] of current) {
      let seen = this.dueAt.get(owner);
      if (!seen || seen.nextAt !== nextAt) {
        seen = { nextAt, due: this.deps.monotonic() + Math.min(LONGEST_WAIT_MS, Math.max(0, nextAt - this.deps.now())) };
        this.dueAt.set(owner, seen);
      }
      out.push({ owner, nextAt, due: seen.due });
    }
    return out;
  }

  /** Monotonic time of the soonest deadline (Infinity when none). */
  private nextDue(): number {
    return Math.min(Number.POSITIVE_INFINITY, ...this.monotonicDeadlines().map((d) => d.due));
  }

  /**
   * The time a tick tells the machines: the wall clock, or, when a deadline is due by the
   * monotonic clock but not yet by a wall clock that stepped back, that deadline's own time (so
   * the machines' guards see it due).
   */
  private tickTime(): number {
    const mono = this.deps.monotonic();
    let now = this.deps.now();
    for (const d of this.monotonicDeadlines()) if (mono >= d.due) now = Math.max(now, d.nextAt);
    return now;
  }

  /** Step on every wake-up until stopped; resolves with the exit code. */
  async run(): Promise<number> {
    let graceDeadline = Number.POSITIVE_INFINITY;
    for (;;) {
      const snapshot = this.actor.getSnapshot();
      if (snapshot.status === "done") {
        this.deps.log.fatal({ lastError: snapshot.context.lastError?.message }, `relay stopped: ${snapshot.context.lastError?.message ?? "halted"}`);
        return 1;
      }
      if (this.stopping.signal.aborted) {
        if (graceDeadline === Number.POSITIVE_INFINITY) graceDeadline = this.deps.monotonic() + this.graceMs;
        if (!this.busy() || this.deps.monotonic() >= graceDeadline) return this.finalStep();
      }
      if (this.wakeRequested) {
        this.wakeRequested = false;
        const failed = await this.safeStep();
        if (failed !== null) return failed;
        continue;
      }
      await this.sleep();
    }
  }

  /** A step whose disk failure stops the relay (exit code 1); other errors are logged. */
  private async safeStep(): Promise<number | null> {
    try {
      await this.step();
      return null;
    } catch (err) {
      const message = messageOf(err);
      this.deps.log.error({ err: message }, "relay step failed");
      if (!isDiskFailure(err)) return null;
      this.deps.log.fatal({}, `relay stopped: cannot write its files: ${message}`);
      return 1;
    }
  }

  /** Stopping: a last step delivers what the calls let finish made, and finishes their envelopes. */
  private async finalStep(): Promise<number> {
    if (this.busy()) this.deps.log.warn({}, "calls still running at the end of the grace period are abandoned; a restart repeats them");
    await this.safeStep();
    return 0;
  }

  /**
   * Until an event wakes the loop, or a poll tick finds a step to run. A tick at rest runs one
   * only when the watchers may have missed something (a synchronous look, so an idle relay wakes
   * once per tick), and with every watcher up it comes only every REST_LOOK_INTERVAL_MS;
   * otherwise every tick is the safety net: a full look at everything.
   */
  private async sleep(): Promise<void> {
    while (!this.wakeRequested) {
      const pollMs = this.deps.config().pollIntervalMs;
      const poll = this.atRest() && this.deps.wakeups.watchingAll?.() === true ? Math.max(pollMs, REST_LOOK_INTERVAL_MS) : pollMs;
      const delay = this.stopping.signal.aborted ? 50 : Math.max(0, Math.min(poll, this.nextDue() - this.deps.monotonic()));
      const ticked = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(true), delay);
        this.wakeLoop = () => {
          clearTimeout(timer);
          resolve(false);
        };
      });
      this.wakeLoop = null;
      if (!ticked) break;
      // The machines need the time only when a retry or probe they wait for is due.
      this.tickDue = this.deps.monotonic() >= this.nextDue();
      if (this.tickDue || this.stopping.signal.aborted || !this.atRest() || (this.deps.wakeups.missedSomething?.() ?? true)) {
        this.deps.inbox.rescan(); // the safety net: whatever the events missed
        for (const what of LOOKED_FOR) this.due.add(what);
        break;
      }
    }
    this.wakeRequested = true;
  }

  /** Nothing in flight, nothing to deliver or acknowledge, nothing left to do from the last step. */
  private atRest(): boolean {
    const { context } = this.actor.getSnapshot();
    return !this.busy() && context.unacked.length === 0 && this.effects.length === 0 && !this.statusDirty && deliveries.heads(context).length === 0;
  }

  /** After the loop: the last snapshot and status, then the actor stops. */
  async close(code: number): Promise<number> {
    this.deps.wakeups.stop();
    try {
      if (this.actor.getSnapshot().status === "active") {
        await this.persist(true);
        await this.writeStatus();
      }
    } catch (err) {
      this.deps.log.error({ err: messageOf(err) }, "cannot save the final snapshot");
    }
    this.actor.stop();
    await this.deps.costs.flush();
    this.deps.log.info({ state: String(this.actor.getSnapshot().value) }, code === 0 ? "relay stopped" : "relay halted");
    return code;
  }
}

export async function startDaemon(deps: RelayDeps, opts: { shutdownGraceMs?: number } = {}): Promise<DaemonHandle> {
  const { actor, restored, migrate } = await restoreActor(deps);
  const loop = new RelayLoop(actor, deps, opts.shutdownGraceMs ?? 30_000);
  actor.start();
  await loop.loadConfig();
  if (migrate) await migrate();
  // A restart tries a paused or backing-off relay at once (CONTRACT §8): the gate's and every
  // conversation's own back-off, whatever their restored deadlines say.
  const gate = actor.getSnapshot().value;
  const childBackingOff = Object.values(actor.getSnapshot().context.conversations).some((ref) => ref.getSnapshot().value === "backingOff");
  if (gate === "paused" || gate === "backingOff" || childBackingOff) actor.send({ type: "operator.resume" });
  deps.log.info({ state: gate, restored }, "relay started");
  deps.wakeups.start(loop.wake);
  const done = loop.run().then((code) => loop.close(code));
  return { actor, done, stop: () => loop.stop(), wake: loop.wake, status: () => loop.current };
}
