// The hot commands (the Claude Code hooks, `relay status`) run without oclif when their command
// line is plain. Promises: the plain parser agrees with oclif's on every line it accepts, declines
// every line oclif would answer with help or an error, knows the same flags as the oclif
// commands, and a command run either way prints the same and exits the same.
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { type Command, Parser } from "@oclif/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FlagSpecs, parsePlainFlags } from "../../src/commands/fast/argv.js";
import { END_FLAGS, FAILURE_FLAGS, PERMISSION_FLAGS, START_FLAGS, STOP_FLAGS } from "../../src/commands/hook/hook-actions.js";
import HookClaudeFailure from "../../src/commands/hook/claude-failure.js";
import HookClaudeEnd from "../../src/commands/hook/claude-end.js";
import HookClaudePermission from "../../src/commands/hook/claude-permission.js";
import HookClaudeStart from "../../src/commands/hook/claude-start.js";
import HookClaudeStop from "../../src/commands/hook/claude-stop.js";
import Run from "../../src/commands/run.js";
import { RUN_FLAGS } from "../../src/commands/run-action.js";
import Status from "../../src/commands/status.js";
import { STATUS_FLAGS } from "../../src/commands/status-action.js";
import { BIN, childEnv } from "../support/cli.js";

const HOT: { name: string; specs: FlagSpecs; command: Command.Class }[] = [
  { name: "hook claude-stop", specs: STOP_FLAGS, command: HookClaudeStop },
  { name: "hook claude-start", specs: START_FLAGS, command: HookClaudeStart },
  { name: "hook claude-end", specs: END_FLAGS, command: HookClaudeEnd },
  { name: "hook claude-failure", specs: FAILURE_FLAGS, command: HookClaudeFailure },
  { name: "hook claude-permission", specs: PERMISSION_FLAGS, command: HookClaudePermission },
  { name: "status", specs: STATUS_FLAGS, command: Status },
  { name: "run", specs: RUN_FLAGS, command: Run },
];

/** The flags oclif parses for a command: its own, the base flags (--root) and --json where enabled. */
function oclifFlags(command: Command.Class): Record<string, Record<string, unknown>> {
  return { ...command.baseFlags, ...command.flags, ...(command.enableJsonFlag ? { json: { type: "boolean" } } : {}) } as Record<string, Record<string, unknown>>;
}

async function oclifParse(command: Command.Class, argv: string[]): Promise<Record<string, unknown> | "error"> {
  try {
    const { flags } = await Parser.parse(argv, { flags: oclifFlags(command) as never, strict: true });
    return flags;
  } catch {
    return "error";
  }
}

describe("the plain flag parser", () => {
  it("knows each hot command's flags as its oclif command defines them (name, char, kind, options, min, default, required, --no-)", async () => {
    for (const { name, specs, command } of HOT) {
      const flags = oclifFlags(command);
      expect(Object.keys(specs).sort(), name).toEqual(Object.keys(flags).sort());
      for (const [flag, spec] of Object.entries(specs)) {
        const o = flags[flag] ?? {};
        const parse = o.parse as ((input: string, ctx: unknown, opts: unknown) => Promise<unknown>) | undefined;
        const integer = o.type === "option" && parse !== undefined && (await parse("x", {}, o).then(() => false, () => true));
        const kind = o.type === "boolean" ? "boolean" : integer ? "integer" : "string";
        expect({ flag, kind, char: o.char, options: o.options, min: o.min, default: o.default, required: o.required === true, allowNo: o.allowNo === true }, name).toEqual({
          flag,
          kind: spec.kind,
          char: spec.char,
          options: spec.kind === "string" ? spec.options : undefined,
          min: spec.kind === "integer" ? spec.min : undefined,
          default: spec.default,
          required: spec.kind !== "boolean" && spec.required === true,
          allowNo: spec.kind === "boolean" && spec.allowNo === true,
        });
      }
    }
  });

  const lines: { name: string; argv: string[] }[] = [
    { name: "hook claude-stop", argv: ["--session", "s1"] },
    { name: "hook claude-stop", argv: ["-s", "s1", "--root", "/tmp/r", "--mode", "wake", "--timeout", "60"] },
    { name: "hook claude-stop", argv: ["--session=s1", "--no-evidence", "--evidence-max", "200", "--max-turns", "3", "--release-after", "5"] },
    { name: "hook claude-stop", argv: ["--session", "s1", "--evidence"] },
    { name: "hook claude-start", argv: ["--session", "session-1", "--root", "/x", "--release-after", "1"] },
    { name: "hook claude-end", argv: ["--root", "/x", "--session", "a b"] },
    { name: "hook claude-permission", argv: ["--session", "s", "--timeout", "5"] },
    { name: "status", argv: [] },
    { name: "status", argv: ["--json", "-v", "--root", "/r"] },
    { name: "status", argv: ["--verbose"] },
    { name: "run", argv: [] },
    { name: "run", argv: ["--dry-run", "--root", "/r"] },
    { name: "run", argv: ["--http", "8080"] },
    { name: "run", argv: ["--http=[::1]:8080", "--dry-run"] },
  ];
  it("gives the flags oclif gives, defaults included, on every plain line", async () => {
    for (const { name, argv } of lines) {
      const hot = HOT.find((h) => h.name === name);
      if (!hot) throw new Error(name);
      const plain = parsePlainFlags(hot.specs, argv);
      expect(plain, `${name} ${argv.join(" ")}`).not.toBeNull();
      const oclif = await oclifParse(hot.command, argv);
      // oclif leaves an unset boolean without a default out; the plain parser says false
      const expected = Object.fromEntries(Object.entries(plain ?? {}).filter(([k, v]) => v !== undefined && !(v === false && oclif !== "error" && !(k in oclif))));
      expect(oclif, `${name} ${argv.join(" ")}`).toEqual(expected);
    }
  });

  const declined: { name: string; argv: string[] }[] = [
    { name: "hook claude-stop", argv: [] }, // --session is required
    { name: "hook claude-stop", argv: ["--help"] },
    { name: "hook claude-stop", argv: ["-h"] },
    { name: "hook claude-stop", argv: ["--session", "s1", "--mode", "sleep"] },
    { name: "hook claude-stop", argv: ["--session", "s1", "--timeout", "0"] },
    { name: "hook claude-stop", argv: ["--session", "s1", "--timeout", "1.5"] },
    { name: "hook claude-stop", argv: ["--session", "s1", "--evidence-max", "100"] },
    { name: "hook claude-stop", argv: ["--session", "s1", "--session", "s2"] },
    { name: "hook claude-stop", argv: ["--session", "s1", "--bogus"] },
    { name: "hook claude-stop", argv: ["--session", "s1", "extra"] },
    { name: "hook claude-stop", argv: ["--session", "s1", "--"] },
    { name: "hook claude-stop", argv: ["--session"] },
    { name: "hook claude-stop", argv: ["--session", "--root"] },
    { name: "hook claude-stop", argv: ["--session", "s1", "--no-mode"] },
    { name: "hook claude-end", argv: ["--session", "s1", "--json"] },
    { name: "status", argv: ["--verbose=true"] },
    { name: "status", argv: ["--root"] },
    { name: "status", argv: ["-x"] },
    { name: "status", argv: ["--no-json"] },
    { name: "status", argv: ["--json", "--json"] },
    { name: "run", argv: ["--json"] },
    { name: "run", argv: ["--http"] },
    { name: "run", argv: ["--dry-run=false"] },
    { name: "run", argv: ["--no-dry-run"] },
    { name: "run", argv: ["--help"] },
  ];
  it("declines what it cannot parse exactly as oclif does (help, bad or repeated flags, words), leaving it to oclif", () => {
    for (const { name, argv } of declined) {
      const hot = HOT.find((h) => h.name === name);
      if (!hot) throw new Error(name);
      expect(parsePlainFlags(hot.specs, argv), `${name} ${argv.join(" ")}`).toBeNull();
    }
  });
});

describe("a hot command run without oclif", () => {
  const children = new Set<ChildProcess>();
  let root = "";
  let empty = "";
  /** a root for `relay run`'s failures, whose .env holds a secret no error line may quote */
  let runRoot = "";
  const SECRET = "tk_fastpathsecret0123456789";
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), "relay-fast-"));
    await mkdir(join(root, "state"));
    await writeFile(join(root, "config.yaml"), "sessions:\n  - id: session-1\n");
    empty = await mkdtemp(join(tmpdir(), "relay-fast-empty-"));
    runRoot = await mkdtemp(join(tmpdir(), "relay-fast-run-"));
    await writeFile(join(runRoot, "config.yaml"), "sessions:\n  - id: session-1\n");
    await writeFile(join(runRoot, ".env"), `NTFY_TOKEN=${SECRET}\n`, { mode: 0o600 });
  });
  afterAll(async () => {
    for (const child of children) child.kill("SIGKILL");
    for (const dir of [root, empty, runRoot]) if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** stdout, stderr and exit code of `relay ARGS` (standard input closed), through bin/relay.js or through oclif alone, pointed at the package.json (bin/ has one of its own, which makes bin/relay.js CommonJS). */
  async function run(args: string[], via: "bin" | "oclif"): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const script = via === "bin" ? [BIN, ...args] : ["--input-type=module", "-e", `import { execute } from "@oclif/core"; await execute({ dir: ${JSON.stringify(pathToFileURL(join(BIN, "..", "..", "package.json")).href)}, args: ${JSON.stringify(args)} });`];
    const child = spawn(process.execPath, script, { env: await childEnv(), cwd: join(BIN, "..", "..") });
    children.add(child);
    child.stdin.end();
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const [code] = (await once(child, "close")) as [number | null];
    children.delete(child);
    return { code, stdout, stderr };
  }

  const cases = (): string[][] => [
    ["status", "--root", root],
    ["status", "--root", root, "--json"],
    ["status", "--root", root, "-v"],
    ["status", "--root", empty],
    ["status", "--root", empty, "--json"],
    ["hook", "claude-end", "--session", "a b", "--root", root],
    ["hook", "claude-start", "--session", "session-1", "--root", root],
    ["hook", "claude-stop", "--session", "no-such-session", "--root", root, "--timeout", "5"],
    ["run", "--root", runRoot],
    ["run", "--root", runRoot, "--dry-run", "--http", SECRET],
    ["run", "--root", join(runRoot, "config.yaml", "x"), "--dry-run"],
  ];
  it.each([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10])("prints what oclif prints and exits with its code (case %i: status text and JSON, not a root, a bad session, hooks, run's failures)", async (i) => {
    const args = cases()[i] ?? [];
    const [viaBin, viaOclif] = [await run(args, "bin"), await run(args, "oclif")];
    expect(viaBin, args.join(" ")).toEqual(viaOclif);
    expect(viaBin.stdout + viaBin.stderr, args.join(" ")).not.toBe("");
    expect(viaBin.stdout + viaBin.stderr, args.join(" ")).not.toContain(SECRET);
  }, 60_000);
});
