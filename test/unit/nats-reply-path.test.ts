// The reply's path with `transport: nats` (issue 16, added latency (b)): what the relay and the
// agent ask of the server between the API's answer and input.txt. Layer 2: the real NatsOutbox
// and NatsAgent against a real nats-server (one for the file, a prefix per test), their buckets
// seen through a view that counts or holds the slot's reads. Skipped, saying why, when nats-server
// is not installed.
import { existsSync } from "node:fs";
import { readdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { Delivery } from "../../machines/types.js";
import { inputFile, type RelayPaths, sessionDir } from "../../src/config/paths.js";
import { silentLogger } from "../../src/runtime/log.js";
import { NatsAgent } from "../../src/transport/nats/agent.js";
import { connectNats, type NatsLink } from "../../src/transport/nats/connection.js";
import { natsNames } from "../../src/transport/nats/names.js";
import { NatsOutbox } from "../../src/transport/nats/relay-side.js";
import { ensureTopology } from "../../src/transport/nats/topology.js";
import { linkWithBuckets, natsTempRoot } from "../support/nats-link.js";
import { type NatsServer, natsSkipReason, startNatsServer } from "../support/nats-server.js";

if (natsSkipReason) console.warn(`skipping the NATS reply path tests: ${natsSkipReason}`);

let server: NatsServer | null = null;
const links: NatsLink[] = [];
const dirs: string[] = [];
beforeAll(async () => {
  if (!natsSkipReason) server = await startNatsServer();
}, 60_000);
afterAll(async () => {
  for (const l of links.splice(0)) await l.nc.close().catch(() => undefined);
  await server?.stop();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

const until = (assertion: () => void | Promise<void>, timeout = 20_000) => vi.waitFor(assertion, { timeout, interval: 10 });

const tempRoot = (): Promise<RelayPaths> => natsTempRoot("relay-nats-reply-", dirs);

/** A connection under its own prefix on the file's server, with the relay's topology. */
async function connected(prefix: string) {
  if (!server) throw new Error("no nats-server");
  const real = await connectNats({ url: server.url, prefix, replicas: 1 }, `${prefix} test`, silentLogger());
  links.push(real);
  const names = natsNames(prefix);
  expect((await ensureTopology(real, names, 1, { create: true, relayConsumers: true })).problems).toEqual([]);
  return { real, names, slots: await real.kvm.open(names.dispatchBucket) };
}

const reply = (replyId: string, text: string): Delivery => ({ replyId, session: "s1", inReplyTo: `e-${replyId}`, source: "envelope", text, at: Date.now() });
const replyIdIn = async (slots: Awaited<ReturnType<typeof connected>>["slots"], session: string) => {
  const e = await slots.get(session);
  return e?.operation === "PUT" ? (JSON.parse(e.string()) as { reply_id: string }).reply_id : null;
};

describe.skipIf(natsSkipReason !== null)("the relay's side of a reply", () => {
  it("stages the next reply on the revision its acknowledgement read found, with no read of its own; after a reconnect it reads again", async () => {
    const { real, names, slots } = await connected("path1");
    let gets = 0;
    const reconnect: (() => void)[] = [];
    const counted = linkWithBuckets(real, (name, kv, view) => {
      if (name !== names.dispatchBucket) return kv;
      view.get = (k, o) => {
        gets += 1;
        return kv.get(k, o);
      };
      return view;
    });
    const link: NatsLink = {
      ...counted,
      onReconnect(listener) {
        reconnect.push(listener);
        return () => undefined;
      },
    };
    const paths = await tempRoot();
    const outbox = new NatsOutbox(link, names, paths);
    await outbox.load();
    /** the agent's acknowledgement: the delete of the value it delivered, then the relay's read of it */
    const acknowledge = async () => {
      const put = await slots.get("s1");
      await slots.delete("s1", { previousSeq: put?.revision ?? 0 });
      outbox.slotDeleted("s1");
      expect(await outbox.acknowledged("s1")).toBe(true);
      return (await slots.get("s1"))?.revision ?? -1;
    };

    expect(await outbox.deliver(reply("r1", "first"))).toBe("delivered");
    expect(gets).toBe(1); // the slot's first revision: read
    const emptiedAt = await acknowledge();
    expect(gets).toBe(2); // the acknowledgement's read

    expect(await outbox.deliver(reply("r2", "second"))).toBe("delivered");
    expect(gets).toBe(2); // no read: the acknowledgement's gave the revision
    expect(await replyIdIn(slots, "s1")).toBe("r2");
    const journal = (await readFile(join(paths.state, "nats-slots.jsonl"), "utf8")).trim().split("\n").map((l) => JSON.parse(l) as { session: string; replyId: string; slotRev: number; published: boolean });
    expect(journal.filter((r) => r.replyId === "r2")).toEqual([
      { session: "s1", replyId: "r2", slotRev: emptiedAt, published: false },
      { session: "s1", replyId: "r2", slotRev: emptiedAt, published: true },
    ]);

    // The connection came back: the bucket may have changed meanwhile, so the next reply reads.
    await acknowledge();
    const readsBefore = gets;
    for (const listener of reconnect) listener();
    expect(await outbox.deliver(reply("r3", "third"))).toBe("delivered");
    expect(gets).toBe(readsBefore + 1);
    expect(await replyIdIn(slots, "s1")).toBe("r3");
    outbox.stop();
  }, 60_000);
});

describe.skipIf(natsSkipReason !== null)("the agent's side of a reply", () => {
  /** An agent serving s3 whose reads of the slot wait (up to 10 s) for the reply's prepared file first, saying whether it came. */
  async function agentWithHeldReads(prefix: string, staleReads: number) {
    const { real, names, slots } = await connected(prefix);
    const paths = await tempRoot();
    const dir = sessionDir(paths, "s3");
    const reads: { preparedFirst: boolean }[] = [];
    let hold = false;
    let stale = staleReads;
    const link = linkWithBuckets(real, (name, kv, view) => {
      if (name !== names.dispatchBucket) return kv;
      view.get = async (k, o) => {
        if (!hold) return kv.get(k, o);
        const deadline = Date.now() + 10_000;
        while (!existsSync(join(dir, ".reply-next.tmp")) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
        reads.push({ preparedFirst: existsSync(join(dir, ".reply-next.tmp")) });
        if (stale > 0) {
          stale -= 1;
          return null; // the race of a write not stored yet
        }
        return kv.get(k, o);
      };
      return view;
    });
    const frozen = Date.now(); // no slot poll after the first step: only the subscription wakes it
    const agent = new NatsAgent({ paths, link, names, name: "laptop", sessions: () => ["s3"], log: silentLogger(), pollMs: 20, takeOver: false, builtIn: false, now: () => frozen });
    await agent.start();
    await new Promise((r) => setTimeout(r, 300));
    hold = true;
    const value = { reply_id: "r1", in_reply_to: "e1", source: "envelope", at: new Date(frozen).toISOString(), text: "the reply" };
    await slots.put("s3", JSON.stringify(value));
    return { agent, paths, dir, reads };
  }

  it("writes the reply the slot's subscription brought while the slot's read is under way, and renames it into place once the read confirms it", async () => {
    const { agent, paths, dir, reads } = await agentWithHeldReads("path2", 0);
    try {
      await until(async () => expect(await readFile(inputFile(paths, "s3"), "utf8")).toBe("the reply"));
      expect(reads[0]?.preparedFirst).toBe(true);
      expect(JSON.parse(await readFile(join(dir, "input.json"), "utf8"))).toMatchObject({ reply_id: "r1", in_reply_to: "e1" });
      expect((await readdir(dir)).sort()).toEqual(["input.json", "input.txt"]);
    } finally {
      await agent.stop();
    }
  }, 60_000);

  it("a read that does not find the write yet leaves no prepared file behind, and the read again delivers it", async () => {
    const { agent, paths, dir, reads } = await agentWithHeldReads("path3", 1);
    try {
      await until(async () => expect(await readFile(inputFile(paths, "s3"), "utf8")).toBe("the reply"));
      expect(reads.length).toBeGreaterThanOrEqual(2);
      expect((await readdir(dir)).sort()).toEqual(["input.json", "input.txt"]);
    } finally {
      await agent.stop();
    }
  }, 60_000);
});
