// The benchmark's plumbing: temporary roots, the real CLI as child processes, a CC-side file
// watcher (fs.watch + stat polling), /proc readings and small statistics. Node built-ins only,
// plus the local Messages API stand-in from test/support.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, renameSync, watch, type FSWatcher, writeSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { type FakeAnthropic, startFakeAnthropic } from "../test/support/fake-anthropic.js";

/** dist-bench/bench/lib.js → the repository root. */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const BIN = join(REPO_ROOT, "bin", "relay.js");
const NO_WATCH_SHIM = pathToFileURL(join(dirname(fileURLToPath(import.meta.url)), "no-watch.js")).href;

export const API_KEY = "sk-ant-bench";
export const MODEL = "claude-sonnet-5-5"; // the model of the shipped config.yaml
export const POLL_MS = 1000; // the contract's default, for both designs

export type Design = "relay" | "seed";

/** Wall-clock milliseconds with sub-millisecond resolution, comparable to Date.now(). */
export const nowMs = (): number => performance.timeOrigin + performance.now();

export const log = (msg: string): void => {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 23)}] ${msg}\n`);
};

export const randomBetween = (lo: number, hi: number): number => lo + Math.random() * (hi - lo);

// ---------------------------------------------------------------------------
// Temporary directories and children: everything is tracked and removed / killed at the end.

const tempDirs = new Set<string>();
const children = new Set<ChildProcess>();
const servers = new Set<FakeAnthropic>();

export async function makeTempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `relay-bench-${prefix}-`));
  tempDirs.add(dir);
  return dir;
}

export async function startStandIn(): Promise<FakeAnthropic> {
  const fake = await startFakeAnthropic({ apiKey: API_KEY });
  servers.add(fake);
  return fake;
}

export async function closeStandIn(fake: FakeAnthropic): Promise<void> {
  servers.delete(fake);
  await fake.close();
}

/** SIGKILL every child still alive, close every stand-in, remove every temporary directory. */
export async function cleanup(): Promise<void> {
  await Promise.all(
    [...children].map(
      (c) =>
        new Promise<void>((done) => {
          if (c.exitCode !== null || c.signalCode !== null) return done();
          c.once("close", () => done());
          c.kill("SIGKILL");
        }),
    ),
  );
  children.clear();
  await Promise.all([...servers].map((s) => s.close()));
  servers.clear();
  for (const dir of tempDirs) await rm(dir, { recursive: true, force: true });
  tempDirs.clear();
}

/** A TCP port nothing listens on (ntfy is pointed there so a notification fails at once). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : 9;
  await new Promise<void>((ok) => server.close(() => ok()));
  return port;
}

let home: string | null = null;
let ntfyPort = 9;

export async function prepareEnvironment(): Promise<void> {
  home = await makeTempDir("home");
  ntfyPort = await closedPort();
}

/** A clean environment for a child: PATH, a HOME of our own and the relay's variables. */
function childEnv(design: Design, fake: FakeAnthropic | null, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: home ?? tmpdir(),
    ANTHROPIC_API_KEY: API_KEY,
    ...(fake ? { ANTHROPIC_BASE_URL: fake.url } : {}),
    NTFY_SERVER: `http://127.0.0.1:${ntfyPort}`,
    NTFY_TOPIC: "relay-bench-topic-0123456789",
    POLL_INTERVAL_MS: String(POLL_MS),
    ...(design === "seed" ? { RELAY_NO_WATCH: "1" } : {}),
    ...extra,
  };
}

export interface Child {
  child: ChildProcess;
  pid: number;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
  output(): string;
  alive(): boolean;
}

/** `node [shim] bin/relay.js ARGS` with stdout/stderr captured (last 64 KiB of each). */
export function spawnRelay(args: string[], design: Design, fake: FakeAnthropic | null, extra: Record<string, string> = {}): Child {
  const nodeArgs = design === "seed" ? ["--import", NO_WATCH_SHIM, BIN, ...args] : [BIN, ...args];
  const child = spawn(process.execPath, nodeArgs, { env: childEnv(design, fake, extra), cwd: REPO_ROOT, stdio: ["ignore", "pipe", "pipe"] });
  children.add(child);
  let out = "";
  const keep = (d: string) => {
    out += d;
    if (out.length > 65_536) out = out.slice(-32_768);
  };
  child.stdout?.setEncoding("utf8").on("data", keep);
  child.stderr?.setEncoding("utf8").on("data", keep);
  let done = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((ok) => {
    child.on("close", (code, signal) => {
      done = true;
      children.delete(child);
      ok({ code, signal, at: nowMs() });
    });
  });
  if (child.pid === undefined) throw new Error(`cannot spawn relay ${args.join(" ")}`);
  return { child, pid: child.pid, exited, output: () => out, alive: () => !done };
}

/** Have `cleanup()` (and the signal handlers) kill a child the bench spawned itself (strace). */
export function trackChild(child: ChildProcess): void {
  children.add(child);
  child.once("close", () => children.delete(child));
}

/** Run one CLI command to completion and time it (spawn → exit). */
export async function runCli(args: string[], timeoutMs = 20_000): Promise<{ ms: number; code: number | null; output: string; startedAt: number; child: Child }> {
  const startedAt = nowMs();
  const c = spawnRelay(args, "relay", null);
  const timer = setTimeout(() => c.child.kill("SIGKILL"), timeoutMs);
  const exit = await c.exited;
  clearTimeout(timer);
  return { ms: exit.at - startedAt, code: exit.code, output: c.output(), startedAt, child: c };
}

export interface ConfigOptions {
  sessions: string[];
  /** a session's own system_prompt: a conversation of its own */
  sessionPrompts?: Record<string, string>;
  systemPrompt?: string;
  model?: string;
  maxTokens?: number;
}

const indent = (s: string) =>
  s
    .split("\n")
    .map((l) => `  ${l}`)
    .join("\n");

export function configYaml(opts: ConfigOptions): string {
  return [
    `model: ${opts.model ?? MODEL}`,
    `max_tokens: ${opts.maxTokens ?? 1024}`,
    "system_prompt: |",
    indent(opts.systemPrompt ?? "You are the benchmark's reviewer. Answer each session briefly."),
    "summarization_prompt: |",
    indent("BENCH-SUMMARIZE: fold the conversation into short notes."),
    "keep_recent_turns: 10",
    "sessions:",
    ...opts.sessions.flatMap((id) => {
      const own = opts.sessionPrompts?.[id];
      return own === undefined ? [`  - id: ${id}`] : [`  - id: ${id}`, "    system_prompt: |", indent(indent(indent(own)))];
    }),
    "",
  ].join("\n");
}

export interface Daemon {
  design: Design;
  root: string;
  fake: FakeAnthropic | null;
  proc: Child;
  stop(): Promise<void>;
}

/** A fresh root with config.yaml, then `relay run --root ROOT`, ready once it logged "relay started". */
export async function startDaemon(opts: {
  label: string;
  design: Design;
  fake: FakeAnthropic | null;
  config: ConfigOptions;
  prepare?: (root: string) => Promise<void>;
}): Promise<Daemon> {
  const root = await makeTempDir(`${opts.label}-${opts.design}`);
  await writeFile(join(root, "config.yaml"), configYaml(opts.config));
  if (opts.prepare) await opts.prepare(root);
  const proc = spawnRelay(["run", "--root", root], opts.design, opts.fake);
  const deadline = Date.now() + 30_000;
  while (!proc.output().includes("relay started")) {
    if (!proc.alive()) throw new Error(`relay run (${opts.label}, ${opts.design}) exited early:\n${proc.output().slice(-2000)}`);
    if (Date.now() > deadline) throw new Error(`relay run (${opts.label}, ${opts.design}) did not start:\n${proc.output().slice(-2000)}`);
    await sleep(10);
  }
  // "relay started" is logged just before the watchers are set up: give them a moment.
  await sleep(300);
  return {
    design: opts.design,
    root,
    fake: opts.fake,
    proc,
    async stop() {
      if (!proc.alive()) return;
      proc.child.kill("SIGTERM");
      const timer = setTimeout(() => proc.child.kill("SIGKILL"), 5_000);
      await proc.exited;
      clearTimeout(timer);
    },
  };
}

// ---------------------------------------------------------------------------
// Files, written the way a CC session or `relay jc` writes them

/** Write `data` durably to `tmp` (fsync); the caller renames it into place when it wants. */
export function writeDurableSync(path: string, data: string): void {
  const fd = openSync(path, "w", 0o644);
  try {
    writeSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export function fsyncDirSync(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export const envelopeJson = (session: string, content: string): string =>
  JSON.stringify({ session_id: session, timestamp: new Date().toISOString(), content });

/**
 * Drop an envelope the contract's way: queue/.NAME.tmp written and fsync'd, then renamed to
 * queue/NAME.json. Returns Date.now() taken just before the rename (the stand-in stamps arrivals
 * with Date.now() too).
 */
export function dropEnvelopeSync(root: string, name: string, session: string, content: string): number {
  const tmp = join(root, "queue", `.${name}.tmp`);
  writeDurableSync(tmp, envelopeJson(session, content));
  const at = Date.now();
  renameSync(tmp, join(root, "queue", `${name}.json`));
  return at;
}

/** The two halves of dropEnvelopeSync: stage queue/.NAME.tmp (written and fsync'd) now … */
export function stageEnvelopeSync(root: string, name: string, session: string, content: string): void {
  writeDurableSync(join(root, "queue", `.${name}.tmp`), envelopeJson(session, content));
}

/** … and rename it to queue/NAME.json later. Returns nowMs() (sub-millisecond) just before the rename. */
export function commitEnvelopeSync(root: string, name: string): number {
  const at = nowMs();
  renameSync(join(root, "queue", `.${name}.tmp`), join(root, "queue", `${name}.json`));
  return at;
}

export const inputPath = (root: string, session: string): string => join(root, "dispatch", session, "input.txt");

// ---------------------------------------------------------------------------
// The CC side: notice a file appearing or vanishing as early as possible

/**
 * Watches directories with fs.watch and, while anyone waits, also polls every 2 ms (events can be
 * coalesced or missed). `until(cond)` resolves with nowMs() at the first check where cond() holds.
 */
export class Watcher {
  private readonly watchers: FSWatcher[] = [];
  private readonly waiting = new Set<() => boolean>();
  private timer: NodeJS.Timeout | null = null;
  private readonly listeners = new Set<() => void>();

  constructor(dirs: string[]) {
    for (const dir of dirs) {
      // A relay may create dispatch/<session>/ only when it first delivers there (the seed
      // emulation, without fs.watch, does): make it, as a CC session's hook directory would be.
      mkdirSync(dir, { recursive: true });
      const w = watch(dir, () => this.check());
      w.on("error", () => {});
      this.watchers.push(w);
    }
  }

  /** Called on every event and every poll tick while `on` is set (throughput: delete at once). */
  onChange(fn: () => void): () => void {
    this.listeners.add(fn);
    this.arm();
    return () => {
      this.listeners.delete(fn);
      this.disarmIfIdle();
    };
  }

  private check(): void {
    for (const fn of this.listeners) fn();
    for (const w of [...this.waiting]) w();
  }

  private arm(): void {
    if (!this.timer) this.timer = setInterval(() => this.check(), 2);
  }

  private disarmIfIdle(): void {
    if (this.timer && this.waiting.size === 0 && this.listeners.size === 0) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  until(cond: () => boolean, timeoutMs: number, what: string): Promise<number> {
    if (cond()) return Promise.resolve(nowMs());
    return new Promise<number>((ok, fail) => {
      const timeout = setTimeout(() => {
        this.waiting.delete(probe);
        this.disarmIfIdle();
        fail(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const probe = (): boolean => {
        if (!cond()) return false;
        const at = nowMs();
        clearTimeout(timeout);
        this.waiting.delete(probe);
        this.disarmIfIdle();
        ok(at);
        return true;
      };
      this.waiting.add(probe);
      this.arm();
    });
  }

  close(): void {
    for (const w of this.watchers) w.close();
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}

export const exists = (path: string): boolean => existsSync(path);

// ---------------------------------------------------------------------------
// The relay's state, read only, to know when it is at rest
//
// state/status.json is the public read model (the object of `relay status --json`): `state`,
// `sessions: {ID: {pending, awaitingAck}}` (`pending`: replies waiting for that session's
// input.txt to be acknowledged) and `queue: {depth}`. When it is absent (a relay from before it
// existed), the private state/snapshot.json is read as before.

export interface RelayView {
  source: "status.json" | "snapshot.json";
  /** "idle", "awaitingAck", "calling", … (nested snapshot states joined with ".") */
  state: string;
  /** a call or a dispatch in flight (status: the state says so, or `calls.inFlight` > 0 where present; snapshot: `current` is set) */
  busy: boolean;
  /** replies waiting per session (status: `pending`; snapshot: the outbox) */
  pending: Record<string, number>;
  /** sessions whose input.txt is not acknowledged yet */
  awaitingAck: string[];
  /** envelopes in queue/ (status.json only) */
  queueDepth: number | null;
}

const stateString = (value: unknown): string =>
  typeof value === "string"
    ? value
    : Object.entries(value as Record<string, unknown>)
        .map(([k, v]) => `${k}.${stateString(v)}`)
        .join("");

const BUSY_STATES = new Set(["calling", "dispatching", "summarizing"]);

function viewOfStatus(raw: unknown): RelayView | null {
  const s = raw as { state?: unknown; sessions?: Record<string, { pending?: unknown; awaitingAck?: unknown }>; queue?: { depth?: unknown }; calls?: { inFlight?: unknown } };
  if (typeof s?.state !== "string" || typeof s.sessions !== "object" || s.sessions === null) return null;
  const pending: Record<string, number> = {};
  const awaitingAck: string[] = [];
  for (const [id, v] of Object.entries(s.sessions)) {
    pending[id] = typeof v?.pending === "number" ? v.pending : 0;
    if (v?.awaitingAck === true) awaitingAck.push(id);
  }
  return {
    source: "status.json",
    state: s.state,
    busy: BUSY_STATES.has(s.state.split(".")[0] ?? "") || (typeof s.calls?.inFlight === "number" && s.calls.inFlight > 0),
    pending,
    awaitingAck,
    queueDepth: typeof s.queue?.depth === "number" ? s.queue.depth : null,
  };
}

function viewOfSnapshot(raw: unknown): RelayView | null {
  const { value, context } = (raw as { snapshot: { value: unknown; context: { outbox: Record<string, unknown[]>; unacked: string[]; current: unknown } } }).snapshot;
  const pending: Record<string, number> = {};
  for (const [id, list] of Object.entries(context.outbox)) if (list.length > 0) pending[id] = list.length;
  return { source: "snapshot.json", state: stateString(value), busy: context.current !== null, pending, awaitingAck: [...context.unacked], queueDepth: null };
}

/** status.json when it exists, else snapshot.json; null when neither can be read (yet, or mid-replace). */
export function readRelayView(root: string): RelayView | null {
  const state = join(root, "state");
  const status = join(state, "status.json");
  if (existsSync(status)) {
    try {
      return viewOfStatus(JSON.parse(readFileSync(status, "utf8")));
    } catch {
      return null;
    }
  }
  try {
    return viewOfSnapshot(JSON.parse(readFileSync(join(state, "snapshot.json"), "utf8")));
  } catch {
    return null;
  }
}

/** Poll the relay's state every 5 ms until `cond` holds. */
export async function waitRelay(root: string, cond: (v: RelayView) => boolean, timeoutMs: number, what: string): Promise<RelayView> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const view = readRelayView(root);
    if (view && cond(view)) return view;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${JSON.stringify(view)})`);
    await sleep(5);
  }
}

/** At rest: nothing in flight, nothing to deliver, every input.txt acknowledged (and the queue empty where status.json tells its depth). */
export const isQuiet = (v: RelayView): boolean =>
  v.state === "idle" && !v.busy && Object.values(v.pending).every((n) => n === 0) && v.awaitingAck.length === 0 && (v.queueDepth ?? 0) === 0;

// ---------------------------------------------------------------------------
// /proc

export interface CpuTimes {
  ticks: number;
  at: number;
}

/** utime + stime of a process, in clock ticks (/proc/<pid>/stat fields 14 and 15). */
export function cpuTicks(pid: number): CpuTimes {
  const raw = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = raw.slice(raw.lastIndexOf(")") + 2).split(" ");
  // fields[0] is field 3 (state), so field 14 (utime) is fields[11] and 15 (stime) fields[12].
  return { ticks: Number(fields[11]) + Number(fields[12]), at: nowMs() };
}

/** VmRSS and VmHWM (peak) of a process, in kB. */
export function memoryKb(pid: number): { rss: number; hwm: number } {
  const raw = readFileSync(`/proc/${pid}/status`, "utf8");
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(raw)?.[1] ?? NaN);
  return { rss: field("VmRSS"), hwm: field("VmHWM") };
}

/** Whether a process holds an inotify instance (i.e. fs.watch is in use). */
export function usesInotify(pid: number): boolean {
  try {
    const fdDir = `/proc/${pid}/fd`;
    return readdirSync(fdDir).some((fd) => {
      try {
        return readlinkSync(join(fdDir, fd)).includes("inotify");
      } catch {
        return false;
      }
    });
  } catch {
    return false;
  }
}

export function clockTicksPerSecond(): number {
  // CLK_TCK is 100 on every Linux this runs on; getconf confirms it where available.
  const n = Number((spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout ?? "").trim());
  return Number.isFinite(n) && n > 0 ? n : 100;
}

// ---------------------------------------------------------------------------
// Statistics and formatting

/** Nearest-rank percentile of `values` (p in 0..100); NaN for no values. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(sorted.length, rank) - 1] ?? NaN;
}

export const median = (values: number[]): number => percentile(values, 50);

export function fmtMs(ms: number): string {
  if (!Number.isFinite(ms)) return "n/a";
  if (ms < 10) return `${ms.toFixed(1)} ms`;
  return `${Math.round(ms)} ms`;
}

export const fmtNum = (ms: number): string => (!Number.isFinite(ms) ? "n/a" : ms < 10 ? ms.toFixed(1) : String(Math.round(ms)));

export async function ensureDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
}

/** Which filesystem type holds `path` (the longest matching mount point in /proc/mounts). */
export function fsTypeOf(path: string): string {
  try {
    let best = { mount: "", type: "unknown" };
    for (const line of readFileSync("/proc/mounts", "utf8").split("\n")) {
      const [, mount, type] = line.split(" ");
      if (mount === undefined || type === undefined) continue;
      const prefix = mount.endsWith("/") ? mount : `${mount}/`;
      if ((path === mount || path.startsWith(prefix)) && mount.length > best.mount.length) best = { mount, type };
    }
    return best.type;
  } catch {
    return "unknown";
  }
}

/** Median time of what one durable atomic write costs here: write + fsync a small file, rename it, fsync the directory. */
export async function fsyncProbe(runs: number): Promise<number> {
  const dir = await makeTempDir("fsync");
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = nowMs();
    writeDurableSync(join(dir, `.f${i}.tmp`), "x".repeat(512));
    renameSync(join(dir, `.f${i}.tmp`), join(dir, `f${i}`));
    fsyncDirSync(dir);
    times.push(nowMs() - t0);
  }
  await rm(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
  return median(times);
}

// ---------------------------------------------------------------------------
// An earlier run's table (--previous)

/** A figure's name without its sample count, to match it across runs. */
export const figureKey = (figure: string): string => figure.replace(/\s*\(n = \d+\)/g, "").replace(/\s+/g, " ").trim();

/** figure → p50 cell of the table in an earlier run's --out file. */
export function readPrevious(file: string): Map<string, string> {
  const cells = (line: string) => line.slice(1, -1).split(/(?<!\\)\|/).map((c) => c.trim().replace(/\\\|/g, "|"));
  const out = new Map<string, string>();
  for (const line of readFileSync(file, "utf8").split("\n")) {
    if (!line.startsWith("| ") || line.startsWith("| figure |")) continue;
    const [figure, p50] = cells(line.trimEnd());
    if (figure && p50 !== undefined) out.set(figureKey(figure), p50);
  }
  return out;
}
