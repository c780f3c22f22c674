// Bounded growth on disk: logs rotate by size with a kept count, queue/.rejected/ keeps the newest
// N and nothing older than D days, temporaries do not outlive a start, private files are 0600.
import { mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { relayPaths } from "../../src/config/paths.js";
import { createLogger } from "../../src/runtime/log.js";
import { RotatingFile, rotatedName } from "../../src/runtime/rotating-file.js";
import { ensureDirs, removeStaleTemporaries, tightenModes, writeAtomic, writeJsonAtomic } from "../../src/store/files.js";
import { pruneRejected, rejectFile } from "../../src/transport/file/queue.js";

const roots: string[] = [];
afterAll(async () => {
  for (const r of roots) await rm(r, { recursive: true, force: true });
});
async function tmp(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "relay-retention-"));
  roots.push(dir);
  return dir;
}
const modeOf = async (path: string) => (await stat(path)).mode & 0o777;

describe("log rotation", () => {
  it("rotates logs/relay.jsonl past its size, keeps the live name, and keeps only the configured count", async () => {
    const dir = await tmp();
    const path = join(dir, "relay.jsonl");
    const file = new RotatingFile({ path, maxBytes: 1_000, keep: 2 });
    const line = `${"x".repeat(99)}\n`; // 100 bytes
    for (let i = 0; i < 45; i++) file.write(line);
    file.end();
    expect((await readdir(dir)).sort()).toEqual(["relay.1.jsonl", "relay.2.jsonl", "relay.jsonl"]);
    for (const name of ["relay.jsonl", "relay.1.jsonl", "relay.2.jsonl"]) {
      expect((await stat(join(dir, name))).size).toBeLessThanOrEqual(1_000);
      expect(await modeOf(join(dir, name))).toBe(0o600);
    }
    expect((await stat(path)).size).toBe(500); // 45 lines: 4 files of 10 (two dropped), then 5
  });

  it("the relay's logger writes through it and removes rotated files beyond a smaller count", async () => {
    const dir = await tmp();
    for (const n of [1, 2, 3, 4]) await writeFile(rotatedName(join(dir, "relay.jsonl"), n), "old\n");
    const log = createLogger({ logsDir: dir, rotation: { maxBytes: 64 * 1024, keep: 2 }, redact: (t) => t.replaceAll("sk-secret-key", "[redacted]") });
    log.info({ key: "sk-secret-key" }, "hello");
    log.flush();
    expect((await readdir(dir)).sort()).toEqual(["relay.1.jsonl", "relay.2.jsonl", "relay.jsonl"]);
    const text = await readFile(join(dir, "relay.jsonl"), "utf8");
    expect(text).toContain('"msg":"hello"');
    expect(text).not.toContain("sk-secret-key");
  });
});

describe("queue/.rejected/", () => {
  it("keeps the newest N rejections and none older than D days, each file with its reason", async () => {
    const paths = relayPaths(await tmp());
    await ensureDirs(paths.queue, paths.rejected);
    const now = Date.now();
    for (let i = 0; i < 6; i++) {
      await writeFile(join(paths.queue, `bad-${i}.json`), "{");
      await rejectFile(paths, `bad-${i}.json`, "invalid JSON", now);
      const age = (i === 0 ? 40 * 86_400 : (6 - i) * 60) * 1000; // bad-0 is 40 days old; then newer and newer
      const when = new Date(now - age);
      for (const name of [`bad-${i}.json`, `bad-${i}.json.reason.json`]) await utimes(join(paths.rejected, name), when, when);
    }
    expect(await pruneRejected(paths, { keep: 3, maxAgeDays: 30 }, now)).toBe(3);
    expect((await readdir(paths.rejected)).sort()).toEqual(["bad-3.json", "bad-3.json.reason.json", "bad-4.json", "bad-4.json.reason.json", "bad-5.json", "bad-5.json.reason.json"]);
    expect(await pruneRejected(paths, { keep: 10, maxAgeDays: 30 }, now)).toBe(0);
    expect(await pruneRejected(relayPaths(join(paths.root, "none")), { keep: 1, maxAgeDays: 1 }, now)).toBe(0);
  });
});

describe("files on disk", () => {
  it("sweeps temporaries of atomic writes a kill left behind, and only those", async () => {
    const dir = await tmp();
    await writeFile(join(dir, ".snapshot.json.0a1b2c3d.tmp"), "half");
    await writeFile(join(dir, "snapshot.json.123456"), "half (first version)");
    await writeFile(join(dir, "shared.jsonl"), "kept");
    expect((await removeStaleTemporaries(dir)).sort()).toEqual([".snapshot.json.0a1b2c3d.tmp", "snapshot.json.123456"]);
    expect(await readdir(dir)).toEqual(["shared.jsonl"]);
  });

  it("creates the relay's own files 0600 and directories 0700, and tightens what an earlier version left readable", async () => {
    const dir = await tmp();
    const state = join(dir, "state");
    await ensureDirs(state);
    expect(await modeOf(state)).toBe(0o700);
    await writeJsonAtomic(join(state, "a.json"), { a: 1 });
    expect(await modeOf(join(state, "a.json"))).toBe(0o600);
    await writeAtomic(join(state, "old.json"), "{}", { mode: 0o644 });
    const logs = join(dir, "logs");
    await mkdir(logs, { mode: 0o755 });
    await writeAtomic(join(logs, "relay.jsonl"), "", { mode: 0o644 });
    await tightenModes([state, logs, join(dir, "missing")]);
    expect(await modeOf(join(state, "old.json"))).toBe(0o600);
    expect(await modeOf(logs)).toBe(0o700);
    expect(await modeOf(join(logs, "relay.jsonl"))).toBe(0o600);
  });
});
