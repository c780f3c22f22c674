// One function per figure of issue 4. Each starts the real CLI (`relay run`) on a fresh root
// against its own Messages API stand-in and drives it from the CC side.
import { spawn } from "node:child_process";
import { readFileSync, renameSync, unlinkSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { entryChars, type HistoryEntry, parseHistory } from "../src/history/conversation-store.js";
import { type ApiUsage, costUsd, type Usage, usageFromApi } from "../src/costs/pricing.js";
import type { FakeAnthropic, RecordedRequest } from "../test/support/fake-anthropic.js";
import {
  API_KEY,
  clockTicksPerSecond,
  closeStandIn,
  commitEnvelopeSync,
  cpuTicks,
  type CpuTimes,
  type Daemon,
  type Design,
  dropEnvelopeSync,
  exists,
  fsyncDirSync,
  envelopeJson,
  inputPath,
  isQuiet,
  log,
  memoryKb,
  nowMs,
  randomBetween,
  runCli,
  spawnRelay,
  stageEnvelopeSync,
  startDaemon,
  startStandIn,
  trackChild,
  usesInotify,
  waitRelay,
  Watcher,
  writeDurableSync,
} from "./lib.js";
import { prng } from "../test/support/soak-random.js";

// ---------------------------------------------------------------------------
// Text generation (deterministic, word-like, so strings look like real prose)

const WORDS =
  "the relay review session queue reply cache prefix turn agent patch test build merge branch commit issue fix error api token cost latency watch poll file state history summary model prompt decision next step check run green red failing passing".split(
    " ",
  );

/** `prefix` followed by words up to exactly `chars` characters (lines of about 80). */
export function prose(prefix: string, chars: number, seed: number): string {
  const rnd = prng(seed);
  let out = prefix;
  let line = prefix.length;
  while (out.length < chars) {
    const w = WORDS[Math.floor(rnd() * WORDS.length)] ?? "word";
    const sep = line > 76 ? "\n" : " ";
    line = sep === "\n" ? 0 : line + 1;
    out += sep + w;
    line += w.length;
  }
  return out.slice(0, chars).trimEnd() + ".";
}

// ---------------------------------------------------------------------------
// Figures 1-4: latencies

export interface LatencyResult {
  /** 1. envelope renamed into queue/ → request at the API (ms) */
  envToApi: number[];
  /** 2. API reply sent → input.txt visible (ms) */
  replyToInput: number[];
  /** 3. CC deletes input.txt → next waiting reply visible (ms) */
  ackToNext: number[];
  /** 4. state/jc_input.txt renamed into place → input.txt visible (ms) */
  jcToInput: number[];
  /** 4b. `relay jc` spawned → input.txt visible, and → the CLI exited (ms) */
  jcCliToInput: number[];
  jcCliExit: number[];
  inotify: boolean;
  daemon: Daemon;
  /** stop the daemon and its stand-in (kept running for the `relay status` figure) */
  close(): Promise<void>;
}

/**
 * Each cycle: envelope A (→ figures 1 and 2), envelope B while A's input.txt is still there
 * (→ figure 1; its reply waits), then CC deletes input.txt (→ figure 3). Then the JC samples.
 * `gapMs`: a random pause before each action, so the action falls at a random phase of the
 * daemon's poll timer (this matters for the seed design, whose latency is that phase).
 */
export async function latency(design: Design, opts: { cycles: number; jc: number; jcCli: number; gapMs: [number, number] }): Promise<LatencyResult> {
  const fake = await startStandIn();
  const sent: number[] = [];
  fake.setResponder((r) => {
    const i = sent.length;
    sent.push(NaN);
    // runs right after the stand-in's synchronous reply() has called res.end()
    queueMicrotask(() => {
      sent[i] = nowMs();
    });
    return `ack: ${r.lastUserText.slice(0, 60)}`;
  });
  const session = "session-1";
  const daemon = await startDaemon({ label: "latency", design, fake, config: { sessions: [session, "session-2"] } });
  const { root } = daemon;
  const input = inputPath(root, session);
  const watcher = new Watcher([join(root, "dispatch", session)]);
  const gap = () => sleep(randomBetween(opts.gapMs[0], opts.gapMs[1]));
  const quiet = () => waitRelay(root, isQuiet, 15_000, "the relay to be at rest");
  const result: LatencyResult = { envToApi: [], replyToInput: [], ackToNext: [], jcToInput: [], jcCliToInput: [], jcCliExit: [],
    inotify: usesInotify(daemon.proc.pid),
    daemon,
    async close() {
      await daemon.stop();
      await closeStandIn(fake);
    },
  };

  try {
    // one warm-up turn (first API call: connection set-up, lazy compilation), not counted
    dropEnvelopeSync(root, "warmup", session, "warm-up envelope");
    await watcher.until(() => exists(input), 15_000, "the warm-up reply");
    unlinkSync(input);
    await quiet();

    for (let i = 0; i < opts.cycles; i++) {
      const base = fake.requests.length;
      await gap();
      const tA = dropEnvelopeSync(root, `cycle-${i}-a`, session, `cycle ${i}, envelope A: the build is green, next step?`);
      const seenA = await watcher.until(() => exists(input), 15_000, `reply A of cycle ${i}`);
      const reqA = fake.requests[base];
      const sentA = sent[base];
      if (reqA && sentA !== undefined) {
        result.envToApi.push(reqA.at - tA);
        result.replyToInput.push(seenA - sentA);
      }

      await gap();
      const tB = dropEnvelopeSync(root, `cycle-${i}-b`, session, `cycle ${i}, envelope B: and the tests pass too.`);
      await waitRelay(
        root,
        (s) => (s.pending[session] ?? 0) >= 1 && !s.busy && (s.state === "idle" || s.state === "awaitingAck"),
        15_000,
        `reply B of cycle ${i} to wait in the outbox`,
      );
      const reqB = fake.requests[base + 1];
      if (reqB) result.envToApi.push(reqB.at - tB);

      await gap();
      const tDel = nowMs();
      unlinkSync(input);
      const seenB = await watcher.until(() => exists(input), 15_000, `reply B of cycle ${i} after the acknowledgement`);
      result.ackToNext.push(seenB - tDel);
      unlinkSync(input);
      await quiet();
    }

    // 4. JC's direct answer, written atomically by the bench so the rename can be timestamped
    for (let i = 0; i < opts.jc; i++) {
      await gap();
      const tmp = join(root, "state", `.bench-jc-${i}.tmp`);
      writeDurableSync(tmp, `@${session}: x ${i}\n`);
      const t0 = nowMs();
      renameSync(tmp, join(root, "state", "jc_input.txt"));
      const seen = await watcher.until(() => exists(input), 15_000, `JC answer ${i}`);
      result.jcToInput.push(seen - t0);
      unlinkSync(input);
      await quiet();
    }

    // 4b. the full `relay jc` command (process start included)
    for (let i = 0; i < opts.jcCli; i++) {
      await gap();
      const t0 = nowMs();
      const cli = spawnRelay(["jc", `@${session}: cli ${i}`, "--root", root], "relay", null);
      const seen = await watcher.until(() => exists(input), 20_000, `relay jc answer ${i}`);
      const exit = await cli.exited;
      if (exit.code !== 0) throw new Error(`relay jc exited ${exit.code}: ${cli.output()}`);
      result.jcCliToInput.push(seen - t0);
      result.jcCliExit.push(exit.at - t0);
      unlinkSync(input);
      await quiet();
    }
  } finally {
    watcher.close();
  }
  return result;
}

// ---------------------------------------------------------------------------
// Figure 8: `relay status` cold start

export async function statusColdStart(root: string, runs: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const r = await runCli(["status", "--root", root]);
    if (r.code !== 0) throw new Error(`relay status exited ${r.code}: ${r.output.slice(-500)}`);
    times.push(r.ms);
  }
  return times;
}

// ---------------------------------------------------------------------------
// Figure 5: throughput

export interface ThroughputResult {
  n: number;
  completed: number;
  elapsedMs: number;
  perSecond: number;
  timedOut: boolean;
  sessions: number;
  /** completions per second over the first and the last 100 completions (queue long vs. short) */
  firstRate: number;
  lastRate: number;
}

/**
 * `n` envelopes for several sessions (round robin), written and fsync'd as queue/.NAME.tmp
 * beforehand, then renamed into queue/ in one burst. The CC side deletes each input.txt as soon
 * as it appears; a deletion is a completed dispatch. Rate = completed / (last completion − burst).
 */
export async function throughput(design: Design, n: number, limitMs: number): Promise<ThroughputResult> {
  const fake = await startStandIn();
  const sessions = ["session-1", "session-2", "session-3", "session-4"];
  const daemon = await startDaemon({ label: "throughput", design, fake, config: { sessions } });
  try {
    return await burstThroughput(
      sessions.map((session) => ({ root: daemon.root, session })),
      n,
      limitMs,
    );
  } finally {
    await daemon.stop();
    await closeStandIn(fake);
  }
}

/**
 * The burst behind figure 5, on any layout: envelope i goes to `places[i % places.length]` (a
 * root whose queue/ takes it and whose dispatch/<session>/ gets its reply: with `transport: nats`
 * an agent's root). Staged as queue/.NAME.tmp (fsync'd), renamed in one burst, each input.txt
 * deleted as soon as it appears.
 */
export async function burstThroughput(places: { root: string; session: string }[], n: number, limitMs: number): Promise<ThroughputResult> {
  const watcher = new Watcher(places.map((p) => join(p.root, "dispatch", p.session)));
  const queues = [...new Set(places.map((p) => join(p.root, "queue")))];
  try {
    const staged: { queue: string; name: string }[] = [];
    for (let i = 0; i < n; i++) {
      const place = places[i % places.length] ?? places[0];
      if (!place) throw new Error("no place to drop envelopes");
      const name = `env-${String(i).padStart(5, "0")}`;
      const queue = join(place.root, "queue");
      writeDurableSync(join(queue, `.${name}.tmp`), envelopeJson(place.session, `envelope ${i}: status report, all good, continuing.`));
      staged.push({ queue, name });
    }
    for (const queue of queues) fsyncDirSync(queue);
    let completed = 0;
    let last = 0;
    const times: number[] = [];
    const inputs = places.map((p) => inputPath(p.root, p.session));
    const off = watcher.onChange(() => {
      for (const p of inputs) {
        if (!exists(p)) continue;
        try {
          unlinkSync(p);
          completed++;
          last = nowMs();
          times.push(last);
        } catch {
          // gone already
        }
      }
    });
    const t0 = nowMs();
    for (const { queue, name } of staged) renameSync(join(queue, `.${name}.tmp`), join(queue, `${name}.json`));
    for (const queue of queues) fsyncDirSync(queue);
    let timedOut = false;
    try {
      await watcher.until(() => completed >= n, limitMs, `${n} dispatches`);
    } catch {
      timedOut = true;
    }
    off();
    const end = timedOut ? nowMs() : last;
    const elapsedMs = end - t0;
    const k = Math.min(100, Math.floor(times.length / 2));
    const rate = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined || b <= a ? NaN : (k / (b - a)) * 1000);
    return {
      n,
      completed,
      elapsedMs,
      perSecond: (completed / elapsedMs) * 1000,
      timedOut,
      sessions: new Set(places.map((p) => p.session)).size,
      firstRate: rate(t0, times[k - 1]),
      lastRate: rate(times[times.length - 1 - k], times[times.length - 1]),
    };
  } finally {
    watcher.close();
  }
}

// ---------------------------------------------------------------------------
// Figure 6: CPU of an idle daemon

export interface IdleCpuResult {
  percent: number;
  cpuMs: number;
  wallMs: number;
  inotify: boolean;
}

/** Start a daemon, let it settle for `warmupMs`, then measure utime+stime over `windowMs`. */
export async function idleCpu(design: Design, warmupMs: number, windowMs: number): Promise<IdleCpuResult> {
  const fake = await startStandIn();
  const daemon = await startDaemon({ label: "idle", design, fake, config: { sessions: ["session-1", "session-2"] } });
  try {
    const hz = clockTicksPerSecond();
    await sleep(warmupMs);
    const begin: CpuTimes = cpuTicks(daemon.proc.pid);
    await sleep(windowMs);
    const end: CpuTimes = cpuTicks(daemon.proc.pid);
    const cpuMs = ((end.ticks - begin.ticks) / hz) * 1000;
    const wallMs = end.at - begin.at;
    return { percent: (cpuMs / wallMs) * 100, cpuMs, wallMs, inotify: usesInotify(daemon.proc.pid) };
  } finally {
    await daemon.stop();
    await closeStandIn(fake);
  }
}

// ---------------------------------------------------------------------------
// Figure 7: resident memory with a full history

export interface MemoryResult {
  /** the highest VmRSS sampled (every 10 ms) while the envelopes went through */
  rssMb: number;
  /** VmRSS half a second after the last envelope */
  settledRssMb: number;
  /** VmHWM at the end (the kernel's peak RSS, start-up included) and right after start */
  hwmMb: number;
  startHwmMb: number;
  idleRssMb: number;
  historyChars: number;
  turns: number;
  summarized: boolean;
  statusMs: number[];
}

const HISTORY_CAP = 400_000;

/** state/history/shared.jsonl with turns of about 3,000 characters, just under `target` characters. */
export async function prefillHistory(root: string, target: number): Promise<void> {
  const dir = join(root, "state", "history");
  await mkdir(dir, { recursive: true });
  const lines: string[] = [];
  let chars = 0;
  const start = Date.parse("2026-11-01T09:00:00Z");
  for (let i = 0; ; i++) {
    const at = new Date(start + i * 60_000).toISOString();
    const entry: HistoryEntry = {
      kind: "turn",
      id: `prefill-${i}`,
      session: i % 3 === 0 ? "session-2" : "session-1",
      source: "envelope",
      text: prose(`Report ${i}:`, 1_500, i * 2 + 1),
      reply: prose(`Review ${i}:`, 1_500, i * 2 + 2),
      timestamp: at,
      at,
    };
    const c = entryChars(entry);
    if (chars + c > target) break;
    chars += c;
    lines.push(JSON.stringify(entry));
  }
  await writeFile(join(dir, "shared.jsonl"), `${lines.join("\n")}\n`);
}

export async function memory(design: Design, envelopes: number, statusRuns: number): Promise<MemoryResult> {
  const fake = await startStandIn();
  const session = "session-1";
  const daemon = await startDaemon({
    label: "memory",
    design,
    fake,
    config: { sessions: [session, "session-2"] },
    // leave room for the envelopes below so the history stays whole (no summarization)
    prepare: (root) => prefillHistory(root, HISTORY_CAP - 1_000 - envelopes * 200),
  });
  const { root } = daemon;
  const input = inputPath(root, session);
  const watcher = new Watcher([join(root, "dispatch", session)]);
  try {
    const idle = memoryKb(daemon.proc.pid);
    // VmRSS sampled every 10 ms while the envelopes go through (the peak of a call, not only the rest)
    let maxRss = 0;
    const sample = () => {
      try {
        maxRss = Math.max(maxRss, memoryKb(daemon.proc.pid).rss);
      } catch {
        // exited
      }
    };
    const sampler = setInterval(sample, 10);
    let settled = 0;
    try {
      for (let i = 0; i < envelopes; i++) {
        dropEnvelopeSync(root, `mem-${i}`, session, `envelope ${i}: a short note.`);
        await watcher.until(() => exists(input), 30_000, `reply ${i}`);
        unlinkSync(input);
        await waitRelay(root, isQuiet, 15_000, "the relay to be at rest");
      }
      await sleep(500);
      settled = memoryKb(daemon.proc.pid).rss;
      sample();
    } finally {
      clearInterval(sampler);
    }
    const end = memoryKb(daemon.proc.pid);
    const entries = parseHistory(readFileSync(join(root, "state", "history", "shared.jsonl"), "utf8"));
    const summarized = entries.some((e) => e.kind === "summary") || fake.requests.some((r) => JSON.stringify(r.body).includes("BENCH-SUMMARIZE"));
    const statusMs = statusRuns > 0 ? await statusColdStart(root, statusRuns) : [];
    return {
      rssMb: maxRss / 1024,
      settledRssMb: settled / 1024,
      hwmMb: end.hwm / 1024,
      startHwmMb: idle.hwm / 1024,
      idleRssMb: idle.rss / 1024,
      historyChars: entries.reduce((n, e) => n + entryChars(e), 0),
      turns: entries.filter((e) => e.kind === "turn").length,
      summarized,
      statusMs,
    };
  } finally {
    watcher.close();
    await daemon.stop();
    await closeStandIn(fake);
  }
}

// ---------------------------------------------------------------------------
// Figure 9: billed input cost of a 40-turn conversation

export interface CostResult {
  turns: number;
  model: string;
  systemChars: number;
  relayUsd: number;
  baselineUsd: number;
  ratio: number;
  /** the same usage priced as claude-sonnet-4-6 (reads at 0.1x input instead of 0.05x) */
  altModel: string;
  altRatio: number;
  relayTokens: Usage;
  baselineTokens: Usage;
  /** the relay's ledger agrees with a replay of its own requests against a fresh stand-in */
  ledgerMatchesReplay: boolean;
  maxBreakpoints: number;
}

interface Body {
  model: string;
  system?: { type: string; text: string; cache_control?: unknown }[] | string;
  messages: { role: string; content: { type: string; text: string; cache_control?: unknown }[] | string }[];
}

const zeroUsage = (): Usage => ({ inputTokens: 0, outputTokens: 0, cacheWrite5mTokens: 0, cacheWrite1hTokens: 0, cacheReadTokens: 0 });
const addUsage = (a: Usage, b: Usage): Usage => ({
  inputTokens: a.inputTokens + b.inputTokens,
  outputTokens: a.outputTokens + b.outputTokens,
  cacheWrite5mTokens: a.cacheWrite5mTokens + b.cacheWrite5mTokens,
  cacheWrite1hTokens: a.cacheWrite1hTokens + b.cacheWrite1hTokens,
  cacheReadTokens: a.cacheReadTokens + b.cacheReadTokens,
});
/** What the input side of a call costs: the usage without its output tokens. */
const inputUsd = (model: string, u: Usage): number => costUsd(model, { ...u, outputTokens: 0 }) ?? NaN;

async function post(fake: FakeAnthropic, body: unknown): Promise<Usage> {
  const res = await fetch(`${fake.url}/v1/messages`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-api-key": API_KEY, "anthropic-version": "2026-10-21" },
    body: JSON.stringify(body),
  });
  const json = (await res.json()) as { usage?: ApiUsage; error?: { message: string } };
  if (!res.ok || !json.usage) throw new Error(`stand-in refused a replayed request: ${res.status} ${json.error?.message ?? ""}`);
  return usageFromApi(json.usage);
}

/** The same request with a cache breakpoint on the system prompt only (the seed design). */
function systemOnly(body: Body): Body {
  const copy = structuredClone(body);
  for (const m of copy.messages) {
    if (Array.isArray(m.content)) for (const b of m.content) delete b.cache_control;
  }
  if (typeof copy.system === "string") copy.system = [{ type: "text", text: copy.system, cache_control: { type: "ephemeral" } }];
  else if (copy.system) {
    const last = copy.system[copy.system.length - 1];
    if (last && !last.cache_control) last.cache_control = { type: "ephemeral" };
  }
  return copy;
}

const breakpoints = (body: Body): number => {
  let n = 0;
  const count = (c: { cache_control?: unknown }[] | string | undefined) => {
    if (Array.isArray(c)) for (const b of c) if (b.cache_control) n++;
  };
  count(body.system);
  for (const m of body.messages) count(m.content);
  return n;
};

export async function cost(turns: number): Promise<CostResult> {
  const fake = await startStandIn();
  let replies = 0;
  fake.setResponder(() => {
    replies++;
    return prose(`Reply ${replies}:`, 1_000, 10_000 + replies);
  });
  const session = "session-1";
  const systemPrompt = prose("You are chat-Claude, the reviewer of the benchmark's sessions.", 16_384, 7);
  const daemon = await startDaemon({ label: "cost", design: "relay", fake, config: { sessions: [session], systemPrompt, maxTokens: 4096 } });
  const { root } = daemon;
  const input = inputPath(root, session);
  const watcher = new Watcher([join(root, "dispatch", session)]);
  const extra: FakeAnthropic[] = [];
  try {
    for (let k = 1; k <= turns; k++) {
      dropEnvelopeSync(root, `turn-${String(k).padStart(3, "0")}`, session, prose(`Turn ${k} report:`, 1_000, 20_000 + k));
      await watcher.until(() => exists(input), 30_000, `reply ${k}`);
      unlinkSync(input);
    }
    // the relay's own bill, from its cost ledger (the stand-in's usage numbers, priced by src/pricing.ts)
    const ledger = readFileSync(join(root, "state", "costs.jsonl"), "utf8")
      .split("\n")
      .filter((l) => l.trim() !== "")
      .map((l) => JSON.parse(l) as { model: string; purpose: string; inputTokens: number; cacheWrite5mTokens: number; cacheWrite1hTokens: number; cacheReadTokens: number })
      .filter((r) => r.purpose === "reply");
    if (ledger.length !== turns) throw new Error(`the ledger has ${ledger.length} reply records, expected ${turns}`);
    const bodies = fake.requests.filter((r) => r.response.status === 200).map((r) => r.body as Body);
    if (bodies.length !== turns) throw new Error(`the stand-in answered ${bodies.length} requests, expected ${turns}`);
    const model = bodies[0]?.model ?? "";

    let relayTokens = zeroUsage();
    let relayUsd = 0;
    for (const r of ledger) {
      const u: Usage = { inputTokens: r.inputTokens, outputTokens: 0, cacheWrite5mTokens: r.cacheWrite5mTokens, cacheWrite1hTokens: r.cacheWrite1hTokens, cacheReadTokens: r.cacheReadTokens };
      relayTokens = addUsage(relayTokens, u);
      relayUsd += inputUsd(r.model, u);
    }

    // the same 40 requests with only the system prompt cached, against a fresh stand-in
    const fresh = await startStandIn();
    extra.push(fresh);
    let baselineTokens = zeroUsage();
    let baselineUsd = 0;
    const perCallBaseline: Usage[] = [];
    for (const body of bodies) {
      const u = await post(fresh, systemOnly(body));
      perCallBaseline.push(u);
      baselineTokens = addUsage(baselineTokens, { ...u, outputTokens: 0 });
      baselineUsd += inputUsd(body.model, u);
    }

    // cross-check: the relay's own requests replayed against another fresh stand-in
    const replay = await startStandIn();
    extra.push(replay);
    let replayTokens = zeroUsage();
    for (const body of bodies) replayTokens = addUsage(replayTokens, { ...(await post(replay, body)), outputTokens: 0 });
    const same = (a: Usage, b: Usage) =>
      a.inputTokens === b.inputTokens && a.cacheReadTokens === b.cacheReadTokens && a.cacheWrite5mTokens + a.cacheWrite1hTokens === b.cacheWrite5mTokens + b.cacheWrite1hTokens;

    const altModel = "claude-sonnet-4-6";
    const altRelay = ledger.reduce((n, r) => n + inputUsd(altModel, { inputTokens: r.inputTokens, outputTokens: 0, cacheWrite5mTokens: r.cacheWrite5mTokens, cacheWrite1hTokens: r.cacheWrite1hTokens, cacheReadTokens: r.cacheReadTokens }), 0);
    const altBase = perCallBaseline.reduce((n, u) => n + inputUsd(altModel, u), 0);

    return {
      turns,
      model,
      systemChars: systemPrompt.length,
      relayUsd,
      baselineUsd,
      ratio: relayUsd / baselineUsd,
      altModel,
      altRatio: altRelay / altBase,
      relayTokens,
      baselineTokens,
      ledgerMatchesReplay: same(relayTokens, replayTokens),
      maxBreakpoints: Math.max(...bodies.map(breakpoints)),
    };
  } finally {
    watcher.close();
    await daemon.stop();
    await closeStandIn(fake);
    for (const f of extra) await closeStandIn(f);
    log("cost figure done");
  }
}

// ---------------------------------------------------------------------------
// Figures 10-13: one conversation per session, calls in parallel (max_parallel_calls)

/** Sessions session-1..n, each with a system_prompt of its own (so n conversations). */
function ownConversations(n: number, tag: string): { sessions: string[]; sessionPrompts: Record<string, string> } {
  const sessions = Array.from({ length: n }, (_, i) => `session-${i + 1}`);
  const sessionPrompts = Object.fromEntries(sessions.map((s) => [s, `BENCH-CONV-${tag}-${s}: you review ${s} alone. Answer briefly.`]));
  return { sessions, sessionPrompts };
}

const systemOf = (r: RecordedRequest): string => {
  const sys = (r.body as { system?: unknown } | null)?.system;
  if (typeof sys === "string") return sys;
  return Array.isArray(sys) ? sys.map((b: { text?: string }) => b.text ?? "").join("\n") : "";
};

/** The first request at or after `from` whose body contains `marker` (later requests carry it in their history). */
export function requestWith(fake: FakeAnthropic, marker: string, from = 0): RecordedRequest | undefined {
  for (let i = from; i < fake.requests.length; i++) {
    const r = fake.requests[i];
    if (r && JSON.stringify(r.body).includes(marker)) return r;
  }
  return undefined;
}

/** Poll (2 ms) until `get` returns something; reject after `timeoutMs`. */
export async function pollFor<T>(get: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = get();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(2);
  }
}

/** One envelope per session through a zero-latency API (first calls: connections, lazy compilation), then at rest. */
async function warmUp(root: string, sessions: string[], watcher: Watcher, label: string): Promise<void> {
  for (const s of sessions) {
    dropEnvelopeSync(root, `${label}-warmup-${s}`, s, `warm-up envelope for ${s}`);
    await watcher.until(() => exists(inputPath(root, s)), 30_000, `the warm-up reply of ${s}`);
    unlinkSync(inputPath(root, s));
  }
  await waitRelay(root, isQuiet, 30_000, "the relay to be at rest after the warm-up");
}

export interface ParallelResult {
  /** per repetition: the burst (first rename) → the last of the replies visible (ms) */
  elapsedMs: number[];
  /** per repetition: the most requests in flight at the stand-in at once */
  maxInFlight: number[];
  replies: number;
  latencyMs: number;
}

/**
 * Figure 10. Four sessions with a conversation each; the stand-in answers every request after
 * `latencyMs` (each request sleeps on its own timer, so concurrent requests overlap). Two
 * envelopes per session are staged, then renamed into queue/ in one burst; the CC side deletes
 * each input.txt as soon as it appears. Repeated `reps` times from rest.
 */
export async function parallel(reps: number, latencyMs = 2_000): Promise<ParallelResult> {
  const fake = await startStandIn();
  const { sessions, sessionPrompts } = ownConversations(4, "PAR");
  const daemon = await startDaemon({ label: "parallel", design: "relay", fake, config: { sessions, sessionPrompts } });
  const { root } = daemon;
  const watcher = new Watcher(sessions.map((s) => join(root, "dispatch", s)));
  const inputs = sessions.map((s) => inputPath(root, s));
  const result: ParallelResult = { elapsedMs: [], maxInFlight: [], replies: sessions.length * 2, latencyMs };
  try {
    await warmUp(root, sessions, watcher, "parallel");
    fake.setLatency(latencyMs);
    for (let rep = 0; rep < reps; rep++) {
      const names: string[] = [];
      for (let k = 0; k < 2; k++) {
        for (const s of sessions) {
          const name = `par-${rep}-${k}-${s}`;
          stageEnvelopeSync(root, name, s, `repetition ${rep}, envelope ${k} of ${s}: status report, continuing.`);
          names.push(name);
        }
      }
      fsyncDirSync(join(root, "queue"));
      let seen = 0;
      let last = 0;
      const off = watcher.onChange(() => {
        for (const p of inputs) {
          if (!exists(p)) continue;
          try {
            unlinkSync(p);
            seen++;
            last = nowMs();
          } catch {
            // gone already
          }
        }
      });
      try {
        fake.resetConcurrency();
        const t0 = commitEnvelopeSync(root, names[0] ?? "");
        for (const name of names.slice(1)) commitEnvelopeSync(root, name);
        await watcher.until(() => seen >= names.length, 60_000 + names.length * latencyMs * 2, `${names.length} replies (repetition ${rep}; ${seen} so far)`);
        result.elapsedMs.push(last - t0);
        result.maxInFlight.push(fake.concurrency().max);
      } finally {
        off();
      }
      await waitRelay(root, isQuiet, 60_000, "the relay to be at rest");
      log(`parallel ${rep + 1}/${reps}: ${Math.round(result.elapsedMs.at(-1) ?? NaN)} ms, max ${result.maxInFlight.at(-1)} in flight`);
    }
    return result;
  } finally {
    watcher.close();
    await daemon.stop();
    await closeStandIn(fake);
  }
}

export interface IsolationResult {
  /** B's envelope renamed into queue/ → B's request at the stand-in (ms), while A's call was in flight */
  bToApi: number[];
  /** whether a B request had to wait for A's answer (then sampling stopped) */
  blocked: boolean;
  aDelayMs: number;
}

/**
 * Figure 11. Two conversations A and B (sessions with system prompts of their own). The
 * stand-in holds every request of A for `aDelayMs`; once A's call is at the stand-in, envelopes
 * for B are renamed into queue/ one after the other (each answered, its input.txt deleted, before
 * the next) for as long as A's call lasts, at most `samples` of them.
 */
export async function isolation(aDelayMs: number, samples: number): Promise<IsolationResult> {
  const fake = await startStandIn();
  const { sessions, sessionPrompts } = ownConversations(2, "ISO");
  const [a, b] = sessions as [string, string];
  const daemon = await startDaemon({ label: "isolation", design: "relay", fake, config: { sessions, sessionPrompts } });
  const { root } = daemon;
  const watcher = new Watcher(sessions.map((s) => join(root, "dispatch", s)));
  const result: IsolationResult = { bToApi: [], blocked: false, aDelayMs };
  try {
    await warmUp(root, sessions, watcher, "isolation");
    const aMarker = sessionPrompts[a] ?? "";
    fake.setDelay((r) => (r.system.includes(aMarker) ? aDelayMs : 0));
    const base = fake.requests.length;
    dropEnvelopeSync(root, "iso-a", a, "ISO-A: a long review, please take your time.");
    const reqA = await pollFor(() => requestWith(fake, "ISO-A:", base), 30_000, "A's request at the stand-in");
    await sleep(200);
    const inputB = inputPath(root, b);
    for (let k = 0; k < samples; k++) {
      if (reqA.sentAt !== undefined) break; // A answered: no longer isolation
      const marker = `ISO-B-${k}:`;
      stageEnvelopeSync(root, `iso-b-${k}`, b, `${marker} a quick question while A is busy.`);
      const t0 = commitEnvelopeSync(root, `iso-b-${k}`);
      const reqB = await pollFor(() => requestWith(fake, marker, base), aDelayMs + 60_000, `B's request ${k}`);
      result.bToApi.push((reqB.receivedAt ?? reqB.at) - t0);
      if (reqA.sentAt !== undefined && reqA.sentAt <= (reqB.receivedAt ?? reqB.at)) {
        result.blocked = true;
        break;
      }
      await watcher.until(() => exists(inputB), 30_000, `B's reply ${k}`);
      unlinkSync(inputB);
      await sleep(100);
    }
    if (systemOf(reqA).includes(aMarker) === false) throw new Error("A's request does not carry A's system prompt");
    return result;
  } finally {
    fake.setDelay(null);
    watcher.close();
    await daemon.stop();
    await closeStandIn(fake);
  }
}

export interface LoopResult {
  /** envelope renamed → its reply's input.txt visible (ms), every session */
  waits: number[];
  latencyMs: number;
  sessions: number;
  durationMs: number;
  maxInFlight: number;
}

/**
 * Figure 12. Four sessions (a conversation each) loop for `durationMs`: envelope, wait for its
 * reply, 3 s of "work", delete input.txt, next envelope. The API answers after `latencyMs`.
 * Session i starts i × 500 ms late so the four are not in lockstep.
 */
export async function loop(durationMs: number, latencyMs = 2_000, thinkMs = 3_000): Promise<LoopResult> {
  const fake = await startStandIn();
  const { sessions, sessionPrompts } = ownConversations(4, "LOOP");
  const daemon = await startDaemon({ label: "loop", design: "relay", fake, config: { sessions, sessionPrompts } });
  const { root } = daemon;
  const watcher = new Watcher(sessions.map((s) => join(root, "dispatch", s)));
  const waits: number[] = [];
  try {
    await warmUp(root, sessions, watcher, "loop");
    fake.setLatency(latencyMs);
    fake.resetConcurrency();
    const end = Date.now() + durationMs;
    const side = async (s: string, i: number): Promise<void> => {
      await sleep(i * 500);
      const input = inputPath(root, s);
      for (let k = 0; Date.now() < end; k++) {
        const name = `loop-${s}-${k}`;
        stageEnvelopeSync(root, name, s, `loop ${k} of ${s}: done with the step, what next?`);
        const t0 = commitEnvelopeSync(root, name);
        const seen = await watcher.until(() => exists(input), 60_000 + 8 * latencyMs, `${s}'s reply ${k}`);
        waits.push(seen - t0);
        await sleep(thinkMs);
        unlinkSync(input);
      }
    };
    await Promise.all(sessions.map((s, i) => side(s, i)));
    return { waits, latencyMs, sessions: sessions.length, durationMs, maxInFlight: fake.concurrency().max };
  } finally {
    watcher.close();
    await daemon.stop();
    await closeStandIn(fake);
  }
}

export interface FsyncCount {
  /** fsync + fdatasync calls per envelope over the traced run, and those on the reply path (API reply sent → input.txt visible) */
  perEnvelope: number;
  replyPath: number;
  /** the same count from strace's own -C summary (cross-check) */
  summaryPerEnvelope: number | null;
  envelopes: number;
}

export interface PerEnvelopeResult {
  envelopes: number;
  /** envelope renamed → request at the API (ms) */
  renameToRequest: number[];
  /** API reply sent (res.end) → input.txt visible (ms) */
  replyToInput: number[];
  /** utime+stime of the daemon over the untraced run, per envelope (ms) */
  cpuMsPerEnvelope: number;
  fsync: FsyncCount | { error: string };
}

/** `strace -f -C -ttt -e trace=fsync,fdatasync -o FILE -p PID`, attached; stop() detaches and parses. */
async function attachStrace(pid: number, file: string): Promise<{ stop(): Promise<{ calls: number[]; summary: number | null }> }> {
  const child = spawn("/usr/bin/strace", ["-f", "-C", "-ttt", "-e", "trace=fsync,fdatasync", "-o", file, "-p", String(pid)], { stdio: ["ignore", "ignore", "pipe"] });
  trackChild(child);
  let err = "";
  child.stderr?.setEncoding("utf8").on("data", (d: string) => {
    err += d;
  });
  const closed = new Promise<number | null>((ok) => {
    child.once("error", (e) => {
      err += String(e);
      ok(-1);
    });
    child.once("close", (code) => ok(code));
  });
  let exited = false;
  void closed.then(() => {
    exited = true;
  });
  const deadline = Date.now() + 15_000;
  while (!/attached/.test(err)) {
    if (exited || Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`strace could not attach: ${err.trim().split("\n").slice(-1)[0] ?? "no output"}`);
    }
    await sleep(10);
  }
  await sleep(300); // every thread attached
  return {
    async stop() {
      child.kill("SIGINT");
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await closed;
      clearTimeout(timer);
      const text = readFileSync(file, "utf8");
      const calls: number[] = [];
      let summary: number | null = null;
      for (const line of text.split("\n")) {
        const call = /^(?:\[pid\s+)?\d+\]?\s+(\d+\.\d+)\s+(?:fsync|fdatasync)\(/.exec(line);
        if (call) calls.push(Number(call[1]) * 1000);
        const sum = /^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(?:fsync|fdatasync)\s*$/.exec(line);
        if (sum) summary = (summary ?? 0) + Number(sum[1]);
      }
      return { calls, summary };
    },
  };
}

/**
 * Figure 13. One session, `n` sequential envelopes on a zero-latency API, each answered, its
 * input.txt deleted and the relay at rest before the next. First untraced (latencies, CPU), then
 * `tracedN` more under strace (fsync counts: strace slows every syscall, so nothing is timed then).
 */
export async function perEnvelope(n: number, tracedN: number): Promise<PerEnvelopeResult> {
  const fake = await startStandIn();
  const session = "session-1";
  const daemon = await startDaemon({ label: "per-envelope", design: "relay", fake, config: { sessions: [session] } });
  const { root } = daemon;
  const input = inputPath(root, session);
  const watcher = new Watcher([join(root, "dispatch", session)]);
  const quiet = () => waitRelay(root, isQuiet, 30_000, "the relay to be at rest");
  const one = async (label: string, k: number): Promise<{ t0: number; req: RecordedRequest; seen: number }> => {
    const marker = `${label}-${k}:`;
    const base = fake.requests.length;
    stageEnvelopeSync(root, `${label}-${k}`, session, `${marker} the build is green, next step?`);
    const t0 = commitEnvelopeSync(root, `${label}-${k}`);
    const seen = await watcher.until(() => exists(input), 60_000, `reply ${k} (${label})`);
    const req = await pollFor(() => requestWith(fake, marker, base), 5_000, `request ${k} (${label}) on record`);
    unlinkSync(input);
    await quiet();
    return { t0, req, seen };
  };
  try {
    await warmUp(root, [session], watcher, "per-envelope");
    for (let k = 0; k < 10; k++) await one("warm", k); // let the JIT settle
    const hz = clockTicksPerSecond();
    const result: PerEnvelopeResult = { envelopes: n, renameToRequest: [], replyToInput: [], cpuMsPerEnvelope: NaN, fsync: { error: "not run" } };
    const begin = cpuTicks(daemon.proc.pid);
    for (let k = 0; k < n; k++) {
      await sleep(randomBetween(0, 20));
      const { t0, req, seen } = await one("env", k);
      result.renameToRequest.push((req.receivedAt ?? req.at) - t0);
      if (req.sentAt !== undefined) result.replyToInput.push(seen - req.sentAt);
    }
    const endTicks = cpuTicks(daemon.proc.pid);
    result.cpuMsPerEnvelope = ((endTicks.ticks - begin.ticks) / hz) * 1000 / n;

    if (tracedN > 0) {
      let tracer: Awaited<ReturnType<typeof attachStrace>> | null = null;
      try {
        tracer = await attachStrace(daemon.proc.pid, join(root, "strace.out"));
      } catch (err) {
        result.fsync = { error: err instanceof Error ? err.message : String(err) };
      }
      if (tracer) {
        // strace stamps with the wall clock (gettimeofday); the stand-in and the bench use
        // performance.timeOrigin + now(): measure the offset between the two.
        let off = 0;
        for (let i = 0; i < 200; i++) off += Date.now() + 0.5 - nowMs();
        off /= 200;
        const windows: [number, number][] = [];
        const t0 = nowMs();
        try {
          for (let k = 0; k < tracedN; k++) {
            const e = await one("traced", k);
            if (e.req.sentAt !== undefined) windows.push([e.req.sentAt + off, e.seen + off]);
          }
        } finally {
          const t1 = nowMs();
          const { calls, summary } = await tracer.stop();
          const inRun = calls.filter((c) => c >= t0 + off - 1 && c <= t1 + off + 1);
          const onReply = inRun.filter((c) => windows.some(([a, b]) => c >= a - 0.5 && c <= b + 0.5));
          result.fsync = {
            perEnvelope: inRun.length / tracedN,
            replyPath: windows.length > 0 ? onReply.length / windows.length : NaN,
            summaryPerEnvelope: summary === null ? null : summary / tracedN,
            envelopes: tracedN,
          };
        }
      }
    }
    return result;
  } finally {
    watcher.close();
    await daemon.stop();
    await closeStandIn(fake);
  }
}
