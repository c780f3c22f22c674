// The one redaction step (src/runtime/redact.ts): which values it scrubs, and the one place it
// leaves the reply topic's URL and NTFY_TOKEN alone (a notification's buttons, which need them).
import { describe, expect, it } from "vitest";
import { notification } from "../../src/operator/notifications.js";
import type { Notification, Notifier } from "../../src/operator/ntfy.js";
import { REDACTED, redactingNotifier, redactNotification, redactorFor, scrubber, secretsFromEnv } from "../../src/runtime/redact.js";

const KEY = "sk-ant-unit-0123456789abcdef";
const HTTP_TOKEN = "page-token-0123456789abcdef";
const NTFY_TOKEN = "tk_unitntfytoken0123456789";
const TOPIC = "relaytopicAAAAAAAAAAAAAAAAAAAA";
const REPLY_TOPIC = "replytopicBBBBBBBBBBBBBBBBBBBB";
const NATS_TOKEN = "nats-token-0123456789";
const NATS_PASSWORD = "nats-password-0123456789";
const NATS_URL = "nats://relayuser:nats-url-secret-0123@127.0.0.1:4222,nats://relayuser:nats-url-secret-0123@127.0.0.1:4223";
const ALL = [KEY, HTTP_TOKEN, NTFY_TOKEN, TOPIC, REPLY_TOPIC, NATS_TOKEN, NATS_PASSWORD, NATS_URL];
const quoting = `upstream said: ${ALL.join(" | ")}`;

const config = {
  anthropic: { apiKey: KEY },
  httpToken: HTTP_TOKEN,
  ntfy: { server: "https://ntfy.example", topic: TOPIC, replyTopic: REPLY_TOPIC, token: NTFY_TOKEN },
  nats: { url: NATS_URL, prefix: "relay", replicas: 1 as const, token: NATS_TOKEN, password: NATS_PASSWORD },
};

describe("the one redaction step", () => {
  it("scrubs the key, both tokens, both ntfy topics and the NATS credentials of a configuration", () => {
    const out = redactorFor(config)(quoting);
    for (const secret of ALL) expect(out).not.toContain(secret);
    expect(out).toBe(`upstream said: ${[...Array<string>(ALL.length - 1).fill(REDACTED), `${REDACTED},${REDACTED}`].join(" | ")}`);
  });

  it("scrubs a NATS member URL's user and password when an error quotes one member, or the credentials alone", () => {
    const out = redactorFor(config)("connect to nats://relayuser:nats-url-secret-0123@127.0.0.1:4223 failed (as relayuser:nats-url-secret-0123)");
    expect(out).not.toContain("nats-url-secret-0123");
    expect(out).toBe(`connect to ${REDACTED} failed (as ${REDACTED})`);
  });

  it("scrubs the same from environment variables alone (when config.yaml cannot be read)", () => {
    const env = { ANTHROPIC_API_KEY: KEY, RELAY_HTTP_TOKEN: HTTP_TOKEN, NTFY_TOKEN, NTFY_TOPIC: TOPIC, NTFY_REPLY_TOPIC: REPLY_TOPIC, NATS_TOKEN, NATS_PASSWORD, NATS_URL };
    const out = scrubber(secretsFromEnv(env))(quoting);
    for (const secret of ALL) expect(out).not.toContain(secret);
  });

  it("leaves a notification's buttons their reply-topic URL and NTFY_TOKEN, and scrubs its text", () => {
    const links = { replyUrl: `https://ntfy.example/${REPLY_TOPIC}`, token: NTFY_TOKEN };
    const n = notification({ kind: "needsJc", session: "s1", questionId: "q1", message: `[NEEDS-JC] ${quoting}` }, links);
    const out = redactNotification(n, redactorFor(config));
    for (const secret of ALL) expect(out.title + out.message).not.toContain(secret);
    expect(out.actions).toEqual(n.actions);
    expect(out.actions?.[0]).toMatchObject({ action: "http", url: `https://ntfy.example/${REPLY_TOPIC}`, headers: { Authorization: `Bearer ${NTFY_TOKEN}` } });
  });

  it("a redacting notifier scrubs every notification on its way out, whoever sent it", async () => {
    const sent: Notification[] = [];
    const inner: Notifier = { notify: (n) => sent.push(n), flush: async () => undefined };
    const notifier = redactingNotifier(inner, redactorFor(config));
    notifier.notify({ title: `relay: NATS ${NATS_URL}`, message: quoting, click: `https://ntfy.example/${TOPIC}`, tags: [TOPIC] });
    await notifier.flush();
    expect(sent).toHaveLength(1);
    for (const secret of ALL) expect(JSON.stringify(sent[0])).not.toContain(secret);
  });
});
