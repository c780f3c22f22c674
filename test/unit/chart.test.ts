import type { AnyStateNode } from "xstate";
import { describe, expect, it } from "vitest";
import { relayMachine } from "../../machines/relay.js";
import { toMermaid } from "../../src/status/chart.js";

const chart = toMermaid(relayMachine);
const lines = chart.trimEnd().split("\n");
const states = Object.keys(relayMachine.root.states);

describe("toMermaid(relayMachine)", () => {
  it("starts with stateDiagram-v2", () => {
    expect(lines[0]).toBe("stateDiagram-v2");
  });

  it("mentions every state of the machine", () => {
    expect(states.length).toBeGreaterThanOrEqual(6);
    for (const state of states) expect(chart).toMatch(new RegExp(`(^|\\s)${state}(\\s|:|$)`, "m"));
  });

  it("marks the initial state and the final state", () => {
    expect(lines).toContain(`  [*] --> ${String(relayMachine.config.initial)}`);
    for (const node of Object.values(relayMachine.root.states) as AnyStateNode[]) {
      if (node.type === "final") expect(lines).toContain(`  ${node.key} --> [*]`);
    }
  });

  it("includes the transition idle --> calling", () => {
    expect(lines.some((l) => l.startsWith("  idle --> calling"))).toBe(true);
  });

  it("draws every transition between top-level states, with its event", () => {
    for (const node of Object.values(relayMachine.root.states) as AnyStateNode[]) {
      for (const transitions of Object.values(node.on) as { target?: readonly AnyStateNode[] }[][]) {
        for (const t of transitions) for (const target of t.target ?? []) expect(chart).toContain(`  ${node.key} --> ${target.key}`);
      }
      for (const t of node.always ?? []) for (const target of t.target ?? []) expect(chart).toContain(`  ${node.key} --> ${target.key}`);
    }
  });

  it("names guards and invoked actors in the labels", () => {
    expect(chart).toContain("calling --> dispatching: callApi done [callSucceeded]");
    expect(chart).toContain("idle --> calling: queue.envelopeFound");
    expect(chart).toContain("dispatching --> needsJc: commitTurn done [replyNeedsJc]");
  });

  it("every line is valid Mermaid state-diagram syntax, with no duplicates", () => {
    for (const line of lines.slice(1)) expect(line).toMatch(/^ {2}(\[\*\]|[A-Za-z][A-Za-z0-9]*) --> (\[\*\]|[A-Za-z][A-Za-z0-9]*)(: [^\n]+)?$/);
    expect(new Set(lines).size).toBe(lines.length);
    expect(chart.endsWith("\n")).toBe(true);
  });
});
