import { readdirSync } from "node:fs";
import { defineConfig } from "vitest/config";
import { LongestFirstSequencer } from "./test/support/sequencer.js";

/**
 * The in-process tests: no module state of their own that outlives a file, no module mocks, no
 * child processes. They share their worker's module cache (isolate: false), which saves the CPU a
 * fresh worker costs per file (measured: the unit and machine files, 70 → 43 s of CPU; the 13
 * named below, 14 → 8 s). Not here: the NATS unit files (their own helpers and servers) and
 * queue-read-race (vi.mock of node:fs/promises, which would leak into the files after it).
 */
const SHARED_WORKER = [
  ...["test/unit", "test/machines"]
    .flatMap((dir) => readdirSync(dir).map((name) => `${dir}/${name}`))
    .filter((file) => file.endsWith(".test.ts") && !file.startsWith("test/unit/nats-") && file !== "test/unit/queue-read-race.test.ts"),
  ...["budget", "fake-anthropic", "ledger", "notification", "ntfy-replies", "ntfy", "pricing", "readme-chart"].map((name) => `test/${name}.test.ts`),
  ...["hook/handover", "hook/stop-failure", "hook/transcript", "http/history-api", "http/limits"].map((name) => `test/${name}.test.ts`),
];

export default defineConfig({
  test: {
    // Generous: the suite must hold on a busy 2-core machine, where a daemon can take seconds to start.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    // vitest's default is one file fewer than the cores: ONE file at a time on a 2-core machine,
    // which left a core idle while most files wait on child processes. Two at a time still used
    // only 1.59 of the 2 cores (466 s); three use 1.86 (409 s). See the README's "Development".
    maxWorkers: 3,
    // The slowest files start first, also from a fresh clone with no vitest cache (test/support/sequencer.ts).
    sequence: { sequencer: LongestFirstSequencer },
    projects: [
      { extends: true, test: { name: "shared-worker", include: SHARED_WORKER, isolate: false } },
      { extends: true, test: { name: "own-worker", include: ["test/**/*.test.ts"], exclude: ["test/live/**", ...SHARED_WORKER], isolate: true } },
    ],
  },
});
