// The commands bin/relay.js runs without loading oclif: `relay status`, and `relay run`, which
// would otherwise hold oclif in memory for its whole life (the Claude Code hooks are ./hooks.ts).
// Loading oclif and its command map costs more than these commands' own work. A command line is run here only when it is plain (./argv.ts); anything else (help, a bad
// flag, an unknown word) goes to oclif, whose output and exit codes stay the reference. Each
// command's work is the same function its oclif command calls.
import { pathsForRoot, type RelayPaths } from "../../config/paths.js";
import { expectedFailure, scrubError } from "../failure.js";
import { RUN_FLAGS, runRelay } from "../run-action.js";
import { STATUS_FLAGS, statusOf } from "../status-action.js";
import { oclifEnvironment, parsePlainFlags } from "./argv.js";

/** `relay status` parses a few small objects and exits: zod's JIT costs it more than it saves (src/zod-jitless.ts). */
async function withoutZodJit(): Promise<void> {
  const { zodWithoutJit } = await import("../../zod-jitless.js");
  zodWithoutJit();
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
 * Runs `argv` (the words after `relay`) when it is a plain call of `relay status` or `relay run`
 * and returns true; returns false, having done nothing, when oclif should run it.
 */
export async function runWithoutOclif(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  if (oclifEnvironment(env)) return false;
  const [command] = argv;
  if (command === "status") return status(argv.slice(1));
  if (command === "run") return run(argv.slice(1));
  return false;
}
