// chat-Claude deciding a permission prompt `permissions.policy` lets it decide: the request (a
// call of its own, never a turn of the conversation's history) and the strict reading of its
// answer. Pure mappers; the call goes through the deps seam (src/runtime/permission-decider.ts).
import type { PolicyRule } from "../../machines/permission-policy.js";
import { describeRule } from "../../machines/permission-policy.js";
import type { PermissionRequest, PolicyVerdict } from "../../machines/types.js";
import type { MessagesRequest } from "./messages.js";

/** Enough for the verdict and a sentence or two of reason. */
export const PERMISSION_MAX_TOKENS = 300;

export const PERMISSION_SYSTEM_PROMPT = `You are chat-Claude, the reviewer of Claude Code agent sessions. An agent asks permission to run a tool, and the relay's permissions.policy lets you decide this prompt without the human (JC). Decide from what the agent wants to run, its stated reason and what it did so far in this turn.

Answer with exactly one word first, ALLOW or DENY, then a short reason on the same line, for example:
ALLOW: runs the project's test suite, nothing else.
DENY: deletes files outside the project.

Deny anything destructive, anything that reaches outside the project, sends data elsewhere, or does more than the reason says. When in doubt, answer DENY. Any answer that does not start with ALLOW or DENY goes to JC.`;

/** The one user message: the prompt, the rule that sent it here, the evidence. */
export function permissionPrompt(request: PermissionRequest, rule: PolicyRule): string {
  const lines = [
    `Session ${request.session} asks permission to run ${request.tool ?? "a tool"}.`,
    request.command === undefined ? null : `Command: ${request.command}`,
    request.path === undefined ? null : `Path: ${request.path}`,
    `The agent's reason: ${request.reason ?? "(none given)"}`,
    `The policy rule that lets you decide: ${describeRule(rule)}`,
    "",
    request.evidence ?? "(no evidence of the turn so far)",
    "",
    "ALLOW or DENY?",
  ];
  return lines.filter((l) => l !== null).join("\n");
}

export function buildPermissionRequest(args: { model: string; request: PermissionRequest; rule: PolicyRule }): MessagesRequest {
  return {
    model: args.model,
    max_tokens: PERMISSION_MAX_TOKENS,
    system: [{ type: "text", text: PERMISSION_SYSTEM_PROMPT }],
    messages: [{ role: "user", content: [{ type: "text", text: permissionPrompt(args.request, args.rule) }] }],
  };
}

/** the word, then at most one separator (`:`, `.`, `—`, a spaced `-`…), then the reason */
const VERDICT = /^(ALLOW|DENY)(?=$|[\s:.,;!—–-])(?:\s*[:.,;!—–]|\s+-(?=\s))?\s*([\s\S]*)$/;

/**
 * Strict: the answer's first word is ALLOW or DENY, in capitals, alone or followed by
 * punctuation; the rest is the reason. Anything else (lower case, "Allowed", a preamble, an
 * empty reply) is undecided, and JC decides.
 */
export function parseVerdict(reply: string): PolicyVerdict {
  const text = reply.trim();
  const m = VERDICT.exec(text);
  if (!m) {
    const shown = text.replace(/\s+/g, " ").slice(0, 80);
    return { kind: "undecided", why: text === "" ? "chat-Claude's answer was empty" : `chat-Claude's answer did not start with ALLOW or DENY (“${shown}${text.length > 80 ? "…" : ""}”)` };
  }
  const reason = (m[2] ?? "").replace(/\s+/g, " ").trim();
  return { kind: m[1] === "ALLOW" ? "allow" : "deny", reason: reason === "" ? "(no reason given)" : reason };
}
