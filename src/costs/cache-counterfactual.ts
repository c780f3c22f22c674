// What a recorded call would have cost under each cache choice (`relay costs`): priced from the
// ledger line alone, with the same tokens and the same gap, as if every call of its conversation
// had used that choice.
//
// The prompt's T tokens (input + cache writes + cache reads, as the API counted them) are split
// into U, the part the conversation's previous call had sent too (recorded by the relay), and the
// rest. Under `none` all T are plain input. Under 5m or 1h the call is a hit when its gap is
// inside the lifetime (with the policy's margin) and U reaches the model's minimum cacheable
// prefix: U is read and the rest written; otherwise all T are written. A prompt below the minimum
// is plain input under every choice. A summary's last turn is never cached, so it stays plain
// input. Output tokens cost the same under every choice.
import { type CacheChoice, covers, minCacheablePrefixTokens } from "../anthropic/cache-policy.js";
import type { LedgerRecord } from "./ledger.js";
import { priceFor, promptTokensOf } from "./pricing.js";

export type CacheCosts = Record<CacheChoice, number>;

/** USD of the call under each choice; null when the line has no cache record or its model no price. */
export function counterfactualUsd(rec: Pick<LedgerRecord, "model" | "purpose" | "inputTokens" | "outputTokens" | "cacheReadTokens" | "cacheWrite5mTokens" | "cacheWrite1hTokens" | "cache">): CacheCosts | null {
  const cache = rec.cache;
  if (!cache) return null;
  const prompt = promptTokensOf(rec);
  const rate = priceFor(rec.model, prompt);
  if (!rate) return null;
  const minimum = minCacheablePrefixTokens(rec.model);
  const reusable = Math.min(cache.reusableTokens, prompt);
  const microUsd = (choice: CacheChoice): number => {
    if (choice === "none" || prompt < minimum) return prompt * rate.input;
    const write = choice === "5m" ? rate.cacheWrite5m : rate.cacheWrite1h;
    const hit = cache.gapMs !== null && covers(choice, cache.gapMs) && reusable >= minimum;
    if (!hit) return prompt * write;
    return reusable * rate.cacheRead + (prompt - reusable) * (rec.purpose === "summary" ? rate.input : write);
  };
  const output = rec.outputTokens * rate.output;
  const usd = (choice: CacheChoice): number => (microUsd(choice) + output) / 1_000_000;
  return { "5m": usd("5m"), "1h": usd("1h"), none: usd("none") };
}
