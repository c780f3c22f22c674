import { mkdtemp, readFile, rm, writeFile, mkdir } from "node:fs/promises";
import { createServer, connect, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import pino from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Logger } from "../src/runtime/log.js";
import {
  backoffDelay,
  isRelayNotification,
  KEEP_IDS,
  repliesStatePath,
  subscribeReplies,
  type RepliesState,
  type ReplySubscriberOptions,
} from "../src/operator/phone-replies.js";
import { relayPaths, type RelayPaths } from "../src/config/paths.js";
import { startFakeNtfy, type FakeNtfy, type FakeNtfyRequest } from "./support/fake-ntfy.js";
import { freePort } from "./support/free-port.js";

const TOPIC = "reply-Topic_Zq8xW3kLm9Pa2Hf7Uw";
const TOKEN = "tk_r3plyt0k3nvalue0123456789";

interface Taken {
  id: string;
  text: string;
  time: number;
  redelivered?: boolean;
}

let root: string;
let paths: RelayPaths;
const cleanups: (() => Promise<void> | void)[] = [];

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "relay-replies-"));
  paths = relayPaths(root);
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await rm(root, { recursive: true, force: true });
});

async function fakeNtfy(opts: Parameters<typeof startFakeNtfy>[0] = {}): Promise<FakeNtfy> {
  const fake = await startFakeNtfy(opts);
  cleanups.push(() => fake.close());
  return fake;
}

/** A pino logger whose every line lands in `text()`. */
function captureLog(): { log: Logger; text(): string } {
  let out = "";
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      out += chunk.toString("utf8");
      done();
    },
  });
  return { log: pino({ level: "debug" }, stream), text: () => out };
}

interface Sub {
  taken: Taken[];
  controller: AbortController;
  done: Promise<void>;
  logText(): string;
  stop(): Promise<void>;
}

function subscribe(server: string, extra: Partial<ReplySubscriberOptions> = {}): Sub {
  const taken: Taken[] = [];
  const controller = new AbortController();
  const { log, text } = captureLog();
  const done = subscribeReplies({
    server,
    topic: TOPIC,
    paths,
    log,
    signal: controller.signal,
    backoff: { initialMs: 20, maxMs: 200 },
    onMessage: async (m) => {
      taken.push({ ...m });
    },
    ...extra,
  });
  const sub: Sub = {
    taken,
    controller,
    done,
    logText: text,
    stop: async () => {
      controller.abort();
      await done;
    },
  };
  cleanups.push(sub.stop);
  return sub;
}

async function waitFor<T>(what: string, condition: () => T | Promise<T>, timeoutMs = 5_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await condition();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

const streams = (fake: FakeNtfy): FakeNtfyRequest[] =>
  fake.requests.filter((r) => r.method === "GET" && r.path.includes("/json?since=") && !r.path.includes("poll=1"));

/** Resolves once `n` stream subscriptions have reached the server (the fake registers them at once). */
const subscribed = (fake: FakeNtfy, n = 1): Promise<FakeNtfyRequest[]> => waitFor(`${n} subscription(s)`, () => (streams(fake).length >= n ? streams(fake) : null));

const readState = async (): Promise<RepliesState> => JSON.parse(await readFile(repliesStatePath(paths), "utf8")) as RepliesState;

/**
 * A TCP proxy in front of the fake ntfy that can drop every connection, stop
 * listening (connection refused) and listen again on the same port, or
 * freeze the connections it has (the server's bytes stop arriving, the
 * socket stays open: a dead stream).
 */
interface Proxy {
  url: string;
  accepted(): number;
  drop(): void;
  refuse(): Promise<void>;
  accept(): Promise<void>;
  freeze(): void;
}

async function startProxy(target: string): Promise<Proxy> {
  const targetPort = Number(new URL(target).port);
  const pairs = new Set<{ client: Socket; upstream: Socket; frozen: boolean }>();
  let accepted = 0;
  const server: Server = createServer((client) => {
    accepted++;
    const upstream = connect(targetPort, "127.0.0.1");
    const pair = { client, upstream, frozen: false };
    pairs.add(pair);
    const kill = (): void => {
      client.destroy();
      upstream.destroy();
      pairs.delete(pair);
    };
    client.on("data", (d: Buffer) => upstream.write(d));
    upstream.on("data", (d: Buffer) => {
      if (!pair.frozen) client.write(d);
    });
    client.on("close", kill).on("error", kill);
    upstream.on("close", kill).on("error", kill);
  });
  const listen = (port: number): Promise<void> =>
    new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => {
        server.off("error", reject);
        resolve();
      });
    });
  // A port the kernel never hands out: `accept()` binds it again after `refuse()` released it.
  const port = await freePort();
  await listen(port);
  const drop = (): void => {
    for (const p of [...pairs]) {
      p.client.destroy();
      p.upstream.destroy();
    }
    pairs.clear();
  };
  const proxy: Proxy = {
    url: `http://127.0.0.1:${port}`,
    accepted: () => accepted,
    drop,
    refuse: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        drop();
      }),
    accept: () => listen(port),
    freeze: () => {
      for (const p of pairs) p.frozen = true;
    },
  };
  cleanups.push(async () => {
    drop();
    if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return proxy;
}

describe("subscribeReplies", () => {
  it("hands a message published after subscribing to onMessage exactly once, as sent", async () => {
    const fake = await fakeNtfy();
    const sub = subscribe(fake.url);
    await subscribed(fake);
    const m = fake.publish(TOPIC, "@session-1: do X");
    await waitFor("the message", () => sub.taken.length === 1);
    await sleep(150);
    expect(sub.taken).toEqual([{ id: m.id, text: "@session-1: do X", time: m.time }]);
    const state = await readState();
    expect(state.ids).toContain(m.id);
    expect(state.pending).toEqual([]);
    expect(state.since).toBe(m.time);
  });

  it("never takes a message published before the relay first subscribed, even in the same second", async () => {
    const fake = await fakeNtfy();
    const old = fake.publish(TOPIC, "yesterday's answer", { time: Math.floor(Date.now() / 1000) - 3600 });
    const sameSecond = fake.publish(TOPIC, "just before the first start");
    const sub = subscribe(fake.url);
    await subscribed(fake);
    // since= is inclusive and in seconds: the stream re-sends `sameSecond`; it must be skipped.
    const fresh = fake.publish(TOPIC, "after");
    await waitFor("the new message", () => sub.taken.length >= 1);
    await sleep(150);
    expect(sub.taken.map((t) => t.id)).toEqual([fresh.id]);
    expect(sub.taken.map((t) => t.id)).not.toContain(old.id);
    expect(sub.taken.map((t) => t.id)).not.toContain(sameSecond.id);
  });

  it("after a restart, does not take an already-taken message again though since= re-sends it", async () => {
    const fake = await fakeNtfy();
    const first = subscribe(fake.url);
    await subscribed(fake);
    const m1 = fake.publish(TOPIC, "first answer");
    await waitFor("m1", () => first.taken.length === 1);
    await first.stop();

    const second = subscribe(fake.url);
    const reqs = await subscribed(fake, 2);
    expect(reqs[1]?.path).toContain(`since=${m1.time}`); // inclusive: m1 comes back on the wire
    const m2 = fake.publish(TOPIC, "second answer");
    await waitFor("m2", () => second.taken.length >= 1);
    await sleep(150);
    expect(second.taken.map((t) => t.id)).toEqual([m2.id]);
  });

  it("takes, after a restart, what was published while the relay was down", async () => {
    const fake = await fakeNtfy();
    const first = subscribe(fake.url);
    await subscribed(fake);
    await first.stop();
    const whileDown = fake.publish(TOPIC, "sent while the relay was stopped");
    const second = subscribe(fake.url);
    await waitFor("the message", () => second.taken.length === 1);
    expect(second.taken[0]?.id).toBe(whileDown.id);
  });

  it("reconnects when the server drops the connection and takes later messages", async () => {
    const fake = await fakeNtfy();
    const proxy = await startProxy(fake.url);
    const sub = subscribe(proxy.url);
    await subscribed(fake);
    const m1 = fake.publish(TOPIC, "one");
    await waitFor("m1", () => sub.taken.length === 1);
    proxy.drop();
    const m2 = fake.publish(TOPIC, "two, published while disconnected");
    await waitFor("m2", () => sub.taken.length === 2);
    await subscribed(fake, 2);
    const m3 = fake.publish(TOPIC, "three");
    await waitFor("m3", () => sub.taken.length === 3);
    await sleep(150);
    expect(sub.taken.map((t) => t.id)).toEqual([m1.id, m2.id, m3.id]);
  });

  it("keeps retrying with back-off while the server refuses connections, then subscribes", async () => {
    const fake = await fakeNtfy();
    const proxy = await startProxy(fake.url);
    await proxy.refuse();
    const sub = subscribe(proxy.url, { backoff: { initialMs: 20, maxMs: 80 } });
    await sleep(400);
    expect(sub.taken).toEqual([]);
    expect(sub.logText()).toContain("reconnecting");
    await proxy.accept();
    await subscribed(fake);
    const m = fake.publish(TOPIC, "works now");
    await waitFor("the message", () => sub.taken.length === 1);
    expect(sub.taken[0]?.id).toBe(m.id);
  });

  it("backs off exponentially while the server answers with errors", async () => {
    const fake = await fakeNtfy();
    fake.setMode("error500");
    const sub = subscribe(fake.url, { backoff: { initialMs: 40, maxMs: 320 } });
    await waitFor("five attempts", () => fake.requests.length >= 5, 5_000);
    // By now the step has reached its 320 ms cap, and equal jitter keeps every gap at least
    // half of it: at most 5 more attempts in 700 ms (a fixed 40 ms retry would make ~17).
    const before = fake.requests.length;
    await sleep(700);
    expect(fake.requests.length - before).toBeLessThanOrEqual(5);
    expect(sub.taken).toEqual([]);
    fake.setMode("ok");
    await subscribed(fake);
    const m = fake.publish(TOPIC, "back");
    await waitFor("the message", () => sub.taken.length === 1);
    expect(sub.taken[0]?.id).toBe(m.id);
  });

  it("reconnects a stream that went silent (no line, not even a keepalive) within the idle timeout", async () => {
    const fake = await fakeNtfy({ keepaliveMs: 50 });
    const proxy = await startProxy(fake.url);
    const sub = subscribe(proxy.url, { idleTimeoutMs: 300 });
    await subscribed(fake);
    await sleep(400); // keepalives every 50 ms keep a live stream open past the idle timeout
    expect(streams(fake)).toHaveLength(1);
    proxy.freeze();
    const m = fake.publish(TOPIC, "sent into a dead stream");
    await sleep(100);
    expect(sub.taken).toEqual([]);
    await waitFor("the message after reconnecting", () => sub.taken.length === 1, 3_000);
    expect(sub.taken[0]?.id).toBe(m.id);
    expect(streams(fake).length).toBeGreaterThanOrEqual(2);
  });

  it("sends the token as a bearer token when set, and none otherwise", async () => {
    const fake = await fakeNtfy({ requireToken: TOKEN });
    const sub = subscribe(fake.url, { token: TOKEN });
    await subscribed(fake);
    const m = fake.publish(TOPIC, "with a token");
    await waitFor("the message", () => sub.taken.length === 1);
    expect(sub.taken[0]?.id).toBe(m.id);
    expect(fake.requests.every((r) => r.headers.authorization === `Bearer ${TOKEN}`)).toBe(true);
    await sub.stop();

    const open = await fakeNtfy();
    const bare = subscribe(open.url);
    await subscribed(open);
    expect(open.requests.every((r) => r.headers.authorization === undefined)).toBe(true);
    await bare.stop();
  });

  it("keeps retrying when the server refuses the token, without logging the topic or the token", async () => {
    const fake = await fakeNtfy({ requireToken: "tk_the_right_one_000000000" });
    const sub = subscribe(fake.url, { token: TOKEN });
    await waitFor("three attempts", () => fake.requests.length >= 3);
    await sub.stop();
    expect(sub.taken).toEqual([]);
    expect(sub.logText()).toContain("check NTFY_TOKEN");
    expect(sub.logText()).not.toContain(TOPIC);
    expect(sub.logText()).not.toContain(TOKEN);
  });

  it("stops promptly on abort, while subscribed and while backing off", async () => {
    const fake = await fakeNtfy();
    const sub = subscribe(fake.url);
    await subscribed(fake);
    let t = Date.now();
    await sub.stop();
    expect(Date.now() - t).toBeLessThan(10_000); // promptly: not the 60 s back-off or a server that never answers

    const refused = await startProxy(fake.url);
    await refused.refuse();
    const waiting = subscribe(refused.url, { backoff: { initialMs: 60_000, maxMs: 60_000 } });
    await sleep(100);
    t = Date.now();
    await waiting.stop();
    expect(Date.now() - t).toBeLessThan(10_000); // promptly: not the 60 s back-off or a server that never answers

    const never = subscribe(fake.url);
    never.controller.abort();
    await never.done;
  });

  it("stops promptly on abort while the server never answers", async () => {
    const fake = await fakeNtfy();
    fake.setMode("hang");
    const sub = subscribe(fake.url);
    await waitFor("the request", () => fake.requests.length >= 1);
    const t = Date.now();
    await sub.stop();
    expect(Date.now() - t).toBeLessThan(10_000); // promptly: not the 60 s back-off or a server that never answers
  });

  it("ignores the relay's own notifications published to the reply topic", async () => {
    const fake = await fakeNtfy();
    const sub = subscribe(fake.url);
    await subscribed(fake);
    const ownTitle = await fetch(`${fake.url}/`, {
      method: "POST",
      body: JSON.stringify({ topic: TOPIC, title: "relay: session-1 needs JC", message: "Should I merge?", tags: ["raising_hand"] }),
    });
    expect(ownTitle.ok).toBe(true);
    fake.publish(TOPIC, "tagged", { tags: ["relay"] });
    const jc = fake.publish(TOPIC, "approve");
    await waitFor("JC's answer", () => sub.taken.length >= 1);
    await sleep(150);
    expect(sub.taken.map((t) => t.id)).toEqual([jc.id]);
    expect(sub.logText()).toContain("own notifications");
  });

  it("does not take an attachment (a message over 4,096 bytes) as an answer", async () => {
    const fake = await fakeNtfy();
    const sub = subscribe(fake.url);
    await subscribed(fake);
    fake.publish(TOPIC, "x".repeat(5000));
    const ok = fake.publish(TOPIC, "short");
    await waitFor("the short one", () => sub.taken.length >= 1);
    await sleep(100);
    expect(sub.taken.map((t) => t.id)).toEqual([ok.id]);
  });

  it("retries a message whose onMessage failed, in order, and takes it once", async () => {
    const fake = await fakeNtfy();
    let calls = 0;
    const taken: string[] = [];
    const sub = subscribe(fake.url, {
      onMessage: async (m) => {
        calls++;
        if (calls <= 2) throw new Error("an earlier JC answer has not been read yet");
        taken.push(m.text);
      },
    });
    await subscribed(fake);
    fake.publish(TOPIC, "a");
    fake.publish(TOPIC, "b");
    await waitFor("both", () => taken.length === 2);
    await sleep(100);
    expect(taken).toEqual(["a", "b"]);
    expect(calls).toBe(4);
    expect((await readState()).pending).toEqual([]);
    await sub.stop();
  });

  it("hands over again, marked redelivered, a message a crash interrupted inside onMessage", async () => {
    const fake = await fakeNtfy();
    // The first run "crashes" inside onMessage: it never returns; the state still says pending.
    const first = subscribe(fake.url, { onMessage: () => new Promise<void>(() => undefined) });
    await subscribed(fake);
    const m = fake.publish(TOPIC, "@session-2: ship it");
    await waitFor("the pending record", async () => (await readState().catch(() => null))?.pending.length === 1);
    first.controller.abort(); // its promise stays open (onMessage never settles), like a dead process
    cleanups.pop();

    const second = subscribe(fake.url);
    await waitFor("the redelivery", () => second.taken.length === 1);
    await sleep(150);
    expect(second.taken).toEqual([{ id: m.id, text: "@session-2: ship it", time: m.time, redelivered: true }]);
    expect((await readState()).pending).toEqual([]);
  });

  it("keeps the last ids and the newest time in state/ntfy_replies.json, written whole", async () => {
    const fake = await fakeNtfy();
    await mkdir(paths.state, { recursive: true });
    const base = Math.floor(Date.now() / 1000) - 10;
    const state: RepliesState = {
      version: 1,
      firstStart: base,
      since: base,
      ids: Array.from({ length: KEEP_IDS }, (_, i) => `old${String(i).padStart(9, "0")}`),
      pending: [],
    };
    await writeFile(repliesStatePath(paths), JSON.stringify(state));
    const sub = subscribe(fake.url);
    await subscribed(fake);
    expect(streams(fake)[0]?.path).toContain(`since=${base}`);
    const m = fake.publish(TOPIC, "new");
    await waitFor("the message", () => sub.taken.length === 1);
    const after = await readState();
    expect(after.ids).toHaveLength(KEEP_IDS);
    expect(after.ids.at(-1)).toBe(m.id);
    expect(after.ids[0]).toBe("old000000001");
    expect(after.since).toBe(m.time);
    expect(after.firstStart).toBe(base);
  });

  it("never logs the topic or the token", async () => {
    const fake = await fakeNtfy({ requireToken: TOKEN });
    const proxy = await startProxy(fake.url);
    const sub = subscribe(proxy.url, { token: TOKEN });
    await subscribed(fake);
    fake.publish(TOPIC, "hello");
    await waitFor("the message", () => sub.taken.length === 1);
    proxy.drop();
    await subscribed(fake, 2);
    await sub.stop();
    expect(sub.logText()).not.toBe("");
    expect(sub.logText()).not.toContain(TOPIC);
    expect(sub.logText()).not.toContain(TOKEN);
  });

  it("refuses an invalid topic without naming it", async () => {
    const bad = "not a topic!";
    const { log } = captureLog();
    const err = await subscribeReplies({ server: "http://127.0.0.1:1", topic: bad, paths, log, onMessage: async () => undefined, signal: new AbortController().signal }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).not.toContain(bad);
  });
});

describe("helpers", () => {
  it("tells the relay's own notifications by title or tag", () => {
    expect(isRelayNotification({ title: "relay: session-1 needs JC" })).toBe(true);
    expect(isRelayNotification({ title: "relay paused: the API refuses calls" })).toBe(true);
    expect(isRelayNotification({ tags: ["relay"] })).toBe(true);
    expect(isRelayNotification({ title: "relayed thoughts" })).toBe(false);
    expect(isRelayNotification({})).toBe(false);
  });

  it("backs off exponentially with jitter, capped", () => {
    expect(backoffDelay(0, 1000, 60_000, () => 0)).toBe(500);
    expect(backoffDelay(0, 1000, 60_000, () => 1)).toBe(1000);
    expect(backoffDelay(3, 1000, 60_000, () => 1)).toBe(8000);
    expect(backoffDelay(20, 1000, 60_000, () => 1)).toBe(60_000);
    expect(backoffDelay(20, 1000, 60_000, () => 0)).toBe(30_000);
  });
});
