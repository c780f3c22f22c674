// Nothing lost, nothing doubled across network partitions (CONTRACT §11): the relay and the agent
// each reach nats-server through a TCP proxy (test/support/tcp-proxy.ts) that the test cuts
// (connections reset and refused) or blackholes (connections kept, nothing forwarded, the bytes
// held and released on healing, as TCP retransmits them after a short partition) while envelopes
// flow from both roots, and finally leaves the agent's connection stale (dead, no RST) for its
// pings to find. Afterwards every envelope is answered once, delivered once, in order.
// Skipped, saying why, when nats-server is not installed.
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dropEnvelope, killAll, makeRoot, queueNames, readHistory, Scope, startAgent } from "../support/cli.js";
import { agentNatsConfig, relayNatsConfig } from "../support/nats-roots.js";
import { type NatsServer, natsSkipReason, startNatsServer } from "../support/nats-server.js";
import { replyConsumer } from "../support/reply-consumer.js";
import { startTcpProxy, type TcpProxy } from "../support/tcp-proxy.js";

let server: NatsServer | null = null;
const proxies: TcpProxy[] = [];
if (natsSkipReason) console.warn(`skipping the NATS partition test: ${natsSkipReason}`);
/** Pings every 3 s (3 may be outstanding): a stale connection is found in about 10 s, not 30 s; the mechanism is the same. */
const PING_MS = "3000";

beforeAll(async () => {
  if (!natsSkipReason) server = await startNatsServer();
}, 30_000);

afterAll(async () => {
  await killAll();
  for (const p of proxies.splice(0)) await p.close();
  await server?.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(natsSkipReason !== null)("transport: nats across network partitions", () => {
  it("loses and doubles nothing when the agent's link, the relay's link and both are cut or blackholed while envelopes flow", async (ctx) => {
    if (!server) throw new Error("no nats-server");
    const scope = await Scope.create(ctx);
    let n = 0;
    scope.fake.setResponder(() => `answer number ${++n}`);
    const relayLink = await startTcpProxy({ port: server.port });
    const agentLink = await startTcpProxy({ port: server.port });
    proxies.push(relayLink, agentLink);
    const prefix = `pt${process.pid % 10_000}`;
    const relayRoot = await makeRoot({ config: relayNatsConfig([{ id: "s1" }, { id: "s2", host: "laptop" }, { id: "s3", host: "laptop", systemPrompt: "s3 has a conversation of its own" }], prefix) });
    const agentRoot = await makeRoot({ config: agentNatsConfig("laptop", ["s2", "s3"], prefix) });
    const relay = await scope.start(relayRoot, { NATS_URL: `nats://127.0.0.1:${relayLink.port}`, POLL_INTERVAL_MS: "100", RELAY_NATS_PING_MS: PING_MS });
    const agent = await startAgent(agentRoot, { NATS_URL: `nats://127.0.0.1:${agentLink.port}`, POLL_INTERVAL_MS: "100", RELAY_NATS_PING_MS: PING_MS });
    ctx.onTestFinished(async () => {
      if (agent.alive()) agent.child.kill("SIGKILL");
      await agent.exited;
    });
    expect(relay.alive(), relay.stderr()).toBe(true);
    expect(agent.alive(), agent.stderr()).toBe(true);

    const seen: Record<string, (string | null)[]> = { s1: [], s2: [], s3: [] };
    const consumers = [replyConsumer(relayRoot, "s1", seen.s1 ?? []), replyConsumer(agentRoot, "s2", seen.s2 ?? []), replyConsumer(agentRoot, "s3", seen.s3 ?? [])];
    ctx.onTestFinished(async () => {
      for (const c of consumers) c.stop();
      // RELAY_PARTITION_LOG=<file>: both logs and what each session was handed, pass or fail
      const dump = process.env.RELAY_PARTITION_LOG;
      if (dump) await writeFile(dump, `AGENT\n${agent.stderr()}\n\nRELAY\n${relay.stderr()}\n\nSEEN\n${JSON.stringify(seen)}\n`);
    });

    // Each fault lasts a few seconds while envelopes keep coming, then heals. A blackhole outlasts
    // a request's 2 s timeout (so publishes are left in doubt, and stored once the held bytes go
    // through) but not the pings' detection, so the connection is kept.
    const faults: Record<number, { what: string; start: () => void; heal: () => void; ms: number }> = {
      5: { what: "the agent's link reset", start: () => agentLink.reset(), heal: () => agentLink.heal(), ms: 4_000 },
      11: { what: "the relay's link blackholed", start: () => relayLink.blackhole(), heal: () => relayLink.heal(), ms: 5_000 },
      17: { what: "both links blackholed", start: () => (relayLink.blackhole(), agentLink.blackhole()), heal: () => (relayLink.heal(), agentLink.heal()), ms: 5_000 },
      23: { what: "the relay's link reset", start: () => relayLink.reset(), heal: () => relayLink.heal(), ms: 4_000 },
      // a stale connection that never gets an RST: only the agent's pings (3 missed) find it
      27: { what: "the agent's connection gone stale", start: () => agentLink.stale(), heal: () => undefined, ms: 3_000 },
    };
    const sent: { id: string; session: string }[] = [];
    const TOTAL = 33;
    let lastHeal = 0;
    for (let i = 0; i < TOTAL; i++) {
      const session = ["s1", "s2", "s3"][i % 3] ?? "s1";
      const id = `p-${i}-${randomBytes(3).toString("hex")}`;
      await dropEnvelope(session === "s1" ? relayRoot : agentRoot, `${id}.json`, { session_id: session, id, content: `envelope ${i} for ${session}` });
      sent.push({ id, session });
      const fault = faults[i];
      if (fault) {
        fault.start();
        // envelopes keep arriving on both roots during the fault
        for (let k = 0; k < 2 && i + 1 < TOTAL; k++) {
          await sleep(fault.ms / 3);
          i++;
          const s = ["s1", "s2", "s3"][i % 3] ?? "s1";
          const more = `p-${i}-${randomBytes(3).toString("hex")}`;
          await dropEnvelope(s === "s1" ? relayRoot : agentRoot, `${more}.json`, { session_id: s, id: more, content: `envelope ${i} for ${s}` });
          sent.push({ id: more, session: s });
        }
        await sleep(fault.ms / 3);
        fault.heal();
        lastHeal = Date.now();
      } else {
        await sleep(80);
      }
    }
    expect(relay.alive(), relay.stderr().slice(-3000)).toBe(true);
    expect(agent.alive(), agent.stderr().slice(-3000)).toBe(true);

    const received = () => Object.values(seen).reduce((sum, list) => sum + list.length, 0);
    // On progress, not a fixed time (a busy machine, e.g. CI's second run beside the soaks, can be
    // slow): it fails when no reply has come for 60 s, saying how many came and what the logs say.
    for (let had = -1, since = Date.now(); received() < sent.length; await sleep(50)) {
      if (received() !== had) [had, since] = [received(), Date.now()];
      if (Date.now() - since > 60_000) {
        throw new Error(`no reply for 60 s: ${had} of ${sent.length} (${JSON.stringify(seen)})\nrelay:\n${relay.stderr().slice(-6000)}\nagent:\n${agent.stderr().slice(-6000)}`);
      }
    }
    // How long after the last fault healed everything was through (the contract's figure is 15 s; a busy machine may take longer, so it is reported, not asserted).
    console.log(`nats partition test: all ${sent.length} replies ${((Date.now() - lastHeal) / 1000).toFixed(1)} s after the last fault healed`);
    await sleep(1_500); // a doubled delivery would show by now
    // the faults were felt: both lost their connection or timed out, and went on
    expect(agent.stderr().match(/NATS connection lost; reconnecting/g)?.length ?? 0).toBeGreaterThanOrEqual(2); // the reset and the stale connection
    expect(relay.stderr()).toMatch(/err=timeout/);
    const logs = `\nrelay:\n${relay.stderr().slice(-6000)}\nagent:\n${agent.stderr().slice(-3000)}`;
    for (const session of ["s1", "s2", "s3"]) {
      expect(seen[session], `replies delivered for ${session}${logs}`).toEqual(sent.filter((s) => s.session === session).map((s) => s.id));
    }
    const turns = Object.values(await readHistory(relayRoot)).flatMap((lines) => lines.filter((l) => l.kind === "turn"));
    expect(turns).toHaveLength(sent.length);
    expect(new Set(turns.map((t) => t.id)).size).toBe(sent.length);
    expect(await queueNames(relayRoot)).toEqual([]);
    expect(await queueNames(agentRoot)).toEqual([]);
  }, 240_000);
});
