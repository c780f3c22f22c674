// `relay hook install` / `uninstall` on a project's .claude/settings.json: merged with what is
// there (other hooks, other keys), idempotent, and undone exactly; plus the installed command
// itself, run through a shell as Claude Code runs it.
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { hookCommand, type HookSpec, isRelayHook, mergeRelayHooks, parseSettings, removeRelayHooks, shellQuote } from "../../src/claude-code/settings.js";
import { BIN, killAll, makeRoot, removeRoots, runCli } from "../support/cli.js";

afterEach(killAll);
afterAll(removeRoots);

/** A project settings file as a user might have it: a PreToolUse hook with a matcher, another Stop hook, other keys. */
const ORIGINAL = `${JSON.stringify(
  {
    $schema: "https://json.schemastore.org/claude-code-settings.json",
    permissions: { allow: ["Bash(npm test:*)"], deny: ["Read(./.env)"] },
    hooks: {
      PreToolUse: [{ matcher: "Bash", hooks: [{ type: "command", command: "$CLAUDE_PROJECT_DIR/.claude/hooks/check-bash.sh", timeout: 10 }] }],
      Stop: [{ hooks: [{ type: "command", command: "notify-send 'Claude Code' 'turn finished'" }] }],
    },
    model: "sonnet",
  },
  null,
  2,
)}\n`;

const tempDirs: string[] = [];
async function project(settings?: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "relay-project-"));
  tempDirs.push(dir);
  if (settings !== undefined) {
    await mkdir(join(dir, ".claude"));
    await writeFile(join(dir, ".claude", "settings.json"), settings);
  }
  return dir;
}
afterAll(async () => {
  for (const d of tempDirs.splice(0)) await rm(d, { recursive: true, force: true });
});

const settingsOf = async (dir: string): Promise<string> => readFile(join(dir, ".claude", "settings.json"), "utf8");

interface Settings {
  hooks: Record<string, { matcher?: string; hooks: { type: string; command: string; timeout?: number }[] }[]>;
  [key: string]: unknown;
}

describe("relay hook install / uninstall (the real CLI)", () => {
  it("adds a Stop and a SessionStart hook beside the hooks already there, and uninstall restores the file exactly", async () => {
    const root = await makeRoot();
    const dir = await project(ORIGINAL);

    const installed = await runCli(["hook", "install", "--session", "session-1", "--project", dir, "--root", root]);
    expect(installed.code).toBe(0);
    expect(installed.stdout).toMatch(/added the relay's Stop and SessionStart hooks for session session-1/);
    const after = JSON.parse(await settingsOf(dir)) as Settings;
    const before = JSON.parse(ORIGINAL) as Settings;

    // Everything that was there is still there, unchanged.
    expect(after.permissions).toEqual(before.permissions);
    expect(after.model).toBe("sonnet");
    expect(after.$schema).toBe(before.$schema);
    expect(after.hooks.PreToolUse).toEqual(before.hooks.PreToolUse);
    expect(after.hooks.Stop?.[0]).toEqual(before.hooks.Stop?.[0]);
    // Ours: one new group each, no matcher (Stop takes none; SessionStart then fires for every source).
    const command = `${process.execPath} ${BIN} hook claude-stop --session session-1 --root ${root} --timeout 540`;
    expect(after.hooks.Stop).toHaveLength(2);
    expect(after.hooks.Stop?.[1]).toEqual({ hooks: [{ type: "command", command, timeout: 600 }] });
    expect(after.hooks.SessionStart).toEqual([
      { hooks: [{ type: "command", command: `${process.execPath} ${BIN} hook claude-start --session session-1 --root ${root}`, timeout: 30 }] },
    ]);

    const removed = await runCli(["hook", "uninstall", "--session", "session-1", "--project", dir]);
    expect(removed.code).toBe(0);
    expect(removed.stdout).toMatch(/removed 2 relay hooks for session session-1/);
    expect(await settingsOf(dir)).toBe(ORIGINAL);
  });

  it("is idempotent: a second install changes nothing, not even the file's mtime", async () => {
    const root = await makeRoot();
    const dir = await project(ORIGINAL);
    expect((await runCli(["hook", "install", "--session", "session-1", "--project", dir, "--root", root])).code).toBe(0);
    const first = await settingsOf(dir);
    const mtime = (await stat(join(dir, ".claude", "settings.json"))).mtimeMs;
    const again = await runCli(["hook", "install", "--session", "session-1", "--project", dir, "--root", root]);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/already in .*nothing changed/);
    expect(await settingsOf(dir)).toBe(first);
    expect((await stat(join(dir, ".claude", "settings.json"))).mtimeMs).toBe(mtime);

    // A new --timeout updates our entry in place rather than adding a second one.
    expect((await runCli(["hook", "install", "--session", "session-1", "--project", dir, "--root", root, "--timeout", "120"])).code).toBe(0);
    const updated = JSON.parse(await settingsOf(dir)) as Settings;
    expect(updated.hooks.Stop).toHaveLength(2);
    expect(updated.hooks.Stop?.[1]?.hooks[0]).toMatchObject({ timeout: 180, command: expect.stringMatching(/ --timeout 120$/) });
  });

  it("creates .claude/settings.json when missing, and keeps one session's hooks when the other's are removed", async () => {
    const root = await makeRoot();
    const dir = await project();
    expect((await runCli(["hook", "install", "--session", "session-1", "--project", dir, "--root", root])).code).toBe(0);
    expect((await runCli(["hook", "install", "--session", "session-2", "--project", dir, "--root", root, "--max-turns", "3"])).code).toBe(0);
    const both = JSON.parse(await settingsOf(dir)) as Settings;
    expect(both.hooks.Stop).toHaveLength(2);
    expect(both.hooks.Stop?.[1]?.hooks[0]?.command).toMatch(/--session session-2 .* --max-turns 3$/);

    expect((await runCli(["hook", "uninstall", "--session", "session-2", "--project", dir])).code).toBe(0);
    const one = JSON.parse(await settingsOf(dir)) as Settings;
    expect(one.hooks.Stop).toHaveLength(1);
    expect(one.hooks.Stop?.[0]?.hooks[0]?.command).toMatch(/--session session-1 /);
    expect((await runCli(["hook", "uninstall", "--session", "session-1", "--project", dir])).code).toBe(0);
    expect(await settingsOf(dir)).toBe("{}\n");
    const none = await runCli(["hook", "uninstall", "--session", "session-1", "--project", dir]);
    expect(none.code).toBe(0);
    expect(none.stdout).toMatch(/nothing changed/);
  });

  it("refuses an invalid settings.json with one line and writes nothing", async () => {
    const root = await makeRoot();
    for (const bad of ['{"hooks": {"Stop": [}', '{"hooks": {"Stop": {"type": "command"}}}', "[]"]) {
      const dir = await project(bad);
      for (const args of [["hook", "install", "--root", root], ["hook", "uninstall"]]) {
        const r = await runCli([...args, "--session", "session-1", "--project", dir]);
        expect(r.code).not.toBe(0);
        expect(r.stderr.trim().split("\n")).toHaveLength(1);
        expect(r.stderr).toMatch(/settings\.json.*(not valid JSON|expected).*nothing was changed/);
        expect(await settingsOf(dir)).toBe(bad);
      }
    }
  });

  it("refuses a session that is not in config.yaml, or not a valid id", async () => {
    const root = await makeRoot();
    const dir = await project();
    const unknown = await runCli(["hook", "install", "--session", "session-9", "--project", dir, "--root", root]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/session session-9 is not in .*config\.yaml/);
    const invalid = await runCli(["hook", "install", "--session", "a b", "--project", dir, "--root", root]);
    expect(invalid.code).toBe(2);
    expect(invalid.stderr).toMatch(/not a valid session id/);
  });
});

describe("the settings merge (pure)", () => {
  const spec: HookSpec = { node: "/opt/node 24/bin/node", bin: "/home/jc/relay/bin/relay.js", root: "/home/jc/relay root", session: "session-1", waitS: 540 };

  it("quotes paths for the shell Claude Code runs the command with", async () => {
    const command = hookCommand("claude-stop", spec);
    expect(command).toBe("'/opt/node 24/bin/node' /home/jc/relay/bin/relay.js hook claude-stop --session session-1 --root '/home/jc/relay root' --timeout 540");
    const words = await new Promise<string>((resolve, reject) => {
      const child = spawn("sh", ["-c", `printf '%s\\n' ${command.split(" hook ")[0]} ${shellQuote("it's")}`]);
      let out = "";
      child.stdout.on("data", (d: Buffer) => (out += d.toString()));
      child.on("error", reject);
      child.on("close", () => resolve(out));
    });
    expect(words.split("\n").filter(Boolean)).toEqual(["/opt/node 24/bin/node", "/home/jc/relay/bin/relay.js", "it's"]);
  });

  it("matches only this session's hooks", () => {
    const command = hookCommand("claude-stop", spec);
    expect(isRelayHook({ type: "command", command }, "claude-stop", "session-1")).toBe(true);
    expect(isRelayHook({ type: "command", command }, "claude-stop", "session-10")).toBe(false);
    expect(isRelayHook({ type: "command", command: command.replace("session-1", "session-10") }, "claude-stop", "session-1")).toBe(false);
    expect(isRelayHook({ type: "command", command }, "claude-start", "session-1")).toBe(false);
  });

  it("does not touch the settings object it was given, and merge then remove gives back an equal object", () => {
    const parsed = parseSettings(ORIGINAL);
    if (!parsed.ok) throw new Error(parsed.error);
    const copy = structuredClone(parsed.value.value);
    const merged = mergeRelayHooks(parsed.value.value, spec);
    expect(merged.changed).toBe(true);
    expect(parsed.value.value).toEqual(copy);
    expect(mergeRelayHooks(merged.value, spec).changed).toBe(false);
    const removed = removeRelayHooks(merged.value, "session-1");
    expect(removed.removed).toBe(2);
    expect(JSON.stringify(removed.value)).toBe(JSON.stringify(copy));
  });

  it("keeps the file's indentation and final newline", () => {
    const four = parseSettings('{\n    "model": "opus"\n}');
    expect(four).toMatchObject({ ok: true, value: { indent: "    ", finalNewline: false } });
  });
});
