// The relay's side of `transport: nats` (CONTRACT §11): envelopes from the RELAY_ENV stream, JC's
// answers from RELAY_JC, replies into the relay_dispatch slots, rejections into RELAY_REJECT, and
// the status into relay_status. These only hand the loop values and wake it; the machines never
// see NATS.
//
// Intake. The durable consumer `relay` has max_ack_pending 1: the relay holds at most one
// delivery. It is offered when its conversation can take it and acked (`taken`) only once the
// snapshot that made it the conversation's current work item is on disk; until then it is kept
// alive with `working()`. A delivery seen again after a crash is answered by the machines' own
// memory of finished ids (finished again, not answered again). The id is the envelope's key as
// the file transport computes it (name, mtime, bytes), so it decides, not the stream sequence.
//
// Dispatch. A slot is a KV key per session whose value only the relay writes, with an expected
// last subject sequence: the slot's revision when it was seen empty. That revision is recorded
// (state/nats-slots.jsonl, fsynced) before the write, so a write repeated after a crash either lands
// once or is refused as "wrong last sequence", which means it was written: only an agent's delete
// of the value it delivered can follow it.
import type { ConsumerMessages, JsMsg } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import { headers as natsHeaders, type Subscription } from "@nats-io/transport-node";
import * as z from "zod/mini";
import type { Delivery, WorkItem } from "../../../machines/types.js";
import { messageOf } from "../../../machines/types.js";
import type { RelayPaths } from "../../config/paths.js";
import type { JcSource, JcTaken } from "../../runtime/deps.js";
import type { Logger } from "../../runtime/log.js";
import { parseEnvelope } from "../file/queue.js";
import type { DeliverOutcome, Inbox, Outbox } from "../port.js";
import type { NatsLink } from "./connection.js";
import { isWrongLastSequence } from "./errors.js";
import { H, type NatsNames } from "./names.js";
import { workingEveryMs } from "./timings.js";
import { safeJson, type SlotRecord, SlotJournal } from "./slot-journal.js";
import { ensurePullConsumer } from "./topology.js";

const PULL_EXPIRES_MS = 30_000;

/** The value of a dispatch slot: the reply and what input.json says about it. */
export const slotValueSchema = z.object({
  reply_id: z.string(),
  in_reply_to: z.nullable(z.string()),
  source: z.enum(["envelope", "jc-chat", "jc-direct"]),
  at: z.string(),
  text: z.string(),
});
export type SlotValue = z.infer<typeof slotValueSchema>;
/** A slot's value as written (JSON), checked. */
export const parseSlotValue = (raw: string) => slotValueSchema.safeParse(safeJson(raw));

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A failed subscription is tried again this soon (each try is a request bounded by 2 s). */
const INTAKE_RETRY_MS = 500;
/** how many of the last acks each intake repeats when it subscribes again */
const RECENT_ACKS = 8;

/**
 * One delivery at a time from a durable pull consumer, through `consume()` (30 s pulls: idle costs
 * nothing measurable), re-subscribed after any failure and whenever the connection comes back. The
 * consumer is recreated if it was deleted.
 *
 * Re-subscribing at a reconnect is ours, not the client's: its own reset asks for the consumer's
 * info once, and if that fails (a restarted server whose JetStream is not up yet) waits
 * `expires` × 0.5-1.5, 15-45 s, before it pulls again.
 *
 * Each (re)subscription first repeats the acks of the last RECENT_ACKS deliveries. A nats-server
 * killed -9 can lose the acks it took just before: the delivery is then still pending there, and
 * with max_ack_pending 1 nothing else comes until the ack wait redelivers it (up to 10 s after the
 * restart, measured: one restart in three). Acked again, the next delivery comes at once. Only
 * sequences the consumer says it has delivered are acked again: 2.9 moves a consumer's next
 * delivery past any sequence acked above it, which after a stream recreated (or rolled back) under
 * the relay would skip new envelopes under reused sequences.
 */
class HeldDelivery {
  held: JsMsg | null = null;
  /** the last deliveries acked (stream sequence, ack subject), oldest first */
  private readonly recentAcks: { seq: number; subject: string }[] = [];
  private release: (() => void) | null = null;
  private stopped = false;
  private messages: ConsumerMessages | null = null;
  private working: NodeJS.Timeout | null = null;
  private alarmed = false;
  private unlisten: (() => void) | null = null;

  constructor(
    private readonly link: NatsLink,
    private readonly stream: string,
    private readonly durable: string,
    private readonly filter: string,
    private readonly log: Logger,
    private readonly wake: () => void,
    private readonly alarm: (message: string) => void,
  ) {}

  start(): void {
    this.unlisten = this.link.onReconnect(() => this.messages?.stop());
    void this.run();
    this.working = setInterval(() => {
      try {
        this.held?.working();
      } catch {
        // disconnected: the next one, or a redelivery, covers it
      }
    }, workingEveryMs());
    this.working.unref();
  }

  stop(): void {
    this.stopped = true;
    this.unlisten?.();
    if (this.working) clearInterval(this.working);
    this.messages?.stop();
    this.release?.();
  }

  /** A delivery was acked: its ack is repeated at the next (re)subscription. */
  acked(seq: number, subject: string): void {
    if (this.recentAcks.some((a) => a.subject === subject)) return;
    this.recentAcks.push({ seq, subject });
    if (this.recentAcks.length > RECENT_ACKS) this.recentAcks.shift();
  }

  /** The held delivery is acked: let the next one come. */
  done(seq: number): void {
    if (this.held?.seq !== seq) return;
    this.acked(seq, ackSubjectOf(this.held));
    this.held = null;
    const release = this.release;
    this.release = null;
    release?.();
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        const consumer = await this.link.js.consumers.get(this.stream, this.durable);
        // the consumer is there (so loaded, after a restart): the acks it may have lost, before the pull
        const delivered = (await consumer.info(true)).delivered.stream_seq;
        for (const a of this.recentAcks) if (a.seq <= delivered) this.link.nc.publish(a.subject, "+ACK");
        const messages = await consumer.consume({ max_messages: 1, expires: PULL_EXPIRES_MS });
        this.messages = messages;
        for await (const m of messages) {
          if (this.stopped) break;
          if (this.held && this.held.seq !== m.seq) this.log.warn({ stream: this.stream, seq: m.seq, held: this.held.seq }, "a second delivery while one is held");
          this.held = m; // a redelivery of the held one replaces it (a fresh ack subject)
          this.wake();
          await new Promise<void>((resolve) => {
            this.release = resolve;
          });
        }
      } catch (err) {
        if (this.stopped) return;
        const message = messageOf(err);
        this.log.warn({ stream: this.stream, consumer: this.durable, err: message }, "NATS intake interrupted; retrying");
        if (/consumer (not found|deleted)/i.test(message)) {
          const problem = await ensurePullConsumer(this.link.jsm, this.stream, this.durable, this.filter, 1, true).catch((e: unknown) => messageOf(e));
          if (problem === null && !this.alarmed) {
            this.alarmed = true;
            this.alarm(`the NATS consumer ${this.durable} on ${this.stream} was deleted under the relay and has been recreated`);
          }
        }
        await new Promise((r) => setTimeout(r, INTAKE_RETRY_MS));
      }
    }
  }
}

/** The delivery's ack subject (2.9's form), kept in the receipt so a later process can ack it again. */
const ackSubjectOf = (m: JsMsg): string => {
  const i = m.info;
  return `$JS.ACK.${i.stream}.${i.consumer}.${i.deliveryCount}.${i.streamSequence}.${i.deliverySequence}.${i.timestampNanos}.${i.pending}`;
};
const receiptOf = (m: JsMsg): string => `nats:${m.seq}:${ackSubjectOf(m)}`;
const parseReceipt = (receipt: string): { seq: number; ackSubject: string } | null => {
  const match = /^nats:(\d+):(.+)$/.exec(receipt);
  return match?.[1] && match[2] ? { seq: Number(match[1]), ackSubject: match[2] } : null;
};

export class NatsInbox implements Inbox {
  private readonly intake: HeldDelivery;

  constructor(
    private readonly link: NatsLink,
    private readonly names: NatsNames,
    private readonly sessions: () => ReadonlySet<string>,
    private readonly log: Logger,
    wake: () => void,
    alarm: (message: string) => void,
    /** fault injection for the crash tests */
    private readonly crashPoint: (name: string) => Promise<void> = async () => {},
  ) {
    this.intake = new HeldDelivery(link, names.envStream, names.envConsumer, names.envFilter, log, wake, alarm);
  }

  start(): void {
    this.intake.start();
  }

  stop(): void {
    this.intake.stop();
  }

  rescan(): void {
    // the consumer pushes; nothing to rescan
  }

  async offers(ready: ReadonlySet<string>, conversationOf: (session: string) => string | undefined): Promise<WorkItem[]> {
    const m = this.intake.held;
    if (!m || ready.size === 0) return [];
    const raw = Buffer.from(m.data);
    const envId = m.headers?.get("Nats-Msg-Id") || m.subject.split(".").at(-1) || String(m.seq);
    const parsed = parseEnvelope(raw, this.sessions());
    if (!parsed.ok) {
      // Valid on its host (the agent checked it), refused here: the relay's reason goes back there.
      await this.publishRejection(m.headers?.get(H.session) ?? "", envId, m.headers?.get(H.file) ?? `${envId}.json`, raw, parsed.reason, Date.now());
      await this.ack(m);
      return [];
    }
    const conversation = conversationOf(parsed.session);
    if (conversation === undefined || !ready.has(conversation)) return []; // held until its conversation can take it
    return [
      {
        id: envId,
        source: "envelope",
        session: parsed.session,
        text: parsed.content,
        inReplyTo: parsed.id ?? envId,
        receipt: receiptOf(m),
        ...(parsed.timestamp === undefined ? {} : { timestamp: parsed.timestamp }),
      },
    ];
  }

  /** The snapshot that made these deliveries current work is on disk: ack them. */
  async taken(receipts: string[]): Promise<void> {
    await this.crashPoint("nats-before-ack");
    for (const receipt of receipts) await this.finish(receipt);
  }

  async finish(receipt: string): Promise<void> {
    const r = parseReceipt(receipt);
    if (!r) return;
    const m = this.intake.held;
    if (m && m.seq === r.seq) {
      await this.ack(m);
      return;
    }
    // Acked already, or held by an earlier process: a second ack is harmless.
    this.intake.acked(r.seq, r.ackSubject);
    try {
      this.link.nc.publish(r.ackSubject, "+ACK");
    } catch (err) {
      this.log.warn({ seq: r.seq, err: messageOf(err) }, "cannot ack an envelope again");
    }
  }

  /** The API refused the envelope (long after it was taken): its bytes go back to its host. */
  async reject(receipt: string, reason: string, at: number): Promise<void> {
    const r = parseReceipt(receipt);
    if (!r) return;
    const stored = await this.link.jsm.streams.getMessage(this.names.envStream, { seq: r.seq });
    if (!stored) {
      this.log.error({ seq: r.seq, reason }, "envelope rejected, but it is no longer in the stream to send back");
      return;
    }
    const envId = stored.header.get("Nats-Msg-Id") || stored.subject.split(".").at(-1) || String(r.seq);
    await this.publishRejection(stored.header.get(H.session), envId, stored.header.get(H.file) || `${envId}.json`, Buffer.from(stored.data), reason, at);
    this.log.warn({ envelope: envId, reason }, `envelope rejected: ${reason}`);
    await this.finish(receipt);
  }

  /**
   * Not waited for (no round trip on the envelope's path): a lost ack means a redelivery, which
   * the machines recognize by its id and finish again instead of answering.
   */
  private async ack(m: JsMsg): Promise<void> {
    try {
      m.ack();
    } catch (err) {
      this.log.warn({ seq: m.seq, err: messageOf(err) }, "cannot ack an envelope; a redelivery will be finished again");
    }
    this.intake.done(m.seq);
  }

  private async publishRejection(session: string, envId: string, file: string, raw: Buffer, reason: string, at: number): Promise<void> {
    const h = natsHeaders();
    h.set(H.session, session);
    h.set(H.file, file);
    h.set(H.reason, reason.replace(/[\r\n]+/g, " ").slice(0, 1000));
    h.set(H.at, new Date(at).toISOString());
    await this.link.js.publish(this.names.rejectSubject(session || "unknown", envId), raw, { msgID: `rej-${envId}`, headers: h });
  }
}

type Slots = Record<string, SlotRecord>;

/**
 * A slot not seen deleted on the slot subscription is read again only this often: the read is the
 * authority, the subscription says when to read (a delete missed while disconnected waits this long).
 */
const ACK_LOOK_EVERY_MS = 1_000;

export class NatsOutbox implements Outbox {
  private slots: Slots = {};
  private readonly journal: SlotJournal;
  private kv: KV | null = null;
  /** sessions whose slot an agent deleted (the slot subscription saw it) since a read last found a reply there */
  private readonly deleteSeen = new Set<string>();
  /** when each slot was last read for its acknowledgement (monotonic ms) */
  private readonly lastLook = new Map<string, number>();
  /**
   * Each slot's revision as the read that found it acknowledged saw it (the agent's delete), until
   * the next reply is staged on it: that reply needs no read of its own (a round trip on the
   * reply's path). Only the relay writes a value and an agent deletes only the value it delivered
   * (previousSeq), so an emptied slot keeps its revision until the relay writes again. Forgotten at
   * a reconnect: what happened to the bucket meanwhile is read again.
   */
  private readonly emptiedAt = new Map<string, number>();
  private readonly stopReconnect: () => void;

  constructor(
    private readonly link: NatsLink,
    private readonly names: NatsNames,
    paths: RelayPaths,
    /** fault injection for the crash tests */
    private readonly crashPoint: (name: string) => Promise<void> = async () => {},
  ) {
    this.journal = new SlotJournal(paths.state);
    this.stopReconnect = link.onReconnect(() => this.emptiedAt.clear());
  }

  stop(): void {
    this.stopReconnect();
    void this.journal.close();
  }

  private async bucket(): Promise<KV> {
    this.kv ??= await this.link.kvm.open(this.names.dispatchBucket);
    return this.kv;
  }

  async load(): Promise<void> {
    this.slots = await this.journal.load();
  }

  /**
   * Only the staging record must reach the disk (durably) before the publish. A "published" one is
   * appended without a sync, off the reply's path: lost in a power cut, it means one more publish,
   * which the server refuses as "wrong last sequence" (read as published).
   */
  private async record(session: string, value: Slots[string]): Promise<void> {
    this.slots = { ...this.slots, [session]: value };
    await this.journal.append(session, value, !value.published, () => this.slots);
  }

  async deliver(reply: Delivery): Promise<DeliverOutcome> {
    const { session } = reply;
    const staged = this.slots[session];
    if (staged?.replyId === reply.replyId) {
      if (!staged.published) await this.publish(reply, staged.slotRev);
      return "delivered";
    }
    let slotRev = this.emptiedAt.get(session);
    this.emptiedAt.delete(session);
    if (slotRev === undefined) {
      const entry = await (await this.bucket()).get(session);
      if (entry && entry.operation === "PUT") {
        const value = parseSlotValue(entry.string());
        if (value.success && value.data.reply_id === reply.replyId) {
          await this.record(session, { replyId: reply.replyId, slotRev: entry.revision - 1, published: true });
          return "delivered";
        }
        return "busy"; // the previous reply is not acknowledged yet
      }
      slotRev = entry?.revision ?? 0;
    }
    await this.record(session, { replyId: reply.replyId, slotRev, published: false });
    await this.crashPoint("nats-slot-staged");
    await this.publish(reply, slotRev);
    return "delivered";
  }

  private async publish(reply: Delivery, slotRev: number): Promise<void> {
    const value: SlotValue = { reply_id: reply.replyId, in_reply_to: reply.inReplyTo, source: reply.source, at: new Date(reply.at).toISOString(), text: reply.text };
    try {
      await this.link.js.publish(this.names.slotSubject(reply.session), enc.encode(JSON.stringify(value)), { msgID: reply.replyId, expect: { lastSubjectSequence: slotRev } });
    } catch (err) {
      // Only the relay writes values: a slot that moved past the recorded revision holds this reply.
      if (!isWrongLastSequence(err)) throw err;
    }
    await this.crashPoint("nats-slot-published");
    await this.record(reply.session, { replyId: reply.replyId, slotRev, published: true });
  }

  /** The slot subscription saw a delete of `session`'s slot: its acknowledgement is read at the next step. */
  slotDeleted(session: string): void {
    this.deleteSeen.add(session);
  }

  /**
   * A delete after the delivered revision is the acknowledgement. The slot is read when the slot
   * subscription saw a delete, and at least every ACK_LOOK_EVERY_MS, not on every step: a step per
   * acknowledgement of each reply in flight was a round trip per session per step.
   */
  async acknowledged(session: string): Promise<boolean> {
    const now = performance.now();
    if (!this.deleteSeen.has(session) && now - (this.lastLook.get(session) ?? Number.NEGATIVE_INFINITY) < ACK_LOOK_EVERY_MS) return false;
    this.lastLook.set(session, now);
    const entry = await (await this.bucket()).get(session);
    const acknowledged = !entry || entry.operation !== "PUT";
    // Kept until the read agrees: the subscription can see a delete before the stream has stored it.
    if (acknowledged) {
      this.deleteSeen.delete(session);
      this.emptiedAt.set(session, entry?.revision ?? 0);
    }
    return acknowledged;
  }
}


/** Where a refusal of JC's answer from agent `agent` waits for that agent (relay_agents). */
export const jcRefusalKey = (agent: string, claim: string): string => `jcrefused.${agent}.${claim}`;
export const jcRefusalSchema = z.object({ reason: z.string(), raw: z.nullable(z.string()), at: z.string() });

/** JC's answers written on agents' roots, through RELAY_JC; read before envelopes on every step. */
export class NatsJcSource implements JcSource {
  private readonly intake: HeldDelivery;
  private given: number | null = null;

  constructor(
    private readonly link: NatsLink,
    private readonly names: NatsNames,
    private readonly registered: () => ReadonlySet<string>,
    private readonly parse: (id: string, raw: string, registered: ReadonlySet<string>) => JcTaken,
    private readonly log: Logger,
    wake: () => void,
    alarm: (message: string) => void,
  ) {
    this.intake = new HeldDelivery(link, names.jcStream, names.jcConsumer, names.jcFilter, log, wake, alarm);
  }

  start(): void {
    this.intake.start();
  }

  stop(): void {
    this.intake.stop();
  }

  /** Ids of answers from NATS: the claim id made on the agent's root, behind the agent's name. */
  static owns(id: string): boolean {
    return id.startsWith("nats:");
  }

  async take(): Promise<JcTaken | null> {
    const m = this.intake.held;
    if (!m || this.given === m.seq) return null;
    this.given = m.seq;
    const [, , agent = "?", claim = String(m.seq)] = m.subject.split(".");
    return this.parse(`nats:${agent}:${claim}`, dec.decode(m.data), this.registered());
  }

  async consume(_id: string): Promise<void> {
    await this.ackHeld();
  }

  /**
   * A refused answer goes back to the agent's root it came from, as state/jc_input.rejected.txt
   * there: the refusal waits in relay_agents under `jcrefused.<agent>.<claim>` until that agent
   * takes it (a repeat after a crash rewrites the same key).
   */
  async refuse(id: string, reason: string, raw: string | null): Promise<void> {
    this.log.warn({ jc: id, reason }, "JC's answer from an agent's root refused");
    const [, agent, claim] = id.split(":");
    if (agent && claim) {
      try {
        const kv = await this.link.kvm.open(this.names.agentsBucket);
        await kv.put(jcRefusalKey(agent, claim), JSON.stringify({ reason, raw, at: new Date().toISOString() }));
      } catch (err) {
        this.log.warn({ jc: id, err: messageOf(err) }, "cannot send the refusal back to the agent's root");
      }
    }
    await this.ackHeld();
  }

  private async ackHeld(): Promise<void> {
    const m = this.intake.held;
    if (!m) return;
    try {
      await m.ackAck({ timeout: 2_000 });
    } catch (err) {
      this.log.warn({ seq: m.seq, err: messageOf(err) }, "cannot confirm the ack of JC's answer; a redelivery is recognized by its id");
    }
    this.given = null;
    this.intake.done(m.seq);
  }
}

/** JC's answers from this root's files first, then from the agents' roots. */
export function combinedJcSource(local: JcSource, remote: JcSource): JcSource {
  return {
    async take() {
      return (await local.take()) ?? (await remote.take());
    },
    consume: (id) => (NatsJcSource.owns(id) ? remote.consume(id) : local.consume(id)),
    refuse: (id, reason, raw) => (NatsJcSource.owns(id) ? remote.refuse(id, reason, raw) : local.refuse(id, reason, raw)),
  };
}

/** The relay's status in relay_status (latest wins, at most 4 a second, off the loop) and a heartbeat. */
export class StatusPublisher {
  private latest: unknown = null;
  private timer: NodeJS.Timeout | null = null;
  private heartbeat: NodeJS.Timeout | null = null;
  private busy = false;
  private kv: KV | null = null;

  constructor(
    private readonly link: NatsLink,
    private readonly names: NatsNames,
    private readonly log: Logger,
  ) {}

  start(): void {
    const beat = () => void this.put("heartbeat", { at: new Date().toISOString(), pid: process.pid });
    beat();
    this.heartbeat = setInterval(beat, 10_000);
    this.heartbeat.unref();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.heartbeat) clearInterval(this.heartbeat);
  }

  publish(status: unknown): void {
    this.latest = status;
    if (this.timer || this.busy) return;
    this.timer = setTimeout(() => void this.flush(), 250);
    this.timer.unref();
  }

  private async flush(): Promise<void> {
    this.timer = null;
    if (this.latest === null) return;
    const value = this.latest;
    this.latest = null;
    this.busy = true;
    await this.put("status", value);
    this.busy = false;
    if (this.latest !== null) this.publish(this.latest);
  }

  private async put(key: string, value: unknown): Promise<void> {
    try {
      this.kv ??= await this.link.kvm.open(this.names.statusBucket);
      await this.kv.put(key, JSON.stringify(value));
    } catch (err) {
      this.log.warn({ key, err: messageOf(err) }, "cannot publish the status to NATS");
    }
  }
}

/**
 * An agent's delete of a slot (an acknowledgement) names its session and wakes the loop: a hint,
 * the poll is the net. The relay's own writes pass here too and wake nothing.
 */
export function watchSlots(link: NatsLink, names: NatsNames, deleted: (session: string) => void): Subscription {
  const prefix = `$KV.${names.dispatchBucket}.`;
  return link.nc.subscribe(`${prefix}>`, {
    callback: (_err, m) => {
      const op = m.headers?.get("KV-Operation");
      if (op === "DEL" || op === "PURGE") deleted(m.subject.slice(prefix.length));
    },
  });
}
