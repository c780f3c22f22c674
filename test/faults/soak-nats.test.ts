// The seeded NATS soak (issue 16, CONTRACT §11): the relay's root and two agents' roots ("hosts"
// A and B) relay envelopes through one nats-server while the soak kills the relay, agent A,
// agent B and nats-server with SIGKILL at random instants (fixed seed), starts some lives with a
// crash point (RELAY_CRASH_AT), and cuts the links: each process reaches nats-server through a
// TCP proxy (test/support/tcp-proxy.ts) that is reset, blackholed or left stale for a while. A
// supervisor starts every killed process again. A simulated CC side per session sends envelopes
// and takes each reply as CONTRACT §5 says (read input.txt and input.json, delete input.txt),
// sometimes holding a reply a while to see that nothing overwrites it.
//
// Then a drain (no more faults, no more input) that waits on progress, not a fixed time, and the
// checks: every envelope is a turn exactly once in the relay's history; exactly one reply per
// envelope was handed over as input.txt (every hand-over the CC sides saw is counted), with the
// input.json that names it and the text the history holds, in the order the session sent them;
// no input.txt was overwritten; nothing is left behind (queue/, dispatch/, temporary files) on
// any root. The summary line gives the kills per component, the partitions per mode, the crash
// points hit and the deduplications that absorbed a repeat, counted from the logs.
//
// `npm run soak:nats` runs SOAK_KILLS=150; CI runs SOAK_KILLS=40; SOAK_SEED replays a run.
// Without SOAK_KILLS (`npm test`) a short one runs, like the files soak's. Skipped, saying why,
// when nats-server is not installed.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { killAll, readHistory, readStatusJson, Scope, startAgent } from "../support/cli.js";
import { agentNatsConfig, type NatsSession, relayNatsConfig } from "../support/nats-roots.js";
import { type NatsServer, natsSkipReason, startNatsServer } from "../support/nats-server.js";
import { CcSide, type HandOver } from "../support/soak-cc-side.js";
import { pick, prng } from "../support/soak-random.js";
import { Supervisor } from "../support/soak-supervisor.js";
import { startTcpProxy, type TcpProxy } from "../support/tcp-proxy.js";

const KILLS = Number(process.env.SOAK_KILLS ?? "8");
const SEED = Number(process.env.SOAK_SEED ?? "20261129");
/** at least 5 (issue 16), one more for every 8 kills past 40 */
const PARTITIONS = KILLS >= 40 ? Math.max(5, Math.round(KILLS / 8)) : Math.max(1, Math.round(KILLS / 8));
/** The drain gives up only after this long with no reply handed over and no envelope published: a stale link takes its pings (10 s, 3 missed) to find. */
const DRAIN_STALL_MS = 90_000;
/** The share of lives started with a crash point. */
const CRASH_SHARE = 0.3;
/** Envelopes a session may have sent and not yet had answered. */
const OUTSTANDING = 3;

const SESSIONS: (NatsSession & { root: "relay" | "agentA" | "agentB" })[] = [
  { id: "r1", root: "relay" },
  { id: "a1", host: "hosta", root: "agentA" },
  { id: "a2", host: "hosta", root: "agentA", systemPrompt: "a2 has a conversation of its own" },
  { id: "b1", host: "hostb", root: "agentB" },
  { id: "b2", host: "hostb", root: "agentB", systemPrompt: "b2 has a conversation of its own" },
];
const COMPONENTS = ["relay", "agentA", "agentB", "nats"] as const;
type Component = (typeof COMPONENTS)[number];
type Link = Exclude<Component, "nats">;
const LINKS: readonly Link[] = ["relay", "agentA", "agentB"];
/** How often each component is the one killed. */
const KILL_WEIGHTS: Record<Component, number> = { relay: 0.3, agentA: 0.275, agentB: 0.275, nats: 0.15 };
/** The longest a kill waits for a reply to be handed over since the one before. */
const KILL_GAP_MS = 4_000;

// The relay passes its own points and its built-in agent's (its root's sessions); an agent its own.
const AGENT_POINTS = ["agent-after-publish", "agent-after-meta", "agent-after-rename", "agent-after-ack"] as const;
const RELAY_POINTS = ["before-call", "after-call", "after-commit", "after-publish", "nats-before-ack", "nats-slot-staged", "nats-slot-published", ...AGENT_POINTS] as const;

type PartitionMode = "reset" | "blackhole" | "stale";
const MODES: readonly PartitionMode[] = ["reset", "blackhole", "stale"];

export interface NatsSoakFigures {
  seed: number;
  seconds: number;
  kills: Record<Component, number>;
  partitions: Record<PartitionMode, number>;
  crashPoints: Record<string, number>;
  envelopes: number;
  handOvers: number;
  lost: number;
  doubled: number;
  dedups: Record<string, number>;
  drainMs: number;
}

let server: NatsServer | null = null;
const proxies: TcpProxy[] = [];
const supervisors: Supervisor[] = [];
/** the roots, removed unless the soak failed (then their logs are the evidence) */
const roots: string[] = [];
let keepRoots = false;
if (natsSkipReason) console.warn(`skipping the NATS soak: ${natsSkipReason}`);

beforeAll(async () => {
  if (!natsSkipReason) server = await startNatsServer();
}, 60_000);

afterAll(async () => {
  await killAll();
  for (const p of proxies.splice(0)) await p.close();
  await server?.stop();
  if (!keepRoots) for (const r of roots) rmSync(r, { recursive: true, force: true });
}, 120_000);

/** Every JSON line of a root's logs (rotated files too); a line torn by a kill is skipped. */
function logRecords(root: string): Record<string, unknown>[] {
  const dir = join(root, "logs");
  const out: Record<string, unknown>[] = [];
  for (const name of readdirSync(dir).filter((n) => /^relay(\.\d+)?\.jsonl$/.test(n))) {
    for (const line of readFileSync(join(dir, name), "utf8").split("\n")) {
      try {
        out.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // torn or empty
      }
    }
  }
  return out;
}

/**
 * Repeats that an id-based check absorbed, from the logs: an agent's publish answered by a
 * duplicate PubAck or refused as "wrong last sequence" (published before a kill), the relay taking
 * an envelope it had taken before (a redelivery: the history shows it answered once), and the
 * relay publishing a reply it had published before (the slot's expected sequence and
 * Nats-Msg-Id keep it one hand-over).
 */
function dedupsFromLogs(rootsByName: Record<string, string>): Record<string, number> {
  const all = Object.values(rootsByName).flatMap(logRecords);
  const repeats = (msg: string, key: string): number => {
    const counts = new Map<string, number>();
    for (const r of all) if (r.msg === msg && typeof r[key] === "string") counts.set(r[key], (counts.get(r[key]) ?? 0) + 1);
    return [...counts.values()].reduce((sum, n) => sum + n - 1, 0);
  };
  return {
    duplicatePubAck: all.filter((r) => r.msg === "envelope published" && r.duplicate === true).length,
    publishWrongLastSequence: all.filter((r) => r.msg === "envelope was published already").length,
    envelopeRedelivered: repeats("envelope taken", "envelope"),
    replyPublishedAgain: repeats("reply dispatched", "reply"),
  };
}

/** Every file left in a root that should not be: queue/ entries, rejections, dispatch/ leftovers, temporary files anywhere. */
function leftovers(root: string, what: string, sessions: string[]): string[] {
  const problems: string[] = [];
  const queued = readdirSync(join(root, "queue")).filter((n) => n !== ".rejected");
  if (queued.length > 0) problems.push(`${what}: left in queue/: ${queued.join(", ")}`);
  const rejected = existsSync(join(root, "queue", ".rejected")) ? readdirSync(join(root, "queue", ".rejected")) : [];
  if (rejected.length > 0) problems.push(`${what}: rejected: ${rejected.join(", ")}`);
  for (const session of sessions) {
    const dir = join(root, "dispatch", session);
    const left = existsSync(dir) ? readdirSync(dir).filter((n) => n !== "input.json") : [];
    if (left.length > 0) problems.push(`${what}: left in dispatch/${session}/: ${left.join(", ")}`);
  }
  const walk = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? (e.name === "logs" ? [] : walk(join(dir, e.name))) : /\.tmp$|\.tmp-/.test(e.name) ? [join(dir, e.name)] : []));
  const temporaries = walk(root);
  if (temporaries.length > 0) problems.push(`${what}: temporary files left: ${temporaries.map((p) => p.slice(root.length + 1)).join(", ")}`);
  if (readdirSync(join(root, "state")).includes("jc_input.txt")) problems.push(`${what}: state/jc_input.txt left behind`);
  return problems;
}

describe.skipIf(natsSkipReason !== null)("the seeded NATS soak", () => {
  it(`relays every envelope exactly once across ${KILLS} random kill -9s of the relay, two agents and nats-server, ${PARTITIONS} partitions and crash points (seed ${SEED})`, async (ctx) => {
    if (!server) throw new Error("no nats-server");
    const nats = server;
    const began = Date.now();
    const problems: string[] = [];
    const random = prng(SEED);
    const scope = await Scope.create(ctx);
    let calls = 0;
    // A reply names the envelope it answers and the call that made it: a repeated call shows as another reply.
    scope.fake.setResponder((req) => `reviewed ${[...req.lastUserText.matchAll(/<(m-\d+)>/g)].at(-1)?.[1] ?? "?"} #c${++calls}`);
    const delays = prng(SEED ^ 0x5eed);
    scope.fake.setDelay(() => 20 + delays() * 200);

    const link: Record<Link, TcpProxy> = { relay: await startTcpProxy({ port: nats.port }), agentA: await startTcpProxy({ port: nats.port }), agentB: await startTcpProxy({ port: nats.port }) };
    proxies.push(...Object.values(link));
    const rootOf: Record<Link, string> = { relay: "", agentA: "", agentB: "" };
    for (const name of LINKS) {
      const root = mkdtempSync(join(tmpdir(), `relay-soak-nats-${name}-`));
      roots.push(root);
      rootOf[name] = root;
    }
    writeFileSync(join(rootOf.relay, "config.yaml"), relayNatsConfig(SESSIONS));
    writeFileSync(join(rootOf.agentA, "config.yaml"), agentNatsConfig("hosta", ["a1", "a2"]));
    writeFileSync(join(rootOf.agentB, "config.yaml"), agentNatsConfig("hostb", ["b1", "b2"]));
    const varsFor = (name: Link) => ({ NATS_URL: `nats://127.0.0.1:${link[name].port}`, POLL_INTERVAL_MS: "100" });

    // Each component draws from its own stream, so its choices replay in order whatever the timing.
    const relay = new Supervisor("relay", (extra) => scope.start(rootOf.relay, { ...varsFor("relay"), ...extra }), RELAY_POINTS, CRASH_SHARE, prng(SEED ^ 1), problems);
    const agentA = new Supervisor("agent A", (extra) => startAgent(rootOf.agentA, { ...varsFor("agentA"), ...extra }), AGENT_POINTS, CRASH_SHARE, prng(SEED ^ 2), problems);
    const agentB = new Supervisor("agent B", (extra) => startAgent(rootOf.agentB, { ...varsFor("agentB"), ...extra }), AGENT_POINTS, CRASH_SHARE, prng(SEED ^ 3), problems);
    const processes: Record<Link, Supervisor> = { relay, agentA, agentB };
    supervisors.push(relay, agentA, agentB);
    // The relay first: its first start creates the streams and buckets the agents verify.
    await relay.start();
    await Promise.all([agentA.start(), agentB.start()]);

    // The CC sides, ticking until the end.
    const ccRandom = prng(SEED ^ 4);
    const sides = SESSIONS.map((s) => new CcSide(rootOf[s.root], s.id, ccRandom, problems));
    let markers = 0;
    let sending = true;
    let ticking = true;
    const ticker = (async () => {
      while (ticking) {
        const now = Date.now();
        for (const side of sides) {
          side.take(now);
          if (sending && side.outstanding() < OUTSTANDING && ccRandom() < 0.15) side.send(`m-${++markers}`);
        }
        await sleep(25);
      }
    })();

    // nats-server: killed with -9, started again on the same ports and store a moment later.
    let natsKills = 0;
    /** nats-server is up and healthy (not down, not restarting): only then is it killed again */
    let natsReady = true;
    let natsBack: Promise<void> = Promise.resolve();
    const natsRandom = prng(SEED ^ 5);
    const killNats = async () => {
      natsReady = false;
      await nats.kill9();
      natsKills += 1;
      natsBack = sleep(natsRandom() * 1_500)
        .then(() => nats.restart())
        .then(() => {
          natsReady = true;
        })
        .catch((err: unknown) => {
          problems.push(`nats-server did not come back: ${String(err)}`);
        });
    };

    // Partitions, spread over the kills, every mode in turn (in a seeded order), each on one link or on all three.
    const partitions: Record<PartitionMode, number> = { reset: 0, blackhole: 0, stale: 0 };
    const modeOrder = [...MODES].sort(() => random() - 0.5);
    let partitionsDone = 0;
    let healing: Promise<void> = Promise.resolve();
    const partition = () => {
      const mode = modeOrder[partitionsDone % modeOrder.length] ?? "reset";
      partitionsDone += 1;
      partitions[mode] += 1;
      const targets = random() < 0.3 ? LINKS : [pick(random, LINKS)];
      for (const t of targets) {
        if (mode === "reset") link[t].reset();
        else if (mode === "blackhole") link[t].blackhole();
        else link[t].stale(); // dead for good: only the client's pings (or a restart) find it
      }
      const ms = 1_500 + random() * 3_500;
      healing = healing.then(() => sleep(ms)).then(() => {
        for (const t of targets) link[t].heal();
      });
    };
    const partitionEvery = Math.max(1, Math.floor(KILLS / PARTITIONS));

    // The kills: a random component that is up, after a random while (sometimes a longer calm),
    // and once work has moved since the last kill (a reply handed over), or KILL_GAP_MS without:
    // so kills land while envelopes flow, not on processes that are still finding each other.
    const handedOver = () => sides.reduce((n, s) => n + s.handOvers.length, 0);
    let lastKill = { at: Date.now(), handed: 0 };
    for (let kill = 0; kill < KILLS; ) {
      await sleep(random() < 0.15 ? 1_500 + random() * 1_500 : 150 + random() * 850);
      while (handedOver() === lastKill.handed && Date.now() - lastKill.at < KILL_GAP_MS) await sleep(50);
      if (partitionsDone < PARTITIONS && partitionsDone * partitionEvery <= kill) partition();
      const roll = random();
      let acc = 0;
      const wanted = COMPONENTS.find((c) => (acc += KILL_WEIGHTS[c]) > roll) ?? "nats";
      if (wanted === "nats") {
        if (!natsReady) continue;
        await killNats();
      } else if (!(await processes[wanted].kill())) continue;
      kill += 1;
      lastKill = { at: Date.now(), handed: handedOver() };
    }
    while (partitionsDone < PARTITIONS) partition();

    // Drain: no more faults, no more input. Heal every link, let nats-server come back, and wait
    // until every envelope's reply has been handed over, for as long as there is progress.
    sending = false;
    for (const s of Object.values(processes)) s.crashPointsOff = true;
    await healing;
    for (const l of Object.values(link)) l.heal();
    await natsBack;
    if (!nats.running()) await nats.restart();
    const drainStart = Date.now();
    const queued = () => sides.reduce((n, s) => n + readdirSync(join(s.root, "queue")).filter((f) => f.endsWith(".json")).length, 0);
    let progressAt = Date.now();
    let lastCounts = "";
    for (;;) {
      const handed = sides.reduce((n, s) => n + s.handOvers.length, 0);
      const sent = sides.reduce((n, s) => n + s.sent.length, 0);
      const waiting = queued();
      if (handed >= sent && waiting === 0) break;
      const counts = `${handed}/${waiting}`;
      if (counts !== lastCounts) {
        lastCounts = counts;
        progressAt = Date.now();
      }
      if (Date.now() - progressAt > DRAIN_STALL_MS) {
        problems.push(`the drain stalled for ${DRAIN_STALL_MS / 1000} s with ${handed} of ${sent} replies handed over and ${waiting} envelopes in the queues`);
        break;
      }
      await sleep(50);
    }
    const drainMs = Date.now() - drainStart;
    await sleep(2_000); // a doubled reply would show by now
    ticking = false;
    await ticker;
    for (const side of sides) side.take(Date.now(), false);
    await Promise.all(Object.values(processes).map((s) => s.stop()));
    for (const side of sides) side.take(Date.now(), false); // anything delivered while stopping (a double) is seen too

    // ---- The checks, each failure spelled out.
    const sentTo = new Map<string, string>();
    for (const side of sides) for (const m of side.sent) sentTo.set(m, side.session);
    const handOvers: HandOver[] = sides.flatMap((s) => s.handOvers);
    const byMarker = new Map<string, HandOver[]>();
    for (const h of handOvers) {
      const found = h.text.match(/m-\d+/g) ?? [];
      if (found.length !== 1) problems.push(`${h.session}: input.txt ${JSON.stringify(h.text)} names ${found.length} envelopes`);
      for (const m of found) byMarker.set(m, [...(byMarker.get(m) ?? []), h]);
    }
    const lost = [...sentTo.keys()].filter((m) => !byMarker.has(m));
    const doubled = [...byMarker].filter(([, list]) => list.length > 1);
    if (lost.length > 0) problems.push(`lost (never handed over): ${lost.map((m) => `${m} for ${sentTo.get(m)}`).join(", ")}`);
    for (const [m, list] of doubled) problems.push(`${m} handed over ${list.length} times: ${list.map((h) => `${h.session} ${JSON.stringify(h.text)} reply_id=${String(h.replyId)} at ${new Date(h.at).toISOString()}`).join("; ")}`);
    for (const [m, list] of byMarker) {
      const session = sentTo.get(m);
      if (session === undefined) {
        problems.push(`${m} handed over but never sent`);
        continue;
      }
      for (const h of list) {
        if (h.session !== session) problems.push(`${m} for ${session} handed over to ${h.session}`);
        if (h.source !== "envelope" || h.inReplyTo !== m) problems.push(`${m}: input.json said source ${String(h.source)}, in_reply_to ${String(h.inReplyTo)}`);
      }
    }
    for (const side of sides) {
      const ids = side.handOvers.map((h) => String(h.replyId));
      const twice = ids.filter((id, i) => ids.indexOf(id) !== i);
      if (twice.length > 0) problems.push(`${side.session}: reply_id handed over more than once: ${[...new Set(twice)].join(", ")}`);
      // Replies in the order the session sent its envelopes (a host publishes oldest first).
      const order = side.handOvers.map((h) => Number(/m-(\d+)/.exec(h.text)?.[1] ?? -1));
      if (order.some((n, i) => i > 0 && n < (order[i - 1] ?? 0))) problems.push(`${side.session}: replies out of order: m-${order.join(", m-")}`);
    }
    // The relay's history: every envelope a turn exactly once, with the reply that was handed over.
    const turns = Object.values(await readHistory(rootOf.relay)).flatMap((lines) => lines.filter((l) => l.kind === "turn"));
    const turnsOf = new Map<string, string[]>();
    for (const t of turns) for (const m of t.text.match(/<(m-\d+)>/g) ?? []) turnsOf.set(m.slice(1, -1), [...(turnsOf.get(m.slice(1, -1)) ?? []), t.reply ?? ""]);
    for (const [m] of sentTo) {
      const replies = turnsOf.get(m) ?? [];
      if (replies.length !== 1) problems.push(`${m} is in the history ${replies.length} times`);
      const handed = byMarker.get(m)?.[0]?.text;
      if (replies.length === 1 && handed !== undefined && replies[0] !== handed) problems.push(`${m}: handed over ${JSON.stringify(handed)} but the history says ${JSON.stringify(replies[0])}`);
    }
    for (const m of turnsOf.keys()) if (!sentTo.has(m)) problems.push(`${m} in the history but never sent`);
    // Nothing left behind on any root, and the relay owes no session a reply.
    for (const name of LINKS) problems.push(...leftovers(rootOf[name], name, SESSIONS.filter((s) => s.root === name).map((s) => s.id)));
    const status = await readStatusJson(rootOf.relay);
    for (const [session, s] of Object.entries(status.sessions)) if (s.pending !== 0 || s.awaitingAck) problems.push(`relay status: ${session} has ${s.pending} pending, awaitingAck ${String(s.awaitingAck)}`);

    const crashPoints: Record<string, number> = {};
    for (const s of Object.values(processes)) for (const [p, n] of Object.entries(s.counts.crashPoints)) crashPoints[p] = (crashPoints[p] ?? 0) + n;
    const figures: NatsSoakFigures = {
      seed: SEED,
      seconds: Math.round((Date.now() - began) / 1000),
      kills: { relay: relay.counts.kills, agentA: agentA.counts.kills, agentB: agentB.counts.kills, nats: natsKills },
      partitions,
      crashPoints,
      envelopes: sentTo.size,
      handOvers: handOvers.length,
      lost: lost.length,
      doubled: doubled.length,
      dedups: dedupsFromLogs(rootOf),
      drainMs,
    };
    console.log(`nats soak figures: ${JSON.stringify(figures)}`);
    if (problems.length > 0) {
      keepRoots = true;
      console.log(`nats soak FAILED (seed ${SEED}); roots kept with their logs: relay ${rootOf.relay}, agent A ${rootOf.agentA}, agent B ${rootOf.agentB}`);
    }
    expect(problems, `seed ${SEED}; roots: ${Object.values(rootOf).join(" ")}`).toEqual([]);
    expect(figures.lost).toBe(0);
    expect(figures.doubled).toBe(0);
    // The soak did what it is for: every component killed, every partition mode, crash points hit, work done.
    expect(figures.handOvers).toBe(figures.envelopes);
    expect(figures.envelopes).toBeGreaterThanOrEqual(Math.min(10, KILLS));
    if (KILLS >= 40) {
      for (const c of COMPONENTS) expect(figures.kills[c], `kills of ${c}`).toBeGreaterThan(0);
      for (const m of MODES) expect(partitions[m], `partitions in mode ${m}`).toBeGreaterThan(0);
      expect(Object.values(crashPoints).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
    }
  }, 3_600_000);
});
