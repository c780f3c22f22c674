// `relay hook install` / `uninstall` on a project's .claude/settings.local.json (settings.json
// with --shared): merged with what is there (other hooks, other keys), idempotent, undone exactly,
// and an older install's entries moved out of the other file; plus the installed command itself,
// run through a shell as Claude Code runs it.
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { hookCommand, type HookSpec, isRelayHook, mergeRelayHooks, parseSettings, relayHooks, removeRelayHooks, shellQuote } from "../../src/claude-code/settings.js";
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
const LOCAL = "settings.local.json";
const SHARED = "settings.json";
async function project(settings?: string, file = LOCAL): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "relay-project-"));
  tempDirs.push(dir);
  if (settings !== undefined) {
    await mkdir(join(dir, ".claude"), { recursive: true });
    await writeFile(join(dir, ".claude", file), settings);
  }
  return dir;
}
afterAll(async () => {
  for (const d of tempDirs.splice(0)) await rm(d, { recursive: true, force: true });
});

const settingsOf = async (dir: string, file = LOCAL): Promise<string> => readFile(join(dir, ".claude", file), "utf8");
const present = (dir: string, file: string): Promise<boolean> => stat(join(dir, ".claude", file)).then(() => true, () => false);

interface Hook {
  type: string;
  command: string;
  timeout?: number;
  statusMessage?: string;
  async?: boolean;
  asyncRewake?: boolean;
}
interface Settings {
  hooks: Record<string, { matcher?: string; hooks: Hook[] }[]>;
  [key: string]: unknown;
}

const install = (root: string, dir: string, ...extra: string[]) => runCli(["hook", "install", "--session", "session-1", "--project", dir, "--root", root, ...extra]);

describe("relay hook install / uninstall (the real CLI)", { timeout: 60_000 }, () => {
  it("adds Stop, SessionStart and SessionEnd hooks to settings.local.json beside the hooks there, and uninstall restores the file exactly", async () => {
    const root = await makeRoot();
    const dir = await project(ORIGINAL);

    const installed = await install(root, dir);
    expect(installed.code, installed.stderr).toBe(0);
    expect(installed.stdout).toMatch(/added the relay's Stop \(block mode\), SessionStart, SessionEnd, StopFailure hooks for session session-1 to \S+\/\.claude\/settings\.local\.json/);
    const after = JSON.parse(await settingsOf(dir)) as Settings;
    const before = JSON.parse(ORIGINAL) as Settings;
    expect(await present(dir, SHARED)).toBe(false); // the shared file is not created

    // Everything that was there is still there, unchanged.
    expect(after.permissions).toEqual(before.permissions);
    expect(after.model).toBe("sonnet");
    expect(after.$schema).toBe(before.$schema);
    expect(after.hooks.PreToolUse).toEqual(before.hooks.PreToolUse);
    expect(after.hooks.Stop?.[0]).toEqual(before.hooks.Stop?.[0]);
    // Ours: one new group each, no matcher (Stop takes none; SessionStart and SessionEnd then fire for every source and reason).
    const base = `${process.execPath} ${BIN} hook`;
    expect(after.hooks.Stop).toHaveLength(2);
    expect(after.hooks.Stop?.[1]).toEqual({
      hooks: [
        {
          type: "command",
          command: `${base} claude-stop --session session-1 --root ${root} --mode block --timeout 540`,
          timeout: 600,
          statusMessage: "relay: waiting for the reviewer's reply (session-1)",
        },
      ],
    });
    expect(after.hooks.SessionStart).toEqual([{ hooks: [{ type: "command", command: `${base} claude-start --session session-1 --root ${root}`, timeout: 30 }] }]);
    expect(after.hooks.SessionEnd).toEqual([{ hooks: [{ type: "command", command: `${base} claude-end --session session-1 --root ${root}`, timeout: 30 }] }]);
    // StopFailure: Claude Code runs it instead of Stop when a turn ends on an API error (no matcher: every error).
    expect(after.hooks.StopFailure).toEqual([{ hooks: [{ type: "command", command: `${base} claude-failure --session session-1 --root ${root}`, timeout: 30 }] }]);

    const removed = await runCli(["hook", "uninstall", "--session", "session-1", "--project", dir]);
    expect(removed.code, removed.stderr).toBe(0);
    expect(removed.stdout).toMatch(/removed 4 relay hooks for session session-1 from \S+settings\.local\.json/);
    expect(await settingsOf(dir)).toBe(ORIGINAL);
    expect(await present(dir, SHARED)).toBe(false);
  });

  it("is idempotent: a second install changes nothing, not even the file's mtime", async () => {
    const root = await makeRoot();
    const dir = await project(ORIGINAL);
    expect((await install(root, dir)).code).toBe(0);
    const first = await settingsOf(dir);
    const mtime = (await stat(join(dir, ".claude", LOCAL))).mtimeMs;
    const again = await install(root, dir);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/already in .*nothing changed/);
    expect(await settingsOf(dir)).toBe(first);
    expect((await stat(join(dir, ".claude", LOCAL))).mtimeMs).toBe(mtime);

    // A new --timeout updates our entry in place rather than adding a second one.
    expect((await install(root, dir, "--timeout", "120")).code).toBe(0);
    const updated = JSON.parse(await settingsOf(dir)) as Settings;
    expect(updated.hooks.Stop).toHaveLength(2);
    expect(updated.hooks.Stop?.[1]?.hooks[0]).toMatchObject({ timeout: 180, command: expect.stringMatching(/ --mode block --timeout 120$/) });
    expect(updated.hooks.SessionStart).toHaveLength(1);
    expect(updated.hooks.SessionEnd).toHaveLength(1);
  });

  it("--mode wake installs the Stop hook async with asyncRewake and a day's wait; switching back drops them", async () => {
    const root = await makeRoot();
    const dir = await project(ORIGINAL);
    const wake = await install(root, dir, "--mode", "wake");
    expect(wake.code, wake.stderr).toBe(0);
    expect(wake.stdout).toMatch(/Stop \(wake mode\)/);
    const after = JSON.parse(await settingsOf(dir)) as Settings;
    expect(after.hooks.Stop?.[1]?.hooks).toEqual([
      {
        type: "command",
        command: `${process.execPath} ${BIN} hook claude-stop --session session-1 --root ${root} --mode wake --timeout 86400`,
        timeout: 86_460,
        async: true,
        asyncRewake: true,
        statusMessage: "relay: the reviewer's reply to session-1 will wake this session",
      },
    ]);
    expect(after.hooks.SessionEnd?.[0]?.hooks[0]?.command).toMatch(/ hook claude-end --session session-1 /);

    // Back to block mode: the same entry, updated in place, without async or asyncRewake.
    expect((await install(root, dir)).code).toBe(0);
    const back = JSON.parse(await settingsOf(dir)) as Settings;
    expect(back.hooks.Stop).toHaveLength(2);
    const stop = back.hooks.Stop?.[1]?.hooks[0];
    expect(stop).toMatchObject({ timeout: 600, command: expect.stringMatching(/ --mode block --timeout 540$/) });
    expect(stop).not.toHaveProperty("async");
    expect(stop).not.toHaveProperty("asyncRewake");
    expect((await runCli(["hook", "uninstall", "--session", "session-1", "--project", dir])).code).toBe(0);
    expect(await settingsOf(dir)).toBe(ORIGINAL);
  });

  it("--shared writes .claude/settings.json, and moves this session's entries out of settings.local.json", async () => {
    const root = await makeRoot();
    const dir = await project(ORIGINAL, SHARED);
    expect((await install(root, dir)).code).toBe(0); // first to settings.local.json
    expect(await settingsOf(dir, SHARED)).toBe(ORIGINAL);
    const shared = await install(root, dir, "--shared");
    expect(shared.code, shared.stderr).toBe(0);
    expect(shared.stdout).toMatch(/to \S+\/\.claude\/settings\.json/);
    expect(shared.stdout).toMatch(/removed 4 older relay hooks for session session-1 from \S+settings\.local\.json/);
    const after = JSON.parse(await settingsOf(dir, SHARED)) as Settings;
    expect(after.hooks.Stop).toHaveLength(2);
    expect(after.hooks.Stop?.[1]?.hooks[0]?.command).toMatch(/ hook claude-stop --session session-1 /);
    expect(after.hooks.SessionStart).toHaveLength(1);
    expect(after.hooks.SessionEnd).toHaveLength(1);
    expect(await settingsOf(dir)).toBe("{}\n");
  });

  it("an upgrade moves an older install's entries out of settings.json, keeping everything else there", async () => {
    const root = await makeRoot();
    // As the previous version wrote it: Stop and SessionStart in the shared file, no --mode, no SessionEnd.
    const old = JSON.parse(ORIGINAL) as Settings;
    old.hooks.Stop?.push({ hooks: [{ type: "command", command: `${process.execPath} ${BIN} hook claude-stop --session session-1 --root ${root} --timeout 540`, timeout: 600 }] });
    old.hooks.SessionStart = [{ hooks: [{ type: "command", command: `${process.execPath} ${BIN} hook claude-start --session session-1 --root ${root}`, timeout: 30 }] }];
    // Another session's hooks stay where they are.
    old.hooks.Stop?.push({ hooks: [{ type: "command", command: `${process.execPath} ${BIN} hook claude-stop --session session-2 --root ${root} --timeout 540`, timeout: 600 }] });
    const dir = await project(`${JSON.stringify(old, null, 2)}\n`, SHARED);

    const upgraded = await install(root, dir);
    expect(upgraded.code, upgraded.stderr).toBe(0);
    expect(upgraded.stdout).toMatch(/removed 2 older relay hooks for session session-1 from \S+\/\.claude\/settings\.json/);
    const shared = JSON.parse(await settingsOf(dir, SHARED)) as Settings;
    const original = JSON.parse(ORIGINAL) as Settings;
    expect(shared.permissions).toEqual(original.permissions);
    expect(shared.hooks.PreToolUse).toEqual(original.hooks.PreToolUse);
    expect(shared.hooks.Stop?.map((g) => g.hooks[0]?.command)).toEqual([original.hooks.Stop?.[0]?.hooks[0]?.command, expect.stringMatching(/--session session-2 /)]);
    expect(shared.hooks).not.toHaveProperty("SessionStart");
    const local = JSON.parse(await settingsOf(dir)) as Settings;
    expect(Object.keys(local.hooks).sort()).toEqual(["SessionEnd", "SessionStart", "Stop", "StopFailure"]);
    expect(local.hooks.Stop?.[0]?.hooks[0]?.command).toMatch(/--session session-1 .* --mode block --timeout 540$/);

    // A second install finds nothing more to move, and changes nothing.
    const again = await install(root, dir);
    expect(again.stdout).toMatch(/nothing changed/);
    expect(again.stdout).not.toMatch(/older relay hook/);
  });

  it("uninstall removes this session's hooks from both files", async () => {
    const root = await makeRoot();
    const dir = await project(ORIGINAL, SHARED);
    expect((await install(root, dir)).code).toBe(0);
    // An entry of ours left in the shared file by hand, beside the user's own.
    const shared = JSON.parse(ORIGINAL) as Settings;
    shared.hooks.Stop?.push({ hooks: [{ type: "command", command: `node ${BIN} hook claude-stop --session session-1 --root ${root} --timeout 60` }] });
    await writeFile(join(dir, ".claude", SHARED), `${JSON.stringify(shared, null, 2)}\n`);
    const removed = await runCli(["hook", "uninstall", "--session", "session-1", "--project", dir, "--json"]);
    expect(removed.code, removed.stderr).toBe(0);
    expect(JSON.parse(removed.stdout)).toEqual({ settings: [join(dir, ".claude", LOCAL), join(dir, ".claude", SHARED)], removed: 5 });
    expect(await settingsOf(dir, SHARED)).toBe(ORIGINAL);
    expect(await settingsOf(dir)).toBe("{}\n");
  });

  it("creates .claude/settings.local.json when missing, and keeps one session's hooks when the other's are removed", async () => {
    const root = await makeRoot();
    const dir = await project();
    expect((await runCli(["hook", "install", "--session", "session-1", "--project", dir, "--root", root])).code).toBe(0);
    expect((await runCli(["hook", "install", "--session", "session-2", "--project", dir, "--root", root, "--max-turns", "3"])).code).toBe(0);
    const both = JSON.parse(await settingsOf(dir)) as Settings;
    expect(both.hooks.Stop).toHaveLength(2);
    expect(both.hooks.Stop?.[1]?.hooks[0]?.command).toMatch(/--session session-2 .* --max-turns 3$/);
    expect(both.hooks.SessionEnd).toHaveLength(2);

    expect((await runCli(["hook", "uninstall", "--session", "session-2", "--project", dir])).code).toBe(0);
    const one = JSON.parse(await settingsOf(dir)) as Settings;
    expect(one.hooks.Stop).toHaveLength(1);
    expect(one.hooks.Stop?.[0]?.hooks[0]?.command).toMatch(/--session session-1 /);
    expect(one.hooks.SessionEnd?.map((g) => g.hooks[0]?.command)).toEqual([expect.stringMatching(/--session session-1 /)]);
    expect((await runCli(["hook", "uninstall", "--session", "session-1", "--project", dir])).code).toBe(0);
    expect(await settingsOf(dir)).toBe("{}\n");
    const none = await runCli(["hook", "uninstall", "--session", "session-1", "--project", dir]);
    expect(none.code).toBe(0);
    expect(none.stdout).toMatch(/nothing changed/);
    expect(await present(dir, SHARED)).toBe(false);
  });

  it("refuses an invalid settings file with one line and writes nothing", async () => {
    const root = await makeRoot();
    for (const file of [LOCAL, SHARED]) {
      for (const bad of ['{"hooks": {"Stop": [}', '{"hooks": {"Stop": {"type": "command"}}}', "[]"]) {
        const dir = await project(bad, file);
        for (const args of [["hook", "install", "--root", root], ["hook", "uninstall"]]) {
          const r = await runCli([...args, "--session", "session-1", "--project", dir]);
          expect(r.code).not.toBe(0);
          expect(r.stderr.trim().split("\n")).toHaveLength(1);
          expect(r.stderr).toMatch(new RegExp(`${file.replace(".", "\\.")}.*(not valid JSON|expected).*nothing was changed`));
          expect(await settingsOf(dir, file)).toBe(bad);
          expect(await present(dir, file === LOCAL ? SHARED : LOCAL)).toBe(false);
        }
      }
    }
    // twelve CLI runs one after the other: at load 17 each took ~5 s, and 60 s was not enough
  }, 180_000);

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

  it("the hook commands' defaults: 30 relayed turns in a row, block mode", async () => {
    const help = await runCli(["hook", "claude-stop", "--help"]);
    expect(help.stdout).toMatch(/--max-turns=<value>\s+\[default: 30\]/);
    expect(help.stdout).toMatch(/--mode=<option>\s+\[default: block\]/);
    expect((await runCli(["hook", "claude-start", "--help"])).stdout).toMatch(/--release-after/);
    expect((await runCli(["hook", "claude-end", "--help"])).stdout).toMatch(/SessionEnd/);
  });
});

describe("the settings merge (pure)", () => {
  const spec: HookSpec = { node: "/opt/node 24/bin/node", bin: "/home/jc/relay/bin/relay.js", root: "/home/jc/relay root", session: "session-1", mode: "block", waitS: 540 };

  it("quotes paths for the shell Claude Code runs the command with", async () => {
    const command = hookCommand("claude-stop", spec);
    expect(command).toBe("'/opt/node 24/bin/node' /home/jc/relay/bin/relay.js hook claude-stop --session session-1 --root '/home/jc/relay root' --mode block --timeout 540");
    expect(hookCommand("claude-end", spec)).toBe("'/opt/node 24/bin/node' /home/jc/relay/bin/relay.js hook claude-end --session session-1 --root '/home/jc/relay root'");
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
    expect(isRelayHook({ type: "command", command: hookCommand("claude-end", spec) }, "claude-end", "session-1")).toBe(true);
    expect(isRelayHook({ type: "command", command: hookCommand("claude-end", spec) }, "claude-stop", "session-1")).toBe(false);
  });

  it("gives each mode its Stop entry: block waits in the foreground, wake runs async and rewakes", () => {
    const block = relayHooks(spec);
    expect(block.map((h) => [h.event, h.kind])).toEqual([
      ["Stop", "claude-stop"],
      ["SessionStart", "claude-start"],
      ["SessionEnd", "claude-end"],
      ["StopFailure", "claude-failure"],
    ]);
    expect(block[0]?.hook).toEqual({ type: "command", command: hookCommand("claude-stop", spec), timeout: 600, statusMessage: "relay: waiting for the reviewer's reply (session-1)" });
    const wake = relayHooks({ ...spec, mode: "wake", waitS: 86_400 });
    expect(wake[0]?.hook).toMatchObject({ timeout: 86_460, async: true, asyncRewake: true, command: expect.stringMatching(/ --mode wake --timeout 86400$/) });
    expect(wake[1]?.hook).toEqual(block[1]?.hook);
    expect(wake[2]?.hook).toEqual(block[2]?.hook);
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
    expect(removed.removed).toBe(4);
    expect(JSON.stringify(removed.value)).toBe(JSON.stringify(copy));
  });

  it("keeps the file's indentation and final newline", () => {
    const four = parseSettings('{\n    "model": "opus"\n}');
    expect(four).toMatchObject({ ok: true, value: { indent: "    ", finalNewline: false } });
  });
});
