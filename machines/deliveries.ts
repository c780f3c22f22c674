// Deliveries, per session: replies wait here in order; the head is delivered when the session's
// input.txt is free, and the session awaits its acknowledgement until the CC side deletes it.
// Pure functions over the root machine's context.
import type { Delivery } from "./types.js";

export interface Deliveries {
  /** replies waiting, in order, per session (the head is the next to deliver) */
  outbox: Record<string, Delivery[]>;
  /** sessions whose delivered reply is not yet acknowledged (input.txt exists) */
  unacked: string[];
}

export const noDeliveries: Deliveries = { outbox: {}, unacked: [] };

export function enqueue(d: Deliveries, reply: Delivery): Deliveries {
  const queue = d.outbox[reply.session] ?? [];
  if (queue.some((r) => r.replyId === reply.replyId)) return d; // the same reply made again after a crash
  return { ...d, outbox: { ...d.outbox, [reply.session]: [...queue, reply] } };
}

/** The head reply reached input.txt: it leaves the outbox, and the session awaits its acknowledgement. */
export function delivered(d: Deliveries, session: string, replyId: string): Deliveries {
  const queue = d.outbox[session] ?? [];
  if (queue[0]?.replyId !== replyId) return d;
  const rest = queue.slice(1);
  const { [session]: _, ...others } = d.outbox;
  return {
    outbox: rest.length > 0 ? { ...others, [session]: rest } : others,
    unacked: d.unacked.includes(session) ? d.unacked : [...d.unacked, session],
  };
}

export function acknowledged(d: Deliveries, session: string): Deliveries {
  return d.unacked.includes(session) ? { ...d, unacked: d.unacked.filter((s) => s !== session) } : d;
}

/** The reply to deliver next for each session. */
export const heads = (d: Deliveries): Delivery[] => Object.values(d.outbox).flatMap((q) => (q[0] ? [q[0]] : []));

export const pendingFor = (d: Deliveries, session: string): number => d.outbox[session]?.length ?? 0;

export const anyAwaiting = (d: Deliveries): boolean => d.unacked.length > 0 || Object.keys(d.outbox).length > 0;
