// transport: nats (CONTRACT §11) through the real CLI: one relay root and remote agent roots, each
// its own `relay agent` process, against a real nats-server (test/support/nats-server.ts). The
// cases run one after another (a relay and an agent each are all a busy 2-core machine takes). Skipped,
// saying why, when nats-server is not installed.
import { randomBytes } from "node:crypto";
import { readdir, readFile, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type Daemon,
  dropEnvelope,
  exists,
  inputPath,
  killAll,
  makeRoot,
  readHistory,
  runCli,
  Scope,
  secretLeaks,
  secretsCheck,
  spawnCli,
  startAgent,
  waitFor,
  waitForFile,
} from "../support/cli.js";
import { agentNatsConfig, relayNatsConfig } from "../support/nats-roots.js";
import { type NatsServer, natsSkipReason, startNatsServer } from "../support/nats-server.js";

const NATS_TOKEN = `nats-secret-${randomBytes(12).toString("hex")}`;

let server: NatsServer | null = null;
if (natsSkipReason) console.warn(`skipping the NATS tests: ${natsSkipReason}`);

beforeAll(async () => {
  if (natsSkipReason) return;
  server = await startNatsServer({ extraConfig: `authorization { token: ${JSON.stringify(NATS_TOKEN)} }` });
}, 30_000);

afterAll(async () => {
  await killAll();
  await server?.stop();
});

const nats = (): NatsServer => {
  if (!server) throw new Error("no nats-server");
  return server;
};

/** A one-shot command's limit: on a busy machine the CLI alone may take over 15 s to start. */
const CLI_MS = 30_000;

let prefixes = 0;
/** Each test its own prefix: its own streams, buckets and subjects on the shared server. */
const freshPrefix = (): string => `t${process.pid % 10_000}x${++prefixes}`;

/** An agent checks its claims every second, not every 10 s (the take-over is seen sooner; the mechanism is the same). */
const natsVars = (): Record<string, string> => ({ NATS_URL: nats().url, NATS_TOKEN, POLL_INTERVAL_MS: "100", RELAY_NATS_HEARTBEAT_MS: "1000" });

interface World {
  scope: Scope;
  prefix: string;
  relayRoot: string;
  agentRoot: string;
  relay: Daemon;
  agent: Daemon;
}

async function world(ctx: { onTestFinished: (fn: () => Promise<void>) => void }, opts: { agentSessions?: string[] } = {}): Promise<World> {
  const scope = await Scope.create(ctx);
  let n = 0;
  scope.fake.setResponder(() => `answer number ${++n}`);
  const prefix = freshPrefix();
  const relayRoot = await makeRoot({ config: relayNatsConfig([{ id: "s1" }, { id: "s2", host: "laptop" }, { id: "s3", host: "laptop" }], prefix) });
  const agentRoot = await makeRoot({ config: agentNatsConfig("laptop", opts.agentSessions ?? ["s2", "s3", "s4"], prefix) });
  const relay = await scope.start(relayRoot, natsVars());
  const agent = await startAgent(agentRoot, natsVars());
  ctx.onTestFinished(async () => {
    if (agent.alive()) agent.child.kill("SIGKILL");
    await agent.exited;
  });
  expect(relay.alive(), relay.stderr()).toBe(true);
  expect(agent.alive(), agent.stderr()).toBe(true);
  return { scope, prefix, relayRoot, agentRoot, relay, agent };
}

const replyMeta = async (root: string, session: string): Promise<{ reply_id: string; in_reply_to: string | null; source: string }> =>
  JSON.parse(await readFile(join(root, "dispatch", session, "input.json"), "utf8")) as { reply_id: string; in_reply_to: string | null; source: string };

const turns = async (root: string): Promise<{ id: string; session?: string }[]> => Object.values(await readHistory(root)).flatMap((lines) => lines.filter((l) => l.kind === "turn"));

describe.skipIf(natsSkipReason !== null)("transport: nats, one relay and a remote agent", () => {
  it("answers an envelope dropped on a remote root there, takes the deletion of input.txt as the acknowledgement, then delivers the next", async (ctx) => {
    const w = await world(ctx);
    await dropEnvelope(w.agentRoot, "a.json", { session_id: "s2", id: "m-1", content: "first from the laptop" });
    expect(await waitForFile(inputPath(w.agentRoot, "s2"), 15_000)).toMatch(/^answer number \d+$/);
    expect(await replyMeta(w.agentRoot, "s2")).toMatchObject({ in_reply_to: "m-1", source: "envelope" });
    expect(await exists(join(w.agentRoot, "queue", "a.json"))).toBe(false);
    // Never on the relay's root: the session lives on the laptop.
    expect(await exists(inputPath(w.relayRoot, "s2"))).toBe(false);

    await dropEnvelope(w.agentRoot, "b.json", { session_id: "s2", id: "m-2", content: "second from the laptop" });
    // Not delivered over the unacknowledged first reply.
    await new Promise((r) => setTimeout(r, 1_000));
    expect((await replyMeta(w.agentRoot, "s2")).in_reply_to).toBe("m-1");
    await unlink(inputPath(w.agentRoot, "s2"));
    await waitFor(async () => (await replyMeta(w.agentRoot, "s2").catch(() => null))?.in_reply_to === "m-2", { what: "the second reply", timeoutMs: 15_000 });

    // The relay's own sessions take the same path, through its built-in agent.
    await dropEnvelope(w.relayRoot, "local.json", { session_id: "s1", id: "m-local", content: "from the relay's host" });
    await waitForFile(inputPath(w.relayRoot, "s1"), 15_000);
    expect((await replyMeta(w.relayRoot, "s1")).in_reply_to).toBe("m-local");

    expect((await turns(w.relayRoot)).map((t) => t.session).sort()).toEqual(["s1", "s2", "s2"]);
    // The relay's status is mirrored on the remote root.
    const mirror = JSON.parse(await waitForFile(join(w.agentRoot, "state", "remote_status.json"))) as { status: { state: string } | null };
    expect(mirror.status).not.toBeNull();
  }, 60_000);

  it("takes JC's answer written on a remote root", async (ctx) => {
    const w = await world(ctx);
    await writeFile(join(w.agentRoot, "state", "jc_input.txt"), "@s3: straight from JC on the laptop");
    const direct = await waitForFile(inputPath(w.agentRoot, "s3"), 15_000).catch((err: unknown) => {
      throw new Error(`${String(err)}\nrelay: ${w.relay.stderr().slice(-3000)}\nagent: ${w.agent.stderr().slice(-3000)}`);
    });
    expect(direct).toBe("straight from JC on the laptop");
    expect(await replyMeta(w.agentRoot, "s3")).toMatchObject({ source: "jc-direct", in_reply_to: null });
    expect(await exists(join(w.agentRoot, "state", "jc_input.txt"))).toBe(false);
    // one the relay refuses is reported where JC wrote it, as on the relay's root
    await writeFile(join(w.agentRoot, "state", "jc_input.txt"), "@s9: to a session the relay does not know");
    const refused = await waitForFile(join(w.agentRoot, "state", "jc_input.rejected.txt"), 20_000);
    expect(refused).toMatch(/s9 is not a session/);
    expect(refused).toContain("@s9: to a session the relay does not know");
    expect(w.agent.stderr()).not.toMatch(/JC's refused answers failed/);
  }, 60_000);

  it("rejects on the host where the envelope was dropped: by the agent for a session it does not serve, with the relay's reason for one the relay does not know", async (ctx) => {
    const w = await world(ctx);
    await dropEnvelope(w.agentRoot, "unknown-here.json", { session_id: "s9", content: "no such session here" });
    await dropEnvelope(w.agentRoot, "unknown-there.json", { session_id: "s4", content: "served here, unknown to the relay" });
    const rejected = join(w.agentRoot, "queue", ".rejected");
    const here = JSON.parse(await waitForFile(join(rejected, "unknown-here.json.reason.json"), 15_000)) as { error: string };
    expect(here.error).toMatch(/s9.*not registered/);
    const there = JSON.parse(await waitForFile(join(rejected, "unknown-there.json.reason.json"), 15_000)) as { error: string };
    expect(there.error).toMatch(/s4.*not registered in config.yaml/);
    // The reason is written first, then the envelope is moved beside it (as the file transport does).
    expect(JSON.parse(await waitForFile(join(rejected, "unknown-there.json"), 15_000))).toMatchObject({ session_id: "s4" });
    expect(await readdir(join(w.relayRoot, "queue", ".rejected")).catch(() => [])).toEqual([]);
    expect(await turns(w.relayRoot)).toEqual([]);
  }, 60_000);

  it("sends an envelope the API refuses (a 400 about the request) back to the host it came from, with the API's message as the reason", async (ctx) => {
    const w = await world(ctx);
    w.scope.fake.enqueue({ kind: "error", status: 400, type: "invalid_request_error", message: "messages.0.content.0.text: e2e-the-envelope-is-at-fault" });
    await dropEnvelope(w.agentRoot, "bad.json", { session_id: "s2", id: "m-bad", content: "the API will refuse this" });
    const reason = JSON.parse(await waitForFile(join(w.agentRoot, "queue", ".rejected", "bad.json.reason.json"), 15_000)) as { error: string };
    expect(reason.error).toContain("e2e-the-envelope-is-at-fault");
    expect(JSON.parse(await waitForFile(join(w.agentRoot, "queue", ".rejected", "bad.json"), 15_000))).toMatchObject({ id: "m-bad" });
    // and the session goes on
    await dropEnvelope(w.agentRoot, "good.json", { session_id: "s2", id: "m-good", content: "this one is fine" });
    await waitFor(async () => (await replyMeta(w.agentRoot, "s2").catch(() => null))?.in_reply_to === "m-good", { what: "the next reply", timeoutMs: 15_000 });
  }, 60_000);

  it("refuses a session claimed by a second agent name, naming the first; --take-over moves it; a second agent on one root, or one on the relay's root, names the lock's pid", async (ctx) => {
    const w = await world(ctx);
    const otherRoot = await makeRoot({ config: agentNatsConfig("desktop", ["s2"], w.prefix) });
    const refused = await runCli(["agent", "--root", otherRoot], { env: natsVars(), timeoutMs: 15_000 });
    expect(refused.code).toBe(1);
    expect(refused.stderr.trim().split("\n")).toHaveLength(1);
    expect(refused.stderr).toMatch(/session s2 is served by agent "laptop".*--take-over/);

    const same = await runCli(["agent", "--root", w.agentRoot], { env: natsVars(), timeoutMs: 15_000 });
    expect(same.code).not.toBe(0);
    expect(same.stderr).toContain(`pid ${w.agent.pid} holds state/.lock`);
    const onRelayRoot = await runCli(["agent", "--root", w.relayRoot, "--name", "intruder"], { env: natsVars(), timeoutMs: 15_000 });
    expect(onRelayRoot.code).not.toBe(0);
    expect(onRelayRoot.stderr).toContain(`pid ${w.relay.pid} holds state/.lock`);

    const desktop = await startAgent(otherRoot, natsVars(), ["--take-over"]);
    ctx.onTestFinished(async () => {
      desktop.child.kill("SIGKILL");
      await desktop.exited;
    });
    expect(desktop.alive(), desktop.stderr()).toBe(true);
    await waitFor(() => w.agent.stderr().includes("taken over by agent \"desktop\""), { what: "the first agent to let s2 go", timeoutMs: 15_000 });
    await dropEnvelope(otherRoot, "d.json", { session_id: "s2", id: "m-desk", content: "from the desktop now" });
    await waitForFile(inputPath(otherRoot, "s2"), 15_000);
    expect(await exists(inputPath(w.agentRoot, "s2"))).toBe(false);
  }, 60_000);
});

describe.skipIf(natsSkipReason !== null)("transport: nats, checks", () => {
  it("relay nats check says what is missing, one line each, and exits 1; a first start without the server exits 1 in one line", async () => {
    const prefix = freshPrefix();
    const root = await makeRoot({ config: relayNatsConfig([{ id: "s1" }], prefix) });
    const before = await runCli(["nats", "check", "--root", root, "--json"], { env: natsVars(), timeoutMs: CLI_MS });
    expect(before.code).toBe(1);
    const report = JSON.parse(before.stdout) as { ok: boolean; problems: string[]; server: { version: string } };
    expect(report.ok).toBe(false);
    expect(report.server.version).toMatch(/^2\./);
    expect(report.problems.join("\n")).toMatch(/stream .*_ENV is missing/);
    const noServer = await runCli(["run", "--dry-run", "--root", root], { env: { ...natsVars(), NATS_URL: "nats://127.0.0.1:1" }, timeoutMs: CLI_MS });
    expect(noServer.code).toBe(1);
    expect(noServer.stderr.trim().split("\n")).toHaveLength(1);
    expect(noServer.stderr).toMatch(/first start/);

    // relay nats init creates them, one line each, and records the root as verified; a second run changes nothing
    const init = await runCli(["nats", "init", "--root", root], { env: natsVars(), timeoutMs: CLI_MS });
    expect(init.code, init.stderr).toBe(0);
    expect(init.stdout).toMatch(/^created stream \S+_ENV$/m);
    expect(init.stdout).toMatch(/^created consumer relay on \S+_ENV$|^created .*bucket/m);
    expect(init.stdout).toMatch(/^ok: \d+ created, everything as expected/m);
    const again = await runCli(["nats", "init", "--root", root, "--json"], { env: natsVars(), timeoutMs: CLI_MS });
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ ok: true, created: [], problems: [] });
    expect((await runCli(["nats", "check", "--root", root], { env: natsVars(), timeoutMs: CLI_MS })).code).toBe(0);
    expect(await exists(join(root, "state", "nats.json"))).toBe(true);
    // verified once: a later start without the server starts anyway and retries
    const later = await spawnCli(["run", "--dry-run", "--root", root], { ...natsVars(), NATS_URL: "nats://127.0.0.1:1" });
    await waitFor(() => later.stderr().includes("relay started") || !later.alive(), { what: "the relay to start without its server", timeoutMs: 30_000 });
    expect(later.alive(), later.stderr()).toBe(true);
    expect(later.stderr()).toMatch(/NATS unreachable; starting anyway/);
    later.child.kill("SIGKILL");
    await later.exited;
  }, 150_000);

  it("refuses a stream configured differently (drift), naming it and the expected value, and changes nothing", async () => {
    const prefix = freshPrefix();
    const nc = await connect({ servers: nats().url, token: NATS_TOKEN });
    try {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: `${prefix.toUpperCase()}_ENV`, subjects: [`${prefix}.env.>`], max_age: 3600 * 1e9 });
      const root = await makeRoot({ config: relayNatsConfig([{ id: "s1" }], prefix) });
      const check = await runCli(["nats", "check", "--root", root], { env: natsVars(), timeoutMs: CLI_MS });
      expect(check.code).toBe(1);
      expect(check.stdout).toMatch(/stream \S+_ENV has max_age 3600 s: expected 604800 s/);
      const run = await runCli(["run", "--dry-run", "--root", root], { env: natsVars(), timeoutMs: CLI_MS });
      expect(run.code).toBe(1);
      expect(run.stderr.trim().split("\n")).toHaveLength(1);
      expect(run.stderr).toMatch(/_ENV has max_age 3600 s: expected 604800 s/);
      expect((await jsm.streams.info(`${prefix.toUpperCase()}_ENV`)).config.max_age).toBe(3600 * 1e9);
      expect((await jsm.streams.names().next()).filter((n) => n.toLowerCase().includes(prefix))).toEqual([`${prefix.toUpperCase()}_ENV`]);
    } finally {
      await nc.close();
    }
  }, 90_000);

  it("stops with one line when the envelope stream was recreated under the relay", async (ctx) => {
    const scope = await Scope.create(ctx);
    const prefix = freshPrefix();
    const root = await makeRoot({ config: relayNatsConfig([{ id: "s1" }], prefix) });
    const first = await scope.start(root, natsVars());
    // Stopped only to tamper with the stream (its graceful stop is tested elsewhere): a SIGTERM in
    // its first instant may find the handler not yet installed.
    first.child.kill("SIGTERM");
    await first.exited;
    const nc = await connect({ servers: nats().url, token: NATS_TOKEN });
    try {
      await (await jetstreamManager(nc)).streams.delete(`${prefix.toUpperCase()}_ENV`);
    } finally {
      await nc.close();
    }
    const again = await runCli(["run", "--root", root], { env: scope.vars(natsVars()), timeoutMs: CLI_MS });
    expect(again.code).toBe(1);
    expect(again.stderr.trim().split("\n")).toHaveLength(1);
    expect(again.stderr).toMatch(/stream \S+_ENV was recreated/);
  }, 90_000);

  it("refuses a server whose max_payload is below 8 MiB, in one line", async () => {
    const small = await startNatsServer({ maxPayload: "1MB" });
    try {
      const root = await makeRoot({ config: relayNatsConfig([{ id: "s1" }], freshPrefix()) });
      const r = await runCli(["run", "--dry-run", "--root", root], { env: { ...natsVars(), NATS_URL: small.url, NATS_TOKEN: undefined }, timeoutMs: CLI_MS });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/max_payload.*expected max_payload: 8MB/);
    } finally {
      await small.stop();
    }
  }, 90_000);

  it("never writes NATS_TOKEN to a log, an output or a file other than .env", async () => {
    expect(await secretLeaks(NATS_TOKEN)).toEqual([]);
  });
});

secretsCheck();
