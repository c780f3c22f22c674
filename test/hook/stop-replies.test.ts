// The Stop hook's promises about whose reply it hands over (CONTRACT §5, §10), kept at the unit
// level: runStopHook / runStartHook in this process against a temporary root, with a fake relay
// that holds state/.lock, takes queue/, and writes dispatch/<session>/input.json then input.txt
// the way the contract says (one reply at a time per session, in order, never overwritten), a
// hand-written state/status.json checked against the real schema, and a Claude Code transcript
// (./cc-transcript.ts) that says whether Claude Code received what the hook handed over.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdir, readdir, readFile, rename, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { handoverDir, listItems, RELAY_INTRO } from "../../src/claude-code/handover.js";
import { type HookOutcome, runEndHook, runStartHook, runStopHook } from "../../src/claude-code/hook.js";
import { abandonSent, hookEnvelopeId, recordSent, sentDir } from "../../src/claude-code/sent-envelopes.js";
import { ENVELOPE_ID } from "../../src/transport/file/queue.js";
import { loadConfig } from "../../src/config/config.js";
import { relayPaths, type RelayPaths } from "../../src/config/paths.js";
import { type QuestionView, type StatusFile, statusFileSchema } from "../../src/status/status-file.js";
import { acquireLock, type HeldLock } from "../../src/store/lock.js";
import type { ReplyMeta, ReplySource } from "../../src/transport/file/reply-meta.js";
import { BIN, childEnv, configYaml, exists, inputPath, makeRoot, removeRoots, waitFor } from "../support/cli.js";
import { FakeTranscript, parseHandover, removeTranscripts, stopHandoverOf } from "./cc-transcript.js";

const CC_SESSION = "9a0f6c1e-2d4b-4f8e-b1a7-3c5d7e9f0a21";
const POLL = 20;

// ---------------------------------------------------------------------------
// A fake relay: files only, as the contract describes them

interface Taken {
  id: string;
  session: string;
  content: string;
}

class FakeRelay {
  readonly taken: Taken[] = [];
  private readonly outbox = new Map<string, { text: string; meta: ReplyMeta }[]>();
  private timer: NodeJS.Timeout | null = null;
  private busy = false;
  private replies = 0;
  /** When set, every envelope taken is answered at once with what it returns. */
  answer: ((envelope: Taken) => string) | null = null;

  constructor(
    readonly paths: RelayPaths,
    private readonly lock: HeldLock,
  ) {}

  static async start(paths: RelayPaths): Promise<FakeRelay> {
    await mkdir(paths.state, { recursive: true });
    const held = await acquireLock(paths.lock);
    if (!held.ok) throw new Error("the fake relay could not take state/.lock");
    const relay = new FakeRelay(paths, held.lock);
    relay.timer = setInterval(() => void relay.tick(), 10);
    return relay;
  }

  /** Queue a reply for a session: delivered once input.txt is gone, after those queued before it. */
  reply(session: string, inReplyTo: string | null, text: string, source: ReplySource = "envelope"): void {
    const meta: ReplyMeta = { reply_id: `r-${++this.replies}`, in_reply_to: inReplyTo, source, at: new Date().toISOString() };
    const list = this.outbox.get(session) ?? [];
    list.push({ text, meta });
    this.outbox.set(session, list);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await waitFor(() => !this.busy, { what: "the fake relay's last tick" });
    this.lock.release();
  }

  private async tick(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      await this.takeQueue();
      await this.deliver();
    } finally {
      this.busy = false;
    }
  }

  private async takeQueue(): Promise<void> {
    let names: string[];
    try {
      names = (await readdir(this.paths.queue)).filter((n) => !n.startsWith(".") && !n.endsWith(".tmp")).sort();
    } catch {
      return;
    }
    for (const name of names) {
      const file = join(this.paths.queue, name);
      const body = JSON.parse(await readFile(file, "utf8")) as { session_id: string; id?: string; content: string };
      await unlink(file);
      expect(body.id).toMatch(ENVELOPE_ID);
      const envelope = { id: body.id ?? `e-${name}`, session: body.session_id, content: body.content };
      this.taken.push(envelope);
      if (this.answer) this.reply(envelope.session, envelope.id, this.answer(envelope));
    }
  }

  private async deliver(): Promise<void> {
    for (const [session, list] of this.outbox) {
      const next = list[0];
      if (next === undefined || (await exists(inputPath(this.paths.root, session)))) continue;
      const dir = join(this.paths.dispatch, session);
      await mkdir(dir, { recursive: true });
      // input.json first, then input.txt renamed into place (CONTRACT §5)
      await writeFile(join(dir, ".input.json.tmp"), JSON.stringify(next.meta));
      await rename(join(dir, ".input.json.tmp"), join(dir, "input.json"));
      await writeFile(join(dir, ".reply.tmp"), next.text);
      await rename(join(dir, ".reply.tmp"), join(dir, "input.txt"));
      list.shift();
    }
  }
}

// ---------------------------------------------------------------------------
// state/status.json as the relay writes it

function statusWith(opts: { questions?: Omit<QuestionView, "since" | "kind">[]; paused?: string; backingOff?: { until: number; message: string } } = {}): StatusFile {
  const now = new Date().toISOString();
  const questions = (opts.questions ?? []).map((q) => ({ ...q, since: now, kind: "reply" as const }));
  const conversation = (name: string, sessions: string[]) => ({
    state: questions.some((q) => q.conversation === name) ? "needsJc" : "idle",
    sessions,
    chars: 0,
    turns: 0,
    question: questions.find((q) => q.conversation === name)?.id ?? null,
  });
  const first = questions[0];
  return statusFileSchema.parse({
    format: "relay-status/2",
    updatedAt: now,
    pid: process.pid,
    state: first ? "needsJc" : opts.paused ? "paused" : opts.backingOff ? "backingOff" : "idle",
    needsJc: first ? { id: first.id, session: first.session, question: first.question, since: now } : null,
    questions,
    conversations: { shared: conversation("shared", ["session-1", "session-2"]), "session-3": conversation("session-3", ["session-3"]) },
    sessions: {
      "session-1": { pending: 0, conversation: "shared" },
      "session-2": { pending: 0, conversation: "shared" },
      "session-3": { pending: 0, conversation: "session-3" },
    },
    history: { chars: 0, turns: 0 },
    lastError: opts.paused ? { message: opts.paused, at: now } : opts.backingOff ? { message: opts.backingOff.message, at: now } : null,
    retry: opts.paused
      ? { kind: "permanent", attempt: 1, nextTryAt: now, since: now, message: opts.paused }
      : opts.backingOff
        ? { kind: "transient", attempt: 3, nextTryAt: new Date(opts.backingOff.until).toISOString(), since: now, message: opts.backingOff.message }
        : null,
    calls: { inFlight: 0, maxParallel: 4 },
    cost: { totalUsd: 0, todayUsd: 0, calls: 0, unpricedCalls: 0 },
  });
}

async function writeStatus(paths: RelayPaths, status: StatusFile): Promise<void> {
  await mkdir(paths.state, { recursive: true });
  await writeFile(join(paths.state, ".status.json.tmp"), JSON.stringify(status));
  await rename(join(paths.state, ".status.json.tmp"), join(paths.state, "status.json"));
}

// ---------------------------------------------------------------------------
// Running the hooks in this process

const relays: FakeRelay[] = [];
const children = new Set<ChildProcess>();
afterEach(async () => {
  for (const c of children) {
    if (c.exitCode !== null || c.signalCode !== null) continue;
    const closed = new Promise((resolve) => c.once("close", resolve));
    c.kill("SIGCONT");
    c.kill("SIGKILL");
    await closed;
  }
  children.clear();
  for (const r of relays.splice(0)) await r.stop();
});
afterAll(async () => {
  await removeRoots();
  await removeTranscripts();
});

const SESSIONS = ["session-1", "session-2", { id: "session-3", systemPrompt: "You review session-3 on its own." }];
const RELEASE_AFTER_MS = 30 * 60_000;

async function setUp(): Promise<{ paths: RelayPaths; relay: FakeRelay; cc: FakeTranscript }> {
  const paths = relayPaths(await makeRoot({ config: configYaml({ sessions: SESSIONS }) }));
  const relay = await FakeRelay.start(paths);
  relays.push(relay);
  return { paths, relay, cc: await FakeTranscript.create(CC_SESSION) };
}

const stopInput = (message: string, fields: { stop_hook_active?: boolean; transcript?: string; ccSession?: string } = {}) =>
  JSON.stringify({
    session_id: fields.ccSession ?? CC_SESSION,
    transcript_path: fields.transcript ?? "/nonexistent/transcript.jsonl",
    cwd: "/home/jc/project",
    permission_mode: "default",
    hook_event_name: "Stop",
    stop_hook_active: fields.stop_hook_active ?? false,
    last_assistant_message: message,
  });

interface StopOpts {
  session?: string;
  waitMs?: number;
  /** The Claude Code session's transcript (default: one that does not exist) */
  cc?: FakeTranscript;
  ccSession?: string;
  mode?: "block" | "wake";
  releaseAfterMs?: number;
}

function stop(paths: RelayPaths, message: string, opts: StopOpts = {}): Promise<HookOutcome> {
  return runStopHook({
    paths,
    session: opts.session ?? "session-1",
    input: stopInput(message, { ...(opts.cc ? { transcript: opts.cc.path } : {}), ccSession: opts.ccSession ?? opts.cc?.ccSession ?? CC_SESSION }),
    mode: opts.mode ?? "block",
    deadline: Date.now() + (opts.waitMs ?? 5_000),
    maxTurns: 8,
    releaseAfterMs: opts.releaseAfterMs ?? RELEASE_AFTER_MS,
    evidenceMax: 0, // the account of the turn has tests of its own; here the envelope is the message
    loadConfig: () => loadConfig(paths, {}, { seed: false }),
    pollMs: POLL,
  });
}

const startInput = (fields: { ccSession?: string; transcript?: string; source?: string } = {}) =>
  JSON.stringify({
    session_id: fields.ccSession ?? CC_SESSION,
    transcript_path: fields.transcript ?? "/t.jsonl",
    cwd: "/home/jc/project",
    hook_event_name: "SessionStart",
    source: fields.source ?? "resume",
  });

const start = (paths: RelayPaths, fields: { ccSession?: string; transcript?: string; source?: string } = {}, session = "session-1"): Promise<HookOutcome> =>
  runStartHook({ paths, session, input: startInput(fields), releaseAfterMs: RELEASE_AFTER_MS });

const decisionOf = (o: HookOutcome): Record<string, unknown> | null => (o.stdout === null ? null : (JSON.parse(o.stdout) as Record<string, unknown>));
/** The reply to the latest message, which must be the only thing handed over. */
const answerOf = (o: HookOutcome): string => {
  const h = stopHandoverOf(o);
  expect(h.sections).toHaveLength(1);
  expect(h.note).toBeNull();
  return String(h.answer);
};
const startContextOf = (o: HookOutcome): string => {
  expect(o.exitCode).toBe(0);
  const out = JSON.parse(o.stdout ?? "null") as { hookSpecificOutput: { hookEventName: string; additionalContext: string } };
  expect(out.hookSpecificOutput.hookEventName).toBe("SessionStart");
  return out.hookSpecificOutput.additionalContext;
};
function expectCleanStop(o: HookOutcome): void {
  expect(o.exitCode).toBe(0);
  expect(decisionOf(o)?.decision).toBeUndefined();
  expect(decisionOf(o)?.hookSpecificOutput).toBeUndefined();
  expect(decisionOf(o)?.systemMessage).toEqual(expect.any(String));
  expect(String(decisionOf(o)?.systemMessage).split("\n")).toHaveLength(1);
}

/** A reply sitting in input.txt, with its input.json, as the relay leaves it. */
async function sittingReply(paths: RelayPaths, session: string, text: string, meta: Partial<ReplyMeta> | null): Promise<void> {
  const dir = join(paths.dispatch, session);
  await mkdir(dir, { recursive: true });
  const place = async (name: string, data: string) => {
    await writeFile(join(dir, `.${name}.tmp`), data);
    await rename(join(dir, `.${name}.tmp`), join(dir, name));
  };
  if (meta !== null) await place("input.json", JSON.stringify({ reply_id: "r-0", in_reply_to: null, source: "envelope", at: new Date().toISOString(), ...meta }));
  await place("input.txt", text);
}

const ANSWER_HEADING = "The reviewer's reply to your latest message:";
const NOT_THE_ANSWER = "It is NOT the reply to your latest message:";

// ---------------------------------------------------------------------------

describe("the Stop hook's envelope", () => {
  it("carries an id of its own, made from the Claude Code session id, that the contract accepts", async () => {
    const { paths, relay } = await setUp();
    relay.answer = (e) => `ok: ${e.content}`;
    const out = await stop(paths, "Sub-PR A is open.");
    expect(answerOf(out)).toBe("ok: Sub-PR A is open.");
    expect(relay.taken).toHaveLength(1);
    expect(relay.taken[0]?.id).toMatch(/^cc-9a0f6c1e-[0-9a-z]+-[0-9a-f]{6}$/);
    expect(relay.taken[0]?.id).toMatch(ENVELOPE_ID);
    expect(hookEnvelopeId(undefined)).toMatch(ENVELOPE_ID);
    expect(hookEnvelopeId("../../etc")).toMatch(/^cc-etc-/);
    // Answered: nothing is left in the ledger, and input.txt is acknowledged.
    expect(await readdir(sentDir(paths, "session-1"))).toEqual([]);
    expect(await exists(inputPath(paths.root, "session-1"))).toBe(false);
  });
});

describe("whose reply the Stop hook hands over", () => {
  it("never hands over a reply whose in_reply_to is another envelope as the answer", async () => {
    const { paths, relay, cc } = await setUp();
    // A reply to an envelope `relay send` dropped for this session sits in input.txt.
    await sittingReply(paths, "session-1", "Reply to s1-0042: merge #438.", { reply_id: "r-42", in_reply_to: "s1-0042" });
    relay.answer = (e) => `Answer to “${e.content}”: open sub-PR B.`;
    const first = await stop(paths, "Sub-PR A is open.", { cc });
    const h = stopHandoverOf(first);
    expect(h.sections.map((s) => s.replyId)).toEqual(["r-42", "r-1"]);
    expect(h.sections[0]?.heading).toBe(`A reply from the reviewer to another message on this relay session (envelope s1-0042). ${NOT_THE_ANSWER}`);
    expect(h.sections[0]?.body).toBe("Reply to s1-0042: merge #438.");
    expect(h.sections[1]?.heading).toBe(ANSWER_HEADING);
    expect(h.answer).toBe("Answer to “Sub-PR A is open.”: open sub-PR B.");
    expect(await exists(inputPath(paths.root, "session-1"))).toBe(false);
    await cc.received(first);

    // Without the reply to its own envelope, another reply is never presented as the answer.
    relay.answer = null;
    await sittingReply(paths, "session-1", "Reply to s1-0043: rebase.", { reply_id: "r-43", in_reply_to: "s1-0043" });
    const timedOut = stopHandoverOf(await stop(paths, "Sub-PR B is open.", { waitMs: 400, cc }));
    expect(timedOut.sections.map((s) => [s.replyId, s.body])).toEqual([["r-43", "Reply to s1-0043: rebase."]]);
    expect(timedOut.answer).toBeNull();
    expect(timedOut.note).toMatch(/no reply from the relay in time/);
  });

  it("never takes a reply without input.json for the answer (a relay older than contract version 2)", async () => {
    const { paths, relay } = await setUp();
    await sittingReply(paths, "session-1", "Unlabelled reply.", null);
    relay.answer = () => "The answer.";
    const h = stopHandoverOf(await stop(paths, "Sub-PR A is open."));
    expect(h.sections).toHaveLength(2);
    expect(h.sections[0]?.replyId).toMatch(/^u-[0-9a-f]{12}$/);
    expect(h.sections[0]?.heading).toBe("A reply from the relay that does not say which message it answers:");
    expect(h.sections[0]?.body).toBe("Unlabelled reply.");
    expect(h.answer).toBe("The answer.");
  });

  it("hands JC's own message (in_reply_to null) over labelled as JC's, before the answer", async () => {
    const { paths, relay } = await setUp();
    relay.reply("session-1", null, "JC: pause after this PR.", "jc-direct");
    await waitFor(() => exists(inputPath(paths.root, "session-1")), { what: "JC's message in input.txt" });
    relay.answer = () => "The answer.";
    const h = stopHandoverOf(await stop(paths, "Sub-PR A is open."));
    expect(h.sections.map((s) => [s.heading, s.body])).toEqual([
      ["JC, the human overseeing this session, writes to you directly:", "JC: pause after this PR."],
      [ANSWER_HEADING, "The answer."],
    ]);
  });

  it("labels the reviewer's words after a turn with JC as such, whether or not they answer the latest message", async () => {
    const { paths, relay } = await setUp();
    relay.reply("session-1", null, "After JC's word: hold the release.", "jc-chat");
    await waitFor(() => exists(inputPath(paths.root, "session-1")), { what: "the reviewer's message in input.txt" });
    const h = stopHandoverOf(await stop(paths, "Sub-PR A is open.", { waitMs: 300 }));
    expect(h.sections.map((s) => s.heading)).toEqual(["A message from the reviewer (after a turn with JC, the human overseeing this session), not a reply to any message of yours:"]);
    expect(h.answer).toBeNull();
  });

  it("a late reply to an earlier stop is handed over labelled as late", async () => {
    const { paths, relay } = await setUp();
    // The first stop's wait ends before the relay answers.
    const first = await stop(paths, "Sub-PR A is open; CI is green.", { waitMs: 300 });
    expectCleanStop(first);
    expect(String(decisionOf(first)?.systemMessage)).toMatch(/no reply from the relay in time/);
    expect(relay.taken).toHaveLength(1);
    const earlier = relay.taken[0]?.id ?? "";
    relay.reply("session-1", earlier, "Rebase on main first.");
    await waitFor(() => exists(inputPath(paths.root, "session-1")), { what: "the late reply in input.txt" });

    // The next stop gets it labelled, first, then the reply to its own message.
    relay.answer = (e) => `Answer to “${e.content}”.`;
    const out = await stop(paths, "Rebased; sub-PR B is open.");
    const h = stopHandoverOf(out);
    expect(h.sections).toHaveLength(2);
    expect(h.sections[0]?.heading).toMatch(
      /^A late reply from the reviewer to your earlier message of \d{4}-\d\d-\d\d \d\d:\d\d UTC \(“Sub-PR A is open; CI is green\.”\)\. It is NOT the reply to your latest message:$/,
    );
    expect(h.sections[0]?.body).toBe("Rebase on main first.");
    expect(h.answer).toBe("Answer to “Rebased; sub-PR B is open.”.");
    // The hooks' inbox knows which envelope each answers.
    expect((await listItems(paths, "session-1")).map((s) => s.item.inReplyTo)).toEqual([earlier, relay.taken[1]?.id]);
    expect(relay.taken.map((e) => e.content)).toEqual(["Sub-PR A is open; CI is green.", "Rebased; sub-PR B is open."]);
    expect(await readdir(sentDir(paths, "session-1"))).toEqual([]);
  });

  it("a late reply that arrives while the next stop waits is acknowledged at once, so the answer can follow", async () => {
    const { paths, relay } = await setUp();
    expectCleanStop(await stop(paths, "First report.", { waitMs: 200 }));
    const earlier = relay.taken[0]?.id ?? "";
    const pending = stop(paths, "Second report.");
    await waitFor(() => relay.taken.length === 2, { what: "the second envelope" });
    const current = relay.taken[1]?.id ?? "";
    // In order: the late reply first, then the answer, which the relay can only deliver once the
    // hook has acknowledged the late one.
    relay.reply("session-1", earlier, "Reply to the first report.");
    relay.reply("session-1", current, "Reply to the second report.");
    const h = stopHandoverOf(await pending);
    expect(h.sections.map((s) => s.body)).toEqual(["Reply to the first report.", "Reply to the second report."]);
    expect(h.sections[0]?.heading).toMatch(/^A late reply .*“First report\.”/);
    expect(h.answer).toBe("Reply to the second report.");
  });

  it("two hooks on one session each get the reply to their own envelope", async () => {
    const { paths, relay, cc } = await setUp();
    // Either hook may see the other's reply first: the relay takes envelopes by mtime, so the
    // second hook's envelope may be answered first. Both orders, each reply left to its owner
    // while the other hook waits (the reply to the other is handed over once that one has
    // returned, so neither sees the other's reply still unhanded in the inbox).
    for (const firstAnswered of ["A", "B"] as const) {
      relay.taken.length = 0;
      const a = stop(paths, "Report from A.", { waitMs: 10_000, cc });
      await waitFor(() => relay.taken.length === 1, { what: "A's envelope" });
      const b = stop(paths, "Report from B.", { waitMs: 10_000, cc });
      await waitFor(() => relay.taken.length === 2, { what: "B's envelope" });
      const [ea, eb] = relay.taken;
      expect(ea?.content).toBe("Report from A.");
      expect(ea?.id).not.toBe(eb?.id);
      const hooks = { A: { id: ea?.id ?? "", text: "For A only.", out: a }, B: { id: eb?.id ?? "", text: "For B only.", out: b } };
      const order = firstAnswered === "A" ? (["A", "B"] as const) : (["B", "A"] as const);
      for (const who of order) {
        const hook = hooks[who];
        relay.reply("session-1", hook.id, hook.text);
        const out = await hook.out;
        expect(answerOf(out)).toBe(hook.text);
        await cc.received(out);
      }
      expect(await exists(inputPath(paths.root, "session-1"))).toBe(false);
    }
  });

  it("leaves to a live hook the reply it waits for, even while that hook is not looking", async () => {
    const { paths, relay } = await setUp();
    // Hook A runs as Claude Code runs it, in a process of its own, which is then frozen: alive,
    // still waiting, but not looking at input.txt.
    const a = spawn(process.execPath, [BIN, "hook", "claude-stop", "--session", "session-1", "--root", paths.root, "--timeout", "30"], {
      env: await childEnv(),
      stdio: ["pipe", "pipe", "pipe"],
    });
    children.add(a);
    let outA = "";
    a.stdout.on("data", (d: Buffer) => (outA += d.toString()));
    const exitA = new Promise<number | null>((resolve) => a.on("close", resolve));
    a.stdin.end(stopInput("Report from A."));
    await waitFor(() => relay.taken.length === 1, { what: "A's envelope", timeoutMs: 30_000 });
    a.kill("SIGSTOP");

    const b = stop(paths, "Report from B.", { waitMs: 20_000 });
    await waitFor(() => relay.taken.length === 2, { what: "B's envelope" });
    relay.reply("session-1", relay.taken[0]?.id ?? "", "For A only.");
    await waitFor(() => exists(inputPath(paths.root, "session-1")), { what: "A's reply in input.txt" });
    await sleep(20 * POLL); // B looks at A's reply many times over
    expect(await readFile(inputPath(paths.root, "session-1"), "utf8")).toBe("For A only.");

    a.kill("SIGCONT");
    expect(await exitA).toBe(0);
    expect(answerOf({ stdout: outA.trim(), stderr: [], exitCode: 0 })).toBe("For A only.");
    relay.reply("session-1", relay.taken[1]?.id ?? "", "For B only.");
    expect(answerOf(await b)).toBe("For B only.");
  }, 40_000);
});

describe("a hand-over counts once Claude Code has it (the transcript)", () => {
  it("keeps a taken reply in the hooks' inbox until the transcript shows it delivered, then forgets it", async () => {
    const { paths, relay, cc } = await setUp();
    relay.answer = () => "Open sub-PR B.";
    const out = await stop(paths, "Sub-PR A is open.", { cc });
    expect(answerOf(out)).toBe("Open sub-PR B.");
    expect(await exists(inputPath(paths.root, "session-1"))).toBe(false);
    const [kept] = await listItems(paths, "session-1");
    expect(kept?.item).toMatchObject({ replyId: "r-1", text: "Open sub-PR B.", handed: { ccSession: CC_SESSION, transcript: cc.path, channel: "stop-context" } });

    await cc.received(out, "Sub-PR B is open.");
    relay.answer = () => "Now the migration.";
    const next = await stop(paths, "Sub-PR B is open.", { cc });
    expect(answerOf(next)).toBe("Now the migration."); // the delivered one is not handed again
    expect((await listItems(paths, "session-1")).map((s) => s.item.replyId)).toEqual(["r-2"]);
  });

  it("hands a reply Claude Code dropped over again at the next stop, labelled, before the new answer", async () => {
    const { paths, relay, cc } = await setUp();
    relay.answer = () => "DROPPED: please refactor the parser.";
    const first = await stop(paths, "The parser is written.", { cc });
    expect(answerOf(first)).toBe("DROPPED: please refactor the parser.");
    // Claude Code ended the run (--max-turns, its block cap): the transcript never shows it.
    await cc.hookSuccess(first.stdout ?? "");

    relay.answer = () => "Then add a test.";
    const second = stopHandoverOf(await stop(paths, "Second task done.", { cc }));
    expect(second.sections.map((s) => [s.replyId, s.body])).toEqual([
      ["r-1", "DROPPED: please refactor the parser."],
      ["r-2", "Then add a test."],
    ]);
    expect(second.sections[0]?.heading).toMatch(/^A late reply from the reviewer to your earlier message .*“The parser is written\.”/);
    expect(second.answer).toBe("Then add a test.");
  });

  it("hands a dropped reply over again at the next session start, once", async () => {
    const { paths, relay, cc } = await setUp();
    relay.answer = () => "DROPPED-THEN-REDELIVERED";
    const first = await stop(paths, "First run's answer.", { cc });
    expect(answerOf(first)).toBe("DROPPED-THEN-REDELIVERED");

    // A new run in the same Claude Code session: SessionStart hands it over again.
    const again = await start(paths, { transcript: cc.path, source: "resume" });
    const h = parseHandover(startContextOf(again));
    expect(h.sections.map((s) => [s.replyId, s.body])).toEqual([["r-1", "DROPPED-THEN-REDELIVERED"]]);
    expect(h.note).toMatch(/arrived while this session was not waiting \(session resume\)/);
    expect((await listItems(paths, "session-1"))[0]?.item.handed).toMatchObject({ channel: "start-context", transcript: cc.path });

    // This time Claude Code shows it to the model: the next start and stop do not hand it again.
    await cc.received(again, "Refactoring.");
    expect(await start(paths, { transcript: cc.path })).toEqual({ stdout: null, stderr: [], exitCode: 0 });
    relay.answer = () => "Good.";
    expect(answerOf(await stop(paths, "Refactored.", { cc }))).toBe("Good.");
  });

  it("keeps a hand-over queued in the same session's transcript, and hands it to another session", async () => {
    const { paths, relay, cc } = await setUp();
    relay.answer = () => "Queued instruction.";
    const out = await stop(paths, "Report.", { cc });
    // In the transcript, not yet answered by the model: it sees it with its next request.
    await cc.shown(out);
    expect(await start(paths, { transcript: cc.path })).toEqual({ stdout: null, stderr: [], exitCode: 0 });
    expect(await listItems(paths, "session-1")).toHaveLength(1);

    // Another Claude Code session (this one ended) is handed it: it is in no history of its own.
    const other = await FakeTranscript.create("5b2e9c47-8f1a-4d3b-a6c0-2e7f9d1b3c58");
    expect((await runEndHookFor(paths, CC_SESSION)).exitCode).toBe(0);
    const h = parseHandover(startContextOf(await start(paths, { ccSession: other.ccSession, transcript: other.path, source: "startup" })));
    expect(h.sections.map((s) => s.body)).toEqual(["Queued instruction."]);
  });
});

describe("one Claude Code session per relay session", () => {
  const SECOND = "5b2e9c47-8f1a-4d3b-a6c0-2e7f9d1b3c58";

  it("refuses a Stop from a second Claude Code session while the first is bound: told so, nothing relayed, nothing taken", async () => {
    const { paths, relay, cc } = await setUp();
    relay.answer = () => "For the first session.";
    expect(answerOf(await stop(paths, "First session's report.", { cc }))).toBe("For the first session.");
    expect(relay.taken).toHaveLength(1);

    await sittingReply(paths, "session-1", "Waiting for the first session.", { reply_id: "r-77", in_reply_to: null, source: "jc-direct" });
    const refused = await stop(paths, "Second session's report.", { ccSession: SECOND });
    expectCleanStop(refused);
    expect(String(decisionOf(refused)?.systemMessage)).toMatch(new RegExp(`relay session session-1 is bound to another Claude Code session \\(${CC_SESSION}, last seen .*\\); this session's message was not relayed and it stops`));
    expect(relay.taken).toHaveLength(1);
    expect(await readFile(inputPath(paths.root, "session-1"), "utf8")).toBe("Waiting for the first session.");
    // Nor does its SessionStart take anything.
    const startRefused = await start(paths, { ccSession: SECOND });
    expect(startRefused.stdout).toBeNull();
    expect(startRefused.stderr.join("\n")).toMatch(/bound to Claude Code session/);
    expect(await exists(inputPath(paths.root, "session-1"))).toBe(true);
  });

  it("SessionEnd releases the binding, and only the bound session's end does", async () => {
    const { paths, relay, cc } = await setUp();
    relay.answer = () => "ok";
    expect(answerOf(await stop(paths, "First.", { cc }))).toBe("ok");
    // The second session's end releases nothing.
    expect(await runEndHookFor(paths, SECOND)).toEqual({ stdout: null, stderr: [], exitCode: 0 });
    expectCleanStop(await stop(paths, "Second.", { ccSession: SECOND }));
    const ended = await runEndHookFor(paths, CC_SESSION);
    expect(ended.exitCode).toBe(0);
    expect(ended.stderr.join("\n")).toMatch(`released by Claude Code session ${CC_SESSION}`);
    // Now the second session is relayed, and is handed the first one's undelivered reply too.
    relay.answer = () => "Welcome, second session.";
    const h = stopHandoverOf(await stop(paths, "Second, again.", { ccSession: SECOND }));
    expect(h.sections.map((s) => s.body)).toEqual(["ok", "Welcome, second session."]);
    expect(relay.taken.map((e) => e.content)).toEqual(["First.", "Second, again."]);
    // A SessionEnd without a session_id releases nothing.
    expect((await runEndHook({ paths, session: "session-1", input: "{}" })).stderr.join("")).toMatch(/without a session_id/);
  });

  it("a bound session not seen for releaseAfterMs is taken to be gone", async () => {
    const { paths, relay, cc } = await setUp();
    relay.answer = () => "ok";
    const first = await stop(paths, "First.", { cc, releaseAfterMs: 300 });
    expect(answerOf(first)).toBe("ok");
    await cc.received(first);
    expectCleanStop(await stop(paths, "Second.", { ccSession: SECOND, releaseAfterMs: 60_000 }));
    await sleep(500);
    expect(answerOf(await stop(paths, "Second, later.", { ccSession: SECOND, releaseAfterMs: 300 }))).toBe("ok");
  });
});

describe("what holds the Stop hook (state/status.json)", () => {
  it("stops cleanly when its own conversation has an open question", async () => {
    const { paths, relay } = await setUp();
    relay.answer = () => "should not be sent";
    // session-2 asked, in the conversation session-1 shares.
    await writeStatus(paths, statusWith({ questions: [{ id: "q-7", session: "session-2", conversation: "shared", question: "Merge #438 before the freeze?" }] }));
    const out = await stop(paths, "Sub-PR A is open.");
    expectCleanStop(out);
    expect(String(decisionOf(out)?.systemMessage)).toMatch(/JC is needed.*session-2's question q-7.*Merge #438 before the freeze\?/);
    expect(out.stderr.join("\n")).toMatch(/relay jc --question q-7/);
    expect(relay.taken).toEqual([]);
  });

  it("stops cleanly, handing nothing over, when its own message opens a question while it waits", async () => {
    const { paths, relay } = await setUp();
    const pending = stop(paths, "Migration ready: DROP TABLE legacy_orders.");
    await waitFor(() => relay.taken.length === 1, { what: "the envelope" });
    await writeStatus(paths, statusWith({ questions: [{ id: "q-1", session: "session-1", conversation: "shared", question: "[NEEDS-JC] This drops a production table." }] }));
    const out = await pending;
    expectCleanStop(out);
    expect(String(decisionOf(out)?.systemMessage)).toMatch(/JC is needed.*q-1.*drops a production table.*comes at a later stop or session start; the agent stops/);
    // Its envelope is now a late one: JC's answer reaches the next stop, labelled.
    expect(await readdir(sentDir(paths, "session-1"))).toHaveLength(1);
  });

  it("goes on when another conversation has a question", async () => {
    const { paths, relay } = await setUp();
    relay.answer = () => "Carry on with sub-PR B.";
    await writeStatus(paths, statusWith({ questions: [{ id: "q-3", session: "session-3", conversation: "session-3", question: "Ship session-3's change?" }] }));
    expect(answerOf(await stop(paths, "Sub-PR A is open."))).toBe("Carry on with sub-PR B.");
    // And session-3 itself, whose conversation asked, stops.
    expectCleanStop(await stop(paths, "Session-3 report.", { session: "session-3" }));
    expect(relay.taken.map((e) => e.session)).toEqual(["session-1"]);
  });

  it("stops cleanly while API calls are paused", async () => {
    const { paths, relay } = await setUp();
    await writeStatus(paths, statusWith({ paused: "credit balance exhausted" }));
    const out = await stop(paths, "Sub-PR A is open.");
    expectCleanStop(out);
    expect(String(decisionOf(out)?.systemMessage)).toMatch(/API calls are paused \(credit balance exhausted\).*relay resume/);
    expect(relay.taken).toEqual([]);
  });

  it("stops at once, saying so, while API calls back off past its deadline; a shorter back-off is waited out", async () => {
    const { paths, relay } = await setUp();
    relay.answer = () => "After the back-off.";
    const until = Date.now() + 3_600_000;
    await writeStatus(paths, statusWith({ backingOff: { until, message: "529 overloaded" } }));
    const started = Date.now();
    const out = await stop(paths, "Sub-PR A is open.", { waitMs: 10_000 });
    expect(Date.now() - started).toBeLessThan(5_000);
    expectCleanStop(out);
    const clock = new Date(until).toISOString().slice(11, 19);
    expect(String(decisionOf(out)?.systemMessage)).toContain(`API calls back off until ${clock} UTC (529 overloaded); your latest message was not relayed; the agent stops. The relay retries by itself.`);
    expect(relay.taken).toEqual([]);

    // A back-off that ends before the hook's deadline is no hold.
    await writeStatus(paths, statusWith({ backingOff: { until: Date.now() + 1_000, message: "529 overloaded" } }));
    expect(answerOf(await stop(paths, "Sub-PR A is open.", { waitMs: 10_000 }))).toBe("After the back-off.");
  });

  it("goes on when status.json is absent or unreadable (a relay that does not write it yet)", async () => {
    const { paths, relay, cc } = await setUp();
    relay.answer = () => "Go on.";
    expect(await exists(join(paths.state, "status.json"))).toBe(false);
    const one = await stop(paths, "One.", { cc });
    expect(answerOf(one)).toBe("Go on.");
    await cc.received(one);
    await writeFile(join(paths.state, "status.json"), "{not json");
    expect(answerOf(await stop(paths, "Two.", { cc }))).toBe("Go on.");
  });

  it("hands over what was waiting with the note when it stops for a hold", async () => {
    const { paths, relay } = await setUp();
    relay.answer = () => "should not be sent";
    await sittingReply(paths, "session-1", "JC: good work so far.", { reply_id: "r-9", source: "jc-direct" });
    await writeStatus(paths, statusWith({ paused: "credit balance exhausted" }));
    const h = stopHandoverOf(await stop(paths, "Sub-PR A is open."));
    expect(h.sections.map((s) => s.body)).toEqual(["JC: good work so far."]);
    expect(h.note).toMatch(/^\(relay: API calls are paused \(credit balance exhausted\)/);
    expect(relay.taken).toEqual([]);
  });
});

describe("wake mode (a background hook that wakes the session)", () => {
  it("hands the reply over as exit 2 with the text on stderr, and is the session's waiter while it waits", async () => {
    const { paths, relay } = await setUp();
    const pending = stop(paths, "Sub-PR A is open.", { mode: "wake", waitMs: 10_000 });
    await waitFor(() => relay.taken.length === 1, { what: "the envelope" });
    const waiter = JSON.parse(await readFile(join(paths.state, "hooks", "session-1.waiter.json"), "utf8")) as { pid: number; ccSession: string };
    expect(waiter).toMatchObject({ pid: process.pid, ccSession: CC_SESSION });
    relay.reply("session-1", relay.taken[0]?.id ?? "", "Woken: now sub-PR B.");
    const out = await pending;
    expect(out.exitCode).toBe(2);
    expect(out.stdout).toBeNull();
    expect(out.stderr).toHaveLength(1);
    const h = parseHandover(out.stderr[0] ?? "");
    expect(h.answer).toBe("Woken: now sub-PR B.");
    expect((await listItems(paths, "session-1"))[0]?.item.handed?.channel).toBe("wake");
    expect(await exists(join(paths.state, "hooks", "session-1.waiter.json"))).toBe(false);
  });

  it("waits through a hold instead of stopping, and hands over what was waiting at once", async () => {
    const { paths, relay, cc } = await setUp();
    await writeStatus(paths, statusWith({ questions: [{ id: "q-2", session: "session-1", conversation: "shared", question: "Ship?" }] }));
    const pending = stop(paths, "Sub-PR A is open.", { mode: "wake", waitMs: 10_000, cc });
    await waitFor(() => relay.taken.length === 1, { what: "the envelope" });
    await sleep(10 * POLL); // the hold is seen, and does not end the wait
    relay.reply("session-1", relay.taken[0]?.id ?? "", "JC said yes: ship it.", "jc-chat");
    const out = await pending;
    expect(out.exitCode).toBe(2);
    expect(parseHandover(out.stderr[0] ?? "").answer).toBe("JC said yes: ship it.");
    await cc.received(out);

    // With a reply already waiting, it hands that over at once; the answer follows later.
    await sittingReply(paths, "session-1", "JC: one more thing.", { reply_id: "r-50", source: "jc-direct" });
    const now = await stop(paths, "Shipped.", { mode: "wake", waitMs: 10_000, cc });
    expect(now.exitCode).toBe(2);
    const h = parseHandover(now.stderr[0] ?? "");
    expect(h.sections.map((s) => s.body)).toEqual(["JC: one more thing."]);
    expect(h.note).toMatch(/reply to your latest message will follow separately/);
    // Its own message went to the relay before it returned.
    await waitFor(() => relay.taken.length === 2, { what: "the second envelope" });
    expect(relay.taken.map((e) => e.content)).toEqual(["Sub-PR A is open.", "Shipped."]);
  });

  it("a newer wake-mode hook replaces the waiting one; SessionEnd ends the waiter and releases the session", async () => {
    const { paths, relay, cc } = await setUp();
    const spawnWake = async (message: string): Promise<{ child: ChildProcess; exit: Promise<number | null>; out: () => { stdout: string; stderr: string } }> => {
      const child = spawn(process.execPath, [BIN, "hook", "claude-stop", "--session", "session-1", "--root", paths.root, "--mode", "wake", "--timeout", "60"], {
        env: await childEnv(),
        stdio: ["pipe", "pipe", "pipe"],
      });
      children.add(child);
      let stdout = "";
      let stderr = "";
      child.stdout?.on("data", (d: Buffer) => (stdout += d.toString()));
      child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
      const exit = new Promise<number | null>((resolve) => child.on("close", resolve));
      child.stdin?.end(stopInput(message, { transcript: cc.path }));
      return { child, exit, out: () => ({ stdout, stderr }) };
    };
    const waiterPid = async (): Promise<number | null> => {
      try {
        return (JSON.parse(await readFile(join(paths.state, "hooks", "session-1.waiter.json"), "utf8")) as { pid: number }).pid;
      } catch {
        return null;
      }
    };

    const a = await spawnWake("Report from A.");
    await waitFor(async () => relay.taken.length === 1 && (await waiterPid()) === a.child.pid, { what: "A waiting", timeoutMs: 30_000 });
    const b = await spawnWake("Report from B.");
    // A is ended (quietly: exit 0, nothing on stdout) and B becomes the waiter.
    expect(await a.exit).toBe(0);
    expect(a.out().stdout).toBe("");
    await waitFor(async () => relay.taken.length === 2 && (await waiterPid()) === b.child.pid, { what: "B waiting", timeoutMs: 30_000 });
    // The reply to A's message is now a late one, handed over labelled with B's answer.
    relay.reply("session-1", relay.taken[0]?.id ?? "", "For A.");
    relay.reply("session-1", relay.taken[1]?.id ?? "", "For B.");
    expect(await b.exit).toBe(2);
    const h = parseHandover(b.out().stderr.trimEnd());
    expect(h.sections.map((s) => s.body)).toEqual(["For A.", "For B."]);
    expect(h.sections[0]?.heading).toMatch(/^A late reply .*“Report from A\.”/);
    expect(h.answer).toBe("For B.");
    await cc.received({ stdout: null, stderr: [b.out().stderr.trimEnd()], exitCode: 2 });

    // SessionEnd ends a waiting hook and releases the relay session.
    const c = await spawnWake("Report from C.");
    await waitFor(async () => relay.taken.length === 3 && (await waiterPid()) === c.child.pid, { what: "C waiting", timeoutMs: 30_000 });
    const ended = await runEndHookFor(paths, CC_SESSION);
    expect(ended.stderr.join("")).toMatch(/released/);
    expect(await c.exit).toBe(0);
    expect(c.out().stdout).toBe("");
    expect(await exists(join(paths.state, "hooks", "session-1.waiter.json"))).toBe(false);
    expect(await exists(join(paths.state, "hooks", "session-1.binding.json"))).toBe(false);
  }, 60_000);
});

describe("the SessionStart hook", () => {
  it("hands a late reply over saying which message it answers", async () => {
    const { paths, relay } = await setUp();
    expectCleanStop(await stop(paths, "Sub-PR A is open.", { waitMs: 200 }));
    relay.reply("session-1", relay.taken[0]?.id ?? "", "Rebase on main first.");
    await waitFor(() => exists(inputPath(paths.root, "session-1")), { what: "the late reply" });
    const h = parseHandover(startContextOf(await start(paths)));
    expect(h.sections).toHaveLength(1);
    expect(h.sections[0]?.heading).toMatch(/^A late reply from the reviewer to your earlier message of .* \(“Sub-PR A is open\.”\)\. It is NOT the reply to your latest message:$/);
    expect(h.sections[0]?.body).toBe("Rebase on main first.");
    expect(h.note).toBe("(relay: this reply arrived while this session was not waiting (session resume); treat it as your next instruction.)");
    expect(await exists(inputPath(paths.root, "session-1"))).toBe(false);
    expect(await readdir(handoverDir(paths, "session-1"))).toHaveLength(1);
  });

  it("leaves a reply that a live Stop hook waits for to that hook", async () => {
    const { paths } = await setUp();
    // A Stop hook (this process) waits for the reply to its envelope.
    await recordSent(paths, "session-1", { id: "cc-9a0f6c1e-live-000001", message: "Sub-PR A is open.", deadline: Date.now() + 60_000 });
    await sittingReply(paths, "session-1", "For the waiting Stop hook.", { in_reply_to: "cc-9a0f6c1e-live-000001" });
    expect(await start(paths)).toEqual({ stdout: null, stderr: [], exitCode: 0 });
    expect(await readFile(inputPath(paths.root, "session-1"), "utf8")).toBe("For the waiting Stop hook.");
    // Once that hook has given up, the reply is a late one and the next session start takes it.
    await abandonSent(paths, "session-1", "cc-9a0f6c1e-live-000001");
    const context = startContextOf(await start(paths));
    expect(context.startsWith(RELAY_INTRO)).toBe(true);
    expect(context).toContain("For the waiting Stop hook.");
  });
});

function runEndHookFor(paths: RelayPaths, ccSession: string): Promise<HookOutcome> {
  return runEndHook({ paths, session: "session-1", input: JSON.stringify({ session_id: ccSession, hook_event_name: "SessionEnd", reason: "other" }) });
}
