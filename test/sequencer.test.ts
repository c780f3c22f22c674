// The suite's file order (test/support/sequencer.ts): the slowest files start first, from a fresh
// clone (no vitest cache: CI) as well as from a cache, so no long file starts last.
import { access } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { TestSpecification, Vitest } from "vitest/node";
import { REPO_ROOT } from "./support/cli.js";
import { LongestFirstSequencer, MEASURED_SECONDS } from "./support/sequencer.js";

const ROOT = "/repo";

/** A sequencer over a cache holding `durations` (ms, by file) and `sizes` (bytes, by file). */
function sequencer(durations: Record<string, number>, sizes: Record<string, number>): LongestFirstSequencer {
  const file = (key: string): string => key.slice(key.indexOf(":") + 1);
  const ctx = {
    config: { root: ROOT },
    cache: {
      getFileTestResults: (key: string) => {
        const duration = durations[file(key)];
        return duration === undefined ? undefined : { duration, failed: false };
      },
      getFileStats: (key: string) => {
        const size = sizes[file(key)];
        return size === undefined ? undefined : { size };
      },
    },
  };
  return new LongestFirstSequencer(ctx as unknown as Vitest);
}

const spec = (file: string): TestSpecification => ({ project: { name: "" }, moduleId: join(ROOT, file) }) as unknown as TestSpecification;
const order = async (s: LongestFirstSequencer, files: string[]): Promise<string[]> => (await s.sort(files.map(spec))).map((f) => f.moduleId.slice(ROOT.length + 1));

describe("the suite's file order", () => {
  it("with no cache (a fresh clone), starts the measured slow files first, longest first, then the rest largest first", async () => {
    const sizes = { "test/claude-code/claude-code-2.1.332.test.ts": 166, "test/e2e/nats-cluster.test.ts": 4871, "test/big.test.ts": 40_000, "test/small.test.ts": 900 };
    const got = await order(sequencer({}, sizes), ["test/small.test.ts", "test/big.test.ts", "test/e2e/nats-cluster.test.ts", "test/claude-code/claude-code-2.1.332.test.ts"]);
    expect(got).toEqual(["test/claude-code/claude-code-2.1.332.test.ts", "test/e2e/nats-cluster.test.ts", "test/big.test.ts", "test/small.test.ts"]);
  });

  it("takes vitest's cached durations over the written-down ones", async () => {
    const durations = { "test/e2e/nats-cluster.test.ts": 300_000, "test/small.test.ts": 200_000 };
    const got = await order(sequencer(durations, {}), ["test/claude-code/claude-code-2.1.332.test.ts", "test/small.test.ts", "test/e2e/nats-cluster.test.ts"]);
    expect(got).toEqual(["test/e2e/nats-cluster.test.ts", "test/small.test.ts", "test/claude-code/claude-code-2.1.332.test.ts"]);
  });

  it("names only files that exist (a renamed file would silently lose its place)", async () => {
    for (const file of Object.keys(MEASURED_SECONDS)) await expect(access(join(REPO_ROOT, file)), file).resolves.toBeUndefined();
  });
});
