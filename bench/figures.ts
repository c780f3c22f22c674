// One function per figure of issue 4. Each starts the real CLI (`relay run`) on a fresh root
// against its own Messages API stand-in and drives it from the CC side.
import { readFileSync, renameSync, unlinkSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { entryChars, type HistoryEntry, parseHistory } from "../src/conversation.js";
import { type ApiUsage, costUsd, type Usage, usageFromApi } from "../src/pricing.js";
import type { FakeAnthropic } from "../test/support/fake-anthropic.js";
import {
  API_KEY,
  clockTicksPerSecond,
  closeStandIn,
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
  startDaemon,
  startStandIn,
  usesInotify,
  waitSnapshot,
  Watcher,
  writeDurableSync,
} from "./lib.js";

// ---------------------------------------------------------------------------
// Text generation (deterministic, word-like, so strings look like real prose)

const WORDS =
  "the relay review session queue reply cache prefix turn agent patch test build merge branch commit issue fix error api token cost latency watch poll file state history summary model prompt decision next step check run green red failing passing".split(
    " ",
  );

function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

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
  const quiet = () => waitSnapshot(root, isQuiet, 15_000, "the relay to be at rest");
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
      await waitSnapshot(
        root,
        (s) => (s.outbox[session]?.length ?? 0) >= 1 && s.current === null && (s.state === "idle" || s.state === "awaitingAck"),
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
  const { root } = daemon;
  const watcher = new Watcher(sessions.map((s) => join(root, "dispatch", s)));
  try {
    const queue = join(root, "queue");
    const names: string[] = [];
    for (let i = 0; i < n; i++) {
      const name = `env-${String(i).padStart(5, "0")}`;
      writeDurableSync(join(queue, `.${name}.tmp`), envelopeJson(sessions[i % sessions.length] ?? "session-1", `envelope ${i}: status report, all good, continuing.`));
      names.push(name);
    }
    fsyncDirSync(queue);
    let completed = 0;
    let last = 0;
    const times: number[] = [];
    const inputs = sessions.map((s) => inputPath(root, s));
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
    for (const name of names) renameSync(join(queue, `.${name}.tmp`), join(queue, `${name}.json`));
    fsyncDirSync(queue);
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
      sessions: sessions.length,
      firstRate: rate(t0, times[k - 1]),
      lastRate: rate(times[times.length - 1 - k], times[times.length - 1]),
    };
  } finally {
    watcher.close();
    await daemon.stop();
    await closeStandIn(fake);
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
async function prefillHistory(root: string, target: number): Promise<void> {
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
        await waitSnapshot(root, isQuiet, 15_000, "the relay to be at rest");
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
