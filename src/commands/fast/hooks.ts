// The Claude Code hooks, run by bin/relay.js without loading oclif: they start on every agent
// turn. Bundled on their own into one CommonJS file (dist/hot/hooks.cjs, scripts/bundle.mjs),
// which leaves out only the YAML and .env parsers (loaded when config.yaml has no cached copy, or
// .env is read): Node 20 has no compile cache, and each module file costs a hook its resolution,
// read and link, so one file starts faster than the few dozen chunks the other commands share. A
// command line is run here only when it is plain (./argv.ts); anything else (help, a bad flag, an
// unknown hook) goes to oclif, whose output and exit codes stay the reference. Each hook's work
// is the same function its oclif command calls (../hook/hook-actions.ts).
import type { HookOutcome } from "../../claude-code/hook.js";
import { zodWithoutJit } from "../../zod-jitless.js";
import { END_FLAGS, endHook, FAILURE_FLAGS, failureHook, PERMISSION_FLAGS, permissionHook, START_FLAGS, startHook, STOP_FLAGS, stopHook, writeHookFailure, writeOutcome } from "../hook/hook-actions.js";
import { type FlagSpecs, oclifEnvironment, type ParsedFlags, parsePlainFlags } from "./argv.js";

async function hook<F extends FlagSpecs>(name: string, specs: F, words: readonly string[], act: (flags: ParsedFlags<F>) => Promise<HookOutcome>): Promise<boolean> {
  const flags = parsePlainFlags(specs, words);
  if (flags === null) return false;
  try {
    zodWithoutJit();
    writeOutcome(await act(flags));
  } catch (err) {
    await writeHookFailure(name, err instanceof Error ? err : new Error(String(err)));
  }
  return true;
}

/**
 * Runs `argv` (the words after `relay`) when it is a plain call of a Claude Code hook and returns
 * true; returns false, having done nothing, when oclif should run it.
 */
export async function runWithoutOclif(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  const startedAt = Date.now();
  if (oclifEnvironment(env)) return false;
  const [command, sub] = argv;
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
