// The prompt cache's lifetime for a conversation's next request (`cache_ttl: auto`): a pure
// function of the conversation's recent call times and the model's cache rates.
//
// The cost model. A request's prompt is the previous request's prompt plus one turn, so almost
// every token of it is a prefix the previous call could have cached. Per prefix token, relative
// to the plain input price, a conversation that keeps one option pays:
//
//   none:  1                                  (nothing written, nothing read)
//   5m:    h5 · read + (1 − h5) · write5m     (a hit reads the prefix; a miss writes it again)
//   1h:    h1 · read + (1 − h1) · write1h
//
// where h is the share of the recent gaps between calls that the option's lifetime covers (a
// read restarts the lifetime, so each gap counts on its own). The option with the lowest
// expected price wins. One exception: while the cache the previous call wrote is still alive,
// `none` is not chosen (this call reads the prefix at the read price, whatever comes next). A
// conversation's first call has no gaps of its own: it borrows the pace of the relay's other
// conversations when they have one (their agents tend to work alike), else it hedges (see
// firstCallHedge), or, with a system prompt too short to split, see firstCallTtl.
import { type ConfiguredPrices, priceFor } from "../costs/pricing.js";

export type CacheTtl = "5m" | "1h";
/** What a request's breakpoints carry: a lifetime, or no breakpoint at all. */
export type CacheChoice = CacheTtl | "none";
/** config.yaml's `cache_ttl`. */
export type CacheTtlSetting = CacheTtl | "auto";

export const CACHE_CHOICES: readonly CacheChoice[] = ["5m", "1h", "none"];
export const CACHE_TTL_MS: Readonly<Record<CacheTtl, number>> = { "5m": 5 * 60_000, "1h": 60 * 60_000 };
/** How many recent gaps make the pace. */
export const PACE_WINDOW = 8;
/** A gap counts as covered only this far inside the lifetime (the lifetime starts at the previous reply, a little before its call time is recorded). */
export const TTL_MARGIN_MS = 30_000;

/** Cache prices relative to the plain input price. */
export interface CacheRates {
  read: number;
  write5m: number;
  write1h: number;
}

/** FACTS.md's multipliers, for a model whose price is unknown. */
export const DEFAULT_CACHE_RATES: CacheRates = { read: 0.1, write5m: 1.25, write1h: 2 };

export function cacheRatesFor(model: string, configured?: ConfiguredPrices): CacheRates {
  const price = priceFor(model, undefined, configured);
  if (!price || !(price.input > 0)) return DEFAULT_CACHE_RATES;
  return { read: price.cacheRead / price.input, write5m: price.cacheWrite5m / price.input, write1h: price.cacheWrite1h / price.input };
}

const LARGE_MINIMUM = ["claude-haiku-4-5", "claude-opus-4-5", "claude-opus-4-6"];

/** The shortest prefix the API caches (FACTS.md): 4096 tokens for Haiku 4.5 and Opus 4.5/4.6, 1024 for the others. Below it nothing is written and nothing fails. */
export function minCacheablePrefixTokens(model: string): number {
  return LARGE_MINIMUM.some((m) => model === m || model.startsWith(`${m}-`)) ? 4096 : 1024;
}

/** The gaps (ms) between the last `window` + 1 call times and `now`, oldest first. */
export function paceGaps(callTimes: readonly number[], now: number, window = PACE_WINDOW): number[] {
  const times = [...callTimes.filter((t) => Number.isFinite(t) && t <= now), now].sort((a, b) => a - b).slice(-(window + 1));
  const gaps: number[] = [];
  for (let i = 1; i < times.length; i++) gaps.push((times[i] ?? 0) - (times[i - 1] ?? 0));
  return gaps;
}

/** Whether a cache written at `at` with `ttl` still lives at `now` (with the margin). */
export const covers = (ttl: CacheTtl, gapMs: number): boolean => gapMs <= CACHE_TTL_MS[ttl] - TTL_MARGIN_MS;

/** The expected price of a prefix token under each option, relative to plain input, for these gaps. */
export function expectedPrice(gaps: readonly number[], rates: CacheRates): Record<CacheChoice, number> {
  const share = (ttl: CacheTtl) => (gaps.length === 0 ? 0 : gaps.filter((g) => covers(ttl, g)).length / gaps.length);
  const h5 = share("5m");
  const h1 = share("1h");
  return {
    "5m": h5 * rates.read + (1 - h5) * rates.write5m,
    "1h": h1 * rates.read + (1 - h1) * rates.write1h,
    none: 1,
  };
}

export interface CacheDecision {
  /** the lifetime of the request's breakpoints; with `hedge`, 1h, its longest-lived part */
  ttl: CacheChoice;
  /** the first call's hedge: 1h on the system prompt's first block, 5m on its second and on the turn's breakpoints */
  hedge: boolean;
  /** one line for the log and the ledger */
  reason: string;
}

export interface CacheDecisionInput {
  setting: CacheTtlSetting;
  /** the conversation's earlier call times (ms) */
  callTimes: readonly number[];
  now: number;
  /** what the previous call of the conversation wrote, when known */
  lastWrite: { ttl: CacheChoice; at: number } | null;
  rates: CacheRates;
  /** the request's prompt, estimated */
  promptTokens: number;
  model: string;
  /** the recent gaps between the calls of the relay's other conversations (ms): the pace a conversation with none yet borrows */
  relayGaps?: readonly number[];
  /** the conversation's system prompt split (see splitSystemPrompt): a first call without a pace hedges across it */
  systemSplit?: SystemSplit | null;
}

const minutes = (ms: number): string => (ms >= 3_600_000 ? `${(ms / 3_600_000).toFixed(1)}h` : `${Math.round(ms / 60_000)}m`);
const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] ?? 0) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
};

/**
 * A conversation's first call, whose pace is unknown: the lifetime whose worse case loses less.
 * Writing 1h loses (write1h − write5m) × the prompt if the calls then come minutes apart (a 5m
 * write would have served); writing 5m loses (write5m − read) × the prompt if they come a
 * quarter-hour apart (the 5m write dies unread and the second call writes everything again,
 * where a 1h write would have been read). Hours apart, either loses little beside a bill that
 * caches nothing. At list rates 1h loses 0.75x, 5m 1.15x to 1.2x: 1h.
 */
export function firstCallTtl(rates: CacheRates): { ttl: CacheTtl; lossIf1h: number; lossIf5m: number } {
  const lossIf1h = rates.write1h - rates.write5m;
  const lossIf5m = rates.write5m - rates.read;
  return { ttl: lossIf1h <= lossIf5m ? "1h" : "5m", lossIf1h, lossIf5m };
}

/**
 * A conversation's first call, whose pace is unknown, split between the two lifetimes: the first
 * `share` of its cached prefix written with 1h, the rest with 5m. Should the calls come minutes
 * apart, the 1h part loses share × lossIf1h; a quarter-hour apart, the 5m part dies unread and
 * loses (1 − share) × lossIf5m. The share that makes the two equal, lossIf5m / (lossIf1h +
 * lossIf5m), gives the smallest worse case: at list rates 0.6 of the prefix in 1h and 0.45x the
 * prompt at worst, where a whole choice loses 0.75x. null when one of the losses is not positive
 * (a whole choice then loses nothing).
 */
export function firstCallHedge(rates: CacheRates): { share: number; worstCase: number } | null {
  const { lossIf1h, lossIf5m } = firstCallTtl(rates);
  if (!(lossIf1h > 0 && lossIf5m > 0)) return null;
  const share = lossIf5m / (lossIf1h + lossIf5m);
  return { share, worstCase: hedgeWorstCase(share, rates) };
}

/** Where a conversation's system prompt is split in two blocks (`cache_ttl: auto`): the same in every request of the conversation, so each reads what the one before wrote. */
export interface SystemSplit {
  /** the first block is the system prompt's characters before this index */
  at: number;
  /** the first block's share of the system prompt's characters */
  share: number;
  /** the first block, estimated in tokens */
  tokens: number;
}

/** The worse case of a first call whose 1h part is `share` of its prompt, relative to the prompt. */
export function hedgeWorstCase(share: number, rates: CacheRates): number {
  const { lossIf1h, lossIf5m } = firstCallTtl(rates);
  return Math.max(share * lossIf1h, (1 - share) * lossIf5m);
}

const percent = (x: number): string => `${Math.round(x * 100)} %`;

/** The lifetime of the next request's breakpoints, and why. */
export function chooseCacheTtl(input: CacheDecisionInput): CacheDecision {
  if (input.setting !== "auto") return { ttl: input.setting, hedge: false, reason: `cache_ttl: ${input.setting}` };
  const minimum = minCacheablePrefixTokens(input.model);
  const below = input.promptTokens < minimum ? `; the prompt (~${input.promptTokens} tokens) is below ${input.model}'s minimum cacheable prefix (${minimum}), so nothing is written yet` : "";
  const own = paceGaps(input.callTimes, input.now);
  const borrowed = own.length === 0 && (input.relayGaps?.length ?? 0) > 0;
  const gaps = borrowed ? (input.relayGaps ?? []) : own;
  if (gaps.length === 0) {
    const { ttl, lossIf1h, lossIf5m } = firstCallTtl(input.rates);
    const split = input.systemSplit;
    if (split && firstCallHedge(input.rates)) {
      const whole = Math.min(lossIf1h, lossIf5m);
      const ofPrompt = input.promptTokens > 0 ? Math.min(1, split.tokens / input.promptTokens) : split.share;
      return {
        ttl: "1h",
        hedge: true,
        reason: `auto: no pace yet (first call), hedge: 1h on the first ${percent(split.share)} of the system prompt (${percent(ofPrompt)} of this prompt), 5m after it; worst case ${hedgeWorstCase(ofPrompt, input.rates).toFixed(2)}x the prompt instead of ${whole.toFixed(2)}x${below}`,
      };
    }
    return { ttl, hedge: false, reason: `auto: no pace yet (first call), ${ttl}: should the calls come minutes apart, 1h costs ${lossIf1h.toFixed(2)}x the prompt more than 5m; a quarter-hour apart, 5m costs ${lossIf5m.toFixed(2)}x more than 1h${below}` };
  }
  const price = expectedPrice(gaps, input.rates);
  const last = input.lastWrite;
  const alive = last !== null && last.ttl !== "none" && covers(last.ttl, input.now - last.at);
  const options = CACHE_CHOICES.filter((c) => !(alive && c === "none"));
  let best = options[0] ?? "5m";
  for (const c of options) if (price[c] < price[best]) best = c;
  const prices = CACHE_CHOICES.map((c) => `${c} ${price[c].toFixed(2)}x`).join(", ");
  const keep = alive && last && best !== "none" && price.none < price[best] ? ` (the ${last.ttl} cache is still alive: read it)` : "";
  const whose = borrowed ? "no pace yet (first call); the relay's other conversations: " : "";
  return { ttl: best, hedge: false, reason: `auto: ${whose}${gaps.length} gaps, median ${minutes(median(gaps))}; expected prefix price ${prices}${keep}${below}` };
}
