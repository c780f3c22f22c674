import { describe, expect, it } from "vitest";
import {
  costUsd,
  formatUsd,
  HAIKU_5_5_LONG_PROMPT_OVER,
  PRICE_TABLE,
  priceFor,
  usageFromApi,
  type ModelPrice,
  type Usage,
} from "../src/costs/pricing.js";

const usage = (u: Partial<Usage>): Usage => ({
  inputTokens: 0,
  outputTokens: 0,
  cacheWrite5mTokens: 0,
  cacheWrite1hTokens: 0,
  cacheReadTokens: 0,
  ...u,
});

const FACTS_MODELS = [
  "claude-haiku-4-5",
  "claude-sonnet-4-5",
  "claude-sonnet-4-6",
  "claude-opus-4-5",
  "claude-opus-4-6",
  "claude-opus-4-7",
  "claude-opus-4-8",
  "claude-opus-5",
  "claude-sonnet-5",
  "claude-sonnet-5-5",
  "claude-opus-5-5",
  "claude-haiku-5-5",
  "claude-fable-5",
  "claude-fable-5-1",
  "claude-mythos-5",
  "claude-mythos-5-1",
];

/** input / output list prices from FACTS ("List prices"); Haiku 5.5's lower band. */
const FACTS_IO: Record<string, [number, number]> = {
  "claude-haiku-4-5": [1, 5],
  "claude-sonnet-4-5": [3, 15],
  "claude-sonnet-4-6": [3, 15],
  "claude-opus-4-5": [5, 25],
  "claude-opus-4-6": [5, 25],
  "claude-opus-4-7": [5, 25],
  "claude-opus-4-8": [5, 25],
  "claude-opus-5": [5, 25],
  "claude-sonnet-5": [2, 10],
  "claude-sonnet-5-5": [2, 10],
  "claude-opus-5-5": [4, 20],
  "claude-haiku-5-5": [0.1, 0.5],
  "claude-fable-5": [10, 50],
  "claude-fable-5-1": [10, 50],
  "claude-mythos-5": [10, 50],
  "claude-mythos-5-1": [10, 50],
};

/** FACTS "Prompt caching": read multiplier per model (0.1x unless listed). */
const READ_MULTIPLIER: Record<string, number> = {
  "claude-opus-5-5": 0.05,
  "claude-sonnet-5-5": 0.05,
  "claude-fable-5-1": 0.025,
  "claude-mythos-5-1": 0.025,
};

const allBands = (): [string, ModelPrice][] => {
  const out: [string, ModelPrice][] = [];
  for (const [id, entry] of PRICE_TABLE) {
    out.push([id, entry.base]);
    if (entry.longPrompt) out.push([`${id} (long prompt)`, entry.longPrompt.price]);
  }
  return out;
};

describe("the price table", () => {
  it("holds exactly the models FACTS lists", () => {
    expect([...PRICE_TABLE.keys()].sort()).toEqual([...FACTS_MODELS].sort());
  });

  it.each(allBands())("%s: five positive rates, read < input < 5m write < 1h write", (_id, r) => {
    for (const v of [r.input, r.output, r.cacheWrite5m, r.cacheWrite1h, r.cacheRead]) {
      expect(Number.isFinite(v) && v > 0).toBe(true);
    }
    expect(r.cacheRead).toBeLessThan(r.input);
    expect(r.input).toBeLessThan(r.cacheWrite5m);
    expect(r.cacheWrite5m).toBeLessThan(r.cacheWrite1h);
    expect(r.input).toBeLessThan(r.output);
  });

  it.each(FACTS_MODELS)("%s matches FACTS: list price, 1.25x / 2x writes, its read multiplier", (id) => {
    const r = priceFor(id, 1000);
    expect(r).not.toBeNull();
    if (!r) return;
    const io = FACTS_IO[id];
    expect(io).toBeDefined();
    if (!io) return;
    expect([r.input, r.output]).toEqual(io);
    expect(r.cacheWrite5m).toBeCloseTo(r.input * 1.25, 10);
    expect(r.cacheWrite1h).toBeCloseTo(r.input * 2, 10);
    expect(r.cacheRead).toBeCloseTo(r.input * (READ_MULTIPLIER[id] ?? 0.1), 10);
  });

  it("has the documented absolute numbers", () => {
    expect(priceFor("claude-sonnet-4-6")).toEqual({ input: 3, output: 15, cacheWrite5m: 3.75, cacheWrite1h: 6, cacheRead: 0.3 });
    expect(priceFor("claude-opus-5-5")).toEqual({ input: 4, output: 20, cacheWrite5m: 5, cacheWrite1h: 8, cacheRead: 0.2 });
    expect(priceFor("claude-sonnet-5-5")?.cacheRead).toBe(0.1);
    expect(priceFor("claude-fable-5-1")).toEqual({ input: 10, output: 50, cacheWrite5m: 12.5, cacheWrite1h: 20, cacheRead: 0.25 });
    expect(priceFor("claude-mythos-5-1")?.cacheRead).toBe(0.25);
    expect(priceFor("claude-fable-5")?.cacheRead).toBe(1);
    expect(priceFor("claude-haiku-4-5")).toEqual({ input: 1, output: 5, cacheWrite5m: 1.25, cacheWrite1h: 2, cacheRead: 0.1 });
    expect(priceFor("claude-opus-4-8")).toEqual({ input: 5, output: 25, cacheWrite5m: 6.25, cacheWrite1h: 10, cacheRead: 0.5 });
  });

  it("hands out copies: a caller cannot change the table", () => {
    const r = priceFor("claude-sonnet-4-6");
    if (r) r.input = 0;
    expect(priceFor("claude-sonnet-4-6")?.input).toBe(3);
  });
});

describe("model ids", () => {
  it("resolves the SDK's dated ids to their model", () => {
    expect(priceFor("claude-sonnet-4-5-20250929")).toEqual(priceFor("claude-sonnet-4-5"));
    expect(priceFor("claude-haiku-4-5-20251001")).toEqual(priceFor("claude-haiku-4-5"));
    expect(priceFor("claude-opus-4-5-20251101")).toEqual(priceFor("claude-opus-4-5"));
    expect(costUsd("claude-sonnet-4-5-20250929", usage({ inputTokens: 1_000_000 }))).toBe(3);
  });

  it("does not confuse opus-5 with opus-5-5", () => {
    expect(priceFor("claude-opus-5")?.input).toBe(5);
    expect(priceFor("claude-opus-5-5")?.input).toBe(4);
    expect(priceFor("claude-opus-5-20260724")?.input).toBe(5);
  });

  it.each([
    "claude-opus-4-20250514",
    "claude-opus-4-1",
    "claude-opus-4-1-20250805",
    "claude-sonnet-4-20250514",
    "claude-3-5-sonnet-20241022",
    "claude-mythos-preview",
    "claude-fable-5-2",
    "claude-mythos-5-2",
    "claude-sonnet-4-6-latest",
    "CLAUDE-SONNET-4-6",
    "claude-sonnet-4-6-2025",
    "gpt-4o",
    "constructor",
    "",
  ])("%j is price unknown, never zero", (id) => {
    expect(priceFor(id)).toBeNull();
    const usd = costUsd(id, usage({ inputTokens: 1000, outputTokens: 1000 }));
    expect(usd).toBeNull();
    expect(formatUsd(usd)).toBe("price unknown");
  });
});

describe("costUsd", () => {
  it("prices every kind of token at its own rate", () => {
    const u = usage({ inputTokens: 1_000_000, outputTokens: 1_000_000, cacheWrite5mTokens: 1_000_000, cacheWrite1hTokens: 1_000_000, cacheReadTokens: 1_000_000 });
    // 3 + 15 + 3.75 + 6 + 0.30
    expect(costUsd("claude-sonnet-4-6", u)).toBeCloseTo(28.05, 10);
    // 4 + 20 + 5 + 8 + 0.20
    expect(costUsd("claude-opus-5-5", u)).toBeCloseTo(37.2, 10);
  });

  it("costs a typical call to the cent", () => {
    // 12,345 in @3 + 678 out @15 + 20,000 5m @3.75 + 5,000 1h @6 + 100,000 read @0.3
    const u = usage({ inputTokens: 12_345, outputTokens: 678, cacheWrite5mTokens: 20_000, cacheWrite1hTokens: 5_000, cacheReadTokens: 100_000 });
    const expected = (12_345 * 3 + 678 * 15 + 20_000 * 3.75 + 5_000 * 6 + 100_000 * 0.3) / 1e6;
    expect(costUsd("claude-sonnet-4-6", u)).toBeCloseTo(expected, 12);
    expect(expected).toBeCloseTo(0.182205, 12);
  });

  it("costs zero tokens at zero for a known model", () => {
    expect(costUsd("claude-haiku-4-5", usage({}))).toBe(0);
  });

  it("returns null, not NaN, for counts that are not counts", () => {
    expect(costUsd("claude-haiku-4-5", usage({ inputTokens: Number.NaN }))).toBeNull();
    expect(costUsd("claude-haiku-4-5", usage({ outputTokens: -1 }))).toBeNull();
  });
});

describe("Haiku 5.5's two bands", () => {
  it("switches above 100,000 prompt tokens", () => {
    expect(HAIKU_5_5_LONG_PROMPT_OVER).toBe(100_000);
    expect(priceFor("claude-haiku-5-5", 100_000)).toEqual({ input: 0.1, output: 0.5, cacheWrite5m: 0.125, cacheWrite1h: 0.2, cacheRead: 0.01 });
    expect(priceFor("claude-haiku-5-5", 100_001)).toEqual({ input: 0.5, output: 2.5, cacheWrite5m: 0.625, cacheWrite1h: 1, cacheRead: 0.05 });
  });

  it("takes the higher band when the prompt size is not known", () => {
    expect(priceFor("claude-haiku-5-5")?.input).toBe(0.5);
  });

  it("counts cache writes and reads in the prompt, and bills every token of a long request at the higher band", () => {
    const short = usage({ inputTokens: 50_000, cacheReadTokens: 50_000, outputTokens: 1_000 });
    expect(costUsd("claude-haiku-5-5", short)).toBeCloseTo((50_000 * 0.1 + 50_000 * 0.01 + 1_000 * 0.5) / 1e6, 12);
    const long = usage({ inputTokens: 50_000, cacheReadTokens: 40_000, cacheWrite5mTokens: 5_000, cacheWrite1hTokens: 5_001, outputTokens: 1_000 });
    expect(costUsd("claude-haiku-5-5", long)).toBeCloseTo(
      (50_000 * 0.5 + 40_000 * 0.05 + 5_000 * 0.625 + 5_001 * 1 + 1_000 * 2.5) / 1e6,
      12,
    );
  });

  it("does not band other models", () => {
    expect(priceFor("claude-sonnet-4-6", 900_000)).toEqual(priceFor("claude-sonnet-4-6", 10));
  });
});

describe("usageFromApi", () => {
  it("reads a full usage object with the per-TTL split", () => {
    expect(
      usageFromApi({
        input_tokens: 10,
        output_tokens: 20,
        cache_creation_input_tokens: 300,
        cache_read_input_tokens: 40,
        cache_creation: { ephemeral_5m_input_tokens: 100, ephemeral_1h_input_tokens: 200 },
      }),
    ).toEqual({ inputTokens: 10, outputTokens: 20, cacheWrite5mTokens: 100, cacheWrite1hTokens: 200, cacheReadTokens: 40 });
  });

  it("counts every cache write as 5-minute when the split is absent", () => {
    expect(usageFromApi({ input_tokens: 1, output_tokens: 2, cache_creation_input_tokens: 500 })).toEqual({
      inputTokens: 1,
      outputTokens: 2,
      cacheWrite5mTokens: 500,
      cacheWrite1hTokens: 0,
      cacheReadTokens: 0,
    });
    expect(usageFromApi({ input_tokens: 1, output_tokens: 2, cache_creation_input_tokens: 500, cache_creation: null }).cacheWrite5mTokens).toBe(500);
    expect(
      usageFromApi({ input_tokens: 1, output_tokens: 2, cache_creation_input_tokens: 500, cache_creation: { ephemeral_5m_input_tokens: null } })
        .cacheWrite5mTokens,
    ).toBe(500);
  });

  it("treats missing and null fields as zero", () => {
    expect(usageFromApi({ input_tokens: 7, output_tokens: 3 })).toEqual(usage({ inputTokens: 7, outputTokens: 3 }));
    expect(
      usageFromApi({ input_tokens: 7, output_tokens: 3, cache_creation_input_tokens: null, cache_read_input_tokens: null, cache_creation: null }),
    ).toEqual(usage({ inputTokens: 7, outputTokens: 3 }));
  });

  it("uses the split even when the total is missing, and bills a total above the split as 5-minute writes", () => {
    expect(usageFromApi({ input_tokens: 0, output_tokens: 0, cache_creation: { ephemeral_1h_input_tokens: 64 } })).toEqual(
      usage({ cacheWrite1hTokens: 64 }),
    );
    expect(
      usageFromApi({ input_tokens: 0, output_tokens: 0, cache_creation_input_tokens: 100, cache_creation: { ephemeral_1h_input_tokens: 60 } }),
    ).toEqual(usage({ cacheWrite5mTokens: 40, cacheWrite1hTokens: 60 }));
  });

  it("feeds costUsd: a 1-hour write costs 2x input, not 1.25x", () => {
    const u = usageFromApi({ input_tokens: 0, output_tokens: 0, cache_creation_input_tokens: 1_000_000, cache_creation: { ephemeral_1h_input_tokens: 1_000_000, ephemeral_5m_input_tokens: 0 } });
    expect(costUsd("claude-sonnet-4-6", u)).toBe(6);
  });
});

describe("formatUsd", () => {
  it.each([
    [null, "price unknown"],
    [Number.NaN, "price unknown"],
    [0, "$0.00"],
    [12.345678, "$12.35"],
    [1, "$1.00"],
    [0.0123, "$0.0123"],
    [0.182205, "$0.1822"],
    [0.00123, "$0.00123"],
    [0.00005, "$0.00005"],
    [0.000012345, "$0.0000123"],
    [-0.5, "-$0.5000"],
  ] as const)("formats %s as %j", (usd, text) => {
    expect(formatUsd(usd)).toBe(text);
  });
});

describe("prices given in config.yaml", () => {
  const given = { "claude-new-model": { input: 3, output: 15, cacheWrite5m: 3.75, cacheWrite1h: 6, cacheRead: 0.3 } };
  const usage: Usage = { inputTokens: 1_000_000, outputTokens: 1_000_000, cacheWrite5mTokens: 1_000_000, cacheWrite1hTokens: 1_000_000, cacheReadTokens: 1_000_000 };

  it("price a model the table does not know, by its id or a dated snapshot of it, at every rate", () => {
    expect(priceFor("claude-new-model")).toBeNull();
    expect(costUsd("claude-new-model", usage)).toBeNull();
    expect(costUsd("claude-new-model", usage, given)).toBeCloseTo(3 + 15 + 3.75 + 6 + 0.3, 10);
    expect(priceFor("claude-new-model-20270101", undefined, given)).toEqual(given["claude-new-model"]);
  });

  it("take precedence over the table for a model it knows", () => {
    const cheaper = { "claude-sonnet-4-6": { input: 1, output: 1, cacheWrite5m: 1, cacheWrite1h: 1, cacheRead: 1 } };
    expect(costUsd("claude-sonnet-4-6", usage, cheaper)).toBeCloseTo(5, 10);
    expect(costUsd("claude-sonnet-4-6", usage)).toBeCloseTo(3 + 15 + 3.75 + 6 + 0.3, 10);
  });

  it("leave other unknown models unknown", () => {
    expect(priceFor("claude-other-model", undefined, given)).toBeNull();
    expect(priceFor("toString", undefined, given)).toBeNull();
  });
});
