// What a Claude Code hook (on every agent turn) and `relay status` load as they start: the real CLI, spawned with
// pipes as Claude Code runs it, reports Node's own list of the built-in modules it loaded
// (process.moduleLoadList). Modules that only some calls use are loaded by those calls.
import { mkdtemp, readFile, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeRoot, removeRoots, runCli } from "../support/cli.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "relay-start-up-"));
  await writeFile(join(dir, "record.cjs"), `process.on("exit", () => require("node:fs").writeFileSync(process.env.RELAY_TEST_MODULES, JSON.stringify(process.moduleLoadList)));\n`);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
  await removeRoots();
});

/** The built-in modules `relay <args>` loaded, by their names in Node's source (node:perf_hooks is "NativeModule perf_hooks"). */
async function builtinsLoaded(args: string[], input: string): Promise<string[]> {
  const list = join(dir, `${args[1] ?? args[0]}.json`);
  const out = await runCli(args, { input, env: { NODE_OPTIONS: `--require ${join(dir, "record.cjs")}`, RELAY_TEST_MODULES: list } });
  expect(out.code, out.stderr).toBe(0);
  const loaded = JSON.parse(await readFile(list, "utf8")) as string[];
  return loaded.filter((m) => m.startsWith("NativeModule ")).map((m) => m.slice("NativeModule ".length));
}

/**
 * An ES module loaded: Node 20 sets up a little of its loader for any CommonJS file holding an
 * import(), but these come only with a module. Node 22 and later load them for every CommonJS
 * script too (require() of ES modules), so there they tell nothing: the check is Node 20's, where
 * a hook has no compile cache and the bench's start-up targets are measured.
 */
const ES_MODULE = Number(process.versions.node.split(".")[0]) < 22 ? ["internal/modules/esm/module_job", "internal/modules/esm/translators"] : [];

/** A root as one in use: config.yaml old enough that the first Stop hook keeps its parsed copy; `stop` runs a Stop hook on it. */
async function rootInUse(): Promise<{ root: string; stop: () => Promise<string[]> }> {
  const root = await makeRoot();
  const longAgo = new Date(Date.now() - 60_000);
  await utimes(join(root, "config.yaml"), longAgo, longAgo);
  const input = JSON.stringify({ session_id: "cc-start-up", transcript_path: join(root, "none.jsonl"), cwd: root, hook_event_name: "Stop", stop_hook_active: false });
  return { root, stop: () => builtinsLoaded(["hook", "claude-stop", "--session", "session-1", "--root", root], input) };
}

describe("the Stop hook's start-up", () => {
  it("loads no ES module (bin/relay.js and dist/hot/hooks.cjs are CommonJS) and not node:perf_hooks (deadlines are on process.hrtime, src/runtime/monotonic.ts)", async () => {
    const { stop } = await rootInUse();
    // without the copy, config.yaml's parser is an ES module the hook imports (dist/hot/yaml-text.js)
    expect(await stop()).toEqual(expect.arrayContaining(ES_MODULE));
    const loaded = await stop();
    // the list is the hook's: it did load the files API and the hash that names the relay's lock
    expect(loaded).toContain("fs/promises");
    expect(loaded).toContain("crypto");
    expect(loaded.filter((m) => [...ES_MODULE, "perf_hooks", "internal/perf/performance", "internal/perf/usertiming"].includes(m))).toEqual([]);
  });
});

describe("relay status's start-up", () => {
  it("loads no ES module either (dist/hot/status.cjs) on a root with config.yaml's parsed copy", async () => {
    const { root, stop } = await rootInUse();
    await stop(); // keeps the parsed copy (status itself only reads)
    const loaded = await builtinsLoaded(["status", "--root", root], "");
    expect(loaded).toContain("fs/promises");
    expect(loaded.filter((m) => ES_MODULE.includes(m))).toEqual([]);
  });
});
