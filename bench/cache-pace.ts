// Issue 15's cost rows: billed input at three paces for cache_ttl 5m, 1h and auto (beside no
// caching), and a summarization cycle's billed input before and after summaries rode the cache.
// The relay's own request builder, cache policy and SDK call run against the stand-in, whose cache
// clock is moved forward between calls: minutes and hours are simulated, never waited for.
//
//   node dist-bench/bench/cache-pace.js        (alone: prints its rows; `npm run bench` adds them to the table)
import { pathToFileURL } from "node:url";
import type { WorkItem } from "../machines/types.js";
import { CACHE_CHOICES, type CacheChoice, cacheRatesFor, chooseCacheTtl } from "../src/anthropic/cache-policy.js";
import { buildReplyRequest, buildSummaryRequest, buildTranscriptSummaryRequest, callMessages, createClient, estimatePromptTokens, type MessagesRequest } from "../src/anthropic/messages.js";
import { splitSystemPrompt } from "../src/anthropic/system-split.js";
import { costUsd, type Usage } from "../src/costs/pricing.js";
import { type HistoryEntry, splitForSummary, transcript, turnEntry } from "../src/history/conversation-store.js";
import { callTimesOf } from "../src/runtime/conversation-actors.js";
import type { FakeAnthropic } from "../test/support/fake-anthropic.js";
import { API_KEY, cleanup, closeStandIn, log, MODEL, startStandIn } from "./lib.js";

const MIN = 60_000;
const T0 = Date.parse("2026-11-02T09:00:00Z");
/** ~4,100 tokens by the stand-in's chars/4, as in figure 9 */
const SYSTEM_PROMPT = "You are the benchmark's reviewer. Answer each session briefly. ".repeat(260);
const REPLY = "Reviewed. ".repeat(100);
const CALLS = 40;
/** a fresh conversation's first call has no pace, its second knows one gap: the steady figure leaves them out */
const LEARNING_CALLS = 2;
export const PACES_MIN = [1, 15, 90] as const;
/** "joining": auto in a conversation that starts on a relay whose other conversations already call at this pace */
type Setting = "5m" | "1h" | "auto" | "joining" | "none";
const SETTINGS: readonly Setting[] = ["5m", "1h", "auto", "joining", "none"];
/** the gaps the relay's other conversations show a joining one (their last decisions' recent gaps) */
const OTHERS_GAPS = 4;
/** what a call's breakpoints carried: a lifetime, none, or the first call's hedge (1h on the system prompt's first part, 5m after it) */
type Chosen = CacheChoice | "hedge";
const CHOSEN: readonly Chosen[] = ["hedge", ...CACHE_CHOICES];
const noChoices = (): Record<Chosen, number> => ({ hedge: 0, "5m": 0, "1h": 0, none: 0 });

const item = (i: number): WorkItem => ({ id: `e${i}`, source: "envelope", session: "session-1", text: `envelope ${i}: `.padEnd(1000, "x"), inReplyTo: null });

/** The input side of a call's bill (output left out: it is the same whatever the cache does). */
const billedInput = (usage: Usage): number => costUsd(MODEL, { ...usage, outputTokens: 0 }) ?? Number.NaN;

/** One conversation on a fresh stand-in whose clock the caller moves. */
async function conversation(): Promise<{ fake: FakeAnthropic; call: (req: MessagesRequest) => Promise<number>; setClock: (ms: number) => void; close: () => Promise<void> }> {
  const fake = await startStandIn();
  let clock = T0;
  fake.setNow(() => clock);
  fake.setResponder(() => REPLY);
  const client = await createClient({ apiKey: API_KEY, baseUrl: fake.url, timeoutMs: 30_000 });
  return {
    fake,
    call: async (req) => billedInput((await callMessages(client, req)).usage),
    setClock: (ms) => {
      clock = ms;
    },
    close: () => closeStandIn(fake),
  };
}

/** `calls` turns `gapMs` apart under one setting, as callApi decides them; the billed input in USD. */
async function paced(setting: Setting, gapMs: number, calls: number): Promise<{ usd: number; steadyUsd: number; choices: Record<Chosen, number> }> {
  const c = await conversation();
  const history: HistoryEntry[] = [];
  const choices = noChoices();
  // as relay run renders it: in two blocks under auto, one otherwise
  const systemSplit = setting === "auto" || setting === "joining" ? splitSystemPrompt(SYSTEM_PROMPT, MODEL, cacheRatesFor(MODEL)) : null;
  let last: { ttl: CacheChoice; at: number } | null = null;
  let usd = 0;
  let steadyUsd = 0;
  try {
    for (let i = 0; i < calls; i++) {
      const now = T0 + i * gapMs;
      c.setClock(now);
      const shape = { model: MODEL, maxTokens: 1024, systemPrompt: SYSTEM_PROMPT, history, notes: [], item: item(i) };
      const relayGaps = setting === "joining" ? Array.from({ length: OTHERS_GAPS }, () => gapMs) : [];
      const decision: { ttl: CacheChoice; hedge: boolean } =
        setting === "none"
          ? { ttl: "none", hedge: false }
          : chooseCacheTtl({
              setting: setting === "joining" ? "auto" : setting,
              callTimes: callTimesOf(history),
              now,
              lastWrite: last,
              rates: cacheRatesFor(MODEL),
              promptTokens: estimatePromptTokens(buildReplyRequest({ ...shape, cacheTtl: "none", systemSplit })),
              model: MODEL,
              relayGaps,
              systemSplit,
            });
      const { ttl, hedge } = decision;
      choices[hedge ? "hedge" : ttl] += 1;
      const billed = await c.call(buildReplyRequest({ ...shape, cacheTtl: ttl, hedge, systemSplit }));
      usd += billed;
      if (i >= LEARNING_CALLS) steadyUsd += billed;
      history.push(turnEntry(item(i), REPLY, new Date(now)));
      last = { ttl, at: now };
    }
  } finally {
    await c.close();
  }
  return { usd, steadyUsd, choices };
}

/** A 12-turn conversation a minute apart, then its summary the old way (the folded part as an uncached transcript) or riding the cache. */
async function summaryCycle(riding: boolean): Promise<{ turnsUsd: number; summaryUsd: number }> {
  const c = await conversation();
  const history: HistoryEntry[] = [];
  let turnsUsd = 0;
  try {
    for (let i = 0; i < 12; i++) {
      const now = T0 + i * MIN;
      c.setClock(now);
      turnsUsd += await c.call(buildReplyRequest({ model: MODEL, maxTokens: 1024, systemPrompt: SYSTEM_PROMPT, history, notes: [], item: item(i), cacheTtl: "5m" }));
      history.push(turnEntry(item(i), REPLY, new Date(now)));
    }
    c.setClock(T0 + 11 * MIN + 5_000);
    const split = splitForSummary(history, 2);
    if (!split) throw new Error("nothing to summarize");
    const prompt = "BENCH-SUMMARIZE: fold the conversation into short notes.";
    const request = riding
      ? buildSummaryRequest({ model: MODEL, maxTokens: 1024, systemPrompt: SYSTEM_PROMPT, history, summarizationPrompt: prompt, keptTurns: 2, cacheTtl: "5m" })
      : buildTranscriptSummaryRequest({ model: MODEL, maxTokens: 1024, summarizationPrompt: prompt, transcript: transcript(split.fold) });
    return { turnsUsd, summaryUsd: await c.call(request) };
  } finally {
    await c.close();
  }
}

export interface CachePaceResult {
  calls: number;
  paces: { minutes: number; usd: Record<Setting, number>; steadyUsd: Record<Setting, number>; autoChoices: Record<Chosen, number>; joiningChoices: Record<Chosen, number> }[];
  summary: { before: { turnsUsd: number; summaryUsd: number }; after: { turnsUsd: number; summaryUsd: number } };
}

export async function cachePace(calls = CALLS): Promise<CachePaceResult> {
  const paces: CachePaceResult["paces"] = [];
  for (const minutes of PACES_MIN) {
    const usd = { "5m": 0, "1h": 0, auto: 0, joining: 0, none: 0 };
    const steadyUsd = { ...usd };
    let autoChoices = noChoices();
    let joiningChoices = noChoices();
    for (const s of SETTINGS) {
      const r = await paced(s, minutes * MIN, calls);
      usd[s] = r.usd;
      steadyUsd[s] = r.steadyUsd;
      if (s === "auto") autoChoices = r.choices;
      if (s === "joining") joiningChoices = r.choices;
    }
    paces.push({ minutes, usd, steadyUsd, autoChoices, joiningChoices });
  }
  return { calls, paces, summary: { before: await summaryCycle(false), after: await summaryCycle(true) } };
}

/** A row of the bench's table (bench/run.ts). */
export interface CacheRow {
  figure: string;
  p50: string;
  tail: string;
  target: string;
  baseline: string;
}

const pct = (x: number): string => `${(x * 100).toFixed(1)} %`;
/** the share of the system prompt a first call without a pace writes with 1h */
const HEDGE_SHARE = splitSystemPrompt(SYSTEM_PROMPT, MODEL, cacheRatesFor(MODEL))?.share ?? 0;
const usdOf = (x: number): string => `$${x.toFixed(4)}`;

export function cachePaceRows(r: CachePaceResult): { rows: CacheRow[]; notes: string[] } {
  const rows: CacheRow[] = [];
  for (const p of r.paces) {
    const bestOf = (usd: Record<Setting, number>) => (["5m", "1h", "none"] as const).map((s) => ({ s, usd: usd[s] })).reduce((a, b) => (b.usd < a.usd ? b : a));
    const best = bestOf(p.usd);
    const autoVsBest = p.usd.auto / best.usd;
    const steadyBest = bestOf(p.steadyUsd);
    const steadyVsBest = p.steadyUsd.auto / steadyBest.usd;
    const cell = (s: Setting) => `${s} ${pct(p.usd[s] / p.usd.none)}`;
    const chose = (choices: Record<Chosen, number>) =>
      CHOSEN.filter((c) => choices[c] > 0)
        .map((c) => `${c} ×${choices[c]}`)
        .join(", ");
    const joiningVsBest = p.usd.joining / best.usd;
    rows.push({
      figure: `billed input, ${r.calls} calls ${p.minutes} min apart (${MODEL}), relative to no caching`,
      p50: `${cell("auto")} (chose ${chose(p.autoChoices)}); joining a relay at this pace: ${pct(p.usd.joining / p.usd.none)} (chose ${chose(p.joiningChoices)})`,
      tail: `${cell("5m")} · ${cell("1h")}`,
      target: `auto within 5 % of the best fixed choice (${best.s}): ${autoVsBest <= 1.05 ? "met" : "**missed**"} (${pct(autoVsBest)} of it; from call ${LEARNING_CALLS + 1} on, once the pace is known: ${pct(steadyVsBest)} of ${steadyBest.s}); joining a relay at this pace: ${joiningVsBest <= 1.05 ? "met" : "**missed**"} (${pct(joiningVsBest)})`,
      baseline: `no caching ${usdOf(p.usd.none)}; best fixed ${best.s} ${usdOf(best.usd)}`,
    });
  }
  const { before, after } = r.summary;
  rows.push({
    figure: "billed input of a summarization cycle (12 turns a minute apart, then the summary), summaries riding the cache",
    p50: `summary ${usdOf(after.summaryUsd)}, cycle ${usdOf(after.turnsUsd + after.summaryUsd)}`,
    tail: `summary ${pct(after.summaryUsd / before.summaryUsd)} of before; cycle ${pct((after.turnsUsd + after.summaryUsd) / (before.turnsUsd + before.summaryUsd))}`,
    target: "(informational: issue 15 item 2)",
    baseline: `before (uncached transcript, its own system prompt): summary ${usdOf(before.summaryUsd)}, cycle ${usdOf(before.turnsUsd + before.summaryUsd)}`,
  });
  const notes = [
    `Cache paces: the relay's request builder, \`cache_ttl\` policy and SDK call against a fresh stand-in per run, its cache clock set to each call's simulated time (no real waiting); ${r.calls} turns of a 1,000-char envelope and a 1,000-char reply on a ${SYSTEM_PROMPT.length.toLocaleString("en-US")}-char system prompt; billed input is the stand-in's usage priced at ${MODEL}'s rates (reads 0.05x input), output left out. "auto" decides each call from the call times the history records, as \`relay run\` does. A fresh conversation's first call has no pace: auto hedges, writing the system prompt's first ${pct(HEDGE_SHARE)} (cut at a space: the prompt has no line break) with 1h and the rest, the turn included, with 5m. A whole choice would miss 5 % at one pace here: the first prompt (~4,350 tokens) is 7.6 % of the 1-minute bill's 5m optimum and 5.8 % of the 15-minute bill's 1h optimum, so all-1h loses 0.75 × 7.6 = 5.7 % at the first and all-5m 1.2 × 5.8 = 7.0 % at the second. The hedge puts 58 % of that prompt in 1h: 0.75 × 0.58 × 7.6 ≈ 3.3 % at the first, 1.2 × 0.42 × 5.8 ≈ 2.9 % at the second. The figure after the first ${LEARNING_CALLS} calls shows the policy once the pace is known. "Joining" is the same conversation started on a relay whose other conversations already call at this pace: its first call borrows their last ${OTHERS_GAPS} gaps, as \`relay run\` does, and only a relay with no other conversation leaves a first call without a pace.`,
    "Summarization cycle: the same 12 turns with 5m caching, then one summary keeping 2 turns. Before: the folded turns as one uncached transcript under the summarization prompt as system prompt (the old request). After: the conversation's last request byte for byte, its reply, then the summarization prompt as the last user turn, so the whole conversation is a cache read.",
  ];
  return { rows, notes };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  try {
    log("cache paces and summarization cycle…");
    const { rows, notes } = cachePaceRows(await cachePace());
    const lines = ["| figure | relay | also | target | baseline |", "|---|---|---|---|---|", ...rows.map((x) => `| ${x.figure} | ${x.p50} | ${x.tail} | ${x.target} | ${x.baseline} |`), "", ...notes.map((n) => `- ${n}`)];
    process.stdout.write(`${lines.join("\n")}\n`);
  } finally {
    await cleanup();
  }
}
