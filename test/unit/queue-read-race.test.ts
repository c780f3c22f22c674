// A writer that creates a file in queue/ and then writes its bytes (`echo … > queue/x.json`, or
// fs.writeFile) can be read in between: our stat sees the creation's mtime, the read the whole
// bytes. The envelope's key (name, mtime, bytes) then differs from the next read's, and a file
// read twice (a publish in doubt, retried) became two envelopes: the reply handed over twice in
// the NATS partition test. The writer's write is made to land between the reader's stat and its
// read, every time, by wrapping the file handle the reader opens.
import { mkdir, mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import * as realFs from "node:fs/promises";
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { relayPaths, type RelayPaths } from "../../src/config/paths.js";

/** The write to land after the reader's next stat of this path (once). */
const landAfterStat = new Map<string, string>();

vi.mock("node:fs/promises", async (importOriginal) => {
  const fs = await importOriginal<typeof import("node:fs/promises")>();
  const open = async (...args: Parameters<typeof fs.open>) => {
    const handle = await fs.open(...args);
    const path = String(args[0]);
    const body = landAfterStat.get(path);
    if (body === undefined) return handle;
    landAfterStat.delete(path);
    const realStat = handle.stat.bind(handle);
    let first = true;
    handle.stat = (async (opts?: { bigint?: boolean }) => {
      const st = await realStat(opts as { bigint: false });
      if (first) {
        first = false;
        await new Promise((r) => setTimeout(r, 5)); // a later mtime than the creation's
        writeFileSync(path, body); // the writer's write, between our stat and our read
      }
      return st;
    }) as typeof handle.stat;
    return handle;
  };
  return { ...fs, open, default: { ...fs, open } };
});

const { listQueue, readEntryWithBytes } = await import("../../src/transport/file/queue.js");

let root: string;
let paths: RelayPaths;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "relay-queue-race-"));
  paths = relayPaths(root);
  await mkdir(paths.queue, { recursive: true });
});
afterEach(async () => {
  landAfterStat.clear();
  await rm(root, { recursive: true, force: true });
});

const SESSIONS = new Set(["s1"]);
const body = JSON.stringify({ session_id: "s1", id: "p-18", content: "envelope 18 for s1" });

describe("reading a queue file a writer is still writing", () => {
  it("is not taken until a read the file did not change under; then its key is the one every later read gives", async () => {
    const file = join(paths.queue, "p-18.json");
    await writeFile(file, ""); // created (O_TRUNC), bytes not written yet
    landAfterStat.set(file, body);
    const [entry] = await listQueue(paths);
    if (!entry) throw new Error("no entry");
    const first = await readEntryWithBytes(paths, entry, SESSIONS, Date.now());
    expect(landAfterStat.size).toBe(0); // the write did land between the stat and the read
    // Taken, as it was before the fix, it carried a key the file no longer has (see below).
    const firstKey = first.kind === "envelope" ? first.item.id : null;

    const [settled] = await listQueue(paths);
    if (!settled) throw new Error("no entry");
    const second = await readEntryWithBytes(paths, settled, SESSIONS, Date.now());
    const third = await readEntryWithBytes(paths, settled, SESSIONS, Date.now());
    if (second.kind !== "envelope" || third.kind !== "envelope") throw new Error(`not taken: ${second.kind}, ${third.kind}`);
    expect(second.item.id).toBe(third.item.id);
    expect(firstKey ?? second.item.id, "the key of the read the write landed in").toBe(second.item.id);
    expect(first.kind).toBe("wait");
    expect(second.mtimeMs).toBe((await stat(file)).mtimeMs);
    expect(second.item.inReplyTo).toBe("p-18");
  });

  it("a file read whole and unchanged is taken at once", async () => {
    await realFs.writeFile(join(paths.queue, "whole.json"), body);
    const [entry] = await listQueue(paths);
    if (!entry) throw new Error("no entry");
    const intake = await readEntryWithBytes(paths, entry, SESSIONS, Date.now());
    expect(intake.kind).toBe("envelope");
  });
});
