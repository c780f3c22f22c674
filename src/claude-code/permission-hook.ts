// The PermissionRequest hook (CONTRACT §10): a tool permission prompt of Claude Code goes to JC
// (a question with Allow and Deny on the phone) and JC's answer comes back as Claude Code's
// decision. No answer within the wait is a deny, never an allow; no relay running leaves the
// prompt to Claude Code (interactively it asks at the terminal; `-p` denies by itself).
import { randomBytes } from "node:crypto";
import * as z from "zod/mini";
import type { RelayPaths } from "../config/paths.js";
import { closeRequest, permissionsDir, readDecision, writeRequest } from "../operator/permissions.js";
import { DirWaiter } from "../store/dir-waiter.js";
import { ensureDirs } from "../store/files.js";
import { probeLock } from "../store/lock.js";
import { DECIDED_BY } from "../../machines/types.js";
import { redact } from "./evidence.js";
import { type HookOutcome, turnEvidence } from "./hook.js";

const inputSchema = z.looseObject({
  session_id: z.optional(z.string()),
  transcript_path: z.optional(z.string()),
  cwd: z.optional(z.string()),
  hook_event_name: z.optional(z.string()),
  tool_name: z.optional(z.string()),
  tool_input: z.optional(z.record(z.string(), z.unknown())),
});

export const permissionOutput = (allow: boolean, message: string): string =>
  JSON.stringify({ hookSpecificOutput: { hookEventName: "PermissionRequest", decision: allow ? { behavior: "allow" } : { behavior: "deny", message } } });

const stringField = (input: Record<string, unknown>, key: string): string | null => {
  const value = input[key];
  return typeof value === "string" ? value : null;
};
/** The file a tool would touch: Edit, Write and Read name `file_path`, NotebookEdit `notebook_path`, Glob and Grep `path`. */
const pathOf = (input: Record<string, unknown>): string | null => stringField(input, "file_path") ?? stringField(input, "notebook_path") ?? stringField(input, "path");

/** What the agent asks, in one paragraph JC can decide on from the phone: the tool, the command or path, its stated reason. */
export function describeRequest(session: string, tool: string, input: Record<string, unknown>): string {
  const str = (key: string): string | null => stringField(input, key);
  const what = str("command") ?? pathOf(input) ?? str("url") ?? str("pattern") ?? JSON.stringify(input).slice(0, 300);
  const why = str("description");
  const flat = (t: string, max: number) => {
    const one = t.replace(/\s+/g, " ").trim();
    return one.length > max ? `${one.slice(0, max)}…` : one;
  };
  return redact(`${session} asks permission to run ${tool}: ${flat(what, 500)}${why ? ` (“${flat(why, 200)}”)` : ""}`);
}

/** The evidence chat-Claude gets with a prompt, in characters. */
const PERMISSION_EVIDENCE_MAX = 2_000;

/** Who decided, as the agent is told. */
const deciderName = (by: string): string => (by === DECIDED_BY.jc ? "JC" : by === DECIDED_BY.policy ? "chat-Claude (the relay's permission policy)" : by);

export interface PermissionHookOptions {
  paths: RelayPaths;
  session: string;
  input: string;
  /** when to give up and deny (epoch ms) */
  deadline: number;
  /** the hook's whole wait in seconds (--timeout), as the agent is told on a timeout */
  waitS?: number;
  pollMs?: number;
}

export async function runPermissionHook(opts: PermissionHookOptions): Promise<HookOutcome> {
  const { paths, session } = opts;
  let json: unknown;
  try {
    json = JSON.parse(opts.input);
  } catch {
    return { stdout: null, stderr: ["relay: standard input is not the hook's JSON; the prompt is left to Claude Code"], exitCode: 0 };
  }
  const parsed = inputSchema.safeParse(json);
  if (!parsed.success) return { stdout: null, stderr: ["relay: standard input is not the hook's JSON; the prompt is left to Claude Code"], exitCode: 0 };
  if (!probeLock(paths.lock).held) {
    return { stdout: null, stderr: [`relay: no relay is running on ${paths.root}; the permission prompt is left to Claude Code`], exitCode: 0 };
  }
  // The wait the agent is told about is the hook's whole wait (--timeout), not what is left after start-up and the evidence.
  const waitS = opts.waitS ?? Math.round((opts.deadline - Date.now()) / 1000);
  const tool = parsed.data.tool_name ?? "a tool";
  const toolInput = parsed.data.tool_input ?? {};
  const id = `p-${Date.now().toString(36)}-${randomBytes(3).toString("hex")}`;
  const command = stringField(toolInput, "command");
  const path = pathOf(toolInput);
  const reason = stringField(toolInput, "description");
  // What the agent did so far in this turn, for chat-Claude when permissions.policy lets it decide.
  const evidence = parsed.data.transcript_path ? await turnEvidence(parsed.data.transcript_path, parsed.data.cwd ?? null, PERMISSION_EVIDENCE_MAX) : null;
  await writeRequest(paths, {
    id,
    session,
    text: describeRequest(session, tool, toolInput),
    since: Date.now(),
    ...(parsed.data.tool_name === undefined ? {} : { tool: parsed.data.tool_name }),
    ...(command === null ? {} : { command: redact(command) }),
    ...(path === null ? {} : { path }),
    ...(reason === null ? {} : { reason: redact(reason) }),
    ...(evidence === null ? {} : { evidence }),
    deadline: opts.deadline,
  });
  try {
    const decision = await waitForDecision(paths, id, opts.deadline, opts.pollMs ?? 200);
    if (decision === null) {
      const why = `no answer from JC within ${waitS} s: denied (permission prompt ${id})`;
      return { stdout: permissionOutput(false, why), stderr: [`relay: ${why}`], exitCode: 0 };
    }
    const why = decision.allow ? "" : `${deciderName(decision.by)} denied this: ${decision.reason}`;
    return { stdout: permissionOutput(decision.allow, why), stderr: [`relay: permission ${id} ${decision.allow ? "allowed" : "denied"} by ${decision.by}`], exitCode: 0 };
  } finally {
    await closeRequest(paths, id);
  }
}

async function waitForDecision(paths: RelayPaths, id: string, deadline: number, pollMs: number) {
  await ensureDirs(permissionsDir(paths));
  const waiter = new DirWaiter(permissionsDir(paths));
  try {
    for (;;) {
      const decision = await readDecision(paths, id);
      if (decision) return decision;
      const left = deadline - Date.now();
      if (left <= 0) return null;
      await waiter.next(Math.min(pollMs, left));
    }
  } finally {
    waiter.close();
  }
}
