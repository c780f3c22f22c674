// bin/relay.js turns on Node's compile cache where Node has one (module.enableCompileCache,
// Node >= 22.1): the compiled code of the CLI's modules is kept across runs in Node's default
// place, <tmpdir>/node-compile-cache ($NODE_COMPILE_CACHE overrides it), and
// NODE_DISABLE_COMPILE_CACHE=1 turns it off. On Node 20 nothing is written anywhere.
import { mkdtemp, readdir, rm } from "node:fs/promises";
import * as nodeModule from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runCli } from "./support/cli.js";

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

/** Whether this Node has a compile cache at all (the suite also runs on Node 22 and 24). */
const nodeHasCache = typeof (nodeModule as { enableCompileCache?: unknown }).enableCompileCache === "function";

describe("Node's compile cache", () => {
  it("keeps the relay's compiled modules in <tmpdir>/node-compile-cache where Node has a cache, none with NODE_DISABLE_COMPILE_CACHE=1, none on Node 20", async () => {
    const on = await mkdtemp(join(tmpdir(), "relay-compile-cache-"));
    const off = await mkdtemp(join(tmpdir(), "relay-compile-cache-off-"));
    dirs.push(on, off);
    // a hot command (run without oclif) and one through oclif
    for (const args of [["hook", "claude-end", "--session", "session-1", "--root", on], ["--version"]]) {
      expect((await runCli(args, { env: { TMPDIR: on } })).code).toBe(0);
      expect((await runCli(args, { env: { TMPDIR: off, NODE_DISABLE_COMPILE_CACHE: "1" } })).code).toBe(0);
    }
    const cached = await filesUnder(join(on, "node-compile-cache"));
    // the relay's own modules and its dependencies' (zod alone is 95): far more than Node's few
    if (nodeHasCache) expect(cached.length).toBeGreaterThan(100);
    else expect(cached).toEqual([]);
    expect(await filesUnder(join(off, "node-compile-cache"))).toEqual([]);
  }, 60_000);
});
