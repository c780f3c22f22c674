// Claude Code's side, played faithfully against the real CLI: `relay run` talks to the local
// Messages API stand-in, and `relay hook claude-stop` / `claude-start` / `claude-end` get the hook
// JSON on standard input exactly as Claude Code sends it (FACTS "Claude Code hooks"); where a test
// needs Claude Code to have received a hand-over, its transcript says so (./cc-transcript.ts).
import { spawn, type ChildProcess } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";
import { INLINE_CONTEXT_MAX } from "../../src/claude-code/hook.js";
import { RELAY_INTRO } from "../../src/claude-code/handover.js";
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
import { FakeTranscript, parseHandover, removeTranscripts, stopHandoverOf } from "./cc-transcript.js";

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
  await removeTranscripts();
});

/** A transcript as Claude Code writes it (one content block per line; lines of a message share message.id). */
function transcriptLines(finalText: string, version: string): string {
  const base = { isSidechain: false, userType: "external", cwd: "/home/jc/project", sessionId: CC_SESSION, version, timestamp: "2026-05-02T15:29:58.120Z" };
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

async function transcript(finalText: string, version = "2.1.332"): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "relay-cc-"));
  tempDirs.push(dir);
  const file = join(dir, `${CC_SESSION}.jsonl`);
  await writeFile(file, transcriptLines(finalText, version));
  return file;
}

/** The Stop hook's standard input (v2.1.47+ adds last_assistant_message). */
const stopInput = (fields: { transcript_path?: string; stop_hook_active?: boolean; last_assistant_message?: string; hook_event_name?: string; session_id?: string }) =>
  JSON.stringify({
    session_id: fields.session_id ?? CC_SESSION,
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
/** The CLI's result as the hook outcome it printed. */
const outcomeOf = (r: { code: number | null; stdout: string; stderr: string }) => ({ stdout: r.stdout.trim() === "" ? null : r.stdout.trim(), stderr: r.stderr === "" ? [] : [r.stderr.trimEnd()], exitCode: r.code === 2 ? (2 as const) : r.code === 1 ? (1 as const) : (0 as const) });
/** The reply to the latest message, handed over as Stop additionalContext, and nothing else with it. */
function answerOf(r: { code: number | null; stdout: string; stderr: string }): string {
  expect(r.code, r.stderr).toBe(0);
  expect(r.stdout.trim().split("\n")).toHaveLength(1);
  const h = stopHandoverOf(r.stdout.trim());
  expect(h.sections).toHaveLength(1);
  return String(h.answer);
}

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
  expect(decisionOf(r.stdout)?.hookSpecificOutput).toBeUndefined();
}

async function relayOn(root?: string): Promise<string> {
  const dir = root ?? (await makeRoot());
  const d = await startRelay(dir, relayVars(fake, ntfy));
  expect(d.alive()).toBe(true);
  return dir;
}

describe("relay hook claude-stop", { timeout: 60_000 }, () => {
  it("relays the agent's last message from the transcript and hands chat-Claude's reply over as Stop context, deleting input.txt", async () => {
    const root = await relayOn();
    fake.setResponder(() => "Good. Now open sub-PR B with the migration.");
    const t = await transcript("Sub-PR A is open at #438; CI is green.");

    const r = await stopHook(root, stopInput({ transcript_path: t }));
    expect(answerOf(r)).toBe("Good. Now open sub-PR B with the migration.");
    expect(Object.keys(decisionOf(r.stdout) ?? {})).toEqual(["hookSpecificOutput"]);
    // Marked with the reply's id, as input.json names it.
    const meta = JSON.parse(await readFile(join(root, "dispatch", "session-1", "input.json"), "utf8")) as { reply_id: string };
    expect(stopHandoverOf(r.stdout.trim()).sections[0]?.replyId).toBe(meta.reply_id);
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
    expect(answerOf(r)).toBe("seen: field");
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
    expect(elapsed).toBeLessThan(2_000 + 8_000); // process start-up included (a busy machine takes seconds); far below the default wait
    await waitFor(() => fake.requests.length === 1, { what: "the envelope to reach the API" });
  });

  it("stops after --max-turns relayed turns in a row (stop_hook_active), and counts again from a fresh stop", async () => {
    const root = await relayOn();
    let n = 0;
    fake.setResponder(() => `instruction ${++n}`);
    const cc = await FakeTranscript.create(CC_SESSION);
    /** A stop as Claude Code runs it; a hand-over is then received (in the transcript, answered). */
    const turn = async (active: boolean) => {
      const r = await stopHook(root, stopInput({ stop_hook_active: active, last_assistant_message: `report ${n}`, transcript_path: cc.path }), ["--max-turns", "2"]);
      if (decisionOf(r.stdout)?.hookSpecificOutput !== undefined) await cc.received(outcomeOf(r), `report ${n}`);
      return r;
    };

    expect(answerOf(await turn(false))).toBe("instruction 1");
    expect(answerOf(await turn(true))).toBe("instruction 2");
    const third = await turn(true);
    expectCleanStop(third);
    expect(third.stderr).toMatch(/2 relayed turns in a row/);
    expect(fake.requests).toHaveLength(2);
    expect(await queueNames(root)).toEqual([]);
    // The user speaks to the agent again: its next stop is not hook-driven, so the count restarts.
    expect(answerOf(await turn(false))).toBe("instruction 3");
  });

  it("hands a reply longer than Claude Code shows inline over whole: context with a note to read it all, or a block reason where that is shown plain", async () => {
    const root = await makeRoot({ config: configYaml().replace("max_tokens: 1024", "max_tokens: 8192") });
    await relayOn(root);
    const long = Array.from({ length: 300 }, (_, i) => `Step ${i + 1}: adjust module ${i} and re-run its tests.`).join("\n");
    expect(long.length).toBeGreaterThan(INLINE_CONTEXT_MAX);
    fake.setResponder(() => long);

    // The current Claude Code (or an unknown version): additional context, the note first.
    const cc = await FakeTranscript.create(CC_SESSION, { version: "2.1.332" });
    const r = await stopHook(root, stopInput({ last_assistant_message: "Ready for the plan.", transcript_path: cc.path }));
    expect(r.code).toBe(0);
    const context = String((decisionOf(r.stdout)?.hookSpecificOutput as { additionalContext?: string } | undefined)?.additionalContext);
    const [note, rest] = [context.slice(0, context.indexOf("\n\n")), context.slice(context.indexOf("\n\n") + 2)];
    expect(note).toMatch(/^\(relay: this message is longer than Claude Code shows inline\. If you see only a preview, Read the whole file it names/);
    expect(parseHandover(rest).answer).toBe(long);
    await cc.received(outcomeOf(r), "Ready for the next step.");

    // Claude Code 2.1.197 shows a block reason whole and plain: the same text as the reason.
    const old = await transcript("Ready for the next step.", "2.1.197");
    const b = await stopHook(root, stopInput({ last_assistant_message: "Ready for the next step.", transcript_path: old }));
    const block = decisionOf(b.stdout);
    expect(Object.keys(block ?? {}).sort()).toEqual(["decision", "reason"]);
    expect(block?.decision).toBe("block");
    const h = parseHandover(String(block?.reason));
    expect(h.sections).toHaveLength(1); // the first hand-over was delivered: not handed again
    expect(h.answer).toBe(long);
    // No file of the relay's own: Claude Code keeps the text.
    expect((await readdir(join(root, "state", "hooks"))).filter((n) => n.endsWith(".md"))).toEqual([]);
  });

  it("first hands over a reply that arrived after an earlier wait ended, then the reply to the latest message", async () => {
    const root = await relayOn();
    await mkdir(join(root, "dispatch", "session-1"), { recursive: true });
    await writeFile(join(root, "dispatch", "session-1", "input.json"), JSON.stringify({ reply_id: "r-old", in_reply_to: "s1-0041", source: "envelope", at: "2026-05-02T15:00:00Z" }));
    await writeFile(inputPath(root, "session-1"), "Earlier: rebase on main first.");
    fake.setResponder(() => "Latest: now open sub-PR B.");
    const r = await stopHook(root, stopInput({ last_assistant_message: "Sub-PR A is open." }));
    const h = stopHandoverOf(r.stdout.trim());
    expect(h.sections).toHaveLength(2);
    expect(h.sections[0]).toEqual({
      replyId: "r-old",
      heading: "A reply from the reviewer to another message on this relay session (envelope s1-0041). It is NOT the reply to your latest message:",
      body: "Earlier: rebase on main first.",
    });
    expect(h.answer).toBe("Latest: now open sub-PR B.");
    expect(await exists(inputPath(root, "session-1"))).toBe(false);
  });

  it("a late reply to an earlier stop is handed over labelled as late (the real relay)", async () => {
    const root = await relayOn();
    fake.enqueue({ kind: "delay", ms: 3_000, then: { kind: "reply", text: "Late: rebase on main first." } });
    const first = await stopHook(root, stopInput({ last_assistant_message: "Sub-PR A is open; CI is green." }), ["--timeout", "1"]);
    expectCleanStop(first);
    await waitFor(() => exists(inputPath(root, "session-1")), { what: "the late reply", timeoutMs: 30_000 });
    fake.setResponder(() => "Now open sub-PR B.");
    const r = await stopHook(root, stopInput({ last_assistant_message: "Rebased." }));
    const h = stopHandoverOf(r.stdout.trim());
    expect(h.sections).toHaveLength(2);
    expect(h.sections[0]?.heading).toMatch(/^A late reply from the reviewer to your earlier message of .* \(“Sub-PR A is open; CI is green\.”\)\. It is NOT the reply to your latest message:$/);
    expect(h.sections[0]?.body).toBe("Late: rebase on main first.");
    expect(h.answer).toBe("Now open sub-PR B.");
  });

  it("never throws on malformed standard input: exit 0, one line on stderr, nothing on stdout", async () => {
    const root = await relayOn();
    for (const input of ["", "{not json", '{"stop_hook_active": "yes"}']) {
      const r = await stopHook(root, input);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe("");
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      if (input.includes("yes")) expect(r.stderr).toContain("stop_hook_active: Invalid input: expected boolean, received string");
    }
    const sub = await stopHook(root, stopInput({ hook_event_name: "SubagentStop", last_assistant_message: "subagent done" }));
    expect(sub.code).toBe(0);
    expect(sub.stdout).toBe("");
    expect(await queueNames(root)).toEqual([]);
    expect(fake.requests).toHaveLength(0);
  });

  it("works as installed: the command from .claude/settings.local.json, run through a shell", async () => {
    const root = await relayOn();
    const project = await mkdtemp(join(tmpdir(), "relay-project-"));
    tempDirs.push(project);
    expect((await runCli(["hook", "install", "--session", "session-1", "--project", project, "--root", root, "--timeout", "30"])).code).toBe(0);
    const settings = JSON.parse(await readFile(join(project, ".claude", "settings.local.json"), "utf8")) as {
      hooks: { Stop: { hooks: { command: string; timeout: number }[] }[] };
    };
    const hook = settings.hooks.Stop[0]?.hooks[0];
    expect(hook?.timeout).toBe(90);
    expect(hook?.command).toMatch(/ --mode block --timeout 30$/);
    fake.setResponder(() => "Installed hook works; carry on.");

    const child = spawn("/bin/sh", ["-c", String(hook?.command)], { cwd: project, env: await childEnv({ CLAUDE_PROJECT_DIR: project }), stdio: ["pipe", "pipe", "pipe"] });
    shells.add(child);
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.stdin.end(stopInput({ last_assistant_message: "Sub-PR A is open." }));
    const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
    expect(answerOf({ code, stdout: out, stderr: err })).toBe("Installed hook works; carry on.");
  });

  it("--mode wake: a hand-over is exit 2 with the text on stderr, nothing on stdout", async () => {
    const root = await relayOn();
    fake.setResponder(() => "Woken: open sub-PR B.");
    const r = await stopHook(root, stopInput({ last_assistant_message: "Sub-PR A is open." }), ["--mode", "wake", "--timeout", "15"]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    const h = parseHandover(r.stderr.trimEnd());
    expect(h.sections).toHaveLength(1);
    expect(h.answer).toBe("Woken: open sub-PR B.");
    expect(await exists(inputPath(root, "session-1"))).toBe(false);
    // A clean stop in wake mode is exit 0, as in block mode.
    const none = await stopHook(await makeRoot(), stopInput({ last_assistant_message: "Sub-PR A is open." }), ["--mode", "wake"]);
    expectCleanStop(none);
    expect(none.stderr).toMatch(/no relay is running/);
  });

  it("refuses a second Claude Code session on the same relay session until claude-end releases it", async () => {
    const root = await relayOn();
    fake.setResponder(() => "For the first session.");
    const first = await stopHook(root, stopInput({ last_assistant_message: "First session's report." }));
    expect(answerOf(first)).toBe("For the first session.");

    const OTHER = "5b2e9c47-8f1a-4d3b-a6c0-2e7f9d1b3c58";
    const second = await stopHook(root, stopInput({ session_id: OTHER, last_assistant_message: "Second session's report." }));
    expectCleanStop(second);
    expect(String(decisionOf(second.stdout)?.systemMessage)).toMatch(new RegExp(`bound to another Claude Code session \\(${CC_SESSION}, last seen`));
    expect(fake.requests).toHaveLength(1);
    expect(await queueNames(root)).toEqual([]);

    const end = JSON.stringify({ session_id: CC_SESSION, transcript_path: "/t.jsonl", cwd: "/home/jc/project", hook_event_name: "SessionEnd", reason: "other" });
    const ended = await runCli(["hook", "claude-end", "--session", "session-1", "--root", root], { input: end });
    expect(ended.code).toBe(0);
    expect(ended.stdout).toBe("");
    expect(ended.stderr).toMatch(`relay session session-1 released by Claude Code session ${CC_SESSION}`);
    expect(await exists(join(root, "state", "hooks", "session-1.binding.json"))).toBe(false);

    // Now the second session is relayed (and handed the first one's reply, which its transcript never showed).
    fake.setResponder(() => "Welcome, second session.");
    const again = stopHandoverOf((await stopHook(root, stopInput({ session_id: OTHER, last_assistant_message: "Second, again." }))).stdout.trim());
    expect(again.sections.map((x) => x.body)).toEqual(["For the first session.", "Welcome, second session."]);
    expect(again.answer).toBe("Welcome, second session.");
  });

  it("never throws on malformed standard input for claude-end, and checks the session id", async () => {
    const root = await makeRoot();
    for (const input of ["", "{not json", "{}"]) {
      const r = await runCli(["hook", "claude-end", "--session", "session-1", "--root", root], { input });
      expect(r.code).toBe(0);
      expect(r.stdout).toBe("");
    }
    const bad = await runCli(["hook", "claude-end", "--session", "a b", "--root", root], { input: "{}" });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/not a valid session id/);
  });
});

describe("relay hook claude-start", { timeout: 60_000 }, () => {
  const startInput = (sessionId = CC_SESSION, transcriptPath = "/t.jsonl") =>
    JSON.stringify({ session_id: sessionId, transcript_path: transcriptPath, cwd: "/home/jc/project", hook_event_name: "SessionStart", source: "resume" });
  const contextOf = (stdout: string): string => {
    const out = JSON.parse(stdout) as { hookSpecificOutput: { hookEventName: string; additionalContext: string } };
    expect(out.hookSpecificOutput.hookEventName).toBe("SessionStart");
    return out.hookSpecificOutput.additionalContext;
  };

  it("hands a pending reply to a resumed session as additional context, and takes it from input.txt", async () => {
    const root = await makeRoot();
    await mkdir(join(root, "dispatch", "session-1"), { recursive: true });
    await writeFile(inputPath(root, "session-1"), "Rebase on main, then open sub-PR B.");
    const r = await runCli(["hook", "claude-start", "--session", "session-1", "--root", root], { input: startInput() });
    expect(r.code).toBe(0);
    const context = contextOf(r.stdout);
    expect(context.startsWith(RELAY_INTRO)).toBe(true);
    const h = parseHandover(context);
    expect(h.sections.map((x) => x.body)).toEqual(["Rebase on main, then open sub-PR B."]);
    expect(h.note).toMatch(/arrived while this session was not waiting \(session resume\)/);
    expect(await exists(inputPath(root, "session-1"))).toBe(false);
    // Kept in the hooks' inbox until Claude Code shows it delivered.
    expect(await readdir(join(root, "state", "hooks", "session-1.handover"))).toHaveLength(1);
  });

  it("hands a dropped hand-over again at the next start, and not once the transcript shows it delivered", async () => {
    const root = await makeRoot();
    await mkdir(join(root, "dispatch", "session-1"), { recursive: true });
    await writeFile(inputPath(root, "session-1"), "Rebase on main.");
    const cc = await FakeTranscript.create(CC_SESSION);
    const run = () => runCli(["hook", "claude-start", "--session", "session-1", "--root", root], { input: startInput(CC_SESSION, cc.path) });
    const first = await run();
    expect(parseHandover(contextOf(first.stdout)).sections.map((x) => x.body)).toEqual(["Rebase on main."]);
    // Claude Code never showed it (the transcript has no trace of it): handed again.
    const second = await run();
    expect(parseHandover(contextOf(second.stdout)).sections.map((x) => x.body)).toEqual(["Rebase on main."]);
    await cc.received(outcomeOf(second), "Rebasing.");
    expect(await run()).toMatchObject({ code: 0, stdout: "" });
    expect(await readdir(join(root, "state", "hooks", "session-1.handover"))).toEqual([]);
  });

  it("hands nothing to a second Claude Code session while the first is bound (--release-after)", async () => {
    const root = await makeRoot();
    await mkdir(join(root, "dispatch", "session-1"), { recursive: true });
    expect((await runCli(["hook", "claude-start", "--session", "session-1", "--root", root], { input: startInput() })).stdout).toBe("");
    await writeFile(inputPath(root, "session-1"), "For whoever is bound.");
    const OTHER = "5b2e9c47-8f1a-4d3b-a6c0-2e7f9d1b3c58";
    const refused = await runCli(["hook", "claude-start", "--session", "session-1", "--root", root], { input: startInput(OTHER) });
    expect(refused).toMatchObject({ code: 0, stdout: "" });
    expect(refused.stderr).toMatch(`bound to Claude Code session ${CC_SESSION}`);
    expect(await exists(inputPath(root, "session-1"))).toBe(true);
    // The first session has not been seen for longer than --release-after: the second takes over.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const taken = await runCli(["hook", "claude-start", "--session", "session-1", "--root", root, "--release-after", "1"], { input: startInput(OTHER) });
    expect(parseHandover(contextOf(taken.stdout)).sections.map((x) => x.body)).toEqual(["For whoever is bound."]);
  });

  it("prints nothing when no reply is waiting", async () => {
    const root = await makeRoot();
    const r = await runCli(["hook", "claude-start", "--session", "session-1", "--root", root], { input: startInput() });
    expect(r).toMatchObject({ code: 0, stdout: "" });
    expect(await readdir(root)).not.toContain("dispatch");
  });
});

secretsCheck();
