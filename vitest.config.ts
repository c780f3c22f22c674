import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    exclude: ["test/live/**"],
    // Generous: the suite must hold on a busy 2-core machine, where a daemon can take seconds to start.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    // Three test files at a time on the 2-core machine: most tests wait on child processes (a
    // relay, Claude Code, nats-server), so a third file overlaps those waits (measured: the whole
    // suite, 94 files, took 565 s with 3; with 2 it took 572 s when it had 74 files).
    maxWorkers: 3,
  },
});
