// An idle relay wakes once per poll interval: a tick while the relay is at rest runs a step only
// when the synchronous look (deps.wakeups.missedSomething) finds something the watchers may have
// missed; a relay with work under way keeps the full tick, the safety net, every interval.
// Layer 2 (the real daemon loop over deps in memory, polling every 20 ms) and the file look
// itself (src/runtime/poll-look.ts) on a temp root.
import { mkdir, mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import { relayPaths } from "../../src/config/paths.js";
import { type DaemonHandle, startDaemon } from "../../src/runtime/daemon.js";
import { pollLook, REST_LOOK_INTERVAL_MS } from "../../src/runtime/poll-look.js";
import type { WakeReason } from "../../src/runtime/deps.js";
import { type StateWatch, watchState } from "../../src/runtime/state-watch.js";
import { type FakeRelay, fakeRelay } from "../support/fake-deps.js";

const running: DaemonHandle[] = [];
afterEach(async () => {
  for (const handle of running.splice(0)) {
    handle.stop();
    await Promise.race([handle.done, new Promise((r) => setTimeout(r, 5_000))]);
  }
});
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
const until = (assertion: () => void, timeout = 10_000) => vi.waitFor(assertion, { timeout, interval: 10 });

/**
 * A fake relay whose full steps are counted (a step the safety net or a wake-up naming every
 * reason runs reads the permission prompts once) and whose look answers `missed()`.
 */
function counted(missed: () => boolean): { fake: FakeRelay; steps: () => number; looks: () => number } {
  const fake = fakeRelay();
  let steps = 0;
  let looks = 0;
  const pending = fake.deps.permissions.pending;
  fake.deps.permissions.pending = () => {
    steps += 1;
    return pending();
  };
  fake.deps.wakeups.missedSomething = () => {
    looks += 1;
    return missed();
  };
  return { fake, steps: () => steps, looks: () => looks };
}

describe("poll ticks of the daemon loop", () => {
  it("at rest, a tick whose look finds nothing runs no step (one wake-up per interval)", async () => {
    const { fake, steps, looks } = counted(() => false);
    running.push(await startDaemon(fake.deps, { shutdownGraceMs: 1_000 }));
    await until(() => expect(looks()).toBeGreaterThanOrEqual(2));
    const before = steps();
    const looksBefore = looks();
    await pause(400);
    expect(looks() - looksBefore).toBeGreaterThanOrEqual(3); // the timer still ticks (20 ms)
    expect(steps()).toBe(before);
  });

  it("at rest, a tick whose look finds something runs a step", async () => {
    let missed = false;
    const { fake, steps, looks } = counted(() => missed);
    running.push(await startDaemon(fake.deps, { shutdownGraceMs: 1_000 }));
    await until(() => expect(looks()).toBeGreaterThanOrEqual(2));
    const before = steps();
    missed = true;
    await until(() => expect(steps()).toBeGreaterThan(before + 2));
  });

  it("with a reply waiting for its acknowledgement, every tick runs a step whatever the look says", async () => {
    const { fake, steps, looks } = counted(() => false);
    fake.inbox.drop("s1", "hello");
    running.push(await startDaemon(fake.deps, { shutdownGraceMs: 1_000 }));
    await until(() => expect(fake.outbox.delivered).toHaveLength(1));
    const before = steps();
    const looksBefore = looks();
    await pause(400);
    expect(steps() - before).toBeGreaterThanOrEqual(3);
    expect(looks()).toBe(looksBefore);
  });

  it("at rest with every watcher up, the look comes only every REST_LOOK_INTERVAL_MS, not every poll interval", async () => {
    const { fake, looks } = counted(() => false);
    fake.deps.wakeups.watchingAll = () => true;
    running.push(await startDaemon(fake.deps, { shutdownGraceMs: 1_000 }));
    await pause(600); // 30 poll intervals of 20 ms
    expect(REST_LOOK_INTERVAL_MS).toBeGreaterThan(600);
    expect(looks()).toBe(0);
    fake.inbox.drop("s1", "an event still wakes it at once");
    fake.wake();
    await until(() => expect(fake.outbox.delivered).toHaveLength(1));
  });

  it("at rest with a watcher down, the look comes every poll interval again", async () => {
    let watching = true;
    const { fake, looks } = counted(() => false);
    fake.deps.wakeups.watchingAll = () => watching;
    running.push(await startDaemon(fake.deps, { shutdownGraceMs: 1_000 }));
    await pause(200);
    expect(looks()).toBe(0);
    watching = false;
    fake.wake(); // the next sleep is computed with the watcher down
    await until(() => expect(looks()).toBeGreaterThanOrEqual(3));
  });

  it("a step woken by another event does not read the permission prompts; an event naming them does", async () => {
    const { fake, steps } = counted(() => false);
    fake.deps.wakeups.watchingAll = () => true; // at rest, no safety-net tick for REST_LOOK_INTERVAL_MS
    let wakeWith: (reason: WakeReason) => void = () => undefined;
    const start = fake.deps.wakeups.start.bind(fake.deps.wakeups);
    fake.deps.wakeups.start = (onWake) => {
      wakeWith = onWake;
      start(onWake);
    };
    let configReads = 0;
    const config = fake.deps.config;
    fake.deps.config = () => {
      configReads += 1;
      return config();
    };
    const handle = await startDaemon(fake.deps, { shutdownGraceMs: 1_000 });
    running.push(handle);
    await pause(100);
    const before = steps();
    const readsBefore = configReads;
    fake.permissions.pending.push({ id: "p-1-aaaaaa", session: "s1", text: "s1 asks permission to run Bash: ls", since: Date.now() });
    for (let i = 0; i < 3; i++) {
      wakeWith("other");
      await pause(20);
    }
    await until(() => expect(configReads).toBeGreaterThanOrEqual(readsBefore + 3)); // three steps ran
    expect(steps()).toBe(before);
    expect(handle.actor.getSnapshot().context.questions).toEqual([]);
    wakeWith("permissions");
    await until(() => expect(handle.actor.getSnapshot().context.questions.map((q) => q.id)).toEqual(["p-1-aaaaaa"]));
    expect(steps()).toBe(before + 1);
  });

  it("an event still wakes a relay at rest at once (a new envelope is answered)", async () => {
    const { fake, looks } = counted(() => false);
    running.push(await startDaemon(fake.deps, { shutdownGraceMs: 1_000 }));
    await until(() => expect(looks()).toBeGreaterThanOrEqual(2));
    fake.inbox.drop("s1", "after a quiet while");
    fake.wake();
    await until(() => expect(fake.outbox.delivered).toHaveLength(1));
  });
});

describe("the look at a root (poll-look.ts)", () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  it("is true at first, then only for JC's answer, a resume request, an envelope in queue/ or a change in state/permissions/ or state/stop-failures/", async () => {
    const root = await mkdtemp(join(tmpdir(), "relay-look-"));
    dirs.push(root);
    const paths = relayPaths(root);
    await mkdir(join(paths.state, "permissions"), { recursive: true });
    await mkdir(paths.queue, { recursive: true });
    const look = pollLook(paths, { queue: true });
    expect(look()).toBe(true);
    expect(look()).toBe(false);
    await writeFile(join(paths.queue, ".env-1.json.tmp"), "{");
    expect(look()).toBe(false); // a write under way is not an envelope yet
    await writeFile(paths.jcInput, "yes");
    expect(look()).toBe(true);
    await rm(paths.jcInput);
    await writeFile(paths.resumeRequest, "");
    expect(look()).toBe(true);
    await rm(paths.resumeRequest);
    expect(look()).toBe(false);
    await writeFile(join(paths.state, "permissions", "p1.json"), "{}");
    expect(look()).toBe(true);
    expect(look()).toBe(false); // a prompt waiting for JC is not news at every tick
    await rm(join(paths.state, "permissions", "p1.json"));
    expect(look()).toBe(true); // withdrawn
    expect(look()).toBe(false);
    // a StopFailure hook records a streak in a directory the state/ watcher does not see into
    await mkdir(join(paths.state, "stop-failures"), { recursive: true });
    expect(look()).toBe(true);
    expect(look()).toBe(false);
    await new Promise((r) => setTimeout(r, 20)); // a later mtime than the directory's creation
    await writeFile(join(paths.state, "stop-failures", "session-1.json"), "{}");
    expect(look()).toBe(true);
    expect(look()).toBe(false);
    await writeFile(join(paths.queue, "env-1.json"), "{}");
    expect(look()).toBe(true);
    expect(look()).toBe(true); // an envelope waits in queue/: every tick runs a step
    expect(pollLook(paths, { queue: false })()).toBe(true); // first look
  });
});

describe("the watchers on state/ (state-watch.ts)", () => {
  const dirs: string[] = [];
  const open: StateWatch[] = [];
  afterEach(() => {
    for (const w of open.splice(0)) w.close();
  });
  afterAll(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  async function watched(): Promise<{ paths: ReturnType<typeof relayPaths>; wakes: WakeReason[]; w: StateWatch }> {
    const root = await mkdtemp(join(tmpdir(), "relay-state-watch-"));
    dirs.push(root);
    const paths = relayPaths(root);
    await mkdir(paths.state, { recursive: true });
    const wakes: WakeReason[] = [];
    const w = watchState(paths, (reason) => wakes.push(reason));
    open.push(w);
    return { paths, wakes, w };
  }

  it("wake the relay for JC's answer, a resume request, a permission prompt and a StopFailure streak, the subdirectories made after the start", async () => {
    const { paths, wakes, w } = await watched();
    expect(w.up()).toBe(true); // absent subdirectories are not a failure: their creation is an event
    await writeFile(paths.jcInput, "yes");
    await until(() => expect(wakes).toContain("jc"));
    await writeFile(paths.resumeRequest, "");
    await until(() => expect(wakes).toContain("resume"));
    for (const [sub, reason] of [["permissions", "permissions"], ["stop-failures", "stopFailures"]] as const) {
      await mkdir(join(paths.state, sub));
      await until(() => expect(wakes).toContain(reason)); // the directory's creation
      await pause(50); // the watcher on the new directory is attached from state/'s event
      wakes.length = 0;
      await writeFile(join(paths.state, sub, "x.json"), "{}");
      await until(() => expect(wakes).toContain(reason));
      expect(wakes.every((w) => w === reason)).toBe(true);
    }
    expect(w.up()).toBe(true);
  });

  it("a permissions directory removed and made again is watched again", async () => {
    const { paths, wakes } = await watched();
    const dir = join(paths.state, "permissions");
    await mkdir(dir);
    await pause(50);
    await rm(dir, { recursive: true });
    await pause(50);
    await mkdir(dir);
    await pause(50);
    wakes.length = 0;
    await writeFile(join(dir, "p-1.json"), "{}");
    await until(() => expect(wakes).toContain("permissions"));
  });

  it("the relay's own writes into state/ (status, snapshot) wake nothing", async () => {
    const { paths, wakes } = await watched();
    await writeFile(join(paths.state, "status.json.tmp"), "{}");
    await rename(join(paths.state, "status.json.tmp"), join(paths.state, "status.json"));
    await writeFile(join(paths.state, "snapshot.json"), "{}");
    await pause(200);
    expect(wakes).toEqual([]);
  });
});
