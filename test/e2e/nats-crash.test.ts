// Nothing lost, nothing doubled across hosts (CONTRACT §11): kill -9 of the relay, of an agent and
// of nats-server while envelopes flow from two roots, then everything is answered once and
// delivered once. Skipped, saying why, when nats-server is not installed.
import { randomBytes } from "node:crypto";
import { readFile, unlink } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type Daemon,
  dropEnvelope,
  inputPath,
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

/** A Claude Code session stand-in: takes each reply (records what it answers) and deletes input.txt. */
function consumer(root: string, session: string, seen: (string | null)[]): { stop(): void } {
  let stopped = false;
  void (async () => {
    while (!stopped) {
      try {
        const text = await readFile(inputPath(root, session), "utf8");
        const meta = JSON.parse(await readFile(join(root, "dispatch", session, "input.json"), "utf8")) as { in_reply_to: string | null };
        expect(text).toMatch(/^answer number \d+$/);
        seen.push(meta.in_reply_to);
        await unlink(inputPath(root, session));
      } catch {
        // no reply yet
      }
      await new Promise((r) => setTimeout(r, 30));
    }
  })();
  return {
    stop: () => {
      stopped = true;
    },
  };
}

describe.skipIf(natsSkipReason !== null)("transport: nats under kill -9", () => {
  it("loses and doubles nothing when the relay, the agent and nats-server are killed with -9 while envelopes flow", async (ctx) => {
    const nats = server;
    if (!nats) throw new Error("no nats-server");
    const scope = await Scope.create(ctx);
    let n = 0;
    scope.fake.setResponder(() => `answer number ${++n}`);
    const vars = { NATS_URL: nats.url, POLL_INTERVAL_MS: "100" };
    const relayRoot = await makeRoot({ config: relayConfig });
    const agentRoot = await makeRoot({ config: agentConfig });
    let relay: Daemon = await scope.start(relayRoot, vars);
    let agent: Daemon = await startAgent(agentRoot, vars);
    ctx.onTestFinished(async () => {
      agent.child.kill("SIGKILL");
      await agent.exited;
    });
    const seen: Record<string, (string | null)[]> = { s1: [], s2: [], s3: [] };
    const consumers = [consumer(relayRoot, "s1", seen.s1 ?? []), consumer(agentRoot, "s2", seen.s2 ?? []), consumer(agentRoot, "s3", seen.s3 ?? [])];
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
