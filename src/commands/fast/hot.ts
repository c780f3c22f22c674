// `relay run`, run by bin/relay.js without loading oclif, which it would otherwise hold in memory
// for its whole life (the Claude Code hooks are ./hooks.ts, `relay status` ./status.ts). A
// command line is run here only when it is plain (./argv.ts); anything else (help, a bad flag,
// an unknown word) goes to oclif, whose output and exit codes stay the reference. The command's
// work is the function its oclif command calls (../run-action.ts).
import { pathsForRoot, type RelayPaths } from "../../config/paths.js";
import { expectedFailure, scrubError } from "../failure.js";
import { RUN_FLAGS, runRelay } from "../run-action.js";
import { oclifEnvironment, parsePlainFlags } from "./argv.js";

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
 * Runs `argv` (the words after `relay`) when it is a plain call of `relay run` and returns true;
 * returns false, having done nothing, when oclif should run it.
 */
export async function runWithoutOclif(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  if (oclifEnvironment(env) || argv[0] !== "run") return false;
  return run(argv.slice(1));
}
