// Configuration and CLI input at the edge (CONTRACT §3, §9): a bad value stops `relay run` with
// one line before it touches anything; `relay topic` persists the topic; bad input is one line.
import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { type CliResult, configYaml, killAll, makeRoot, queueNames, relayVars, runCli, secretsCheck, TEST_KEY } from "../support/cli.js";

// No daemon stays up here and nothing is sent: the servers are URLs nobody listens on (port 9,
// discard), and the one-shot commands run concurrently. killAll is the backstop.
afterAll(killAll);
const NTFY = "http://127.0.0.1:9";
const vars = (extra: Record<string, string | undefined> = {}) =>
  relayVars(null, null, { ANTHROPIC_BASE_URL: "http://127.0.0.1:9", NTFY_SERVER: NTFY, ...extra });

/** Exited non-zero (not killed) with exactly one line on stderr; returns that line. */
function oneLineFailure(r: CliResult): string {
  expect(r.signal).toBeNull();
  expect(r.code).not.toBe(0);
  const lines = r.stderr.trim().split("\n");
  expect(lines, r.stderr).toHaveLength(1);
  return lines[0] ?? "";
}

const listing = async (root: string) => (await readdir(root)).sort();

describe.concurrent("config errors", () => {
  it("stops `relay run` on malformed YAML with one line naming config.yaml, and creates nothing", async () => {
    const root = await makeRoot({ config: "model: claude-sonnet-4-6\nsessions: [\n  - id: session-1\n" });
    const line = oneLineFailure(await runCli(["run", "--root", root], { env: vars() }));
    expect(line).toContain("config.yaml");
    expect(line).toMatch(/YAML/);
    expect(await listing(root)).toEqual(["config.yaml"]);
  });

  it("stops `relay run` on a non-numeric HISTORY_CHAR_CAP in .env with one line naming .env, the key and the expectation, and creates nothing", async () => {
    const root = await makeRoot({ dotenv: "HISTORY_CHAR_CAP=lots\n" });
    const line = oneLineFailure(await runCli(["run", "--root", root], { env: vars() }));
    expect(line).toContain(".env");
    expect(line).toContain("HISTORY_CHAR_CAP");
    expect(line).toMatch(/number/);
    expect(await listing(root)).toEqual([".env", "config.yaml"]);
    expect(await readFile(join(root, ".env"), "utf8")).toBe("HISTORY_CHAR_CAP=lots\n");
  });

  it("stops `relay run` on an unknown model format with one line naming config.yaml, model and the expectation, and creates nothing", async () => {
    const root = await makeRoot({ config: configYaml({ model: "gpt-4o" }) });
    const line = oneLineFailure(await runCli(["run", "--root", root], { env: vars() }));
    expect(line).toContain("config.yaml");
    expect(line).toContain("model");
    expect(line).toMatch(/model id/i);
    expect(await listing(root)).toEqual(["config.yaml"]);
  });

  it("stops `relay run` on a value of the wrong type with one line in zod's English words (zod/mini registers no locale of its own), and creates nothing", async () => {
    const root = await makeRoot({ config: configYaml().replace("keep_recent_turns: 10", 'keep_recent_turns: "ten"') });
    const line = oneLineFailure(await runCli(["run", "--root", root], { env: vars() }));
    expect(line).toBe("relay: config.yaml: keep_recent_turns: Invalid input: expected number, received string");
    expect(await listing(root)).toEqual(["config.yaml"]);
  });

  it("stops `relay run` without ANTHROPIC_API_KEY (and no --dry-run) with one line naming the variable, and creates no queue/", async () => {
    const root = await makeRoot();
    const line = oneLineFailure(await runCli(["run", "--root", root], { env: vars({ ANTHROPIC_API_KEY: undefined }) }));
    expect(line).toContain("ANTHROPIC_API_KEY");
    expect(await listing(root)).toEqual(["config.yaml"]);
  });
});

describe.concurrent("relay topic", () => {
  it("generates a topic into .env keeping its other lines intact, and prints the same URL on a second call", async () => {
    const original = `# my settings\nFOO=bar\nexport BAZ='qux quux'\n\nANTHROPIC_API_KEY=${TEST_KEY}\n`;
    const root = await makeRoot({ dotenv: original });
    const noKey = vars({ ANTHROPIC_API_KEY: undefined });

    const first = await runCli(["topic", "--root", root], { env: noKey });
    expect(first.code).toBe(0);
    const url = first.stdout.trim();
    expect(url.startsWith(`${NTFY}/`)).toBe(true);
    const topic = url.slice(NTFY.length + 1);
    expect(topic).toMatch(/^[A-Za-z0-9_-]{22,64}$/);

    const env = await readFile(join(root, ".env"), "utf8");
    expect(env.startsWith(original)).toBe(true);
    const added = env.slice(original.length).split("\n").filter((l) => l !== "");
    expect(added).toContain(`NTFY_TOPIC=${topic}`);
    for (const line of added) expect(line).toMatch(/^NTFY_[A-Z_]+=[A-Za-z0-9_-]{22,64}$/);

    const second = await runCli(["topic", "--root", root], { env: noKey });
    expect(second.code).toBe(0);
    expect(second.stdout.trim()).toBe(url);
    expect(await readFile(join(root, ".env"), "utf8")).toBe(env);
  });

  it("creates .env with mode 0600 when there is none", async () => {
    const root = await makeRoot();
    const r = await runCli(["topic", "--root", root], { env: vars() });
    expect(r.code).toBe(0);
    expect((await stat(join(root, ".env"))).mode & 0o777).toBe(0o600);
    expect(await readFile(join(root, ".env"), "utf8")).toMatch(/^NTFY_TOPIC=[A-Za-z0-9_-]{22,64}$/m);
    // Two roots, two topics: it is generated, not a constant.
    const other = await makeRoot();
    const r2 = await runCli(["topic", "--root", other], { env: vars() });
    expect(r2.stdout.trim()).not.toBe(r.stdout.trim());
  });
});

describe.concurrent("bad CLI input", () => {
  it("refuses `relay send` to an unknown session with one line, writing nothing to queue/", async () => {
    const root = await makeRoot();
    const line = oneLineFailure(await runCli(["send", "--root", root, "--session", "session-9", "hello"], { env: vars() }));
    expect(line).toContain("session-9");
    expect(await queueNames(root)).toEqual([]);
  });

  it("refuses `relay send` with empty text with one line, writing nothing to queue/", async () => {
    const root = await makeRoot();
    const line = oneLineFailure(await runCli(["send", "--root", root, "--session", "session-1", ""], { env: vars() }));
    expect(line).toMatch(/empty/);
    const viaStdin = oneLineFailure(await runCli(["send", "--root", root, "--session", "session-1"], { env: vars(), input: "  \n" }));
    expect(viaStdin).toMatch(/empty/);
    expect(await queueNames(root)).toEqual([]);
  });

  it("refuses `relay send` without --session with one line", async () => {
    const root = await makeRoot();
    const line = oneLineFailure(await runCli(["send", "--root", root, "hello"], { env: vars() }));
    expect(line).toContain("session");
    expect(await queueNames(root)).toEqual([]);
  });

  it("refuses `relay jc` without TEXT with one line", async () => {
    const root = await makeRoot();
    oneLineFailure(await runCli(["jc", "--root", root], { env: vars() }));
  });

  it("refuses an unknown flag with one line", async () => {
    const root = await makeRoot();
    const line = oneLineFailure(await runCli(["status", "--root", root, "--bogus"], { env: vars() }));
    expect(line).toContain("--bogus");
  });

  it("refuses an unexpected argument with one line, --json or not", async () => {
    const root = await makeRoot();
    const r = await runCli(["status", "--root", root, "--json", "extra"], { env: vars() });
    expect(r.code).not.toBe(0);
    expect(r.signal).toBeNull();
    const lines = `${r.stdout}\n${r.stderr}`.split("\n").filter((l) => l.trim() !== "");
    expect(lines.length, `${lines.length} lines: ${lines.slice(0, 3).join(" | ")}`).toBe(1);
    expect(lines[0]).toContain("extra");
  });

  it("refuses `relay jc` to an unknown @session with one line, writing no state/jc_input.txt", async () => {
    const root = await makeRoot();
    const line = oneLineFailure(await runCli(["jc", "--root", root, "@nobody: do it"], { env: vars() }));
    expect(line).toContain("nobody");
    expect(await readdir(join(root, "state")).catch(() => [])).not.toContain("jc_input.txt");
  });
});

secretsCheck();
