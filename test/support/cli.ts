/**
 * Harness for the end-to-end tests: the real CLI (`node bin/relay.js ...`, built to dist/ by
 * `npm run build`) as child processes against temporary roots, with the local stand-ins for the
 * Messages API and ntfy. Each test gets its own fakes and daemons in a `Scope`, torn down when
 * that test finishes (so a file's tests can run concurrently); every child is also tracked so
 * `killAll()` SIGKILLs any still alive. Roots, captured output and ntfy messages are tracked so
 * each test file can end with `secretsCheck()`.
 */
import { type StatusFile, statusFileSchema } from "../../src/status/status-file.js";
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { lstat, mkdir, mkdtemp, readdir, readFile, rename, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { afterAll, expect, it } from "vitest";
import { type FakeAnthropic, type RecordedRequest, startFakeAnthropic } from "./fake-anthropic.js";
import { type FakeNtfy, type NtfyMessage, startFakeNtfy } from "./fake-ntfy.js";

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const BIN = join(REPO_ROOT, "bin", "relay.js");

/** The key every test uses; distinctive so a leak anywhere is found by a plain search. */
export const TEST_KEY = `sk-ant-e2e-${randomBytes(16).toString("hex")}`;
export const POLL_MS = 100;

export const SYSTEM_PROMPT = "You are the e2e reviewer. Answer each session briefly.";
export const SUMMARIZATION_PROMPT = "E2E-SUMMARIZE: fold the conversation into short notes.";

// ---------------------------------------------------------------------------
// What the secrets check scans

const tracked = {
  dirs: new Set<string>(),
  outputs: [] as { what: string; text: () => string }[],
  ntfy: [] as NtfyMessage[][],
};

let home: string | null = null;

/** A HOME of our own for the children, scanned for leaks like the roots. */
async function childHome(): Promise<string> {
  if (home === null) {
    home = await mkdtemp(join(tmpdir(), "relay-e2e-home-"));
    tracked.dirs.add(home);
  }
  return home;
}

// ---------------------------------------------------------------------------
// Roots

export interface ConfigOptions {
  /** ids, or an id with its own system prompt (a conversation of its own) */
  sessions?: (string | { id: string; systemPrompt: string })[];
  keepRecentTurns?: number;
  model?: string;
  systemPrompt?: string;
  summarizationPrompt?: string;
}

export function configYaml(opts: ConfigOptions = {}): string {
  const indent = (s: string) => s.split("\n").map((l) => `  ${l}`).join("\n");
  return [
    `model: ${opts.model ?? "claude-sonnet-4-6"}`,
    "max_tokens: 1024",
    "system_prompt: |",
    indent(opts.systemPrompt ?? SYSTEM_PROMPT),
    "summarization_prompt: |",
    indent(opts.summarizationPrompt ?? SUMMARIZATION_PROMPT),
    `keep_recent_turns: ${opts.keepRecentTurns ?? 10}`,
    "sessions:",
    ...(opts.sessions ?? ["session-1", "session-2"]).flatMap((s) =>
      typeof s === "string" ? [`  - id: ${s}`] : [`  - id: ${s.id}`, "    system_prompt: |", indent(indent(indent(s.systemPrompt)))],
    ),
    "",
  ].join("\n");
}

/** A fresh temporary root; with `config: null` it has no config.yaml, with `dotenv` a .env. */
export async function makeRoot(opts: { config?: string | null; dotenv?: string } = {}): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), "relay-e2e-"));
  tracked.dirs.add(root);
  if (opts.config !== null) await writeFile(join(root, "config.yaml"), opts.config ?? configYaml());
  if (opts.dotenv !== undefined) await writeFile(join(root, ".env"), opts.dotenv);
  return root;
}

/** Removes every temporary directory made so far (afterAll, once the secrets check has run). */
export async function removeRoots(): Promise<void> {
  for (const dir of tracked.dirs) await rm(dir, { recursive: true, force: true });
  tracked.dirs.clear();
  home = null;
}

// ---------------------------------------------------------------------------
// Environment

/**
 * A clean environment for a child: nothing inherited from the test process but PATH, so a
 * developer's own ANTHROPIC_API_KEY or RELAY_ROOT never leaks in. `undefined` drops a key.
 */
export async function childEnv(extra: Record<string, string | undefined> = {}): Promise<NodeJS.ProcessEnv> {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: await childHome() };
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

/** The usual variables for a relay talking to the fakes. */
export function relayVars(fake: FakeAnthropic | null, ntfy: FakeNtfy | null, extra: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  return {
    ANTHROPIC_API_KEY: TEST_KEY,
    ...(fake ? { ANTHROPIC_BASE_URL: fake.url } : {}),
    ...(ntfy ? { NTFY_SERVER: ntfy.url } : {}),
    POLL_INTERVAL_MS: String(POLL_MS),
    ...extra,
  };
}

// ---------------------------------------------------------------------------
// Children

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Daemon {
  child: ChildProcess;
  pid: number;
  stdout(): string;
  stderr(): string;
  exited: Promise<Exit>;
  alive(): boolean;
}

const children = new Set<ChildProcess>();

function spawnRelay(args: string[], env: NodeJS.ProcessEnv, what: string): Daemon {
  const child = spawn(process.execPath, [BIN, ...args], { env, cwd: REPO_ROOT, stdio: ["pipe", "pipe", "pipe"] });
  children.add(child);
  let out = "";
  let err = "";
  child.stdout?.setEncoding("utf8").on("data", (d: string) => (out += d));
  child.stderr?.setEncoding("utf8").on("data", (d: string) => (err += d));
  tracked.outputs.push({ what: `${what} stdout`, text: () => out }, { what: `${what} stderr`, text: () => err });
  let done = false;
  const exited = new Promise<Exit>((resolveExit) => {
    child.on("close", (code, signal) => {
      done = true;
      children.delete(child);
      resolveExit({ code, signal });
    });
  });
  if (child.pid === undefined) throw new Error(`cannot spawn ${what}`);
  return { child, pid: child.pid, stdout: () => out, stderr: () => err, exited, alive: () => !done };
}

/** Any relay command in the background (killed by killAll). */
export async function spawnCli(args: string[], vars: Record<string, string | undefined> = {}): Promise<Daemon> {
  return spawnRelay(args, await childEnv(vars), `relay ${args.join(" ")}`);
}

/** CPU time (user + system, in clock ticks) a process has used so far, from /proc; null where there is no /proc. */
async function cpuTicks(pid: number): Promise<number | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    // the fields after the command name (which may hold spaces) start at state: utime and stime are the 12th and 13th of them
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return null;
  }
}

/**
 * Wait until `ready()` or the child has died: at least 30 s, and beyond that for as long as the
 * child makes progress, so a start that is slow because the machine is busy (the child is still
 * using CPU) is waited for, and one that is stuck (no CPU for `stallMs`) fails. Where /proc is
 * missing, the plain 30 s.
 */
export async function waitWhileWorking(d: Daemon, ready: () => boolean, what: string, stallMs = 15_000): Promise<void> {
  const atLeastMs = 30_000;
  let ticks = await cpuTicks(d.pid);
  if (ticks === null) {
    await waitFor(() => !d.alive() || ready(), { what, timeoutMs: atLeastMs });
    return;
  }
  const began = Date.now();
  let progressAt = began;
  while (d.alive() && !ready()) {
    const now = await cpuTicks(d.pid);
    if (now !== null && now !== ticks) {
      ticks = now;
      progressAt = Date.now();
    }
    if (Date.now() - progressAt > stallMs && Date.now() - began > atLeastMs) throw new Error(`timed out waiting for ${what}: the process used no CPU for ${stallMs} ms\nstderr: ${d.stderr()}`);
    await sleep(50);
  }
}

/** `relay run --root ROOT [more args]` in the background. */
export async function startRelay(root: string, vars: Record<string, string | undefined>, args: string[] = []): Promise<Daemon> {
  const d = spawnRelay(["run", "--root", root, ...args], await childEnv(vars), `relay run ${args.join(" ")}`);
  // Ready once its loop runs (it logs "relay started" to stderr), or once it has died trying; on a
  // busy machine a start can take tens of seconds, so past 30 s it is waited for while it makes progress.
  await waitWhileWorking(d, () => d.stderr().includes("relay started"), "the daemon to start");
  return d;
}

/** `relay agent --root ROOT [more args]` in the background (transport: nats). */
export async function startAgent(root: string, vars: Record<string, string | undefined>, args: string[] = []): Promise<Daemon> {
  const d = spawnRelay(["agent", "--root", root, ...args], await childEnv(vars), `relay agent ${args.join(" ")}`);
  await waitWhileWorking(d, () => d.stderr().includes("agent started"), "the agent to start");
  return d;
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Run one CLI command to completion; standard input gets `input` (default: nothing, closed). */
export async function runCli(args: string[], opts: { env?: Record<string, string | undefined>; input?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  const d = spawnRelay(args, await childEnv(opts.env ?? {}), `relay ${args.join(" ")}`);
  d.child.stdin?.end(opts.input ?? "");
  // Generous: a CLI start is ~0.3 s of CPU, which under load can take many seconds.
  const timeoutMs = opts.timeoutMs ?? 45_000;
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      d.child.kill("SIGKILL");
      reject(new Error(`relay ${args.join(" ")} did not finish within ${timeoutMs} ms\nstderr: ${d.stderr()}`));
    }, timeoutMs);
  });
  try {
    const exit = await Promise.race([d.exited, timedOut]);
    return { ...exit, stdout: d.stdout(), stderr: d.stderr() };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * One test's world: its own fakes and daemons, torn down by that test's own `onTestFinished`
 * (from the test context, so it is that test's even when tests of a file run concurrently, where
 * a file-wide afterEach would kill a sibling's children). Files using it still call killAll in
 * afterAll as a backstop.
 */
export class Scope {
  private readonly daemons: Daemon[] = [];

  private constructor(
    readonly fake: FakeAnthropic,
    readonly ntfy: FakeNtfy,
  ) {}

  static async create(ctx: { onTestFinished: (fn: () => Promise<void>) => void }): Promise<Scope> {
    const fake = await startFakeAnthropic({ apiKey: TEST_KEY });
    const ntfy = await startFakeNtfy();
    tracked.ntfy.push(ntfy.messages);
    const scope = new Scope(fake, ntfy);
    ctx.onTestFinished(() => scope.close());
    return scope;
  }

  /** relayVars for this scope's fakes. */
  vars(extra: Record<string, string | undefined> = {}): Record<string, string | undefined> {
    return relayVars(this.fake, this.ntfy, extra);
  }

  /** `relay run` on `root` with this scope's variables (plus `extra`). */
  async start(root: string, extra: Record<string, string | undefined> = {}, args: string[] = []): Promise<Daemon> {
    const d = await startRelay(root, this.vars(extra), args);
    this.daemons.push(d);
    return d;
  }

  private async close(): Promise<void> {
    await Promise.all(
      this.daemons.splice(0).map(async (d) => {
        if (d.alive()) d.child.kill("SIGKILL");
        await d.exited;
      }),
    );
    await Promise.all([this.fake.close(), this.ntfy.close()]);
  }
}

/** SIGKILL every child still alive and wait until each is gone (afterEach-able; the files here run it afterAll as a backstop behind their Scopes). */
export async function killAll(): Promise<void> {
  const waiting = [...children].map(
    (c) =>
      new Promise<void>((resolveGone) => {
        if (c.exitCode !== null || c.signalCode !== null) return resolveGone();
        c.once("close", () => resolveGone());
        c.kill("SIGKILL");
      }),
  );
  await Promise.all(waiting);
  children.clear();
}

// ---------------------------------------------------------------------------
// Waiting

/**
 * Poll `condition` every 20 ms until it is truthy; its value is returned. The default wait is
 * generous (30 s): on a 2-core machine running other work, a step of a few hundred ms of CPU can
 * take seconds; a condition that never comes still fails well inside the test's 60 s.
 */
export async function waitFor<T>(condition: () => T | Promise<T>, opts: { timeoutMs?: number; what?: string } = {}): Promise<NonNullable<T>> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await condition();
      if (value) return value as NonNullable<T>;
      last = value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${opts.what ?? "a condition"} (last: ${String(last)})`);
    }
    await sleep(20);
  }
}

/** Wait until `path` exists and return its content. */
export function waitForFile(path: string, timeoutMs = 30_000): Promise<string> {
  return waitFor(() => readFile(path, "utf8").catch(() => null), { timeoutMs, what: path });
}

export async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** Hold for a few poll intervals (to show that something does NOT happen). */
export const settle = (intervals = 5): Promise<void> => sleep(intervals * POLL_MS);

// ---------------------------------------------------------------------------
// Files of a root

export const inputPath = (root: string, session: string): string => join(root, "dispatch", session, "input.txt");

/** state/status.json, the public read model, parsed (written atomically, so a read never sees half of it). */
export async function readStatusJson(root: string): Promise<StatusFile> {
  return statusFileSchema.parse(JSON.parse(await readFile(join(root, "state", "status.json"), "utf8")));
}

/** The relay's state as status.json says ("" before the first status is written). */
export async function machineState(root: string): Promise<string> {
  try {
    return (await readStatusJson(root)).state;
  } catch {
    return "";
  }
}

/** Whether the relay has seen every delivered reply acknowledged (input.txt deleted). */
export async function allAcknowledged(root: string): Promise<boolean> {
  const status = await readStatusJson(root).catch(() => null);
  return status !== null && Object.values(status.sessions).every((s) => s.awaitingAck !== true);
}

/** The relay is at rest with nothing left to deliver (every reply acknowledged or in input.txt). */
export async function quiet(root: string): Promise<boolean> {
  const status = await readStatusJson(root).catch(() => null);
  if (!status) return false;
  const resting = Object.values(status.conversations).every((c) => c.state === "idle" || c.state === "awaitingAck" || c.state === "needsJc");
  return (status.state === "idle" || status.state === "awaitingAck") && resting && Object.values(status.sessions).every((s) => s.pending === 0);
}

export interface HistoryLine {
  kind: "turn" | "note" | "summary";
  id: string;
  session?: string;
  source?: "envelope" | "jc";
  text: string;
  reply?: string;
}

/** Every line of every state/history/*.jsonl, parsed (a torn line fails the test). */
export async function readHistory(root: string): Promise<Record<string, HistoryLine[]>> {
  const dir = join(root, "state", "history");
  const out: Record<string, HistoryLine[]> = {};
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (!name.endsWith(".jsonl")) continue;
    const raw = await readFile(join(dir, name), "utf8");
    out[name] = raw
      .split("\n")
      .filter((l) => l.trim() !== "")
      .map((l) => JSON.parse(l) as HistoryLine);
  }
  return out;
}

/** The envelopes waiting in queue/ (every name but the .rejected directory). */
export async function queueNames(root: string): Promise<string[]> {
  return (await readdir(join(root, "queue")).catch(() => [] as string[])).filter((n) => n !== ".rejected").sort();
}

/** Write an envelope straight into queue/ (what a CC hook would do), optionally with an mtime. */
export async function dropEnvelope(root: string, name: string, body: unknown, mtime?: Date): Promise<string> {
  await mkdir(join(root, "queue"), { recursive: true });
  const path = join(root, "queue", name);
  await writeFile(path, typeof body === "string" ? body : JSON.stringify(body));
  if (mtime) await utimes(path, mtime, mtime);
  return path;
}

// ---------------------------------------------------------------------------
// Requests the fake Messages API received

interface TextBlock {
  type: string;
  text: string;
  cache_control?: { type: string; ttl?: string };
}
export interface RequestBody {
  model: string;
  system?: TextBlock[] | string;
  messages: { role: string; content: TextBlock[] | string }[];
}

export const bodyOf = (r: RecordedRequest | undefined): RequestBody => {
  if (!r || typeof r.body !== "object" || r.body === null) throw new Error("no JSON request recorded");
  return r.body as RequestBody;
};

const textOf = (content: TextBlock[] | string | undefined): string =>
  content === undefined ? "" : typeof content === "string" ? content : content.map((b) => b.text).join("\n");

export const systemText = (r: RecordedRequest | undefined): string => textOf(bodyOf(r).system);
export const messageTexts = (r: RecordedRequest | undefined): string[] => bodyOf(r).messages.map((m) => textOf(m.content));
export const lastUserText = (r: RecordedRequest | undefined): string => messageTexts(r).at(-1) ?? "";

// ---------------------------------------------------------------------------
// Secrets (CONTRACT §8)

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const entry of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = join(d, entry.name);
      if (entry.isDirectory()) await walk(p);
      else if (entry.isFile()) out.push(p);
    }
  };
  await walk(dir);
  return out;
}

/** Every place the key turned up: files under the temp dirs but .env, CLI output, ntfy bodies. */
export async function secretLeaks(secret = TEST_KEY): Promise<string[]> {
  const leaks: string[] = [];
  for (const dir of tracked.dirs) {
    for (const file of await filesUnder(dir)) {
      if (file.endsWith("/.env")) continue;
      const content = await readFile(file).catch(() => Buffer.alloc(0));
      if (content.includes(secret)) leaks.push(file);
    }
  }
  for (const o of tracked.outputs) if (o.text().includes(secret)) leaks.push(o.what);
  for (const list of tracked.ntfy) {
    for (const m of list) if (JSON.stringify(m).includes(secret)) leaks.push(`ntfy message ${m.id}`);
  }
  return leaks;
}

/** How much the secrets check looked at (so it cannot pass by scanning nothing). */
export function scannedCounts(): { dirs: number; outputs: number; ntfy: number } {
  return { dirs: tracked.dirs.size, outputs: tracked.outputs.length, ntfy: tracked.ntfy.reduce((n, l) => n + l.length, 0) };
}

/**
 * The last test of a file: after every scenario above it, the key is in no file under the temp
 * roots but .env, in no captured CLI output and in no ntfy message. Then the roots go.
 */
export function secretsCheck(): void {
  it("never writes the API key to a file other than .env, to CLI output, or to a notification", async () => {
    const counts = scannedCounts();
    expect(counts.dirs).toBeGreaterThan(0);
    expect(counts.outputs).toBeGreaterThan(0);
    expect(await secretLeaks()).toEqual([]);
  });
  afterAll(removeRoots);
}

/** Answer as JC the way the contract allows any script to: write state/jc_input.txt atomically. */
export async function writeJcInput(root: string, text: string): Promise<void> {
  await mkdir(join(root, "state"), { recursive: true });
  const tmp = join(root, "state", `.jc_input.${randomBytes(4).toString("hex")}.tmp`);
  await writeFile(tmp, `${text}\n`);
  await rename(tmp, join(root, "state", "jc_input.txt"));
}
