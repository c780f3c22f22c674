// Commands that only make sense on a relay root say so on any other directory (exit 2) and make
// nothing there; `relay run` still seeds config.yaml (CONTRACT §2), and the Stop hook still lets
// the agent stop. `send` and `jc` warn when no relay holds the lock, and still queue.
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { killAll, makeRoot, queueNames, removeRoots, runCli, Scope } from "../support/cli.js";

afterAll(async () => {
  await killAll();
  await removeRoots();
});

/** name, arguments, whether it has --json output */
const COMMANDS: [string, string[], boolean][] = [
  ["status", ["status"], true],
  ["send", ["send", "--session", "session-1", "hello"], true],
  ["jc", ["jc", "an answer"], false],
  ["costs", ["costs"], true],
  ["resume", ["resume"], false],
];

describe("on a directory that is not a relay root (no config.yaml)", () => {
  for (const [name, args, hasJson] of COMMANDS) {
    it(`relay ${name} says so in one line, exits 2 and creates nothing there`, async () => {
      const dir = await makeRoot({ config: null });
      const r = await runCli([...args, "--root", dir]);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stdout).toBe("");
      expect(r.stderr.trim().split("\n")).toEqual([`relay: ${dir} is not a relay root (no config.yaml): pass --root DIR, set RELAY_ROOT, or make it one with: relay init ${dir}`]);
      expect(await readdir(dir)).toEqual([]);

      if (!hasJson) return;
      const json = await runCli([...args, "--json", "--root", dir]);
      expect(json.code).toBe(2);
      expect(JSON.parse(json.stdout)).toEqual({ error: expect.stringMatching(/is not a relay root/) });
    });
  }

  it("relay run still seeds config.yaml there (and --dry-run needs no key)", async (ctx) => {
    const scope = await Scope.create(ctx);
    const dir = await makeRoot({ config: null });
    const d = await scope.start(dir, { ANTHROPIC_API_KEY: undefined }, ["--dry-run"]);
    expect(d.alive(), d.stderr()).toBe(true);
    expect(await readFile(join(dir, "config.yaml"), "utf8")).toMatch(/^sessions:/m);
  }, 60_000);

  it("the Claude Code Stop hook still lets the agent stop cleanly (exit 0, a one-line note)", async () => {
    const dir = await makeRoot({ config: null });
    const input = JSON.stringify({ session_id: "cc-1", transcript_path: join(dir, "none.jsonl"), cwd: dir, hook_event_name: "Stop", stop_hook_active: false, last_assistant_message: "Done." });
    const r = await runCli(["hook", "claude-stop", "--session", "session-1", "--root", dir], { input });
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(out.decision).toBeUndefined();
    expect(out.systemMessage).toMatch(/no relay is running/);
    expect(await readdir(dir)).not.toContain("config.yaml");
  });
});

describe("send and jc with no relay running", () => {
  it("warn on standard error, exit 0, and leave the message queued", async () => {
    const root = await makeRoot();
    const sent = await runCli(["send", "--root", root, "--session", "session-1", "queued while nobody runs"]);
    expect(sent.code, sent.stderr).toBe(0);
    expect(sent.stdout).toMatch(/^send-\S+\n$/);
    expect(sent.stderr).toBe(`relay: warning: no relay is running on ${root}; the envelope ${sent.stdout.trim()} waits until one starts (relay run --root ${root})\n`);
    expect(await queueNames(root)).toHaveLength(1);

    const jc = await runCli(["jc", "--root", root, "@session-1: go on"]);
    expect(jc.code, jc.stderr).toBe(0);
    expect(jc.stderr).toMatch(/^relay: warning: no relay is running on .*; state\/jc_input\.txt waits until one starts/);
    expect(await readFile(join(root, "state", "jc_input.txt"), "utf8")).toContain("go on");
  });

  it("say nothing on standard error while a relay holds the lock", async (ctx) => {
    const scope = await Scope.create(ctx);
    const root = await makeRoot();
    await scope.start(root, {}, ["--dry-run"]);
    const sent = await runCli(["send", "--root", root, "--session", "session-1", "hello"], { env: scope.vars() });
    expect(sent.code).toBe(0);
    expect(sent.stderr).toBe("");
    const jc = await runCli(["jc", "--root", root, "@session-1: go on"], { env: scope.vars() });
    expect(jc.code).toBe(0);
    expect(jc.stderr).toBe("");
  }, 60_000);
});
