// Idle cost of `transport: nats` (issue 16: each ≤ 0.3 % of a core).
//
// The relay: with NATS connected and state/'s watchers up, a relay at rest sleeps as the file
// transport's does (a look every REST_LOOK_INTERVAL_MS, no step per poll tick): the NATS side's
// consumers and slot subscription wake it for what they bring. Layer 2: the real composition
// root (createRelayDeps) and daemon loop on a temp root, polling every 20 ms, with the NATS parts
// replaced by one in memory whose calls are counted.
//
// The agent: its buckets are bound once (no kvm.open per status mirror or claim check), JC's
// refused answers are listed at start and then only when their subscription or the slow safety net
// says so (no kv.keys() per tick), and at rest its loop too waits REST_LOOK_INTERVAL_MS between
// ticks. Against a real nats-server (skipped, saying why, when it is not installed).
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import type { WorkItem } from "../../machines/types.js";
import { inputFile, type RelayPaths } from "../../src/config/paths.js";
import { SpendTracker } from "../../src/costs/budget.js";
import { LedgerSummary } from "../../src/costs/ledger-summary.js";
import { createRelayDeps } from "../../src/runtime/compose.js";
import { type DaemonHandle, startDaemon } from "../../src/runtime/daemon.js";
import type { JcSource, WakeReason } from "../../src/runtime/deps.js";
import { silentLogger } from "../../src/runtime/log.js";
import { REST_LOOK_INTERVAL_MS } from "../../src/runtime/poll-look.js";
import { NatsAgent } from "../../src/transport/nats/agent.js";
import { connectNats, type NatsLink } from "../../src/transport/nats/connection.js";
import { natsNames } from "../../src/transport/nats/names.js";
import type { NatsRelayParts } from "../../src/transport/nats/start.js";
import { ensureTopology } from "../../src/transport/nats/topology.js";
import { jcRefusalKey } from "../../src/transport/nats/relay-side.js";
import { fakeConfig, session } from "../support/fake-deps.js";
import { linkWithBuckets, natsTempRoot } from "../support/nats-link.js";
import { type NatsServer, natsSkipReason, startNatsServer } from "../support/nats-server.js";

const dirs: string[] = [];
const running: DaemonHandle[] = [];
const servers: NatsServer[] = [];
afterEach(async () => {
  for (const handle of running.splice(0)) {
    handle.stop();
    await Promise.race([handle.done, new Promise((r) => setTimeout(r, 5_000))]);
  }
});
afterAll(async () => {
  for (const s of servers.splice(0)) await s.stop();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
const until = (assertion: () => void, timeout = 20_000) => vi.waitFor(assertion, { timeout, interval: 10 });

const tempRoot = (): Promise<RelayPaths> => natsTempRoot("relay-nats-idle-", dirs);

/**
 * The relay's NATS side in memory: a delivery held until offered, every look at it counted. With
 * `record`, the replies delivered, the deliveries taken (each taking 100 ms) and finished are told
 * in order.
 */
function fakeNatsParts(record?: (what: string) => void): { parts: NatsRelayParts; hold(item: WorkItem): void; looks(): number; offered: WorkItem[]; watching: { on: boolean } } {
  let wake: (reason: WakeReason) => void = () => undefined;
  let held: WorkItem | null = null;
  let looks = 0;
  const offered: WorkItem[] = [];
  const watching = { on: true };
  const parts: NatsRelayParts = {
    inbox: {
      rescan: () => undefined,
      async offers(ready, conversationOf) {
        looks += 1;
        if (!held) return [];
        const conversation = conversationOf(held.session);
        if (conversation === undefined || !ready.has(conversation)) return [];
        const item = held;
        held = null;
        offered.push(item);
        return [item];
      },
      taken: async (receipts) => {
        if (!record) return;
        record(`taken ${receipts.join(" ")}`);
        await pause(100);
      },
      finish: async (receipt) => record?.(`finished ${receipt}`),
      reject: async () => undefined,
    },
    outbox: {
      deliver: async (reply) => {
        record?.(`delivered ${reply.inReplyTo}`);
        return "delivered";
      },
      acknowledged: async () => true,
    },
    jc: (local: JcSource): JcSource => ({
      async take() {
        looks += 1;
        return local.take();
      },
      consume: (id) => local.consume(id),
      refuse: (id, reason, raw) => local.refuse(id, reason, raw),
    }),
    onStatus: () => undefined,
    start(onWake) {
      wake = onWake;
    },
    watching: () => watching.on,
    stop: async () => undefined,
  };
  return {
    parts,
    hold(item) {
      held = item;
      wake("other"); // as the intake's consumer does when a delivery arrives
    },
    looks: () => looks,
    offered,
    watching,
  };
}

async function relayWithNats(paths: RelayPaths, nats: NatsRelayParts): Promise<DaemonHandle> {
  const config = fakeConfig({ sessions: [session("s1")], pollIntervalMs: 20 });
  const deps = await createRelayDeps({
    paths,
    config: () => config,
    log: silentLogger(),
    notifier: { notify: () => undefined, flush: async () => undefined },
    client: null,
    spend: new SpendTracker(Date.now),
    ledger: await LedgerSummary.load(paths.root),
    nats,
  });
  const handle = await startDaemon(deps, { shutdownGraceMs: 1_000 });
  running.push(handle);
  return handle;
}

describe("an idle relay with transport: nats", () => {
  it("at rest with NATS watching, a poll tick runs no step: no look at the intake or at JC's answers", async () => {
    const paths = await tempRoot();
    const nats = fakeNatsParts();
    const handle = await relayWithNats(paths, nats.parts);
    await until(() => expect(handle.status()?.state).toBe("idle"));
    await pause(200); // the steps the start itself made
    const before = nats.looks();
    await pause(600); // 30 poll intervals of 20 ms
    expect(REST_LOOK_INTERVAL_MS).toBeGreaterThan(600);
    expect(nats.looks()).toBe(before);

    // A delivery the intake holds wakes the loop itself, at rest or not.
    nats.hold({ id: "e1", source: "envelope", session: "s1", text: "hello", inReplyTo: "e1", receipt: "nats:1:ack" });
    await until(() => expect(nats.offered.map((i) => i.id)).toEqual(["e1"]));
  });

  it("a reply made while its envelope was being taken is delivered before the envelope is finished (no durable write and status on its path)", async () => {
    const paths = await tempRoot();
    const order: string[] = [];
    const nats = fakeNatsParts((what) => order.push(what));
    const handle = await relayWithNats(paths, nats.parts);
    await until(() => expect(handle.status()?.state).toBe("idle"));
    // --dry-run answers at once: while the taking step's ack waits, the reply is made
    nats.hold({ id: "e1", source: "envelope", session: "s1", text: "hello", inReplyTo: "e1", receipt: "nats:1:ack" });
    await until(() => expect(order).toContain("finished nats:1:ack"));
    expect(order.filter((w) => !w.startsWith("finished")).slice(0, 2)).toEqual(["taken nats:1:ack", "delivered e1"]);
    expect(order.indexOf("delivered e1")).toBeLessThan(order.indexOf("finished nats:1:ack"));
  });

  it("with NATS not watching (not connected yet), every poll tick is a full step", async () => {
    const paths = await tempRoot();
    const nats = fakeNatsParts();
    nats.watching.on = false;
    const handle = await relayWithNats(paths, nats.parts);
    await until(() => expect(handle.status()?.state).toBe("idle"));
    const before = nats.looks();
    await until(() => expect(nats.looks() - before).toBeGreaterThanOrEqual(6));
  });
});

if (natsSkipReason) console.warn(`skipping the NATS agent's idle test: ${natsSkipReason}`);

/** The link, with every bucket bound and every key listing counted. */
function countedLink(link: NatsLink): { link: NatsLink; opens: () => number; listings: () => number } {
  let opens = 0;
  let listings = 0;
  const counted = linkWithBuckets(link, (_name, kv, view) => {
    opens += 1;
    view.keys = (k) => {
      listings += 1;
      return kv.keys(k);
    };
    return view;
  });
  return { link: counted, opens: () => opens, listings: () => listings };
}

/** A nats-server of its own (stopped after the file), a connection under `prefix`, and the relay's topology on it. */
async function natsWorld(prefix: string) {
  const server = await startNatsServer();
  servers.push(server);
  const real = await connectNats({ url: server.url, prefix, replicas: 1 }, `${prefix} test`, silentLogger());
  const names = natsNames(prefix);
  expect((await ensureTopology(real, names, 1, { create: true, relayConsumers: true })).problems).toEqual([]);
  return { real, names };
}

describe.skipIf(natsSkipReason !== null)("an idle `relay agent`", () => {
  it("binds its buckets once, lists JC's refusals only when told, and rests between ticks", async () => {
    const { real, names } = await natsWorld("idle");
    const { link, opens, listings } = countedLink(real);
    const paths = await tempRoot();
    let clockReads = 0;
    const agent = new NatsAgent({
      paths,
      link,
      names,
      name: "laptop",
      sessions: () => ["s3"],
      log: silentLogger(),
      pollMs: 20,
      takeOver: false,
      builtIn: false,
      now: () => {
        clockReads += 1; // each step reads the clock once at its start
        return Date.now();
      },
    });
    try {
      await agent.start();
      await until(() => expect(listings()).toBe(1)); // the listing at start
      await pause(300);
      const opened = opens();
      const reads = clockReads;
      await pause(800); // 40 poll intervals of 20 ms
      expect(opens()).toBe(opened);
      expect(listings()).toBe(1);
      expect(clockReads - reads).toBeLessThanOrEqual(2); // not a step per tick (/tmp is a local file system)

      // A refusal the relay writes for this agent wakes it through its key's subscription.
      const agentsKv = await real.kvm.open(names.agentsBucket);
      await agentsKv.put(jcRefusalKey("laptop", "c1"), JSON.stringify({ reason: "@s9 is not a session in config.yaml", raw: "@s9 hi", at: new Date().toISOString() }));
      await until(() => expect(listings()).toBe(2));
      await until(async () => expect((await agentsKv.get(jcRefusalKey("laptop", "c1")))?.operation).toBe("DEL"));
      await pause(200);
      expect(listings()).toBe(2); // the agent's own delete of the refusal lists nothing again
      expect(opens()).toBe(opened);

      // An envelope renamed into queue/ wakes it through the watcher and is published.
      await writeFile(join(paths.queue, "e1.json"), JSON.stringify({ session_id: "s3", content: "hello" }));
      await until(async () => expect((await real.jsm.streams.info(names.envStream)).state.messages).toBe(1));
    } finally {
      await agent.stop();
      await real.nc.close();
    }
  }, 60_000);
});

describe.skipIf(natsSkipReason !== null)("a resting agent and the relay's reply", () => {
  it("reads the slot again when the subscription brought the write before the stream had stored it", async () => {
    const { real, names } = await natsWorld("race");
    // The slot's reads answer "nothing there" while `stale` > 0: the race, made certain.
    let stale = 0;
    const link = linkWithBuckets(real, (name, kv, view) => {
      if (name !== names.dispatchBucket) return kv;
      view.get = async (k, opts) => {
        if (stale > 0) {
          stale -= 1;
          return null;
        }
        return kv.get(k, opts);
      };
      return view;
    });
    const paths = await tempRoot();
    const frozen = Date.now(); // no slot poll after the first step: only the re-read can find the reply
    const agent = new NatsAgent({ paths, link, names, name: "laptop", sessions: () => ["s3"], log: silentLogger(), pollMs: 20, takeOver: false, builtIn: false, now: () => frozen });
    try {
      await agent.start();
      await pause(300);
      stale = 1;
      const slots = await real.kvm.open(names.dispatchBucket);
      await slots.put("s3", JSON.stringify({ reply_id: "r1", in_reply_to: "e1", source: "envelope", at: new Date(frozen).toISOString(), text: "the reply" }));
      await until(async () => expect(await readFile(inputFile(paths, "s3"), "utf8")).toBe("the reply"));
      expect(stale).toBe(0);
    } finally {
      await agent.stop();
      await real.nc.close();
    }
  }, 60_000);
});
