// `relay status`, run by bin/relay.js without loading oclif: it is what scripts poll. Bundled on
// its own into one CommonJS file (dist/hot/status.cjs, scripts/bundle.mjs), as the Claude Code
// hooks are (./hooks.ts, which says why). A command line is run here only when it is plain
// (./argv.ts), and a status that fails is run again by oclif, which reports the failure in its
// own words; its work is the function its oclif command calls (../status-action.ts).
import { zodWithoutJit } from "../../zod-jitless.js";
import { STATUS_FLAGS, statusOf } from "../status-action.js";
import { oclifEnvironment, parsePlainFlags } from "./argv.js";

/**
 * Runs `argv` (the words after `relay`) when it is a plain `relay status` that succeeds and
 * returns true; returns false, having printed nothing, when oclif should run it.
 */
export async function runWithoutOclif(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  if (oclifEnvironment(env) || argv[0] !== "status") return false;
  const flags = parsePlainFlags(STATUS_FLAGS, argv.slice(1));
  if (flags === null) return false;
  let out: Awaited<ReturnType<typeof statusOf>>;
  try {
    zodWithoutJit();
    out = await statusOf(flags);
  } catch {
    // status only reads: oclif runs it again and reports the failure in its own words
    return false;
  }
  console.log(flags.json ? JSON.stringify(out.report, null, 2) : out.text);
  return true;
}
