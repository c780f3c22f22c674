// The `decidePermission` actor of machines/permission-decision.ts, made from the deps: one call
// to chat-Claude through the Messages API (the session's model, the budgets held, the cost in
// the ledger as purpose "permission"), limited in time so JC still has most of the hook's wait.
// Every failure is an undecided verdict, which puts the prompt before JC.
import type { PermissionDecisionInput } from "../../machines/permission-decision.js";
import type { PolicyVerdict } from "../../machines/types.js";
import { buildPermissionRequest, parseVerdict } from "../anthropic/permission-decision.js";
import { classifyFailure } from "../anthropic/messages.js";
import { budgetExhausted } from "../costs/budget.js";
import { DEFAULT_POLICY_DECIDE_WITHIN_MS } from "../config/config.js";
import { recordApiCall, worstCaseUsd } from "./api-calls.js";
import type { RelayDeps } from "./deps.js";

/** chat-Claude gets at most half the time the hook has left, so JC keeps the other half. */
export function decisionTimeMs(configuredMs: number, now: number, deadline: number | undefined): number {
  if (deadline === undefined) return configuredMs;
  return Math.max(0, Math.min(configuredMs, Math.floor((deadline - now) / 2)));
}

export function permissionDecider(deps: RelayDeps) {
  return async function decidePermission({ request, rule }: PermissionDecisionInput, signal: AbortSignal): Promise<PolicyVerdict> {
    const config = deps.config();
    const session = config.sessions.find((s) => s.id === request.session);
    const model = session?.model ?? config.model;
    if (!deps.api) return { kind: "undecided", why: "relay run --dry-run makes no API call" };
    await deps.costs.spend.settled();
    const overBudget = budgetExhausted(config, deps.costs.spend, request.session);
    if (overBudget) return { kind: "undecided", why: "the budget is spent" };
    const limitMs = decisionTimeMs(config.permissions?.decideWithinMs ?? DEFAULT_POLICY_DECIDE_WITHIN_MS, deps.now(), request.deadline);
    if (limitMs < 1_000) return { kind: "undecided", why: "too little of the hook's wait was left to ask chat-Claude" };
    const apiRequest = buildPermissionRequest({ model, request, rule });
    const release = deps.costs.spend.reserve(request.session, worstCaseUsd(model, JSON.stringify(apiRequest.messages).length, apiRequest.max_tokens, config.prices));
    const timeout = AbortSignal.timeout(limitMs);
    try {
      const reply = await deps.api.call(apiRequest, AbortSignal.any([signal, timeout]));
      recordApiCall(deps, { session: request.session, conversation: session?.conversation ?? "shared", purpose: "permission", reply, fields: { permission: request.id } });
      return parseVerdict(reply.text);
    } catch (err) {
      if (timeout.aborted) return { kind: "undecided", why: `chat-Claude did not answer within ${Math.round(limitMs / 1000)} s` };
      const failure = classifyFailure(err);
      deps.log.warn({ session: request.session, permission: request.id, failure: failure.kind, status: failure.status }, `permission decision call failed: ${deps.redact(failure.message)}`);
      return { kind: "undecided", why: `the API call failed (${deps.redact(failure.message)})` };
    } finally {
      release();
    }
  };
}
