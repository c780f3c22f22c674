// Claude Code's side, played faithfully against the real CLI: `relay run` talks to the local
// Messages API stand-in, and `relay hook claude-stop` / `claude-start` get the hook JSON on
// standard input exactly as Claude Code sends it (FACTS "Claude Code hooks").
import { spawn, type ChildProcess } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";
import { type FakeAnthropic, startFakeAnthropic } from "../support/fake-anthropic.js";
import { type FakeNtfy, startFakeNtfy } from "../support/fake-ntfy.js";
import {
  childEnv,
  configYaml,
  exists,
  inputPath,
  killAll,
  lastUserText,
  makeRoot,
  queueNames,
  relayVars,
  runCli,
  secretsCheck,
  startRelay,
  TEST_KEY,
  waitFor,
} from "../support/cli.js";

let fake: FakeAnthropic;
let ntfy: FakeNtfy;
beforeEach(async () => {
  fake = await startFakeAnthropic({ apiKey: TEST_KEY });
  ntfy = await startFakeNtfy();
});

/** Children this file spawns itself (the installed hook command run through a shell). */
const shells = new Set<ChildProcess>();
afterEach(async () => {
  await Promise.all(
    [...shells].map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null || c.signalCode !== null) return resolve();
          c.once("close", () => resolve());
          c.kill("SIGKILL");
        }),
    ),
  );
  shells.clear();
  await killAll();
  await Promise.all([fake.close(), ntfy.close()]);
});

const CC_SESSION = "9a0f6c1e-2d4b-4f8e-b1a7-3c5d7e9f0a21";
const tempDirs: string[] = [];
afterAll(async () => {
  for (const d of tempDirs.splice(0)) await rm(d, { recursive: true, force: true });
});

/** A transcript as Claude Code writes it (one content block per line; lines of a message share message.id). */
function transcriptLines(finalText: string): string {
  const base = { isSidechain: false, userType: "external", cwd: "/home/jc/project", sessionId: CC_SESSION, version: "2.1.40", timestamp: "2026-05-02T15:29:58.120Z" };
  const asst = (uuid: string, id: string, content: unknown) => ({ ...base, uuid, type: "assistant", message: { id, type: "message", role: "assistant", model: "claude-sonnet-4-6", content, stop_reason: null } });
  return [
    { ...base, uuid: "u1", type: "user", message: { role: "user", content: "Open sub-PR A and report back." } },
    asst("a1", "msg_01AAA", [{ type: "text", text: "Opening the PR now." }]),
    asst("a2", "msg_01AAA", [{ type: "tool_use", id: "toolu_01X", name: "Bash", input: { command: "gh pr create --fill" } }]),
    { ...base, uuid: "u2", type: "user", message: { role: "user", content: [{ tool_use_id: "toolu_01X", type: "tool_result", content: "https://github.com/acme/app/pull/438" }] } },
    asst("a3", "msg_01BBB", [{ type: "text", text: finalText }]),
  ]
    .map((l) => `${JSON.stringify(l)}\n`)
    .join("");
}

async function transcript(finalText: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "relay-cc-"));
  tempDirs.push(dir);
  const file = join(dir, `${CC_SESSION}.jsonl`);
  await writeFile(file, transcriptLines(finalText));
  return file;
}

/** The Stop hook's standard input (v2.1.47+ adds last_assistant_message). */
const stopInput = (fields: { transcript_path?: string; stop_hook_active?: boolean; last_assistant_message?: string; hook_event_name?: string }) =>
  JSON.stringify({
    session_id: CC_SESSION,
    transcript_path: fields.transcript_path ?? "/nonexistent/transcript.jsonl",
    cwd: "/home/jc/project",
    permission_mode: "default",
    hook_event_name: fields.hook_event_name ?? "Stop",
    stop_hook_active: fields.stop_hook_active ?? false,
    ...(fields.last_assistant_message === undefined ? {} : { last_assistant_message: fields.last_assistant_message }),
  });

/** As Claude Code runs it: in the hook's environment (not the relay's), stdin written then closed. */
const stopHook = (root: string, input: string, extra: string[] = [], session = "session-1") =>
  runCli(["hook", "claude-stop", "--session", session, "--root", root, ...extra], { input, timeoutMs: 20_000 });

const decisionOf = (stdout: string): Record<string, unknown> | null => (stdout.trim() === "" ? null : (JSON.parse(stdout.trim()) as Record<string, unknown>));

/** state/status.json, the relay's public read model (what the hook itself reads); null until written. */
async function readStatusJson(root: string): Promise<{ state: string; questions: { id: string; session: string; conversation: string }[] } | null> {
  try {
    return JSON.parse(await readFile(join(root, "state", "status.json"), "utf8")) as { state: string; questions: { id: string; session: string; conversation: string }[] };
  } catch {
    return null;
  }
}

/** `relay status --json`, as any script reads it. */
async function statusCli(root: string): Promise<{ state: string }> {
  const r = await runCli(["status", "--root", root, "--json"]);
  return JSON.parse(r.stdout) as { state: string };
}

/** dispatch/<session>/input.json as the relay last wrote it. */
async function replyMeta(root: string, session: string): Promise<{ in_reply_to: string | null; source: string } | null> {
  try {
    return JSON.parse(await readFile(join(root, "dispatch", session, "input.json"), "utf8")) as { in_reply_to: string | null; source: string };
  } catch {
    return null;
  }
}

/** What Claude Code sees of a clean stop: exit 0, and nothing that blocks. */
function expectCleanStop(r: { code: number | null; stdout: string }): void {
  expect(r.code).toBe(0);
  expect(decisionOf(r.stdout)?.decision).toBeUndefined();
}

async function relayOn(root?: string): Promise<string> {
  const dir = root ?? (await makeRoot());
  const d = await startRelay(dir, relayVars(fake, ntfy));
  expect(d.alive()).toBe(true);
  return dir;
}

describe("relay hook claude-stop", () => {
  it("relays the agent's last message from the transcript and blocks with chat-Claude's reply, deleting input.txt", async () => {
    const root = await relayOn();
    fake.setResponder(() => "Good. Now open sub-PR B with the migration.");
    const t = await transcript("Sub-PR A is open at #438; CI is green.");

    const r = await stopHook(root, stopInput({ transcript_path: t }));
    expect(r.code).toBe(0);
    expect(decisionOf(r.stdout)).toEqual({ decision: "block", reason: "Good. Now open sub-PR B with the migration." });
    expect(r.stdout.trim().split("\n")).toHaveLength(1);
    // chat-Claude got the final text, not the earlier "Opening the PR now."
    expect(fake.requests).toHaveLength(1);
    expect(lastUserText(fake.requests[0])).toContain("Sub-PR A is open at #438; CI is green.");
    expect(lastUserText(fake.requests[0])).not.toContain("Opening the PR now.");
    // Consumed: input.txt is gone, and the relay takes that as the acknowledgement.
    expect(await exists(inputPath(root, "session-1"))).toBe(false);
    await waitFor(async () => (await statusCli(root)).state === "idle", { what: "the relay to see the acknowledgement" });
    expect(JSON.parse(await readFile(join(root, "state", "hooks", "session-1.json"), "utf8"))).toMatchObject({ consecutive: 1 });
    // The envelope carried the hook's own id, and the reply said it answers that id.
    expect((await replyMeta(root, "session-1"))?.in_reply_to).toMatch(/^cc-9a0f6c1e-[0-9a-z]+-[0-9a-f]{6}$/);
  });

  it("prefers last_assistant_message to the transcript", async () => {
    const root = await relayOn();
    fake.setResponder((req) => `seen: ${req.lastUserText.includes("from the field") ? "field" : "transcript"}`);
    const t = await transcript("from the transcript");
    const r = await stopHook(root, stopInput({ transcript_path: t, last_assistant_message: "Done, from the field." }));
    expect(decisionOf(r.stdout)).toEqual({ decision: "block", reason: "seen: field" });
  });

  it("lets the agent stop when no relay holds the lock, relaying nothing", async () => {
    const root = await makeRoot();
    const r = await stopHook(root, stopInput({ last_assistant_message: "Sub-PR A is open." }));
    expectCleanStop(r);
    expect(decisionOf(r.stdout)).toEqual({ systemMessage: expect.stringMatching(/no relay is running/) });
    expect(r.stderr).toMatch(/no relay is running/);
    expect(await queueNames(root)).toEqual([]);
    expect(fake.requests).toHaveLength(0);
  });

  it("lets the agent stop, saying JC is needed, while the relay waits for JC", async () => {
    const root = await relayOn();
    fake.enqueue({ kind: "reply", text: "[NEEDS-JC] Should #438 merge before the release freeze?" });
    expect((await runCli(["send", "--root", root, "--session", "session-2", "Is #438 safe to merge today?"])).code).toBe(0);
    await waitFor(async () => ((await readStatusJson(root))?.questions.length ?? 0) > 0, { what: "the question in state/status.json" });

    const r = await stopHook(root, stopInput({ last_assistant_message: "Sub-PR A is open." }));
    expectCleanStop(r);
    expect(r.stderr).toMatch(/JC is needed.*session-2.*release freeze/);
    expect(decisionOf(r.stdout)?.systemMessage).toMatch(/JC is needed/);
    expect(await queueNames(root)).toEqual([]);
    expect(fake.requests).toHaveLength(1);
  });

  it("stops waiting, saying JC is needed, when its own message sends the relay into needs-JC", async () => {
    const root = await relayOn();
    fake.enqueue({ kind: "reply", text: "[NEEDS-JC] This drops a production table. JC, approve?" });
    const started = Date.now();
    const r = await stopHook(root, stopInput({ last_assistant_message: "Migration ready: DROP TABLE legacy_orders." }));
    expectCleanStop(r);
    expect(r.stderr).toMatch(/JC is needed.*drops a production table/);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(await exists(inputPath(root, "session-1"))).toBe(false);
  });

  it("lets the agent stop when its last message is empty", async () => {
    const root = await relayOn();
    const r = await stopHook(root, stopInput({ last_assistant_message: "  \n" }));
    expectCleanStop(r);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/empty/);
    expect(await queueNames(root)).toEqual([]);
    expect(fake.requests).toHaveLength(0);
  });

  it("gives up at --timeout when no reply comes, and never runs past it", async () => {
    const root = await relayOn();
    fake.enqueue({ kind: "hang" });
    const started = Date.now();
    const r = await stopHook(root, stopInput({ last_assistant_message: "Sub-PR A is open." }), ["--timeout", "2"]);
    const elapsed = Date.now() - started;
    expectCleanStop(r);
    expect(decisionOf(r.stdout)?.systemMessage).toMatch(/no reply from the relay in time/);
    expect(elapsed).toBeGreaterThanOrEqual(2_000);
    expect(elapsed).toBeLessThan(2_000 + 4_000); // process start-up included
    await waitFor(() => fake.requests.length === 1, { what: "the envelope to reach the API" });
  });

  it("stops after --max-turns relayed turns in a row (stop_hook_active), and counts again from a fresh stop", async () => {
    const root = await relayOn();
    let n = 0;
    fake.setResponder(() => `instruction ${++n}`);
    const turn = (active: boolean) => stopHook(root, stopInput({ stop_hook_active: active, last_assistant_message: `report ${n}` }), ["--max-turns", "2"]);

    expect(decisionOf((await turn(false)).stdout)).toEqual({ decision: "block", reason: "instruction 1" });
    expect(decisionOf((await turn(true)).stdout)).toEqual({ decision: "block", reason: "instruction 2" });
    const third = await turn(true);
    expectCleanStop(third);
    expect(third.stderr).toMatch(/2 relayed turns in a row/);
    expect(fake.requests).toHaveLength(2);
    expect(await queueNames(root)).toEqual([]);
    // The user speaks to the agent again: its next stop is not hook-driven, so the count restarts.
    expect(decisionOf((await turn(false)).stdout)).toEqual({ decision: "block", reason: "instruction 3" });
  });

  it("hands a reply too long for Claude Code's 10,000-character hook output over through a file", async () => {
    const root = await makeRoot({ config: configYaml().replace("max_tokens: 1024", "max_tokens: 8192") });
    await relayOn(root);
    const long = Array.from({ length: 300 }, (_, i) => `Step ${i + 1}: adjust module ${i} and re-run its tests.`).join("\n");
    expect(long.length).toBeGreaterThan(10_000);
    fake.setResponder(() => long);
    const r = await stopHook(root, stopInput({ last_assistant_message: "Ready for the plan." }));
    const decision = decisionOf(r.stdout);
    expect(decision?.decision).toBe("block");
    const reason = String(decision?.reason);
    expect(reason.length).toBeLessThan(3_000);
    expect(reason).toContain("Step 1: adjust module 0");
    const file = /(\/\S+\.md)/.exec(reason)?.[1];
    expect(file).toMatch(new RegExp(`^${root}/state/hooks/session-1-reply-\\d+\\.md$`));
    expect((await readFile(String(file), "utf8")).trimEnd()).toBe(long);
  });

  it("first hands over a reply that arrived after an earlier wait ended, then the reply to the latest message", async () => {
    const root = await relayOn();
    await mkdir(join(root, "dispatch", "session-1"), { recursive: true });
    await writeFile(join(root, "dispatch", "session-1", "input.json"), JSON.stringify({ reply_id: "r-old", in_reply_to: "s1-0041", source: "envelope", at: "2026-05-02T15:00:00Z" }));
    await writeFile(inputPath(root, "session-1"), "Earlier: rebase on main first.");
    fake.setResponder(() => "Latest: now open sub-PR B.");
    const r = await stopHook(root, stopInput({ last_assistant_message: "Sub-PR A is open." }));
    const reason = String(decisionOf(r.stdout)?.reason);
    const [earlier, latest] = reason.split("The reply to your latest message:");
    expect(earlier).toMatch(/envelope s1-0041.*NOT the reply to your latest message:\n\nEarlier: rebase on main first\./);
    expect(latest?.trim()).toBe("Latest: now open sub-PR B.");
    expect(await exists(inputPath(root, "session-1"))).toBe(false);
  });

  it("a late reply to an earlier stop is handed over labelled as late (the real relay)", async () => {
    const root = await relayOn();
    fake.enqueue({ kind: "delay", ms: 3_000, then: { kind: "reply", text: "Late: rebase on main first." } });
    const first = await stopHook(root, stopInput({ last_assistant_message: "Sub-PR A is open; CI is green." }), ["--timeout", "1"]);
    expectCleanStop(first);
    await waitFor(() => exists(inputPath(root, "session-1")), { what: "the late reply", timeoutMs: 10_000 });
    fake.setResponder(() => "Now open sub-PR B.");
    const r = await stopHook(root, stopInput({ last_assistant_message: "Rebased." }));
    const reason = String(decisionOf(r.stdout)?.reason);
    const [late, latest] = reason.split("The reply to your latest message:");
    expect(late).toMatch(/^Late reply: the reply to your earlier message “Sub-PR A is open; CI is green\.”.*NOT the reply to your latest message:\n\nLate: rebase on main first\./);
    expect(latest?.trim()).toBe("Now open sub-PR B.");
  });

  it("never throws on malformed standard input: exit 0, one line on stderr, nothing on stdout", async () => {
    const root = await relayOn();
    for (const input of ["", "{not json", '{"stop_hook_active": "yes"}']) {
      const r = await stopHook(root, input);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe("");
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
    }
    const sub = await stopHook(root, stopInput({ hook_event_name: "SubagentStop", last_assistant_message: "subagent done" }));
    expect(sub.code).toBe(0);
    expect(sub.stdout).toBe("");
    expect(await queueNames(root)).toEqual([]);
    expect(fake.requests).toHaveLength(0);
  });

  it("works as installed: the command from .claude/settings.json, run through a shell", async () => {
    const root = await relayOn();
    const project = await mkdtemp(join(tmpdir(), "relay-project-"));
    tempDirs.push(project);
    expect((await runCli(["hook", "install", "--session", "session-1", "--project", project, "--root", root, "--timeout", "30"])).code).toBe(0);
    const settings = JSON.parse(await readFile(join(project, ".claude", "settings.json"), "utf8")) as {
      hooks: { Stop: { hooks: { command: string; timeout: number }[] }[] };
    };
    const hook = settings.hooks.Stop[0]?.hooks[0];
    expect(hook?.timeout).toBe(90);
    fake.setResponder(() => "Installed hook works; carry on.");

    const child = spawn("/bin/sh", ["-c", String(hook?.command)], { cwd: project, env: await childEnv({ CLAUDE_PROJECT_DIR: project }), stdio: ["pipe", "pipe", "pipe"] });
    shells.add(child);
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stdin.end(stopInput({ last_assistant_message: "Sub-PR A is open." }));
    const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
    expect(code).toBe(0);
    expect(decisionOf(out)).toEqual({ decision: "block", reason: "Installed hook works; carry on." });
  });
});

describe("relay hook claude-start", () => {
  const startInput = JSON.stringify({ session_id: CC_SESSION, transcript_path: "/t.jsonl", cwd: "/home/jc/project", hook_event_name: "SessionStart", source: "resume" });

  it("hands a pending reply to a resumed session as additional context, and deletes it", async () => {
    const root = await makeRoot();
    await mkdir(join(root, "dispatch", "session-1"), { recursive: true });
    await writeFile(inputPath(root, "session-1"), "Rebase on main, then open sub-PR B.");
    const r = await runCli(["hook", "claude-start", "--session", "session-1", "--root", root], { input: startInput });
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { hookSpecificOutput: { hookEventName: string; additionalContext: string } };
    expect(out.hookSpecificOutput.hookEventName).toBe("SessionStart");
    expect(out.hookSpecificOutput.additionalContext).toContain("Rebase on main, then open sub-PR B.");
    expect(await exists(inputPath(root, "session-1"))).toBe(false);
  });

  it("prints nothing when no reply is waiting", async () => {
    const root = await makeRoot();
    const r = await runCli(["hook", "claude-start", "--session", "session-1", "--root", root], { input: startInput });
    expect(r).toMatchObject({ code: 0, stdout: "" });
    expect(await readdir(root)).not.toContain("dispatch");
  });
});

secretsCheck();
