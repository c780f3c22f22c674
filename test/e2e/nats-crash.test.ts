// Nothing lost, nothing doubled across hosts (CONTRACT §11): kill -9 of the relay, of an agent and
// of nats-server while envelopes flow from two roots, then everything is answered once and
// delivered once. Skipped, saying why, when nats-server is not installed.
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, type TestContext } from "vitest";
import {
  type Daemon,
  dropEnvelope,
  killAll,
  makeRoot,
  queueNames,
  readHistory,
  Scope,
  startAgent,
  waitFor,
} from "../support/cli.js";
import { agentNatsConfig, relayNatsConfig } from "../support/nats-roots.js";
import { type NatsServer, natsSkipReason, startNatsServer } from "../support/nats-server.js";
import { replyConsumer } from "../support/reply-consumer.js";

let server: NatsServer | null = null;
if (natsSkipReason) console.warn(`skipping the NATS crash test: ${natsSkipReason}`);

beforeAll(async () => {
  if (!natsSkipReason) server = await startNatsServer();
}, 30_000);

afterAll(async () => {
  await killAll();
  await server?.stop();
});

const relayConfig = relayNatsConfig([{ id: "s1" }, { id: "s2", host: "laptop" }, { id: "s3", host: "laptop", systemPrompt: "s3 has a conversation of its own" }]);
const agentConfig = agentNatsConfig("laptop", ["s2", "s3"]);

/** The shared server, a scope whose every call answers differently (a repeated call shows), and the agents' variables. */
async function setUp(ctx: TestContext): Promise<{ nats: NatsServer; scope: Scope; vars: Record<string, string> }> {
  if (!server) throw new Error("no nats-server");
  const scope = await Scope.create(ctx);
  let n = 0;
  scope.fake.setResponder(() => `answer number ${++n}`);
  // A delivery left unacked by a killed relay comes again after 5 s, not 10 s (RELAY_NATS_ACK_WAIT_MS: the mechanism is the same).
  return { nats: server, scope, vars: { NATS_URL: server.url, POLL_INTERVAL_MS: "100", RELAY_NATS_ACK_WAIT_MS: "5000" } };
}

const RELAY_POINTS = ["nats-before-ack", "nats-slot-staged", "nats-slot-published"] as const;
const AGENT_POINTS = ["agent-after-publish", "agent-after-meta", "agent-after-rename", "agent-after-ack", "agent-jc-published"] as const;
let prefixes = 0;

describe.skipIf(natsSkipReason !== null)("transport: nats, kill -9 at each crash point, then restart", () => {
  it.for([...RELAY_POINTS, ...AGENT_POINTS])("delivers each reply once after a kill at %s", { timeout: 180_000 }, async (point, ctx) => {
    const { scope, vars } = await setUp(ctx);
    const prefix = `cp${process.pid % 10_000}x${++prefixes}`;
    const relayRoot = await makeRoot({ config: relayNatsConfig([{ id: "s1" }, { id: "s2", host: "laptop" }], prefix) });
    const agentRoot = await makeRoot({ config: agentNatsConfig("laptop", ["s2"], prefix) });
    const inRelay = (RELAY_POINTS as readonly string[]).includes(point);
    let relay: Daemon = await scope.start(relayRoot, { ...vars, ...(inRelay ? { RELAY_CRASH_AT: point } : {}) });
    let agent: Daemon = await startAgent(agentRoot, { ...vars, ...(inRelay ? {} : { RELAY_CRASH_AT: point }) });
    ctx.onTestFinished(async () => {
      agent.child.kill("SIGKILL");
      await agent.exited;
    });
    const seen: (string | null)[] = [];
    const cc = replyConsumer(agentRoot, "s2", seen);
    ctx.onTestFinished(async () => cc.stop());

    if (point === "agent-jc-published") await writeFile(join(agentRoot, "state", "jc_input.txt"), "@s2: JC's own words");
    else await dropEnvelope(agentRoot, "first.json", { session_id: "s2", id: "m-1", content: "the first" });
    const crashed = inRelay ? relay : agent;
    // generous: on a busy machine the envelope's turn may take a while
    const exit = await Promise.race([crashed.exited, new Promise<null>((r) => setTimeout(() => r(null), 60_000))]);
    if (exit === null) throw new Error(`no kill at ${point}\nrelay: ${relay.stderr().slice(-2000)}\nagent: ${agent.stderr().slice(-2000)}`);
    expect(exit.signal, `the kill at ${point}`).toBe("SIGKILL");
    if (inRelay) relay = await scope.start(relayRoot, vars);
    else agent = await startAgent(agentRoot, vars);

    await dropEnvelope(agentRoot, "second.json", { session_id: "s2", id: "m-2", content: "the second" });
    const first = point === "agent-jc-published" ? null : "m-1";
    // generous: under load the restarted process, the redelivery after the ack wait and both turns take a while
    await waitFor(() => seen.length >= 2, { what: `both replies (have ${JSON.stringify(seen)})`, timeoutMs: 90_000 });
    await new Promise((r) => setTimeout(r, 1_000)); // a doubled delivery would show by now
    expect(seen).toEqual([first, "m-2"]);
    const turns = Object.values(await readHistory(relayRoot)).flatMap((lines) => lines.filter((l) => l.kind === "turn"));
    expect(turns.map((t) => t.session)).toEqual(point === "agent-jc-published" ? ["s2"] : ["s2", "s2"]);
    expect(await queueNames(agentRoot)).toEqual([]);
    expect(relay.alive() && agent.alive()).toBe(true);
  });
});

describe.skipIf(natsSkipReason !== null)("transport: nats under kill -9", () => {
  it("loses and doubles nothing when the relay, the agent and nats-server are killed with -9 while envelopes flow", async (ctx) => {
    const { nats, scope, vars } = await setUp(ctx);
    const relayRoot = await makeRoot({ config: relayConfig });
    const agentRoot = await makeRoot({ config: agentConfig });
    let relay: Daemon = await scope.start(relayRoot, vars);
    let agent: Daemon = await startAgent(agentRoot, vars);
    ctx.onTestFinished(async () => {
      agent.child.kill("SIGKILL");
      await agent.exited;
    });
    const seen: Record<string, (string | null)[]> = { s1: [], s2: [], s3: [] };
    const consumers = [replyConsumer(relayRoot, "s1", seen.s1 ?? []), replyConsumer(agentRoot, "s2", seen.s2 ?? []), replyConsumer(agentRoot, "s3", seen.s3 ?? [])];
    ctx.onTestFinished(async () => {
      for (const c of consumers) c.stop();
    });

    const kill = async (d: Daemon) => {
      d.child.kill("SIGKILL");
      await d.exited;
    };
    const sent: { id: string; session: string }[] = [];
    const TOTAL = 30;
    for (let i = 0; i < TOTAL; i++) {
      const session = ["s1", "s2", "s3"][i % 3] ?? "s1";
      const id = `e-${i}-${randomBytes(3).toString("hex")}`;
      await dropEnvelope(session === "s1" ? relayRoot : agentRoot, `${id}.json`, { session_id: session, id, content: `envelope ${i} for ${session}` });
      sent.push({ id, session });
      await new Promise((r) => setTimeout(r, 60));
      if (i === 7) {
        await kill(relay);
        relay = await scope.start(relayRoot, vars);
      }
      if (i === 13) {
        await kill(agent);
        agent = await startAgent(agentRoot, vars);
      }
      if (i === 19) await nats.restart(); // kill -9, then the same ports and store
      if (i === 25) {
        await Promise.all([kill(relay), kill(agent)]);
        await nats.restart();
        relay = await scope.start(relayRoot, vars);
        agent = await startAgent(agentRoot, vars);
      }
    }
    expect(relay.alive(), relay.stderr()).toBe(true);
    expect(agent.alive(), agent.stderr()).toBe(true);

    const received = () => Object.values(seen).reduce((sum, list) => sum + list.length, 0);
    await waitFor(() => received() >= TOTAL, { what: `all ${TOTAL} replies (have ${received()})`, timeoutMs: 90_000 });
    await new Promise((r) => setTimeout(r, 1_500)); // a doubled delivery would show by now
    for (const session of ["s1", "s2", "s3"]) {
      const expected = sent.filter((s) => s.session === session).map((s) => s.id);
      // Each envelope answered once, delivered once, and in the order its host took them.
      expect(seen[session], `replies delivered for ${session}`).toEqual(expected);
    }
    const turns = Object.values(await readHistory(relayRoot)).flatMap((lines) => lines.filter((l) => l.kind === "turn"));
    expect(turns).toHaveLength(TOTAL);
    expect(new Set(turns.map((t) => t.id)).size).toBe(TOTAL);
    expect(await queueNames(relayRoot)).toEqual([]);
    expect(await queueNames(agentRoot)).toEqual([]);
  }, 150_000);
});
