// config.yaml for the roots of the NATS tests: the relay's (with sessions on other hosts) and an agent's.
import { SUMMARIZATION_PROMPT, SYSTEM_PROMPT } from "./cli.js";

const indent = (s: string) => `  ${s}`;

export interface NatsSession {
  id: string;
  host?: string;
  systemPrompt?: string;
}

export function relayNatsConfig(sessions: NatsSession[], prefix?: string): string {
  return [
    "model: claude-sonnet-4-6",
    "max_tokens: 1024",
    "system_prompt: |",
    indent(SYSTEM_PROMPT),
    "summarization_prompt: |",
    indent(SUMMARIZATION_PROMPT),
    "transport: nats",
    ...(prefix === undefined ? [] : ["nats:", `  prefix: ${prefix}`]),
    "sessions:",
    ...sessions.flatMap((s) => [
      `  - id: ${s.id}`,
      ...(s.host ? [`    host: ${s.host}`] : []),
      ...(s.systemPrompt ? ["    system_prompt: |", `      ${s.systemPrompt}`] : []),
    ]),
    "",
  ].join("\n");
}

export function agentNatsConfig(name: string, sessions: string[], prefix?: string): string {
  return ["transport: nats", ...(prefix === undefined ? [] : ["nats:", `  prefix: ${prefix}`]), "agent:", `  name: ${name}`, "sessions:", ...sessions.map((s) => `  - id: ${s}`), ""].join("\n");
}
