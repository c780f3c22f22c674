// What the agent actually did in the turn it ends (issue: the reviewer sees the work): its tool
// calls from Claude Code's transcript (name, the command or file, Bash's exit status), the files
// it wrote or edited, `git diff --stat` of the project, and the names of failing tests in the
// output of test commands. Appended to the envelope after the agent's message; capped,
// deterministic, never file contents, secrets redacted, and never more than about a second.
import { isAbsolute, relative } from "node:path";
import * as z from "zod/mini";

/** The longest `git` may take before it is skipped with a note. */
export const GIT_BUDGET_MS = 800;
const COMMAND_MAX = 160;
const FAILING_TESTS_MAX = 10;

export interface ToolCall {
  name: string;
  /** The command (Bash) or the file or pattern it worked on, redacted and shortened */
  target: string | null;
  /** "exit N", "ok", "error" or "denied", when its result is in the transcript */
  outcome: string | null;
}

export interface TurnActivity {
  calls: ToolCall[];
  /** Files written or edited, relative to the project where inside it, sorted */
  files: string[];
  /** Names of failing tests seen in the output of the turn's commands */
  failingTests: string[];
}

const entrySchema = z.looseObject({
  type: z.optional(z.string()),
  isSidechain: z.optional(z.boolean()),
  message: z.optional(z.looseObject({ role: z.optional(z.string()), content: z.unknown() })),
  attachment: z.optional(z.looseObject({ type: z.optional(z.string()) })),
});
const toolUseSchema = z.looseObject({ type: z.literal("tool_use"), id: z.string(), name: z.string(), input: z.optional(z.record(z.string(), z.unknown())) });
const toolResultSchema = z.looseObject({ type: z.literal("tool_result"), tool_use_id: z.string(), is_error: z.optional(z.boolean()), content: z.unknown() });

const partsOf = (content: unknown): unknown[] => (Array.isArray(content) ? content : typeof content === "string" ? [{ type: "text", text: content }] : []);

const resultText = (content: unknown): string =>
  typeof content === "string"
    ? content
    : partsOf(content)
        .map((p) => (typeof p === "object" && p !== null && typeof (p as { text?: unknown }).text === "string" ? (p as { text: string }).text : ""))
        .join("\n");

/** Secrets never leave the machine in evidence: known tokens, VAR=value assignments, and the values of secret-looking environment variables. */
export function redact(text: string, env: NodeJS.ProcessEnv = process.env): string {
  let out = text;
  for (const [key, value] of Object.entries(env)) {
    if (value && value.length >= 8 && /KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL|AUTH/i.test(key)) out = out.split(value).join("«redacted»");
  }
  return out
    .replace(/\bsk-ant-[A-Za-z0-9_-]+/g, "«redacted»")
    .replace(/\b(gh[pousr]_[A-Za-z0-9]{20,}|xox[abpr]-[A-Za-z0-9-]{10,}|AKIA[0-9A-Z]{16})\b/g, "«redacted»")
    .replace(/\b(Bearer|Basic|token)\s+[A-Za-z0-9._~+/=-]{12,}/gi, "$1 «redacted»")
    .replace(/\b([A-Z_][A-Z0-9_]*)=("[^"]*"|'[^']*'|\S+)/g, "$1=«redacted»")
    .replace(/\b(?=[A-Za-z0-9_-]*\d)(?=[A-Za-z0-9_-]*[A-Za-z])[A-Za-z0-9_-]{32,}\b/g, "«redacted»");
}

const oneLine = (text: string, max: number): string => {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > max ? `${flat.slice(0, max)}…` : flat;
};

const pathIn = (cwd: string | null, path: string): string => {
  if (cwd === null || !isAbsolute(path)) return path;
  const rel = relative(cwd, path);
  return rel === "" || rel.startsWith("..") || isAbsolute(rel) ? path : rel;
};

function targetOf(name: string, input: Record<string, unknown>, cwd: string | null, env: NodeJS.ProcessEnv): string | null {
  const str = (key: string): string | null => (typeof input[key] === "string" ? (input[key] as string) : null);
  if (name === "Bash") {
    const command = str("command");
    return command === null ? null : oneLine(redact(command, env), COMMAND_MAX);
  }
  const file = str("file_path") ?? str("notebook_path") ?? str("path");
  if (file !== null) return pathIn(cwd, file);
  const pattern = str("pattern") ?? str("url") ?? str("query") ?? str("description");
  return pattern === null ? null : oneLine(redact(pattern, env), COMMAND_MAX);
}

const WRITES = new Set(["Write", "Edit", "MultiEdit", "NotebookEdit"]);
const TEST_COMMAND = /\b(test|tests|vitest|jest|mocha|pytest|go test|cargo test|rspec|phpunit|ctest)\b/;
const FAILING_LINE = /^\s*(?:FAIL|FAILED|✕|×|✗|not ok \d+(?: -)?)\s+(.+?)\s*$/;

function outcomeOf(name: string, result: z.infer<typeof toolResultSchema>): string {
  const text = resultText(result.content);
  if (name === "Bash") {
    const exit = /^(?:Error: )?Exit code (\d+)/.exec(text);
    if (exit) return `exit ${exit[1]}`;
    if (result.is_error) return /requires approval|permission|denied|rejected/i.test(text) ? "denied" : "error";
    return "exit 0";
  }
  if (result.is_error) return /requires approval|permission|denied|rejected/i.test(text) ? "denied" : "error";
  return "ok";
}

/**
 * The tool calls of the last turn in a transcript: everything after the last prompt (a user
 * entry that is not only tool results, or hook context handed over), in order.
 */
export function turnActivity(jsonl: string, cwd: string | null, env: NodeJS.ProcessEnv = process.env): TurnActivity {
  const entries: z.infer<typeof entrySchema>[] = [];
  for (const raw of jsonl.split("\n")) {
    if (raw.trim() === "") continue;
    try {
      const entry = entrySchema.safeParse(JSON.parse(raw));
      if (entry.success && entry.data.isSidechain !== true) entries.push(entry.data);
    } catch {
      // a line still being written
    }
  }
  let start = 0;
  entries.forEach((entry, i) => {
    const prompt =
      (entry.type === "user" && partsOf(entry.message?.content).some((p) => !toolResultSchema.safeParse(p).success)) ||
      (entry.type === "attachment" && entry.attachment?.type === "hook_additional_context");
    if (prompt) start = i + 1;
  });
  const calls = new Map<string, ToolCall & { command: string | null }>();
  const failing = new Set<string>();
  for (const entry of entries.slice(start)) {
    for (const part of partsOf(entry.message?.content)) {
      const use = toolUseSchema.safeParse(part);
      if (entry.type === "assistant" && use.success) {
        const input = use.data.input ?? {};
        calls.set(use.data.id, { name: use.data.name, target: targetOf(use.data.name, input, cwd, env), outcome: null, command: typeof input.command === "string" ? input.command : null });
        continue;
      }
      const result = toolResultSchema.safeParse(part);
      if (entry.type !== "user" || !result.success) continue;
      const call = calls.get(result.data.tool_use_id);
      if (!call) continue;
      call.outcome = outcomeOf(call.name, result.data);
      if (call.name === "Bash" && call.command !== null && TEST_COMMAND.test(call.command)) {
        for (const line of resultText(result.data.content).split("\n")) {
          const m = FAILING_LINE.exec(line);
          if (m?.[1] && failing.size < FAILING_TESTS_MAX) failing.add(oneLine(redact(m[1], env), 160));
        }
      }
    }
  }
  const list = [...calls.values()];
  const files = [...new Set(list.filter((c) => WRITES.has(c.name) && c.target !== null && c.outcome !== "denied" && c.outcome !== "error").map((c) => c.target as string))].sort();
  return { calls: list.map(({ name, target, outcome }) => ({ name, target, outcome })), files, failingTests: [...failing] };
}

export type GitStat = { kind: "stat"; text: string } | { kind: "none" } | { kind: "skipped"; reason: string };

/** `git diff --stat HEAD` in `cwd` within `budgetMs`; none when it is not a repository or nothing changed. */
export function gitDiffStat(cwd: string, budgetMs = GIT_BUDGET_MS): Promise<GitStat> {
  // node:child_process (and dgram with it, about 0.5 MB) is loaded here, when a turn's evidence is
  // gathered, not by every process that loads this module: the idle relay among them
  const { execFile } = process.getBuiltinModule("node:child_process");
  return new Promise((resolve) => {
    execFile("git", ["-C", cwd, "diff", "--stat=100", "HEAD"], { timeout: budgetMs, maxBuffer: 256 * 1024, env: { ...process.env, GIT_OPTIONAL_LOCKS: "0", GIT_TERMINAL_PROMPT: "0" } }, (err, stdout) => {
      if (err) {
        const killed = (err as { killed?: boolean }).killed === true;
        resolve(killed ? { kind: "skipped", reason: `git took over ${budgetMs} ms` } : { kind: "none" });
        return;
      }
      const text = stdout.trimEnd();
      resolve(text === "" ? { kind: "none" } : { kind: "stat", text });
    });
  });
}

/** The evidence block, at most `max` characters (the tool list is shortened first, from the middle). */
export function formatEvidence(activity: TurnActivity, git: GitStat, max: number): string {
  const head = "[relay evidence: what this turn did, from Claude Code's transcript and the project]";
  const callLines = activity.calls.map((c, i) => `${i + 1}. ${c.name}${c.target ? ` ${c.name === "Bash" ? `\`${c.target}\`` : c.target}` : ""}${c.outcome ? ` → ${c.outcome}` : ""}`);
  const tail: string[] = [];
  if (activity.files.length > 0) tail.push(`Files written or edited: ${activity.files.join(", ")}`);
  if (activity.failingTests.length > 0) tail.push(`Failing tests seen: ${activity.failingTests.join("; ")}`);
  if (git.kind === "stat") tail.push("git diff --stat HEAD:", git.text);
  if (git.kind === "skipped") tail.push(`git diff --stat skipped (${git.reason})`);
  const render = (calls: string[]): string => [head, `Tool calls (${activity.calls.length}):${activity.calls.length === 0 ? " none" : ""}`, ...calls, ...tail].join("\n");
  let text = render(callLines);
  if (text.length <= max) return text;
  // Keep the first and last calls; drop from the middle until it fits.
  for (let keep = callLines.length - 1; keep >= 2; keep--) {
    const first = Math.ceil(keep / 2);
    const shown = [...callLines.slice(0, first), `… ${callLines.length - keep} more calls …`, ...callLines.slice(callLines.length - (keep - first))];
    text = render(shown);
    if (text.length <= max) return text;
  }
  return `${text.slice(0, Math.max(0, max - 1))}…`;
}
