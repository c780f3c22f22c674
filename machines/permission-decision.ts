// One permission prompt that `permissions.policy` lets chat-Claude decide: it asks (the
// `decidePermission` actor, provided by src/runtime/ with the Messages API, the budgets and a
// time limit) and reports the verdict to the relay machine, which answers the hook or, when
// chat-Claude did not decide, puts the prompt before JC. Spawned by the relay with the prompt's
// id; restored from a snapshot while asking, it asks again.
import { fromPromise, sendParent, setup } from "xstate";
import type { PolicyRule } from "./permission-policy.js";
import type { PermissionRequest, PolicyVerdict } from "./types.js";

export interface PermissionDecisionInput {
  request: PermissionRequest;
  rule: PolicyRule;
}

/** What the child tells the relay machine. */
export type PermissionDecisionReport = { type: "permission.policyDecided"; request: PermissionRequest; verdict: PolicyVerdict };

export const permissionDecisionMachine = setup({
  types: {
    context: {} as PermissionDecisionInput,
    input: {} as PermissionDecisionInput,
  },
  actors: {
    /** chat-Claude's verdict; never rejects (a failure is an undecided verdict) */
    decidePermission: fromPromise<PolicyVerdict, PermissionDecisionInput>(() => new Promise<PolicyVerdict>(() => undefined)),
  },
}).createMachine({
  id: "permissionDecision",
  context: ({ input }) => input,
  initial: "asking",
  states: {
    /** chat-Claude is asked, with the prompt and the agent's evidence */
    asking: {
      invoke: {
        id: "decidePermission",
        src: "decidePermission",
        input: ({ context }) => context,
        onDone: {
          target: "reported",
          actions: sendParent(({ context, event }): PermissionDecisionReport => ({ type: "permission.policyDecided", request: context.request, verdict: event.output })),
        },
        onError: {
          target: "reported",
          actions: sendParent(({ context }): PermissionDecisionReport => ({ type: "permission.policyDecided", request: context.request, verdict: { kind: "undecided", why: "the decision failed" } })),
        },
      },
    },
    reported: { type: "final" },
  },
});
