import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { endStopFailureStreak, recordStopFailure, resetTimeIn, stopFailureStreaks } from "../../src/claude-code/stop-failure.js";
import { relayPaths, type RelayPaths } from "../../src/config/paths.js";
import { ensureDirs } from "../../src/store/files.js";

describe("state/stop-failures/: a session's streak of turns ending on API errors", () => {
  let root: string;
  let paths: RelayPaths;

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), "relay-stop-failure-"));
    paths = relayPaths(root);
    await ensureDirs(paths.state);
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  const failure = { session_id: "cc-1", cwd: "/work/p", error: "rate_limit", last_assistant_message: "API Error: rate limit, resets at 3pm (UTC)" };

  it("the first failure starts a streak; later ones count in it; a normal stop ends it", async () => {
    const first = await recordStopFailure(paths, "s1", failure, new Date("2026-11-29T10:00:00Z"));
    const second = await recordStopFailure(paths, "s1", failure, new Date("2026-11-29T10:01:00Z"));
    expect(second).toMatchObject({ streak: first.streak, count: 2, first: "2026-11-29T10:00:00.000Z", last: "2026-11-29T10:01:00.000Z", resetsAt: "at 3pm (UTC)" });
    expect(await stopFailureStreaks(paths)).toEqual([second]);
    await endStopFailureStreak(paths, "s1");
    const next = await recordStopFailure(paths, "s1", failure, new Date("2026-11-29T10:02:00Z"));
    expect(next.count).toBe(1);
    expect(next.streak).not.toBe(first.streak);
  });

  it("hooks recording at once each count (Claude Code does not wait for one before starting the next)", async () => {
    const at = new Date("2026-11-29T10:00:00Z");
    await Promise.all(Array.from({ length: 8 }, () => recordStopFailure(paths, "s1", failure, at)));
    const [streak] = await stopFailureStreaks(paths);
    expect(streak?.count).toBe(8);
    // the lock file is hidden from the relay, which reads <session>.json only
    expect((await readdir(join(paths.state, "stop-failures"))).sort()).toEqual([".s1.lock", "s1.json"]);
  });

  it("reads the reset time from the error's text when it says one", () => {
    expect(resetTimeIn("You've hit your limit · resets 3pm (Europe/Paris)")).toBeNull();
    expect(resetTimeIn("limit reached, resets in 2 hours.")).toBe("in 2 hours");
  });
});
