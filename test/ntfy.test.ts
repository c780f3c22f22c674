import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  createNotifier,
  publish,
  truncateUtf8,
  type Notification,
  type NotifyLog,
  type NtfyAction,
  type NtfyTarget,
} from "../src/operator/ntfy.js";
import { closedPortUrl, startFakeNtfy, type FakeNtfy, type NtfyMessage } from "./support/fake-ntfy.js";

const TOPIC = "relay-test_Topic-Zq8xW3kLm9Pa2";
const TOKEN = "tk_s3cr3tt0k3nvalue0123456789";

interface LogEntry {
  level: "warn" | "debug";
  obj: Record<string, unknown>;
  msg: string;
}

function recordingLog(): NotifyLog & { entries: LogEntry[]; warns(): LogEntry[] } {
  const entries: LogEntry[] = [];
  return {
    entries,
    warn(obj, msg) {
      entries.push({ level: "warn", obj, msg });
    },
    debug(obj, msg) {
      entries.push({ level: "debug", obj, msg });
    },
    warns() {
      return entries.filter((e) => e.level === "warn");
    },
  };
}

function expectNoSecrets(text: string): void {
  expect(text).not.toContain(TOPIC);
  expect(text).not.toContain(TOKEN);
}

/** Reads an ndjson response line by line. */
function lineReader(res: Response): { next(timeoutMs?: number): Promise<Record<string, unknown>> } {
  if (!res.body) throw new Error("no body");
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  return {
    async next(timeoutMs = 1000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const nl = buffer.indexOf("\n");
        if (nl !== -1) {
          const line = buffer.slice(0, nl);
          buffer = buffer.slice(nl + 1);
          return JSON.parse(line) as Record<string, unknown>;
        }
        const remaining = deadline - Date.now();
        if (remaining <= 0) throw new Error("no line in time");
        let timer: NodeJS.Timeout | undefined;
        const chunk = await Promise.race([
          reader.read(),
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error("no line in time")), remaining);
          }),
        ]).finally(() => clearTimeout(timer));
        if (chunk.done) throw new Error("stream ended");
        buffer += decoder.decode(chunk.value, { stream: true });
      }
    },
  };
}

async function pollLines(fake: FakeNtfy, query: string): Promise<NtfyMessage[]> {
  const res = await fetch(`${fake.url}/${TOPIC}/json?poll=1&${query}`);
  expect(res.status).toBe(200);
  const text = await res.text();
  return text
    .split("\n")
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l) as NtfyMessage);
}

let fake: FakeNtfy;
let target: NtfyTarget;

beforeEach(async () => {
  fake = await startFakeNtfy();
  target = { server: fake.url, topic: TOPIC };
});

afterEach(async () => {
  await fake.close();
});

describe("publish", () => {
  it("delivers title, priority, tags, click, actions and unicode as JSON to POST /", async () => {
    const actions: NtfyAction[] = [
      { action: "view", label: "Status", url: "http://127.0.0.1:1/status" },
      { action: "http", label: "Approve ✅", url: "http://127.0.0.1:1/reply", body: "approve", clear: true },
    ];
    await publish(
      { server: `${fake.url}//`, topic: TOPIC },
      {
        title: "Needs JC 🚨 确认",
        message: "Sub-PR A 😀 は準備完了 — ok?",
        priority: 5,
        tags: ["warning", "relay"],
        click: "http://127.0.0.1:1/click",
        actions,
      },
    );
    expect(fake.requests).toHaveLength(1);
    const req = fake.requests[0];
    expect(req?.method).toBe("POST");
    expect(req?.path).toBe("/");
    expect(req?.headers["content-type"]).toMatch(/application\/json/);
    expect(req?.headers["authorization"]).toBeUndefined();
    expect(fake.messages).toHaveLength(1);
    const m = fake.messages[0];
    expect(m).toMatchObject({
      event: "message",
      topic: TOPIC,
      title: "Needs JC 🚨 确认",
      message: "Sub-PR A 😀 は準備完了 — ok?",
      priority: 5,
      tags: ["warning", "relay"],
      click: "http://127.0.0.1:1/click",
    });
    expect(m?.actions).toEqual([
      expect.objectContaining(actions[0]),
      expect.objectContaining(actions[1]),
    ]);
  });

  it("sends the token as a Bearer header, and a protected server refuses a request without it", async () => {
    await fake.close();
    fake = await startFakeNtfy({ requireToken: TOKEN });
    await publish({ server: fake.url, topic: TOPIC, token: TOKEN }, { title: "t", message: "with token" });
    expect(fake.requests[0]?.headers["authorization"]).toBe(`Bearer ${TOKEN}`);
    expect(fake.messages.map((m) => m.message)).toEqual(["with token"]);

    const refused = await publish({ server: fake.url, topic: TOPIC }, { title: "t", message: "without" }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(Error);
    expect((refused as Error).message).toMatch(/^ntfy publish failed: HTTP 40[13]/);
    expectNoSecrets((refused as Error).message);

    const wrong = await publish({ server: fake.url, topic: TOPIC, token: "tk_wrong" }, { title: "t", message: "x" }).catch((e: unknown) => e);
    expect((wrong as Error).message).toMatch(/HTTP 401/);
    expect(fake.messages).toHaveLength(1);
  });

  it("truncates a long message under 4,096 UTF-8 bytes on a character boundary, with an ellipsis", async () => {
    const long = "é😀漢a".repeat(1000); // 10,000 bytes
    await publish(target, { title: "long", message: long });
    const m = fake.messages[0];
    expect(m?.attachment).toBeUndefined(); // the real server would have made it an attachment
    const stored = m?.message ?? "";
    expect(Buffer.byteLength(stored, "utf8")).toBeLessThanOrEqual(4096);
    expect(Buffer.byteLength(stored, "utf8")).toBeGreaterThan(4000);
    expect(stored.endsWith("…")).toBe(true);
    expect(long.startsWith(stored.slice(0, -1))).toBe(true);
  });

  it("truncateUtf8 never splits a surrogate pair and leaves short text alone", () => {
    expect(truncateUtf8("short ✓", 4096)).toBe("short ✓");
    for (let max = 4; max < 20; max++) {
      const cut = truncateUtf8("😀".repeat(10), max);
      expect(Buffer.byteLength(cut, "utf8")).toBeLessThanOrEqual(max);
      expect(Buffer.from(cut, "utf8").toString("utf8")).toBe(cut); // no lone surrogate
      expect(cut.endsWith("…")).toBe(true);
    }
  });

  it("sends at most 3 actions", async () => {
    const actions: NtfyAction[] = [1, 2, 3, 4, 5].map((i) => ({ action: "view", label: `a${i}`, url: `http://127.0.0.1:1/${i}` }));
    await publish(target, { title: "t", message: "m", actions });
    expect(fake.messages[0]?.actions?.map((a) => (a as { label: string }).label)).toEqual(["a1", "a2", "a3"]);
  });

  it("throws a clear error on HTTP 500, a refused connection and a timeout, naming neither topic nor token", async () => {
    fake.setMode("error500");
    const e500 = await publish({ ...target, token: TOKEN }, { title: "t", message: "m" }).catch((e: unknown) => e);
    expect((e500 as Error).message).toMatch(/^ntfy publish failed: HTTP 500/);
    expectNoSecrets((e500 as Error).message);

    const refusedUrl = await closedPortUrl();
    const eRefused = await publish({ server: refusedUrl, topic: TOPIC, token: TOKEN }, { title: "t", message: "m" }).catch((e: unknown) => e);
    expect((eRefused as Error).message).toMatch(/^ntfy publish failed: .*ECONNREFUSED/);
    expectNoSecrets((eRefused as Error).message);

    fake.setMode("hang");
    const started = Date.now();
    const eHang = await publish({ ...target, token: TOKEN }, { title: "t", message: "m" }, { timeoutMs: 150 }).catch((e: unknown) => e);
    expect(Date.now() - started).toBeLessThan(10_000); // the server never answers: only the 150 ms timeout ends it
    expect((eHang as Error).message).toBe("ntfy publish failed: timed out after 150 ms");
    expect(fake.requests.at(-1)?.path).toBe("/");
  });

  it("rejects an invalid topic without echoing it", async () => {
    const err = await publish({ server: fake.url, topic: "bad topic/secret" }, { title: "t", message: "m" }).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/invalid topic/);
    expect((err as Error).message).not.toContain("bad topic/secret");
    expect(fake.requests).toHaveLength(0);
  });
});

describe("createNotifier", () => {
  const n: Notification = { title: "Needs JC", message: "question?" };

  async function notifyFailing(server: string, mode: "ok" | "hang" | "error500"): Promise<ReturnType<typeof recordingLog>> {
    fake.setMode(mode);
    const log = recordingLog();
    // Only a hanging server needs the timeout; the others answer, however busy the machine is.
    const notifier = createNotifier({ server, topic: TOPIC, token: TOKEN }, log, { timeoutMs: mode === "hang" ? 1_000 : 30_000 });
    const started = performance.now();
    expect(notifier.notify(n)).toBeUndefined();
    expect(performance.now() - started).toBeLessThan(500); // did not wait for the request (a hanging one takes 1 s)
    expect(log.warns()).toHaveLength(0); // nothing has failed yet: the call did not wait
    await notifier.flush();
    expect(log.warns()).toHaveLength(1);
    expectNoSecrets(JSON.stringify(log.entries));
    return log;
  }

  it("returns at once and logs one warning when the connection is refused", async () => {
    const log = await notifyFailing(await closedPortUrl(), "ok");
    expect(JSON.stringify(log.warns()[0]?.obj)).toMatch(/ECONNREFUSED/);
  });

  it("returns at once and logs one warning when the server hangs (timeout fires)", async () => {
    const log = await notifyFailing(fake.url, "hang");
    expect(log.warns()[0]?.obj["error"]).toMatch(/timed out after 1000 ms/);
    expect(fake.requests).toHaveLength(1);
  });

  it("returns at once and logs one warning when the server answers 500", async () => {
    const log = await notifyFailing(fake.url, "error500");
    expect(log.warns()[0]?.obj["status"]).toBe(500);
  });

  it("survives a logger that throws", async () => {
    fake.setMode("error500");
    const notifier = createNotifier(target, {
      warn() {
        throw new Error("logger broke");
      },
    });
    expect(() => notifier.notify(n)).not.toThrow();
    await expect(notifier.flush()).resolves.toBeUndefined();
    expect(fake.requests).toHaveLength(1);
  });

  it("flush waits for the notifications in flight", async () => {
    const log = recordingLog();
    const notifier = createNotifier(target, log);
    notifier.notify({ title: "one", message: "1" });
    notifier.notify({ title: "two", message: "2" });
    expect(fake.messages).toHaveLength(0);
    await notifier.flush();
    expect(fake.messages.map((m) => m.message).sort()).toEqual(["1", "2"]);
    expect(log.warns()).toHaveLength(0);
  });

  it("flush waits for a hanging request until its timeout", async () => {
    fake.setMode("hang");
    const log = recordingLog();
    const notifier = createNotifier(target, log, { timeoutMs: 200 });
    notifier.notify(n);
    const started = Date.now();
    await notifier.flush();
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
    expect(log.warns()).toHaveLength(1);
  });

  it("drops with a warning beyond maxPending in flight", async () => {
    fake.setMode("hang");
    const log = recordingLog();
    const notifier = createNotifier(target, log, { timeoutMs: 2_000, maxPending: 2 });
    notifier.notify(n);
    notifier.notify(n);
    notifier.notify(n);
    expect(log.warns().map((e) => e.msg)).toEqual(["ntfy notification dropped: too many in flight"]);
    await notifier.flush();
    expect(log.warns()).toHaveLength(3);
    expect(fake.requests).toHaveLength(2);
  });

  it("applies the minIntervalMs rate guard", async () => {
    let clock = 0;
    const log = recordingLog();
    const notifier = createNotifier(target, log, { minIntervalMs: 1000, now: () => clock });
    notifier.notify({ title: "t", message: "at 0" });
    clock = 500;
    notifier.notify({ title: "t", message: "at 500" });
    clock = 1500;
    notifier.notify({ title: "t", message: "at 1500" });
    await notifier.flush();
    expect(fake.messages.map((m) => m.message).sort()).toEqual(["at 0", "at 1500"]);
    expect(log.warns().map((e) => e.msg)).toEqual(["ntfy notification dropped: rate guard"]);
  });

  it("is a debug-only no-op when ntfy is not configured", async () => {
    const log = recordingLog();
    const notifier = createNotifier(null, log);
    notifier.notify(n);
    await notifier.flush();
    expect(log.entries.map((e) => e.level)).toEqual(["debug"]);
    expect(fake.requests).toHaveLength(0);
  });
});

describe("the fake ntfy's subscribe stream", () => {
  it("opens with an open event and delivers a message published through publish()", async () => {
    const ac = new AbortController();
    const res = await fetch(`${fake.url}/${TOPIC}/json`, { signal: ac.signal });
    try {
      expect(res.status).toBe(200);
      const lines = lineReader(res);
      const open = await lines.next();
      expect(open).toMatchObject({ event: "open", topic: TOPIC });
      expect(typeof open["id"]).toBe("string");
      expect(typeof open["time"]).toBe("number");
      await publish(target, { title: "Hi 👋", message: "stream me", priority: 4, tags: ["x"] });
      const msg = await lines.next();
      expect(msg).toMatchObject({ event: "message", topic: TOPIC, title: "Hi 👋", message: "stream me", priority: 4, tags: ["x"] });
      expect(msg["id"]).toBe(fake.messages[0]?.id);
    } finally {
      ac.abort();
    }
  });

  it("honours since=<id> (after it) and since=<unknown id> (everything cached)", async () => {
    const a = fake.publish(TOPIC, "a");
    fake.publish(TOPIC, "b");
    fake.publish(TOPIC, "c");
    fake.publish("other-topic", "not mine");

    expect((await pollLines(fake, `since=${a.id}`)).map((m) => m.message)).toEqual(["b", "c"]);
    expect((await pollLines(fake, "since=Zz0000000000")).map((m) => m.message)).toEqual(["a", "b", "c"]);
    expect((await pollLines(fake, "since=all")).map((m) => m.message)).toEqual(["a", "b", "c"]);
    expect((await pollLines(fake, "")).map((m) => m.message)).toEqual(["a", "b", "c"]);

    // A live stream with since=<id>: open, then the cached tail, then new messages.
    const ac = new AbortController();
    const res = await fetch(`${fake.url}/${TOPIC}/json?since=${a.id}`, { signal: ac.signal });
    try {
      const lines = lineReader(res);
      expect((await lines.next())["event"]).toBe("open");
      expect((await lines.next())["message"]).toBe("b");
      expect((await lines.next())["message"]).toBe("c");
      fake.publish(TOPIC, "d");
      expect((await lines.next())["message"]).toBe("d");
    } finally {
      ac.abort();
    }
  });

  it("honours since=<unix time> inclusively and sends nothing cached without since", async () => {
    fake.publish(TOPIC, "old", { time: 1000 });
    fake.publish(TOPIC, "edge", { time: 2000 });
    fake.publish(TOPIC, "new", { time: 3000 });
    expect((await pollLines(fake, "since=2000")).map((m) => m.message)).toEqual(["edge", "new"]);

    const ac = new AbortController();
    const res = await fetch(`${fake.url}/${TOPIC}/json`, { signal: ac.signal });
    try {
      const lines = lineReader(res);
      expect((await lines.next())["event"]).toBe("open");
      fake.publish(TOPIC, "live");
      expect((await lines.next())["message"]).toBe("live");
    } finally {
      ac.abort();
    }
  });

  it("sends keepalive events when configured", async () => {
    await fake.close();
    fake = await startFakeNtfy({ keepaliveMs: 30 });
    const ac = new AbortController();
    const res = await fetch(`${fake.url}/${TOPIC}/json`, { signal: ac.signal });
    try {
      const lines = lineReader(res);
      expect((await lines.next())["event"]).toBe("open");
      expect(await lines.next()).toMatchObject({ event: "keepalive", topic: TOPIC });
    } finally {
      ac.abort();
    }
  });
});

describe("the fake ntfy's header publishing", () => {
  it("parses Title, Priority names, Tags, Click and the short Actions format", async () => {
    const encodedTitle = `=?UTF-8?B?${Buffer.from("Réponse 🙂", "utf8").toString("base64")}?=`;
    const res = await fetch(`${fake.url}/${TOPIC}`, {
      method: "PUT",
      headers: {
        Title: encodedTitle,
        "X-Priority": "urgent",
        Tags: "warning, skull",
        Click: "http://127.0.0.1:1/c",
        Actions: 'view, Status, http://127.0.0.1:1/s; http, "Approve, now", http://127.0.0.1:1/r, body=approve, clear=true',
      },
      body: "body text ✓",
    });
    expect(res.status).toBe(200);
    const answered = (await res.json()) as NtfyMessage;
    expect(answered).toMatchObject({ event: "message", topic: TOPIC, message: "body text ✓", title: "Réponse 🙂", priority: 5, tags: ["warning", "skull"] });
    expect(answered.actions).toEqual([
      expect.objectContaining({ action: "view", label: "Status", url: "http://127.0.0.1:1/s" }),
      expect.objectContaining({ action: "http", label: "Approve, now", url: "http://127.0.0.1:1/r", body: "approve", clear: true }),
    ]);
    expect(await fake.waitForMessages(1)).toEqual([answered]);
  });

  it("answers 400 to an invalid topic or too many actions", async () => {
    expect((await fetch(`${fake.url}/bad.topic`, { method: "POST", body: "x" })).status).toBe(400);
    const tooMany = await fetch(`${fake.url}/`, {
      method: "POST",
      body: JSON.stringify({ topic: TOPIC, message: "m", actions: [1, 2, 3, 4].map((i) => ({ action: "view", label: `${i}`, url: "http://x" })) }),
    });
    expect(tooMany.status).toBe(400);
    expect(fake.messages).toHaveLength(0);
  });
});
