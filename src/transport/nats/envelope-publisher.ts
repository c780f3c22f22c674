// queue/ → RELAY_ENV, for `relay agent` and the relay's built-in agent (CONTRACT §11): each file
// validated as the file transport does (settle window, 1 MiB, links, FIFOs, the sessions this
// agent serves), oldest first, one at a time, published with its key as Nats-Msg-Id and an
// expected last subject sequence of 0, and deleted only after the PubAck; "duplicate" or "wrong
// last sequence" mean it was published already.
//
// A publish without an answer (a timeout: the link cut or blackholed) is in doubt: the server may
// have stored it, and will if the bytes were only held up on the way. The file stays in queue/ and
// is published again with the key of that first attempt for as long as its bytes are the same, so
// the server's de-duplication answers the repeat. Recomputed, the key could differ (the key holds
// the file's mtime, which a `touch` or `cp -p` moves without changing the envelope), and the one
// envelope became two: two turns, two replies handed over for one message.
import { createHash } from "node:crypto";
import { join } from "node:path";
import { headers as natsHeaders, type MsgHdrs } from "@nats-io/transport-node";
import type { RelayPaths } from "../../config/paths.js";
import type { Logger } from "../../runtime/log.js";
import { removeIfPresent } from "../../store/files.js";
import { listQueue, readEntryWithBytes, rejectFile } from "../file/queue.js";
import { isWrongLastSequence } from "./errors.js";
import { H, type NatsNames } from "./names.js";

/** What the publisher needs of the JetStream client (link.js.publish). */
export type PublishEnvelope = (subject: string, raw: Uint8Array, opts: { msgID: string; headers: MsgHdrs; expect: { lastSubjectSequence: number } }) => Promise<{ seq: number; duplicate: boolean }>;

export interface EnvelopePublisherOptions {
  paths: RelayPaths;
  names: NatsNames;
  /** the agent's name, in the Relay-Agent header */
  agent: string;
  publish: PublishEnvelope;
  log: Logger;
  now: () => number;
  crashPoint: (name: string) => Promise<void>;
}

const digestOf = (raw: Buffer): string => createHash("sha256").update(raw).digest("hex");

export class EnvelopePublisher {
  /** queue file name → the key its publish in doubt went out with, and the bytes' digest then */
  private readonly inDoubt = new Map<string, { key: string; digest: string }>();

  constructor(private readonly opts: EnvelopePublisherOptions) {}

  /**
   * One pass over queue/, oldest first; a failed publish throws (the caller retries on its next
   * pass). True when a file was left to look at again: one still settling, or the pass stopped.
   */
  async publishQueue(serving: ReadonlySet<string>, stopped: () => boolean = () => false): Promise<boolean> {
    const { paths, names, agent, log, now } = this.opts;
    const entries = await listQueue(paths);
    const present = new Set(entries.map((e) => e.name));
    for (const name of this.inDoubt.keys()) if (!present.has(name)) this.inDoubt.delete(name);
    let waiting = false;
    for (const entry of entries) {
      if (stopped()) return true;
      const intake = await readEntryWithBytes(paths, entry, serving, now());
      if (intake.kind === "wait") waiting = true;
      if (intake.kind === "gone" || intake.kind === "wait") continue;
      if (intake.kind === "reject") {
        if ((await rejectFile(paths, entry.name, intake.reason, now())) !== null) log.warn({ file: entry.name }, `envelope rejected: ${intake.reason}`);
        continue;
      }
      const { item, raw, mtimeMs } = intake;
      const digest = digestOf(raw);
      const doubt = this.inDoubt.get(entry.name);
      const key = doubt?.digest === digest ? doubt.key : item.id;
      if (key !== item.id) log.info({ session: item.session, envelope: item.inReplyTo }, "envelope published again under the key of its publish in doubt");
      this.inDoubt.set(entry.name, { key, digest });
      const h = natsHeaders();
      h.set(H.session, item.session);
      h.set(H.file, entry.name);
      h.set(H.mtime, String(mtimeMs));
      h.set(H.agent, agent);
      try {
        const ack = await this.opts.publish(names.envSubject(item.session, key), raw, { msgID: key, headers: h, expect: { lastSubjectSequence: 0 } });
        log.info({ session: item.session, envelope: item.inReplyTo, seq: ack.seq, duplicate: ack.duplicate }, "envelope published");
      } catch (err) {
        if (!isWrongLastSequence(err)) throw err;
        log.info({ session: item.session, envelope: item.inReplyTo }, "envelope was published already");
      }
      await this.opts.crashPoint("agent-after-publish");
      await removeIfPresent(join(paths.queue, entry.name));
      this.inDoubt.delete(entry.name);
    }
    return waiting;
  }
}
