/**
 * Anthropic list prices and per-call cost.
 *
 * ONE table, absolute USD per million tokens for every rate (input, output,
 * 5-minute cache write, 1-hour cache write, cache read). No multipliers are
 * applied at run time: each number below is the one the pricing page prints.
 *
 * Sources (checked November 2026):
 *  - ../shared/FACTS.md, "Prompt caching" and "List prices" (authoritative):
 *    5m write = 1.25x input, 1h write = 2x input, read = 0.1x input except
 *    0.05x for Opus 5.5 and Sonnet 5.5 and 0.025x for Fable 5.1 / Mythos 5.1.
 *  - platform.claude.com/docs/en/about-claude/pricing ("Model pricing" table)
 *    for the Opus 4.5..5, Fable and Mythos rows.
 *  - platform.claude.com/docs/en/models/haiku-5-5/overview for Haiku 5.5's
 *    two bands: up to 100,000 prompt tokens 0.10 / 0.50 / 0.125 / 0.20 / 0.01,
 *    over 100,000 prompt tokens 0.50 / 2.50 / 0.625 / 1 / 0.05, the band
 *    applying to every token of the request, output included.
 *  - Sonnet 5.5 reads: some copies of its overview page still print $0.20
 *    (0.1x); FACTS (0.05x, the cut of 2026-10-07) wins: $0.10.
 *  - Model ids: @anthropic-ai/sdk 1.12.0 `Model` type. It lists dated ids only
 *    for haiku-4-5, opus-4-5 and sonnet-4-5, and no `-latest` aliases.
 *
 * Not priced (→ null, "price unknown", never zero): Opus 4 / 4.1 (retired),
 * claude-mythos-preview (end of life June 2026), and claude-fable-5-2 /
 * claude-mythos-5-2, which the SDK lists but FACTS does not price yet.
 */

export interface Usage {
  inputTokens: number;
  outputTokens: number;
  cacheWrite5mTokens: number;
  cacheWrite1hTokens: number;
  cacheReadTokens: number;
}

/** USD per million tokens. */
export interface ModelPrice {
  input: number;
  output: number;
  cacheWrite5m: number;
  cacheWrite1h: number;
  cacheRead: number;
}

export interface PriceEntry {
  /** The price of a request whose prompt is at most `longPrompt.overTokens` (or any prompt, without a long-prompt band). */
  readonly base: Readonly<ModelPrice>;
  /**
   * A second band for long prompts: a request whose prompt (input + cache
   * writes + cache reads) exceeds `overTokens` pays `price` on all its tokens.
   */
  readonly longPrompt?: { readonly overTokens: number; readonly price: Readonly<ModelPrice> };
}

const p = (input: number, output: number, cacheWrite5m: number, cacheWrite1h: number, cacheRead: number): Readonly<ModelPrice> =>
  Object.freeze({ input, output, cacheWrite5m, cacheWrite1h, cacheRead });

// Arguments: input, output, 5-minute write, 1-hour write, cache read (USD / MTok).
const HAIKU_4_5 = p(1, 5, 1.25, 2, 0.1);
const SONNET_4_X = p(3, 15, 3.75, 6, 0.3);
const OPUS_4_5_TO_5 = p(5, 25, 6.25, 10, 0.5);
const SONNET_5 = p(2, 10, 2.5, 4, 0.2);
const SONNET_5_5 = p(2, 10, 2.5, 4, 0.1); // read 0.05x input
const OPUS_5_5 = p(4, 20, 5, 8, 0.2); // read 0.05x input
const HAIKU_5_5_SHORT = p(0.1, 0.5, 0.125, 0.2, 0.01); // prompt <= 100,000 tokens
const HAIKU_5_5_LONG = p(0.5, 2.5, 0.625, 1, 0.05); // prompt > 100,000 tokens
const FABLE_MYTHOS_5 = p(10, 50, 12.5, 20, 1);
const FABLE_MYTHOS_5_1 = p(10, 50, 12.5, 20, 0.25); // read 0.025x input

/** Haiku 5.5's second band starts above this many prompt tokens. */
export const HAIKU_5_5_LONG_PROMPT_OVER = 100_000;

/** The price table, keyed by the SDK's undated model id. */
export const PRICE_TABLE: ReadonlyMap<string, PriceEntry> = new Map<string, PriceEntry>([
  ["claude-haiku-4-5", { base: HAIKU_4_5 }],
  ["claude-sonnet-4-5", { base: SONNET_4_X }],
  ["claude-sonnet-4-6", { base: SONNET_4_X }],
  ["claude-opus-4-5", { base: OPUS_4_5_TO_5 }],
  ["claude-opus-4-6", { base: OPUS_4_5_TO_5 }],
  ["claude-opus-4-7", { base: OPUS_4_5_TO_5 }],
  ["claude-opus-4-8", { base: OPUS_4_5_TO_5 }],
  ["claude-opus-5", { base: OPUS_4_5_TO_5 }],
  ["claude-sonnet-5", { base: SONNET_5 }],
  ["claude-sonnet-5-5", { base: SONNET_5_5 }],
  ["claude-opus-5-5", { base: OPUS_5_5 }],
  [
    "claude-haiku-5-5",
    { base: HAIKU_5_5_SHORT, longPrompt: { overTokens: HAIKU_5_5_LONG_PROMPT_OVER, price: HAIKU_5_5_LONG } },
  ],
  ["claude-fable-5", { base: FABLE_MYTHOS_5 }],
  ["claude-fable-5-1", { base: FABLE_MYTHOS_5_1 }],
  ["claude-mythos-5", { base: FABLE_MYTHOS_5 }],
  ["claude-mythos-5-1", { base: FABLE_MYTHOS_5_1 }],
]);

/** A snapshot id: a table id followed by `-YYYYMMDD` (e.g. claude-sonnet-4-5-20250929). */
const DATED = /^(.+)-(\d{8})$/;

/** Rates given in config.yaml's `prices:`, by model id; they take precedence over the table. */
export type ConfiguredPrices = Readonly<Record<string, Readonly<ModelPrice>>>;

/** `model` itself, then its undated id when it carries a date suffix. */
function idsOf(model: string): string[] {
  const undated = DATED.exec(model)?.[1];
  return undated === undefined ? [model] : [model, undated];
}

/** The rates config.yaml's `prices:` gives `model` (its exact id, or its undated one), which take precedence over the table; else null. */
export function configuredPriceFor(model: string, configured: ConfiguredPrices = {}): Readonly<ModelPrice> | null {
  for (const id of idsOf(model)) {
    const given = Object.hasOwn(configured, id) ? configured[id] : undefined;
    if (given) return given;
  }
  return null;
}

/** The entry for `model`: from `configured` (config.yaml), else the table; an exact id, or one with a date suffix. Anything else is unknown. */
export function resolveModel(model: string, configured: ConfiguredPrices = {}): PriceEntry | null {
  const given = configuredPriceFor(model, configured);
  if (given) return { base: given };
  for (const id of idsOf(model)) {
    const known = PRICE_TABLE.get(id);
    if (known) return known;
  }
  return null;
}

/**
 * The rates for `model`, or null when its price is unknown.
 *
 * `promptTokens` (input + cache writes + cache reads) selects the band of a
 * model priced by prompt length (Haiku 5.5). When it is not given, the
 * conservative reading applies: the higher band, so a budget check never
 * under-counts.
 */
export function priceFor(model: string, promptTokens?: number, configured?: ConfiguredPrices): ModelPrice | null {
  const entry = resolveModel(model, configured);
  if (!entry) return null;
  const long = entry.longPrompt;
  if (long && (promptTokens === undefined || !(promptTokens <= long.overTokens))) return { ...long.price };
  return { ...entry.base };
}

const validCount = (n: number): boolean => Number.isFinite(n) && n >= 0;

/** The prompt size that selects a band: every input token, cached or not. */
export function promptTokensOf(usage: Usage): number {
  return usage.inputTokens + usage.cacheWrite5mTokens + usage.cacheWrite1hTokens + usage.cacheReadTokens;
}

/** USD for one call, or null when the model's price is unknown (or the usage is not a set of token counts). */
export function costUsd(model: string, usage: Usage, configured?: ConfiguredPrices): number | null {
  const counts = [usage.inputTokens, usage.outputTokens, usage.cacheWrite5mTokens, usage.cacheWrite1hTokens, usage.cacheReadTokens];
  if (!counts.every(validCount)) return null;
  const rate = priceFor(model, promptTokensOf(usage), configured);
  if (!rate) return null;
  const microUsd =
    usage.inputTokens * rate.input +
    usage.outputTokens * rate.output +
    usage.cacheWrite5mTokens * rate.cacheWrite5m +
    usage.cacheWrite1hTokens * rate.cacheWrite1h +
    usage.cacheReadTokens * rate.cacheRead;
  return microUsd / 1_000_000;
}

export interface ApiUsage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens?: number | null;
  cache_read_input_tokens?: number | null;
  cache_creation?: { ephemeral_5m_input_tokens?: number | null; ephemeral_1h_input_tokens?: number | null } | null;
}

const count = (n: number | null | undefined): number => (typeof n === "number" && Number.isFinite(n) && n > 0 ? n : 0);

/**
 * The API's `usage` object as a `Usage`. Missing or null fields count as 0.
 * Without a per-TTL split, every `cache_creation_input_tokens` counts as a
 * 5-minute write. With a split, its numbers are used; should the total exceed
 * the split's sum, the remainder counts as 5-minute writes, so no written
 * token goes unbilled.
 */
export function usageFromApi(u: ApiUsage): Usage {
  const total = count(u.cache_creation_input_tokens);
  const split = u.cache_creation;
  const has5m = typeof split?.ephemeral_5m_input_tokens === "number";
  const has1h = typeof split?.ephemeral_1h_input_tokens === "number";
  let w5m: number;
  let w1h: number;
  if (has5m || has1h) {
    w5m = count(split?.ephemeral_5m_input_tokens);
    w1h = count(split?.ephemeral_1h_input_tokens);
    if (total > w5m + w1h) w5m = total - w1h;
  } else {
    w5m = total;
    w1h = 0;
  }
  return {
    inputTokens: count(u.input_tokens),
    outputTokens: count(u.output_tokens),
    cacheWrite5mTokens: w5m,
    cacheWrite1hTokens: w1h,
    cacheReadTokens: count(u.cache_read_input_tokens),
  };
}

/**
 * "$12.34" at a dollar or more, "$0.0123" under a dollar, and three
 * significant digits below a cent ("$0.00123", "$0.00005"). "price unknown"
 * for null (and for a non-finite number, which is never a price).
 */
export function formatUsd(usd: number | null): string {
  if (usd === null || !Number.isFinite(usd)) return "price unknown";
  const sign = usd < 0 ? "-" : "";
  const abs = Math.abs(usd);
  if (abs === 0) return "$0.00";
  if (abs >= 1) return `${sign}$${abs.toFixed(2)}`;
  if (abs >= 0.01) return `${sign}$${abs.toFixed(4)}`;
  if (abs < 1e-8) return `${sign}<$0.00000001`;
  const decimals = Math.min(10, Math.ceil(-Math.log10(abs)) + 2);
  let s = abs.toFixed(decimals);
  // Trim trailing zeros, keeping at least four decimals.
  while (s.endsWith("0") && s.length - s.indexOf(".") - 1 > 4) s = s.slice(0, -1);
  return `${sign}$${s}`;
}
