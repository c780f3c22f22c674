// Layer 2: Claude Code permission prompts through the real machines and the daemon loop over
// deps in memory: a prompt is a question of its own (it never holds the conversation), JC's
// answer decides it ("allow…" allows, anything else denies with its text), a withdrawn prompt
// (the hook timed out: a deny) refuses a later answer.
import { afterEach, describe, expect, it, vi } from "vitest";
import { allowsPermission } from "../../machines/types.js";
import { type DaemonHandle, startDaemon } from "../../src/runtime/daemon.js";
import { fakeConfig, fakeRelay, session } from "../support/fake-deps.js";

const running: DaemonHandle[] = [];
afterEach(async () => {
  for (const handle of running.splice(0)) {
    handle.stop();
    await Promise.race([handle.done, new Promise((r) => setTimeout(r, 5_000))]);
  }
});
const until = (assertion: () => void, timeout = 10_000) => vi.waitFor(assertion, { timeout, interval: 10 });

function world() {
  const fake = fakeRelay(fakeConfig({ sessions: [session("s1"), session("s2")] }));
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
    await until(() => expect(fake.permissions.decisions.get("p-1-aaaaaa")).toEqual({ allow: true, reason: "Allow: it is a build folder", by: "JC" }));
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
    await until(() => expect(fake.permissions.decisions.get("p-2-bbbbbb")).toEqual({ allow: false, reason: "no: use the clean script instead", by: "JC" }));
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
    fake.jc.answer({ kind: "chat", text: "allow", question: "p-4-dddddd" });
    await until(() => expect(fake.jc.refused.map((r) => r.reason)).toEqual(["question p-4-dddddd is not open (answered already, or never asked)"]));
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
