// Layer 1: permissions.policy, pure: which prompts chat-Claude may decide (the glob, the rules),
// how strictly its answer is read, and how long it may take.
import { describe, expect, it } from "vitest";
import { globMatches, policyRuleFor, ruleMatches } from "../../machines/permission-policy.js";
import { parseVerdict, permissionPrompt } from "../../src/anthropic/permission-decision.js";
import { parseFileConfig } from "../../src/config/config-yaml.js";
import { decisionTimeMs } from "../../src/runtime/permission-decider.js";

describe("globMatches: * matches any run of characters, everything else itself, over the whole text", () => {
  it.each([
    ["npm test*", "npm test", true],
    ["npm test*", "npm test -- parser", true],
    ["npm test*", "npm test; rm -rf ~", true], // the pattern picks who decides; chat-Claude sees the whole command
    ["npm test*", "sudo npm test", false],
    ["npm test", "npm test -- x", false],
    ["*.md", "docs/guide.md", true],
    ["*.md", "docs/guide.md.bak", false],
    ["src/*/index.ts", "src/a/b/index.ts", true],
    ["a*b*c", "abc", true],
    ["a*b*c", "acb", false],
    ["a*a", "a", false],
    ["*", "", true],
    ["Bash", "bash", false],
    ["git status?", "git status!", false],
    ["mcp__github__*", "mcp__github__create_issue", true],
  ])("%j against %j → %s", (pattern, text, expected) => {
    expect(globMatches(pattern, text)).toBe(expected);
  });
});

describe("policy rules", () => {
  const policy = [{ tool: "Bash", command: "npm test*" }, { tool: "Edit" }, { tool: "Write", path: "*/docs/*" }];
  it("a rule with a command covers only that tool with a matching command", () => {
    expect(policyRuleFor(policy, { tool: "Bash", command: "npm test -- parser" })).toEqual(policy[0]);
    expect(policyRuleFor(policy, { tool: "Bash", command: "rm -rf build" })).toBeNull();
    expect(policyRuleFor(policy, { tool: "Bash" })).toBeNull();
  });
  it("a rule with the tool alone covers every prompt of that tool; a path rule needs a matching path", () => {
    expect(policyRuleFor(policy, { tool: "Edit", path: "/etc/passwd" })).toEqual(policy[1]);
    expect(policyRuleFor(policy, { tool: "Write", path: "/p/docs/a.md" })).toEqual(policy[2]);
    expect(policyRuleFor(policy, { tool: "Write", path: "/p/src/a.ts" })).toBeNull();
  });
  it("a prompt without a tool name (an older hook's) is never covered", () => {
    expect(ruleMatches({ tool: "*" }, {})).toBe(false);
  });
  it("an empty policy covers nothing", () => {
    expect(policyRuleFor([], { tool: "Bash", command: "ls" })).toBeNull();
  });
});

describe("parseVerdict: the first word, ALLOW or DENY in capitals, decides; anything else goes to JC", () => {
  it.each([
    ["ALLOW: runs the unit tests only.", { kind: "allow", reason: "runs the unit tests only." }],
    ["DENY — it deletes the home folder", { kind: "deny", reason: "it deletes the home folder" }],
    ["  ALLOW\nthe tests", { kind: "allow", reason: "the tests" }],
    ["DENY", { kind: "deny", reason: "(no reason given)" }],
    ["DENY: --force pushes over the main branch", { kind: "deny", reason: "--force pushes over the main branch" }],
    ["ALLOW - -n only lists", { kind: "allow", reason: "-n only lists" }],
  ])("%j decides", (reply, verdict) => {
    expect(parseVerdict(reply)).toEqual(verdict);
  });
  it.each(["allow: fine", "Allow it", "ALLOWED", "DENYING", "I think ALLOW", "Sure, go ahead.", "", "**ALLOW**"])("%j is undecided", (reply) => {
    expect(parseVerdict(reply).kind).toBe("undecided");
  });
});

describe("the request chat-Claude gets", () => {
  it("carries the tool, the command, the agent's reason, the rule and the evidence", () => {
    const text = permissionPrompt(
      { id: "p-1-aaaaaa", session: "s1", text: "", since: 0, tool: "Bash", command: "npm test", reason: "run the tests", evidence: "[relay evidence: 1. Edit a.ts → ok]" },
      { tool: "Bash", command: "npm test*" },
    );
    expect(text).toContain("Session s1 asks permission to run Bash.");
    expect(text).toContain("Command: npm test");
    expect(text).toContain("The agent's reason: run the tests");
    expect(text).toContain('Bash command "npm test*"');
    expect(text).toContain("[relay evidence: 1. Edit a.ts → ok]");
  });
});

describe("decisionTimeMs: chat-Claude gets at most half of what the hook has left", () => {
  it("is the configured time when the hook's deadline is far", () => {
    expect(decisionTimeMs(30_000, 0, 600_000)).toBe(30_000);
  });
  it("is half the time left when that is shorter", () => {
    expect(decisionTimeMs(30_000, 0, 10_000)).toBe(5_000);
  });
  it("is 0 past the deadline", () => {
    expect(decisionTimeMs(30_000, 20_000, 10_000)).toBe(0);
  });
});

describe("config.yaml permissions:", () => {
  const base = "model: claude-sonnet-4-6\nsystem_prompt: x\nsummarization_prompt: y\nsessions:\n  - id: s1\n";
  it("takes a list of rules and the decision time", () => {
    const file = parseFileConfig(`${base}permissions:\n  policy:\n    - {tool: Bash, command: "npm test*"}\n    - tool: Edit\n  decide_within_s: 20\n`);
    expect(file.permissions).toEqual({ policy: [{ tool: "Bash", command: "npm test*" }, { tool: "Edit" }], decide_within_s: 20 });
  });
  it("refuses a rule without a tool, or with an unknown key, naming the key", () => {
    expect(() => parseFileConfig(`${base}permissions:\n  policy:\n    - {command: "ls"}\n`)).toThrow(/config\.yaml: permissions\.policy\[0\]\.tool: expected a tool name/);
    expect(() => parseFileConfig(`${base}permissions:\n  policy:\n    - {tool: Bash, cmd: "ls"}\n`)).toThrow(/permissions\.policy\[0\]\.cmd: unknown key/);
  });
});
