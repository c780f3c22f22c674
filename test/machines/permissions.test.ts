// Layer 2: Claude Code permission prompts through the real machines and the daemon loop over
// deps in memory: a prompt is a question of its own (it never holds the conversation), JC's
// answer decides it ("allow…" allows, anything else denies with its text), a withdrawn prompt
// (the hook timed out: a deny) refuses a later answer.
import { afterEach, describe, expect, it, vi } from "vitest";
import { allowsPermission, type PermissionRequest, type StopFailure } from "../../machines/types.js";
import { type DaemonHandle, startDaemon } from "../../src/runtime/daemon.js";
import { type ApiBehaviour, fakeConfig, fakeRelay, session } from "../support/fake-deps.js";

const running: DaemonHandle[] = [];
afterEach(async () => {
  for (const handle of running.splice(0)) {
    handle.stop();
    await Promise.race([handle.done, new Promise((r) => setTimeout(r, 5_000))]);
  }
});
const until = (assertion: () => void, timeout = 10_000) => vi.waitFor(assertion, { timeout, interval: 10 });

function world(over: Parameters<typeof fakeConfig>[0] = {}) {
  const fake = fakeRelay(fakeConfig({ sessions: [session("s1"), session("s2")], ...over }));
  fake.outbox.autoAcknowledge = true;
  return fake;
}

const request = (id: string, sessionId = "s1") => ({ id, session: sessionId, text: `${sessionId} asks permission to run Bash: rm -rf build`, since: Date.now() });

describe("permission prompts", () => {
  it("open a question of their own with Allow/Deny, hold no conversation, and JC's allow decides them", async () => {
    const fake = world();
    const handle = await startDaemon(fake.deps, { shutdownGraceMs: 1_000 });
    running.push(handle);
    fake.permissions.pending.push(request("p-1-aaaaaa"));
    fake.wake();
    await until(() => expect(handle.actor.getSnapshot().context.questions.map((q) => [q.id, q.kind])).toEqual([["p-1-aaaaaa", "permission"]]));
    expect(fake.notifications.find((n) => n.kind === "permission")).toMatchObject({ session: "s1", questionId: "p-1-aaaaaa" });

    // The session's conversation goes on meanwhile.
    fake.inbox.drop("s1", "still working");
    await until(() => expect(fake.outbox.delivered.map((d) => d.text)).toEqual(["reply to [s1] still working"]));

    fake.jc.answer({ kind: "chat", text: "Allow: it is a build folder", question: "p-1-aaaaaa" });
    await until(() => expect(fake.permissions.decisions.get("p-1-aaaaaa")).toEqual({ allow: true, reason: "Allow: it is a build folder", by: "jc" }));
    expect(handle.actor.getSnapshot().context.questions).toEqual([]);
    expect(fake.jc.consumed).toHaveLength(1);
  });

  it("any other answer denies, with JC's words as the reason; an unknown session is denied by the relay", async () => {
    const fake = world();
    const handle = await startDaemon(fake.deps, { shutdownGraceMs: 1_000 });
    running.push(handle);
    fake.permissions.pending.push(request("p-2-bbbbbb"), request("p-3-cccccc", "nobody"));
    fake.wake();
    await until(() => expect(fake.permissions.decisions.get("p-3-cccccc")).toEqual({ allow: false, reason: "session nobody is not in the relay's config.yaml", by: "relay" }));
    await until(() => expect(handle.actor.getSnapshot().context.questions.map((q) => q.id)).toEqual(["p-2-bbbbbb"]));
    // A plain answer goes to the oldest question: here, the prompt.
    fake.jc.answer({ kind: "chat", text: "no: use the clean script instead" });
    await until(() => expect(fake.permissions.decisions.get("p-2-bbbbbb")).toEqual({ allow: false, reason: "no: use the clean script instead", by: "jc" }));
  });

  it("a prompt the hook gave up on is closed, and a late answer to it is refused", async () => {
    const fake = world();
    const handle = await startDaemon(fake.deps, { shutdownGraceMs: 1_000 });
    running.push(handle);
    fake.permissions.pending.push(request("p-4-dddddd"));
    fake.wake();
    await until(() => expect(handle.actor.getSnapshot().context.questions).toHaveLength(1));
    fake.permissions.pending.splice(0); // the hook timed out (deny) and removed its request
    fake.wake();
    await until(() => expect(handle.actor.getSnapshot().context.questions).toEqual([]));
    await until(() => expect(fake.statuses.at(-1)?.permissions?.recent.map((d) => [d.id, d.allow, d.by])).toEqual([["p-4-dddddd", false, "timeout"]]));
    fake.jc.answer({ kind: "chat", text: "allow", question: "p-4-dddddd" });
    await until(() => expect(fake.jc.refused.map((r) => r.reason)).toEqual(["question p-4-dddddd is not open (answered already, or never asked)"]));
    expect(fake.permissions.decisions.size).toBe(0);
  });
});

const POLICY = { policy: [{ tool: "Bash", command: "npm test*" }], decideWithinMs: 30_000 };
const bashRequest = (id: string, command: string, extra: Partial<PermissionRequest> = {}): PermissionRequest => ({
  id,
  session: "s1",
  text: `s1 asks permission to run Bash: ${command}`,
  since: Date.now(),
  tool: "Bash",
  command,
  reason: "run it",
  evidence: "[relay evidence: what this turn did]\nTool calls (1):\n1. Edit a.ts → ok",
  ...extra,
});
const isPermissionCall = (text: string) => text.includes("asks permission to run");

describe("permissions.policy: chat-Claude decides the prompts it covers", () => {
  async function started(reply: (text: string) => ApiBehaviour, over: Parameters<typeof fakeConfig>[0] = {}) {
    const fake = world({ permissions: POLICY, ...over });
    fake.api.reply = (text) => (isPermissionCall(text) ? reply(text) : `reply to ${text}`);
    const handle = await startDaemon(fake.deps, { shutdownGraceMs: 1_000 });
    running.push(handle);
    return { fake, handle };
  }

  it("a covered prompt chat-Claude allows is allowed by chat-claude (policy), with no question to JC, its cost in the ledger as a permission call, and nothing in the history", async () => {
    const { fake, handle } = await started(() => "ALLOW: runs the project's tests only.");
    fake.permissions.pending.push(bashRequest("p-10-aaaaaa", "npm test -- parser"));
    fake.wake();
    await until(() => expect(fake.permissions.decisions.get("p-10-aaaaaa")).toEqual({ allow: true, reason: "runs the project's tests only.", by: "chat-claude (policy)" }));
    const call = fake.api.calls[0];
    expect(call?.text).toContain("Command: npm test -- parser");
    expect(call?.text).toContain("The agent's reason: run it");
    expect(call?.text).toContain("1. Edit a.ts → ok");
    expect(fake.notifications.filter((n) => n.kind === "permission")).toEqual([]);
    expect(handle.actor.getSnapshot().context.questions).toEqual([]);
    expect(fake.ledger.map((r) => [r.purpose, r.session])).toEqual([["permission", "s1"]]);
    expect([...fake.history.byConversation.values()].flat()).toEqual([]);
    await until(() => expect(handle.actor.getSnapshot().context.deciding).toEqual([]));
    // status.json shows who decided.
    await until(() => expect(fake.statuses.at(-1)?.permissions?.recent).toEqual([{ id: "p-10-aaaaaa", session: "s1", allow: true, by: "chat-claude (policy)", reason: "runs the project's tests only." }]));
  });

  it("a covered prompt chat-Claude denies is denied with its reason", async () => {
    const { fake } = await started(() => "DENY: the suite is run with --update, which rewrites snapshots.");
    fake.permissions.pending.push(bashRequest("p-11-bbbbbb", "npm test -- --update"));
    fake.wake();
    await until(() => expect(fake.permissions.decisions.get("p-11-bbbbbb")).toEqual({ allow: false, reason: "the suite is run with --update, which rewrites snapshots.", by: "chat-claude (policy)" }));
    expect(fake.notifications.filter((n) => n.kind === "permission")).toEqual([]);
  });

  it.each([
    ["an answer that does not start with ALLOW or DENY", () => "Sure, that looks fine to me." as ApiBehaviour, /did not start with ALLOW or DENY/],
    ["an API error", () => ({ error: new Error("socket hang up") }) as ApiBehaviour, /the API call failed/],
  ])("%s puts the prompt before JC, saying why, and JC decides", async (_name, reply, why) => {
    const { fake, handle } = await started(reply);
    fake.permissions.pending.push(bashRequest("p-12-cccccc", "npm test"));
    fake.wake();
    await until(() => expect(handle.actor.getSnapshot().context.questions.map((q) => q.id)).toEqual(["p-12-cccccc"]));
    const notice = fake.notifications.find((n) => n.kind === "permission");
    expect(notice?.message).toMatch(why);
    expect(notice?.message).toContain("JC decides");
    expect(fake.permissions.decisions.size).toBe(0);
    fake.jc.answer({ kind: "chat", text: "allow", question: "p-12-cccccc" });
    await until(() => expect(fake.permissions.decisions.get("p-12-cccccc")).toEqual({ allow: true, reason: "allow", by: "jc" }));
    await until(() => expect(fake.statuses.at(-1)?.permissions?.recent.map((d) => [d.id, d.by])).toEqual([["p-12-cccccc", "jc"]]));
  });

  it("chat-Claude taking longer than half the hook's wait puts the prompt before JC, the call cancelled", async () => {
    const { fake, handle } = await started(() => null); // never answers
    fake.permissions.pending.push(bashRequest("p-13-dddddd", "npm test", { deadline: Date.now() + 3_000 }));
    fake.wake();
    await until(() => expect(handle.actor.getSnapshot().context.questions.map((q) => q.id)).toEqual(["p-13-dddddd"]));
    expect(fake.notifications.find((n) => n.kind === "permission")?.message).toMatch(/chat-Claude did not answer within [12] s/);
    expect(fake.api.open()).toEqual([]);
  });

  it("a prompt the policy does not cover goes to JC without an API call", async () => {
    const { fake, handle } = await started(() => "ALLOW");
    fake.permissions.pending.push(bashRequest("p-14-eeeeee", "rm -rf build"));
    fake.wake();
    await until(() => expect(handle.actor.getSnapshot().context.questions.map((q) => q.id)).toEqual(["p-14-eeeeee"]));
    expect(fake.api.calls).toEqual([]);
    expect(fake.notifications.find((n) => n.kind === "permission")?.message).toBe("s1 asks permission to run Bash: rm -rf build");
  });

  it("with the daily budget spent, chat-Claude is not asked: JC decides", async () => {
    const { fake, handle } = await started(() => "ALLOW", { budget: { dailyUsd: 0.000001 } });
    fake.deps.costs.spend.add({ at: new Date().toISOString(), session: "s2", usd: 1 });
    fake.permissions.pending.push(bashRequest("p-15-ffffff", "npm test"));
    fake.wake();
    await until(() => expect(handle.actor.getSnapshot().context.questions.map((q) => q.id)).toEqual(["p-15-ffffff"]));
    expect(fake.api.calls).toEqual([]);
    expect(fake.notifications.find((n) => n.kind === "permission")?.message).toMatch(/the budget is spent/);
  });

  it("a prompt withdrawn while chat-Claude decides (the hook gave up) gets no decision", async () => {
    const { fake, handle } = await started(() => null);
    fake.permissions.pending.push(bashRequest("p-16-aaaaaa", "npm test"));
    fake.wake();
    await until(() => expect(handle.actor.getSnapshot().context.deciding).toEqual(["p-16-aaaaaa"]));
    fake.permissions.pending.splice(0);
    fake.wake();
    await until(() => expect(handle.actor.getSnapshot().context.deciding).toEqual([]));
    expect(fake.api.open()).toEqual([]);
    expect(handle.actor.getSnapshot().context.questions).toEqual([]);
    expect(fake.permissions.decisions.size).toBe(0);
  });
});

describe("allowsPermission", () => {
  it.each([
    ["allow", true],
    ["  Allow: fine", true],
    ["ALLOW it", true],
    ["allowed", false],
    ["deny", false],
    ["Approved: go ahead.", false],
    ["", false],
  ])("%j → %s", (answer, allowed) => {
    expect(allowsPermission(answer)).toBe(allowed);
  });
});

describe("StopFailure streaks", () => {
  const streak = (id: string, count: number, over: Partial<StopFailure> = {}): StopFailure => ({
    streak: id,
    session: "s1",
    ccSession: "9a0f6c1e-0000",
    cwd: "/home/you/my app",
    error: "rate_limit",
    message: "API Error: Request rejected (429)",
    resetsAt: null,
    count,
    first: new Date().toISOString(),
    last: new Date().toISOString(),
    ...over,
  });

  it("notify JC once per streak, with the error and the command that resumes the session", async () => {
    const fake = world();
    const handle = await startDaemon(fake.deps, { shutdownGraceMs: 1_000 });
    running.push(handle);
    fake.stopFailures.push(streak("sf-s1-a", 1));
    fake.wake();
    await until(() => expect(fake.notifications.filter((n) => n.kind === "stopFailure")).toHaveLength(1));
    const [note] = fake.notifications.filter((n) => n.kind === "stopFailure");
    expect(note?.session).toBe("s1");
    expect(note?.message).toContain("API error (rate_limit): API Error: Request rejected (429)");
    expect(note?.message).toContain("cd '/home/you/my app' && claude --resume 9a0f6c1e-0000");
    // The same streak, a second failure: no second notification.
    fake.stopFailures.splice(0, 1, streak("sf-s1-a", 2));
    fake.wake();
    await new Promise((r) => setTimeout(r, 200));
    expect(fake.notifications.filter((n) => n.kind === "stopFailure")).toHaveLength(1);
    // A new streak (the Stop hook ended the first): notified again, with the reset time it gives.
    fake.stopFailures.splice(0, 1, streak("sf-s1-b", 1, { resetsAt: "at 3pm" }));
    fake.wake();
    await until(() => expect(fake.notifications.filter((n) => n.kind === "stopFailure")).toHaveLength(2));
    expect(fake.notifications.filter((n) => n.kind === "stopFailure")[1]?.message).toContain("The limit resets at 3pm; then resume it:");
  });
});
