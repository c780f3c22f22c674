// An idle relay wakes once per poll interval: a tick while the relay is at rest runs a step only
// when the synchronous look (deps.wakeups.missedSomething) finds something the watchers may have
// missed; a relay with work under way keeps the full tick, the safety net, every interval.
// Layer 2 (the real daemon loop over deps in memory, polling every 20 ms) and the file look
// itself (src/runtime/poll-look.ts) on a temp root.
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import { relayPaths } from "../../src/config/paths.js";
import { type DaemonHandle, startDaemon } from "../../src/runtime/daemon.js";
import { pollLook } from "../../src/runtime/poll-look.js";
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

/** A fake relay whose steps are counted (each reads the permission prompts once) and whose look answers `missed()`. */
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
