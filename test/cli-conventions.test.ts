// CLI conventions (CONTRACT §9): `relay help`, "did you mean" for an unknown command, every error
// under --json a JSON object with `error`, and the documented exit codes (0 ok, 1 failure,
// 2 usage or config, 3 already running). The real CLI, as a process.
import { afterAll, describe, expect, it } from "vitest";
import { closestCommands, notFoundMessage } from "../src/commands/command-not-found.js";
import { commands } from "../src/commands/index.js";
import { EXIT } from "../src/errors.js";
import { killAll, makeRoot, removeRoots, runCli } from "./support/cli.js";

afterAll(async () => {
  await killAll();
  await removeRoots();
});

const IDS = Object.keys(commands);

describe("did you mean", () => {
  it("suggests the command a typo, a transposition or a start of a name meant", () => {
    expect(closestCommands("stauts", IDS)).toEqual(["status"]);
    expect(closestCommands("rnu", IDS)).toContain("run");
    expect(closestCommands("cost", IDS)).toEqual(["costs"]);
    expect(closestCommands("hook:instal", IDS)[0]).toBe("hook:install");
  });

  it("suggests nothing for a word that is no command", () => {
    expect(closestCommands("xyzzy", IDS)).toEqual([]);
    expect(notFoundMessage("xyzzy", IDS)).toBe('"xyzzy" is not a relay command (relay help lists them)');
  });

  it("answers an unknown command with one line naming the closest command, exit 2", async () => {
    const r = await runCli(["stauts"]);
    expect(r.code).toBe(EXIT.usage);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe('relay: "stauts" is not a relay command: did you mean relay status? (relay help lists them)\n');
    const topic = await runCli(["hook", "instal"]);
    expect(topic.code).toBe(EXIT.usage);
    expect(topic.stderr).toContain("did you mean relay hook install");
    const json = await runCli(["stauts", "--json"]);
    expect(json.code).toBe(EXIT.usage);
    expect(JSON.parse(json.stdout)).toEqual({ error: '"stauts" is not a relay command: did you mean relay status? (relay help lists them)' });
  });
});

describe("relay help", () => {
  it("lists the commands, exit 0", async () => {
    const r = await runCli(["help"]);
    expect(r.code, r.stderr).toBe(0);
    for (const word of ["run", "status", "send", "chart", "hook"]) expect(r.stdout).toContain(word);
  });

  it("explains one command like COMMAND --help", async () => {
    const [viaHelp, viaFlag] = await Promise.all([runCli(["help", "status"]), runCli(["status", "--help"])]);
    expect(viaHelp.code).toBe(0);
    expect(viaHelp.stdout).toContain("relay status");
    expect(viaHelp.stdout).toBe(viaFlag.stdout);
  });
});

describe("relay version", () => {
  it("prints what --version prints, exit 0", async () => {
    const [command, flag] = await Promise.all([runCli(["version"]), runCli(["--version"])]);
    expect(command.code).toBe(0);
    expect(command.stdout).toMatch(/^claude-code-relay\/\d+\.\d+\.\d+ /);
    expect(command.stdout).toBe(flag.stdout);
  });
});

describe("errors under --json", () => {
  it("are one JSON object with `error` on stdout, with the exit code the plain error has: a bad flag value, an unknown flag", async () => {
    const root = await makeRoot();
    for (const args of [
      ["costs", "--since", "garbage", "--root", root],
      ["status", "--bogus", "--root", root],
    ]) {
      const [plain, json] = await Promise.all([runCli(args), runCli([...args, "--json"])]);
      expect(plain.code, args.join(" ")).toBe(EXIT.usage);
      expect(json.code, args.join(" ")).toBe(EXIT.usage);
      const parsed = JSON.parse(json.stdout) as { error: unknown };
      expect(Object.keys(parsed)).toEqual(["error"]);
      expect(typeof parsed.error).toBe("string");
      expect(`relay: ${String(parsed.error)}\n`).toBe(plain.stderr);
      expect(json.stderr).toBe("");
    }
  });

  it("is JSON even from a command without --json output, where --json itself is the error", async () => {
    const root = await makeRoot();
    const r = await runCli(["resume", "--json", "--root", root]);
    expect(r.code).toBe(EXIT.usage);
    expect(JSON.parse(r.stdout)).toEqual({ error: expect.stringContaining("--json") as unknown });
  });
});
