import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    exclude: ["test/live/**"],
    // Generous: the suite must hold on a busy 2-core machine, where a daemon can take seconds to start.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    // Two test files at a time (the default on this 2-core machine). Three took the suite (94
    // files) to 565 s, but the NATS crash test then timed out under that load in CI.
  },
});
