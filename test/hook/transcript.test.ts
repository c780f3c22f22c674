// The agent's last message, as Claude Code hands it over: the Stop hook's stdin JSON and, when
// `last_assistant_message` is absent (before v2.1.47), the transcript JSONL, which is written
// asynchronously, one content block per line, the lines of one message sharing message.id.
import { appendFile, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { parseStartInput, parseStopInput } from "../../src/claude-code/hook-input.js";
import { lastAssistantText, readTranscriptMessage } from "../../src/claude-code/transcript.js";

const CC_SESSION = "3f1c2a9e-5b7d-4e21-9c3a-7d0e8b6f4a12";
const common = (uuid: string, parent: string | null) => ({
  parentUuid: parent,
  isSidechain: false,
  userType: "external",
  cwd: "/home/jc/project",
  sessionId: CC_SESSION,
  version: "2.1.50",
  gitBranch: "main",
  uuid,
  timestamp: "2026-05-02T15:29:58.120Z",
});
const usage = { input_tokens: 4, cache_creation_input_tokens: 1200, cache_read_input_tokens: 15000, output_tokens: 90, service_tier: "standard" };
const assistant = (uuid: string, parent: string, id: string, block: Record<string, unknown> | string) => ({
  ...common(uuid, parent),
  type: "assistant",
  requestId: `req_${id}`,
  message: { id, type: "message", role: "assistant", model: "claude-sonnet-4-6", content: typeof block === "string" ? block : [block], stop_reason: null, stop_sequence: null, usage },
});

/** A turn as Claude Code writes it: prompt, text + tool_use (one message), tool_result, final text in two blocks. */
const TRANSCRIPT = [
  { type: "summary", summary: "Opening the sub-PRs", leafUuid: "a0" },
  { ...common("u1", null), type: "user", message: { role: "user", content: "Open sub-PR A and tell me when it is up." } },
  assistant("a1", "u1", "msg_01AAA", { type: "text", text: "I'll create the branch and open the PR." }),
  assistant("a2", "a1", "msg_01AAA", { type: "tool_use", id: "toolu_01X", name: "Bash", input: { command: "gh pr create --fill", description: "Open the PR" } }),
  {
    ...common("u2", "a2"),
    type: "user",
    message: { role: "user", content: [{ tool_use_id: "toolu_01X", type: "tool_result", content: "https://github.com/acme/app/pull/438", is_error: false }] },
    toolUseResult: { stdout: "https://github.com/acme/app/pull/438", stderr: "", interrupted: false, isImage: false },
  },
  assistant("a3", "u2", "msg_01BBB", { type: "thinking", thinking: "The PR is open; report it.", signature: "EqQBCkYIBxgCKkB" }),
  assistant("a4", "a3", "msg_01BBB", { type: "text", text: "Sub-PR A is open at #438." }),
  assistant("a5", "a4", "msg_01BBB", { type: "text", text: "CI is running; I will start on sub-PR B next." }),
  { ...common("s1", "a5"), type: "system", subtype: "stop_hook_summary", content: "", level: "info" },
]
  .map((l) => JSON.stringify(l))
  .join("\n");

describe("the Stop hook's standard input", () => {
  it("accepts the documented fields, with last_assistant_message and without", () => {
    const full = parseStopInput(
      JSON.stringify({
        session_id: CC_SESSION,
        transcript_path: "/home/jc/.claude/projects/-home-jc-project/x.jsonl",
        cwd: "/home/jc/project",
        hook_event_name: "Stop",
        stop_hook_active: false,
        permission_mode: "default",
        last_assistant_message: "Sub-PR A is open at #438.",
      }),
    );
    expect(full).toMatchObject({ ok: true, value: { stop_hook_active: false, last_assistant_message: "Sub-PR A is open at #438." } });
    const older = parseStopInput(JSON.stringify({ session_id: CC_SESSION, transcript_path: "/t.jsonl", hook_event_name: "Stop", stop_hook_active: true }));
    expect(older).toMatchObject({ ok: true, value: { stop_hook_active: true } });
    expect(older.ok && older.value.last_assistant_message).toBeUndefined();
  });

  it("reports malformed input as a value, never by throwing", () => {
    expect(parseStopInput("")).toMatchObject({ ok: false, error: expect.stringMatching(/empty/) });
    expect(parseStopInput("{not json")).toMatchObject({ ok: false, error: expect.stringMatching(/not JSON/) });
    expect(parseStopInput("[1,2]")).toMatchObject({ ok: false });
    // zod's English messages (zod/mini registers no locale of its own: without one this reads "Invalid input")
    expect(parseStopInput(JSON.stringify({ stop_hook_active: "yes" }))).toEqual({ ok: false, error: "standard input is not the hook's JSON (stop_hook_active: Invalid input: expected boolean, received string)" });
    expect(parseStartInput(JSON.stringify({ hook_event_name: "SessionStart", source: "compact" }))).toMatchObject({ ok: true, value: { source: "compact" } });
  });
});

describe("the last assistant message in a transcript", () => {
  it("is the text blocks of the last assistant message, joined across the lines that share its message.id", () => {
    expect(lastAssistantText(TRANSCRIPT)).toEqual({ text: "Sub-PR A is open at #438.\n\nCI is running; I will start on sub-PR B next.", settled: true });
  });

  it("takes content given as a plain string", () => {
    const lines = [
      JSON.stringify({ ...common("u1", null), type: "user", message: { role: "user", content: "Run the tests." } }),
      JSON.stringify(assistant("a1", "u1", "msg_01CCC", "All 212 tests pass.")),
    ].join("\n");
    expect(lastAssistantText(lines)).toEqual({ text: "All 212 tests pass.", settled: true });
  });

  it("ignores subagent (sidechain) lines, meta lines and a torn last line", () => {
    const lines = [
      TRANSCRIPT,
      JSON.stringify({ ...assistant("x1", "a5", "msg_01SIDE", { type: "text", text: "subagent chatter" }), isSidechain: true }),
      JSON.stringify({ ...common("m1", "a5"), type: "user", isMeta: true, message: { role: "user", content: "<system-reminder>" } }),
      '{"type":"assistant","message":{"id":"msg_01TORN","content":[{"type":"text","te',
    ].join("\n");
    expect(lastAssistantText(lines).text).toBe("Sub-PR A is open at #438.\n\nCI is running; I will start on sub-PR B next.");
  });

  it("is not settled while the transcript ends with a tool call or its result", () => {
    const upToToolResult = TRANSCRIPT.split("\n").slice(0, 5).join("\n");
    expect(lastAssistantText(upToToolResult)).toEqual({ text: "I'll create the branch and open the PR.", settled: false });
    expect(lastAssistantText("")).toEqual({ text: "", settled: false });
  });
});

describe("reading a transcript that is still being written", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "relay-transcript-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("re-reads until the final assistant text has been written", async () => {
    const file = join(dir, "t.jsonl");
    const lines = TRANSCRIPT.split("\n");
    await writeFile(file, `${lines.slice(0, 5).join("\n")}\n`);
    const late = setTimeout(() => void appendFile(file, `${lines.slice(5).join("\n")}\n`), 300);
    try {
      const started = Date.now();
      expect(await readTranscriptMessage(file, { lagMs: 30_000, pollMs: 50 })).toBe("Sub-PR A is open at #438.\n\nCI is running; I will start on sub-PR B next.");
      expect(Date.now() - started).toBeLessThan(20_000); // the text came at 300 ms: not the 30 s lag window
    } finally {
      clearTimeout(late);
    }
  });

  it("gives up after the lag window with the last assistant text there is", async () => {
    const file = join(dir, "t.jsonl");
    await writeFile(file, `${TRANSCRIPT.split("\n").slice(0, 5).join("\n")}\n`);
    const started = Date.now();
    expect(await readTranscriptMessage(file, { lagMs: 300, pollMs: 50 })).toBe("I'll create the branch and open the PR.");
    expect(Date.now() - started).toBeLessThan(15_000); // 300 ms window (generous: a busy machine)
    expect(await readTranscriptMessage(join(dir, "missing.jsonl"), { lagMs: 200, pollMs: 50 })).toBe("");
  });
});
