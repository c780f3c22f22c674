// Conversations are independent (CONTRACT §1, §5, §6, §8): each conversation is its own actor;
// calls of different conversations run in parallel up to max_parallel_calls; one conversation's
// envelopes are answered one at a time, in order; a [NEEDS-JC] opens a question (with an id) that
// holds only its conversation; JC answers by question or session; an answer to a closed question
// is refused; every reply's input.json names what it answers and is never rewritten under its
// input.txt.
import { readFile, stat, unlink } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, it, type TestContext } from "vitest";
import {
  configYaml,
  dropEnvelope,
  exists,
  inputPath,
  killAll,
  lastUserText,
  makeRoot,
  queueNames,
  readHistory,
  readStatusJson,
  runCli,
  Scope,
  secretsCheck,
  settle,
  waitFor,
  waitForFile,
  writeJcInput,
} from "../support/cli.js";
import type { ParsedRequest } from "../support/fake-anthropic.js";

// Each test has its own root, fakes and daemon (a Scope, torn down as the test finishes); killAll
// is the backstop. The tests run one after the other: several of them are about what runs at the
// same time, and a daemon starting beside four others on a busy box can miss the harness's
// start-up deadline.
afterAll(killAll);

/** Generous: the box may be busy (the rest of the suite runs beside this file). */
const LONG = 60_000;
const WAIT = 30_000;

const ago = (seconds: number): Date => new Date(Date.now() - seconds * 1000);

/**
 * What the stand-in answers: a JC turn (its text holds `jcword-…`) is answered naming it; an
 * envelope whose content holds `NEEDQ` gets a [NEEDS-JC] question naming its `msg-…`; any other
 * envelope gets "reply to <msg-…>".
 */
function responder(r: ParsedRequest): string {
  const text = r.lastUserText;
  const jc = /jcword-[\w]+/.exec(text)?.[0];
  if (jc !== undefined) return `reply to JC <${jc}>`;
  const msg = /msg-[\w]+/.exec(text)?.[0] ?? "?";
  if (text.includes("NEEDQ")) return `[NEEDS-JC] Question about <${msg}>: may I proceed?`;
  return `reply to <${msg}>`;
}

async function setUp(ctx: TestContext): Promise<Scope> {
  const scope = await Scope.create(ctx);
  scope.fake.setResponder(responder);
  return scope;
}

/** Sessions each in a conversation of its own (their own system_prompt), plus extra top-level YAML. */
function ownConversations(ids: string[], extra = ""): string {
  return configYaml({ sessions: ids.map((id) => ({ id, systemPrompt: `You review session ${id} only.` })) }) + extra;
}

const conv = (session: string): string => `session.${session}`;

/**
 * A per-request delay for the stand-in: requests arriving within `ms` of the first of a batch are
 * all held until that batch's end, together (so requests the relay makes at about the same time
 * are surely in flight at the same time, however slow the box); a request arriving after starts
 * a new batch.
 */
function heldTogether(ms: number): () => number {
  let releaseAt = 0;
  return () => {
    const now = Date.now();
    if (now >= releaseAt) releaseAt = now + ms;
    return releaseAt - now;
  };
}

interface ReplyMeta {
  reply_id: string;
  in_reply_to: string | null;
  source: string;
  at: string;
}
const metaPath = (root: string, session: string): string => join(root, "dispatch", session, "input.json");
const readMeta = async (root: string, session: string): Promise<ReplyMeta> => JSON.parse(await readFile(metaPath(root, session), "utf8")) as ReplyMeta;

/** Wait for the session's input.txt and return it with the input.json read right after it. */
async function waitForReply(root: string, session: string, timeoutMs = WAIT): Promise<{ text: string; meta: ReplyMeta }> {
  const text = await waitForFile(inputPath(root, session), timeoutMs);
  return { text, meta: await readMeta(root, session) };
}

const status = (root: string) => readStatusJson(root).catch(() => null);

/** The open questions once `n` are listed in state/status.json. */
async function waitForQuestions(root: string, n: number) {
  return waitFor(
    async () => {
      const s = await status(root);
      return s !== null && s.questions.length === n ? s.questions : null;
    },
    { what: `${n} open question(s) in status.json`, timeoutMs: WAIT },
  );
}

describe("conversations", () => {
  it(
    "calls of different conversations run in parallel",
    async (ctx) => {
      const { expect } = ctx;
      const scope = await setUp(ctx);
      const { fake } = scope;
      const sessions = ["a", "b", "c", "d"];
      const root = await makeRoot({ config: ownConversations(sessions) });
      await scope.start(root);

      fake.setDelay(heldTogether(4000));
      await Promise.all(sessions.map((s) => dropEnvelope(root, `${s}.json`, { session_id: s, id: `${s}-1`, content: `msg-${s}1 hello` })));

      for (const s of sessions) {
        const { text, meta } = await waitForReply(root, s);
        expect(text).toBe(`reply to <msg-${s}1>`);
        expect(meta.in_reply_to).toBe(`${s}-1`);
        expect(meta.source).toBe("envelope");
      }
      expect(fake.requests).toHaveLength(4);
      expect(fake.concurrency().max).toBe(4);
    },
    LONG,
  );

  it(
    "calls of different conversations never exceed max_parallel_calls",
    async (ctx) => {
      const { expect } = ctx;
      const scope = await setUp(ctx);
      const { fake } = scope;
      const sessions = ["a", "b", "c", "d"];
      const root = await makeRoot({ config: ownConversations(sessions, "max_parallel_calls: 2\n") });
      await scope.start(root);

      fake.setDelay(heldTogether(2500));
      await Promise.all(sessions.map((s) => dropEnvelope(root, `${s}.json`, { session_id: s, id: `${s}-1`, content: `msg-${s}1 hello` })));

      for (const s of sessions) expect((await waitForReply(root, s)).text).toBe(`reply to <msg-${s}1>`);
      expect(fake.requests).toHaveLength(4);
      expect(fake.concurrency().max).toBe(2);
      expect((await readStatusJson(root)).calls.maxParallel).toBe(2);
    },
    LONG,
  );

  it(
    "a slow call in one conversation does not delay another's envelope",
    async (ctx) => {
      const { expect } = ctx;
      const scope = await setUp(ctx);
      const { fake } = scope;
      const root = await makeRoot({ config: ownConversations(["a", "b"]) });
      await scope.start(root);

      fake.enqueue({ kind: "hang" }); // A's request: never answered
      await dropEnvelope(root, "a.json", { session_id: "a", id: "a-1", content: "msg-a1 slow one" });
      await waitFor(() => fake.requests.length === 1 && fake.concurrency().inFlight === 1, { what: "A's request in flight", timeoutMs: WAIT });
      expect(lastUserText(fake.requests[0])).toContain("msg-a1");

      await dropEnvelope(root, "b.json", { session_id: "b", id: "b-1", content: "msg-b1 quick one" });
      const { text, meta } = await waitForReply(root, "b");
      expect(text).toBe("reply to <msg-b1>");
      expect(meta.in_reply_to).toBe("b-1");

      // A still hangs: its request unanswered, no reply for A, its conversation still calling.
      expect(fake.requests[0]?.response.status).toBe(0);
      expect(fake.concurrency().inFlight).toBe(1);
      expect(await exists(inputPath(root, "a"))).toBe(false);
      await waitFor(async () => (await status(root))?.conversations[conv("a")]?.state === "calling", { what: "A calling", timeoutMs: WAIT });
      expect(fake.requests).toHaveLength(2);
    },
    LONG,
  );

  it(
    "envelopes of one conversation are answered one at a time, in order",
    async (ctx) => {
      const { expect } = ctx;
      const scope = await setUp(ctx);
      const { fake } = scope;
      // session-1 and session-2 share the default conversation.
      const root = await makeRoot();
      fake.setDelay(() => 600);
      const order = [
        { name: "1.json", session: "session-1", id: "s1-1", msg: "msg-one" },
        { name: "2.json", session: "session-2", id: "s2-1", msg: "msg-two" },
        { name: "3.json", session: "session-1", id: "s1-2", msg: "msg-three" },
        { name: "4.json", session: "session-2", id: "s2-2", msg: "msg-four" },
      ];
      for (const [i, e] of order.entries()) {
        await dropEnvelope(root, e.name, { session_id: e.session, id: e.id, content: `${e.msg} please review` }, ago(40 - i * 10));
      }
      await scope.start(root);

      // Each session receives its replies in the order its envelopes were taken.
      const got: Record<string, { text: string; inReplyTo: string | null }[]> = { "session-1": [], "session-2": [] };
      await Promise.all(
        ["session-1", "session-2"].map(async (s) => {
          for (let k = 0; k < 2; k++) {
            const { text, meta } = await waitForReply(root, s);
            got[s]?.push({ text, inReplyTo: meta.in_reply_to });
            await unlink(inputPath(root, s));
          }
        }),
      );
      expect(got["session-1"]).toEqual([
        { text: "reply to <msg-one>", inReplyTo: "s1-1" },
        { text: "reply to <msg-three>", inReplyTo: "s1-2" },
      ]);
      expect(got["session-2"]).toEqual([
        { text: "reply to <msg-two>", inReplyTo: "s2-1" },
        { text: "reply to <msg-four>", inReplyTo: "s2-2" },
      ]);

      // The calls: one at a time, oldest envelope first.
      expect(fake.requests).toHaveLength(4);
      expect(fake.concurrency().max).toBe(1);
      expect(fake.requests.map((r) => /msg-\w+/.exec(lastUserText(r))?.[0])).toEqual(order.map((e) => e.msg));
      for (let i = 1; i < fake.requests.length; i++) {
        const prev = fake.requests[i - 1];
        const cur = fake.requests[i];
        expect(prev?.sentAt).toBeDefined();
        expect(cur?.receivedAt ?? 0).toBeGreaterThanOrEqual(prev?.sentAt ?? Infinity);
      }
      // The history holds the turns in the order taken.
      const history = await readHistory(root);
      const turns = Object.values(history)
        .flat()
        .filter((l) => l.kind === "turn");
      expect(turns.map((t) => /msg-\w+/.exec(t.text)?.[0])).toEqual(order.map((e) => e.msg));
    },
    LONG,
  );

  it(
    "a [NEEDS-JC] in conversation A holds only A, and `relay jc --question` answers it in A's session",
    async (ctx) => {
      const { expect } = ctx;
      const scope = await setUp(ctx);
      const { fake, ntfy } = scope;
      const vars = scope.vars();
      const root = await makeRoot({ config: ownConversations(["a", "b"]) });
      await scope.start(root);

      await dropEnvelope(root, "a1.json", { session_id: "a", id: "a-0001", content: "msg-a1 NEEDQ the migration" }, ago(10));
      const [question] = await waitForQuestions(root, 1);
      expect(question).toMatchObject({ session: "a", conversation: conv("a"), kind: "reply" });
      expect(question?.id).toMatch(/\S/);
      expect(question?.question).toContain("Question about <msg-a1>");
      const qid = question?.id ?? "";
      const s1 = await readStatusJson(root);
      expect(s1.state).toBe("needsJc");
      expect(s1.needsJc?.id).toBe(qid);
      expect(s1.conversations[conv("a")]?.question).toBe(qid);
      expect(s1.conversations[conv("b")]?.question ?? null).toBeNull();
      expect(await exists(inputPath(root, "a"))).toBe(false);

      // One notification, naming the question id.
      const [note] = await ntfy.waitForMessages(1, WAIT);
      expect(JSON.stringify(note)).toContain(qid);

      // A's next envelope waits in queue/; B's is answered.
      await dropEnvelope(root, "a2.json", { session_id: "a", id: "a-0002", content: "msg-a2 next step" }, ago(5));
      await dropEnvelope(root, "b1.json", { session_id: "b", id: "b-0001", content: "msg-b1 unrelated" });
      const b = await waitForReply(root, "b");
      expect(b.text).toBe("reply to <msg-b1>");
      expect(b.meta.in_reply_to).toBe("b-0001");
      await settle(5);
      expect(await queueNames(root)).toEqual(["a2.json"]);
      expect(fake.requests).toHaveLength(2);
      expect(await exists(inputPath(root, "a"))).toBe(false);
      expect((await readStatusJson(root)).questions.map((q) => q.id)).toEqual([qid]);

      // JC answers by question id: the reply goes to A, answering the envelope that asked.
      const jc = await runCli(["jc", "--root", root, "--question", qid, "jcword-goahead yes, go ahead"], { env: vars });
      expect(jc.code, jc.stderr).toBe(0);
      const answer = await waitForReply(root, "a");
      expect(answer.text).toBe("reply to JC <jcword-goahead>");
      expect(answer.meta.in_reply_to).toBe("a-0001");
      expect(answer.meta.source).toBe("jc-chat");
      // JC's turn is the first call after the question (A's waiting envelope may be called next,
      // its reply then waiting behind this input.txt).
      expect(fake.requests.length).toBeGreaterThanOrEqual(3);
      expect(lastUserText(fake.requests[2])).toContain("jcword-goahead");
      await waitFor(async () => (await status(root))?.questions.length === 0, { what: "the question closed", timeoutMs: WAIT });

      // Then A's waiting envelope is answered.
      await unlink(inputPath(root, "a"));
      const next = await waitForReply(root, "a");
      expect(next.text).toBe("reply to <msg-a2>");
      expect(next.meta.in_reply_to).toBe("a-0002");
      expect(next.meta.source).toBe("envelope");
      // Its envelope leaves queue/ just after the reply (finishing comes off the reply's path).
      await waitFor(async () => (await queueNames(root)).length === 0, { what: "a2.json finished", timeoutMs: WAIT });
      expect(fake.requests).toHaveLength(4);
      expect(ntfy.messages.filter((m) => JSON.stringify(m).includes(qid))).toHaveLength(1);
    },
    LONG,
  );

  it(
    "with two open questions, plain `relay jc` is refused listing both, and --session answers the one in that session's conversation",
    async (ctx) => {
      const { expect } = ctx;
      const scope = await setUp(ctx);
      const { fake } = scope;
      const vars = scope.vars();
      const root = await makeRoot({ config: ownConversations(["a", "b"]) });
      await scope.start(root);

      await dropEnvelope(root, "a1.json", { session_id: "a", id: "a-0001", content: "msg-a1 NEEDQ" }, ago(10));
      await dropEnvelope(root, "b1.json", { session_id: "b", id: "b-0001", content: "msg-b1 NEEDQ" }, ago(5));
      const questions = await waitForQuestions(root, 2);
      const qa = questions.find((q) => q.session === "a");
      const qb = questions.find((q) => q.session === "b");
      expect(qa?.conversation).toBe(conv("a"));
      expect(qb?.conversation).toBe(conv("b"));
      expect(qa?.id).not.toBe(qb?.id);

      const plain = await runCli(["jc", "--root", root, "jcword-plain which one?"], { env: vars });
      expect(plain.code).not.toBe(0);
      expect(plain.stderr).toContain(qa?.id ?? "<none>");
      expect(plain.stderr).toContain(qb?.id ?? "<none>");
      await settle(5);
      expect(await exists(join(root, "state", "jc_input.txt"))).toBe(false);
      expect(fake.requests).toHaveLength(2);

      const bySession = await runCli(["jc", "--root", root, "--session", "b", "jcword-forb go on with b"], { env: vars });
      expect(bySession.code, bySession.stderr).toBe(0);
      const reply = await waitForReply(root, "b");
      expect(reply.text).toBe("reply to JC <jcword-forb>");
      expect(reply.meta.in_reply_to).toBe("b-0001");
      expect(reply.meta.source).toBe("jc-chat");
      await waitFor(async () => (await status(root))?.questions.length === 1, { what: "B's question closed", timeoutMs: WAIT });
      expect((await readStatusJson(root)).questions.map((q) => q.id)).toEqual([qa?.id]);
      expect(await exists(inputPath(root, "a"))).toBe(false);
      expect(fake.requests).toHaveLength(3);
    },
    LONG,
  );

  it(
    "an answer to a question that is no longer open is refused to state/jc_input.rejected.txt and applied nowhere",
    async (ctx) => {
      const { expect } = ctx;
      const scope = await setUp(ctx);
      const { fake } = scope;
      const vars = scope.vars();
      const root = await makeRoot({ config: ownConversations(["a", "b"]) });
      await scope.start(root);

      await dropEnvelope(root, "a1.json", { session_id: "a", id: "a-0001", content: "msg-a1 NEEDQ" }, ago(10));
      const [qa] = await waitForQuestions(root, 1);
      const closed = qa?.id ?? "";
      // A's question is answered and closes.
      expect((await runCli(["jc", "--root", root, "--question", closed, "jcword-first the answer"], { env: vars })).code).toBe(0);
      expect((await waitForReply(root, "a")).text).toBe("reply to JC <jcword-first>");
      await waitFor(async () => (await status(root))?.questions.length === 0, { what: "A's question closed", timeoutMs: WAIT });
      await unlink(inputPath(root, "a"));

      // B opens a question of its own: the late answer must not go to it either.
      await dropEnvelope(root, "b1.json", { session_id: "b", id: "b-0001", content: "msg-b1 NEEDQ" });
      const [qb] = await waitForQuestions(root, 1);
      expect(qb?.session).toBe("b");
      const requests = fake.requests.length;

      const late = JSON.stringify({ text: "jcword-late too late", question: closed });
      await writeJcInput(root, late);
      const rejected = await waitForFile(join(root, "state", "jc_input.rejected.txt"), WAIT);
      const [reason, ...rest] = rejected.split("\n");
      expect(reason).toMatch(/\S/);
      expect(reason).toContain(closed);
      expect(rest.join("\n")).toContain("jcword-late");
      await waitFor(async () => !(await exists(join(root, "state", "jc_input.txt"))), { what: "jc_input.txt removed", timeoutMs: WAIT });

      // Applied nowhere: no call, no reply, B's question still open, nothing in the history.
      await settle(5);
      expect(fake.requests).toHaveLength(requests);
      expect(await exists(inputPath(root, "a"))).toBe(false);
      expect(await exists(inputPath(root, "b"))).toBe(false);
      expect((await readStatusJson(root)).questions.map((q) => q.id)).toEqual([qb?.id]);
      expect(JSON.stringify(await readHistory(root))).not.toContain("jcword-late");
    },
    LONG,
  );

  it(
    "a direct answer `@session: text` is delivered as jc-direct with no API call, and answers that conversation's question",
    async (ctx) => {
      const { expect } = ctx;
      const scope = await setUp(ctx);
      const { fake } = scope;
      const vars = scope.vars();
      const root = await makeRoot({ config: ownConversations(["a", "b"]) });
      await scope.start(root);

      await dropEnvelope(root, "a1.json", { session_id: "a", id: "a-0001", content: "msg-a1 NEEDQ" });
      const [qa] = await waitForQuestions(root, 1);
      expect(qa?.session).toBe("a");
      expect(fake.requests).toHaveLength(1);

      const jc = await runCli(["jc", "--root", root, "@a: do it exactly so"], { env: vars });
      expect(jc.code, jc.stderr).toBe(0);
      const { text, meta } = await waitForReply(root, "a");
      expect(text.trim()).toBe("do it exactly so");
      expect(meta.source).toBe("jc-direct");
      expect(meta.in_reply_to).toBe("a-0001");
      await waitFor(async () => (await status(root))?.questions.length === 0, { what: "A's question closed", timeoutMs: WAIT });
      await settle(5);
      expect(fake.requests).toHaveLength(1);

      // A goes on: its next envelope is called, and chat-Claude sees JC's words in A's conversation.
      await unlink(inputPath(root, "a"));
      await dropEnvelope(root, "a2.json", { session_id: "a", id: "a-0002", content: "msg-a2 done" });
      const next = await waitForReply(root, "a");
      expect(next.text).toBe("reply to <msg-a2>");
      expect(next.meta.in_reply_to).toBe("a-0002");
      expect(fake.requests).toHaveLength(2);
      expect(JSON.stringify(fake.requests[1]?.body)).toContain("do it exactly so");
    },
    LONG,
  );

  it(
    "input.json matches input.txt across a waiting second reply",
    async (ctx) => {
      const { expect } = ctx;
      const scope = await setUp(ctx);
      const root = await makeRoot();
      await dropEnvelope(root, "1.json", { session_id: "session-1", id: "s1-first", content: "msg-first" }, ago(20));
      await dropEnvelope(root, "2.json", { session_id: "session-1", id: "s1-second", content: "msg-second" }, ago(10));
      await scope.start(root);

      const first = await waitForReply(root, "session-1");
      expect(first.text).toBe("reply to <msg-first>");
      expect(first.meta).toMatchObject({ in_reply_to: "s1-first", source: "envelope" });
      expect(first.meta.reply_id).toMatch(/\S/);
      expect(Number.isNaN(Date.parse(first.meta.at))).toBe(false);

      // The second reply is ready and waits in the relay; input.json is not touched meanwhile.
      await waitFor(async () => (await status(root))?.sessions["session-1"]?.pending === 1, { what: "the second reply pending", timeoutMs: WAIT });
      const bytes = await readFile(metaPath(root, "session-1"));
      const before = await stat(metaPath(root, "session-1"));
      for (let i = 0; i < 8; i++) {
        await settle(2);
        expect((await readFile(metaPath(root, "session-1"))).equals(bytes)).toBe(true);
        expect(await readFile(inputPath(root, "session-1"), "utf8")).toBe("reply to <msg-first>");
      }
      const after = await stat(metaPath(root, "session-1"));
      expect(after.ino).toBe(before.ino);
      expect(after.mtimeMs).toBe(before.mtimeMs);

      // Acknowledged: the second appears, with input.json naming it.
      await unlink(inputPath(root, "session-1"));
      const second = await waitForReply(root, "session-1");
      expect(second.text).toBe("reply to <msg-second>");
      expect(second.meta).toMatchObject({ in_reply_to: "s1-second", source: "envelope" });
      expect(second.meta.reply_id).not.toBe(first.meta.reply_id);
      expect(scope.fake.requests).toHaveLength(2);
    },
    LONG,
  );

  it(
    "an envelope with a malformed id is rejected to queue/.rejected/ with a reason naming id",
    async (ctx) => {
      const { expect } = ctx;
      const scope = await setUp(ctx);
      const root = await makeRoot();
      await scope.start(root);

      await dropEnvelope(root, "spaces.json", { session_id: "session-1", id: "bad id!", content: "msg-spaces" });
      await dropEnvelope(root, "dash.json", { session_id: "session-1", id: "-leading-dash", content: "msg-dash" });
      await dropEnvelope(root, "number.json", { session_id: "session-1", id: 42, content: "msg-number" });
      await dropEnvelope(root, "long.json", { session_id: "session-1", id: `x${"y".repeat(128)}`, content: "msg-long" });
      for (const name of ["spaces.json", "dash.json", "number.json", "long.json"]) {
        const reasonText = await waitForFile(join(root, "queue", ".rejected", `${name}.reason.json`), WAIT);
        const reason = JSON.parse(reasonText) as { error: unknown; at: unknown };
        expect(typeof reason.error).toBe("string");
        expect(String(reason.error)).toMatch(/\bid\b/);
        expect(Number.isNaN(Date.parse(String(reason.at)))).toBe(false);
        // The reason is written first, then the envelope moves beside it.
        await waitFor(() => exists(join(root, "queue", ".rejected", name)), { what: `.rejected/${name}`, timeoutMs: WAIT });
      }
      expect(await queueNames(root)).toEqual([]);

      // A well-formed id next to them goes through.
      await dropEnvelope(root, "ok.json", { session_id: "session-1", id: "ok:1.a_b-c", content: "msg-ok" });
      const { text, meta } = await waitForReply(root, "session-1");
      expect(text).toBe("reply to <msg-ok>");
      expect(meta.in_reply_to).toBe("ok:1.a_b-c");
      expect(scope.fake.requests).toHaveLength(1);
    },
    LONG,
  );

  it(
    "budgets with parallel calls cannot together overspend",
    async (ctx) => {
      const { expect } = ctx;
      const scope = await setUp(ctx);
      const { fake } = scope;
      const sessions = ["a", "b", "c"];
      // claude-sonnet-4-6 is priced; a call's worst case (1024 output tokens at $15/M) is about
      // $0.0154, over the whole daily budget: once one call is under way, no other may start.
      const root = await makeRoot({ config: ownConversations(sessions, "budget:\n  daily_usd: 0.01\n") });
      await scope.start(root);

      fake.setDelay(heldTogether(3000));
      // Each reply costs about what its worst case reserved: ~4000 characters, ~1000 output tokens.
      fake.setResponder((r) => `reply to <${/msg-\w+/.exec(r.lastUserText)?.[0] ?? "?"}> ${"z".repeat(4000)}`);
      await Promise.all(sessions.map((s) => dropEnvelope(root, `${s}.json`, { session_id: s, id: `${s}-1`, content: `msg-${s}1 hello` })));

      // One call is made; the two other conversations wait with a budget question each.
      const questions = await waitForQuestions(root, 2);
      await waitFor(() => fake.requests.length >= 1 && fake.concurrency().inFlight === 0, { what: "the call done", timeoutMs: WAIT });
      await settle(10);
      expect(fake.concurrency().max).toBe(1);
      expect(fake.requests).toHaveLength(1);
      expect(questions.every((q) => q.kind === "budget")).toBe(true);
      const asked = questions.map((q) => q.session).sort();
      const answered = sessions.filter((s) => !asked.includes(s));
      expect(answered).toHaveLength(1);
      expect(asked).toHaveLength(2);
      expect(await waitForFile(inputPath(root, answered[0] ?? ""), WAIT)).toContain("reply to <msg-");
      const s = await readStatusJson(root);
      expect(s.cost.calls).toBe(1);
      expect(s.cost.todayUsd).toBeLessThan(0.02);
      expect((await queueNames(root)).sort()).toEqual(asked.map((x) => `${x}.json`).sort());
    },
    LONG,
  );
});

secretsCheck();
