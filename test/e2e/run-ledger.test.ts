// `relay run` reads a cost ledger that has no summary yet (state/costs.summary.json) after it is
// ready, not before (issue 15: 100,000 lines were half a second of start-up). What must not move:
// the first envelope still waits on today's budget as the whole ledger counts it (a budget never
// fails open, CONTRACT §10), and status.json's first costs are the whole ledger's.
import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, it, type TestContext } from "vitest";
import { makeLedgerRecord } from "../../src/costs/ledger.js";
import { ASIDE_BYTES } from "../../src/costs/ledger-aside.js";
import { configYaml, dropEnvelope, exists, killAll, makeRoot, readStatusJson, Scope, secretsCheck, settle, waitFor } from "../support/cli.js";

afterAll(killAll);

const LONG = 60_000;
const WAIT = 30_000;

/** `old` calls a day or more back, then `today` calls of `usdEach` from the last minutes: the ledger as a long-running relay leaves it. */
async function writeLedger(root: string, old: number, today: number, usdEach: number): Promise<{ totalUsd: number; calls: number }> {
  const now = Date.now();
  const usage = { inputTokens: 1_200, outputTokens: 300, cacheReadTokens: 9_000, cacheWrite5mTokens: 400, cacheWrite1hTokens: 0 };
  const lines: string[] = [];
  let totalUsd = 0;
  for (let i = 0; i < old + today; i++) {
    const at = i < old ? new Date(now - 2 * 86_400_000 - (old - i) * 60_000) : new Date(now - 1_000);
    const rec = { ...makeLedgerRecord({ at, session: "session-1", conversation: "shared", model: "claude-sonnet-4-6", purpose: "reply", usage, latencyMs: 900 }), ...(i < old ? {} : { usd: usdEach }) };
    totalUsd += rec.usd ?? 0;
    lines.push(JSON.stringify(rec));
  }
  await mkdir(join(root, "state"), { recursive: true });
  await writeFile(join(root, "state", "costs.jsonl"), `${lines.join("\n")}\n`);
  return { totalUsd, calls: old + today };
}

/** A root with a $1 daily budget, `ledger` made in it, and an envelope waiting before the relay starts; then the relay, started. */
async function startOnLedger(ctx: TestContext, ledger: (root: string) => Promise<void>) {
  const scope = await Scope.create(ctx);
  const root = await makeRoot({ config: `${configYaml()}budget:\n  daily_usd: 1\n` });
  await ledger(root);
  await dropEnvelope(root, "first.json", { session_id: "session-1", id: "first-1", content: "waiting since before the start" });
  const daemon = await scope.start(root);
  return { scope, root, daemon };
}

describe("relay run with a ledger it has not summarized yet", () => {
  it(
    "holds the first envelope on today's budget as the whole ledger counts it, and writes the whole ledger's costs in status.json",
    async (ctx) => {
      const { expect } = ctx;
      let ledger = { totalUsd: 0, calls: 0 };
      // 20,000 older calls, then 200 of $0.01 today: $2 spent today against a $1 budget
      const { scope, root, daemon } = await startOnLedger(ctx, async (r) => {
        ledger = await writeLedger(r, 20_000, 200, 0.01);
        // over ASIDE_BYTES: read by the worker process (src/costs/ledger-aside.ts), not the daemon
        expect((await stat(join(r, "state", "costs.jsonl"))).size).toBeGreaterThan(ASIDE_BYTES);
        expect(await exists(join(r, "state", "costs.summary.json"))).toBe(false);
      });
      const question = await waitFor(
        async () => {
          const s = await readStatusJson(root).catch(() => null);
          return s?.questions[0] ?? null;
        },
        { what: "a budget question in status.json", timeoutMs: WAIT },
      );
      expect(question.kind).toBe("budget");
      expect(question.question).toContain("daily budget of $1.00 is spent");
      await settle(5);
      expect(scope.fake.requests).toHaveLength(0);
      const status = await readStatusJson(root);
      expect(status.cost.calls).toBe(ledger.calls);
      expect(status.cost.totalUsd).toBeCloseTo(ledger.totalUsd, 6);
      expect(status.cost.todayUsd).toBeCloseTo(2, 6);
      // read once: the summary is saved for the next start
      const saved = await waitFor(() => readFile(join(root, "state", "costs.summary.json"), "utf8").catch(() => null), { what: "state/costs.summary.json", timeoutMs: WAIT });
      expect(JSON.parse(saved)).toMatchObject({ format: expect.stringMatching(/^relay-costs-summary\//) });
      expect(daemon.stderr()).toContain("cost ledger summarized by a worker process");
    },
    LONG,
  );

  it(
    "stops with exit 1, saying why, when the ledger cannot be read: no call is made on a spend it does not know",
    async (ctx) => {
      const { expect } = ctx;
      // a directory where the ledger should be
      const { scope, daemon } = await startOnLedger(ctx, (r) => mkdir(join(r, "state", "costs.jsonl"), { recursive: true }).then(() => undefined));
      const exit = await daemon.exited;
      expect(exit.code, daemon.stderr()).toBe(1);
      expect(daemon.stderr()).toContain("cannot read state/costs.jsonl");
      expect(scope.fake.requests).toHaveLength(0);
    },
    LONG,
  );
});

secretsCheck();
