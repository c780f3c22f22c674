// `relay agent` (and the relay's built-in agent for its own root): the file contract of CONTRACT
// §5 and §6 on this root, carried over NATS (§11).
//
// - queue/ → RELAY_ENV (envelope-publisher.ts): oldest first, one at a time, deleted only after
//   the PubAck; a publish in doubt is repeated under the same key.
// - the reply slot → dispatch/<s>/input.txt in two phases recorded in state/agent.json: the reply
//   under a staging name (and input.json), `staged`, the rename to input.txt (never over one),
//   `delivered`. A revision at or below the recorded one is never delivered again. The value the
//   slot's subscription brought is written out while the read that confirms it (and gives its
//   revision) is under way.
// - input.txt deleted → delete the slot's value with previousSeq = that revision (the
//   acknowledgement); "wrong last sequence" means it was done. Then `acked`.
// - RELAY_REJECT → queue/.rejected/NAME beside NAME.reason.json (the relay's reason).
// - remote agents only: state/jc_input.txt → RELAY_JC, and the relay's status →
//   state/remote_status.json.
import { type FSWatcher, renameSync, rmSync, watch } from "node:fs";
import { hostname } from "node:os";
import { basename, join } from "node:path";
import type { JsMsg } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import type { Subscription } from "@nats-io/transport-node";
import * as z from "zod/mini";
import { messageOf } from "../../../machines/types.js";
import { inputFile, type RelayPaths, sessionDir } from "../../config/paths.js";
import { claimJcInput, refuseJcInput, releaseJcClaim } from "../../operator/jc-input.js";
import type { Logger } from "../../runtime/log.js";
import { ensureDirs, readJsonFile, syncDir, writeAtomic, writeDurable, writeJsonAtomic } from "../../store/files.js";
import { ensureSessionDir } from "../file/dispatch.js";
import { exists, listQueue } from "../file/queue.js";
import { readReplyMeta, replyMetaFile } from "../file/reply-meta.js";
import { REST_LOOK_INTERVAL_MS } from "../../runtime/poll-look.js";
import { remoteStatusPath } from "../../status/remote-status.js";
import { fileSystemKind } from "../../store/file-system-kind.js";
import type { NatsLink } from "./connection.js";
import { EnvelopePublisher } from "./envelope-publisher.js";
import { isWrongLastSequence, NatsSetupError } from "./errors.js";
import { H, type NatsNames } from "./names.js";
import { heartbeatMs } from "./timings.js";
import { jcRefusalKey, jcRefusalSchema, parseSlotValue, slotValueSchema } from "./relay-side.js";
import { ensurePullConsumer } from "./topology.js";

const SLOT_POLL_MS = 5_000;
/**
 * JC's refused answers are listed (kv.keys(): a consumer made and deleted on the server) at start
 * and this often; in between, their key's subscription wakes the agent when the relay writes one.
 */
const REFUSALS_LIST_MS = 60_000;
/**
 * The slot subscription can bring the relay's write before the stream has stored it (the server
 * hands the message to subscribers and to the stream at once), so a read right after may not find
 * it: the slot is read again this soon, for at most PUT_SETTLE_MS (then the slot poll covers it).
 */
const SLOT_REREAD_MS = 50;
const PUT_SETTLE_MS = 5_000;

const agentStateSchema = z.object({
  slots: z._default(z.record(z.string(), z.object({ rev: z.int().check(z.gte(0)), phase: z.enum(["staged", "delivered", "acked"]) })), {}),
  rejected: z._default(z.record(z.string(), z.int().check(z.gte(0))), {}),
});
type AgentState = z.infer<typeof agentStateSchema>;

export const claimValueSchema = z.object({ agent: z.string(), host: z.string(), root: z.string(), since: z.string() });

export interface AgentOptions {
  paths: RelayPaths;
  link: NatsLink;
  names: NatsNames;
  name: string;
  /** the sessions this root serves, read again on every claim check (10 s): config.yaml may change while it runs */
  sessions: () => readonly string[];
  log: Logger;
  pollMs: number;
  takeOver: boolean;
  /** the relay's own root: JC's answers and the status stay local there */
  builtIn: boolean;
  now?: () => number;
  /** fault injection for the crash tests */
  crashPoint?: (name: string) => Promise<void>;
}

const stagingName = (rev: number): string => `.reply-${rev}.tmp`;
/** where a slot's value is written before its revision is known (then renamed to stagingName and input.json) */
const PREPARED_REPLY = ".reply-next.tmp";
const PREPARED_META = ".input.json.tmp";

export class NatsAgent {
  private state: AgentState = { slots: {}, rejected: {} };
  private readonly stateFile: string;
  private readonly serving = new Set<string>();
  /** the session list last read from opts.sessions(), joined: a change is claimed at the next claim check */
  private wanted = "";
  /** sessions another agent holds, refused while running (logged once each) */
  private readonly refused = new Set<string>();
  private stopped = false;
  private wakeLoop: (() => void) | null = null;
  private woken = true;
  private slotDue = new Set<string>();
  private lastSlotPoll = 0;
  private lastHeartbeat = 0;
  private statusDue = true;
  private lastStatus = "";
  private jcLeftoversChecked = false;
  private readonly watchers: FSWatcher[] = [];
  private readonly subs: Subscription[] = [];
  /** per served session: what serving it started (its slot subscription, its rejections' consumer, its watcher) */
  private readonly sessionParts = new Map<string, (() => void)[]>();
  private rejectChain: Promise<void> = Promise.resolve();
  private dispatchKv: KV | null = null;
  /** the buckets' views, bound once (each kvm.open is a round trip) */
  private agentsKv: KV | null = null;
  private statusKv: KV | null = null;
  private refusalsDue = true;
  private lastRefusalsList = 0;
  /**
   * The watchers see every change on this root (a local file system, each watcher up) and the last
   * step left nothing to look at again: the loop then rests REST_LOOK_INTERVAL_MS between ticks,
   * as the relay's does, since queue/, state/, dispatch/<s>/ and the NATS subscriptions wake it.
   */
  private watchersTrusted = false;
  private stopReconnect: (() => void) | null = null;
  /** sessions whose slot subscription saw the relay write a reply (when), until a read finds it */
  private readonly putSeenAt = new Map<string, number>();
  /** the value of the relay's last write each slot subscription brought, until a read of the slot settles it */
  private readonly carried = new Map<string, string>();
  private leftSomething = true;
  private done: Promise<void> = Promise.resolve();
  private readonly now: () => number;
  private readonly crashPoint: (name: string) => Promise<void>;
  private readonly envelopes: EnvelopePublisher;

  constructor(private readonly opts: AgentOptions) {
    this.stateFile = join(opts.paths.state, "agent.json");
    this.now = opts.now ?? Date.now;
    this.crashPoint = opts.crashPoint ?? (async () => {});
    const { link } = opts;
    this.envelopes = new EnvelopePublisher({ paths: opts.paths, names: opts.names, agent: opts.name, publish: (subject, raw, o) => link.js.publish(subject, raw, o), log: opts.log, now: this.now, crashPoint: this.crashPoint });
  }

  /** Claim the sessions (a session held by another agent name stops the start), then serve them. */
  async start(): Promise<void> {
    const { link, names, paths } = this.opts;
    const read = await readJsonFile(this.stateFile, agentStateSchema);
    if (read.ok) this.state = read.value;
    else if (!read.missing) throw new NatsSetupError(`state/agent.json is unreadable (${read.error})`);
    await ensureDirs(paths.queue, paths.rejected, paths.dispatch, paths.state);
    this.dispatchKv = await link.kvm.open(names.dispatchBucket);
    this.agentsKv = await link.kvm.open(names.agentsBucket);
    this.statusKv = await link.kvm.open(names.statusBucket);
    this.watchersTrusted = (await fileSystemKind(paths.root)).local;
    const sessions = this.opts.sessions();
    this.wanted = sessions.join("\n");
    for (const session of await this.claimSessions(sessions, "start")) await this.serve(session);
    if (!this.opts.builtIn) {
      this.subs.push(link.nc.subscribe(`$KV.${names.statusBucket}.>`, { callback: () => this.wake("status") }));
      // A refusal the relay PUTs wakes the listing; the agent's own delete of one it handled
      // (a DEL, or a PURGE) leaves nothing to list.
      this.subs.push(
        link.nc.subscribe(`$KV.${names.agentsBucket}.${jcRefusalKey(this.opts.name, ">")}`, {
          callback: (_err, m) => {
            if (!m.headers?.get("KV-Operation")) this.wake("refusal");
          },
        }),
      );
    }
    // What failed while the server was away is retried as soon as it is back, not at the next tick,
    // and every slot is read: a reply the relay wrote meanwhile was missed by the slot subscription.
    this.stopReconnect = link.onReconnect(() => {
      for (const session of this.serving) this.slotDue.add(session);
      this.wake();
    });
    this.watch();
    this.done = this.loop();
  }

  /** Start serving a claimed session: its directory, its slot's updates, its rejections. */
  private async serve(session: string): Promise<void> {
    const { link, names, paths } = this.opts;
    await ensureSessionDir(paths, session);
    const problem = await ensurePullConsumer(link.jsm, names.rejectStream, names.rejectConsumer(session), names.rejectFilter(session), 64, true);
    if (problem) throw new NatsSetupError(problem);
    const slotUpdates = link.nc.subscribe(`$KV.${names.dispatchBucket}.${session}`, {
      callback: (_err, m) => {
        if (!m.headers?.get("KV-Operation")) {
          // a PUT (the relay's): its value comes with it
          this.putSeenAt.set(session, this.now());
          this.carried.set(session, m.string());
        }
        this.wakeSlot(session);
      },
    });
    const rejections = await this.consumeRejections(session);
    const watcher = this.watchDir(sessionDir(paths, session), (name) => (name === null || name === "input.txt" ? this.wake() : undefined));
    this.sessionParts.set(session, [() => slotUpdates.unsubscribe(), () => rejections.stop(), () => watcher?.close()]);
    this.serving.add(session);
    this.slotDue.add(session);
  }

  /**
   * config.yaml's sessions changed while running: claim and serve the new ones (one held by
   * another agent is refused with one error line, and tried again at the next change), stop
   * serving the removed ones and give their claims back.
   */
  private async followSessions(): Promise<void> {
    const sessions = this.opts.sessions();
    const wanted = sessions.join("\n");
    if (wanted === this.wanted) return;
    this.wanted = wanted;
    this.refused.clear();
    const added = sessions.filter((s) => !this.serving.has(s));
    for (const session of await this.claimSessions(added, "running")) {
      await this.serve(session);
      this.opts.log.info({ session }, "now serving a session added to config.yaml");
    }
    const kv = this.bucket(this.agentsKv);
    for (const session of [...this.serving].filter((s) => !sessions.includes(s))) {
      this.serving.delete(session);
      for (const stop of this.sessionParts.get(session) ?? []) stop();
      this.sessionParts.delete(session);
      const entry = await kv.get(`session.${session}`);
      const holder = entry && entry.operation === "PUT" ? claimValueSchema.safeParse(JSON.parse(entry.string())) : null;
      if (entry && holder?.success && holder.data.agent === this.opts.name) await kv.delete(`session.${session}`, { previousSeq: entry.revision }).catch(() => undefined);
      this.opts.log.info({ session }, "no longer serving a session removed from config.yaml");
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.stopReconnect?.();
    this.wakeLoop?.();
    await this.done;
    for (const w of this.watchers) w.close();
    for (const s of this.subs) s.unsubscribe();
    for (const parts of this.sessionParts.values()) for (const stop of parts) stop();
    await this.rejectChain;
  }

  sessions(): string[] {
    return [...this.serving];
  }

  private wakeSlot(session: string): void {
    this.slotDue.add(session);
    this.wake();
  }

  private wake(what?: "status" | "refusal"): void {
    if (what === "status") this.statusDue = true;
    if (what === "refusal") this.refusalsDue = true;
    this.woken = true;
    this.wakeLoop?.();
  }

  private watch(): void {
    const { paths } = this.opts;
    this.watchDir(paths.queue, () => this.wake());
    if (!this.opts.builtIn) this.watchDir(paths.state, (name) => (name === null || name === "jc_input.txt" ? this.wake() : undefined));
  }

  private watchDir(dir: string, onEvent: (name: string | null) => void): FSWatcher | null {
    try {
      const w = watch(dir, { persistent: false }, (_e, name) => onEvent(name === null ? null : String(name)));
      w.on("error", () => {
        w.close();
        this.watchersTrusted = false; // the poll interval covers it from now on
      });
      this.watchers.push(w);
      return w;
    } catch {
      this.watchersTrusted = false;
      return null; // the poll covers it
    }
  }

  /**
   * Claim each session (CAS create); the same agent name takes its own back. One held by another
   * name stops the start (`at: "start"`), or, while running, is left out with one error line.
   */
  private async claimSessions(sessions: readonly string[], at: "start" | "running"): Promise<string[]> {
    const { name, paths } = this.opts;
    const kv = this.bucket(this.agentsKv);
    const mine = JSON.stringify({ agent: name, host: hostname(), root: paths.root, since: new Date(this.now()).toISOString() });
    const claimed: string[] = [];
    for (const session of sessions) {
      const key = `session.${session}`;
      try {
        await kv.create(key, mine);
        claimed.push(session);
        continue;
      } catch (err) {
        if (!/wrong last sequence|key exists/i.test(messageOf(err))) throw err;
      }
      const entry = await kv.get(key);
      const holder = entry && entry.operation === "PUT" ? claimValueSchema.safeParse(JSON.parse(entry.string())) : null;
      if (holder?.success && holder.data.agent === name) {
        claimed.push(session); // the same agent name takes its sessions back
        continue;
      }
      if (!this.opts.takeOver) {
        const who = holder?.success ? `agent "${holder.data.agent}" (host ${holder.data.host}, root ${holder.data.root})` : "another agent";
        const line = `session ${session} is served by ${who}: stop it there, or start this agent with --take-over`;
        if (at === "start") throw new NatsSetupError(line);
        if (!this.refused.has(session)) this.opts.log.error({ session }, line);
        this.refused.add(session);
        continue;
      }
      await kv.update(key, mine, entry?.revision ?? 0);
      this.opts.log.warn({ session, from: holder?.success ? holder.data.agent : null }, "session taken over");
      claimed.push(session);
    }
    return claimed;
  }

  /** A session another agent took over is no longer served here (no TTL leases: only --take-over moves it). */
  private async checkClaims(): Promise<void> {
    const { name, log } = this.opts;
    const kv = this.bucket(this.agentsKv);
    for (const session of [...this.serving]) {
      const entry = await kv.get(`session.${session}`);
      if (!entry || entry.operation !== "PUT") continue;
      const holder = claimValueSchema.safeParse(JSON.parse(entry.string()));
      if (holder.success && holder.data.agent !== name) {
        this.serving.delete(session);
        log.error({ session, agent: holder.data.agent }, `session ${session} was taken over by agent "${holder.data.agent}"; no longer serving it here`);
      }
    }
    await kv.put(`agent.${name}`, JSON.stringify({ pid: process.pid, version: "1", sessions: [...this.serving], queued: (await listQueue(this.opts.paths)).length, seenAt: new Date(this.now()).toISOString() }));
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      if (this.woken) {
        this.woken = false;
        await this.step();
        continue;
      }
      const rest = this.watchersTrusted && !this.leftSomething;
      const wait = this.putSeenAt.size > 0 ? Math.min(this.opts.pollMs, SLOT_REREAD_MS) : rest ? Math.max(this.opts.pollMs, REST_LOOK_INTERVAL_MS) : this.opts.pollMs;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          this.woken = true;
          resolve();
        }, wait);
        this.wakeLoop = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wakeLoop = null;
    }
  }

  /** One pass; a failure is logged and retried on the next (NATS being down blocks nothing local). */
  private async step(): Promise<void> {
    const { log } = this.opts;
    const now = this.now();
    if (now - this.lastSlotPoll >= SLOT_POLL_MS) {
      this.lastSlotPoll = now;
      for (const s of this.serving) this.slotDue.add(s);
    }
    // The relay's status comes on its subscription (the relay's heartbeat puts it every 10 s):
    // read without a wake only as often as the claim check, the net for one missed while disconnected.
    if (now - this.lastHeartbeat >= heartbeatMs()) this.statusDue = true;
    let left = false;
    const part = async (what: string, f: () => Promise<unknown>) => {
      try {
        await f();
      } catch (err) {
        left = true;
        log.warn({ err: messageOf(err) }, `agent: ${what} failed; retrying`);
      }
    };
    // While the connection is lost, what needs the server waits for it (the reconnect wakes the
    // loop): each request would wait out its timeout, one after the other, and hold up the step
    // that runs when the server is back. A reply's local phases still go on (syncSlot).
    const linked = (what: string, f: () => Promise<unknown>) => {
      if (this.opts.link.up()) return part(what, f);
      left = true;
      return Promise.resolve();
    };
    // Replies first: a reply the relay just wrote waits for nothing else in the step.
    for (const session of [...this.serving]) await part(`session ${session}`, () => this.syncSlot(session));
    if (!this.opts.builtIn) await linked("JC's answer", () => this.mirrorJc());
    await linked("the queue", async () => {
      if (await this.envelopes.publishQueue(this.serving, () => this.stopped)) left = true;
    });
    if (!this.opts.builtIn && this.statusDue && this.opts.link.up()) {
      this.statusDue = false;
      await linked("the status mirror", () => this.mirrorStatus());
    }
    if (!this.opts.builtIn && (this.refusalsDue || now - this.lastRefusalsList >= REFUSALS_LIST_MS) && this.opts.link.up()) {
      this.refusalsDue = false;
      this.lastRefusalsList = now;
      await linked("JC's refused answers", () => this.takeJcRefusals());
    }
    if (now - this.lastHeartbeat >= heartbeatMs()) {
      this.lastHeartbeat = now;
      await linked("the sessions of config.yaml", () => this.followSessions());
      await linked("the claim check", () => this.checkClaims());
    }
    for (const [session, at] of this.putSeenAt) {
      if (now - at < PUT_SETTLE_MS) continue;
      this.putSeenAt.delete(session);
      this.carried.delete(session);
    }
    this.leftSomething = left || !this.opts.link.up();
  }

  /** A bucket's view, bound at start. */
  private bucket(kv: KV | null): KV {
    if (!kv) throw new Error("the agent is not started");
    return kv;
  }

  private async saveState(durable = true): Promise<void> {
    await writeAtomic(this.stateFile, `${JSON.stringify(this.state)}\n`, { durable });
  }

  /**
   * The phases need no fsync of their own: input.json (fsynced before the rename) names the reply
   * being delivered, so a lost `staged` or `delivered` is found again from it and the staging
   * file (see syncSlot), and a lost `acked` by a delete the server refuses as "wrong last sequence".
   */
  private async record(session: string, rev: number, phase: "staged" | "delivered" | "acked"): Promise<void> {
    this.state = { ...this.state, slots: { ...this.state.slots, [session]: { rev, phase } } };
    await this.saveState(false);
  }

  /** The reply slot of one session → its input.txt; input.txt deleted → the slot's value deleted. */
  private async syncSlot(session: string): Promise<void> {
    const { paths } = this.opts;
    const dir = sessionDir(paths, session);
    const input = inputFile(paths, session);
    let rec = this.state.slots[session] ?? { rev: 0, phase: "acked" as const };
    if (rec.phase === "staged") {
      const staging = join(dir, stagingName(rec.rev));
      if (await exists(staging)) {
        if (await exists(input)) return; // never over an existing input.txt
        renameSync(staging, input);
        await syncDir(dir);
      }
      await this.record(session, rec.rev, "delivered");
      rec = { rev: rec.rev, phase: "delivered" };
    }
    const kv = this.dispatchKv;
    if (!kv || !this.opts.link.up()) return; // the reconnect wakes the loop
    if (rec.phase === "delivered") {
      if (await exists(input)) return;
      await this.ack(kv, session, rec.rev);
      rec = { rev: rec.rev, phase: "acked" };
    }
    if (!this.slotDue.has(session)) return;
    this.slotDue.delete(session);
    // The value the subscription brought goes to disk while the read that confirms it (and gives
    // its revision) is under way: the read's round trip is off the reply's path.
    const carried = this.carried.get(session);
    /** files may be under the prepared names: they go, unless renamed into place */
    let leftover = carried !== undefined;
    try {
      const [read, early] = await Promise.allSettled([Promise.all([kv.get(session), readReplyMeta(paths, session), exists(input)]), carried === undefined ? null : this.prepare(dir, carried)]);
      if (read.status === "rejected") throw read.reason;
      const [entry, named, inputThere] = read.value;
      /** the value the files under the prepared names hold */
      let prepared = early.status === "fulfilled" ? early.value : null;
      if (entry !== null && entry.operation === "PUT" && entry.revision > rec.rev) {
        this.putSeenAt.delete(session);
        this.carried.delete(session);
      } else if (this.putSeenAt.has(session)) this.slotDue.add(session); // on its way into the stream: read again soon
      if (!entry || entry.operation !== "PUT") return;
      if (entry.revision < rec.rev) return;
      if (entry.revision === rec.rev) {
        // Delivered and acknowledged here, yet the value is still there: the delete was lost.
        await this.ack(kv, session, rec.rev);
        return;
      }
      const raw = entry.string();
      const value = slotValueSchema.parse(JSON.parse(raw));
      const staging = join(dir, stagingName(entry.revision));
      if (named?.reply_id === value.reply_id && !(await exists(staging))) {
        // input.json names this reply and its staging file is gone: it reached input.txt before a
        // crash (and may be acknowledged already). Never again.
        await this.record(session, entry.revision, "delivered");
        return;
      }
      if (inputThere) {
        this.slotDue.add(session); // the slot is ahead of a file someone else put there: wait
        return;
      }
      if (prepared !== raw) {
        leftover = true;
        prepared = await this.prepare(dir, raw); // none brought, or not this value
      }
      // The staging file before input.json names the reply: a name without its staging file means
      // "reached input.txt" (above).
      renameSync(join(dir, PREPARED_REPLY), staging);
      renameSync(join(dir, PREPARED_META), replyMetaFile(paths, session));
      leftover = false;
      await this.record(session, entry.revision, "staged");
      await this.crashPoint("agent-after-meta");
      if (await exists(input)) return; // appeared meanwhile: the staged phase finishes it later
      renameSync(staging, input);
      await syncDir(dir);
      await this.crashPoint("agent-after-rename");
      await this.record(session, entry.revision, "delivered");
      this.opts.log.info({ session, reply: value.reply_id, rev: entry.revision }, "reply delivered");
    } finally {
      if (leftover) for (const name of [PREPARED_REPLY, PREPARED_META]) rmSync(join(dir, name), { force: true });
    }
  }

  /**
   * A slot's value on disk under PREPARED_NAMES: the reply, and input.json's record of it, each
   * fsynced before input.json can name the reply (their two fsyncs side by side). Null when the
   * value is not a reply (the read of the slot reports that).
   */
  private async prepare(dir: string, raw: string): Promise<string | null> {
    const value = parseSlotValue(raw);
    if (!value.success) return null;
    const { reply_id, in_reply_to, source, at, text } = value.data;
    await Promise.all([writeDurable(join(dir, PREPARED_REPLY), text), writeDurable(join(dir, PREPARED_META), `${JSON.stringify({ reply_id, in_reply_to, source, at })}\n`)]);
    return raw;
  }

  private async ack(kv: KV, session: string, rev: number): Promise<void> {
    try {
      await kv.delete(session, { previousSeq: rev });
    } catch (err) {
      if (!isWrongLastSequence(err)) throw err; // the slot moved on: the ack was done
    }
    await this.crashPoint("agent-after-ack");
    await this.record(session, rev, "acked");
    this.opts.log.info({ session, rev }, "reply acknowledged");
  }

  /** RELAY_REJECT → queue/.rejected/, once per stream sequence. */
  private async consumeRejections(session: string): Promise<{ stop(): void }> {
    const { link, names } = this.opts;
    const consumer = await link.js.consumers.get(names.rejectStream, names.rejectConsumer(session));
    const messages = await consumer.consume({
      expires: 30_000,
      callback: (m) => {
        this.rejectChain = this.rejectChain.then(() => this.writeRejection(session, m)).catch((err: unknown) => this.opts.log.warn({ err: messageOf(err) }, "cannot write a rejection; it comes again"));
      },
    });
    return { stop: () => messages.stop() };
  }

  private async writeRejection(session: string, m: JsMsg): Promise<void> {
    const { paths, log } = this.opts;
    if ((this.state.rejected[session] ?? 0) < m.seq) {
      const name = basename(m.headers?.get(H.file) || `${m.seq}.json`).replace(/^\.+/, "") || `${m.seq}.json`;
      const reason = m.headers?.get(H.reason) || "refused by the relay";
      const at = Date.parse(m.headers?.get(H.at) ?? "") || this.now();
      // Like a local rejection: queue/.rejected/NAME (a free name) beside NAME.reason.json.
      let target = name;
      for (let n = 2; (await exists(join(paths.rejected, target))) || (await exists(join(paths.rejected, `${target}.reason.json`))); n++) target = `${name}.${n}`;
      const staged = join(paths.rejected, `.${target}.tmp`);
      await writeDurable(staged, m.data, 0o644);
      await writeJsonAtomic(join(paths.rejected, `${target}.reason.json`), { error: reason, at: new Date(at).toISOString(), ...(target === name ? {} : { file: name }) });
      renameSync(staged, join(paths.rejected, target));
      await syncDir(paths.rejected);
      this.state = { ...this.state, rejected: { ...this.state.rejected, [session]: m.seq } };
      await this.saveState();
      log.warn({ file: name, session }, `envelope rejected by the relay: ${reason}`);
    }
    m.ack();
  }

  /** state/jc_input.txt on this root → RELAY_JC (the relay applies it as if written on its own root). */
  private async mirrorJc(): Promise<void> {
    const { paths, link, names, name } = this.opts;
    for (;;) {
      // Claims a killed agent left are looked for once, at start (as the relay does).
      const claim = await claimJcInput(paths, { leftovers: !this.jcLeftoversChecked });
      this.jcLeftoversChecked = true;
      if (!claim) return;
      if (claim.kind === "refused") {
        await refuseJcInput(paths, claim.reason, null);
        await releaseJcClaim(paths, claim.id);
        continue;
      }
      await link.js.publish(names.jcSubject(name, claim.id), new TextEncoder().encode(claim.raw), { msgID: `${name}.${claim.id}` });
      await this.crashPoint("agent-jc-published");
      await releaseJcClaim(paths, claim.id);
    }
  }

  /**
   * JC's answers written here that the relay refused → state/jc_input.rejected.txt (as on the
   * relay's root), then the refusal is deleted (expecting its revision: a newer one stays).
   */
  private async takeJcRefusals(): Promise<void> {
    const { name, paths } = this.opts;
    const kv = this.bucket(this.agentsKv);
    const keys: string[] = [];
    for await (const key of await kv.keys(jcRefusalKey(name, ">"))) keys.push(key);
    for (const key of keys.sort()) {
      const entry = await kv.get(key);
      if (!entry || entry.operation !== "PUT") continue;
      const refusal = jcRefusalSchema.safeParse(JSON.parse(entry.string()));
      if (refusal.success) {
        await refuseJcInput(paths, refusal.data.reason, refusal.data.raw);
        this.opts.log.warn({ reason: refusal.data.reason }, "JC's answer written here was refused by the relay; see state/jc_input.rejected.txt");
      }
      await kv.delete(key, { previousSeq: entry.revision }).catch(() => undefined);
    }
  }

  /** The relay's status → state/remote_status.json, with how old it is. */
  private async mirrorStatus(): Promise<void> {
    const { paths } = this.opts;
    const kv = this.bucket(this.statusKv);
    const status = await kv.get("status");
    const heartbeat = await kv.get("heartbeat");
    const body = {
      status: status && status.operation === "PUT" ? (JSON.parse(status.string()) as unknown) : null,
      relayHeartbeatAt: heartbeat && heartbeat.operation === "PUT" ? ((JSON.parse(heartbeat.string()) as { at?: unknown }).at ?? null) : null,
      agent: { name: this.opts.name, pid: process.pid, sessions: [...this.serving] },
    };
    const text = JSON.stringify(body);
    if (text === this.lastStatus) return;
    this.lastStatus = text;
    await writeAtomic(remoteStatusPath(paths), `${JSON.stringify({ ...body, mirroredAt: new Date(this.now()).toISOString() }, null, 1)}\n`, { durable: false });
  }
}
