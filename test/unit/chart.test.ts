import type { AnyStateMachine, AnyStateNode } from "xstate";
import { describe, expect, it } from "vitest";
import { conversationMachine } from "../../machines/conversation.js";
import { relayMachine } from "../../machines/relay.js";
import { toMermaid } from "../../src/status/chart.js";

describe.each([
  ["relayMachine", relayMachine],
  ["conversationMachine", conversationMachine],
] as [string, AnyStateMachine][])("toMermaid(%s)", (_name, machine) => {
  const chart = toMermaid(machine);
  const lines = chart.trimEnd().split("\n");
  const states = Object.keys(machine.root.states);

  it("starts with stateDiagram-v2", () => {
    expect(lines[0]).toBe("stateDiagram-v2");
  });

  it("mentions every state of the machine", () => {
    expect(states.length).toBeGreaterThanOrEqual(5);
    for (const state of states) expect(chart).toMatch(new RegExp(`(^|\\s)${state}(\\s|:|$)`, "m"));
  });

  it("marks the initial state and the final state", () => {
    expect(lines).toContain(`  [*] --> ${String(machine.config.initial)}`);
    for (const node of Object.values(machine.root.states) as AnyStateNode[]) {
      if (node.type === "final") expect(lines).toContain(`  ${node.key} --> [*]`);
    }
  });

  it("draws every transition between top-level states, with its event", () => {
    for (const node of Object.values(machine.root.states) as AnyStateNode[]) {
      for (const transitions of Object.values(node.on) as { target?: readonly AnyStateNode[] }[][]) {
        for (const t of transitions) for (const target of t.target ?? []) expect(chart).toContain(`  ${node.key} --> ${target.key}`);
      }
      for (const t of node.always ?? []) for (const target of t.target ?? []) expect(chart).toContain(`  ${node.key} --> ${target.key}`);
    }
  });

  it("every line is valid Mermaid state-diagram syntax, with no duplicates", () => {
    for (const line of lines.slice(1)) expect(line).toMatch(/^ {2}(\[\*\]|[A-Za-z][A-Za-z0-9]*) --> (\[\*\]|[A-Za-z][A-Za-z0-9]*)(: [^\n]+)?$/);
    expect(new Set(lines).size).toBe(lines.length);
    expect(chart.endsWith("\n")).toBe(true);
  });
});

describe("the charts name guards and invoked actors in their labels", () => {
  it("a conversation: a call, its commit, a question", () => {
    const chart = toMermaid(conversationMachine);
    expect(chart).toContain("idle --> queued: work.assigned");
    expect(chart).toContain("queued --> calling: call.granted [hasWork]");
    expect(chart).toContain("calling --> dispatching: callApi done [callSucceeded]");
    expect(chart).toContain("dispatching --> needsJc: commitTurn done [replyNeedsJc]");
  });

  it("the root: the gate closes on a 429 and a probe reopens it", () => {
    const chart = toMermaid(relayMachine);
    expect(chart).toContain("available --> backingOff: call.finished [rateLimited]");
    expect(chart).toContain("backingOff --> probing: clock.tick [probeDue]");
    expect(chart).toContain("probing --> available: call.finished [callWorked]");
  });
});
