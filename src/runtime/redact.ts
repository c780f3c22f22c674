// The one redaction step: every text that leaves the process (log lines, status.json, the
// snapshot, notifications, queue/.rejected/ reasons, JC's refusal file, the status page, the
// CLI's output and error lines) passes through the redactor made here from the secrets
// (CONTRACT §8 and §11: ANTHROPIC_API_KEY, RELAY_HTTP_TOKEN, NTFY_TOKEN, the NATS credentials)
// and the ntfy topics (on a public server a topic is the only password), even when an upstream
// error message quotes one of them. Where they are the point they are put back on purpose, after
// this step: the publish request itself (topic, token), a notification's buttons (the reply
// topic's URL and NTFY_TOKEN, which the tap needs), the URLs `relay topic` and `relay init` print.
import type { NatsSettings, RelayConfig } from "../config/config.js";
import type { Notification, Notifier } from "../operator/ntfy.js";

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

/**
 * What a NATS_URL holds that is secret: each member URL (comma-separated) that carries a user and
 * password (`nats://user:pass@host`), and that `user:pass` itself, which an error may quote alone.
 */
const credentialsIn = (urls: string | undefined): string[] =>
  (urls ?? "").split(",").flatMap((url) => {
    const userinfo = /^[a-z]+:\/\/([^/@]+)@/i.exec(url.trim())?.[1];
    return userinfo === undefined ? [] : [url.trim(), userinfo];
  });

/** The secrets of the NATS settings (a .creds file's or CA's path is not one). */
export const natsSecrets = (nats: NatsSettings | undefined): (string | undefined)[] => [nats?.token, nats?.password, nats?.user, ...credentialsIn(nats?.url)];

type SecretSettings = Pick<RelayConfig, "anthropic" | "httpToken" | "ntfy"> & Partial<Pick<RelayConfig, "nats">>;

/** The secrets of a configuration: the key, the tokens, the ntfy topics and the NATS credentials. */
export const secretsOf = (config: SecretSettings): (string | undefined)[] => [
  config.anthropic.apiKey,
  config.httpToken,
  config.ntfy.token,
  config.ntfy.topic,
  config.ntfy.replyTopic,
  ...natsSecrets(config.nats),
];

/** The same secrets from environment variables alone (when config.yaml cannot be read). */
export const secretsFromEnv = (env: NodeJS.ProcessEnv): (string | undefined)[] => [
  env.ANTHROPIC_API_KEY,
  env.RELAY_HTTP_TOKEN,
  env.NTFY_TOKEN,
  env.NTFY_TOPIC,
  env.NTFY_REPLY_TOPIC,
  env.NATS_TOKEN,
  env.NATS_PASSWORD,
  env.NATS_USER,
  ...credentialsIn(env.NATS_URL),
];

export const redactorFor = (config: SecretSettings): Redact => scrubber(secretsOf(config));

/**
 * A notification's own text redacted (title, message, click); its buttons are left as the relay
 * built them, since they must carry the reply topic's URL and, on a server with access control,
 * NTFY_TOKEN (a protected server refuses the tap without it).
 */
export const redactNotification = (n: Notification, redact: Redact): Notification => ({
  ...n,
  title: redact(n.title),
  message: redact(n.message),
  ...(n.click === undefined ? {} : { click: redact(n.click) }),
  ...(n.tags === undefined ? {} : { tags: n.tags.map(redact) }),
});

/** A notifier whose every notification goes through redactNotification first. */
export const redactingNotifier = (inner: Notifier, redact: Redact): Notifier => ({
  notify: (n) => inner.notify(redactNotification(n, redact)),
  flush: () => inner.flush(),
});

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
