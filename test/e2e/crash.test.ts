// Nothing lost, nothing doubled (CONTRACT §8): kill -9 at each crash point (RELAY_CRASH_AT, see
// src/runtime/crash-points.ts), restart without the hook, and the input is answered and dispatched exactly once.
import { readdir, readFile, unlink } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, it, type TestContext } from "vitest";
import {
  dropEnvelope,
  exists,
  type Exit,
  inputPath,
  killAll,
  makeRoot,
  queueNames,
  quiet,
  readHistory,
  allAcknowledged,
  readStatusJson,
  runCli,
  Scope,
  secretsCheck,
  settle,
  waitFor,
  waitForFile,
} from "../support/cli.js";

// The cases run concurrently (each mostly waits on its children): every test has its own root,
// fakes and daemons in a Scope, torn down when that test finishes; killAll is the backstop.
afterAll(killAll);

/** A scope whose every call answers differently, so a repeated call would show as a different reply. */
async function setUp(ctx: TestContext): Promise<Scope> {
  const scope = await Scope.create(ctx);
  let n = 0;
  scope.fake.setResponder(() => `answer number ${++n}`);
  return scope;
}

const POINTS = ["before-call", "after-call", "after-commit", "after-stage", "after-meta", "after-publish", "jc-claimed"] as const;

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

describe.concurrent("kill -9 at a crash point, then restart", () => {
  it.for(POINTS)("answers and dispatches exactly once after a kill at %s", async (point, ctx) => {
    const { expect } = ctx;
    const scope = await setUp(ctx);
    const { fake } = scope;
    const vars = scope.vars();
    const root = await makeRoot();
    const crashing = await scope.start(root, { RELAY_CRASH_AT: point });
    const text = point === "jc-claimed" ? "yes, do it" : `msg for ${point}`;
    if (point === "jc-claimed") {
      expect((await runCli(["jc", "--root", root, text], { env: vars })).code).toBe(0);
    } else {
      await dropEnvelope(root, "env.json", { session_id: "session-1", content: text });
    }
    const exit: Exit = await withTimeout(crashing.exited, 45_000, `the crash at ${point}`);
    expect(exit.signal).toBe("SIGKILL");
    // The kill came where the hook says (so each case tests a different moment).
    const input = inputPath(root, "session-1");
    const turnsBefore = Object.values(await readHistory(root)).flat().filter((e) => e.kind === "turn").length;
    const staged = (await readdir(join(root, "dispatch", "session-1")).catch(() => [] as string[])).filter((n) => n.endsWith(".tmp"));
    const meta = await exists(join(root, "dispatch", "session-1", "input.json"));
    const expected = {
      "before-call": { calls: 0, turns: 0, staged: 0, meta: false, input: false },
      "after-call": { calls: 1, turns: 0, staged: 0, meta: false, input: false },
      "after-commit": { calls: 1, turns: 1, staged: 0, meta: false, input: false },
      "after-stage": { calls: 1, turns: 1, staged: 1, meta: false, input: false },
      "after-meta": { calls: 1, turns: 1, staged: 1, meta: true, input: false },
      "after-publish": { calls: 1, turns: 1, staged: 0, meta: true, input: true },
      "jc-claimed": { calls: 0, turns: 0, staged: 0, meta: false, input: false },
    }[point];
    expect({ calls: fake.requests.length, turns: turnsBefore, staged: staged.length, meta, input: await exists(input) }).toEqual(expected);

    await scope.start(root);
    const reply = await waitForFile(input);
    await waitFor(() => quiet(root), { what: "the relay at rest" }).catch(async (err: unknown) => {
      console.error(point, JSON.stringify(await readStatusJson(root)));
      throw err;
    });

    // In the history exactly once, with the reply that was dispatched.
    const history = await readHistory(root);
    const turns = Object.values(history)
      .flat()
      .filter((e) => e.kind === "turn" && e.text === text);
    expect(turns).toHaveLength(1);
    expect(turns[0]?.reply).toBe(reply);
    expect(Object.values(history).flat().filter((e) => e.kind === "turn")).toHaveLength(1);

    // the envelope's file goes once the snapshot that finished it is durable (just after the reply)
    await waitFor(async () => (await queueNames(root)).length === 0, { what: "the answered envelope's file to go" });
    expect(await exists(join(root, "state", "jc_input.txt"))).toBe(false);
    expect(await exists(join(root, "state", "jc_input.claimed"))).toBe(false);
    // input.json names the reply in input.txt
    const meta2 = JSON.parse(await readFile(join(root, "dispatch", "session-1", "input.json"), "utf8")) as { source: string; in_reply_to: string | null };
    expect(meta2.source).toBe(point === "jc-claimed" ? "jc-chat" : "envelope");

    // Acknowledge: the same reply never comes back, and no staged copy is left behind.
    await unlink(input);
    await waitFor(() => allAcknowledged(root), { what: "the acknowledgement" });
    await settle(3);
    expect(await exists(input)).toBe(false);
    expect(await readdir(join(root, "dispatch", "session-1"))).toEqual(["input.json"]);
    expect(await exists(inputPath(root, "session-2"))).toBe(false);
  });

  it("answers every envelope of a backlog exactly once and dispatches them in order after a kill in the middle", async (ctx) => {
    const { expect } = ctx;
    const scope = await setUp(ctx);
    const root = await makeRoot();
    const ago = (s: number) => new Date(Date.now() - s * 1000);
    for (const [i, age] of [[1, 30], [2, 20], [3, 10]] as const) {
      await dropEnvelope(root, `env-${i}.json`, { session_id: "session-1", content: `backlog msg ${i}` }, ago(age));
    }
    const crashing = await scope.start(root, { RELAY_CRASH_AT: "after-commit:2" });
    expect((await withTimeout(crashing.exited, 45_000, "the crash")).signal).toBe("SIGKILL");

    await scope.start(root);
    const input = inputPath(root, "session-1");
    const delivered: string[] = [];
    for (let i = 0; i < 3; i++) {
      delivered.push(await waitForFile(input));
      await unlink(input);
    }
    await waitFor(async () => (await quiet(root)) && (await allAcknowledged(root)), { what: "all acknowledged" });
    await settle(3);
    expect(await exists(input)).toBe(false);

    const turns = Object.values(await readHistory(root))
      .flat()
      .filter((e) => e.kind === "turn");
    expect(turns.map((t) => t.text)).toEqual(["backlog msg 1", "backlog msg 2", "backlog msg 3"]);
    expect(delivered).toEqual(turns.map((t) => t.reply));
    expect(new Set(delivered).size).toBe(3);
    expect(await queueNames(root)).toEqual([]);
  });

  it("never dispatches a reply again that was published and acknowledged while the relay was down", async (ctx) => {
    const { expect } = ctx;
    const scope = await setUp(ctx);
    const { fake } = scope;
    const root = await makeRoot();
    const crashing = await scope.start(root, { RELAY_CRASH_AT: "after-publish" });
    await dropEnvelope(root, "env.json", { session_id: "session-1", content: "msg acked while down" });
    expect((await withTimeout(crashing.exited, 45_000, "the crash")).signal).toBe("SIGKILL");
    const input = inputPath(root, "session-1");
    expect(await exists(input)).toBe(true);
    await unlink(input); // CC took the reply while the relay was down

    await scope.start(root);
    await waitFor(async () => (await quiet(root)) && (await allAcknowledged(root)), { what: "the relay at rest" });
    await settle(3);
    expect(await exists(input)).toBe(false);
    expect(await readdir(join(root, "dispatch", "session-1"))).toEqual(["input.json"]);
    expect(await queueNames(root)).toEqual([]);
    expect(fake.requests).toHaveLength(1);
  });

  it("stays in needsJc across kill -9 and a restart, with no second notification, and takes JC's answer after it", async (ctx) => {
    const { expect } = ctx;
    const scope = await Scope.create(ctx);
    const { fake, ntfy } = scope;
    const vars = scope.vars();
    fake.setResponder(() => "answer number 2");
    fake.enqueue({ kind: "reply", text: "[NEEDS-JC] Deploy on Friday?" });
    const root = await makeRoot();
    const first = await scope.start(root);
    await dropEnvelope(root, "q.json", { session_id: "session-1", content: "msg question" });
    await waitFor(async () => (await readStatusJson(root).catch(() => null))?.needsJc != null, { what: "needsJc" });
    await ntfy.waitForMessages(1);
    await waitFor(async () => (await queueNames(root)).length === 0, { what: "the answered envelope's file to go" });
    first.child.kill("SIGKILL");
    await first.exited;

    await dropEnvelope(root, "later.json", { session_id: "session-2", content: "msg later" });
    await scope.start(root);
    await settle(3);
    expect((await readStatusJson(root)).needsJc?.session).toBe("session-1");
    expect(await queueNames(root)).toEqual(["later.json"]);
    expect(fake.requests).toHaveLength(1);
    expect(ntfy.messages).toHaveLength(1);

    expect((await runCli(["jc", "--root", root, "@session-1: not on Friday"], { env: vars })).code).toBe(0);
    expect((await waitForFile(inputPath(root, "session-1"))).trim()).toBe("not on Friday");
    expect(await waitForFile(inputPath(root, "session-2"))).toBe("answer number 2");
    expect(ntfy.messages).toHaveLength(1);
  });
});

secretsCheck();
