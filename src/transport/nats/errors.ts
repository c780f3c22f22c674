// What the NATS side says when it cannot work: one line naming the setting or object and what
// was expected (CONTRACT §11); transient failures are told apart so the loops just retry.
import { messageOf } from "../../../machines/types.js";

/** A set-up problem that stops `relay run`, `relay agent` and `relay nats check` (exit 1). */
export class NatsSetupError extends Error {
  override name = "NatsSetupError";
  constructor(message: string) {
    super(message.replace(/[\r\n]+/g, " "));
  }
}

/** The server refused a write because the subject moved on: the write (or a newer one) was done. */
export const isWrongLastSequence = (err: unknown): boolean => /wrong last sequence/i.test(messageOf(err));

/**
 * The server is not there right now: a request timed out, nobody answered it (a restarting server
 * or a JetStream without quorum), or the connection closed under it. Retried like an unreachable
 * server, never a set-up problem (a server killed while the relay or an agent starts is one).
 */
export const isTransientNatsError = (err: unknown): boolean => /^timeout$|no responders|closed connection|connection draining|jetstream is not enabled/i.test(messageOf(err));
