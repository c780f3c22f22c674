// Layer 3: the real CLI against the Messages API and ntfy stand-ins. `relay hook
// claude-permission` is run as Claude Code runs it (the prompt's JSON on standard input) while
// `relay run` serves the root: permissions.policy sends a covered prompt to chat-Claude, whose
// ALLOW or DENY answers the hook without JC; any other answer puts the prompt before JC.
// `relay hook claude-failure` (StopFailure) tells JC once per failure streak.
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { configYaml, exists, killAll, makeRoot, readStatusJson, removeRoots, runCli, Scope, secretsCheck, spawnCli, waitFor } from "../support/cli.js";

afterAll(async () => {
  await killAll();
  await removeRoots();
});
const POLICY = `permissions:\n  policy:\n    - {tool: Bash, command: "npm test*"}\n`;
const promptInput = (command: string) => JSON.stringify({ session_id: "cc-abc", hook_event_name: "PermissionRequest", tool_name: "Bash", tool_input: { command, description: "run the suite" } });
const hookDecision = (stdout: string) => (JSON.parse(stdout.trim()) as { hookSpecificOutput: { decision: { behavior: string; message?: string } } }).hookSpecificOutput.decision;
const permissionCalls = (scope: Scope) => scope.fake.requests.filter((r) => JSON.stringify(r.body).includes("asks permission to run"));
const ledger = async (root: string) =>
  (await readFile(join(root, "state", "costs.jsonl"), "utf8").catch(() => ""))
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as { purpose: string; session: string });

describe("permissions.policy (the real CLI)", () => {
  const decided: { answer: string; behavior: string; message?: string }[] = [
    { answer: "ALLOW: it only runs the project's tests.", behavior: "allow" },
    { answer: "DENY: --update would rewrite the snapshots.", behavior: "deny", message: "chat-Claude (the relay's permission policy) denied this: --update would rewrite the snapshots." },
  ];
  for (const { answer, behavior, message } of decided)
  it(`chat-Claude answering ${JSON.stringify(answer)} decides a covered prompt alone: no question, no notification, its cost in the ledger`, async (ctx) => {
    const scope = await Scope.create(ctx);
    const root = await makeRoot({ config: configYaml({ sessions: ["session-1"] }) + POLICY });
    scope.fake.setResponder(() => answer);
    await scope.start(root);
    const hook = await runCli(["hook", "claude-permission", "--session", "session-1", "--root", root, "--timeout", "60"], { input: promptInput("npm test -- --update") });
    expect(hook.code, hook.stderr).toBe(0);
    expect(hookDecision(hook.stdout)).toEqual(message === undefined ? { behavior } : { behavior, message });
    expect(hook.stderr).toContain("by chat-claude (policy)");
    expect(permissionCalls(scope)).toHaveLength(1);
    expect(scope.ntfy.messages.filter((m) => (m.title ?? "").includes("asks permission"))).toEqual([]);
    await waitFor(async () => (await ledger(root)).some((r) => r.purpose === "permission" && r.session === "session-1"), { what: "the permission call in the ledger" });
    const log = await readFile(join(root, "logs", "relay.jsonl"), "utf8");
    expect(log).toMatch(new RegExp(`"by":"chat-claude \\(policy\\)".*"msg":"permission ${behavior === "allow" ? "allowed" : "denied"}"|"msg":"permission ${behavior === "allow" ? "allowed" : "denied"}".*"by":"chat-claude \\(policy\\)"`));
    // relay status says who decided.
    const status = await runCli(["status", "--root", root]);
    expect(status.stdout).toMatch(new RegExp(`permission: p-\\S+ \\(session-1\\) ${behavior === "allow" ? "allowed" : "denied"} by chat-claude \\(policy\\)`));
    // Not a turn of the conversation: nothing in the history.
    expect(await exists(join(root, "state", "history", "shared.jsonl"))).toBe(false);
  }, 60_000);

  it("an answer that is neither ALLOW nor DENY puts the prompt before JC, who decides it", async (ctx) => {
    const scope = await Scope.create(ctx);
    const root = await makeRoot({ config: configYaml({ sessions: ["session-1"] }) + POLICY });
    scope.fake.setResponder(() => "Looks fine to me, go ahead.");
    await scope.start(root);
    const hook = await spawnCli(["hook", "claude-permission", "--session", "session-1", "--root", root, "--timeout", "60"]);
    hook.child.stdin?.end(promptInput("npm test"));
    const q = await waitFor(async () => (await readStatusJson(root).catch(() => null))?.questions.find((x) => x.kind === "permission"), { timeoutMs: 30_000, what: "the prompt before JC" });
    expect(q.question).toMatch(/chat-Claude did not decide: chat-Claude's answer did not start with ALLOW or DENY/);
    const note = await waitFor(() => scope.ntfy.messages.find((m) => (m.title ?? "").includes("asks permission")), { what: "JC's notification" });
    expect(note.message).toContain("npm test");
    const jc = await runCli(["jc", "--root", root, "--question", q.id, "allow"]);
    expect(jc.code, jc.stderr).toBe(0);
    const exit = await hook.exited;
    expect(exit.code).toBe(0);
    expect(hookDecision(hook.stdout())).toEqual({ behavior: "allow" });
    expect(hook.stderr()).toContain("by jc");
  }, 60_000);

  it("a prompt the policy does not cover goes to JC with no API call", async (ctx) => {
    const scope = await Scope.create(ctx);
    const root = await makeRoot({ config: configYaml({ sessions: ["session-1"] }) + POLICY });
    await scope.start(root);
    const hook = await spawnCli(["hook", "claude-permission", "--session", "session-1", "--root", root, "--timeout", "60"]);
    hook.child.stdin?.end(promptInput("rm -rf build"));
    const q = await waitFor(async () => (await readStatusJson(root).catch(() => null))?.questions.find((x) => x.kind === "permission"), { timeoutMs: 30_000, what: "the prompt before JC" });
    expect(q.question).toBe("session-1 asks permission to run Bash: rm -rf build (“run the suite”)");
    expect(permissionCalls(scope)).toEqual([]);
    await runCli(["jc", "--root", root, "--question", q.id, "no"]);
    expect((await hook.exited).code).toBe(0);
    expect(hookDecision(hook.stdout())).toEqual({ behavior: "deny", message: "JC denied this: no" });
  }, 60_000);
});

describe("permissions.policy, read again while the relay runs", () => {
  it("a policy added to config.yaml takes effect without a restart, and removing it sends every prompt to JC again", async (ctx) => {
    const scope = await Scope.create(ctx);
    const configPath = (root: string) => join(root, "config.yaml");
    const root = await makeRoot({ config: configYaml({ sessions: ["session-1"] }) });
    scope.fake.setResponder(() => "ALLOW: only the tests.");
    await scope.start(root);
    const reloads = async () => ((await readFile(join(root, "logs", "relay.jsonl"), "utf8").catch(() => "")).match(/"msg":"config reloaded"/g) ?? []).length;
    /** One prompt through the hook; JC answers `jcAnswer` when it reaches JC. Returns the decision and who made it. */
    const prompt = async (jcAnswer: string) => {
      const hook = await spawnCli(["hook", "claude-permission", "--session", "session-1", "--root", root, "--timeout", "60"]);
      hook.child.stdin?.end(promptInput("npm test"));
      const answered = Promise.race([
        hook.exited.then(() => null),
        waitFor(async () => (await readStatusJson(root).catch(() => null))?.questions.find((x) => x.kind === "permission"), { timeoutMs: 30_000, what: "the prompt before JC" }),
      ]).then(async (q) => {
        if (q) await runCli(["jc", "--root", root, "--question", q.id, jcAnswer]);
      });
      const exit = await hook.exited;
      await answered;
      expect(exit.code, hook.stderr()).toBe(0);
      return { decision: hookDecision(hook.stdout()), stderr: hook.stderr() };
    };

    // No policy: JC decides, no API call.
    const before = await prompt("no");
    expect(before.decision).toEqual({ behavior: "deny", message: "JC denied this: no" });
    expect(permissionCalls(scope)).toHaveLength(0);

    // The policy added while the relay runs: chat-Claude decides, JC is not asked.
    const seen = await reloads();
    await writeFile(configPath(root), configYaml({ sessions: ["session-1"] }) + POLICY);
    await waitFor(async () => (await reloads()) > seen, { timeoutMs: 30_000, what: "the relay to read config.yaml again" });
    const during = await prompt("no");
    expect(during.decision).toEqual({ behavior: "allow" });
    expect(during.stderr).toContain("by chat-claude (policy)");
    expect(permissionCalls(scope)).toHaveLength(1);

    // The policy removed: JC again, no further API call.
    const seen2 = await reloads();
    await writeFile(configPath(root), configYaml({ sessions: ["session-1"] }));
    await waitFor(async () => (await reloads()) > seen2, { timeoutMs: 30_000, what: "the relay to read config.yaml again" });
    const after = await prompt("allow");
    expect(after.decision).toEqual({ behavior: "allow" });
    expect(after.stderr).toContain("by jc");
    expect(permissionCalls(scope)).toHaveLength(1);
  }, 120_000);
});

describe("StopFailure (the real CLI)", () => {
  const failure = (error: string, message: string) => JSON.stringify({ session_id: "9a0f6c1e-aaaa-bbbb-cccc-000000000001", cwd: "/home/you/app", hook_event_name: "StopFailure", error, last_assistant_message: message });
  const fail = (root: string, error = "rate_limit", message = "API Error: Request rejected (429) · rate limited") =>
    runCli(["hook", "claude-failure", "--session", "session-1", "--root", root], { input: failure(error, message) });
  const stop = (root: string) =>
    runCli(["hook", "claude-stop", "--session", "session-1", "--root", root, "--timeout", "1"], { input: JSON.stringify({ session_id: "9a0f6c1e-aaaa-bbbb-cccc-000000000001", hook_event_name: "Stop", stop_hook_active: false, last_assistant_message: "" }) });
  const failureNotes = (scope: Scope) => scope.ntfy.messages.filter((m) => (m.title ?? "").includes("stopped on an API error"));

  it("tells JC once per streak, with the error and the command that resumes the session; a normal stop ends the streak", async (ctx) => {
    const scope = await Scope.create(ctx);
    const root = await makeRoot({ config: configYaml({ sessions: ["session-1"] }) });
    await scope.start(root);
    for (let i = 0; i < 3; i++) expect((await fail(root)).code).toBe(0);
    const [note] = await scope.ntfy.waitForMessages(1, 20_000);
    expect(note?.title).toBe("relay: session-1 stopped on an API error");
    expect(note?.message).toContain("API error (rate_limit): API Error: Request rejected (429) · rate limited");
    expect(note?.message).toContain("cd /home/you/app && claude --resume 9a0f6c1e-aaaa-bbbb-cccc-000000000001");
    const record = JSON.parse(await readFile(join(root, "state", "stop-failures", "session-1.json"), "utf8")) as { count: number };
    expect(record.count).toBe(3);
    await new Promise((r) => setTimeout(r, 1_500)); // several polls of the relay: still one notification
    expect(failureNotes(scope)).toHaveLength(1);

    expect((await stop(root)).code).toBe(0); // a turn that stops normally ends the streak
    expect(await exists(join(root, "state", "stop-failures", "session-1.json"))).toBe(false);
    expect((await fail(root, "overloaded", "Claude usage limit reached. Your limit resets at 3pm (Europe/Paris).")).code).toBe(0);
    await waitFor(() => failureNotes(scope).length === 2, { timeoutMs: 20_000, what: "the second streak's notification" });
    expect(failureNotes(scope)[1]?.message).toContain("The limit resets at 3pm (Europe/Paris); then resume it:");
  }, 90_000);

  it("with no relay running, exits 0 and writes nothing", async () => {
    const root = await makeRoot({ config: configYaml({ sessions: ["session-1"] }) });
    const res = await fail(root);
    expect(res.code).toBe(0);
    expect(res.stdout).toBe("");
    expect(await exists(join(root, "state", "stop-failures"))).toBe(false);
  });
});

secretsCheck();
