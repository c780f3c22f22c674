// `permissions.policy` in config.yaml: the permission prompts chat-Claude may decide alone. A rule
// names a tool and, optionally, a glob over the Bash command or the file path; the first rule
// that matches a prompt sends it to chat-Claude (which may still deny it), anything else goes to
// JC. Pure: no I/O, used by the relay machine's guard.
import type { PermissionRequest } from "./types.js";

/** One rule: `{tool: Bash, command: "npm test*"}`, `{tool: Edit}`, `{tool: Write, path: "docs/*"}`. */
export interface PolicyRule {
  /** Claude Code's tool name (`Bash`, `Edit`, `Write`, `mcp__github__*`); a glob */
  tool: string;
  /** a glob the whole Bash command must match */
  command?: string;
  /** a glob the whole file path must match */
  path?: string;
}

/**
 * The glob: `*` matches any run of characters (none, spaces, slashes and newlines included);
 * every other character matches itself, case included; the pattern covers the whole text.
 */
export function globMatches(pattern: string, text: string): boolean {
  const parts = pattern.split("*");
  if (parts.length === 1) return pattern === text;
  const first = parts[0] ?? "";
  const last = parts[parts.length - 1] ?? "";
  if (text.length < first.length + last.length || !text.startsWith(first) || !text.endsWith(last)) return false;
  let at = first.length;
  const end = text.length - last.length;
  for (const middle of parts.slice(1, -1)) {
    const found = text.indexOf(middle, at);
    if (found < 0 || found + middle.length > end) return false;
    at = found + middle.length;
  }
  return true;
}

/** Whether one rule covers the prompt: the tool matches, and each glob the rule gives matches a value the prompt has. */
export function ruleMatches(rule: PolicyRule, request: Pick<PermissionRequest, "tool" | "command" | "path">): boolean {
  if (request.tool === undefined || !globMatches(rule.tool, request.tool)) return false;
  if (rule.command !== undefined && (request.command === undefined || !globMatches(rule.command, request.command))) return false;
  if (rule.path !== undefined && (request.path === undefined || !globMatches(rule.path, request.path))) return false;
  return true;
}

/** The first rule that lets chat-Claude decide this prompt, or null: JC decides. */
export const policyRuleFor = (policy: readonly PolicyRule[], request: Pick<PermissionRequest, "tool" | "command" | "path">): PolicyRule | null =>
  policy.find((rule) => ruleMatches(rule, request)) ?? null;

/** A rule as one line, for logs and the question JC gets: `Bash command "npm test*"`. */
export const describeRule = (rule: PolicyRule): string =>
  [rule.tool, rule.command === undefined ? null : `command ${JSON.stringify(rule.command)}`, rule.path === undefined ? null : `path ${JSON.stringify(rule.path)}`].filter((p) => p !== null).join(" ");
