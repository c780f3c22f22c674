// Issue 16's figures (`npm run bench -- --transport nats`): what `transport: nats` adds to the
// file transport, measured on the real CLI (`relay run`, `relay agent`) against a real
// nats-server on localhost and the local Messages API stand-in, with `transport: files` measured
// in the same run beside it.
//
// Layout: a files root (sessions s1-s4), and a NATS pair: the relay's root (s1, s2 served by its
// built-in agent) and an agent's root "laptop" (s3, s4) with its own `relay agent`. The latency
// samples alternate between the lanes so a burst of load on the machine hits them alike.
import { readdirSync, readFileSync, unlinkSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { FakeAnthropic } from "../test/support/fake-anthropic.js";
import { type NatsCluster, type NatsServer, natsSkipReason, startNatsCluster, startNatsServer, waitForMetaLeader } from "../test/support/nats-server.js";
import { startTcpProxy } from "../test/support/tcp-proxy.js";
import { burstThroughput, pollFor, requestWith, type ThroughputResult } from "./figures.js";
import type { LightRow as Row } from "./light.js";
import {
  type Child,
  clockTicksPerSecond,
  closeStandIn,
  commitEnvelopeSync,
  configYaml,
  cpuTicks,
  exists,
  fmtMs,
  fmtNum,
  inputPath,
  isQuiet,
  makeTempDir,
  median,
  memoryKb,
  nowMs,
  percentile,
  randomBetween,
  spawnRelay,
  stageEnvelopeSync,
  startStandIn,
  waitRelay,
  Watcher,
} from "./lib.js";

export interface NatsPlan {
  /** latency samples per lane (after 5 warm-up ones) */
  latencyN: number;
  /** latency samples on the three-node cluster */
  r3N: number;
  tpN: number;
  tpLimitMs: number;
  cpuSettleMs: number;
  cpuWindowMs: number;
  /** nats-server kill -9 and restart, repetitions */
  restarts: number;
}

export const natsPlan = (quick: boolean): NatsPlan =>
  quick
    ? { latencyN: 16, r3N: 5, tpN: 200, tpLimitMs: 20_000, cpuSettleMs: 2_000, cpuWindowMs: 10_000, restarts: 1 }
    : { latencyN: 40, r3N: 15, tpN: 600, tpLimitMs: 60_000, cpuSettleMs: 3_000, cpuWindowMs: 60_000, restarts: 3 };

const AGENT = "laptop";
/** an API call longer than the relay's taking step (a durable snapshot, then the ack) even on a busy machine */
const SLOW_API_MS = 250;
const LOCAL = ["s1", "s2"];
const REMOTE = ["s3", "s4"];

// ---------------------------------------------------------------------------
// The processes

async function started(proc: Child, text: string, what: string): Promise<void> {
  const deadline = Date.now() + 45_000;
  while (!proc.output().includes(text)) {
    if (!proc.alive()) throw new Error(`${what} exited early:\n${proc.output().slice(-2000)}`);
    if (Date.now() > deadline) throw new Error(`${what} did not start:\n${proc.output().slice(-2000)}`);
    await sleep(10);
  }
}

async function stopProc(proc: Child): Promise<void> {
  if (!proc.alive()) return;
  proc.child.kill("SIGTERM");
  const timer = setTimeout(() => proc.child.kill("SIGKILL"), 5_000);
  await proc.exited;
  clearTimeout(timer);
}

const relayYaml = (prefix: string, replicas: number): string =>
  [
    "transport: nats",
    "nats:",
    `  prefix: ${prefix}`,
    `  replicas: ${replicas}`,
    // the sessions block is configYaml's last: the remote ones follow it
    configYaml({ sessions: LOCAL }).trimEnd(),
    ...REMOTE.flatMap((id) => [`  - id: ${id}`, `    host: ${AGENT}`]),
    "",
  ].join("\n");

const agentYaml = (prefix: string, replicas: number): string =>
  ["transport: nats", "nats:", `  prefix: ${prefix}`, `  replicas: ${replicas}`, "agent:", `  name: ${AGENT}`, "sessions:", ...REMOTE.map((id) => `  - id: ${id}`), ""].join("\n");

interface NatsWorld {
  relayRoot: string;
  agentRoot: string;
  relay: Child;
  agent: Child;
  fake: FakeAnthropic;
  /** `relay agent` again on the same root (same name: it takes its sessions back), e.g. through a proxy */
  restartAgent(url: string): Promise<void>;
  stop(): Promise<void>;
}

let worlds = 0;

async function natsWorld(url: string, replicas: number): Promise<NatsWorld> {
  const prefix = `bench${process.pid % 10_000}x${++worlds}`;
  const fake = await startStandIn();
  const relayRoot = await makeTempDir(`nats-relay-r${replicas}`);
  const agentRoot = await makeTempDir(`nats-agent-r${replicas}`);
  await writeFile(join(relayRoot, "config.yaml"), relayYaml(prefix, replicas));
  await writeFile(join(agentRoot, "config.yaml"), agentYaml(prefix, replicas));
  const relay = spawnRelay(["run", "--root", relayRoot], "relay", fake, { NATS_URL: url });
  await started(relay, "relay started", "relay run (transport: nats)");
  const startAgent = async (u: string) => {
    const a = spawnRelay(["agent", "--root", agentRoot], "relay", null, { NATS_URL: u });
    await started(a, "agent started", "relay agent");
    return a;
  };
  const world: NatsWorld = {
    relayRoot,
    agentRoot,
    relay,
    agent: await startAgent(url),
    fake,
    async restartAgent(u) {
      await stopProc(world.agent);
      world.agent = await startAgent(u);
    },
    async stop() {
      await Promise.all([stopProc(world.agent), stopProc(relay)]);
      await closeStandIn(fake);
    },
  };
  await sleep(300); // "started" is logged just before the watchers are set up
  return world;
}

interface FilesWorld {
  root: string;
  relay: Child;
  fake: FakeAnthropic;
  stop(): Promise<void>;
}

async function filesWorld(): Promise<FilesWorld> {
  const fake = await startStandIn();
  const root = await makeTempDir("nats-files");
  await writeFile(join(root, "config.yaml"), configYaml({ sessions: [...LOCAL, ...REMOTE] }));
  const relay = spawnRelay(["run", "--root", root], "relay", fake);
  await started(relay, "relay started", "relay run (transport: files)");
  await sleep(300);
  return {
    root,
    relay,
    fake,
    async stop() {
      await stopProc(relay);
      await closeStandIn(fake);
    },
  };
}

// ---------------------------------------------------------------------------
// Latency lanes: one envelope at a time, answered, its input.txt deleted, the relay at rest

interface Lane {
  label: string;
  /** where the envelope is dropped and its reply appears */
  root: string;
  session: string;
  /** the relay's root (its status.json says when it is at rest) */
  relayRoot: string;
  fake: FakeAnthropic;
  watcher: Watcher;
  /** (a) rename into queue/ → request at the stand-in; (b) the stand-in's res.end() → input.txt visible */
  a: number[];
  b: number[];
  /** each kept sample's instants (bench clock ≈ Date.now()), to place the log records between them */
  marks: Marks[];
}

interface Marks {
  renamed: number;
  requested: number;
  answered: number;
  seen: number;
}

function lane(label: string, root: string, session: string, relayRoot: string, fake: FakeAnthropic): Lane {
  return { label, root, session, relayRoot, fake, watcher: new Watcher([join(root, "dispatch", session)]), a: [], b: [], marks: [] };
}

let sampleNo = 0;

async function sample(l: Lane, keep: boolean): Promise<{ t0: number; seen: number }> {
  const k = ++sampleNo;
  const name = `${l.label}-${k}`;
  const marker = `${name}:`;
  const base = l.fake.requests.length;
  const input = inputPath(l.root, l.session);
  stageEnvelopeSync(l.root, name, l.session, `${marker} the build is green, next step?`);
  const t0 = commitEnvelopeSync(l.root, name);
  const seen = await l.watcher.until(() => exists(input), 60_000, `the reply to ${name}`);
  const req = await pollFor(() => requestWith(l.fake, marker, base), 5_000, `the request of ${name} on record`);
  unlinkSync(input);
  await waitRelay(l.relayRoot, isQuiet, 30_000, `the relay at rest after ${name}`);
  if (keep) {
    const requested = req.receivedAt ?? req.at;
    l.a.push(requested - t0);
    if (req.sentAt !== undefined) {
      l.b.push(seen - req.sentAt);
      l.marks.push({ renamed: t0, requested, answered: req.sentAt, seen });
    }
  }
  return { t0, seen };
}

/** `n` samples on each lane, the lanes in a fresh random order each round, after 5 warm-up rounds. */
async function sampleLanes(lanes: Lane[], n: number): Promise<void> {
  for (let round = -5; round < n; round++) {
    for (const l of [...lanes].sort(() => Math.random() - 0.5)) {
      await sleep(randomBetween(0, 20));
      await sample(l, round >= 0);
    }
  }
}

/** Delete every input.txt as it appears until the relay is at rest and every queue/ is empty (at most 3 minutes). */
async function drain(places: { root: string; session: string }[], relayRoot: string): Promise<void> {
  const deadline = Date.now() + 180_000;
  const queued = () => [...new Set(places.map((p) => p.root))].some((root) => readdirSync(join(root, "queue")).some((f) => f.endsWith(".json")));
  for (;;) {
    for (const p of places) {
      try {
        unlinkSync(inputPath(p.root, p.session));
      } catch {
        // none there
      }
    }
    const view = await waitRelay(relayRoot, () => true, 5_000, "the relay's status").catch(() => null);
    if (view && isQuiet(view) && !queued()) return;
    if (Date.now() > deadline) throw new Error(`the relay at ${relayRoot} is not at rest 3 minutes after the throughput run`);
    await sleep(20);
  }
}

// ---------------------------------------------------------------------------
// /proc and logs

/** The pid of the nats-server started with this store (its config file sits beside the store). */
function serverPid(server: NatsServer): number | null {
  const conf = join(server.storeDir, "..", "nats.conf");
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmd = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0");
      if (cmd.some((c) => c.endsWith("nats-server")) && cmd.some((c) => join(c) === join(conf))) return Number(entry);
    } catch {
      // gone
    }
  }
  return null;
}

/** The first record of logs/relay.jsonl at or after `since` (epoch ms) whose msg matches: its time. */
async function loggedAt(root: string, msg: RegExp, since: number, timeoutMs: number): Promise<number> {
  const file = join(root, "logs", "relay.jsonl");
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let text = "";
    try {
      text = readFileSync(file, "utf8");
    } catch {
      // not yet
    }
    for (const line of text.split("\n")) {
      if (!line) continue;
      try {
        const rec = JSON.parse(line) as { time?: number; msg?: string };
        if (typeof rec.time === "number" && rec.time >= Math.floor(since) && msg.test(rec.msg ?? "")) return rec.time;
      } catch {
        // a line being written
      }
    }
    if (Date.now() > deadline) throw new Error(`"${msg.source}" not logged in ${root}/logs within ${timeoutMs / 1000} s`);
    await sleep(20);
  }
}

/** logs/relay.jsonl of a root: each record's time (ms), msg and session. */
function logRecords(root: string): { time: number; msg: string; session?: string }[] {
  let text = "";
  try {
    text = readFileSync(join(root, "logs", "relay.jsonl"), "utf8");
  } catch {
    return [];
  }
  return text.split("\n").flatMap((line) => {
    try {
      const rec = JSON.parse(line) as { time?: unknown; msg?: unknown; session?: unknown };
      return typeof rec.time === "number" && typeof rec.msg === "string" ? [{ time: rec.time, msg: rec.msg, ...(typeof rec.session === "string" ? { session: rec.session } : {}) }] : [];
    } catch {
      return [];
    }
  });
}

/**
 * Where a lane's time goes: each sample's path cut at the log records (ms resolution) that fall
 * between its own instants, the median of each segment. Files: rename → "envelope taken" →
 * request; answer → "reply dispatched" → seen. NATS adds the agent's "envelope published" (its
 * PubAck) before the relay takes it, and the agent's "reply delivered" before input.txt is seen.
 */
export function segments(l: Lane, agentRoot: string | null): string {
  const relay = logRecords(l.relayRoot).filter((r) => r.session === l.session);
  const agent = agentRoot === null ? [] : logRecords(agentRoot).filter((r) => r.session === l.session);
  const at = (recs: typeof relay, msg: string, from: number, to: number) => recs.find((r) => r.msg === msg && r.time >= Math.floor(from) && r.time <= Math.ceil(to))?.time;
  const cuts: Record<string, number[]> = {};
  const add = (name: string, a: number | undefined, b: number | undefined) => {
    if (a !== undefined && b !== undefined) (cuts[name] ??= []).push(b - a);
  };
  for (const m of l.marks) {
    const published = at(agent, "envelope published", m.renamed, m.requested);
    const taken = at(relay, "envelope taken", m.renamed, m.requested);
    const dispatched = at(relay, "reply dispatched", m.answered, m.seen);
    const delivered = at(agent, "reply delivered", m.answered, m.seen);
    if (agentRoot !== null) {
      add("rename → agent's PubAck", m.renamed, published);
      add("PubAck → relay takes it", published, taken);
    } else add("rename → relay takes it", m.renamed, taken);
    add("taken → request at the API", taken, m.requested);
    add("answer → reply dispatched", m.answered, dispatched);
    if (agentRoot !== null) {
      add("dispatched → agent's rename to input.txt", dispatched, delivered);
      add("agent's rename → seen", delivered, m.seen);
    } else add("dispatched → seen", dispatched, m.seen);
  }
  return Object.entries(cuts)
    .map(([name, v]) => `${name} ${fmtMs(median(v))}`)
    .join(", ");
}

// ---------------------------------------------------------------------------
// The figures

interface Idle {
  relayFiles: number;
  relayNats: number;
  agent: number;
  server: number | null;
  windowMs: number;
}

async function idleCpu(pids: { relayFiles: number; relayNats: number; agent: number; server: number | null }, settleMs: number, windowMs: number): Promise<Idle> {
  await sleep(settleMs);
  const hz = clockTicksPerSecond();
  const read = () => ({ relayFiles: cpuTicks(pids.relayFiles), relayNats: cpuTicks(pids.relayNats), agent: cpuTicks(pids.agent), server: pids.server === null ? null : cpuTicks(pids.server) });
  const b = read();
  await sleep(windowMs);
  const e = read();
  const pct = (x: { ticks: number; at: number }, y: { ticks: number; at: number }) => ((y.ticks - x.ticks) / hz / ((y.at - x.at) / 1000)) * 100;
  return { relayFiles: pct(b.relayFiles, e.relayFiles), relayNats: pct(b.relayNats, e.relayNats), agent: pct(b.agent, e.agent), server: b.server && e.server ? pct(b.server, e.server) : null, windowMs };
}

interface Recovery {
  /** server ready again → the envelope dropped while it was down answered (ms) */
  restartToAnswer: number[];
  /** kill -9 → answered (ms) */
  killToAnswer: number[];
}

async function serverRestarts(server: NatsServer, w: NatsWorld, reps: number): Promise<Recovery> {
  const out: Recovery = { restartToAnswer: [], killToAnswer: [] };
  const l = lane("restart", w.agentRoot, "s3", w.relayRoot, w.fake);
  try {
    for (let i = 0; i < reps; i++) {
      const killed = nowMs();
      await server.kill9();
      const name = `restart-${i}`;
      stageEnvelopeSync(w.agentRoot, name, "s3", `${name}: while the server was down`);
      commitEnvelopeSync(w.agentRoot, name);
      await sleep(1_000);
      await server.restart();
      const up = nowMs();
      const seen = await l.watcher.until(() => exists(inputPath(w.agentRoot, "s3")), 60_000, `the reply to ${name} after the restart`);
      out.restartToAnswer.push(seen - up);
      out.killToAnswer.push(seen - killed);
      unlinkSync(inputPath(w.agentRoot, "s3"));
      await waitRelay(w.relayRoot, isQuiet, 60_000, "the relay at rest after a server restart");
    }
  } finally {
    l.watcher.close();
  }
  return out;
}

interface DeadLink {
  /** every open connection silently dead → the agent logs the connection lost (ms) */
  detectedMs: number;
  /** → the envelope dropped at that instant answered (ms) */
  answeredMs: number;
}

/** The agent through a TCP proxy whose open connections go silently dead (no RST): its pings find out. */
async function deadLink(server: NatsServer, w: NatsWorld): Promise<DeadLink> {
  const proxy = await startTcpProxy({ port: server.port });
  try {
    await w.restartAgent(`nats://127.0.0.1:${proxy.port}`);
    const l = lane("deadlink", w.agentRoot, "s3", w.relayRoot, w.fake);
    try {
      await sample(l, false); // through the proxy once
      const t0 = Date.now();
      proxy.stale();
      const { seen } = await sample(l, false);
      const detected = await loggedAt(w.agentRoot, /NATS connection lost/, t0, 5_000);
      return { detectedMs: detected - t0, answeredMs: seen - t0 };
    } finally {
      l.watcher.close();
    }
  } finally {
    await w.restartAgent(server.url);
    await proxy.close();
  }
}

interface R3 {
  remote: Lane;
  /** stream leader killed → the agent's next PubAck (ms) */
  publishResumedMs: number;
  /** → the envelope dropped at the kill answered (ms) */
  answeredMs: number;
  leader: string;
}

async function streamLeader(cluster: NatsCluster, stream: string): Promise<string | null> {
  for (const n of cluster.nodes.filter((x) => x.running())) {
    try {
      const jsz = (await (await fetch(`http://127.0.0.1:${n.httpPort}/jsz?streams=true`)).json()) as { account_details?: { stream_detail?: { name: string; cluster?: { leader?: string } }[] }[] };
      const s = (jsz.account_details ?? []).flatMap((a) => a.stream_detail ?? []).find((d) => d.name === stream);
      if (s?.cluster?.leader) return s.cluster.leader;
    } catch {
      // try another member
    }
  }
  return null;
}

async function r3(n: number): Promise<R3> {
  const cluster = await startNatsCluster();
  try {
    const w = await natsWorld(cluster.url, 3);
    try {
      const remote = lane("r3", w.agentRoot, "s3", w.relayRoot, w.fake);
      try {
        await sampleLanes([remote], n);
        const prefix = (/prefix: (\S+)/.exec(readFileSync(join(w.relayRoot, "config.yaml"), "utf8")) ?? [])[1] ?? "";
        const stream = `${prefix.toUpperCase()}_ENV`;
        const leader = await streamLeader(cluster, stream);
        const node = cluster.nodes.find((_, i) => `n${i + 1}` === leader);
        if (!leader || !node) throw new Error(`no leader found for ${stream}`);
        const t0 = Date.now();
        await node.kill9();
        const { seen } = await sample(remote, false);
        const published = await loggedAt(w.agentRoot, /^envelope published$/, t0, 5_000);
        await waitForMetaLeader(cluster.nodes).catch(() => undefined);
        return { remote, publishResumedMs: published - t0, answeredMs: seen - t0, leader };
      } finally {
        remote.watcher.close();
      }
    } finally {
      await w.stop();
    }
  } finally {
    await cluster.stop();
  }
}

// ---------------------------------------------------------------------------
// Rows

type Outcome<T> = { ok: true; value: T } | { ok: false; error: string };

async function attempt<T>(what: string, log: (line: string) => void, fn: () => Promise<T>): Promise<Outcome<T>> {
  log(`nats: ${what}…`);
  const t0 = Date.now();
  try {
    const value = await fn();
    log(`nats: ${what}: done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    return { ok: true, value };
  } catch (err) {
    const error = err instanceof Error ? err.message : String(err);
    log(`nats: ${what}: FAILED: ${error}`);
    return { ok: false, error: error.split("\n")[0] ?? error };
  }
}

const judged = (ok: boolean | null): string => (ok === null ? "not measured" : ok ? "met" : "**missed**");
const p95 = (v: number[]) => percentile(v, 95);
const secs = (ms: number): string => (Number.isFinite(ms) ? `${(ms / 1000).toFixed(2)} s` : "n/a");
const pct = (x: number | null): string => (x === null || !Number.isFinite(x) ? "n/a" : `${x.toFixed(3)} %`);
const failedRow = (figure: string, o: { ok: false; error: string }): Row => ({ figure, p50: `error: ${o.error}`, tail: "", target: "not measured", baseline: "" });

/** nats − files, p50 and p95 each (the difference of the two percentiles). */
function addedRows(what: string, nats: number[], files: number[], target: { p50: number; p95: number }): Row {
  const d50 = median(nats) - median(files);
  const d95 = p95(nats) - p95(files);
  return {
    figure: `added latency, transport: nats − files, ${what} (n = ${nats.length})`,
    p50: `+${fmtNum(d50)} ms (nats ${fmtMs(median(nats))})`,
    tail: `+${fmtNum(d95)} ms p95 (nats ${fmtMs(p95(nats))})`,
    target: `p50 ≤ ${target.p50} ms, p95 ≤ ${target.p95} ms: ${judged(nats.length > 0 && files.length > 0 ? d50 <= target.p50 && d95 <= target.p95 : null)}`,
    baseline: `files ${fmtMs(median(files))} · p95 ${fmtMs(p95(files))}`,
  };
}

const tpCell = (t: ThroughputResult): string =>
  `${Math.round(t.perSecond)} envelopes/s (${t.completed}/${t.n} in ${(t.elapsedMs / 1000).toFixed(2)} s${t.timedOut ? ", stopped at the time limit" : ""})`;

export interface NatsFigures {
  rows: Row[];
  notes: string[];
  failed: boolean;
}

/** Every NATS row (each failure a row saying so), with `transport: files` from the same run as the baseline. */
export async function natsRows(plan: NatsPlan, log: (line: string) => void, fsyncMs: number): Promise<NatsFigures> {
  if (natsSkipReason) return { rows: [], notes: [`transport: nats not measured: ${natsSkipReason}.`], failed: true };
  const rows: Row[] = [];
  const notes: string[] = [];
  let failed = false;
  const server = await startNatsServer();
  const files = await filesWorld();
  const w = await natsWorld(server.url, 1);
  try {
    const lanes = {
      files: lane("files", files.root, "s1", files.root, files.fake),
      remote: lane("remote", w.agentRoot, "s3", w.relayRoot, w.fake),
      local: lane("local", w.relayRoot, "s1", w.relayRoot, w.fake),
    };
    const lat = await attempt(`latency, ${plan.latencyN} envelopes per lane (files, an agent's root, the relay's own root)`, log, () => sampleLanes(Object.values(lanes), plan.latencyN));
    for (const l of Object.values(lanes)) l.watcher.close();
    // The same, with an API call that takes as long as the relay's taking step (see the notes).
    const slow = { files: lane("files-slow", files.root, "s2", files.root, files.fake), remote: lane("remote-slow", w.agentRoot, "s4", w.relayRoot, w.fake) };
    const slowLat = await attempt(`latency with a ${SLOW_API_MS} ms API call, ${plan.latencyN / 2} envelopes per lane (files, an agent's root)`, log, async () => {
      files.fake.setLatency(SLOW_API_MS);
      w.fake.setLatency(SLOW_API_MS);
      try {
        await sampleLanes(Object.values(slow), plan.latencyN / 2);
      } finally {
        files.fake.setLatency(0);
        w.fake.setLatency(0);
      }
    });
    for (const l of Object.values(slow)) l.watcher.close();
    if (lat.ok) {
      rows.push(addedRows("(a) envelope renamed into `queue/` on the agent's root → request at the API stand-in", lanes.remote.a, lanes.files.a, { p50: 10, p95: 30 }));
      rows.push(addedRows("(b) API reply sent → `input.txt` visible on the agent's root", lanes.remote.b, lanes.files.b, { p50: 10, p95: 30 }));
      for (const [x, what] of [
        ["a", "(a) on the relay's own root (its built-in agent)"],
        ["b", "(b) on the relay's own root (its built-in agent)"],
      ] as const) {
        const r = addedRows(what, lanes.local[x], lanes.files[x], { p50: 10, p95: 30 });
        rows.push({ ...r, target: `(informational) ${r.target}` });
      }
      notes.push(
        `Where the time goes (median of each segment, cut at the relays' and the agent's log records, whole milliseconds): files: ${segments(lanes.files, null)}. nats, agent's root: ${segments(lanes.remote, w.agentRoot)}. nats, relay's own root: ${segments(lanes.local, w.relayRoot)}.`,
        `Why "answer → reply dispatched" is longer with nats (traced with timers around each part of the relay's step): the relay acks a delivery only once the snapshot that made it current work is on disk (issue 16, Intake), so the step that takes an envelope also writes that snapshot durably (write + fsync, rename, directory fsync) before it ends; a zero-latency API answers while that write is under way, and the reply waits for the next step. There the reply's slot record (state/nats-slots.json, fsynced the same way, the Dispatch rule) comes before the PUT, with a round trip before it (the slot's revision) and one for the PUT. The file transport has neither durable write on this path (its queue file is the record until the reply is written). So (b) pays about four fsyncs and two round trips more at zero API latency, and two fsyncs and two round trips when the API call outlasts the taking step (the "${SLOW_API_MS} ms API call" row: every real call does); the agent's own delivery (the slot's revision, two fsyncs side by side before the rename) costs what the file transport's does. An fsync took ${fmtMs(fsyncMs)} here (the probe at the top); on a busy machine each one, and each hop between three processes, costs tens of milliseconds.`,
      );
    } else {
      failed = true;
      rows.push(failedRow("added latency, transport: nats − files", lat));
    }

    if (slowLat.ok) {
      const r = addedRows(`(b) with a ${SLOW_API_MS} ms API call, agent's root`, slow.remote.b, slow.files.b, { p50: 10, p95: 30 });
      rows.push({ ...r, target: `(informational) ${r.target}` });
    } else rows.push(failedRow(`added latency with a ${SLOW_API_MS} ms API call`, slowLat));

    // RSS right after the same envelopes went through both relays.
    const rss = { files: memoryKb(files.relay.pid), nats: memoryKb(w.relay.pid), agent: memoryKb(w.agent.pid) };
    rows.push({
      figure: "resident memory of `relay run`, transport: nats, after the latency envelopes (VmRSS / VmHWM)",
      p50: `${(rss.nats.rss / 1024).toFixed(1)} MB`,
      tail: `VmHWM ${(rss.nats.hwm / 1024).toFixed(1)} MB; \`relay agent\` ${(rss.agent.rss / 1024).toFixed(1)} MB`,
      target: `reported: +${((rss.nats.rss - rss.files.rss) / 1024).toFixed(1)} MB over files`,
      baseline: `files ${(rss.files.rss / 1024).toFixed(1)} MB (VmHWM ${(rss.files.hwm / 1024).toFixed(1)} MB)`,
    });

    const tpFiles = await attempt(`throughput, ${plan.tpN} envelopes, 4 sessions (files)`, log, () =>
      burstThroughput([...LOCAL, ...REMOTE].map((session) => ({ root: files.root, session })), plan.tpN, plan.tpLimitMs),
    );
    const tpNats = await attempt(`throughput, ${plan.tpN} envelopes, 4 sessions on 2 hosts (nats)`, log, () =>
      burstThroughput([...LOCAL.map((session) => ({ root: w.relayRoot, session })), ...REMOTE.map((session) => ({ root: w.agentRoot, session }))], plan.tpN, plan.tpLimitMs),
    );
    if (tpFiles.ok && tpNats.ok) {
      const ratio = tpNats.value.perSecond / tpFiles.value.perSecond;
      rows.push({
        figure: `throughput, zero-latency API, ${plan.tpN} envelopes, 4 sessions on 2 hosts (2 on the relay's root, 2 on an agent's)`,
        p50: tpCell(tpNats.value),
        tail: `${ratio.toFixed(2)}× files`,
        target: `≥ 0.8× files: ${judged(ratio >= 0.8)}`,
        baseline: `files ${tpCell(tpFiles.value)}`,
      });
      notes.push(`Throughput (nats): ${fmtNum(tpNats.value.firstRate)} /s over the first 100 completions, ${fmtNum(tpNats.value.lastRate)} /s over the last 100 (files: ${fmtNum(tpFiles.value.firstRate)} and ${fmtNum(tpFiles.value.lastRate)}).`);
    } else {
      failed = true;
      rows.push(failedRow("throughput, 4 sessions on 2 hosts", tpFiles.ok ? (tpNats as { ok: false; error: string }) : tpFiles));
    }
    // A throughput run stopped at its time limit leaves envelopes in flight: answer them all first.
    const drained = await attempt("answering what the throughput run left in flight", log, async () => {
      await drain([...LOCAL.map((session) => ({ root: w.relayRoot, session })), ...REMOTE.map((session) => ({ root: w.agentRoot, session }))], w.relayRoot);
      await drain([...LOCAL, ...REMOTE].map((session) => ({ root: files.root, session })), files.root);
    });

    // two windows one after the other: the first starts a few seconds after the throughput run,
    // while the daemons' garbage collections after it may still run; the second is the settled idle
    const idlePids = { relayFiles: files.relay.pid, relayNats: w.relay.pid, agent: w.agent.pid, server: serverPid(server) };
    const idle = await attempt(`idle CPU over ${plan.cpuWindowMs / 1000} s, twice`, log, async () => ({
      first: await idleCpu(idlePids, plan.cpuSettleMs, plan.cpuWindowMs),
      settled: await idleCpu(idlePids, 0, plan.cpuWindowMs),
    }));
    if (idle.ok) {
      const { first, settled: v } = idle.value;
      rows.push({
        figure: `idle CPU over ${v.windowMs / 1000} s (utime+stime), the second such window after the throughput run: \`relay run\` connected to NATS; \`relay agent\``,
        p50: `relay ${pct(v.relayNats)} · agent ${pct(v.agent)}`,
        tail: `nats-server ${pct(v.server)}; the first window (from ${plan.cpuSettleMs / 1000} s after the run): relay ${pct(first.relayNats)} · agent ${pct(first.agent)} · files relay ${pct(first.relayFiles)}`,
        target: `each ≤ 0.3 % of one core: ${judged(v.relayNats <= 0.3 && v.agent <= 0.3)}${drained.ok ? "" : " (NOT at rest: work from the throughput run was left)"}`,
        baseline: `files relay ${pct(v.relayFiles)}`,
      });
    } else {
      failed = true;
      rows.push(failedRow("idle CPU", idle));
    }
    await stopProc(files.relay);

    const rec = await attempt(`nats-server kill -9 and restart, ${plan.restarts} times`, log, () => serverRestarts(server, w, plan.restarts));
    if (rec.ok) {
      const v = rec.value;
      rows.push({
        figure: `recovery: nats-server kill -9, an envelope dropped on the agent's root while it is down, restart → that envelope answered (n = ${v.restartToAnswer.length})`,
        p50: secs(median(v.restartToAnswer)),
        tail: `max ${secs(Math.max(...v.restartToAnswer))}`,
        target: `≤ 5 s: ${judged(Math.max(...v.restartToAnswer) <= 5_000)}`,
        baseline: `kill → answered ${secs(median(v.killToAnswer))} (1 s down)`,
      });
    } else {
      failed = true;
      rows.push(failedRow("recovery: nats-server kill -9 and restart", rec));
    }

    const dead = await attempt("dead connection (a silent proxy)", log, () => deadLink(server, w));
    if (dead.ok) {
      rows.push({
        figure: "recovery: the agent's connection silently dead (no RST) → the agent notices",
        p50: secs(dead.value.detectedMs),
        tail: `envelope dropped then answered after ${secs(dead.value.answeredMs)}`,
        target: `≤ 30 s: ${judged(dead.value.detectedMs <= 30_000)}`,
        baseline: "",
      });
    } else {
      failed = true;
      rows.push(failedRow("recovery: dead connection detected", dead));
    }
  } finally {
    await w.stop();
    await files.stop();
    await server.stop();
  }

  const cluster = await attempt(`replicas: 3 on a three-node cluster: ${plan.r3N} envelopes, then the stream leader killed`, log, () => r3(plan.r3N));
  if (cluster.ok) {
    const v = cluster.value;
    rows.push({
      figure: `replicas: 3 (three nodes on localhost): (a) and (b) on the agent's root (n = ${v.remote.a.length})`,
      p50: `(a) ${fmtMs(median(v.remote.a))} · (b) ${fmtMs(median(v.remote.b))}`,
      tail: `p95 (a) ${fmtMs(p95(v.remote.a))} · (b) ${fmtMs(p95(v.remote.b))}`,
      target: "(reported)",
      baseline: "",
    });
    rows.push({
      figure: "recovery: replicas: 3, RELAY_ENV's stream leader kill -9 → the agent's next envelope published",
      p50: secs(v.publishResumedMs),
      tail: `answered after ${secs(v.answeredMs)}`,
      target: `≤ 10 s: ${judged(v.publishResumedMs <= 10_000)}`,
      baseline: "",
    });
  } else {
    failed = true;
    rows.push(failedRow("replicas: 3: latency and stream leader kill", cluster));
  }

  notes.push(
    "transport: nats: one nats-server 2.9 on localhost (`-c`, JetStream, a temporary store, `max_payload: 8MB`), the relay's root serving s1 and s2 through its built-in agent, an agent's root (`relay agent`, name laptop) serving s3 and s4, and beside them a `transport: files` root with s1-s4, all `relay run` with POLL_INTERVAL_MS=1000 and the zero-latency Messages API stand-in (each relay its own). The issue asks for `--dry-run`, which makes no API call and so has no request to stamp: the stand-in at zero latency takes its place, and its cost is the same in both transports, so it cancels in the difference.",
    `Added latency: one envelope at a time, each answered, its \`input.txt\` deleted and the relay at rest before the next, the three lanes (files s1; nats, the agent's s3; nats, the relay's own s1) in a random order each round after 5 warm-up rounds, 0-20 ms pause before each. (a) runs from just before the rename of \`queue/.NAME.tmp\` to the stand-in's arrival stamp; (b) from the stand-in's \`res.end()\` to the bench seeing \`input.txt\` (fs.watch plus a 2 ms stat poll). The figure is the difference of the nats and files percentiles.`,
    "Resident memory: /proc/PID/status of both relays and the agent right after the latency envelopes (the same number through each). Idle CPU: /proc/PID/stat utime+stime (10 ms ticks) of the NATS relay, the agent, nats-server and the files relay, all idle side by side after the throughput run, the bench only waiting, over two windows one after the other: the first from a few seconds after the run (until 2026-11-29 11:38 the only one), which still holds the garbage collections that follow 600 envelopes, and the second, the settled idle, on which the row is judged.",
    "Recovery: kill -9 of nats-server (`restart()` keeps its ports and store), an envelope renamed into the agent's `queue/` while it is down, restart after 1 s; the time runs from the server answering /healthz again. Dead connection: the agent restarted behind a TCP proxy (test/support/tcp-proxy.ts) whose open connections then go silently dead (`stale()`: nothing forwarded, no RST, new connections pass); the figure is the time of the agent's \"NATS connection lost\" log record after that instant. Stream leader: the member /jsz names as RELAY_ENV's leader is killed with -9 and an envelope renamed into the agent's `queue/` at once; the figure is the time of the agent's next \"envelope published\" log record (a PubAck).",
  );
  return { rows, notes, failed };
}

