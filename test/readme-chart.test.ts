import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { relayMachine } from "../machines/relay.js";
import { toMermaid } from "../src/status/chart.js";

describe("README state diagram", () => {
  it("is the diagram derived from the machine definition (regenerate with: relay chart)", () => {
    const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
    const block = /```mermaid\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(block).toBe(toMermaid(relayMachine));
  });

  it("mentions every state of the machine", () => {
    const chart = toMermaid(relayMachine);
    for (const state of Object.keys(relayMachine.root.states)) expect(chart).toContain(state);
  });
});
