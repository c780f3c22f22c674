import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import * as z from "zod/mini";
import { appendLine, ensureDirs, isErrno, readJsonFile, removeIfPresent, writeAtomic, writeJsonAtomic } from "../../src/store/files.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "relay-store-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("writeAtomic", () => {
  it("writes the complete content and leaves no temporary file", async () => {
    const path = join(dir, "state.json");
    const content = `${"ünïcødé 😀 ".repeat(200_000)}end`;
    await writeAtomic(path, content);
    expect(await readFile(path, "utf8")).toBe(content);
    expect(await readdir(dir)).toEqual(["state.json"]);
  });

  it("replaces an existing file whole, leaving no temporary file", async () => {
    const path = join(dir, "f.txt");
    await writeAtomic(path, "old content that is longer");
    await writeAtomic(path, "new");
    expect(await readFile(path, "utf8")).toBe("new");
    expect(await readdir(dir)).toEqual(["f.txt"]);
  });

  it("a concurrent reader sees the old content or the new, never a part", async () => {
    const path = join(dir, "big.txt");
    const oldText = "o".repeat(4_000_000);
    const newText = "n".repeat(4_000_000);
    await writeAtomic(path, oldText);
    let done = false;
    const writing = writeAtomic(path, newText).finally(() => {
      done = true;
    });
    const seen = new Set<string>();
    while (!done) {
      const read = await readFile(path, "utf8");
      seen.add(read === oldText ? "old" : read === newText ? "new" : `partial:${read.length}`);
    }
    await writing;
    expect([...seen].filter((s) => s.startsWith("partial"))).toEqual([]);
    expect(await readFile(path, "utf8")).toBe(newText);
  });

  it("applies the requested mode (0600 for secrets)", async () => {
    const path = join(dir, ".env");
    await writeAtomic(path, "A=1\n", { mode: 0o600 });
    expect((await stat(path)).mode & 0o777).toBe(0o600);
  });

  it("writeJsonAtomic writes JSON that reads back equal, ending in a newline", async () => {
    const path = join(dir, "v.json");
    const value = { a: 1, b: ["x", null, { c: "é" }] };
    await writeJsonAtomic(path, value);
    const raw = await readFile(path, "utf8");
    expect(raw.endsWith("\n")).toBe(true);
    expect(JSON.parse(raw)).toEqual(value);
  });
});

describe("appendLine", () => {
  it("appends one newline-terminated line per call, creating the file", async () => {
    const path = join(dir, "log.jsonl");
    await appendLine(path, '{"a":1}');
    await appendLine(path, '{"b":2}');
    expect(await readFile(path, "utf8")).toBe('{"a":1}\n{"b":2}\n');
  });

  it("concurrent appends never interleave inside a line", async () => {
    const path = join(dir, "many.jsonl");
    const lines = Array.from({ length: 60 }, (_, i) => JSON.stringify({ i, pad: String(i).repeat(2000) }));
    await Promise.all(lines.map((l) => appendLine(path, l)));
    const read = (await readFile(path, "utf8")).split("\n");
    expect(read.pop()).toBe("");
    expect(read.sort()).toEqual([...lines].sort());
  });
});

describe("readJsonFile", () => {
  const schema = z.object({ name: z.string(), count: z._default(z.int(), 1) });

  it("a missing file is reported as missing, not thrown", async () => {
    const result = await readJsonFile(join(dir, "nope.json"), schema);
    expect(result).toMatchObject({ ok: false, missing: true });
  });

  it("invalid JSON is an error naming the file, not missing", async () => {
    const path = join(dir, "bad.json");
    await writeFile(path, '{"name": "x"');
    const result = await readJsonFile(path, schema);
    expect(result).toMatchObject({ ok: false, missing: false });
    expect(result.ok ? "" : result.error).toContain(path);
  });

  it("JSON that does not match the schema is an error naming the file", async () => {
    const path = join(dir, "wrong.json");
    await writeFile(path, '{"name": 5}');
    const result = await readJsonFile(path, schema);
    expect(result).toMatchObject({ ok: false, missing: false });
    expect(result.ok ? "" : result.error).toContain(path);
    expect(result.ok ? "" : result.error).toContain("Invalid input: expected string, received number");
  });

  it("valid JSON comes back parsed by the schema (defaults applied, unknown keys stripped)", async () => {
    const path = join(dir, "good.json");
    await writeFile(path, '{"name": "relay", "extra": true}');
    expect(await readJsonFile(path, schema)).toEqual({ ok: true, value: { name: "relay", count: 1 } });
  });
});

describe("small helpers", () => {
  it("ensureDirs creates nested directories and tolerates existing ones", async () => {
    await ensureDirs(join(dir, "a", "b"), join(dir, "a", "b"), join(dir, "c"));
    expect((await stat(join(dir, "a", "b"))).isDirectory()).toBe(true);
    expect((await stat(join(dir, "c"))).isDirectory()).toBe(true);
  });

  it("removeIfPresent says whether it removed something", async () => {
    const path = join(dir, "f");
    await writeFile(path, "x");
    expect(await removeIfPresent(path)).toBe(true);
    expect(await removeIfPresent(path)).toBe(false);
  });

  it("isErrno matches the code of a Node error only", async () => {
    const err = await readFile(join(dir, "missing")).catch((e: unknown) => e);
    expect(isErrno(err, "ENOENT")).toBe(true);
    expect(isErrno(err, "EEXIST")).toBe(false);
    expect(isErrno(null, "ENOENT")).toBe(false);
    expect(isErrno("ENOENT", "ENOENT")).toBe(false);
  });
});
