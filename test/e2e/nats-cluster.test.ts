// `replicas: 3` on a three-node NATS cluster (CONTRACT §11): the relay and an agent connect with
// the members' URLs, comma-separated, and go on while members are killed with -9 and restarted
// one at a time (a quorum of two stays); every envelope is answered once and delivered once, in
// order. Skipped, saying why, when nats-server is not installed.
import { randomBytes } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import { dropEnvelope, killAll, makeRoot, queueNames, readHistory, Scope, startAgent, waitFor } from "../support/cli.js";
import { agentNatsConfig, relayNatsConfig } from "../support/nats-roots.js";
import { type NatsCluster, natsSkipReason, startNatsCluster, waitForMetaLeader } from "../support/nats-server.js";
import { replyConsumer } from "../support/reply-consumer.js";

let cluster: NatsCluster | null = null;
if (natsSkipReason) console.warn(`skipping the NATS cluster test: ${natsSkipReason}`);

afterAll(async () => {
  await killAll();
  await cluster?.stop();
});

/** The nats: block of a test config with `replicas: 3` added. */
const withReplicas3 = (yaml: string): string => yaml.replace(/^nats:\n/m, "nats:\n  replicas: 3\n");

describe.skipIf(natsSkipReason !== null)("transport: nats, replicas: 3 on a three-node cluster", () => {
  it("loses and doubles nothing while cluster members are killed with -9 and restarted one at a time", async (ctx) => {
    cluster = await startNatsCluster();
    const scope = await Scope.create(ctx);
    let n = 0;
    scope.fake.setResponder(() => `answer number ${++n}`);
    const prefix = `cl${process.pid % 10_000}`;
    const relayRoot = await makeRoot({ config: withReplicas3(relayNatsConfig([{ id: "s1" }, { id: "s2", host: "laptop" }], prefix)) });
    const agentRoot = await makeRoot({ config: withReplicas3(agentNatsConfig("laptop", ["s2"], prefix)) });
    const vars = { NATS_URL: cluster.url, POLL_INTERVAL_MS: "100" };
    const relay = await scope.start(relayRoot, vars);
    expect(relay.alive(), relay.stderr()).toBe(true);
    const agent = await startAgent(agentRoot, vars);
    ctx.onTestFinished(async () => {
      if (agent.alive()) agent.child.kill("SIGKILL");
      await agent.exited;
    });
    expect(agent.alive(), agent.stderr()).toBe(true);
    // the streams really are replicated three times
    const info = (await (await fetch(`http://127.0.0.1:${cluster.nodes[0]?.httpPort ?? 0}/jsz?streams=true&config=true`)).json()) as { account_details?: { stream_detail?: { name: string; config?: { num_replicas?: number } }[] }[] };
    const streams = (info.account_details ?? []).flatMap((a) => a.stream_detail ?? []).filter((s) => s.name.startsWith(prefix.toUpperCase()));
    expect(streams.length).toBeGreaterThan(0);
    for (const s of streams) expect(s.config?.num_replicas, s.name).toBe(3);

    const seen: Record<string, (string | null)[]> = { s1: [], s2: [] };
    const consumers = [replyConsumer(relayRoot, "s1", seen.s1 ?? []), replyConsumer(agentRoot, "s2", seen.s2 ?? [])];
    ctx.onTestFinished(() => {
      for (const c of consumers) c.stop();
    });
    const [first, second] = cluster.nodes;
    if (!first || !second) throw new Error("no cluster");
    const sent: { id: string; session: string }[] = [];
    const TOTAL = 24;
    for (let i = 0; i < TOTAL; i++) {
      const session = i % 2 === 0 ? "s1" : "s2";
      const id = `c-${i}-${randomBytes(3).toString("hex")}`;
      await dropEnvelope(session === "s1" ? relayRoot : agentRoot, `${id}.json`, { session_id: session, id, content: `envelope ${i} for ${session}` });
      sent.push({ id, session });
      await new Promise((r) => setTimeout(r, 150));
      if (i === 6) await first.kill9();
      if (i === 12) {
        await first.restart();
        await waitForMetaLeader(cluster.nodes);
      }
      if (i === 18) await second.kill9();
    }
    await second.restart();

    const received = () => Object.values(seen).reduce((sum, list) => sum + list.length, 0);
    await waitFor(() => received() >= TOTAL, { what: `all ${TOTAL} replies (have ${received()})`, timeoutMs: 120_000 });
    await new Promise((r) => setTimeout(r, 1_500)); // a doubled delivery would show by now
    for (const session of ["s1", "s2"]) {
      expect(seen[session], `replies delivered for ${session}`).toEqual(sent.filter((s) => s.session === session).map((s) => s.id));
    }
    const turns = Object.values(await readHistory(relayRoot)).flatMap((lines) => lines.filter((l) => l.kind === "turn"));
    expect(turns).toHaveLength(TOTAL);
    expect(new Set(turns.map((t) => t.id)).size).toBe(TOTAL);
    expect(await queueNames(relayRoot)).toEqual([]);
    expect(await queueNames(agentRoot)).toEqual([]);
    expect(relay.alive(), relay.stderr().slice(-3000)).toBe(true);
    expect(agent.alive(), agent.stderr().slice(-3000)).toBe(true);
  }, 240_000);
});
