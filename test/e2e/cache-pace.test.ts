// cache_ttl: auto end to end: the relay against the stand-in Messages API, with the relay's clock
// and the stand-in's cache clock moved forward together (RELAY_CLOCK_SKEW_FILE, setNow), so a
// conversation's pace of minutes or hours is simulated without waiting.
import { mkdir, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, it } from "vitest";
import { readLedger } from "../../src/costs/ledger.js";
import {
  bodyOf,
  configYaml,
  dropEnvelope,
  killAll,
  lastUserText,
  makeRoot,
  readHistory,
  runCli,
  Scope,
  SUMMARIZATION_PROMPT,
  waitFor,
} from "../support/cli.js";
import type { RecordedRequest } from "../support/fake-anthropic.js";

afterAll(killAll);

const MIN = 60_000;
/** ~1,500 tokens by the stand-in's count: over Sonnet's 1,024-token minimum, so every prefix is cacheable. */
const LONG_SYSTEM_PROMPT = `${"You are the e2e reviewer. Answer each session briefly. ".repeat(110)}`.trim();

/**
 * The lifetime a request's breakpoints carry: the last system block's, or none; "hedge" for a
 * first call's 1h on the system prompt's first block and 5m after it. Under cache_ttl: auto the
 * system prompt is two blocks (the hedge's cut), with the breakpoint on the second after the
 * first call.
 */
const ttlOf = (r: RecordedRequest | undefined): string => {
  const system = bodyOf(r).system;
  const blocks = Array.isArray(system) ? system : [];
  const lifetime = (cc: { ttl?: string } | undefined) => (cc === undefined ? "none" : (cc.ttl ?? "5m"));
  const [first, last] = [lifetime(blocks[0]?.cache_control), lifetime(blocks.at(-1)?.cache_control)];
  return blocks.length === 2 && first === "1h" && last === "5m" ? "hedge" : last;
};

const turnsIn = async (root: string): Promise<number> => Object.values(await readHistory(root)).flat().filter((l) => l.kind === "turn").length;

describe.concurrent("cache_ttl: auto", () => {
  it("follows the conversation's pace (5m a minute apart, 1h a quarter-hour apart, no cache hours apart), and relay costs compares the choices", async (ctx) => {
    const { expect } = ctx;
    const scope = await Scope.create(ctx);
    const { fake } = scope;
    fake.setResponder((r) => `ok ${/env-\d+/.exec(r.lastUserText)?.[0] ?? "?"}`);
    const root = await makeRoot({ config: configYaml({ systemPrompt: LONG_SYSTEM_PROMPT, sessions: ["session-1"] }) });
    const skewFile = join(root, "clock-skew");
    let skew = 0;
    fake.setNow(() => Date.now() + skew);
    const advance = async (ms: number) => {
      skew += ms;
      await writeFile(skewFile, String(skew));
    };
    await mkdir(join(root, "queue"), { recursive: true });
    await scope.start(root, { RELAY_CLOCK_SKEW_FILE: skewFile });

    const paces = [...Array<number>(4).fill(1 * MIN), ...Array<number>(4).fill(15 * MIN), ...Array<number>(5).fill(90 * MIN)];
    for (const [i, gap] of paces.entries()) {
      if (i > 0) await advance(gap);
      // written whole, then renamed (CONTRACT §5): with the relay's clock ahead, a file caught
      // half-written would be past the settle window at once
      await writeFile(join(root, "queue", `.${i}.tmp`), JSON.stringify({ session_id: "session-1", content: `env-${i} please review` }));
      await rename(join(root, "queue", `.${i}.tmp`), join(root, "queue", `${i}.json`));
      // the turn is in the history (its call time recorded) before the clock moves again
      await waitFor(async () => (await turnsIn(root)) === i + 1, { what: `turn ${i + 1} recorded`, timeoutMs: 30_000 });
    }

    const ttls = fake.requests.map(ttlOf);
    // the system prompt in two blocks, alike in every request
    const systemTexts = fake.requests.map((r) => {
      const system = bodyOf(r).system;
      return JSON.stringify(Array.isArray(system) ? system.map((b) => b.text) : [system]);
    });
    expect(new Set(systemTexts).size).toBe(1);
    expect(bodyOf(fake.requests[0]).system).toHaveLength(2);
    // the first call, no pace yet: the hedge (1h on the system prompt's first part, 5m after it); a minute apart: 5m; from the first quarter-hour gap: 1h; once most recent gaps are 90
    // minutes (the 1h price passes plain input, and the last 1h cache is dead): no cache write
    expect(ttls).toEqual(["hedge", "5m", "5m", "5m", "1h", "1h", "1h", "1h", "1h", "1h", "1h", "none", "none"]);

    // every call's choice and reason are in the ledger; the stand-in billed the 1h cache's reads
    const ledger = await waitFor(async () => {
      const lines = await readLedger(root);
      return lines.length === paces.length ? lines : null;
    });
    // the hedge is recorded as 1h, its longest-lived part, with its reason
    expect(ledger.map((l) => l.cache?.ttl)).toEqual(ttls.map((t) => (t === "hedge" ? "1h" : t)));
    expect(ledger[0]?.cache?.reason).toMatch(/^auto: no pace yet \(first call\), hedge: 1h on the first \d+ % of the system prompt/);
    expect(ledger[0]?.cacheWrite1hTokens).toBeGreaterThanOrEqual(1024);
    expect(ledger[0]?.cacheWrite5mTokens).toBeGreaterThan(0);
    expect(ledger[5]?.cache?.reason).toMatch(/^auto: \d gaps, median 1m; expected prefix price 5m 0\.\d+x, 1h 0\.10x/);
    expect(ledger[5]?.cache?.gapMs).toBeGreaterThanOrEqual(15 * MIN);
    for (const i of [5, 6, 7]) expect(ledger[i]?.cacheReadTokens).toBeGreaterThan(1000);
    expect(ledger[8]?.cacheReadTokens).toBe(0);

    const json = await runCli(["costs", "--root", root, "--json"]);
    expect(json.code).toBe(0);
    const report = JSON.parse(json.stdout) as { totalUsd: number; cacheComparison: { paceCalls: number; paceUsd: number; noneUsd: number; ttl5mUsd: number; ttl1hUsd: number } };
    const c = report.cacheComparison;
    expect(c.paceCalls).toBe(paces.length);
    expect(c.paceUsd).toBeCloseTo(report.totalUsd, 9);
    expect(c.paceUsd).toBeLessThan(c.noneUsd);
    expect(c.paceUsd).toBeLessThan(c.ttl5mUsd);
    const text = await runCli(["costs", "--root", root]);
    expect(text.stdout).toMatch(/the same 13 calls as run: \$[\d.]+; with cache_ttl 5m: \$[\d.]+, 1h: \$[\d.]+, no caching: \$[\d.]+ \(same tokens and gaps\)/);
  });

  it("a summary reads the conversation's cached prefix: the last request byte for byte, then its reply and the summarization prompt", async (ctx) => {
    const { expect } = ctx;
    const scope = await Scope.create(ctx);
    const { fake } = scope;
    fake.setResponder((r) => (r.lastUserText.includes(SUMMARIZATION_PROMPT) ? "SUMMARY: env-0 and env-1." : `reply to ${/env-\d/.exec(r.lastUserText)?.[0] ?? "?"} `.padEnd(250, "r")));
    const root = await makeRoot({ config: configYaml({ systemPrompt: LONG_SYSTEM_PROMPT, keepRecentTurns: 2, sessions: ["session-1"] }) });
    await scope.start(root, { HISTORY_CHAR_CAP: "2000" });
    for (let i = 0; i < 4; i++) {
      await dropEnvelope(root, `${i}.json`, { session_id: "session-1", content: `env-${i} `.padEnd(300, "c") });
      await waitFor(() => fake.requests.length >= i + 1, { what: `request ${i + 1}`, timeoutMs: 30_000 });
    }
    await waitFor(() => fake.requests.length === 5, { what: "the summary request", timeoutMs: 30_000 });
    const [last, summary] = [bodyOf(fake.requests[3]), bodyOf(fake.requests[4])];
    expect(lastUserText(fake.requests[4])).toContain(SUMMARIZATION_PROMPT);
    expect(JSON.stringify(summary.system)).toBe(JSON.stringify(last.system));
    expect(JSON.stringify(summary.messages.slice(0, last.messages.length))).toBe(JSON.stringify(last.messages));
    expect(summary.messages.slice(last.messages.length).map((m) => m.role)).toEqual(["assistant", "user"]);

    // billed as a read of the whole last request, nothing written
    const ledger = await waitFor(async () => {
      const lines = await readLedger(root);
      return lines.length === 5 ? lines : null;
    });
    const before = ledger[3];
    const summaryLine = ledger[4];
    expect(summaryLine?.purpose).toBe("summary");
    expect(summaryLine?.cacheReadTokens).toBe((before?.inputTokens ?? 0) + (before?.cacheWriteTokens ?? 0) + (before?.cacheReadTokens ?? 0));
    expect(summaryLine?.cacheWriteTokens).toBe(0);
    await waitFor(async () => Object.values(await readHistory(root))[0]?.[0]?.kind === "summary", { what: "the summary written" });
  });
});
