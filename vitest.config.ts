import { defineConfig } from "vitest/config";
import { LongestFirstSequencer } from "./test/support/sequencer.js";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    exclude: ["test/live/**"],
    // Generous: the suite must hold on a busy 2-core machine, where a daemon can take seconds to start.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    // vitest's default is one file fewer than the cores: ONE file at a time on a 2-core machine,
    // which left a core idle while most files wait on child processes.
    maxWorkers: 2,
    // The slowest files start first, also from a fresh clone with no vitest cache (test/support/sequencer.ts).
    sequence: { sequencer: LongestFirstSequencer },
  },
});
