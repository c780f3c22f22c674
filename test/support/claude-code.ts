// The real Claude Code, for the tests that drive it (FACTS "Claude Code hooks"). The pinned
// versions are installed from the npm registry into a cache outside the repository (never a
// dependency of the product): $RELAY_CLAUDE_CODE_CACHE, else $XDG_CACHE_HOME/relay/claude-code,
// else ~/.cache/relay/claude-code, one folder per version. `.ci/run` fills it; a test run fills it
// itself when it can reach the registry, and the tests skip with the reason when it cannot.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { access, mkdir, mkdtemp, rm } from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

/** The versions tested: today's pin, and what an unpinned install gives on Node 20. */
export const CLAUDE_CODE_VERSIONS = ["2.1.332", "2.1.197"] as const;
export type ClaudeCodeVersion = (typeof CLAUDE_CODE_VERSIONS)[number];

export const claudeCodeCache = (): string =>
  process.env.RELAY_CLAUDE_CODE_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "relay", "claude-code");

const binOf = (version: string): string => join(claudeCodeCache(), version, "node_modules", ".bin", "claude");

export type Located = { ok: true; bin: string } | { ok: false; reason: string };

/** The `claude` binary of that version, installing it into the cache first if needed. */
export async function locateClaudeCode(version: ClaudeCodeVersion): Promise<Located> {
  const bin = binOf(version);
  if (await access(bin).then(() => true, () => false)) return { ok: true, bin };
  const prefix = join(claudeCodeCache(), version);
  await mkdir(prefix, { recursive: true });
  try {
    await promisify(execFile)("npm", ["install", "--no-save", "--no-audit", "--no-fund", "--prefix", prefix, `@anthropic-ai/claude-code@${version}`], { timeout: 240_000 });
  } catch (err) {
    return { ok: false, reason: `Claude Code ${version} is not in ${claudeCodeCache()} and could not be installed from the npm registry (${(err as Error).message.split("\n")[0]})` };
  }
  return (await access(bin).then(() => true, () => false)) ? { ok: true, bin } : { ok: false, reason: `npm installed @anthropic-ai/claude-code@${version} but ${bin} is missing` };
}

/** A private HOME and project for one Claude Code run: nothing of the developer's own setup leaks in. */
export interface ClaudeWorld {
  base: string;
  home: string;
  project: string;
  env(modelUrl: string, extra?: Record<string, string>): NodeJS.ProcessEnv;
  remove(): Promise<void>;
}

export async function makeClaudeWorld(): Promise<ClaudeWorld> {
  const base = await mkdtemp(join(tmpdir(), "relay-cc-"));
  const home = join(base, "home");
  const project = join(base, "project");
  await mkdir(home, { recursive: true });
  await mkdir(project, { recursive: true });
  return {
    base,
    home,
    project,
    env: (modelUrl, extra = {}) => ({
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: home,
      XDG_CONFIG_HOME: join(home, ".config"),
      XDG_DATA_HOME: join(home, ".local", "share"),
      XDG_CACHE_HOME: join(home, ".cache"),
      XDG_STATE_HOME: join(home, ".local", "state"),
      TMPDIR: base,
      // The relay's hooks keep Node's compile cache where a user's would be, in one temp dir that
      // outlives a test, not in this world's own (where every hook of every test started cold).
      NODE_COMPILE_CACHE: join(tmpdir(), "node-compile-cache"),
      ANTHROPIC_API_KEY: "sk-ant-claude-code-dummy",
      ANTHROPIC_BASE_URL: modelUrl,
      DISABLE_AUTOUPDATER: "1",
      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1",
      DISABLE_TELEMETRY: "1",
      DISABLE_ERROR_REPORTING: "1",
      ...extra,
    }),
    remove: () => rm(base, { recursive: true, force: true }),
  };
}

export interface ClaudeRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** stdout's stream-json events */
  events: Record<string, unknown>[];
}

/** Every Claude Code still running, by the world it runs in (so one test can end its own). */
const running = new Map<ChildProcess, ClaudeWorld>();

/**
 * `claude ARGS` in the world's project, to completion (killed, with its process group, after
 * `timeoutMs`). With `stdinMessages`, the session is driven as the Agent SDK drives it
 * (`--input-format stream-json`): the messages are written and stdin stays open until
 * `closeStdinWhen` says so (so a background hook's wake can still arrive).
 */
export async function runClaude(
  bin: string,
  world: ClaudeWorld,
  args: string[],
  opts: {
    env: NodeJS.ProcessEnv;
    timeoutMs?: number;
    stdinMessages?: string[];
    /** more messages, written once `after` settles (a turn of their own, not queued behind the first) */
    laterStdinMessages?: { after: Promise<unknown>; messages: string[] };
    closeStdinWhen?: (stdout: string) => boolean;
    closeStdinAfter?: Promise<unknown>;
  },
): Promise<ClaudeRun> {
  const child = spawn(bin, args, { cwd: world.project, env: opts.env, stdio: ["pipe", "pipe", "pipe"], detached: true });
  running.set(child, world);
  let stdout = "";
  let stderr = "";
  let stdinOpen = true;
  const closeStdin = (): void => {
    if (!stdinOpen) return;
    stdinOpen = false;
    child.stdin.end();
  };
  child.stdout.on("data", (d: Buffer) => {
    stdout += d.toString("utf8");
    if (opts.closeStdinWhen?.(stdout)) closeStdin();
  });
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString("utf8")));
  child.stdin.on("error", () => undefined);
  if (opts.stdinMessages) {
    const write = (text: string): void => {
      if (stdinOpen) child.stdin.write(`${JSON.stringify({ type: "user", message: { role: "user", content: text } })}\n`);
    };
    opts.stdinMessages.forEach(write);
    if (opts.laterStdinMessages) void opts.laterStdinMessages.after.finally(() => opts.laterStdinMessages?.messages.forEach(write));
    if (opts.closeStdinAfter) void opts.closeStdinAfter.finally(closeStdin);
    else if (!opts.closeStdinWhen) closeStdin();
  } else {
    closeStdin();
  }
  const timer = setTimeout(() => killGroup(child), opts.timeoutMs ?? 90_000);
  const code = await new Promise<number | null>((resolve) => child.on("close", (c) => resolve(c)));
  clearTimeout(timer);
  running.delete(child);
  const events = stdout
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as Record<string, unknown>];
      } catch {
        return [];
      }
    });
  return { code, stdout, stderr, events };
}

function killGroup(child: ChildProcess): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, "SIGKILL");
  } catch {
    child.kill("SIGKILL");
  }
}

/**
 * Kill every Claude Code still running in `world` (a test's own, when the tests of a file run
 * concurrently), or in any world: hooks run in their own groups, and are the tests' to end.
 */
export function killClaudes(world?: ClaudeWorld): void {
  for (const [child, of] of running) {
    if (world !== undefined && of !== world) continue;
    killGroup(child);
    running.delete(child);
  }
}
