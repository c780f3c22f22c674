// Issue 15, items 3-5: start-up, memory and idle figures of the real CLI. Start-up is spawn →
// exit (hot commands) or spawn → "relay started" (`relay run`); memory is VmRSS / VmHWM from
// /proc; idle is the daemon's wake-ups (voluntary context switches: the thread slept and was woken;
// involuntary ones are preemptions, which the machine's load makes, and are shown apart) per thread
// and utime + stime over a window, with default settings.
import { readdirSync, readFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { makeLedgerRecord } from "../src/costs/ledger.js";
import { startFakeNtfy } from "../test/support/fake-ntfy.js";
import { prefillHistory } from "./figures.js";
import { type Child, clockTicksPerSecond, configYaml, cpuTicks, makeTempDir, median, memoryKb, MODEL, nowMs, runCli, spawnRelay } from "./lib.js";

/** ntfy's default keepalive interval on a subscription. */
const NTFY_KEEPALIVE_MS = 45_000;

/** Characters of history a full root holds (the default history_char_cap, less room for a turn). */
const FULL_HISTORY_CHARS = 400_000 - 4_000;

/** A root with config.yaml (sessions session-1 and session-2); `full`: a 400k-character history and a `ledgerLines`-line cost ledger. */
export async function lightRoot(label: string, opts: { full: boolean; ledgerLines: number }): Promise<string> {
  const root = await makeTempDir(`light-${label}`);
  await writeFile(join(root, "config.yaml"), configYaml({ sessions: ["session-1", "session-2"] }));
  await mkdir(join(root, "state"), { recursive: true });
  if (opts.full) await prefillHistory(root, FULL_HISTORY_CHARS);
  if (opts.ledgerLines > 0) {
    // one call a minute back from now: the last day's calls are "today's spend", the rest history
    const now = Date.now();
    const lines: string[] = [];
    for (let i = opts.ledgerLines; i > 0; i--) {
      const usage = { inputTokens: 1_200, outputTokens: 300, cacheReadTokens: 9_000, cacheWrite5mTokens: 400, cacheWrite1hTokens: 0 };
      lines.push(JSON.stringify(makeLedgerRecord({ at: new Date(now - i * 60_000), session: "session-1", conversation: "shared", model: MODEL, purpose: "reply", usage, latencyMs: 900 })));
    }
    await writeFile(join(root, "state", "costs.jsonl"), `${lines.join("\n")}\n`);
  }
  return root;
}

export interface HotStartups {
  /** `node -e 0`: the floor any command pays */
  bareNode: number[];
  /** `relay status` on a root with a full history and ledger */
  status: number[];
  /** `relay hook claude-stop` with no relay running: loads everything a Stop hook loads, then lets the agent stop */
  stopHook: number[];
  /** `relay --version`: oclif's own start-up */
  version: number[];
}

/** Spawn → exit of `node argv…`, with pipes on all three descriptors, as Claude Code runs a hook: its answer is read, and the child pays for writing into a pipe. */
async function spawnToExit(argv: string[], input: string): Promise<number> {
  const { spawn } = await import("node:child_process");
  const started = nowMs();
  const child = spawn(process.execPath, argv, { stdio: ["pipe", "pipe", "pipe"] });
  child.stdout.resume();
  child.stderr.resume();
  child.stdin.end(input);
  const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  await new Promise((ok) => child.once("close", ok));
  clearTimeout(timer);
  return nowMs() - started;
}

/** Each command `runs` times, interleaved (so a burst of load on the machine hits them alike). */
export async function hotStartups(runs: number): Promise<HotStartups> {
  const root = await lightRoot("hot", { full: true, ledgerLines: 100_000 });
  const out: HotStartups = { bareNode: [], status: [], stopHook: [], version: [] };
  const stopInput = JSON.stringify({ session_id: "cc-bench", hook_event_name: "Stop", stop_hook_active: false, cwd: root });
  for (let i = 0; i < runs; i++) {
    out.bareNode.push(await spawnToExit(["-e", "0"], ""));
    out.status.push((await runCli(["status", "--root", root])).ms);
    out.stopHook.push(await spawnToExit([join(import.meta.dirname, "..", "..", "bin", "relay.js"), "hook", "claude-stop", "--session", "session-1", "--root", root], stopInput));
    out.version.push((await runCli(["--version"])).ms);
  }
  return out;
}

export interface RunFigures {
  /** spawn → "relay started" (ms) */
  readyMs: number;
  /** VmRSS once started and settled, and VmHWM (the peak since spawn), MB */
  settledRssMb: number;
  peakRssMb: number;
  /** idle, default settings: the main thread's wake-ups (voluntary context switches: each is a sleep that ended) per second, and % of one core */
  wakeupsPerS: number;
  cpuPercent: number;
  /** every thread's wake-ups per second (the main thread's included), and the main thread's preemptions (involuntary switches: the machine's load, not a wake-up) */
  allThreadsPerS: number;
  preemptionsPerS: number;
  /** the threads that woke in the window, by name, with their wake-ups */
  threads: string;
}

interface ThreadSwitches {
  name: string;
  voluntary: number;
  involuntary: number;
}

/** Each thread's context switches (/proc/<pid>/task/<tid>/status), by thread id. */
function threadSwitches(pid: number): Map<string, ThreadSwitches> {
  const out = new Map<string, ThreadSwitches>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let raw: string;
    try {
      raw = readFileSync(`/proc/${pid}/task/${tid}/status`, "utf8");
    } catch {
      continue; // the thread ended
    }
    const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\S+)`, "m").exec(raw)?.[1] ?? NaN);
    const name = /^Name:\s+(.*)$/m.exec(raw)?.[1] ?? "?";
    out.set(tid, { name: tid === String(pid) ? "main" : name, voluntary: field("voluntary_ctxt_switches"), involuntary: field("nonvoluntary_ctxt_switches") });
  }
  return out;
}

/** What each thread did between two readings: wake-ups (voluntary switches) and preemptions. */
function switchesBetween(before: Map<string, ThreadSwitches>, after: Map<string, ThreadSwitches>): ThreadSwitches[] {
  return [...after].map(([tid, a]) => {
    const b = before.get(tid) ?? { name: a.name, voluntary: 0, involuntary: 0 };
    return { name: a.name, voluntary: a.voluntary - b.voluntary, involuntary: a.involuntary - b.involuntary };
  });
}

async function started(proc: Child): Promise<number> {
  const deadline = Date.now() + 30_000;
  while (!proc.output().includes("relay started")) {
    if (!proc.alive()) throw new Error(`relay run exited early:\n${proc.output().slice(-2000)}`);
    if (Date.now() > deadline) throw new Error(`relay run did not start:\n${proc.output().slice(-2000)}`);
    await sleep(2);
  }
  return nowMs();
}

/**
 * `relay run --dry-run` on a fresh root (`full`: 400k characters of history and a
 * `ledgerLines`-line ledger), default settings (POLL_INTERVAL_MS 1000): time to ready, RSS, then
 * an idle window of `windowMs` after `settleMs`. ntfy is a stand-in that holds JC's reply
 * subscription open with a keepalive every 45 s, as ntfy.sh does: a closed port (the throughput
 * rows' setting) would have the relay reconnect with back-off instead, and hide what an open
 * subscription costs.
 */
export async function runFigures(label: string, opts: { full: boolean; ledgerLines: number; settleMs: number; windowMs: number }): Promise<RunFigures> {
  const root = await lightRoot(label, opts);
  const ntfy = await startFakeNtfy({ keepaliveMs: NTFY_KEEPALIVE_MS });
  const spawnedAt = nowMs();
  const proc = spawnRelay(["run", "--dry-run", "--root", root], "relay", null, { POLL_INTERVAL_MS: "1000", NTFY_SERVER: ntfy.url });
  try {
    const readyMs = (await started(proc)) - spawnedAt;
    await sleep(opts.settleMs);
    const settled = memoryKb(proc.pid);
    const [s0, c0] = [threadSwitches(proc.pid), cpuTicks(proc.pid)];
    await sleep(opts.windowMs);
    const [s1, c1] = [threadSwitches(proc.pid), cpuTicks(proc.pid)];
    const seconds = (c1.at - c0.at) / 1000;
    const peak = memoryKb(proc.pid).hwm;
    const threads = switchesBetween(s0, s1);
    const main = threads.find((t) => t.name === "main") ?? { name: "main", voluntary: Number.NaN, involuntary: Number.NaN };
    const others = threads.filter((t) => t !== main && t.voluntary > 0);
    return {
      readyMs,
      settledRssMb: settled.rss / 1024,
      peakRssMb: peak / 1024,
      wakeupsPerS: main.voluntary / seconds,
      cpuPercent: ((c1.ticks - c0.ticks) / clockTicksPerSecond() / seconds) * 100,
      allThreadsPerS: threads.reduce((n, t) => n + t.voluntary, 0) / seconds,
      preemptionsPerS: main.involuntary / seconds,
      threads: [`main ${main.voluntary}`, ...others.map((t) => `${t.name} ${t.voluntary}`)].join(", "),
    };
  } finally {
    proc.child.kill("SIGTERM");
    const timer = setTimeout(() => proc.child.kill("SIGKILL"), 5_000);
    await proc.exited;
    clearTimeout(timer);
    await ntfy.close();
  }
}

/** One row of the README's performance table (bench/run.ts's Row). */
export interface LightRow {
  figure: string;
  p50: string;
  tail: string;
  target: string;
  baseline: string;
}

const judged = (ok: boolean): string => (ok ? "met" : "**missed**");

/** The start-up, memory and idle rows of issue 15 (each figure's failure is a row saying so). */
export async function lightRows(plan: { startRuns: number; settleMs: number; windowMs: number }, log: (line: string) => void): Promise<LightRow[]> {
  const rows: LightRow[] = [];
  const failed = (figure: string, err: unknown): LightRow => ({ figure, p50: `error: ${err instanceof Error ? err.message.split("\n")[0] : String(err)}`, tail: "", target: "not measured", baseline: "" });
  const ms = (v: number[]) => `${Math.round(median(v))} ms`;
  const spread = (v: number[]) => `min ${Math.round(Math.min(...v))} · max ${Math.round(Math.max(...v))} ms`;
  log("start-up of the hot commands…");
  try {
    const s = await hotStartups(plan.startRuns);
    const n = `n = ${plan.startRuns}, root with a 400k-char history and a 100k-line ledger`;
    rows.push({ figure: `\`relay status\`, spawn → exit (${n})`, p50: ms(s.status), tail: spread(s.status), target: `≤ 200 ms (median): ${judged(median(s.status) <= 200)}`, baseline: `bare \`node -e 0\`: ${ms(s.bareNode)}` });
    rows.push({ figure: `\`relay hook claude-stop\` start-up, spawn → exit, no relay running (${n})`, p50: ms(s.stopHook), tail: spread(s.stopHook), target: `≤ 200 ms (median): ${judged(median(s.stopHook) <= 200)}`, baseline: `\`relay --version\` (oclif): ${ms(s.version)}` });
  } catch (err) {
    rows.push(failed("start-up of the hot commands", err));
  }
  for (const [label, opts, what] of [
    ["bare", { full: false, ledgerLines: 0 }, "fresh root"],
    ["full", { full: true, ledgerLines: 100_000 }, "400k-char history, 100k-line ledger"],
  ] as const) {
    log(`relay run (${what})…`);
    try {
      const f = await runFigures(label, { ...opts, settleMs: plan.settleMs, windowMs: plan.windowMs });
      rows.push({ figure: `\`relay run\` spawn → ready (${what})`, p50: `${Math.round(f.readyMs)} ms`, tail: "", target: `≤ 400 ms: ${judged(f.readyMs <= 400)}`, baseline: "" });
      rows.push({ figure: `\`relay run\` idle resident memory (${what}), settled / VmHWM`, p50: `${f.settledRssMb.toFixed(1)} MB`, tail: `peak ${f.peakRssMb.toFixed(1)} MB`, target: `≤ 60 MB settled: ${judged(f.settledRssMb <= 60)}`, baseline: "" });
      rows.push({
        figure: `idle \`relay run\` (${what}), default settings, ntfy subscription open, over ${plan.windowMs / 1000} s: wake-ups (the main thread's voluntary context switches) and CPU`,
        p50: `${f.wakeupsPerS.toFixed(2)} /s`,
        tail: `${f.cpuPercent.toFixed(3)} % of a core; all threads ${f.allThreadsPerS.toFixed(2)} /s (${f.threads}); main-thread preemptions ${f.preemptionsPerS.toFixed(2)} /s`,
        target: `≤ 1 /s and ≤ 0.1 %: ${judged(f.wakeupsPerS <= 1 && f.cpuPercent <= 0.1)}`,
        baseline: "",
      });
    } catch (err) {
      rows.push(failed(`relay run (${what})`, err));
    }
  }
  return rows;
}
