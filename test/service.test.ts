// `relay service print` / `install`: a systemd unit that runs `relay run` on this root, checked
// line by line and, where systemd-analyze exists, by systemd itself.
import { execFileSync, spawnSync } from "node:child_process";
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { execWord, renderUnit, unitDir, unitName } from "../src/service/unit.js";
import { BIN, killAll, makeRoot, removeRoots, runCli } from "./support/cli.js";
import { parsePlist } from "./support/plist.js";

afterEach(killAll);
afterAll(removeRoots);

const tempDirs: string[] = [];
afterAll(async () => {
  for (const d of tempDirs.splice(0)) await rm(d, { recursive: true, force: true });
});
async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

/** Settings of a unit file as [section, key, value] lines. */
function settings(unit: string): string[] {
  let section = "";
  const out: string[] = [];
  for (const line of unit.split("\n")) {
    const header = /^\[(\w+)\]$/.exec(line);
    if (header?.[1]) section = header[1];
    else if (line.includes("=")) out.push(`${section}: ${line}`);
  }
  return out;
}

describe("relay service print", () => {
  it("prints a system unit: restart on failure but not on a configuration error (exit 2), the root as working directory, no EnvironmentFile, journald, SIGTERM", async () => {
    const root = await makeRoot();
    const r = await runCli(["service", "print", "--root", root]);
    expect(r.code).toBe(0);
    const lines = settings(r.stdout);
    expect(lines).toEqual(
      expect.arrayContaining([
        "Unit: After=network-online.target",
        "Service: Type=simple",
        `Service: WorkingDirectory=${root}`,
        `Service: ExecStart=${process.execPath} ${BIN} run --root ${root}`,
        "Service: Restart=on-failure",
        "Service: RestartPreventExitStatus=2",
        "Service: RestartSec=5",
        "Service: KillSignal=SIGTERM",
        "Service: TimeoutStopSec=60",
        "Service: StandardOutput=journal",
        "Service: StandardError=journal",
        "Install: WantedBy=multi-user.target",
      ]),
    );
    expect(lines.some((l) => l.startsWith("Service: User="))).toBe(true);
    // the relay reads .env itself: as an EnvironmentFile it would become real variables that win over .env
    expect(lines.some((l) => l.includes("EnvironmentFile"))).toBe(false);
  });

  it("with --agent, a unit that runs relay agent on this root (transport: nats, another host), named relay-agent-<root name>", async () => {
    const root = await makeRoot({ config: "transport: nats\nagent:\n  name: laptop\nsessions:\n  - id: s2\n" });
    const r = await runCli(["service", "print", "--agent", "--user", "--root", root]);
    expect(r.code, r.stderr).toBe(0);
    const lines = settings(r.stdout);
    expect(lines).toEqual(
      expect.arrayContaining([
        `Service: ExecStart=${process.execPath} ${BIN} agent --root ${root}`,
        "Service: Restart=on-failure",
        "Service: RestartPreventExitStatus=2",
        `Service: SyslogIdentifier=relay-agent-${root.split("/").at(-1) ?? ""}`,
        "Install: WantedBy=default.target",
      ]),
    );
    expect(lines.some((l) => / run --root /.test(l))).toBe(false);
    expect(unitName(root, true)).toBe(`relay-agent-${root.split("/").at(-1) ?? ""}.service`);
    // installed beside a relay unit of a root with the same name, it does not replace it
    const dir = await tempDir("relay-units-");
    expect((await runCli(["service", "install", "--agent", "--user", "--unit-dir", dir, "--root", root])).code).toBe(0);
    expect((await runCli(["service", "install", "--user", "--unit-dir", dir, "--root", root])).code).toBe(0);
    expect((await readdir(dir)).sort()).toEqual([unitName(root, true), unitName(root)].sort());
  });

  it("prints a user unit with --user: WantedBy=default.target, no User= and no system-only targets", async () => {
    const root = await makeRoot();
    const r = await runCli(["service", "print", "--user", "--root", root]);
    expect(r.code).toBe(0);
    const lines = settings(r.stdout);
    expect(lines).toContain("Install: WantedBy=default.target");
    expect(lines.some((l) => /User=|network-online/.test(l))).toBe(false);
  });

  it("escapes what systemd would expand, and quotes paths with spaces", () => {
    expect(execWord("/srv/relay root/50%")).toBe('"/srv/relay root/50%%"');
    expect(execWord("/a/$HOME")).toBe("/a/$$HOME");
    expect(execWord('/a/"q"')).toBe('"/a/\\"q\\""');
    expect(unitName("/home/jc/My Relay (prod)")).toBe("relay-My-Relay-prod.service");
    expect(unitName("/")).toBe("relay-root.service");
    expect(() => renderUnit({ root: "relative/root", node: "/usr/bin/node", bin: "/b", user: true })).toThrow(/absolute path/);
  });

  it("puts user units under $XDG_CONFIG_HOME or ~/.config, system units under /etc/systemd/system", () => {
    expect(unitDir(true, {}, "/home/jc")).toBe("/home/jc/.config/systemd/user");
    expect(unitDir(true, { XDG_CONFIG_HOME: "/cfg" }, "/home/jc")).toBe("/cfg/systemd/user");
    expect(unitDir(false, {}, "/home/jc")).toBe("/etc/systemd/system");
  });
});

describe("relay service install", () => {
  it("writes relay-<root name>.service into the unit directory, prints the next commands, and is idempotent", async () => {
    const root = await makeRoot();
    const dir = join(await tempDir("relay-units-"), "user");
    const r = await runCli(["service", "install", "--user", "--unit-dir", dir, "--root", root]);
    expect(r.code).toBe(0);
    const name = `relay-${root.split("/").at(-1) ?? ""}.service`;
    const path = join(dir, name);
    expect(r.stdout).toContain(`wrote ${path}`);
    expect(r.stdout).toContain("systemctl --user daemon-reload");
    expect(r.stdout).toContain(`systemctl --user enable --now ${name}`);
    expect(r.stderr).toMatch(/ANTHROPIC_API_KEY/); // the root has no .env yet: the service would have no key
    const printed = await runCli(["service", "print", "--user", "--root", root]);
    expect(await readFile(path, "utf8")).toBe(`${printed.stdout.trimEnd()}\n`);

    const mtime = (await stat(path)).mtimeMs;
    const again = await runCli(["service", "install", "--user", "--unit-dir", dir, "--root", root]);
    expect(again.stdout).toContain("already up to date");
    expect((await stat(path)).mtimeMs).toBe(mtime);
  });

  const asRoot = process.getuid?.() === 0;
  it.skipIf(asRoot)(`says what to do, in one line, when the unit directory cannot be written${asRoot ? " (skipped: running as root, which may write anywhere)" : ""}`, async () => {
    const root = await makeRoot();
    const locked = await tempDir("relay-locked-");
    await chmod(locked, 0o500);
    const r = await runCli(["service", "install", "--unit-dir", join(locked, "units"), "--root", root]);
    await chmod(locked, 0o700);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(/cannot write .*run it with sudo, or use --user/);
  });
});

const analyze = spawnSync("sh", ["-c", "command -v systemd-analyze"], { encoding: "utf8" }).stdout.trim();
const noAnalyze = analyze === "" ? "systemd-analyze is not installed (Debian: apt-get install systemd)" : null;

describe.skipIf(noAnalyze !== null)(`the unit passes systemd-analyze verify${noAnalyze ? ` (skipped: ${noAnalyze})` : ""}`, () => {
  /** verify needs the file under its unit name; a user unit needs a runtime directory for the user manager. */
  async function verify(root: string, user: boolean, agent = false): Promise<{ status: number | null; output: string }> {
    const dir = await tempDir("relay-verify-");
    const runtime = await tempDir("relay-xdg-");
    const r = await runCli(["service", "install", ...(user ? ["--user"] : []), ...(agent ? ["--agent"] : []), "--unit-dir", dir, "--root", root]);
    expect(r.code).toBe(0);
    const path = join(dir, unitName(root, agent));
    const result = spawnSync(analyze, [...(user ? ["--user"] : []), "verify", path], {
      encoding: "utf8",
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", XDG_RUNTIME_DIR: runtime, SYSTEMD_LOG_LEVEL: "notice" },
    });
    return { status: result.status, output: `${result.stdout}${result.stderr}` };
  }

  it("as a system unit", async () => {
    const root = await makeRoot();
    const v = await verify(root, false);
    expect(v.output).not.toMatch(/relay-.*\.service:\d+/); // no warning about any line of ours
    expect(v.status).toBe(0);
  });

  it("as a user unit", async () => {
    const root = await makeRoot();
    const v = await verify(root, true);
    expect(v.output).not.toMatch(/relay-.*\.service:\d+/);
    expect(v.status).toBe(0);
  });

  it("the relay agent's unit (--agent --user)", async () => {
    const root = await makeRoot();
    const v = await verify(root, true, true);
    expect(v.output).not.toMatch(/relay-.*\.service:\d+/);
    expect(v.status).toBe(0);
  });

  it("with a root whose path has spaces and a %", async () => {
    const parent = await tempDir("relay-odd-");
    const root = join(parent, "my relay 100%");
    await mkdir(root);
    execFileSync("cp", [join(await makeRoot(), "config.yaml"), join(root, "config.yaml")]);
    const v = await verify(root, false);
    expect(v.output).not.toMatch(/\.service:\d+/);
    expect(v.status).toBe(0);
  });
});

/** A stand-in for a service manager's command on PATH: it records its arguments, one call a line, and exits `code`. */
async function fakeCommand(name: string, code = 0): Promise<{ path: string; calls: () => Promise<string[]> }> {
  const dir = await tempDir("relay-fake-bin-");
  const log = join(dir, "calls.log");
  await writeFile(join(dir, name), `#!/bin/sh\necho "$*" >> ${JSON.stringify(log)}\n${code === 0 ? "" : 'echo "Unit not loaded." >&2\n'}exit ${code}\n`, { mode: 0o755 });
  return { path: `${dir}:${process.env.PATH ?? "/usr/bin:/bin"}`, calls: async () => (await readFile(log, "utf8").catch(() => "")).split("\n").filter(Boolean) };
}

describe("relay service uninstall", () => {
  it("stops, disables and removes a user unit, then reloads systemd (each with --user)", async () => {
    const root = await makeRoot();
    const dir = await tempDir("relay-units-");
    expect((await runCli(["service", "install", "--user", "--unit-dir", dir, "--root", root])).code).toBe(0);
    const name = unitName(root);
    const systemctl = await fakeCommand("systemctl");
    const r = await runCli(["service", "uninstall", "--user", "--unit-dir", dir, "--root", root], { env: { PATH: systemctl.path } });
    expect(r.code, r.stderr).toBe(0);
    expect(await systemctl.calls()).toEqual([`--user stop ${name}`, `--user disable ${name}`, "--user daemon-reload"]);
    await expect(stat(join(dir, name))).rejects.toThrow();
    expect(r.stdout).toContain(`removed ${join(dir, name)}`);
    expect((await stat(join(root, "config.yaml"))).isFile()).toBe(true); // the root is never touched

    const again = await runCli(["service", "uninstall", "--user", "--unit-dir", dir, "--root", root], { env: { PATH: systemctl.path } });
    expect(again.code).toBe(0);
    expect(again.stdout).toContain("nothing to remove");
    expect(await systemctl.calls()).toHaveLength(3); // nothing asked of systemd the second time
  });

  it("removes the unit even when systemctl refuses (not loaded, no systemd), saying which step failed", async () => {
    const root = await makeRoot();
    const dir = await tempDir("relay-units-");
    expect((await runCli(["service", "install", "--unit-dir", dir, "--root", root])).code).toBe(0);
    const systemctl = await fakeCommand("systemctl", 5);
    const r = await runCli(["service", "uninstall", "--unit-dir", dir, "--root", root, "--json"], { env: { PATH: systemctl.path } });
    expect(r.code, r.stderr).toBe(0);
    const body = JSON.parse(r.stdout) as { removed: boolean; steps: { command: string; ok: boolean; detail?: string }[] };
    expect(body.removed).toBe(true);
    expect(body.steps.map((s) => [s.command, s.ok, s.detail])).toEqual([
      [`systemctl stop ${unitName(root)}`, false, "Unit not loaded."],
      [`systemctl disable ${unitName(root)}`, false, "Unit not loaded."],
      ["systemctl daemon-reload", false, "Unit not loaded."],
    ]);
    await expect(stat(join(dir, unitName(root)))).rejects.toThrow();
  });
});

describe("on macOS: a launchd agent", () => {
  it("install writes ~/Library/LaunchAgents/claude-code-relay.<name>.plist: a valid plist with the label, absolute node and relay, the root, KeepAlive, RunAtLoad and logs in the root's logs/", async () => {
    const root = await makeRoot();
    const home = await tempDir("relay-home-");
    const r = await runCli(["service", "install", "--platform", "darwin", "--root", root], { env: { HOME: home } });
    expect(r.code, r.stderr).toBe(0);
    const label = `claude-code-relay.${root.split("/").at(-1) ?? ""}`;
    const path = join(home, "Library", "LaunchAgents", `${label}.plist`);
    expect(r.stdout).toContain(`wrote ${path}`);
    expect(r.stdout).toContain(`launchctl bootstrap gui/$(id -u) ${path}`);
    const plist = parsePlist(await readFile(path, "utf8"));
    expect(plist).toEqual({
      Label: label,
      ProgramArguments: [process.execPath, BIN, "run", "--root", root],
      WorkingDirectory: root,
      RunAtLoad: true,
      KeepAlive: { SuccessfulExit: false },
      ThrottleInterval: 30,
      ExitTimeOut: 60,
      StandardOutPath: join(root, "logs", "launchd.out.log"),
      StandardErrorPath: join(root, "logs", "launchd.err.log"),
    });
    const printed = await runCli(["service", "print", "--platform", "darwin", "--root", root]);
    expect(await readFile(path, "utf8")).toBe(`${printed.stdout.trimEnd()}\n`);
  });

  it("with --agent, an agent that runs relay agent, labelled claude-code-relay.agent.<name>", async () => {
    const root = await makeRoot();
    const home = await tempDir("relay-home-");
    const r = await runCli(["service", "install", "--agent", "--platform", "darwin", "--root", root], { env: { HOME: home } });
    expect(r.code, r.stderr).toBe(0);
    const label = `claude-code-relay.agent.${root.split("/").at(-1) ?? ""}`;
    const plist = parsePlist(await readFile(join(home, "Library", "LaunchAgents", `${label}.plist`), "utf8"));
    expect(plist).toMatchObject({ Label: label, ProgramArguments: [process.execPath, BIN, "agent", "--root", root], WorkingDirectory: root });
  });

  it("escapes what XML would misread in a path", async () => {
    const parent = await tempDir("relay-odd-");
    const root = join(parent, "a&b <c>");
    await mkdir(root);
    const r = await runCli(["service", "print", "--platform", "darwin", "--root", root]);
    expect(r.code, r.stderr).toBe(0);
    const plist = parsePlist(r.stdout) as { WorkingDirectory: string; ProgramArguments: string[] };
    expect(plist.WorkingDirectory).toBe(root);
    expect(plist.ProgramArguments.at(-1)).toBe(root);
  });

  it("uninstall boots the agent out and removes its plist", async () => {
    const root = await makeRoot();
    const home = await tempDir("relay-home-");
    expect((await runCli(["service", "install", "--platform", "darwin", "--root", root], { env: { HOME: home } })).code).toBe(0);
    const launchctl = await fakeCommand("launchctl");
    const r = await runCli(["service", "uninstall", "--platform", "darwin", "--root", root], { env: { HOME: home, PATH: launchctl.path } });
    expect(r.code, r.stderr).toBe(0);
    const label = `claude-code-relay.${root.split("/").at(-1) ?? ""}`;
    expect(await launchctl.calls()).toEqual([`bootout gui/${process.getuid?.() ?? 501}/${label}`]);
    expect(await readdir(join(home, "Library", "LaunchAgents"))).toEqual([]);
  });

  it("the reader of these tests refuses a malformed plist", () => {
    expect(() => parsePlist('<plist version="1.0"><dict><key>A</key><string>x</string></plist>')).toThrow();
    expect(() => parsePlist('<plist version="1.0"><dict><key>A</key><string>a & b</string></dict></plist>')).toThrow();
  });
});
