import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { conversationMachine } from "../machines/conversation.js";
import { relayMachine } from "../machines/relay.js";
import { toMermaid } from "../src/status/chart.js";

const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
const block = (name: string) => new RegExp(`<!-- chart:${name} -->\\n\`\`\`mermaid\\n([\\s\\S]*?)\`\`\``).exec(readme)?.[1];

describe("README state diagrams (regenerate with: npm run chart:readme)", () => {
  it("the root machine's diagram is derived from its definition", () => {
    expect(block("root")).toBe(toMermaid(relayMachine));
  });

  it("the conversation machine's diagram is derived from its definition", () => {
    expect(block("conversation")).toBe(toMermaid(conversationMachine));
  });

  it("each diagram mentions every state of its machine", () => {
    for (const machine of [relayMachine, conversationMachine]) {
      const chart = toMermaid(machine);
      for (const state of Object.keys(machine.root.states)) expect(chart).toContain(state);
    }
  });
});
