// Snapshots of the first version (format relay-snapshot/1) are migrated on the first start and
// nothing is lost (CONTRACT §7, §8, §12). Each root in test/fixtures/v1-roots/ was captured from
// the single-machine relay (5f1a10a) at a given state; MANIFEST.json says what each must still
// deliver, answer and file once the NEW relay has migrated it and run to rest. The test plays CC
// (reads and deletes every input.txt) and JC (`relay jc`, `relay resume`) the way the MANIFEST's
// own check against v1 did.
import { cp, readdir, readFile, unlink, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, describe, it } from "vitest";
import type { ParsedRequest } from "../support/fake-anthropic.js";
import {
  type Daemon,
  exists,
  type HistoryLine,
  inputPath,
  killAll,
  makeRoot,
  queueNames,
  quiet,
  readHistory,
  readStatusJson,
  REPO_ROOT,
  runCli,
  Scope,
  secretsCheck,
  settle,
  waitFor,
} from "../support/cli.js";

afterAll(killAll);

const FIXTURES = join(REPO_ROOT, "test", "fixtures", "v1-roots");
const SESSIONS = ["session-1", "session-2"] as const;

// ---------------------------------------------------------------------------
// MANIFEST.json

interface ManifestRoot {
  name: string;
  v1State: string;
  queueFiles: { file: string; mtime: string }[];
  envelopes: Record<string, { session: string; content: string; timestamp?: string }>;
  expect: {
    answeredEnvelopes: string[];
    rejectedEnvelopes?: string[];
    deliveries: Record<string, string[]>;
    questionOpen: { session: string; textStartsWith: string } | null;
    failure: "transient" | "permanent" | null;
  };
  notes?: string;
}
interface Manifest {
  format: string;
  roots: ManifestRoot[];
}

const manifest = JSON.parse(await readFile(join(FIXTURES, "MANIFEST.json"), "utf8")) as Manifest;

/**
 * API calls the new relay should make on each root, from the MANIFEST: one per envelope or JC
 * chat turn still to answer, none where the reply (or the turn) was already made before the
 * capture ("API calls v1 made on restart", verifiedAgainstV1), the summary only for summarizing.
 */
const EXPECTED_CALLS: Record<string, number> = {
  idle: 0,
  "idle-crashed-before-call": 1,
  "idle-crashed-before-call-jc": 2,
  "calling-after-call": 1,
  "calling-turn-committed": 0,
  "dispatching-uncommitted": 0,
  "dispatching-with-note": 0,
  "awaitingAck-staged": 0,
  needsJc: 1,
  "needsJc-jc-claimed": 1,
  "needsJc-budget": 1,
  "calling-jc-pending": 2,
  backingOff: 1,
  paused: 1,
  summarizing: 1,
  rejection: 1,
};

// ---------------------------------------------------------------------------
// The fake API's reply rule (MANIFEST fakeApiReplyRule / fakeApiReplyFunction), from the request alone

/** A summary rides the conversation's cache: its last user turn asks for the summary of everything above but the kept turns. */
const SUMMARY_MARK = /^\[relay\] [\s\S]*Write the summary of everything above(?: except its last (\d+) turns?)?/;

interface Block {
  type: string;
  text?: string;
}
interface Body {
  messages: { role: string; content: string | Block[] }[];
}

function replyFor(req: ParsedRequest): string {
  const body = req.body as unknown as Body;
  const lastUser = [...body.messages].reverse().find((m) => m.role === "user");
  const blocks = lastUser === undefined ? [] : typeof lastUser.content === "string" ? [lastUser.content] : lastUser.content.filter((b) => b.type === "text").map((b) => b.text ?? "");
  const last = blocks[blocks.length - 1] ?? "";
  const summary = SUMMARY_MARK.exec(last);
  if (summary) {
    const n = body.messages.filter((m) => m.role === "assistant").length - Number(summary[1] ?? "0");
    return `summary: ${n} exchanges folded`;
  }
  const content = last.replace(/^\[[^\]]*\] /, "");
  return content.startsWith("ASK-JC:") ? `[NEEDS-JC] reply to: ${content}` : `reply to: ${content}`;
}

// ---------------------------------------------------------------------------
// What the v1 root holds (read before the relay starts)

interface V1Context {
  current: { id: string; session: string; text: string; source: string } | null;
  notes: { id: string; session: string; text: string }[];
  jcChats: { id: string; session: string; text: string }[];
  needsJc: { session: string; question: string } | null;
  lastError: { message: string; at: number } | null;
}

interface Before {
  context: V1Context;
  /** sessions whose input.txt was there already (written by v1, with no input.json) */
  preexisting: Set<string>;
  /** JC's claimed answers (state/jc_input.<id>.claimed) */
  claims: string[];
}

async function readBefore(root: string): Promise<Before> {
  const snapshot = JSON.parse(await readFile(join(root, "state", "snapshot.json"), "utf8")) as { format: string; snapshot: { context: V1Context } };
  if (snapshot.format !== "relay-snapshot/1") throw new Error(`${root}: not a v1 root (${snapshot.format})`);
  const preexisting = new Set<string>();
  for (const s of SESSIONS) if (await exists(inputPath(root, s))) preexisting.add(s);
  const claims: string[] = [];
  for (const name of await readdir(join(root, "state"))) {
    if (/^jc_input\.[0-9a-f]+\.claimed$/.test(name)) claims.push((await readFile(join(root, "state", name), "utf8")).trim());
  }
  return { context: snapshot.snapshot.context, preexisting, claims };
}

// ---------------------------------------------------------------------------
// CC's side: take every input.txt as it appears, with its input.json, and delete it

interface Delivered {
  text: string;
  meta: { reply_id?: string; in_reply_to?: string | null; source?: string } | null;
  /** this input.txt was in the fixture already (v1 delivered it) */
  fromV1: boolean;
}

function playCc(root: string, before: Before): { got: Record<string, Delivered[]>; stop: () => Promise<void> } {
  const got: Record<string, Delivered[]> = Object.fromEntries(SESSIONS.map((s) => [s, []]));
  let running = true;
  const loop = (async () => {
    while (running) {
      for (const s of SESSIONS) {
        const path = inputPath(root, s);
        let text: string;
        try {
          text = await readFile(path, "utf8");
        } catch {
          continue;
        }
        // input.json is written before input.txt appears and never rewritten while it exists.
        const meta = await readFile(join(root, "dispatch", s, "input.json"), "utf8")
          .then((raw) => JSON.parse(raw) as Delivered["meta"])
          .catch(() => null);
        await unlink(path);
        const list = got[s] as Delivered[];
        list.push({ text: text.trim(), meta, fromV1: list.length === 0 && before.preexisting.has(s) });
      }
      await sleep(20);
    }
  })();
  return {
    got,
    stop: async () => {
      running = false;
      await loop;
    },
  };
}

// ---------------------------------------------------------------------------
// At most a few roots at once: each runs a relay, a `relay jc` or two, and the fakes, and the
// harness gives a daemon 10 s to start (a loaded 2-CPU box needs a few seconds per start).

const SLOTS = 3;
let free = SLOTS;
const waiting: (() => void)[] = [];
async function slot(): Promise<() => void> {
  if (free > 0) free -= 1;
  else await new Promise<void>((resolve) => waiting.push(resolve));
  return () => {
    const next = waiting.shift();
    if (next) next();
    else free += 1;
  };
}

// ---------------------------------------------------------------------------
// Small readers

const allLines = (history: Record<string, HistoryLine[]>): (HistoryLine & { file: string })[] =>
  Object.entries(history).flatMap(([file, lines]) => lines.map((l) => ({ ...l, file })));

async function listOrEmpty(dir: string): Promise<string[]> {
  return (await readdir(dir).catch(() => [] as string[])).sort();
}

async function leftovers(root: string): Promise<string[]> {
  const found: string[] = [];
  for (const name of await listOrEmpty(join(root, "state"))) {
    if (/^jc_input\..*\.claimed$/.test(name) || name === "jc_input.txt") found.push(`state/${name}`);
  }
  for (const s of await listOrEmpty(join(root, "dispatch"))) {
    for (const name of await listOrEmpty(join(root, "dispatch", s))) if (/^\.reply-.*\.tmp$/.test(name)) found.push(`dispatch/${s}/${name}`);
  }
  return found;
}

// ---------------------------------------------------------------------------

describe.concurrent("a root of the first version (relay-snapshot/1) is migrated on start and loses nothing", () => {
  it("the MANIFEST describes v1 roots", ({ expect }) => {
    expect(manifest.format).toBe("relay-snapshot/1");
    expect(manifest.roots.length).toBeGreaterThan(0);
    for (const r of manifest.roots) expect(EXPECTED_CALLS[r.name], `EXPECTED_CALLS has ${r.name}`).toBeTypeOf("number");
  });

  it.for(manifest.roots)(
    "$name",
    // 60 s for the root itself, plus the wait for a slot
    { timeout: 180_000 },
    async (m, ctx) => {
      const { expect } = ctx;
      const name = m.name;
      const release = await slot();
      ctx.onTestFinished(release);
      const scope = await Scope.create(ctx);
      const { fake, ntfy } = scope;
      fake.setResponder(replyFor);

      // --- The copy: the fixture as it was, queue mtimes restored (ids hash name + mtime + bytes).
      const root = await makeRoot({ config: null });
      await cp(join(FIXTURES, name), root, { recursive: true });
      for (const q of m.queueFiles) {
        const t = new Date(q.mtime);
        await utimes(join(root, "queue", q.file), t, t);
      }
      if (name === "needsJc-budget") {
        // The day's budget is spent (the capture ran today, UTC): raise it, as the MANIFEST says.
        const config = await readFile(join(root, "config.yaml"), "utf8");
        expect(config).toContain("daily_usd: 0.0004");
        await writeFile(join(root, "config.yaml"), config.replace("daily_usd: 0.0004", "daily_usd: 100"));
      }
      const before = await readBefore(root);
      const envelopeNames = new Set(m.expect.answeredEnvelopes);

      // --- The new relay, and CC taking what it delivers.
      const daemon: Daemon = await scope.start(root);
      expect(daemon.alive(), `relay run exited at start:\n${daemon.stderr()}`).toBe(true);
      const cc = playCc(root, before);

      // --- JC: an open question survives the migration (status has it, no second notification), then JC answers it.
      let jcAnswer: { session: string; text: string } | null = null;
      const q = m.expect.questionOpen;
      if (q !== null) {
        const status = await waitFor(
          async () => {
            const s = await readStatusJson(root).catch(() => null);
            return s?.questions.some((x) => x.session === q.session) ? s : null;
          },
          { what: `the migrated question of ${q.session} in state/status.json`, timeoutMs: 10_000 },
        );
        expect(status.questions).toHaveLength(1);
        const question = status.questions[0];
        expect(question?.session).toBe(q.session);
        expect(question?.question.startsWith(q.textStartsWith), `question text: ${question?.question}`).toBe(true);
        expect(status.state).toBe("needsJc");
        expect(status.needsJc?.session).toBe(q.session);
        if (name === "needsJc-budget") {
          // the budget question holds its conversation: its envelope waits, never sent, never rejected
          expect(question?.kind).toBe("budget");
          expect(await queueNames(root)).toEqual(["02-e2.json"]);
          expect(fake.requests).toHaveLength(0);
        }
        // v1 notified JC already; a migrated question is not announced a second time.
        await settle(5);
        const core = q.textStartsWith.replace(/^\[NEEDS-JC\] /, "");
        expect.soft(ntfy.messages.filter((n) => `${n.title ?? ""}\n${n.message}`.includes(core))).toEqual([]);

        jcAnswer = { session: q.session, text: `JC answers ${name}` };
        const jc = await runCli(["jc", "--root", root, `@${jcAnswer.session}: ${jcAnswer.text}`], { env: scope.vars() });
        expect(jc.code, jc.stderr).toBe(0);
        await waitFor(async () => (await readStatusJson(root)).questions.length === 0, { what: "the question to close", timeoutMs: 30_000 });
      }

      if (name === "paused") {
        const resume = await runCli(["resume", "--root", root], { env: scope.vars() });
        expect(resume.code, resume.stderr).toBe(0);
      }

      // --- Run to rest: everything expected delivered and acknowledged, queue/ empty, nothing pending.
      const jcTexts = new Set(jcAnswer ? [jcAnswer.text] : []);
      const delivered = (s: string) => (cc.got[s] ?? []).filter((d) => !jcTexts.has(d.text)).length;
      let restError: unknown = null;
      try {
        await waitFor(
          async () => {
            for (const s of SESSIONS) if (delivered(s) < (m.expect.deliveries[s] ?? []).length) return false;
            if (jcAnswer && !(cc.got[jcAnswer.session] ?? []).some((d) => d.text === jcAnswer?.text)) return false;
            if ((await queueNames(root)).length > 0) return false;
            for (const s of SESSIONS) if (await exists(inputPath(root, s))) return false;
            if (name === "summarizing" && !allLines(await readHistory(root)).some((l) => l.kind === "summary")) return false;
            const status = await readStatusJson(root).catch(() => null);
            return status !== null && status.questions.length === 0 && (await quiet(root));
          },
          { what: `${name} to come to rest`, timeoutMs: 25_000 },
        );
      } catch (err) {
        restError = err;
      }
      // Hold on a while longer: a doubled reply would show up now.
      await settle(10);
      await cc.stop();
      const status = await readStatusJson(root).catch(() => null);
      expect.soft(restError === null, `${String(restError)}\nstatus: ${JSON.stringify(status)}\nstderr:\n${daemon.stderr()}`).toBe(true);
      expect.soft(daemon.alive(), `relay run exited:\n${daemon.stderr()}`).toBe(true);

      // --- Deliveries: each expected text exactly once, in order; JC's own answer exactly once on top.
      for (const s of SESSIONS) {
        const got = cc.got[s] ?? [];
        expect.soft(got.filter((d) => !jcTexts.has(d.text)).map((d) => d.text), `deliveries to ${s}`).toEqual(m.expect.deliveries[s] ?? []);
        if (jcAnswer?.session === s) expect.soft(got.filter((d) => d.text === jcAnswer?.text), `JC's answer to ${s}`).toHaveLength(1);
        for (const d of got) {
          if (d.fromV1) continue; // v1 wrote input.txt before input.json existed
          expect.soft(d.meta, `input.json beside ${s}'s input.txt "${d.text}"`).not.toBeNull();
          const envelope = Object.values(m.envelopes).some((e) => e.session === s && d.text === `reply to: ${e.content}`);
          const direct = jcTexts.has(d.text) || before.context.notes.some((n) => n.text === d.text) || before.claims.some((c) => c === `@${s}: ${d.text}`);
          expect.soft(d.meta?.source, `input.json source for "${d.text}"`).toBe(envelope ? "envelope" : direct ? "jc-direct" : "jc-chat");
        }
      }

      // JC's direct answer to a [NEEDS-JC] question carries the id of the envelope whose reply asked (CONTRACT §5).
      const history = await readHistory(root);
      const lines = allLines(history);
      const v1Question = before.context.needsJc;
      if (v1Question && !/^\[NEEDS-JC\] The (per-session )?daily budget/.test(v1Question.question)) {
        const asking = lines.find((l) => l.kind === "turn" && l.reply === v1Question.question);
        expect(asking, "the turn whose reply asked JC is in the history").toBeDefined();
        const answerText = jcAnswer?.text ?? before.claims.map((c) => c.replace(/^@[^:]+: /, ""))[0];
        const answer = (cc.got[v1Question.session] ?? []).find((d) => d.text === answerText);
        expect.soft(answer?.meta?.in_reply_to, `in_reply_to of JC's answer "${answerText}" to the migrated question`).toBe(asking?.id);
      }

      // --- History: every answered envelope exactly once as a turn; rejected ones never.
      const turnsFor = (content: string) => lines.filter((l) => l.kind === "turn" && l.source === "envelope" && l.text === content);
      if (name === "summarizing") {
        // The pending summarization completed once: one summary + the last keep_recent_turns (2) turns.
        const shared = history["shared.jsonl"] ?? [];
        expect.soft(
          shared.map((l) => (l.kind === "summary" ? `summary: ${l.text}` : `${l.kind}: ${l.text}`)),
          "state/history/shared.jsonl after the migrated summarization",
        ).toEqual(["summary: summary: 5 exchanges folded", `turn: ${m.envelopes["06-step.json"]?.content}`, `turn: ${m.envelopes["07-step.json"]?.content}`]);
        for (const file of envelopeNames) expect.soft(turnsFor(m.envelopes[file]?.content ?? "").length, `turns for ${file}`).toBeLessThanOrEqual(1);
      } else {
        for (const file of envelopeNames) expect.soft(turnsFor(m.envelopes[file]?.content ?? "").length, `turns in the history for ${file}`).toBe(1);
      }
      for (const file of m.expect.rejectedEnvelopes ?? []) expect.soft(turnsFor(m.envelopes[file]?.content ?? ""), `turns for rejected ${file}`).toEqual([]);
      // no entry of any kind twice in one conversation
      for (const [file, entries] of Object.entries(history)) {
        const ids = entries.map((e) => e.id);
        expect.soft(ids.filter((id, i) => ids.indexOf(id) !== i), `ids seen twice in ${file}`).toEqual([]);
      }
      // JC's words (v1's pending notes, a claimed or new direct answer) are notes exactly once; JC's chat turns turns exactly once
      const directs = [...before.context.notes.map((n) => n.text), ...before.claims.filter((c) => c.startsWith("@")).map((c) => c.replace(/^@[^:]+: /, "")), ...jcTexts];
      for (const text of directs) expect.soft(lines.filter((l) => l.kind === "note" && l.text === text), `notes "${text}"`).toHaveLength(1);
      const chats = [...before.context.jcChats.map((c) => c.text), ...before.claims.filter((c) => !c.startsWith("@"))];
      for (const text of chats) expect.soft(lines.filter((l) => l.kind === "turn" && l.source === "jc" && l.text === text), `JC chat turns "${text}"`).toHaveLength(1);

      // --- Files: queue/ empty, rejections filed with a reason, no claim or staging file left.
      expect.soft(await queueNames(root), "queue/ at rest").toEqual([]);
      const rejected = await listOrEmpty(join(root, "queue", ".rejected"));
      const expectedRejected = (m.expect.rejectedEnvelopes ?? []).flatMap((f) => [f, `${f}.reason.json`]).sort();
      expect.soft(rejected, "queue/.rejected/").toEqual(expectedRejected);
      for (const file of m.expect.rejectedEnvelopes ?? []) {
        const reason = JSON.parse(await readFile(join(root, "queue", ".rejected", `${file}.reason.json`), "utf8").catch(() => "{}")) as { error?: unknown; at?: unknown };
        expect.soft(reason.error, `${file}.reason.json error`).toMatch(/\S/);
        expect.soft(typeof reason.at === "string" && !Number.isNaN(Date.parse(reason.at)), `${file}.reason.json at: ${String(reason.at)}`).toBe(true);
        expect.soft(await readFile(join(root, "queue", ".rejected", file), "utf8").catch(() => ""), `${file} moved whole`).toContain(m.envelopes[file]?.content ?? "\0");
      }
      expect.soft(await leftovers(root), "claims, staging files and jc_input.txt left").toEqual([]);

      // --- The snapshot is the new format; no v1 temporary outlives the start (CONTRACT §2).
      const snapshot = JSON.parse(await readFile(join(root, "state", "snapshot.json"), "utf8")) as { format: string };
      expect.soft(snapshot.format).toBe("relay-snapshot/2");
      expect.soft((await listOrEmpty(join(root, "state"))).filter((n) => /^snapshot\.json\.\d+$/.test(n)), "write-file-atomic temporaries of v1 in state/").toEqual([]);

      // --- API calls: no answered input asked again (beyond the one v1 itself lost), no call missing.
      expect.soft(
        fake.requests.length,
        `API calls made: ${JSON.stringify(fake.requests.map((r) => replyFor({ body: r.body } as unknown as ParsedRequest)))}`,
      ).toBe(EXPECTED_CALLS[name]);
      // The migrated failure was restored (then cleared by the first call that worked): JC hears that API
      // calls work again, and the last error is v1's.
      const recovered = ntfy.messages.filter((n) => (n.title ?? "").includes("API calls work again"));
      expect.soft(recovered, `"API calls work again" notifications: ${JSON.stringify(ntfy.messages.map((n) => n.title))}`).toHaveLength(m.expect.failure === null ? 0 : 1);
      if (before.context.lastError) expect.soft(status?.lastError?.message, "lastError restored").toBe(before.context.lastError.message);
      if (status) {
        expect.soft(status.retry, "no failure left at rest").toBeNull();
        expect.soft(status.state, "status state at rest").toBe("idle");
      }
    },
  );
});

secretsCheck();
