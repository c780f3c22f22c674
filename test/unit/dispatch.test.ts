import { mkdir, mkdtemp, readdir, readFile, rm, symlink, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Delivery } from "../../machines/types.js";
import { DispatchPathError, ensureSessionDir, inputExists } from "../../src/transport/file/dispatch.js";
import { FileOutbox, stagingFile } from "../../src/transport/file/file-transport.js";
import { inputFile, relayPaths, sessionDir, type RelayPaths } from "../../src/config/paths.js";

const reply = (text: string, replyId = "r-1", session = "session-1"): Delivery => ({ replyId, session, inReplyTo: "e-1", source: "envelope", text, at: 0 });

let root: string;
let outside: string;
let paths: RelayPaths;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "relay-dispatch-"));
  outside = await mkdtemp(join(tmpdir(), "relay-elsewhere-"));
  paths = relayPaths(root);
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
  await rm(outside, { recursive: true, force: true });
});

describe("ensureSessionDir", () => {
  it("creates dispatch/<session> as a real directory", async () => {
    expect(await ensureSessionDir(paths, "session-1")).toBe(sessionDir(paths, "session-1"));
    expect(await readdir(paths.dispatch)).toEqual(["session-1"]);
  });

  it("refuses a symlinked dispatch/<session> pointing outside the root, and writes nothing there", async () => {
    await mkdir(paths.dispatch);
    await symlink(outside, sessionDir(paths, "session-1"));
    await expect(ensureSessionDir(paths, "session-1")).rejects.toBeInstanceOf(DispatchPathError);
    await expect(new FileOutbox(paths).deliver(reply("reply"))).rejects.toBeInstanceOf(DispatchPathError);
    expect(await readdir(outside)).toEqual([]);
  });

  it("refuses a symlinked dispatch/ itself, and writes nothing through it", async () => {
    await symlink(outside, paths.dispatch);
    await expect(ensureSessionDir(paths, "session-1")).rejects.toBeInstanceOf(DispatchPathError);
    await expect(new FileOutbox(paths).deliver(reply("reply"))).rejects.toBeInstanceOf(DispatchPathError);
    expect(await readdir(outside)).toEqual([]);
  });

  it("refuses a regular file where the session directory should be, naming the path", async () => {
    await mkdir(paths.dispatch);
    await writeFile(sessionDir(paths, "session-1"), "not a dir");
    await expect(ensureSessionDir(paths, "session-1")).rejects.toThrow(sessionDir(paths, "session-1"));
  });
});

describe("delivering a reply (staged, input.json, renamed to input.txt)", () => {
  const texts = ["plain reply", "ünïcødé 😀 and CJK 漢字\n", "line one\r\nline two\r\n", "no newline at the end", " leading and trailing spaces  \n\n", "x".repeat(2_000_000)];

  for (const text of texts) {
    it(`input.txt holds exactly the reply text (${JSON.stringify(text.slice(0, 24))}, ${text.length} chars)`, async () => {
      expect(await new FileOutbox(paths).deliver(reply(text))).toBe("delivered");
      expect(await readFile(inputFile(paths, "session-1"), "utf8")).toBe(text);
      expect((await readdir(sessionDir(paths, "session-1"))).sort()).toEqual(["input.json", "input.txt"]);
    });
  }

  it("the staging file is an in-progress name inside the session directory", () => {
    const staged = stagingFile(paths, "session-1", "abc");
    expect(staged.startsWith(`${sessionDir(paths, "session-1")}/.`)).toBe(true);
    expect(staged.endsWith(".tmp")).toBe(true);
  });

  it("inputExists follows the acknowledgement: true while input.txt exists, false once CC deletes it", async () => {
    expect(await inputExists(paths, "session-2")).toBe(false);
    await new FileOutbox(paths).deliver(reply("hi", "r-9", "session-2"));
    expect(await inputExists(paths, "session-2")).toBe(true);
    await unlink(inputFile(paths, "session-2"));
    expect(await inputExists(paths, "session-2")).toBe(false);
  });

  it("never overwrites an unacknowledged input.txt: the next reply is busy until it is deleted", async () => {
    const outbox = new FileOutbox(paths);
    await outbox.deliver(reply("first", "r-1"));
    expect(await outbox.deliver(reply("second", "r-2"))).toBe("busy");
    expect(await readFile(inputFile(paths, "session-1"), "utf8")).toBe("first");
    await unlink(inputFile(paths, "session-1"));
    expect(await outbox.deliver(reply("second", "r-2"))).toBe("delivered");
    expect(await readFile(inputFile(paths, "session-1"), "utf8")).toBe("second");
  });

  it("a delivery repeated after a crash finds input.json naming it and delivers nothing again", async () => {
    const outbox = new FileOutbox(paths);
    await outbox.deliver(reply("once", "r-1"));
    await unlink(inputFile(paths, "session-1")); // acknowledged while the relay was down
    expect(await outbox.deliver(reply("once", "r-1"))).toBe("delivered");
    expect(await inputExists(paths, "session-1")).toBe(false);
  });
});
