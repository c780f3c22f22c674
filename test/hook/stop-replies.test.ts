// The Stop hook's promises about whose reply it hands over (CONTRACT §5, §10), kept at the unit
// level: runStopHook / runStartHook in this process against a temporary root, with a fake relay
// that holds state/.lock, takes queue/, and writes dispatch/<session>/input.json then input.txt
// the way the contract says (one reply at a time per session, in order, never overwritten), and
// a hand-written state/status.json checked against the real schema.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdir, readdir, readFile, rename, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { type HookOutcome, runStartHook, runStopHook } from "../../src/claude-code/hook.js";
import { abandonSent, hookEnvelopeId, recordSent, sentDir } from "../../src/claude-code/sent-envelopes.js";
import { ENVELOPE_ID } from "../../src/transport/file/queue.js";
import { loadConfig } from "../../src/config/config.js";
import { relayPaths, type RelayPaths } from "../../src/config/paths.js";
import { type QuestionView, type StatusFile, statusFileSchema } from "../../src/status/status-file.js";
import { acquireLock, type HeldLock } from "../../src/store/lock.js";
import type { ReplyMeta, ReplySource } from "../../src/transport/file/reply-meta.js";
import { BIN, childEnv, configYaml, exists, inputPath, makeRoot, removeRoots, waitFor } from "../support/cli.js";

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

function statusWith(opts: { questions?: Omit<QuestionView, "since" | "kind">[]; paused?: string } = {}): StatusFile {
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
    state: first ? "needsJc" : opts.paused ? "paused" : "idle",
    needsJc: first ? { id: first.id, session: first.session, question: first.question, since: now } : null,
    questions,
    conversations: { shared: conversation("shared", ["session-1", "session-2"]), "session-3": conversation("session-3", ["session-3"]) },
    sessions: {
      "session-1": { pending: 0, conversation: "shared" },
      "session-2": { pending: 0, conversation: "shared" },
      "session-3": { pending: 0, conversation: "session-3" },
    },
    history: { chars: 0, turns: 0 },
    lastError: opts.paused ? { message: opts.paused, at: now } : null,
    retry: opts.paused ? { kind: "permanent", attempt: 1, nextTryAt: now, since: now, message: opts.paused } : null,
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
    c.kill("SIGKILL");
    await closed;
  }
  children.clear();
  for (const r of relays.splice(0)) await r.stop();
});
afterAll(removeRoots);

const SESSIONS = ["session-1", "session-2", { id: "session-3", systemPrompt: "You review session-3 on its own." }];

async function setUp(): Promise<{ paths: RelayPaths; relay: FakeRelay }> {
  const paths = relayPaths(await makeRoot({ config: configYaml({ sessions: SESSIONS }) }));
  const relay = await FakeRelay.start(paths);
  relays.push(relay);
  return { paths, relay };
}

const stopInput = (message: string, fields: { stop_hook_active?: boolean } = {}) =>
  JSON.stringify({
    session_id: CC_SESSION,
    transcript_path: "/nonexistent/transcript.jsonl",
    cwd: "/home/jc/project",
    permission_mode: "default",
    hook_event_name: "Stop",
    stop_hook_active: fields.stop_hook_active ?? false,
    last_assistant_message: message,
  });

function stop(paths: RelayPaths, message: string, opts: { session?: string; waitMs?: number } = {}): Promise<HookOutcome> {
  return runStopHook({
    paths,
    session: opts.session ?? "session-1",
    input: stopInput(message),
    deadline: Date.now() + (opts.waitMs ?? 5_000),
    maxTurns: 8,
    loadConfig: () => loadConfig(paths, {}, { seed: false }),
    pollMs: POLL,
  });
}

const decisionOf = (o: HookOutcome): Record<string, unknown> | null => (o.stdout === null ? null : (JSON.parse(o.stdout) as Record<string, unknown>));
const reasonOf = (o: HookOutcome): string => {
  const d = decisionOf(o);
  expect(d?.decision).toBe("block");
  return String(d?.reason);
};
function expectCleanStop(o: HookOutcome): void {
  expect(o.exitCode).toBe(0);
  expect(decisionOf(o)?.decision).toBeUndefined();
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

const ANSWER_HEADING = "The reply to your latest message:";

// ---------------------------------------------------------------------------

describe("the Stop hook's envelope", () => {
  it("carries an id of its own, made from the Claude Code session id, that the contract accepts", async () => {
    const { paths, relay } = await setUp();
    relay.answer = (e) => `ok: ${e.content}`;
    const out = await stop(paths, "Sub-PR A is open.");
    expect(reasonOf(out)).toBe("ok: Sub-PR A is open.");
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
    const { paths, relay } = await setUp();
    // A reply to an envelope `relay send` dropped for this session sits in input.txt.
    await sittingReply(paths, "session-1", "Reply to s1-0042: merge #438.", { in_reply_to: "s1-0042" });
    relay.answer = (e) => `Answer to “${e.content}”: open sub-PR B.`;
    const reason = reasonOf(await stop(paths, "Sub-PR A is open."));
    const [before, after] = reason.split(ANSWER_HEADING);
    expect(after?.trim()).toBe("Answer to “Sub-PR A is open.”: open sub-PR B.");
    expect(before).toContain("Reply to s1-0042: merge #438.");
    expect(before).toMatch(/envelope s1-0042.*NOT the reply to your latest message/);
    expect(await exists(inputPath(paths.root, "session-1"))).toBe(false);

    // Without the reply to its own envelope, another reply is never presented as the answer.
    relay.answer = null;
    await sittingReply(paths, "session-1", "Reply to s1-0043: rebase.", { in_reply_to: "s1-0043" });
    const timedOut = reasonOf(await stop(paths, "Sub-PR B is open.", { waitMs: 400 }));
    expect(timedOut).toContain("Reply to s1-0043: rebase.");
    expect(timedOut).not.toContain(ANSWER_HEADING);
    expect(timedOut).toMatch(/reply to your latest message has not come yet \(no reply from the relay in time\)/);
  });

  it("never takes a reply without input.json for the answer (a relay older than contract version 2)", async () => {
    const { paths, relay } = await setUp();
    await sittingReply(paths, "session-1", "Unlabelled reply.", null);
    relay.answer = () => "The answer.";
    const reason = reasonOf(await stop(paths, "Sub-PR A is open."));
    expect(reason).toMatch(/does not say which message it answers.*NOT the reply to your latest message:\n\nUnlabelled reply\./);
    expect(reason.endsWith(`${ANSWER_HEADING}\n\nThe answer.`)).toBe(true);
  });

  it("hands JC's own message (in_reply_to null) over labelled as JC's, before the answer", async () => {
    const { paths, relay } = await setUp();
    relay.reply("session-1", null, "JC: pause after this PR.", "jc-direct");
    await waitFor(() => exists(inputPath(paths.root, "session-1")), { what: "JC's message in input.txt" });
    relay.answer = () => "The answer.";
    const reason = reasonOf(await stop(paths, "Sub-PR A is open."));
    expect(reason).toMatch(/^Also from the relay: a message from JC\. It is NOT the reply to your latest message:\n\nJC: pause after this PR\./);
    expect(reason.endsWith(`${ANSWER_HEADING}\n\nThe answer.`)).toBe(true);
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
    const reason = reasonOf(await stop(paths, "Rebased; sub-PR B is open."));
    const [late, answer] = reason.split(ANSWER_HEADING);
    expect(late).toMatch(/^Late reply: the reply to your earlier message “Sub-PR A is open; CI is green\.”/);
    expect(late).toContain(`envelope ${earlier}`);
    expect(late).toMatch(/arrived after that wait had ended\. It is NOT the reply to your latest message:\n\nRebase on main first\./);
    expect(answer?.trim()).toBe("Answer to “Rebased; sub-PR B is open.”.");
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
    const reason = reasonOf(await pending);
    expect(reason.indexOf("Reply to the first report.")).toBeLessThan(reason.indexOf(ANSWER_HEADING));
    expect(reason.endsWith(`${ANSWER_HEADING}\n\nReply to the second report.`)).toBe(true);
  });

  it("two hooks on one session each get the reply to their own envelope", async () => {
    const { paths, relay } = await setUp();
    // Either hook may see the other's reply first: the relay takes envelopes by mtime, so the
    // second hook's envelope may be answered first. Both orders, each reply left to its owner.
    for (const firstAnswered of ["A", "B"] as const) {
      relay.taken.length = 0;
      const a = stop(paths, "Report from A.", { waitMs: 8_000 });
      await waitFor(() => relay.taken.length === 1, { what: "A's envelope" });
      const b = stop(paths, "Report from B.", { waitMs: 8_000 });
      await waitFor(() => relay.taken.length === 2, { what: "B's envelope" });
      const [ea, eb] = relay.taken;
      expect(ea?.content).toBe("Report from A.");
      expect(ea?.id).not.toBe(eb?.id);
      const replies = [
        { id: ea?.id ?? "", text: "For A only." },
        { id: eb?.id ?? "", text: "For B only." },
      ];
      if (firstAnswered === "B") replies.reverse();
      for (const r of replies) relay.reply("session-1", r.id, r.text);
      const [outA, outB] = await Promise.all([a, b]);
      expect(reasonOf(outA)).toBe("For A only.");
      expect(reasonOf(outB)).toBe("For B only.");
      expect(await exists(inputPath(paths.root, "session-1"))).toBe(false);
    }
  });

  it("leaves to a live hook the reply it waits for, even while that hook is not looking", async () => {
    const { paths, relay } = await setUp();
    // Hook A runs as Claude Code runs it, in a process of its own, which is then frozen: alive,
    // still waiting, but not looking at input.txt.
    const a = spawn(process.execPath, [BIN, "hook", "claude-stop", "--session", "session-1", "--root", paths.root, "--timeout", "15"], {
      env: await childEnv(),
      stdio: ["pipe", "pipe", "pipe"],
    });
    children.add(a);
    let outA = "";
    a.stdout.on("data", (d: Buffer) => (outA += d.toString()));
    const exitA = new Promise<number | null>((resolve) => a.on("close", resolve));
    a.stdin.end(stopInput("Report from A."));
    await waitFor(() => relay.taken.length === 1, { what: "A's envelope" });
    a.kill("SIGSTOP");

    const b = stop(paths, "Report from B.", { waitMs: 10_000 });
    await waitFor(() => relay.taken.length === 2, { what: "B's envelope" });
    relay.reply("session-1", relay.taken[0]?.id ?? "", "For A only.");
    relay.reply("session-1", relay.taken[1]?.id ?? "", "For B only.");
    await waitFor(() => exists(inputPath(paths.root, "session-1")), { what: "A's reply in input.txt" });
    await sleep(20 * POLL); // B looks at A's reply many times over
    expect(await readFile(inputPath(paths.root, "session-1"), "utf8")).toBe("For A only.");

    a.kill("SIGCONT");
    expect(await exitA).toBe(0);
    expect(JSON.parse(outA)).toEqual({ decision: "block", reason: "For A only." });
    expect(reasonOf(await b)).toBe("For B only.");
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
    expect(String(decisionOf(out)?.systemMessage)).toMatch(/JC is needed.*q-1.*drops a production table.*handed over at the next stop or session start/);
    // Its envelope is now a late one: JC's answer reaches the next stop, labelled.
    expect(await readdir(sentDir(paths, "session-1"))).toHaveLength(1);
  });

  it("goes on when another conversation has a question", async () => {
    const { paths, relay } = await setUp();
    relay.answer = () => "Carry on with sub-PR B.";
    await writeStatus(paths, statusWith({ questions: [{ id: "q-3", session: "session-3", conversation: "session-3", question: "Ship session-3's change?" }] }));
    expect(reasonOf(await stop(paths, "Sub-PR A is open."))).toBe("Carry on with sub-PR B.");
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

  it("goes on when status.json is absent or unreadable (a relay that does not write it yet)", async () => {
    const { paths, relay } = await setUp();
    relay.answer = () => "Go on.";
    expect(await exists(join(paths.state, "status.json"))).toBe(false);
    expect(reasonOf(await stop(paths, "One."))).toBe("Go on.");
    await writeFile(join(paths.state, "status.json"), "{not json");
    expect(reasonOf(await stop(paths, "Two."))).toBe("Go on.");
  });
});

describe("the SessionStart hook", () => {
  const startInput = JSON.stringify({ session_id: CC_SESSION, transcript_path: "/t.jsonl", cwd: "/home/jc/project", hook_event_name: "SessionStart", source: "resume" });

  it("hands a late reply over saying which message it answers", async () => {
    const { paths, relay } = await setUp();
    expectCleanStop(await stop(paths, "Sub-PR A is open.", { waitMs: 200 }));
    relay.reply("session-1", relay.taken[0]?.id ?? "", "Rebase on main first.");
    await waitFor(() => exists(inputPath(paths.root, "session-1")), { what: "the late reply" });
    const out = await runStartHook({ paths, session: "session-1", input: startInput });
    const context = (JSON.parse(out.stdout ?? "{}") as { hookSpecificOutput: { additionalContext: string } }).hookSpecificOutput.additionalContext;
    expect(context).toMatch(/It is the reply to your earlier message “Sub-PR A is open\.”.*\n\nRebase on main first\.$/);
    expect(await exists(inputPath(paths.root, "session-1"))).toBe(false);
  });

  it("leaves a reply that a live Stop hook waits for to that hook", async () => {
    const { paths } = await setUp();
    // A Stop hook (this process) waits for the reply to its envelope.
    await recordSent(paths, "session-1", { id: "cc-9a0f6c1e-live-000001", message: "Sub-PR A is open.", deadline: Date.now() + 60_000 });
    await sittingReply(paths, "session-1", "For the waiting Stop hook.", { in_reply_to: "cc-9a0f6c1e-live-000001" });
    expect(await runStartHook({ paths, session: "session-1", input: startInput })).toEqual({ stdout: null, stderr: [], exitCode: 0 });
    expect(await readFile(inputPath(paths.root, "session-1"), "utf8")).toBe("For the waiting Stop hook.");
    // Once that hook has given up, the reply is a late one and the next session start takes it.
    await abandonSent(paths, "session-1", "cc-9a0f6c1e-live-000001");
    expect((await runStartHook({ paths, session: "session-1", input: startInput })).stdout).toContain("For the waiting Stop hook.");
  });
});
