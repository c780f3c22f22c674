// Bringing `transport: nats` up for `relay run` and `relay agent`: connect, verify (or create) the
// topology, and start the parts. A root that has verified its topology once (state/nats.json)
// starts even when the server is unreachable and connects in the background with back-off; the
// first start on a root needs the server, and says so in one line.
import { join } from "node:path";
import * as z from "zod/mini";
import { messageOf } from "../../../machines/types.js";
import type { NatsSettings } from "../../config/config.js";
import type { RelayPaths } from "../../config/paths.js";
import { crashPoint } from "../../runtime/crash-points.js";
import type { JcSource, JcTaken, WakeReason } from "../../runtime/deps.js";
import type { Logger } from "../../runtime/log.js";
import { readJsonFile, writeJsonAtomic } from "../../store/files.js";
import type { DeliverOutcome, Inbox, Outbox } from "../port.js";
import { NatsAgent } from "./agent.js";
import { connectNats, type NatsLink, shownUrl } from "./connection.js";
import { NatsSetupError } from "./errors.js";
import { natsNames, type NatsNames } from "./names.js";
import { combinedJcSource, NatsInbox, NatsJcSource, NatsOutbox, StatusPublisher, watchSlots } from "./relay-side.js";
import { ensureTopology } from "./topology.js";

const markerSchema = z.object({ url: z.string(), prefix: z.string(), envCreated: z.nullable(z.string()), verifiedAt: z.string() });

/**
 * state/nats.json: this root verified its server's topology once (so later starts need not reach
 * the server), and RELAY_ENV's creation time then (a change means the stream was recreated).
 */
export async function writeVerifiedMarker(paths: RelayPaths, settings: NatsSettings, envCreated: string | null): Promise<void> {
  await writeJsonAtomic(join(paths.state, "nats.json"), { url: shownUrl(settings.url), prefix: settings.prefix, envCreated, verifiedAt: new Date().toISOString() });
}

/**
 * Connect and verify the topology. Throws NatsSetupError (exit 1, one line) on a set-up fault, or
 * on an unreachable server at a root's first start; otherwise an unreachable server is retried in
 * the background and `onLink` runs once connected.
 */
export async function bringUp(opts: {
  paths: RelayPaths;
  settings: NatsSettings;
  clientName: string;
  log: Logger;
  relay: boolean;
  onLink: (link: NatsLink, names: NatsNames) => Promise<void>;
}): Promise<{ stop(): Promise<void>; connected(): boolean }> {
  const { paths, settings, log } = opts;
  const names = natsNames(settings.prefix);
  const markerFile = join(paths.state, "nats.json");
  const marker = await readJsonFile(markerFile, markerSchema);
  let link: NatsLink | null = null;
  let stopped = false;

  const attempt = async (): Promise<NatsLink> => {
    const l = await connectNats(settings, opts.clientName, log);
    try {
      const report = await ensureTopology(l, names, settings.replicas, { create: true, relayConsumers: opts.relay });
      if (report.problems.length > 0) throw new NatsSetupError(report.problems[0] ?? "the NATS topology is not as expected");
      if (opts.relay && marker.ok && marker.value.prefix === settings.prefix && marker.value.envCreated !== null && report.envCreated !== null && marker.value.envCreated !== report.envCreated) {
        throw new NatsSetupError(`stream ${names.envStream} was recreated (created ${report.envCreated}, was ${marker.value.envCreated}): envelopes may have been lost on the server; check it, then remove state/nats.json to accept the new stream`);
      }
      for (const what of report.created) log.info({ object: what }, "NATS object created");
      await writeVerifiedMarker(paths, settings, report.envCreated);
      await opts.onLink(l, names);
      return l;
    } catch (err) {
      await l.nc.close().catch(() => undefined);
      throw err;
    }
  };

  try {
    link = await attempt();
  } catch (err) {
    if (err instanceof NatsSetupError) throw err;
    if (!marker.ok) throw new NatsSetupError(`${messageOf(err)}; the first start on a root with transport: nats must verify its streams and buckets (is nats-server running? see relay nats check)`);
    log.warn({ err: messageOf(err) }, "NATS unreachable; starting anyway and retrying");
    void (async () => {
      for (let delay = 1_000; !stopped && link === null; delay = Math.min(delay * 2, 30_000)) {
        await new Promise((r) => setTimeout(r, delay));
        if (stopped) return;
        try {
          link = await attempt();
          log.info({}, "NATS connected");
        } catch (e) {
          if (e instanceof NatsSetupError) log.error({ err: e.message }, "NATS set-up problem; retrying");
          else log.warn({ err: messageOf(e) }, "NATS still unreachable");
        }
      }
    })();
  }
  return {
    connected: () => link !== null && !link.nc.isClosed(),
    async stop() {
      stopped = true;
      const l = link;
      link = null;
      if (l) await l.nc.drain().catch(() => l.nc.close());
    },
  };
}

/** What `relay run` plugs into its deps instead of the file transport (see createRelayDeps). */
export interface NatsRelayParts {
  inbox: Inbox & { rescan(): void };
  outbox: Outbox;
  jc(local: JcSource): JcSource;
  onStatus(status: unknown): void;
  start(wake: (reason: WakeReason) => void): void;
  /** connected and started: a held delivery, a JC answer and a slot change each wake the loop */
  watching(): boolean;
  stop(): Promise<void>;
}

const notConnected = (): Error => new Error("NATS is not connected yet");

/**
 * The relay's NATS side plus its built-in agent for this root's own sessions (those without
 * `host:`), so local sessions take the same path as remote ones.
 */
export async function startRelaySide(opts: {
  paths: RelayPaths;
  settings: NatsSettings;
  log: Logger;
  registered: () => ReadonlySet<string>;
  /** this root's own sessions (no `host:`), as config.yaml says now */
  localSessions: () => readonly string[];
  agentName: string;
  pollMs: number;
  parseJc: (id: string, raw: string, registered: ReadonlySet<string>) => JcTaken;
  alarm: (message: string) => void;
}): Promise<NatsRelayParts> {
  const { log } = opts;
  let wake: (reason: WakeReason) => void = () => undefined;
  let parts: { inbox: NatsInbox; outbox: NatsOutbox; jc: NatsJcSource; status: StatusPublisher; agent: NatsAgent; unsub(): void } | null = null;
  let started = false;
  const begin = () => {
    if (!parts || !started) return;
    parts.inbox.start();
    parts.jc.start();
    parts.status.start();
  };
  const link = await bringUp({
    paths: opts.paths,
    settings: opts.settings,
    clientName: `relay ${opts.agentName}`,
    log,
    relay: true,
    onLink: async (l, names) => {
      const inbox = new NatsInbox(l, names, opts.registered, log, () => wake("other"), opts.alarm, crashPoint);
      const outbox = new NatsOutbox(l, names, opts.paths, crashPoint);
      await outbox.load();
      const jc = new NatsJcSource(l, names, opts.registered, opts.parseJc, log, () => wake("jc"), opts.alarm);
      const status = new StatusPublisher(l, names, log);
      const agent = new NatsAgent({ paths: opts.paths, link: l, names, name: opts.agentName, sessions: opts.localSessions, log: log.child({ agent: opts.agentName }), pollMs: opts.pollMs, takeOver: false, builtIn: true, crashPoint });
      await agent.start();
      const sub = watchSlots(l, names, (session) => {
        outbox.slotDeleted(session);
        wake("other");
      });
      // a reply or an acknowledgement that failed while the server was away is retried at once
      const unlisten = l.onReconnect(() => wake("other"));
      parts = {
        inbox,
        outbox,
        jc,
        status,
        agent,
        unsub: () => {
          sub.unsubscribe();
          unlisten();
          outbox.stop();
        },
      };
      begin();
    },
  });
  return {
    inbox: {
      rescan: () => undefined,
      offers: async (ready, conversationOf) => (parts ? parts.inbox.offers(ready, conversationOf) : []),
      taken: async (receipts) => parts?.inbox.taken(receipts),
      finish: async (receipt) => {
        if (!parts) throw notConnected();
        await parts.inbox.finish(receipt);
      },
      reject: async (receipt, reason, at) => {
        if (!parts) throw notConnected();
        await parts.inbox.reject(receipt, reason, at);
      },
    },
    outbox: {
      deliver: async (reply): Promise<DeliverOutcome> => {
        if (!parts) throw notConnected();
        return parts.outbox.deliver(reply);
      },
      acknowledged: async (session) => {
        if (!parts) throw notConnected();
        return parts.outbox.acknowledged(session);
      },
    },
    jc: (local) => {
      const remote: JcSource = {
        take: async () => (parts ? parts.jc.take() : null),
        consume: async (id) => parts?.jc.consume(id),
        refuse: async (id, reason, raw) => parts?.jc.refuse(id, reason, raw),
      };
      return combinedJcSource(local, remote);
    },
    onStatus: (status) => parts?.status.publish(status),
    start(onWake) {
      wake = onWake;
      started = true;
      begin();
    },
    watching: () => parts !== null && started && link.connected(),
    async stop() {
      if (parts) {
        parts.inbox.stop();
        parts.jc.stop();
        parts.status.stop();
        parts.unsub();
        await parts.agent.stop();
      }
      await link.stop();
    },
  };
}

/** One connection to look at the topology (`relay nats check`) or create what is missing (`relay nats init`), then close. */
export async function topologyOnce(
  settings: NatsSettings,
  clientName: string,
  log: Logger,
  create: boolean,
): Promise<{ ok: true; server: NatsLink["server"]; report: Awaited<ReturnType<typeof ensureTopology>> } | { ok: false; error: string }> {
  try {
    const link = await connectNats(settings, clientName, log);
    try {
      return { ok: true, server: link.server, report: await ensureTopology(link, natsNames(settings.prefix), settings.replicas, { create, relayConsumers: true }) };
    } finally {
      await link.nc.close();
    }
  } catch (err) {
    return { ok: false, error: messageOf(err) };
  }
}
