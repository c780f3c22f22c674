// queue/ intake and the dispatch order (CONTRACT §5): rejections with reasons, ignored
// in-progress names, oldest first by mtime, one unacknowledged reply per session.
import { lstat, readdir, readFile, stat, symlink, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, it, type TestContext } from "vitest";
import {
  dropEnvelope,
  exists,
  inputPath,
  killAll,
  lastUserText,
  makeRoot,
  queueNames,
  readStatusJson,
  runCli,
  Scope,
  secretsCheck,
  settle,
  waitFor,
  waitForFile,
} from "../support/cli.js";

// Each test has its own root, fakes and daemon (a Scope, torn down as the test finishes), so the
// tests of this file run concurrently; killAll is the backstop.
afterAll(killAll);

/** A scope whose replies name the envelope they answer. */
async function setUp(ctx: TestContext): Promise<Scope> {
  const scope = await Scope.create(ctx);
  scope.fake.setResponder((r) => `reply to <${/msg-\w+/.exec(r.lastUserText)?.[0] ?? "?"}>`);
  return scope;
}

const ago = (seconds: number) => new Date(Date.now() - seconds * 1000);

interface Reason {
  error: unknown;
  at: unknown;
}
const readReason = async (root: string, name: string): Promise<Reason> =>
  JSON.parse(await readFile(join(root, "queue", ".rejected", `${name}.reason.json`), "utf8")) as Reason;

describe.concurrent("dispatch order", () => {
  it("never overwrites an unacknowledged reply: later replies wait in order until input.txt is deleted", async (ctx) => {
    const { expect } = ctx;
    const scope = await setUp(ctx);
    const { fake } = scope;
    const root = await makeRoot();
    const vars = scope.vars();
    await dropEnvelope(root, "1.json", { session_id: "session-1", content: "msg-first" }, ago(30));
    await dropEnvelope(root, "2.json", { session_id: "session-1", content: "msg-second" }, ago(20));
    await dropEnvelope(root, "3.json", { session_id: "session-1", content: "msg-third" }, ago(10));
    await scope.start(root);

    const input = inputPath(root, "session-1");
    expect(await waitForFile(input)).toBe("reply to <msg-first>");
    // All three answered; two replies wait in the relay's state, not on disk.
    await waitFor(async () => (await readStatusJson(root).catch(() => null))?.sessions["session-1"]?.pending === 2, { what: "two pending replies" });
    expect(fake.requests).toHaveLength(3);
    expect(await readFile(input, "utf8")).toBe("reply to <msg-first>");

    const status = await runCli(["status", "--json", "--root", root], { env: vars });
    const s = JSON.parse(status.stdout) as { sessions: Record<string, { pending: number; awaitingAck: boolean }> };
    expect(s.sessions["session-1"]).toMatchObject({ pending: 2, awaitingAck: true });

    // Still not overwritten a few poll intervals later.
    await settle(3);
    expect(await readFile(input, "utf8")).toBe("reply to <msg-first>");

    await unlink(input);
    expect(await waitForFile(input)).toBe("reply to <msg-second>");
    await settle(3);
    expect(await readFile(input, "utf8")).toBe("reply to <msg-second>");

    await unlink(input);
    expect(await waitForFile(input)).toBe("reply to <msg-third>");
    await unlink(input);
    await settle(5);
    expect(await exists(input)).toBe(false);
  });

  it("takes envelopes oldest first by mtime, whatever their names", async (ctx) => {
    const { expect } = ctx;
    const scope = await setUp(ctx);
    const { fake } = scope;
    const root = await makeRoot();
    // Unknown extra fields are ignored.
    await dropEnvelope(root, "a.json", { session_id: "session-2", content: "msg-newest", from: "hook", seq: 3 }, ago(10));
    await dropEnvelope(root, "b.json", { session_id: "session-1", content: "msg-oldest" }, ago(30));
    await dropEnvelope(root, "c.json", { session_id: "session-2", content: "msg-middle" }, ago(20));
    await scope.start(root);

    await waitFor(async () => fake.requests.length === 3 && (await queueNames(root)).length === 0, { what: "three envelopes answered" });
    expect(fake.requests.map((r) => /msg-\w+/.exec(lastUserText(r))?.[0])).toEqual(["msg-oldest", "msg-middle", "msg-newest"]);
    expect(await waitForFile(inputPath(root, "session-2"))).toBe("reply to <msg-middle>");
  });
});

describe.concurrent("timestamps", () => {
  it("accepts an envelope whose timestamp is an ISO 8601 time in any common form (offset or local time, with or without seconds)", async (ctx) => {
    const { expect } = ctx;
    const scope = await setUp(ctx);
    const { fake } = scope;
    const root = await makeRoot();
    const stamps = [
      "2026-05-02T15:30:00Z", // UTC
      "2026-05-02T15:30:00.123+02:00", // offset, fraction
      "2026-05-02T15:30:00", // local time (Python's datetime.now().isoformat() without microseconds)
      "2026-05-02T15:30:00.123456", // local time with microseconds (Python's datetime.now().isoformat())
      "2026-05-02T15:30Z", // reduced precision: no seconds
    ];
    for (const [i, timestamp] of stamps.entries()) {
      await dropEnvelope(root, `t${i}.json`, { session_id: "session-1", content: `msg-t${i}`, timestamp }, ago(50 - i));
    }
    await scope.start(root);
    await waitFor(async () => (await queueNames(root)).length === 0, { what: "the queue to empty" });
    const rejected = (await readdir(join(root, "queue", ".rejected"))).filter((n) => n.endsWith(".reason.json"));
    const names = rejected.map((n) => n.slice(0, -".reason.json".length));
    const reasons = await Promise.all(names.map(async (name) => `${name}: ${String((await readReason(root, name)).error)}`));
    expect(reasons).toEqual([]);
    expect(fake.requests).toHaveLength(stamps.length);
  });
});

describe.concurrent("rejections", () => {
  it("moves each invalid envelope to queue/.rejected/NAME beside NAME.reason.json, ignores in-progress names, and rejects invalid JSON only after the settle window", async (ctx) => {
    const { expect } = ctx;
    const scope = await setUp(ctx);
    const { fake } = scope;
    const root = await makeRoot();
    const outside = join(root, "outside.json");
    await writeFile(outside, JSON.stringify({ session_id: "session-1", content: "msg-via-link" }));
    const bad: Record<string, { body: unknown; reason: RegExp }> = {
      "missing-content.json": { body: { session_id: "session-1" }, reason: /content/ },
      "empty-content.json": { body: { session_id: "session-1", content: "" }, reason: /content/ },
      "blank-content.json": { body: { session_id: "session-1", content: "  \n " }, reason: /content/ },
      "missing-session.json": { body: { content: "msg-x" }, reason: /session_id/ },
      "wrong-type.json": { body: { session_id: "session-1", content: 42 }, reason: /content/ },
      "bad-timestamp.json": { body: { session_id: "session-1", content: "msg-x", timestamp: "yesterday" }, reason: /timestamp/ },
      "unregistered.json": { body: { session_id: "session-9", content: "msg-x" }, reason: /session-9/ },
      "traversal.json": { body: { session_id: "../x", content: "msg-x" }, reason: /session_id/ },
      "too-big.json": { body: { session_id: "session-1", content: "x".repeat(1024 * 1024 + 1) }, reason: /1 MiB/ },
      "not-an-object.json": { body: "[1, 2, 3]", reason: /./ },
    };
    for (const [name, { body }] of Object.entries(bad)) await dropEnvelope(root, name, body, ago(60));
    await symlink(outside, join(root, "queue", "link.json"));
    // In-progress writes: valid envelopes, but never taken, never rejected.
    await dropEnvelope(root, ".writing.json", { session_id: "session-1", content: "msg-hidden" }, ago(60));
    await dropEnvelope(root, "draft.json.tmp", { session_id: "session-1", content: "msg-tmp" }, ago(60));

    await scope.start(root);
    // A half-written file, fresh: not rejected until it is older than 2 s.
    const broken = await dropEnvelope(root, "broken.json", '{"session_id": "session-1", "content": "half');
    const brokenMtime = (await stat(broken)).mtimeMs;

    const all = [...Object.keys(bad), "link.json"];
    await waitFor(async () => {
      for (const name of all) if (!(await exists(join(root, "queue", ".rejected", name)))) return false;
      return true;
    }, { what: "every invalid envelope rejected" });

    for (const name of all) {
      expect(await exists(join(root, "queue", name))).toBe(false);
      const reason = await readReason(root, name);
      expect(typeof reason.error).toBe("string");
      expect(reason.error, name).toMatch(bad[name]?.reason ?? /regular file/);
      expect(typeof reason.at).toBe("string");
      expect(Number.isNaN(Date.parse(reason.at as string))).toBe(false);
    }
    // The symlink was moved, not followed: its target is untouched.
    expect((await lstat(join(root, "queue", ".rejected", "link.json"))).isSymbolicLink()).toBe(true);
    expect(JSON.parse(await readFile(outside, "utf8"))).toEqual({ session_id: "session-1", content: "msg-via-link" });

    // The half-written file waits in queue/ through the 2-second settle window: it is still there
    // while younger than that (checked when the machine is not too loaded to look in time), and
    // the rejection's own time says it waited.
    if (Date.now() - brokenMtime < 1_500) {
      expect(await exists(broken)).toBe(true);
      expect(await exists(join(root, "queue", ".rejected", "broken.json"))).toBe(false);
    }
    await waitFor(() => exists(join(root, "queue", ".rejected", "broken.json")), { what: "the invalid JSON rejected" });
    const reason = await readReason(root, "broken.json");
    expect(reason.error).toMatch(/JSON/);
    expect(Date.parse(reason.at as string)).toBeGreaterThanOrEqual(Math.floor(brokenMtime) + 2000 - 1);

    await settle(3);
    expect(await exists(join(root, "queue", ".writing.json"))).toBe(true);
    expect(await exists(join(root, "queue", "draft.json.tmp"))).toBe(true);
    expect(await exists(join(root, "queue", ".rejected", ".writing.json"))).toBe(false);
    expect(await exists(join(root, "queue", ".rejected", "draft.json.tmp"))).toBe(false);
    expect(fake.requests).toHaveLength(0);
    expect(await exists(inputPath(root, "session-1"))).toBe(false);

    const status = await runCli(["status", "--json", "--root", root], { env: scope.vars() });
    expect((JSON.parse(status.stdout) as { queue: { rejected: number } }).queue.rejected).toBe(all.length + 1);
  });

  it("rejects an envelope the API refuses with a 400 about the request, with the API's message as the reason, and goes on", async (ctx) => {
    const { expect } = ctx;
    const scope = await setUp(ctx);
    const { fake } = scope;
    const root = await makeRoot();
    fake.enqueue({ kind: "error", status: 400, type: "invalid_request_error", message: "messages.0.content.0.text: e2e-the-envelope-is-at-fault" });
    await scope.start(root);
    await dropEnvelope(root, "refused.json", { session_id: "session-1", content: "msg-refused" }, ago(20));

    await waitFor(() => exists(join(root, "queue", ".rejected", "refused.json")), { what: "the refused envelope rejected" });
    const reason = await readReason(root, "refused.json");
    expect(reason.error).toMatch(/e2e-the-envelope-is-at-fault/);
    expect(typeof reason.at).toBe("string");
    expect(await exists(join(root, "queue", "refused.json"))).toBe(false);

    // The relay goes on with the next envelope.
    await dropEnvelope(root, "next.json", { session_id: "session-1", content: "msg-next" });
    expect(await waitForFile(inputPath(root, "session-1"))).toBe("reply to <msg-next>");
    expect(fake.requests).toHaveLength(2);
  });
});

secretsCheck();
