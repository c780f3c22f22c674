// The machine as a Mermaid stateDiagram-v2, derived from the definition itself.
import type { AnyStateMachine, AnyStateNode } from "xstate";

export interface Edge {
  from: string;
  to: string;
  label: string;
}

function describeGuard(guard: unknown): string {
  if (typeof guard === "string") return guard;
  if (guard && typeof guard === "object" && "type" in guard && typeof guard.type === "string") return guard.type;
  return "";
}

function eventLabel(eventType: string): string {
  const done = /^xstate\.done\.actor\.\d+\.[^.]+\.(.+)$/.exec(eventType) ?? /^xstate\.done\.actor\.(.+)$/.exec(eventType);
  if (done) return "done";
  if (eventType.startsWith("xstate.error.actor")) return "error";
  return eventType === "" ? "always" : eventType;
}

export function edgesOf(node: AnyStateNode): Edge[] {
  const edges: Edge[] = [];
  const invoked = node.invoke.map((i) => (typeof i.src === "string" ? i.src : i.id));
  for (const [eventType, transitions] of Object.entries(node.on)) {
    for (const t of transitions as { target?: readonly AnyStateNode[]; guard?: unknown }[]) {
      for (const target of t.target ?? []) {
        let label = eventLabel(eventType);
        if ((label === "done" || label === "error") && invoked.length > 0) label = `${invoked.join(",")} ${label}`;
        const guard = describeGuard(t.guard);
        edges.push({ from: node.key, to: target.key, label: guard && !guard.startsWith("xstate.") ? `${label} [${guard}]` : label });
      }
    }
  }
  for (const t of node.always ?? []) {
    for (const target of t.target ?? []) {
      const guard = describeGuard(t.guard);
      edges.push({ from: node.key, to: target.key, label: guard && !guard.startsWith("xstate.") ? `[${guard}]` : "always" });
    }
  }
  return edges;
}

export function toMermaid(machine: AnyStateMachine): string {
  const root = machine.root;
  const lines = ["stateDiagram-v2"];
  const initial = root.initial.target[0];
  if (initial) lines.push(`  [*] --> ${initial.key}`);
  const seen = new Set<string>();
  for (const node of Object.values(root.states) as AnyStateNode[]) {
    for (const e of edgesOf(node)) {
      const line = `  ${e.from} --> ${e.to}: ${e.label}`;
      if (!seen.has(line)) {
        seen.add(line);
        lines.push(line);
      }
    }
    if (node.type === "final") lines.push(`  ${node.key} --> [*]`);
  }
  return `${lines.join("\n")}\n`;
}

/** The relay's machines, each as its own diagram: the root (the API gate), then a conversation. */
export async function relayCharts(): Promise<{ name: "root" | "conversation"; chart: string }[]> {
  const [{ relayMachine }, { conversationMachine }] = await Promise.all([import("../../machines/relay.js"), import("../../machines/conversation.js")]);
  return [
    { name: "root", chart: toMermaid(relayMachine) },
    { name: "conversation", chart: toMermaid(conversationMachine) },
  ];
}
