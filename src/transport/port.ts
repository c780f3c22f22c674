// The transport port: how envelopes reach the relay and replies leave it. The machines speak
// work items, deliveries and opaque receipts; an implementation (files under the root, or NATS
// JetStream) owns the names, the bytes and the acknowledgements.
import type { Delivery, WorkItem } from "../../machines/types.js";

export interface Inbox {
  /**
   * The oldest waiting envelope of each conversation `ready` accepts, at most one each. An
   * envelope of a conversation that is not ready holds back that conversation's later ones
   * (order within a conversation), never another conversation's. Envelopes that fail
   * validation are rejected by the transport on the way, with their reason.
   */
  offers(ready: ReadonlySet<string>, conversationOf: (session: string) => string | undefined): Promise<WorkItem[]>;
  /**
   * The snapshot that made these envelopes conversations' current work is on disk (a transport
   * that keeps envelopes elsewhere lets go of them now; the file transport keeps its files until
   * `finish`, and has no such step).
   */
  taken?(receipts: string[]): Promise<void>;
  /** The envelope is answered (its reply is in the relay's keeping): remove it. Idempotent. */
  finish(receipt: string): Promise<void>;
  /** Refuse the envelope with a reason the sender can act on. Idempotent. */
  reject(receipt: string, reason: string, at: number): Promise<void>;
}

export type DeliverOutcome =
  /** the reply is in place for the session (now, or by an earlier attempt: delivery is idempotent by reply id) */
  | "delivered"
  /** the session's previous reply is not acknowledged yet */
  | "busy";

export interface Outbox {
  /** Put the reply in place for its session, unless the previous one is still unacknowledged. */
  deliver(reply: Delivery): Promise<DeliverOutcome>;
  /** Whether the session acknowledged its last reply. */
  acknowledged(session: string): Promise<boolean>;
}

export interface Transport {
  inbox: Inbox;
  outbox: Outbox;
}
