/**
 * The order the suite's files start in: longest first, so the last file to start is a short one
 * and the two workers finish together. vitest orders by the durations in its cache
 * (node_modules/.vite), but a fresh clone (CI: `npm ci` empties node_modules) has none, and its
 * fallback, largest file first, starts the two real-Claude-Code files (the longest, ~100 s each,
 * but 166 bytes) last: a tail of ~2 minutes with one worker idle. So the slowest files' durations
 * are written down here, measured, and used where the cache has none.
 */
import { relative } from "node:path";
import { BaseSequencer, type TestSpecification } from "vitest/node";

/** Seconds per file on a quiet 2-core machine (vitest's own per-file durations), the slowest only; the rest follow by size. */
export const MEASURED_SECONDS: Readonly<Record<string, number>> = {
  "test/claude-code/claude-code-2.1.197.test.ts": 110,
  "test/claude-code/claude-code-2.1.332.test.ts": 110,
  "test/e2e/nats-cluster.test.ts": 50,
  "test/e2e/conversations.test.ts": 45,
  "test/hook/claude-stop.test.ts": 40,
  "test/e2e/nats-crash.test.ts": 45,
  "test/e2e/nats-partition.test.ts": 37,
  "test/faults/soak-nats.test.ts": 33,
  "test/e2e/nats.test.ts": 24,
  "test/e2e/nats-agent-root.test.ts": 24,
  "test/e2e/doctor.test.ts": 23,
  "test/e2e/migration.test.ts": 19,
  "test/e2e/permissions-policy.test.ts": 18,
  "test/hook/install.test.ts": 17,
  "test/e2e/crash-parallel.test.ts": 16,
  "test/service.test.ts": 16,
  "test/e2e/crash.test.ts": 16,
};

export class LongestFirstSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const root = this.ctx.config.root;
    const key = (f: TestSpecification): string => `${f.project.name}:${relative(root, f.moduleId)}`;
    const durationMs = (f: TestSpecification): number | null => {
      const cached = this.ctx.cache.getFileTestResults(key(f));
      if (cached) return cached.duration;
      const measured = MEASURED_SECONDS[relative(root, f.moduleId)];
      return measured === undefined ? null : measured * 1000;
    };
    const size = (f: TestSpecification): number => this.ctx.cache.getFileStats(key(f))?.size ?? 0;
    return [...files].sort((a, b) => {
      const da = durationMs(a);
      const db = durationMs(b);
      if (da !== null && db !== null) return db - da;
      if (da !== null) return -1;
      if (db !== null) return 1;
      return size(b) - size(a);
    });
  }
}
