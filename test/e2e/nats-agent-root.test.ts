// An agent's root (transport: nats, CONTRACT §11) as the Claude Code side uses it: `relay send`,
// `relay hook install`, the Stop and SessionStart hooks and `relay status` work there unchanged,
// reading the relay's status from the mirror the agent keeps in state/remote_status.json. When
// that mirror goes stale (the relay is gone), the Stop hook queues the message, says the relay is
// unreachable and lets the agent stop; the reply reaches the session once the relay is back.
// Real CLI, real nats-server, the Messages API stand-in. Skipped, saying why, without nats-server.
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dropEnvelope, inputPath, killAll, makeRoot, queueNames, runCli, Scope, startAgent, waitFor, waitForFile } from "../support/cli.js";
import { agentNatsConfig, relayNatsConfig } from "../support/nats-roots.js";
import { type NatsServer, natsSkipReason, startNatsServer } from "../support/nats-server.js";

let server: NatsServer | null = null;
if (natsSkipReason) console.warn(`skipping the NATS agent-root tests: ${natsSkipReason}`);

beforeAll(async () => {
  if (natsSkipReason) return;
  server = await startNatsServer();
}, 30_000);

afterAll(async () => {
  await killAll();
  await server?.stop();
});

const natsVars = (): Record<string, string> => {
  if (!server) throw new Error("no nats-server");
  // an agent re-reads config.yaml's sessions and checks its claims every second, not every 10 s
  return { NATS_URL: server.url, POLL_INTERVAL_MS: "100", RELAY_NATS_HEARTBEAT_MS: "1000" };
};

const CC_SESSION = "4f1d2c3b-aaaa-4bbb-8ccc-0123456789ab";
/** The Stop hook's standard input, as Claude Code writes it (2.1.47+ carries the last message). */
const stopInput = (message: string) =>
  JSON.stringify({ session_id: CC_SESSION, transcript_path: "/nonexistent/transcript.jsonl", cwd: "/nonexistent", hook_event_name: "Stop", stop_hook_active: false, last_assistant_message: message });
const startInput = () => JSON.stringify({ session_id: CC_SESSION, transcript_path: "/nonexistent/transcript.jsonl", cwd: "/nonexistent", hook_event_name: "SessionStart", source: "startup" });

interface AgentRootStatus {
  state: string;
  daemon: { running: boolean; pid: number | null };
  transport?: string;
  sessions: Record<string, unknown>;
  conversations: Record<string, { turns: number }>;
  relay?: { agent: string; reachable: boolean; ageSeconds: number | null };
}

async function statusOf(root: string): Promise<AgentRootStatus> {
  const r = await runCli(["status", "--root", root, "--json"], { env: natsVars() });
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as AgentRootStatus;
}

describe.skipIf(natsSkipReason !== null)("an agent's root: the Claude Code side unchanged", () => {
  it("send, hook install, the hooks and status work there; with the relay gone the Stop hook queues the message and lets the agent stop, and the reply comes at the next session start", async (ctx) => {
    const scope = await Scope.create(ctx);
    let n = 0;
    scope.fake.setResponder(() => `answer number ${++n}`);
    const prefix = `ar${process.pid % 10_000}`;
    const relayRoot = await makeRoot({ config: relayNatsConfig([{ id: "s1" }, { id: "s2", host: "laptop" }], prefix) });
    const agentRoot = await makeRoot({ config: agentNatsConfig("laptop", ["s2"], prefix) });
    let relay = await scope.start(relayRoot, natsVars());
    const agent = await startAgent(agentRoot, natsVars());
    ctx.onTestFinished(async () => {
      if (agent.alive()) agent.child.kill("SIGKILL");
      await agent.exited;
    });
    expect(agent.alive(), agent.stderr()).toBe(true);

    // relay status there: the local agent as the daemon, the relay's status mirrored, this root's sessions only
    const first = await waitFor(async () => {
      const s = await statusOf(agentRoot);
      return s.relay?.reachable ? s : null;
    }, { what: "the relay's status mirrored on the agent's root", timeoutMs: 30_000 });
    expect(first).toMatchObject({ daemon: { running: true, pid: agent.pid }, transport: "nats", relay: { agent: "laptop", reachable: true } });
    expect(Object.keys(first.sessions)).toEqual(["s2"]);
    expect(first.conversations.shared).toBeDefined(); // the relay's conversations, not this root's (empty) files
    const text = await runCli(["status", "--root", agentRoot], { env: natsVars() });
    expect(text.stdout).toMatch(/relay agent laptop running/);
    expect(text.stdout).toMatch(/relay: +reachable over NATS/);

    // relay send --wait and hook install, as on the relay's root
    const sent = await runCli(["send", "--root", agentRoot, "--session", "s2", "--wait", "30", "a question from the laptop"], { env: natsVars(), timeoutMs: 40_000 });
    expect(sent.code, sent.stderr).toBe(0);
    expect(sent.stdout.trim()).toMatch(/^answer number \d+$/);
    const project = await mkdtemp(join(tmpdir(), "relay-agent-project-"));
    const installed = await runCli(["hook", "install", "--root", agentRoot, "--session", "s2", "--project", project], { env: natsVars() });
    expect(installed.code, installed.stderr).toBe(0);
    expect(await readFile(join(project, ".claude", "settings.local.json"), "utf8")).toContain("claude-stop");

    // the Stop hook: relays the agent's message and hands the reply over
    const stop = await runCli(["hook", "claude-stop", "--root", agentRoot, "--session", "s2"], { input: stopInput("turn one is done"), timeoutMs: 40_000 });
    expect(stop.code, stop.stderr).toBe(0);
    expect(stop.stdout).toMatch(/answer number \d+/);

    // The relay dies; once the mirror is over 30 s old (made so here: the agent rewrites it only when the relay's heartbeat moves) the relay is unreachable.
    relay.child.kill("SIGKILL");
    await relay.exited;
    const mirrorFile = join(agentRoot, "state", "remote_status.json");
    const mirror = JSON.parse(await readFile(mirrorFile, "utf8")) as Record<string, unknown>;
    await writeFile(mirrorFile, JSON.stringify({ ...mirror, mirroredAt: new Date(Date.now() - 45_000).toISOString() }));
    const gone = await statusOf(agentRoot);
    expect(gone.relay).toMatchObject({ reachable: false });
    expect(gone.relay?.ageSeconds).toBeGreaterThanOrEqual(45);
    expect((await runCli(["status", "--root", agentRoot], { env: natsVars() })).stdout).toMatch(/UNREACHABLE/);

    const queued = await runCli(["hook", "claude-stop", "--root", agentRoot, "--session", "s2"], { input: stopInput("turn two is done"), timeoutMs: 40_000 });
    expect(queued.code, queued.stderr).toBe(0);
    expect(queued.stdout).not.toMatch(/"decision"/); // not a block
    // (the first reply may come along again: with no transcript here, its hand-over cannot be proven seen)
    expect(queued.stderr + queued.stdout).toMatch(/cannot be reached from this host \(its status here is \d+ s old\); your latest message is queued here/);

    // The relay comes back: the queued message is answered and handed over at the next session start.
    relay = await scope.start(relayRoot, natsVars());
    expect(relay.alive(), relay.stderr()).toBe(true);
    await waitForFile(inputPath(agentRoot, "s2"), 30_000);
    const meta = JSON.parse(await readFile(join(agentRoot, "dispatch", "s2", "input.json"), "utf8")) as { in_reply_to: string };
    expect(meta.in_reply_to).toMatch(/^cc-4f1d2c3b-/);
    const start = await runCli(["hook", "claude-start", "--root", agentRoot, "--session", "s2"], { input: startInput(), timeoutMs: 20_000 });
    expect(start.code, start.stderr).toBe(0);
    expect(start.stdout).toMatch(/answer number \d+/);
    // three turns in the relay's history, all from the laptop's s2
    expect(fakeTurns(scope)).toBe(3);
  }, 120_000);
});

describe.skipIf(natsSkipReason !== null)("sessions added to config.yaml while relay and agent run", () => {
  it("are claimed and served: a local one by the relay's built-in agent, a remote one by the agent; a removed one is given back", async (ctx) => {
    const scope = await Scope.create(ctx);
    scope.fake.setResponder(() => "served");
    const prefix = `ad${process.pid % 10_000}`;
    const relayRoot = await makeRoot({ config: relayNatsConfig([{ id: "s1" }, { id: "s2", host: "laptop" }], prefix) });
    const agentRoot = await makeRoot({ config: agentNatsConfig("laptop", ["s2"], prefix) });
    const relay = await scope.start(relayRoot, natsVars());
    const agent = await startAgent(agentRoot, natsVars());
    ctx.onTestFinished(async () => {
      if (agent.alive()) agent.child.kill("SIGKILL");
      await agent.exited;
    });

    await writeFile(join(relayRoot, "config.yaml"), relayNatsConfig([{ id: "s1" }, { id: "s2", host: "laptop" }, { id: "s5" }, { id: "s6", host: "laptop" }], prefix));
    await writeFile(join(agentRoot, "config.yaml"), agentNatsConfig("laptop", ["s2", "s6"], prefix));
    await waitFor(() => /now serving a session added[^\n]*s5|"session":"s5"[^\n]*now serving/.test(relay.stderr()), { what: "the relay's built-in agent serving s5", timeoutMs: 40_000 });
    await waitFor(() => /now serving a session added[^\n]*s6|"session":"s6"[^\n]*now serving/.test(agent.stderr()), { what: "the agent serving s6", timeoutMs: 40_000 });

    await dropEnvelope(relayRoot, "five.json", { session_id: "s5", content: "to a local session added at run time" });
    await dropEnvelope(agentRoot, "six.json", { session_id: "s6", content: "to a remote session added at run time" });
    expect(await waitForFile(inputPath(relayRoot, "s5"), 30_000)).toBe("served");
    expect(await waitForFile(inputPath(agentRoot, "s6"), 30_000)).toBe("served");
    expect(await queueNames(agentRoot)).toEqual([]);

    // s6 leaves the agent's config: its claim is given back, so another agent name can take it without --take-over
    await writeFile(join(agentRoot, "config.yaml"), agentNatsConfig("laptop", ["s2"], prefix));
    await waitFor(() => /no longer serving a session removed[^\n]*s6|"session":"s6"[^\n]*no longer serving/.test(agent.stderr()), { what: "the agent giving s6 back", timeoutMs: 40_000 });
    const desk = await makeRoot({ config: agentNatsConfig("desk", ["s6"], prefix) });
    const second = await startAgent(desk, natsVars());
    ctx.onTestFinished(async () => {
      if (second.alive()) second.child.kill("SIGKILL");
      await second.exited;
    });
    expect(second.alive(), second.stderr()).toBe(true);
  }, 120_000);
});


/** How many conversation requests the stand-in answered (summaries aside). */
const fakeTurns = (scope: Scope): number => scope.fake.requests.filter((r) => !JSON.stringify(r.body).includes("Write the summary")).length;
