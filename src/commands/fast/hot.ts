// The commands bin/relay.js runs without loading oclif: the Claude Code hooks, which start on
// every agent turn, `relay status`, and `relay run`, which would otherwise hold oclif in memory
// for its whole life. Loading oclif and its command map costs more than these commands' own
// work. A command line is run here only when it is plain (./argv.ts); anything else (help, a bad
// flag, an unknown word) goes to oclif, whose output and exit codes stay the reference. Each
// command's work is the same function its oclif command calls.
import { pathsForRoot, type RelayPaths } from "../../config/paths.js";
import { expectedFailure, scrubError } from "../failure.js";
import { END_FLAGS, endHook, FAILURE_FLAGS, failureHook, PERMISSION_FLAGS, permissionHook, START_FLAGS, startHook, STOP_FLAGS, stopHook, writeHookFailure, writeOutcome } from "../hook/hook-actions.js";
import type { HookOutcome } from "../../claude-code/hook.js";
import { RUN_FLAGS, runRelay } from "../run-action.js";
import { STATUS_FLAGS, statusOf } from "../status-action.js";
import { type FlagSpecs, type ParsedFlags, parsePlainFlags } from "./argv.js";

/** Environment that changes how oclif runs a command (debug output, JSON by default): leave those runs to oclif. */
const OCLIF_ENV = ["DEBUG", "RELAY_DEBUG", "RELAY_CONTENT_TYPE"];

/**
 * The hooks and `relay status` parse a few small objects and exit: zod's JIT, which compiles a
 * parser for each object schema with `new Function` on its first use, costs them more than it
 * saves (about 10 ms of a Stop hook's CPU on Node 20). `relay run`, which parses for weeks, keeps it.
 */
async function withoutZodJit(): Promise<void> {
  const { config } = await import("zod");
  config({ jitless: true });
}

async function hook<F extends FlagSpecs>(name: string, specs: F, words: readonly string[], act: (flags: ParsedFlags<F>) => Promise<HookOutcome>): Promise<boolean> {
  const flags = parsePlainFlags(specs, words);
  if (flags === null) return false;
  try {
    await withoutZodJit();
    writeOutcome(await act(flags));
  } catch (err) {
    await writeHookFailure(name, err instanceof Error ? err : new Error(String(err)));
  }
  return true;
}

async function status(words: readonly string[]): Promise<boolean> {
  const flags = parsePlainFlags(STATUS_FLAGS, words);
  if (flags === null) return false;
  let out: Awaited<ReturnType<typeof statusOf>>;
  try {
    await withoutZodJit();
    out = await statusOf(flags);
  } catch {
    // status only reads: oclif runs it again and reports the failure in its own words
    return false;
  }
  console.log(flags.json ? JSON.stringify(out.report, null, 2) : out.text);
  return true;
}

/**
 * `relay run`, reporting a failure as its oclif command does (RelayCommand.catch): an expected one
 * in one line with its exit code, anything else by oclif's own handler, loaded for it alone.
 */
async function run(words: readonly string[]): Promise<boolean> {
  const flags = parsePlainFlags(RUN_FLAGS, words);
  if (flags === null) return false;
  let paths: RelayPaths | null = null;
  let code: number;
  try {
    paths = pathsForRoot(flags.root);
    code = await runRelay(flags, paths);
  } catch (err) {
    const error = err instanceof Error ? err : new Error(String(err));
    await scrubError(error, paths);
    const expected = expectedFailure(error);
    if (expected === null) {
      const { Errors } = await import("@oclif/core");
      await Errors.handle(error);
      return true;
    }
    process.stderr.write(`relay: ${expected.line}\n`);
    code = expected.code;
  }
  // as oclif ends a command that exits non-zero: at once, whatever is still pending
  if (code !== 0) process.exit(code);
  return true;
}

/**
 * Runs `argv` (the words after `relay`) when it is a plain call of a hot command and returns
 * true; returns false, having done nothing, when oclif should run it.
 */
export async function runWithoutOclif(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  const startedAt = Date.now();
  if (OCLIF_ENV.some((name) => env[name] !== undefined)) return false;
  const [command, sub] = argv;
  if (command === "status") return status(argv.slice(1));
  if (command === "run") return run(argv.slice(1));
  if (command !== "hook") return false;
  const words = argv.slice(2);
  switch (sub) {
    case "claude-stop":
      return hook(sub, STOP_FLAGS, words, (flags) => stopHook(flags, startedAt));
    case "claude-start":
      return hook(sub, START_FLAGS, words, startHook);
    case "claude-end":
      return hook(sub, END_FLAGS, words, endHook);
    case "claude-failure":
      return hook(sub, FAILURE_FLAGS, words, failureHook);
    case "claude-permission":
      return hook(sub, PERMISSION_FLAGS, words, (flags) => permissionHook(flags, startedAt));
    default:
      return false;
  }
}
