// What every call to the Messages API leaves behind, whatever it was for (a reply, a summary, a
// permission decision): what it may cost while it runs, and once made its log line, today's
// spend and its line in the cost ledger.
import type { ApiReply } from "../anthropic/messages.js";
import { type CallCache, type LedgerRecord, makeLedgerRecord } from "../costs/ledger.js";
import { costUsd, type ConfiguredPrices, priceFor } from "../costs/pricing.js";
import type { RelayDeps } from "./deps.js";

/** The most a call may cost, held against the budgets while it runs (about 3.5 characters a token). */
export function worstCaseUsd(model: string, requestChars: number, maxTokens: number, configured?: ConfiguredPrices): number {
  const price = priceFor(model, undefined, configured);
  if (!price) return 0;
  return ((requestChars / 3.5) * price.input + maxTokens * price.output) / 1_000_000;
}

/** A call made: its log line, its cost in today's spend and in the ledger (priced with config.yaml's `prices:` too). */
export function recordApiCall(
  deps: RelayDeps,
  call: { session: string; conversation: string; purpose: LedgerRecord["purpose"]; reply: ApiReply; cache?: CallCache; fields?: Record<string, unknown> },
): void {
  const { session, conversation, purpose, reply, cache } = call;
  const made = makeLedgerRecord({ at: new Date(deps.now()), session, conversation, model: reply.model, purpose, usage: reply.usage, latencyMs: reply.latencyMs, ...(cache ? { cache } : {}) });
  const rec = { ...made, usd: costUsd(reply.model, reply.usage, deps.config().prices) };
  deps.log.info(
    { session, conversation, ...call.fields, purpose, model: rec.model, inputTokens: rec.inputTokens, outputTokens: rec.outputTokens, cacheWriteTokens: rec.cacheWriteTokens, cacheReadTokens: rec.cacheReadTokens, usd: rec.usd, latencyMs: rec.latencyMs, ...(cache ? { cacheTtl: cache.ttl, cacheReason: cache.reason, gapMs: cache.gapMs } : {}) },
    "api call",
  );
  deps.costs.spend.add(rec);
  deps.costs.record(rec);
}

