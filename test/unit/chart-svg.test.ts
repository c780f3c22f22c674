// The status page's state chart is drawn by the relay itself (no drawing library): one box per
// state that the page can mark, one arrow per pair of states a transition joins.
import { describe, expect, it } from "vitest";
import { conversationMachine } from "../../machines/conversation.js";
import { relayMachine } from "../../machines/relay.js";
import { toMermaid } from "../../src/status/chart.js";
import { toSvg } from "../../src/status/chart-svg.js";

const boxes = (svg: string) => [...svg.matchAll(/<g class="state[^"]*" data-state="([^"]+)">/g)].map((m) => m[1] ?? "");
const arrows = (svg: string) => [...svg.matchAll(/<path class="transition" d="[^"]+" marker-end="url\(#chart-arrow\)"><title>([^<]*)<\/title>/g)].map((m) => m[1] ?? "");
/** The pairs of states the Mermaid text joins, as "from → to". */
const mermaidPairs = (text: string) => new Set([...text.matchAll(/^ {2}(\w+) --> (\w+):/gm)].filter((m) => m[1] !== m[2]).map((m) => `${m[1]} → ${m[2]}`));

describe("the state chart as SVG", () => {
  for (const [name, machine] of [["conversation", conversationMachine], ["root", relayMachine]] as const) {
    it(`has a box for every state of the ${name} machine, each named by data-state, and an arrow for every pair of states a transition joins`, () => {
      const svg = toSvg(machine);
      expect(boxes(svg).sort()).toEqual(Object.keys(machine.root.states).sort());
      const drawn = new Set(arrows(svg).map((t) => t.split(":")[0]));
      expect(drawn).toEqual(mermaidPairs(toMermaid(machine)));
    });
  }

  it("says in each arrow's tooltip which events and guards take it", () => {
    const titles = arrows(toSvg(conversationMachine));
    expect(titles).toContain("calling → needsJc: callApi done [budgetExhausted]");
    expect(titles.find((t) => t.startsWith("needsJc → idle:"))).toBe("needsJc → idle: jc.chat; jc.direct");
  });

  it("is well-formed, with no style attribute or script (the page's CSP allows neither)", () => {
    const svg = toSvg(conversationMachine);
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trimEnd().endsWith("</svg>")).toBe(true);
    expect(svg).not.toMatch(/style=|<style|<script|NaN|undefined/);
    expect(svg).toMatch(/viewBox="0 0 \d+(\.\d)? \d+(\.\d)?"/);
  });
});
