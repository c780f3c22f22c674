// queue/ → RELAY_ENV (src/transport/nats/envelope-publisher.ts) against a stand-in for the
// server's side of a publish: it stores a message unless its Nats-Msg-Id was seen (then answers
// "duplicate") or its subject already holds one (then refuses "wrong last sequence"), and can
// store a message yet lose the answer (a timeout: a link cut or blackholed while the bytes got
// through). One file must become one stored envelope, whatever happens to the file between two
// attempts, as long as its bytes are the same.
import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { relayPaths, type RelayPaths } from "../../src/config/paths.js";
import { silentLogger } from "../../src/runtime/log.js";
import { EnvelopePublisher, type PublishEnvelope } from "../../src/transport/nats/envelope-publisher.js";
import { natsNames } from "../../src/transport/nats/names.js";

interface Stored {
  subject: string;
  msgId: string;
  body: string;
}

/** The server's answers to a publish; `loseNextAnswer` stores the next one and then times out. */
function fakeStream(): { publish: PublishEnvelope; stored: Stored[]; loseNextAnswer(): void; refuseNext(): void } {
  const stored: Stored[] = [];
  let lose = false;
  let refuse = false;
  const publish: PublishEnvelope = async (subject, raw, opts) => {
    if (refuse) {
      refuse = false;
      throw new Error("no responders"); // nothing stored, nothing in doubt on the server's side
    }
    const seen = stored.findIndex((m) => m.msgId === opts.msgID);
    let answer: { seq: number; duplicate: boolean };
    if (seen >= 0) answer = { seq: seen + 1, duplicate: true };
    else if (stored.some((m) => m.subject === subject)) throw new Error("wrong last sequence: 1");
    else {
      stored.push({ subject, msgId: opts.msgID, body: Buffer.from(raw).toString("utf8") });
      answer = { seq: stored.length, duplicate: false };
    }
    if (lose) {
      lose = false;
      throw new Error("TIMEOUT"); // stored, but the PubAck never came back
    }
    return answer;
  };
  return {
    publish,
    stored,
    loseNextAnswer: () => {
      lose = true;
    },
    refuseNext: () => {
      refuse = true;
    },
  };
}

let root: string;
let paths: RelayPaths;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "relay-envpub-"));
  paths = relayPaths(root);
  await mkdir(paths.queue, { recursive: true });
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

const SERVING = new Set(["s1"]);
const publisherFor = (publish: PublishEnvelope) =>
  new EnvelopePublisher({ paths, names: natsNames("t"), agent: "laptop", publish, log: silentLogger(), now: Date.now, crashPoint: async () => {} });

async function drop(name: string, body: unknown, mtime: Date): Promise<string> {
  const file = join(paths.queue, name);
  await writeFile(file, JSON.stringify(body));
  await utimes(file, mtime, mtime);
  return file;
}

describe("EnvelopePublisher: one file, one envelope on the stream", () => {
  it("a publish in doubt is repeated under its first key, though the file's mtime moved meanwhile (same bytes)", async () => {
    const stream = fakeStream();
    const publisher = publisherFor(stream.publish);
    const file = await drop("p-18.json", { session_id: "s1", id: "p-18", content: "envelope 18" }, new Date(Date.now() - 10_000));
    stream.loseNextAnswer();
    await expect(publisher.publishQueue(SERVING)).rejects.toThrow(/TIMEOUT/);
    expect(await readdir(paths.queue)).toEqual(["p-18.json"]); // kept: its publish is in doubt
    const later = new Date(Date.now() - 5_000);
    await utimes(file, later, later); // touch, cp -p, or the writer's own write seen late
    await publisher.publishQueue(SERVING);
    expect(stream.stored.map((m) => m.body)).toEqual([JSON.stringify({ session_id: "s1", id: "p-18", content: "envelope 18" })]);
    expect(await readdir(paths.queue)).toEqual([]);
  });

  it("a file replaced by other bytes while its publish is in doubt is a new envelope", async () => {
    const stream = fakeStream();
    const publisher = publisherFor(stream.publish);
    await drop("note.json", { session_id: "s1", content: "first words" }, new Date(Date.now() - 10_000));
    stream.loseNextAnswer();
    await expect(publisher.publishQueue(SERVING)).rejects.toThrow(/TIMEOUT/);
    await drop("note.json", { session_id: "s1", content: "second words" }, new Date(Date.now() - 5_000));
    await publisher.publishQueue(SERVING);
    expect(stream.stored.map((m) => JSON.parse(m.body).content)).toEqual(["first words", "second words"]);
    expect(new Set(stream.stored.map((m) => m.msgId)).size).toBe(2);
  });

  it("a refused publish (nothing stored) keeps the file, and the next pass publishes it once", async () => {
    const stream = fakeStream();
    const publisher = publisherFor(stream.publish);
    await drop("a.json", { session_id: "s1", content: "hello" }, new Date(Date.now() - 10_000));
    stream.refuseNext();
    await expect(publisher.publishQueue(SERVING)).rejects.toThrow(/no responders/);
    expect(stream.stored).toEqual([]);
    await publisher.publishQueue(SERVING);
    await publisher.publishQueue(SERVING);
    expect(stream.stored).toHaveLength(1);
    expect(await readdir(paths.queue)).toEqual([]);
  });

  it("the same name dropped again after its envelope went out is a new envelope", async () => {
    const stream = fakeStream();
    const publisher = publisherFor(stream.publish);
    await drop("ok.json", { session_id: "s1", content: "ok" }, new Date(Date.now() - 10_000));
    await publisher.publishQueue(SERVING);
    await drop("ok.json", { session_id: "s1", content: "ok" }, new Date(Date.now() - 5_000));
    await publisher.publishQueue(SERVING);
    expect(stream.stored).toHaveLength(2);
  });
});
