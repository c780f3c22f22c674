// Running for weeks, layer 2: the real daemon loop and machines over deps held in memory. A
// restart retries at once whatever deadline the snapshot kept (CONTRACT §8), and a wall clock
// that steps back does not move a retry the daemon waits for (waits are monotonic), and every
// conversation's deadline is kept by the daemon's one timer (the machines hold deadlines as data).
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Anthropic from "@anthropic-ai/sdk";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import { LONGEST_WAIT_MS } from "../../machines/backoff.js";
import { relayPaths } from "../../src/config/paths.js";
import { type DaemonHandle, startDaemon } from "../../src/runtime/daemon.js";
import { readSnapshot } from "../../src/store/snapshot-file.js";
import { type FakeRelay, fakeConfig, fakeRelay, session } from "../support/fake-deps.js";

const running: DaemonHandle[] = [];
const dirs: string[] = [];

async function start(fake: FakeRelay): Promise<DaemonHandle> {
  const handle = await startDaemon(fake.deps, { shutdownGraceMs: 1_000 });
  running.push(handle);
  return handle;
}

async function stop(handle: DaemonHandle): Promise<void> {
  handle.stop();
  await handle.done;
}

afterEach(async () => {
  for (const handle of running.splice(0)) {
    handle.stop();
    await Promise.race([handle.done, new Promise((r) => setTimeout(r, 5_000))]);
  }
});
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

const until = (assertion: () => void, timeout = 10_000) => vi.waitFor(assertion, { timeout, interval: 10 });

const apiError = (status: number, type: string, message: string, headers: Record<string, string> = {}) =>
  Anthropic.APIError.generate(status, { type: "error", error: { type, message } }, undefined, new Headers(headers));

/** The last snapshot the first daemon persisted, read back through state/snapshot.json's own parser. */
async function restoreFrom(fake: FakeRelay, into: FakeRelay): Promise<void> {
  const last = fake.snapshots.at(-1)?.snapshot;
  const dir = await mkdtemp(join(tmpdir(), "relay-weeks-"));
  dirs.push(dir);
  const paths = relayPaths(dir);
  await mkdir(paths.state, { recursive: true });
  await writeFile(paths.snapshot, JSON.stringify({ format: "relay-snapshot/2", savedAt: new Date().toISOString(), snapshot: last }));
  const restored = await readSnapshot(paths);
  expect(restored.kind).toBe("ok");
  into.deps.snapshots.read = async () => restored;
}

describe("restart means retry", { timeout: 60_000 }, () => {
  it("a relay restored paused by a 401 calls again at once, not at its next probe five minutes on", async () => {
    const first = fakeRelay(fakeConfig({ sessions: [session("s1")] }));
    first.api.reply = () => ({ error: apiError(401, "authentication_error", "invalid x-api-key") });
    first.inbox.drop("s1", "hello");
    const h1 = await start(first);
    await until(() => expect(first.statuses.at(-1)?.state).toBe("paused"));
    await stop(h1);

    const second = fakeRelay(fakeConfig({ sessions: [session("s1")] }));
    second.inbox.drop("s1", "hello");
    await restoreFrom(first, second);
    const startedAt = Date.now();
    await start(second);
    await until(() => expect(second.outbox.delivered.map((d) => d.text)).toEqual([expect.stringContaining("reply to")]), 30_000);
    expect(Date.now() - startedAt).toBeLessThan(30_000);
  });

  it("a conversation restored backing off (a 503 asking for an hour) calls again at once", async () => {
    const first = fakeRelay(fakeConfig({ sessions: [session("s1")] }));
    first.api.reply = () => ({ error: apiError(503, "api_error", "unavailable", { "retry-after": "3600" }) });
    first.inbox.drop("s1", "hello");
    const h1 = await start(first);
    await until(() => expect(first.statuses.at(-1)?.state).toBe("backingOff"));
    expect(Date.parse(first.statuses.at(-1)?.retry?.nextTryAt ?? "")).toBeGreaterThan(Date.now() + 3_000_000);
    await stop(h1);

    const second = fakeRelay(fakeConfig({ sessions: [session("s1")] }));
    second.inbox.drop("s1", "hello");
    await restoreFrom(first, second);
    await start(second);
    await until(() => expect(second.outbox.delivered.map((d) => d.text)).toEqual([expect.stringContaining("reply to")]), 30_000);
  });
});

describe("clocks", { timeout: 60_000 }, () => {
  it("a retry due in 300 ms comes on time when the wall clock steps back an hour meanwhile", async () => {
    const fake = fakeRelay(fakeConfig({ sessions: [session("s1")] }));
    let offset = 0;
    fake.deps.now = () => Date.now() + offset;
    let failed = false;
    fake.api.reply = (text) => {
      if (!failed) {
        failed = true;
        return { error: apiError(503, "api_error", "unavailable", { "retry-after-ms": "300" }) };
      }
      return `reply to ${text}`;
    };
    fake.inbox.drop("s1", "hello");
    await start(fake);
    await until(() => expect(fake.statuses.at(-1)?.state).toBe("backingOff"));
    offset = -3_600_000; // the clock is stepped back an hour
    const steppedAt = Date.now();
    await until(() => expect(fake.outbox.delivered.map((d) => d.text)).toEqual([expect.stringContaining("reply to")]), 30_000);
    expect(Date.now() - steppedAt).toBeLessThan(30_000);
  });

  it("a gate backing off after a 429 probes on time when the wall clock steps back an hour", async () => {
    const fake = fakeRelay(fakeConfig({ sessions: [session("s1")] }));
    let offset = 0;
    fake.deps.now = () => Date.now() + offset;
    let limited = false;
    fake.api.reply = (text) => {
      if (!limited) {
        limited = true;
        return { error: apiError(429, "rate_limit_error", "slow down", { "retry-after-ms": "300" }) };
      }
      return `reply to ${text}`;
    };
    fake.inbox.drop("s1", "hello");
    await start(fake);
    await until(() => expect(fake.statuses.at(-1)?.retry?.kind).toBe("transient"));
    expect(fake.statuses.at(-1)?.state).toBe("backingOff");
    offset = -3_600_000;
    await until(() => expect(fake.outbox.delivered.map((d) => d.text)).toEqual([expect.stringContaining("reply to")]), 30_000);
  });

  it("a deadline a day away (the clock stepped back a day as the failure was stamped) waits at most the longest back-off", async () => {
    const fake = fakeRelay(fakeConfig({ sessions: [session("s1")] }));
    let offset = 0;
    let monoOffset = 0;
    fake.deps.now = () => Date.now() + offset;
    fake.deps.monotonic = () => performance.now() + monoOffset;
    let failures = 0;
    // the failure is stamped with now(), then random() draws its jitter: the clock steps back a day in between
    fake.deps.random = () => {
      if (failures === 1 && offset === 0) offset = -86_400_000;
      return 0.5;
    };
    fake.api.reply = (text) => {
      failures += 1;
      return failures === 1 ? { error: apiError(503, "api_error", "unavailable", { "retry-after-ms": "300" }) } : `reply to ${text}`;
    };
    fake.inbox.drop("s1", "hello");
    await start(fake);
    await until(() => expect(fake.statuses.at(-1)?.state).toBe("backingOff"));
    expect(offset).toBe(-86_400_000);
    await new Promise((r) => setTimeout(r, 200));
    expect(fake.outbox.delivered).toEqual([]); // by the wall clock the retry is a day away
    monoOffset = LONGEST_WAIT_MS + 1_000; // an hour passes
    await until(() => expect(fake.outbox.delivered.map((d) => d.text)).toEqual([expect.stringContaining("reply to")]), 30_000);
  });
});

describe("one clock for every conversation", { timeout: 60_000 }, () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("50 conversations backing off arm one timer, which sleeps until the earliest deadline and wakes for each in turn", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval", "Date", "performance"] });
    const ids = Array.from({ length: 50 }, (_, i) => `s${i}`);
    // the poll interval is longer than every deadline: only the deadlines wake the loop
    const fake = fakeRelay(fakeConfig({ sessions: ids.map((id) => session(id)), maxParallelCalls: 50, pollIntervalMs: 600_000 }));
    const failed = new Set<string>();
    // each conversation's first call fails with a 503 asking for 10 s, plus a second per place: s0 first, s49 last
    fake.api.reply = (text) => {
      const id = /work for (s\d+)/.exec(text)?.[1] ?? "";
      if (failed.has(id)) return `reply to ${id}`;
      failed.add(id);
      return { error: apiError(503, "api_error", "unavailable", { "retry-after-ms": String(10_000 + Number(id.slice(1)) * 1_000) }) };
    };
    for (const id of ids) fake.inbox.drop(id, `work for ${id}`);
    const handle = await start(fake);
    const backingOff = () => Object.values(handle.actor.getSnapshot().context.conversations).filter((ref) => ref.getSnapshot().value === "backingOff").length;
    for (let i = 0; i < 2_000 && backingOff() < 50; i++) await vi.advanceTimersByTimeAsync(1);
    expect(backingOff()).toBe(50);
    expect(fake.api.calls).toHaveLength(50);
    expect(vi.getTimerCount()).toBe(1); // the daemon's one sleep, not one timer per conversation

    // nothing wakes before the earliest deadline (s0's); then each conversation is retried at its own, in order
    const firstAt = Date.now();
    await vi.advanceTimersByTimeAsync(9_000);
    expect(fake.api.calls).toHaveLength(50);
    for (const [k, id] of ids.entries()) {
      await vi.advanceTimersByTimeAsync(firstAt + 10_000 + k * 1_000 + 5 - Date.now());
      expect(fake.api.calls.at(-1)?.text).toContain(`work for ${id}`);
      expect(fake.api.calls).toHaveLength(51 + k);
      expect(vi.getTimerCount()).toBe(1);
    }
    await vi.advanceTimersByTimeAsync(100);
    expect(fake.outbox.delivered.map((d) => d.text).sort()).toEqual(ids.map((id) => `reply to ${id}`).sort());
    expect(vi.getTimerCount()).toBe(1);
    vi.useRealTimers();
    await stop(handle);
  });
});
