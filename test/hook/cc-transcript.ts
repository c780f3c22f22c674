// Test support for the hook tests: a Claude Code transcript written the way Claude Code writes
// it (JSONL; a Stop hook's additionalContext as a `hook_additional_context` attachment, the hook's
// raw stdout as `hook_success`, a queued wake as `queue-operation`), so a test can say "Claude
// Code received this hand-over" (the marker, then an assistant entry) or leave it dropped; and
// the hand-over text taken apart into its sections.
import { appendFile, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { expect } from "vitest";
import type { HookOutcome } from "../../src/claude-code/hook.js";
import { RELAY_INTRO } from "../../src/claude-code/handover.js";

const dirs: string[] = [];
/** Remove every transcript directory made so far (call from afterAll). */
export async function removeTranscripts(): Promise<void> {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
}

export class FakeTranscript {
  private parent: string | null = null;
  private constructor(
    readonly path: string,
    readonly ccSession: string,
    readonly version: string,
  ) {}

  /** An empty transcript file for one Claude Code session (its first prompt already in it). */
  static async create(ccSession: string, opts: { version?: string; prompt?: string } = {}): Promise<FakeTranscript> {
    const dir = await mkdtemp(join(tmpdir(), "relay-cc-transcript-"));
    dirs.push(dir);
    const t = new FakeTranscript(join(dir, `${ccSession}.jsonl`), ccSession, opts.version ?? "2.1.332");
    await writeFile(t.path, "");
    await t.user(opts.prompt ?? "Open sub-PR A and report back.");
    return t;
  }

  private async append(entry: Record<string, unknown>): Promise<void> {
    const uuid = randomUUID();
    const line = {
      parentUuid: this.parent,
      isSidechain: false,
      userType: "external",
      cwd: "/home/jc/project",
      sessionId: this.ccSession,
      version: this.version,
      gitBranch: "main",
      uuid,
      timestamp: new Date().toISOString(),
      ...entry,
    };
    this.parent = uuid;
    await appendFile(this.path, `${JSON.stringify(line)}\n`);
  }

  user(content: unknown): Promise<void> {
    return this.append({ type: "user", message: { role: "user", content } });
  }

  assistant(text: string): Promise<void> {
    return this.append({
      type: "assistant",
      message: { id: `msg_${randomUUID().slice(0, 8)}`, type: "message", role: "assistant", model: "claude-sonnet-4-6", content: [{ type: "text", text }], stop_reason: "end_turn" },
    });
  }

  /** What Claude Code records of a Stop hook's additionalContext (the model is shown it). */
  additionalContext(text: string, hookEvent = "Stop"): Promise<void> {
    return this.append({ type: "attachment", attachment: { type: "hook_additional_context", content: [text], hookName: hookEvent, toolUseID: randomUUID(), hookEvent } });
  }

  /** What Claude Code records of a hook's raw output (the model is not shown it). */
  hookSuccess(stdout: string, hookEvent = "Stop"): Promise<void> {
    return this.append({
      type: "attachment",
      attachment: { type: "hook_success", hookName: hookEvent, toolUseID: randomUUID(), hookEvent, content: stdout, stdout, stderr: "", exitCode: 0, command: "relay hook", durationMs: 12 },
    });
  }

  /** A wake queued, not yet shown to the model. */
  queueOperation(content: string): Promise<void> {
    return this.append({ type: "queue-operation", operation: "enqueue", content });
  }

  /**
   * Claude Code received a hand-over: the hook's output recorded as it records it (Stop or
   * SessionStart additionalContext as an attachment, a block reason as "Stop hook feedback", a
   * wake's stderr as a user notification), then the model's next message.
   */
  async received(outcome: HookOutcome, next = "On it."): Promise<void> {
    await this.shown(outcome);
    await this.assistant(next);
  }

  /** The hand-over is in the transcript, but the model has not answered yet (queued). */
  async shown(outcome: HookOutcome): Promise<void> {
    if (outcome.exitCode === 2) {
      await this.user(`<task-notification>${outcome.stderr.join("\n")}</task-notification>`);
      return;
    }
    const out = JSON.parse(outcome.stdout ?? "null") as { decision?: string; reason?: string; hookSpecificOutput?: { hookEventName: string; additionalContext: string } } | null;
    if (out?.hookSpecificOutput) {
      await this.hookSuccess(outcome.stdout ?? "", out.hookSpecificOutput.hookEventName);
      await this.additionalContext(out.hookSpecificOutput.additionalContext, out.hookSpecificOutput.hookEventName);
    } else if (out?.decision === "block") {
      await this.user([{ type: "text", text: `Stop hook feedback:\n${out.reason ?? ""}` }]);
    } else {
      throw new Error(`nothing handed over: ${JSON.stringify(outcome)}`);
    }
  }
}

// ---------------------------------------------------------------------------
// The hand-over text

export interface Section {
  /** The reply id from the heading's marker `[relay <id>]` */
  replyId: string;
  /** The heading after the marker */
  heading: string;
  body: string;
}

export interface Handover {
  sections: Section[];
  /** The trailing "(relay: …)" note, if any */
  note: string | null;
  /** The body under "The reviewer's reply to your latest message…", if there is one */
  answer: string | null;
}

/** Take a hand-over apart: RELAY_INTRO, then `[relay <id>] heading\n\nbody` sections separated by ---, then an optional note. */
export function parseHandover(text: string): Handover {
  const parts = text.split("\n\n---\n\n");
  expect(parts[0]).toBe(RELAY_INTRO);
  const sections: Section[] = [];
  let note: string | null = null;
  const rest = parts.slice(1);
  for (const [i, part] of rest.entries()) {
    const m = /^\[relay ([^\]]+)\] ([^\n]*)\n\n([\s\S]*)$/.exec(part);
    if (m) {
      sections.push({ replyId: m[1] ?? "", heading: m[2] ?? "", body: m[3] ?? "" });
      continue;
    }
    expect(i, `only the last part may be a note: ${part}`).toBe(rest.length - 1);
    expect(part).toMatch(/^\(relay: [\s\S]*\)$/);
    note = part;
  }
  const answers = sections.filter((s) => s.heading.startsWith("The reviewer's reply to your latest message"));
  expect(answers.length).toBeLessThanOrEqual(1);
  if (answers.length === 1) expect(sections.at(-1)).toBe(answers[0]);
  return { sections, note, answer: answers[0]?.body ?? null };
}

/** The Stop hook's block-mode hand-over (additionalContext), parsed; fails the test for any other output. */
export function stopContextOf(outcome: HookOutcome | string | null): string {
  const stdout = typeof outcome === "string" || outcome === null ? outcome : outcome.stdout;
  if (typeof outcome === "object" && outcome !== null) expect(outcome.exitCode).toBe(0);
  const out = JSON.parse(stdout ?? "null") as { hookSpecificOutput?: { hookEventName?: string; additionalContext?: string } } | null;
  expect(out?.hookSpecificOutput?.hookEventName).toBe("Stop");
  return String(out?.hookSpecificOutput?.additionalContext);
}

export const stopHandoverOf = (outcome: HookOutcome | string | null): Handover => parseHandover(stopContextOf(outcome));
