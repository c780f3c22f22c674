// `relay status [--json]` (CONTRACT §9): the daemon's state/status.json overlaid with what only a
// reader knows (the lock, the queue, input.txt), a description from files on a root without
// status.json, and one line on a directory that is no relay root. The real CLI, as a process.
import { writeFileSync } from "node:fs";
import { mkdir, readFile, rm, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { configCachePath } from "../src/config/config-cache.js";
import { loadClientConfig } from "../src/config/config.js";
import { relayPaths } from "../src/config/paths.js";
import { appendLedger, makeLedgerRecord } from "../src/costs/ledger.js";
import type { StatusReport } from "../src/status/report.js";
import { acquireLock, type HeldLock } from "../src/store/lock.js";
import { exists, inputPath, killAll, makeRoot, removeRoots, runCli } from "./support/cli.js";
import { writeStatusFile } from "./support/daemon-status.js";

afterEach(killAll);
afterAll(removeRoots);

const SECTION_9_KEYS = ["state", "daemon", "needsJc", "questions", "queue", "conversations", "sessions", "history", "lastError", "cost"];

async function statusJson(root: string): Promise<StatusReport> {
  const r = await runCli(["status", "--json", "--root", root]);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as StatusReport;
}

/** state/.lock held the way a running daemon holds it (the lock, with `pid` recorded); `release()` frees it as a kill -9 would, leaving the pid. */
async function holdLock(root: string, pid: number): Promise<HeldLock> {
  const path = join(root, "state", ".lock");
  const taken = await acquireLock(path);
  if (!taken.ok) throw new Error(`state/.lock is held by ${String(taken.pid)}`);
  writeFileSync(path, `${pid}\n`);
  return {
    release() {
      // as a kill -9 leaves it: the lock free, the pid still recorded
      taken.lock.release();
      writeFileSync(path, `${pid}\n`);
    },
  };
}

describe("relay status --json", () => {
  it("prints the §9 keys from the daemon's state/status.json", async () => {
    const root = await makeRoot();
    await mkdir(join(root, "state"), { recursive: true });
    const file = await writeStatusFile(
      relayPaths(root),
      {
        openQuestions: [
          { id: "q-1", session: "session-1", question: "[NEEDS-JC] Merge #438?" },
          { id: "q-2", session: "session-2", conversation: "session.session-2", question: "[NEEDS-JC] Spend $40?" },
        ],
        sessions: { "session-1": { pending: 2, conversation: "shared" }, "session-2": { pending: 0, conversation: "session.session-2" } },
        history: { chars: 1234, turns: 7 },
        lastError: { message: "HTTP 529 overloaded", at: "2026-05-02T15:30:00.000Z" },
        retry: { kind: "transient", attempt: 2, nextTryAt: "2026-05-02T15:31:00.000Z", since: "2026-05-02T15:30:00.000Z", message: "HTTP 529" },
        calls: { inFlight: 1, maxParallel: 4 },
        cost: { totalUsd: 1.25, todayUsd: 0.5, calls: 9, unpricedCalls: 0 },
      },
    );
    const s = await statusJson(root);
    for (const key of SECTION_9_KEYS) expect(s, key).toHaveProperty(key);
    expect(s).toMatchObject({
      state: "needsJc",
      needsJc: { id: "q-1", session: "session-1", question: "[NEEDS-JC] Merge #438?", since: file.questions[0]?.since },
      questions: [
        { id: "q-1", session: "session-1", conversation: "shared", question: "[NEEDS-JC] Merge #438?", since: file.questions[0]?.since },
        { id: "q-2", session: "session-2", conversation: "session.session-2", question: "[NEEDS-JC] Spend $40?", since: file.questions[1]?.since },
      ],
      conversations: {
        shared: { state: "needsJc", sessions: ["session-1", "session-2"], chars: 0, turns: 0 },
        "session.session-2": { state: "needsJc", sessions: ["session-2"] },
      },
      sessions: { "session-1": { pending: 2, awaitingAck: false }, "session-2": { pending: 0, awaitingAck: false } },
      history: { chars: 1234, turns: 7 },
      lastError: { message: "HTTP 529 overloaded" },
      retry: { kind: "transient", attempt: 2 },
      calls: { inFlight: 1, maxParallel: 4 },
      cost: { totalUsd: 1.25, calls: 9 },
      updatedAt: file.updatedAt,
    });
  });

  it("overlays what only the reader knows: the daemon holding the lock, the queue, unacknowledged input.txt", async () => {
    const root = await makeRoot();
    await mkdir(join(root, "state"), { recursive: true });
    await writeStatusFile(relayPaths(root), {});
    await mkdir(join(root, "queue", ".rejected"), { recursive: true });
    await writeFile(join(root, "queue", "a.json"), JSON.stringify({ session_id: "session-1", content: "x" }));
    await writeFile(join(root, "queue", "b.json"), JSON.stringify({ session_id: "session-2", content: "y" }));
    await writeFile(join(root, "queue", ".c.tmp"), "in progress");
    await writeFile(join(root, "queue", ".rejected", "bad.json"), "{");
    await writeFile(join(root, "queue", ".rejected", "bad.json.reason.json"), JSON.stringify({ error: "invalid JSON", at: new Date().toISOString() }));
    await mkdir(join(root, "dispatch", "session-2"), { recursive: true });
    await writeFile(inputPath(root, "session-2"), "the reply");

    const lock = await holdLock(root, 31337);
    try {
      const s = await statusJson(root);
      expect(s).toMatchObject({
        state: "idle",
        daemon: { running: true, pid: 31337 },
        queue: { depth: 2, rejected: 1 },
        sessions: { "session-1": { awaitingAck: false }, "session-2": { awaitingAck: true } },
      });
    } finally {
      lock.release();
    }
    // released without truncating, as a kill -9 leaves it: the lock is free, and the last pid is told
    const after = await statusJson(root);
    expect(after.daemon).toEqual({ running: false, pid: null, lastPid: 31337 });
    const human = await runCli(["status", "--root", root]);
    expect(human.stdout).toMatch(/pid 31337 was killed without releasing state\/.lock/);
  });

  it("keeps the state the daemon was in when it stopped", async () => {
    const root = await makeRoot();
    await mkdir(join(root, "state"), { recursive: true });
    await writeStatusFile(relayPaths(root), { state: "backingOff" });
    const s = await statusJson(root);
    expect(s).toMatchObject({ state: "backingOff", daemon: { running: false, pid: null } });
  });

  it("describes a root without state/status.json from config.yaml, the history and the ledger", async () => {
    const root = await makeRoot();
    const paths = relayPaths(root);
    await mkdir(paths.history, { recursive: true });
    const turn = (text: string, reply: string) =>
      JSON.stringify({ kind: "turn", id: text, source: "envelope", session: "session-1", text, reply, at: "2026-05-02T15:30:00.000Z" });
    await writeFile(join(paths.history, "shared.jsonl"), `${turn("hello", "hi")}\n${turn("again", "yes")}\n`);
    await appendLedger(
      root,
      makeLedgerRecord({
        at: new Date(),
        session: "session-1",
        conversation: "shared",
        model: "claude-sonnet-4-6",
        purpose: "reply",
        usage: { inputTokens: 1_000_000, outputTokens: 0, cacheWrite5mTokens: 0, cacheWrite1hTokens: 0, cacheReadTokens: 0 },
        latencyMs: 100,
      }),
    );
    const s = await statusJson(root);
    for (const key of SECTION_9_KEYS) expect(s, key).toHaveProperty(key);
    expect(s).toMatchObject({
      state: "idle",
      needsJc: null,
      questions: [],
      conversations: { shared: { state: "idle", sessions: ["session-1", "session-2"], turns: 2 } },
      sessions: { "session-1": { pending: 0, awaitingAck: false }, "session-2": { pending: 0, awaitingAck: false } },
      history: { turns: 2 },
      lastError: null,
      retry: null,
      calls: null,
      updatedAt: null,
      cost: { calls: 1 },
    });
    expect(s.history.chars).toBeGreaterThan(0);
    expect(s.cost.totalUsd).toBeGreaterThan(0);
  });

  it("prints the same with config.yaml's copy in state/config.cache.json as without, never writes it (it reads files only), and follows an edit of config.yaml", async () => {
    const root = await makeRoot();
    const paths = relayPaths(root);
    await mkdir(paths.state, { recursive: true });
    const aMinuteAgo = new Date(Date.now() - 60_000); // old enough to be copied (a fresh config.yaml is not)
    await utimes(paths.config, aMinuteAgo, aMinuteAgo);
    const parsed = await statusJson(root); // parses config.yaml, and leaves no copy
    expect(await exists(configCachePath(paths))).toBe(false);
    await loadClientConfig(paths, {}, { seed: false }); // as the hooks do: parses config.yaml and keeps the copy
    expect(JSON.parse(await readFile(configCachePath(paths), "utf8"))).toHaveProperty("document.sessions");
    expect(await statusJson(root)).toEqual(parsed);
    await rm(configCachePath(paths));
    expect(await statusJson(root)).toEqual(parsed);
    expect(await exists(configCachePath(paths))).toBe(false);
    expect(Object.keys(parsed.sessions)).toEqual(["session-1", "session-2"]);
    // a third session, with config.yaml's mtime put back: the copy is not config.yaml's any more
    await writeFile(paths.config, `${await readFile(paths.config, "utf8")}  - id: session-3\n`);
    await utimes(paths.config, aMinuteAgo, aMinuteAgo);
    expect(Object.keys((await statusJson(root)).sessions)).toEqual(["session-1", "session-2", "session-3"]);
  });

  it("says so when state/status.json cannot be read, and reports from the other files", async () => {
    const root = await makeRoot();
    await mkdir(join(root, "state"), { recursive: true });
    await writeFile(join(root, "state", "status.json"), "{ torn");
    const s = await statusJson(root);
    expect(s).toMatchObject({ state: "idle", statusError: expect.stringMatching(/state\/status.json cannot be read/) });
    const human = await runCli(["status", "--root", root]);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^warning: .*status.json cannot be read/m);
  });
});

describe("relay status", () => {
  it("prints each open question with its id and session, each conversation, each session", async () => {
    const root = await makeRoot();
    await mkdir(join(root, "state"), { recursive: true });
    await writeStatusFile(relayPaths(root), {
      openQuestions: [
        { id: "q-1", session: "session-1", question: `[NEEDS-JC] ${"long ".repeat(100)}` },
        { id: "q-2", session: "session-2", conversation: "session.session-2", question: "[NEEDS-JC] Spend $40?" },
      ],
      retry: { kind: "permanent", attempt: 1, nextTryAt: "2026-05-02T16:00:00.000Z", since: "2026-05-02T15:30:00.000Z", message: "credit balance too low" },
    });
    const r = await runCli(["status", "--root", root]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.split("\n");
    expect(lines[0]).toMatch(/^state: +needsJc \(no daemon running\)$/);
    const q1 = lines.find((l) => l.includes("q-1")) ?? "";
    expect(q1).toMatch(/q-1 from session-1 \(shared/);
    expect(q1.length).toBeLessThan(420); // the first 300 characters of the question
    expect(lines.find((l) => l.includes("q-2"))).toMatch(/q-2 from session-2 \(session\.session-2.*Spend \$40\?$/);
    expect(r.stdout).toMatch(/^paused: +credit balance too low/m);
    expect(r.stdout).toMatch(/^conversation shared: needsJc \(question q-1\), sessions session-1, session-2, 0 turns/m);
    expect(r.stdout).toMatch(/^ {2}session-1: 0 pending$/m);
    expect(r.stdout).toMatch(/^queue: +0 waiting, 0 rejected$/m);
    expect(r.stdout).toMatch(/^cost: /m);
  });

  it("on a directory that is not a relay root, exits non-zero with one line saying so", async () => {
    for (const root of ["/nonexistent/relay-root", await makeRoot({ config: null })]) {
      const r = await runCli(["status", "--root", root]);
      expect(r.code, root).not.toBe(0);
      expect(r.stdout).toBe("");
      expect(r.stderr.trim().split("\n")).toEqual([expect.stringMatching(new RegExp(`${root.replace(/[/.]/g, "\\$&")} is not a relay root`))]);

      const json = await runCli(["status", "--json", "--root", root]);
      expect(json.code, root).not.toBe(0);
      const body = JSON.parse(json.stdout) as { error: unknown };
      expect(Object.keys(body)).toEqual(["error"]);
      expect(body.error).toMatch(/is not a relay root/);
    }
  });
});
