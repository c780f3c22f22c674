// Every command explains itself (a description and examples in its --help), and `relay
// autocomplete` completes exactly the commands and flags the CLI has.
import { spawnSync } from "node:child_process";
import { afterAll, describe, expect, it } from "vitest";
import { commands } from "../src/commands/index.js";
import { bashScript, completionTable } from "../src/commands/autocomplete.js";
import { BIN, killAll, removeRoots, runCli } from "./support/cli.js";

afterAll(async () => {
  await killAll();
  await removeRoots();
});

describe("every command's help", () => {
  for (const [id, command] of Object.entries(commands)) {
    it(`relay ${id.replace(/:/g, " ")} has a description and at least one example`, () => {
      expect(command.description ?? "", id).toMatch(/\w{3,}.*\w{3,}/);
      expect((command.examples ?? []).length, id).toBeGreaterThan(0);
    });
  }

  it("--help prints them, for the commands this change added", async () => {
    for (const words of [["init"], ["doctor"], ["service", "uninstall"], ["autocomplete"]]) {
      const r = await runCli([...words, "--help"]);
      expect(r.code, words.join(" ")).toBe(0);
      expect(r.stdout).toMatch(/^DESCRIPTION$/m);
      expect(r.stdout).toMatch(/^EXAMPLES$/m);
    }
  }, 60_000);
});

/** The completions bash offers after `line` (the last word is the one being completed). */
function complete(script: string, line: string): string[] {
  const program = `${script}\nCOMP_WORDS=(${line}); COMP_CWORD=$((\${#COMP_WORDS[@]} - 1)); _relay_complete; printf '%s\\n' "\${COMPREPLY[@]}"`;
  const r = spawnSync("bash", ["-c", program], { encoding: "utf8" });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout.split("\n").filter(Boolean);
}

describe("relay autocomplete", () => {
  it("prints a bash script that completes commands, topics' commands and each command's flags, skipping flag values", async () => {
    const r = await runCli(["autocomplete", "bash"]);
    expect(r.code, r.stderr).toBe(0);
    const script = r.stdout;
    expect(complete(script, 'relay ""')).toEqual(expect.arrayContaining(["init", "doctor", "run", "service", "hook", "autocomplete"]));
    expect(complete(script, "relay ser")).toEqual(["service"]);
    expect(complete(script, "relay service un")).toEqual(["uninstall"]);
    expect(complete(script, "relay doctor --root /tmp/x --nt")).toEqual(["--ntfy-test"]);
    expect(complete(script, "relay init ~/relay --k")).toEqual(["--key-from-env"]);
    expect(complete(script, "relay hook install --s")).toEqual(["--session", "--shared"]);
    expect(spawnSync("bash", ["-n", "-c", script]).status).toBe(0);
  });

  it("is made from the command list: a hidden command or flag is left out", () => {
    const table = completionTable([
      { id: "a:b", flags: { seen: {}, secret: { hidden: true } } },
      { id: "hidden", hidden: true },
    ]);
    expect(table.get("")).toEqual(["a"]);
    expect(table.get("a")).toEqual(["b"]);
    expect(table.get("a b")).toEqual(["--help", "--seen"]);
    expect(bashScript(table)).not.toContain("secret");
  });

  it("zsh gets the same function through bashcompinit", async () => {
    const r = await runCli(["autocomplete", "zsh"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^autoload -U \+X bashcompinit && bashcompinit$/m);
    expect(r.stdout).toContain("complete -o default -F _relay_complete relay");
    expect(BIN).toMatch(/relay\.js$/);
  });
});
