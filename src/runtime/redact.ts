// The one redaction step: every text that leaves the process (log lines, status.json, the
// snapshot, notifications, queue/.rejected/ reasons, JC's refusal file, the status page, the
// CLI's output and error lines) passes through the redactor made here from the secrets
// (CONTRACT §8: ANTHROPIC_API_KEY, RELAY_HTTP_TOKEN, NTFY_TOKEN), even when an upstream error
// message quotes one of them.
import type { RelayConfig } from "../config/config.js";

export type Redact = (text: string) => string;

export const REDACTED = "[redacted]";

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** Replaces every occurrence of each secret (8 characters or more) with [redacted]. */
export function scrubber(secrets: readonly (string | undefined)[]): Redact {
  const present = [...new Set(secrets.filter((s): s is string => typeof s === "string" && s.length >= 8))].sort((a, b) => b.length - a.length);
  if (present.length === 0) return (line) => line;
  const pattern = new RegExp(present.map(escape).join("|"), "g");
  return (line) => line.replace(pattern, REDACTED);
}

/** The secrets of a configuration. */
export const secretsOf = (config: Pick<RelayConfig, "anthropic" | "httpToken" | "ntfy">): (string | undefined)[] => [config.anthropic.apiKey, config.httpToken, config.ntfy.token];

/** The secrets in the environment alone (when config.yaml cannot be read). */
export const secretsFromEnv = (env: NodeJS.ProcessEnv): (string | undefined)[] => [env.ANTHROPIC_API_KEY, env.RELAY_HTTP_TOKEN, env.NTFY_TOKEN];

export const redactorFor = (config: Pick<RelayConfig, "anthropic" | "httpToken" | "ntfy">): Redact => scrubber(secretsOf(config));

/** Every string inside a JSON-like value redacted (a copy; the value itself is not changed). */
export function redactDeep<T>(value: T, redact: Redact): T {
  const walk = (v: unknown): unknown => {
    if (typeof v === "string") return redact(v);
    if (Array.isArray(v)) return v.map(walk);
    if (v !== null && typeof v === "object") {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) out[k] = walk(x);
      return out;
    }
    return v;
  };
  return walk(value) as T;
}
