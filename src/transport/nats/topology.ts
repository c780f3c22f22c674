// The streams, buckets and consumers of the issue's table, created when missing and compared when
// present: an object configured differently (retention, replicas, age, history) is a problem
// named in one line, and nothing is changed. Only 2.9 features are used.
import { AckPolicy, DiscardPolicy, type JetStreamManager, RetentionPolicy, StorageType, type StreamConfig } from "@nats-io/jetstream";
import { messageOf } from "../../../machines/types.js";
import type { NatsLink } from "./connection.js";
import { isTransientNatsError } from "./errors.js";
import type { NatsNames } from "./names.js";
import { ackWaitMs } from "./timings.js";

const NS_PER_MS = 1_000_000;
const DAY_NS = 24 * 3600 * 1000 * NS_PER_MS;
export const MAX_MSG_BYTES = 8 * 1024 * 1024;

interface Wanted {
  name: string;
  what: string;
  config: Partial<StreamConfig> & { name: string };
  /** KV buckets: history kept per key */
  history?: number;
}

function wantedStreams(names: NatsNames, replicas: number): Wanted[] {
  const stream = (name: string, subject: string): Wanted => ({
    name,
    what: `stream ${name}`,
    config: {
      name,
      subjects: [subject],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      num_replicas: replicas,
      max_age: 7 * DAY_NS,
      duplicate_window: DAY_NS,
      max_msg_size: MAX_MSG_BYTES,
      discard: DiscardPolicy.New,
    },
  });
  const bucket = (bucketName: string, history: number): Wanted => ({
    name: `KV_${bucketName}`,
    what: `bucket ${bucketName}`,
    history,
    config: { name: `KV_${bucketName}`, retention: RetentionPolicy.Limits, num_replicas: replicas, max_age: 0 },
  });
  return [
    stream(names.envStream, names.envFilter),
    stream(names.jcStream, names.jcFilter),
    stream(names.rejectStream, `${names.prefix}.rejected.>`),
    bucket(names.dispatchBucket, 5),
    bucket(names.statusBucket, 1),
    bucket(names.agentsBucket, 1),
  ];
}

const isNotFound = (err: unknown): boolean => /not found/i.test(messageOf(err));

/** How an existing stream or bucket differs from what the relay expects, one line each. */
function drift(want: Wanted, have: StreamConfig): string[] {
  const problems: string[] = [];
  if (have.retention !== want.config.retention) problems.push(`${want.what} has retention ${have.retention}: expected ${String(want.config.retention)}`);
  if (have.num_replicas !== want.config.num_replicas) problems.push(`${want.what} has ${have.num_replicas} replica(s): expected ${String(want.config.num_replicas)} (nats.replicas in config.yaml)`);
  if (want.config.max_age !== undefined && have.max_age !== want.config.max_age) {
    problems.push(`${want.what} has max_age ${Math.round(have.max_age / NS_PER_MS / 1000)} s: expected ${want.config.max_age === 0 ? "none (no TTL)" : `${want.config.max_age / NS_PER_MS / 1000} s`}`);
  }
  if (want.history !== undefined && have.max_msgs_per_subject !== want.history) problems.push(`${want.what} keeps history ${have.max_msgs_per_subject}: expected ${want.history}`);
  return problems;
}

export interface TopologyReport {
  problems: string[];
  created: string[];
  /** RELAY_ENV's creation time: a change means the stream was recreated under the relay */
  envCreated: string | null;
}

/**
 * Verify the topology, creating what is missing when `create` is set (`relay run`, `relay agent`)
 * and only reporting when it is not (`relay nats check`). Nothing existing is ever modified.
 */
export async function ensureTopology(link: NatsLink, names: NatsNames, replicas: number, opts: { create: boolean; relayConsumers: boolean }): Promise<TopologyReport> {
  const { jsm } = link;
  const report: TopologyReport = { problems: [], created: [], envCreated: null };
  // First look at everything: a single object configured differently stops the start before
  // anything is created.
  const missing: Wanted[] = [];
  for (const want of wantedStreams(names, replicas)) {
    try {
      const info = await jsm.streams.info(want.name);
      report.problems.push(...drift(want, info.config));
      if (want.name === names.envStream) report.envCreated = info.created;
    } catch (err) {
      if (isTransientNatsError(err)) throw err; // the server went away: retried as unreachable
      if (!isNotFound(err)) report.problems.push(`${want.what}: ${messageOf(err)}`);
      else if (!opts.create) report.problems.push(`${want.what} is missing (relay run creates it)`);
      else missing.push(want);
    }
  }
  if (report.problems.length > 0) return report;
  for (const want of missing) {
    try {
      if (want.history !== undefined) await link.kvm.create(want.name.slice(3), { history: want.history, replicas });
      else await jsm.streams.add(want.config);
      report.created.push(want.what);
      if (want.name === names.envStream) report.envCreated = (await jsm.streams.info(want.name)).created;
    } catch (err) {
      if (isTransientNatsError(err)) throw err;
      report.problems.push(`${want.what}: cannot create it: ${messageOf(err)}`);
    }
  }
  if (opts.relayConsumers && report.problems.length === 0) {
    for (const [stream, durable, filter] of [
      [names.envStream, names.envConsumer, names.envFilter],
      [names.jcStream, names.jcConsumer, names.jcFilter],
    ] as const) {
      const problem = await ensurePullConsumer(jsm, stream, durable, filter, 1, opts.create);
      if (problem) report.problems.push(problem);
    }
  }
  return report;
}

/**
 * A durable pull consumer with explicit acks (never an ordered one: 2.9.10 refuses the 3.x ones).
 * A problem with it is returned as one line; a server that went away is thrown (transient).
 */
export async function ensurePullConsumer(jsm: JetStreamManager, stream: string, durable: string, filter: string, maxAckPending: number, create: boolean): Promise<string | null> {
  try {
    const info = await jsm.consumers.info(stream, durable);
    if (info.config.filter_subject !== filter) return `consumer ${durable} on ${stream} filters ${info.config.filter_subject ?? "nothing"}: expected ${filter}`;
    if (info.config.ack_policy !== AckPolicy.Explicit) return `consumer ${durable} on ${stream} has ack policy ${info.config.ack_policy}: expected explicit`;
    return null;
  } catch (err) {
    if (isTransientNatsError(err)) throw err;
    if (!isNotFound(err)) return `consumer ${durable} on ${stream}: ${messageOf(err)}`;
  }
  if (!create) return `consumer ${durable} on ${stream} is missing (relay run creates it)`;
  try {
    await jsm.consumers.add(stream, { durable_name: durable, ack_policy: AckPolicy.Explicit, ack_wait: ackWaitMs() * NS_PER_MS, max_ack_pending: maxAckPending, max_deliver: -1, filter_subject: filter });
    return null;
  } catch (err) {
    if (isTransientNatsError(err)) throw err;
    return `consumer ${durable} on ${stream}: cannot create it: ${messageOf(err)}`;
  }
}
