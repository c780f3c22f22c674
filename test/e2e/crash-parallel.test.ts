// Nothing lost, nothing doubled with conversations in parallel (CONTRACT §5, §8): kill -9 while
// three calls of different conversations are in flight (the stand-in holds them; the test kills
// the daemon once it sees them), and while one conversation is writing its summary with another
// conversation's call in flight; then `relay run` again. Every envelope is answered exactly once
// in the history and dispatched exactly once, replies to a session in the order its envelopes
// were taken, and one conversation's envelope is never taken while an earlier one of the same
// conversation is unanswered, across the crashes.
import { readdir, readFile, unlink } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, describe, it, type TestContext } from "vitest";
import type { RecordedRequest } from "../support/fake-anthropic.js";
import {
  configYaml,
  type Daemon,
  dropEnvelope,
  exists,
  type HistoryLine,
  inputPath,
  killAll,
  lastUserText,
  makeRoot,
  messageTexts,
  queueNames,
  quiet,
  readHistory,
  Scope,
  secretsCheck,
  SUMMARIZATION_PROMPT,
  systemText,
  waitFor,
} from "../support/cli.js";

// Each test has its own root, fakes and daemons (a Scope, torn down as the test finishes), so the
// tests of this file run concurrently; killAll is the backstop.
afterAll(killAll);

/** Generous: a busy 2-core box runs several daemons of this file at once, and each starts in seconds. */
const LONG = 120_000;
const WAIT = 30_000;
/** What the stand-in holds "until released": the daemon is killed long before. */
const HELD_MS = 600_000;

const ago = (seconds: number): Date => new Date(Date.now() - seconds * 1000);
const conv = (session: string, own: readonly string[]): string => (own.includes(session) ? `session.${session}` : "shared");
/** A summary rides the conversation's cache: the summarization prompt is its last user turn. */
const isSummary = (r: RecordedRequest): boolean => messageTexts(r).at(-1)?.includes(SUMMARIZATION_PROMPT.trim()) ?? false;
/** The envelope id a reply request is about: the last `<id>` of its last user message. */
const itemOf = (r: RecordedRequest): string => [...lastUserText(r).matchAll(/<([\w-]+)>/g)].at(-1)?.[1] ?? "?";
const unanswered = (r: RecordedRequest): boolean => r.response.status === 0 && r.sentAt === undefined;

/** Sessions: `shared` share the default conversation, `own` have one each; plus extra YAML. */
function config(shared: string[], own: readonly string[], extra: string, keepRecentTurns = 10): string {
  return configYaml({ sessions: [...shared, ...own.map((id) => ({ id, systemPrompt: `You review ${id} alone.` }))], keepRecentTurns }) + extra;
}

/**
 * The stand-in answers each call differently (`answer to <id> #n`), so a repeated call would
 * show as a different reply; the summarization prompt gets `SUMMARY #n`.
 */
async function setUp(ctx: TestContext): Promise<Scope> {
  const scope = await Scope.create(ctx);
  let n = 0;
  scope.fake.setResponder((r) => (r.lastUserText.includes(SUMMARIZATION_PROMPT.trim()) ? `SUMMARY #${++n}` : `answer to <${[...r.lastUserText.matchAll(/<([\w-]+)>/g)].at(-1)?.[1] ?? "?"}> #${++n}`));
  return scope;
}

interface Envelope {
  session: string;
  id: string;
  content: string;
}

/** Drop the envelopes into queue/ oldest first (mtimes a second apart, in the given order). */
async function dropAll(root: string, envelopes: Envelope[]): Promise<void> {
  let age = 100 + envelopes.length;
  for (const e of envelopes) await dropEnvelope(root, `${e.id}.json`, { session_id: e.session, id: e.id, content: e.content }, ago(age--));
}

interface Seen {
  session: string;
  text: string;
  meta: { reply_id: string; in_reply_to: string | null; source: string } | null;
}

/** The CC side: takes each input.txt with the input.json beside it, then acknowledges it (deletes it). */
function ccSide(root: string, sessions: string[], ctx: TestContext) {
  const seen: Seen[] = [];
  let running = true;
  const done = (async () => {
    while (running) {
      for (const session of sessions) {
        const input = inputPath(root, session);
        let text: string;
        try {
          text = await readFile(input, "utf8");
        } catch {
          continue;
        }
        const meta = await readFile(join(root, "dispatch", session, "input.json"), "utf8").then((t) => JSON.parse(t) as Seen["meta"], () => null);
        await unlink(input);
        seen.push({ session, text, meta });
      }
      await sleep(20);
    }
  })();
  const stop = async () => {
    running = false;
    await done;
  };
  ctx.onTestFinished(stop);
  return { seen, stop };
}

async function killNow(d: Daemon): Promise<void> {
  d.child.kill("SIGKILL");
  const exit = await d.exited;
  if (exit.signal !== "SIGKILL") throw new Error(`the daemon exited with ${JSON.stringify(exit)} before the kill`);
}

/**
 * After the last restart: every envelope answered exactly once in the history (a turn in its
 * conversation, or folded into a summary that was written, `folded`), dispatched exactly once
 * with the reply the history holds and the input.json that names it; per session in the order
 * the envelopes were dropped; nothing left in queue/ or staged.
 */
async function expectExactlyOnce(ctx: TestContext, root: string, envelopes: Envelope[], seen: Seen[], own: readonly string[], folded: string[] = []): Promise<void> {
  const { expect } = ctx;
  const history = await readHistory(root);
  const turns = Object.entries(history).flatMap(([file, lines]) => lines.filter((l) => l.kind === "turn").map((l) => ({ ...l, conversation: file.replace(/\.jsonl$/, "") })));
  for (const e of envelopes) {
    const mine = turns.filter((t) => t.text === e.content);
    expect(mine.length + (folded.includes(e.id) ? 1 : 0), `${e.id} in the history`).toBe(1);
    const got = seen.filter((s) => s.meta?.in_reply_to === e.id);
    expect(got.map((s) => s.session), `${e.id} dispatched`).toEqual([e.session]);
    expect(got[0]?.text).toMatch(new RegExp(`^answer to <${e.id}> #\\d+$`));
    expect(got[0]?.meta?.source).toBe("envelope");
    if (mine[0]) {
      expect(mine[0].reply, `${e.id}: the dispatched reply is the one in the history`).toBe(got[0]?.text);
      expect(mine[0].conversation).toBe(conv(e.session, own));
    }
  }
  expect(turns).toHaveLength(envelopes.length - folded.length);
  expect(seen).toHaveLength(envelopes.length);
  expect(new Set(seen.map((s) => `${s.session} ${s.meta?.reply_id}`)).size).toBe(seen.length);
  for (const session of new Set(envelopes.map((e) => e.session))) {
    expect(
      seen.filter((s) => s.session === session).map((s) => s.meta?.in_reply_to),
      `replies to ${session} in the order its envelopes were taken`,
    ).toEqual(envelopes.filter((e) => e.session === session).map((e) => e.id));
    expect(await readdir(join(root, "dispatch", session))).toEqual(["input.json"]);
  }
  expect(await queueNames(root)).toEqual([]);
}

/** "envelope taken" lines of logs/relay.jsonl, across every run on the root. */
async function takenLog(root: string): Promise<{ envelope: string; time: number; pid: number }[]> {
  const raw = await readFile(join(root, "logs", "relay.jsonl"), "utf8");
  return raw
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as { msg: string; envelope?: string; time: number; pid: number })
    .filter((l) => l.msg === "envelope taken")
    .map((l) => ({ envelope: String(l.envelope), time: l.time, pid: l.pid }));
}

describe.concurrent("kill -9 with calls of several conversations in flight", () => {
  // Two sessions share the default conversation, three have their own: four conversations, three calls at most.
  const SHARED = ["session-1", "session-2"];
  const OWN = ["session-3", "session-4", "session-5"] as const;
  const SESSIONS = [...SHARED, ...OWN];
  /** Two envelopes a session, taken round by round: s1-1, s2-1, s3-1, …, s1-2, … */
  const backlog: Envelope[] = [1, 2].flatMap((round) => SESSIONS.map((s) => ({ session: s, id: `s${s.slice(-1)}-${round}`, content: `msg <s${s.slice(-1)}-${round}> from ${s}` })));

  it("answers and dispatches every envelope exactly once after a kill with the first three calls in flight", async (ctx) => {
    const { expect } = ctx;
    const scope = await setUp(ctx);
    const { fake } = scope;
    const root = await makeRoot({ config: config(SHARED, OWN, "max_parallel_calls: 3\n") });
    await dropAll(root, backlog);
    fake.setDelay(() => HELD_MS); // held until the test "releases" them: here, until the kill

    const first = await scope.start(root);
    await waitFor(() => fake.concurrency().inFlight === 3, { what: "three calls in flight", timeoutMs: WAIT });
    await sleep(300); // a fourth call would be over max_parallel_calls
    expect(fake.requests).toHaveLength(3);
    // Three different conversations, each with its oldest envelope.
    const firstItems = fake.requests.map(itemOf).sort();
    expect(firstItems.every((id) => id.endsWith("-1"))).toBe(true);
    expect(new Set(fake.requests.map((r) => systemText(r))).size).toBe(3);
    expect(firstItems.filter((id) => id === "s1-1" || id === "s2-1").length).toBeLessThanOrEqual(1);
    await killNow(first);

    // Nothing answered yet: no turn, every envelope still in queue/, nothing dispatched.
    expect(Object.values(await readHistory(root)).flat().filter((l) => l.kind === "turn")).toHaveLength(0);
    expect(await queueNames(root)).toHaveLength(backlog.length);
    for (const s of SESSIONS) expect(await exists(inputPath(root, s))).toBe(false);

    fake.setDelay(null);
    fake.resetConcurrency();
    await scope.start(root);
    const cc = ccSide(root, SESSIONS, ctx);
    await waitFor(() => cc.seen.length >= backlog.length, { what: "every reply", timeoutMs: WAIT });
    await waitFor(() => quiet(root), { what: "the relay at rest", timeoutMs: WAIT });
    await sleep(500); // a doubled reply would show up now
    await cc.stop();
    await expectExactlyOnce(ctx, root, backlog, cc.seen, OWN);
    expect(fake.concurrency().max).toBeLessThanOrEqual(3);
  }, LONG);

  it("answers and dispatches every envelope exactly once after a kill with three calls in flight and earlier replies delivered but not acknowledged", async (ctx) => {
    const { expect } = ctx;
    const scope = await setUp(ctx);
    const { fake } = scope;
    const root = await makeRoot({ config: config(SHARED, OWN, "max_parallel_calls: 3\n") });
    await dropAll(root, backlog);
    // The first four calls (one per conversation) are answered at once, the next ones held.
    let calls = 0;
    fake.setDelay(() => (++calls <= 4 ? 0 : HELD_MS));

    const first = await scope.start(root);
    await waitFor(async () => fake.concurrency().inFlight === 3 && Object.values(await readHistory(root)).flat().filter((l) => l.kind === "turn").length === 4, {
      what: "four turns answered and three calls in flight",
      timeoutMs: WAIT,
    });
    // Replies of the first round wait in input.txt (not acknowledged) or in the outbox behind them.
    await waitFor(async () => (await exists(inputPath(root, "session-3"))) && (await exists(inputPath(root, "session-4"))) && (await queueNames(root)).length === backlog.length - 4, {
      what: "replies delivered and their envelopes finished",
      timeoutMs: WAIT,
    });
    expect(fake.requests).toHaveLength(7);
    await killNow(first);

    fake.setDelay(null);
    fake.resetConcurrency();
    await scope.start(root);
    const cc = ccSide(root, SESSIONS, ctx);
    await waitFor(() => cc.seen.length >= backlog.length, { what: "every reply", timeoutMs: WAIT });
    await waitFor(() => quiet(root), { what: "the relay at rest", timeoutMs: WAIT });
    await sleep(500);
    await cc.stop();
    await expectExactlyOnce(ctx, root, backlog, cc.seen, OWN);
    expect(fake.concurrency().max).toBeLessThanOrEqual(3);
  }, LONG);

  it("answers and dispatches every envelope exactly once across three kills, each with three calls in flight, while the CC side acknowledges", async (ctx) => {
    const scope = await setUp(ctx);
    const { fake } = scope;
    const root = await makeRoot({ config: config(SHARED, OWN, "max_parallel_calls: 3\n") });
    const envelopes: Envelope[] = [1, 2, 3].flatMap((round) => SESSIONS.map((s) => ({ session: s, id: `s${s.slice(-1)}-${round}`, content: `msg <s${s.slice(-1)}-${round}> from ${s}` })));
    await dropAll(root, envelopes);
    const cc = ccSide(root, SESSIONS, ctx);
    // Each life: the first two calls are answered, the next three held; kill once three are in flight.
    for (let life = 0; life < 3; life++) {
      let calls = 0;
      fake.setDelay(() => (++calls <= 2 ? 0 : HELD_MS));
      fake.resetConcurrency();
      const before = fake.requests.length;
      const d = await scope.start(root);
      await waitFor(() => fake.requests.slice(before).filter(unanswered).length === 3, { what: `three calls in flight (life ${life})`, timeoutMs: WAIT });
      await killNow(d);
    }
    fake.setDelay(null);
    await scope.start(root);
    await waitFor(() => cc.seen.length >= envelopes.length, { what: "every reply", timeoutMs: WAIT });
    await waitFor(() => quiet(root), { what: "the relay at rest", timeoutMs: WAIT });
    await sleep(500);
    await cc.stop();
    await expectExactlyOnce(ctx, root, envelopes, cc.seen, OWN);
  }, LONG);
});

describe.concurrent("kill -9 during a summarization while another conversation calls", () => {
  // Two turns pass the cap; keep_recent_turns 1 folds the first.
  const CAP = "600";
  const big = (id: string) => `msg <${id}> `.padEnd(300, "c");

  it.for([
    { summarizing: "session-3", calling: "session-1", what: "its own conversation summarizes while the shared one calls" },
    { summarizing: "session-1", calling: "session-3", what: "the shared conversation summarizes while an own one calls" },
  ])("answers and dispatches everything exactly once when $what", { timeout: LONG }, async ({ summarizing, calling }, ctx) => {
    const { expect } = ctx;
    const scope = await setUp(ctx);
    const { fake } = scope;
    const own = ["session-3"] as const;
    const root = await makeRoot({ config: config(["session-1", "session-2"], own, "max_parallel_calls: 3\n", 1) });
    const slow: Envelope = { session: calling, id: "slow-1", content: "msg <slow-1> SLOW" };
    const sumA: Envelope = { session: summarizing, id: "sum-1", content: big("sum-1") };
    const sumB: Envelope = { session: summarizing, id: "sum-2", content: big("sum-2") };
    const envelopes = [slow, sumA, sumB];
    await dropAll(root, envelopes);
    // The other conversation's call is held; the summarizing conversation's calls are answered.
    fake.setDelay((r) => (r.lastUserText.includes("SLOW") ? HELD_MS : 0));

    const crashing = await scope.start(root, { RELAY_CRASH_AT: "before-summary-write", HISTORY_CHAR_CAP: CAP });
    const exit = await crashing.exited;
    expect(exit.signal).toBe("SIGKILL");
    // The kill came with the summary made but not written, and the other call in flight.
    const summaries = fake.requests.filter(isSummary);
    expect(summaries).toHaveLength(1);
    const slowCall = fake.requests.find((r) => !isSummary(r) && itemOf(r) === "slow-1");
    expect(slowCall).toBeDefined();
    expect(slowCall?.sentAt).toBeUndefined();
    expect(slowCall?.receivedAt ?? Infinity).toBeLessThan(summaries[0]?.receivedAt ?? 0);
    const before = await readHistory(root);
    const summarizingFile = `${conv(summarizing, own)}.jsonl`;
    expect((before[summarizingFile] ?? []).map((l) => l.kind)).toEqual(["turn", "turn"]);
    expect(before[`${conv(calling, own)}.jsonl`] ?? []).toEqual([]);

    fake.setDelay(null);
    await scope.start(root, { HISTORY_CHAR_CAP: CAP });
    const cc = ccSide(root, ["session-1", "session-2", "session-3"], ctx);
    await waitFor(() => cc.seen.length >= envelopes.length, { what: "every reply", timeoutMs: WAIT });
    // The summarization is done again and written: the summary, then the last turn.
    const after = await waitFor(
      async () => {
        const h = (await readHistory(root))[summarizingFile];
        return h?.[0]?.kind === "summary" && (await quiet(root)) ? h : null;
      },
      { what: "the summary written", timeoutMs: WAIT },
    );
    await sleep(500);
    await cc.stop();
    expect(after.map((l: HistoryLine) => [l.kind, l.kind === "turn" ? l.text : ""])).toEqual([
      ["summary", ""],
      ["turn", sumB.content],
    ]);
    expect(fake.requests.filter(isSummary).length).toBeGreaterThanOrEqual(2);
    // The summary folded sum-1's turn: the last summarization call (the conversation as sent,
    // then the instruction keeping its last turn, sum-2's) holds it once.
    const lastSummary = fake.requests.filter(isSummary).at(-1);
    const conversation = messageTexts(lastSummary).slice(0, -1).join("\n");
    expect(conversation.split("msg <sum-1>").length - 1).toBe(1);
    expect(conversation.split("answer to <sum-1>").length - 1).toBe(1);
    expect(lastUserText(lastSummary)).toContain("except its last 1 turn,");
    await expectExactlyOnce(ctx, root, envelopes, cc.seen, own, ["sum-1"]);
  });
});

describe.concurrent("one conversation, one envelope at a time, across crashes", () => {
  it("never takes an envelope of a conversation while an earlier one of it is unanswered, across a kill in the call and a kill after its commit", async (ctx) => {
    const { expect } = ctx;
    const scope = await setUp(ctx);
    const { fake } = scope;
    const own = ["session-3"] as const;
    const root = await makeRoot({ config: config(["session-1", "session-2"], own, "max_parallel_calls: 3\n") });
    // c1, c2, c3 share a conversation (two sessions); o1, o2 have one of their own, in between.
    const envelopes: Envelope[] = [
      { session: "session-1", id: "c1", content: "msg <c1> first HOLD" },
      { session: "session-3", id: "o1", content: "msg <o1>" },
      { session: "session-2", id: "c2", content: "msg <c2> second" },
      { session: "session-3", id: "o2", content: "msg <o2>" },
      { session: "session-1", id: "c3", content: "msg <c3> third" },
    ];
    await dropAll(root, envelopes);
    const cc = ccSide(root, ["session-1", "session-2", "session-3"], ctx);

    // Life 1: c1's call is held; the other conversation goes on; c2 is not taken, then a kill.
    fake.setDelay((r) => (r.lastUserText.includes("HOLD") ? HELD_MS : 0));
    const first = await scope.start(root);
    await waitFor(() => cc.seen.length === 2, { what: "o1 and o2 answered", timeoutMs: WAIT });
    await sleep(500);
    expect(fake.requests.map(itemOf).sort()).toEqual(["c1", "o1", "o2"]);
    // (an envelope answered a moment ago may be offered once more before its file is removed: the relay finishes it again)
    expect([...new Set((await takenLog(root)).map((t) => t.envelope))].sort()).toEqual(["c1", "o1", "o2"]);
    await killNow(first);

    // Life 2: c1 answered and committed to the history, then a kill before it is dispatched.
    fake.setDelay(null);
    const second = await scope.start(root, { RELAY_CRASH_AT: "after-commit" });
    expect((await second.exited).signal).toBe("SIGKILL");
    expect(fake.requests.map(itemOf).filter((id) => id.startsWith("c"))).toEqual(["c1", "c1"]);

    // Life 3: the rest.
    await scope.start(root);
    await waitFor(() => cc.seen.length >= envelopes.length, { what: "every reply", timeoutMs: WAIT });
    await waitFor(() => quiet(root), { what: "the relay at rest", timeoutMs: WAIT });
    await sleep(500);
    await cc.stop();
    await expectExactlyOnce(ctx, root, envelopes, cc.seen, own);

    // Every time c2 or c3 was taken (in any life), the one before it was in the history already;
    // and every call for them carried that earlier turn.
    const shared = (await readHistory(root))["shared.jsonl"] ?? [];
    const committedAt = (id: string) => Date.parse((shared.find((l) => l.text.includes(`<${id}>`)) as (HistoryLine & { at?: string }) | undefined)?.at ?? "") || Infinity;
    const taken = await takenLog(root);
    for (const [earlier, later] of [["c1", "c2"], ["c2", "c3"]] as const) {
      for (const t of taken.filter((x) => x.envelope === later)) expect(t.time, `${later} taken at ${t.time} (pid ${t.pid}), ${earlier} answered at ${committedAt(earlier)}`).toBeGreaterThanOrEqual(committedAt(earlier));
      for (const r of fake.requests.filter((x) => itemOf(x) === later)) expect(messageTexts(r).join("\n")).toContain(`answer to <${earlier}>`);
    }
    expect(taken.filter((t) => t.envelope.startsWith("c")).map((t) => t.envelope)).toEqual(expect.arrayContaining(["c1", "c2", "c3"]));
  }, LONG);
});

secretsCheck();
