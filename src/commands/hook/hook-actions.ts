// What the Claude Code hook commands do once their flags are parsed, free of oclif so that
// bin/relay.js can run them without loading it (they start on every agent turn). The oclif
// commands in this folder call the same functions; ../fast/hooks.ts calls them with the flags of
// ../fast/argv.ts. FLAGS here must match the oclif flags (test/unit/fast-path.test.ts checks).
import type { HookOutcome } from "../../claude-code/hook.js";
import { DEFAULT_MAX_TURNS, DEFAULT_PERMISSION_WAIT_S, DEFAULT_RELEASE_AFTER_S, DEFAULT_WAIT_S, DEFAULT_WAKE_WAIT_S, DEFAULT_EVIDENCE_MAX } from "../../claude-code/defaults.js";
import { pathsForRoot } from "../../config/paths.js";
import { SESSION_ID } from "../../config/session-id.js";
import type { FlagSpecs, ParsedFlags } from "../fast/argv.js";

const root = { kind: "string" } as const;
const session = { kind: "string", char: "s", required: true } as const;

export const STOP_FLAGS = {
  root,
  session,
  mode: { kind: "string", options: ["block", "wake"], default: "block" },
  timeout: { kind: "integer", min: 1 },
  "max-turns": { kind: "integer", min: 1, default: DEFAULT_MAX_TURNS },
  evidence: { kind: "boolean", allowNo: true, default: true },
  "evidence-max": { kind: "integer", min: 200, default: DEFAULT_EVIDENCE_MAX },
  "release-after": { kind: "integer", min: 1, default: DEFAULT_RELEASE_AFTER_S },
} as const satisfies FlagSpecs;
export const START_FLAGS = { root, session, "release-after": { kind: "integer", min: 1, default: DEFAULT_RELEASE_AFTER_S } } as const satisfies FlagSpecs;
export const END_FLAGS = { root, session } as const satisfies FlagSpecs;
export const FAILURE_FLAGS = { root, session } as const satisfies FlagSpecs;
export const PERMISSION_FLAGS = { root, session, timeout: { kind: "integer", min: 1, default: DEFAULT_PERMISSION_WAIT_S } } as const satisfies FlagSpecs;

/** The outcome of a session id that is not one (one line, exit 1), or null when it is one. */
function badSession(id: string): HookOutcome | null {
  if (SESSION_ID.test(id)) return null;
  return { stdout: null, stderr: [`relay: ${JSON.stringify(id)} is not a valid session id (${SESSION_ID.source})`], exitCode: 1 };
}

/** The Stop hook; `startedAt` is when the process started to handle it (its --timeout counts from there). */
export async function stopHook(flags: ParsedFlags<typeof STOP_FLAGS>, startedAt: number): Promise<HookOutcome> {
  const paths = pathsForRoot(flags.root);
  const mode = flags.mode === "wake" ? "wake" : "block";
  const waitS = flags.timeout ?? (mode === "wake" ? DEFAULT_WAKE_WAIT_S : DEFAULT_WAIT_S);
  const bad = badSession(flags.session);
  if (bad) return bad;
  const [{ loadClientConfig }, { runStopHook }, { readStdin }] = await Promise.all([
    import("../../config/config.js"),
    import("../../claude-code/hook.js"),
    import("../../claude-code/hook-input.js"),
  ]);
  const input = await readStdin(process.stdin, Math.min(5_000, waitS * 1000));
  // Claude Code may end a background hook with SIGTERM (its timeout, the session ending, a newer stop): end quietly.
  process.once("SIGTERM", () => process.exit(0));
  return runStopHook({
    paths,
    session: flags.session,
    input,
    mode,
    deadline: startedAt + waitS * 1000,
    maxTurns: flags["max-turns"],
    releaseAfterMs: flags["release-after"] * 1000,
    evidenceMax: flags.evidence ? flags["evidence-max"] : 0,
    loadConfig: () => loadClientConfig(paths, process.env, { seed: false }),
  });
}

/** The SessionStart hook: hands over the replies the session has not seen. */
export async function startHook(flags: ParsedFlags<typeof START_FLAGS>): Promise<HookOutcome> {
  const paths = pathsForRoot(flags.root);
  const bad = badSession(flags.session);
  if (bad) return bad;
  const [{ runStartHook }, { readStdin }] = await Promise.all([import("../../claude-code/hook.js"), import("../../claude-code/hook-input.js")]);
  const input = await readStdin(process.stdin, 2_000);
  return runStartHook({ paths, session: flags.session, input, releaseAfterMs: flags["release-after"] * 1000 });
}

/** The SessionEnd hook: releases the relay session and ends a background wait. */
export async function endHook(flags: ParsedFlags<typeof END_FLAGS>): Promise<HookOutcome> {
  const paths = pathsForRoot(flags.root);
  const bad = badSession(flags.session);
  if (bad) return bad;
  const [{ runEndHook }, { readStdin }] = await Promise.all([import("../../claude-code/hook.js"), import("../../claude-code/hook-input.js")]);
  const input = await readStdin(process.stdin, 2_000);
  return runEndHook({ paths, session: flags.session, input });
}

/** The StopFailure hook: records the failure; the relay tells JC once per streak. */
export async function failureHook(flags: ParsedFlags<typeof FAILURE_FLAGS>): Promise<HookOutcome> {
  const paths = pathsForRoot(flags.root);
  const bad = badSession(flags.session);
  if (bad) return bad;
  const [{ runStopFailureHook }, { readStdin }] = await Promise.all([import("../../claude-code/stop-failure.js"), import("../../claude-code/hook-input.js")]);
  const input = await readStdin(process.stdin, 2_000);
  return runStopFailureHook({ paths, session: flags.session, input });
}

/** The PermissionRequest hook; `startedAt` as for the Stop hook. */
export async function permissionHook(flags: ParsedFlags<typeof PERMISSION_FLAGS>, startedAt: number): Promise<HookOutcome> {
  const paths = pathsForRoot(flags.root);
  const bad = badSession(flags.session);
  if (bad) return bad;
  const [{ runPermissionHook }, { readStdin }] = await Promise.all([import("../../claude-code/permission-hook.js"), import("../../claude-code/hook-input.js")]);
  const input = await readStdin(process.stdin, 2_000);
  return runPermissionHook({ paths, session: flags.session, input, deadline: startedAt + flags.timeout * 1000, waitS: flags.timeout });
}

/**
 * The outcome on stdout/stderr with its exit code. Exit 2 (Claude Code's "block") is the text on
 * stderr in one write; otherwise each stderr line, then stdout, as oclif's log and logToStderr.
 */
export function writeOutcome(outcome: HookOutcome): void {
  if (outcome.exitCode === 2) process.stderr.write(`${outcome.stderr.join("\n")}\n`);
  else for (const line of outcome.stderr) console.error(line);
  if (outcome.stdout !== null) console.log(outcome.stdout);
  process.exitCode = outcome.exitCode;
}

/** Any failure of a hook: one line on stderr and exit 1 (never 2, which Claude Code would take as a block). */
export async function writeHookFailure(hook: string, err: Error): Promise<void> {
  const { oneLineError } = await import("../../claude-code/hook.js");
  console.error(`relay hook ${hook}: ${oneLineError(err)}`);
  process.exitCode = 1;
}
