// `relay init [DIR]` (CONTRACT §2, §9): a ready root that only ever adds, from the real CLI; and
// `relay run --dry-run` turns that never reach the real conversation.
import { spawn } from "node:child_process";
import { readdir, readFile, rm, stat, utimes } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { NTFY_TOPIC } from "../../src/config/config.js";
import { BIN, bodyOf, childEnv, inputPath, killAll, makeRoot, readHistory, removeRoots, REPO_ROOT, runCli, Scope, waitFor, waitForFile } from "../support/cli.js";

afterAll(async () => {
  await killAll();
  await removeRoots();
});

const mode = async (path: string): Promise<number> => (await stat(path)).mode & 0o777;
const envLines = async (root: string): Promise<string[]> => (await readFile(join(root, ".env"), "utf8")).split("\n");
const envValue = (lines: string[], key: string): string | undefined => lines.find((l) => l.startsWith(`${key}=`))?.slice(key.length + 1);

/** Every file under `dir` with its content and mtime, to show that a run changed nothing. */
async function tree(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of await readdir(dir, { recursive: true })) {
    const path = join(dir, name);
    const st = await stat(path);
    out[name] = st.isDirectory() ? `dir ${st.mtimeMs}` : `${await readFile(path, "utf8")} @${st.mtimeMs}`;
  }
  return out;
}

describe("relay init", () => {
  it("makes DIR a ready root: commented config.yaml, .env 0600 with both topics, the directories; prints the ntfy URLs and the next commands", async () => {
    const root = join(await makeRoot({ config: null }), "relay");
    const r = await runCli(["init", root]);
    expect(r.code, r.stderr).toBe(0);
    expect(await readFile(join(root, "config.yaml"), "utf8")).toBe(await readFile(join(REPO_ROOT, "config.yaml"), "utf8"));
    for (const dir of ["queue", "queue/.rejected", "dispatch", "state", "logs"]) expect((await stat(join(root, dir))).isDirectory(), dir).toBe(true);
    expect(await mode(join(root, ".env"))).toBe(0o600);
    const lines = await envLines(root);
    const topic = envValue(lines, "NTFY_TOPIC") ?? "";
    const reply = envValue(lines, "NTFY_REPLY_TOPIC") ?? "";
    expect(topic).toMatch(NTFY_TOPIC);
    expect(reply).toMatch(NTFY_TOPIC);
    expect(topic).not.toBe(reply);
    expect(r.stdout).toContain(`https://ntfy.sh/${topic}`);
    expect(r.stdout).toContain(`https://ntfy.sh/${reply}`);
    expect(r.stdout).toContain(`relay run --dry-run --root ${root}`);
    expect(r.stdout).toContain(`relay doctor --root ${root}`);
    expect(r.stdout).toMatch(/key: +not set yet/); // stdin is not a terminal and no --key-from-env: nothing asked
    expect(envValue(lines, "ANTHROPIC_API_KEY")).toBeUndefined();
  });

  it("on a root that is already ready changes nothing, exits 0 and says so", async () => {
    const root = await makeRoot({ config: null });
    expect((await runCli(["init", root])).code).toBe(0);
    // config.yaml a minute old: old enough that a command reading it may keep its parsed copy in
    // state/ (state/config.cache.json), which init, changing nothing, must not
    const aMinuteAgo = new Date(Date.now() - 60_000);
    await utimes(join(root, "config.yaml"), aMinuteAgo, aMinuteAgo);
    const before = await tree(root);
    const again = await runCli(["init", root, "--json"]);
    expect(again.code, again.stderr).toBe(0);
    const body = JSON.parse(again.stdout) as { ready: boolean; created: string[] };
    expect(body.ready).toBe(true);
    expect(body.created).toEqual([]);
    const human = await runCli(["init", root]);
    expect(human.stdout.split("\n")[0]).toBe(`${root} is already a relay root: nothing changed`);
    expect(await tree(root)).toEqual(before);
  });

  it("never overwrites: an existing config.yaml, .env lines, topic and key are kept; only what is missing is added", async () => {
    const root = await makeRoot({ config: "model: claude-haiku-4-5\n# mine\n", dotenv: "# my notes\nNTFY_TOPIC=my-own-topic-of-22-chars-x\nANTHROPIC_API_KEY=sk-ant-mine\nNTFY_SERVER=http://127.0.0.1:9\n" });
    const r = await runCli(["init", "--json", "--key-from-env"], { env: { RELAY_ROOT: root, ANTHROPIC_API_KEY: "sk-ant-other" } });
    expect(r.code, r.stderr).toBe(0);
    expect(await readFile(join(root, "config.yaml"), "utf8")).toBe("model: claude-haiku-4-5\n# mine\n");
    const lines = await envLines(root);
    expect(lines.slice(0, 4)).toEqual(["# my notes", "NTFY_TOPIC=my-own-topic-of-22-chars-x", "ANTHROPIC_API_KEY=sk-ant-mine", "NTFY_SERVER=http://127.0.0.1:9"]);
    expect(envValue(lines, "NTFY_REPLY_TOPIC")).toMatch(NTFY_TOPIC);
    const body = JSON.parse(r.stdout) as { created: string[]; kept: string[]; key: string; topicUrl: string; warnings: string[] };
    expect(body.kept).toEqual(expect.arrayContaining(["config.yaml", ".env", ".env:NTFY_TOPIC", ".env:ANTHROPIC_API_KEY"]));
    expect(body.created).toEqual(expect.arrayContaining([".env:NTFY_REPLY_TOPIC", "queue", "state"]));
    expect(body.key).toBe("kept");
    expect(body.warnings.join("\n")).toMatch(/kept the key already in .*never overwrites/);
    // config.yaml is not valid for run (no prompts): said, not fixed; the URL still comes from .env's server
    expect(body.warnings.join("\n")).toMatch(/config\.yaml: .*fix it before relay run/);
    expect(body.topicUrl).toBe("http://127.0.0.1:9/my-own-topic-of-22-chars-x");
  });

  it("--key-from-env saves $ANTHROPIC_API_KEY into .env (filling the placeholder line), and refuses with exit 2 when it is not set", async () => {
    const root = await makeRoot({ config: null, dotenv: "ANTHROPIC_API_KEY=sk-ant-...\n" });
    const r = await runCli(["init", root, "--key-from-env"], { env: { ANTHROPIC_API_KEY: "sk-ant-from-env" } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).not.toContain("sk-ant-from-env");
    const lines = await envLines(root);
    expect(lines[0]).toBe("ANTHROPIC_API_KEY=sk-ant-from-env");
    expect(lines.filter((l) => l.startsWith("ANTHROPIC_API_KEY="))).toHaveLength(1);
    expect(await mode(join(root, ".env"))).toBe(0o600);

    const other = join(await makeRoot({ config: null }), "r");
    const missing = await runCli(["init", other, "--key-from-env"]);
    expect(missing.code).toBe(2);
    expect(missing.stderr.trim().split("\n")).toEqual(["relay: --key-from-env: ANTHROPIC_API_KEY is not set in the environment"]);
    await expect(stat(other)).rejects.toThrow(); // refused before anything was made
  });

  it("in a terminal asks for the key without echoing it, and saves it to .env", async () => {
    const root = join(await makeRoot({ config: null }), "tty");
    const key = "sk-ant-typed-at-the-prompt";
    // `script` gives the CLI a pseudo-terminal (util-linux; on macOS its arguments differ).
    const child = spawn("script", ["-qec", `${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)} init ${JSON.stringify(root)}`, "/dev/null"], {
      env: await childEnv(),
      stdio: ["pipe", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
    const exited = new Promise<number | null>((resolveExit) => child.on("close", resolveExit));
    try {
      await waitFor(() => out.includes("input hidden"), { what: "the key prompt", timeoutMs: 30_000 });
      const prompted = out.length;
      child.stdin.write(`${key}\r`);
      expect(await exited).toBe(0);
      expect(out.slice(prompted)).not.toContain(key);
      expect(out).toMatch(/key: +saved in/);
      expect(envValue(await envLines(root), "ANTHROPIC_API_KEY")).toBe(key);
    } finally {
      child.kill("SIGKILL");
    }
  }, 60_000);
});

describe("relay run --dry-run", () => {
  it("keeps its turns in a history of their own: a later real run never sends them to the model", async (ctx) => {
    const scope = await Scope.create(ctx);
    const root = await makeRoot({ config: null });
    expect((await runCli(["init", root])).code).toBe(0);
    // one of the seeded config's sessions
    const config = await readFile(join(root, "config.yaml"), "utf8");
    const session = /^\s+- id: (\S+)/m.exec(config)?.[1] ?? "session-1";

    const dry = await scope.start(root, { ANTHROPIC_API_KEY: undefined }, ["--dry-run"]);
    expect((await runCli(["send", "--root", root, "--session", session, "DRY-RUN-TEXT: trying it out"])).code).toBe(0);
    expect(await waitForFile(inputPath(root, session), 30_000)).toMatch(/^\[relay dry-run\]/);
    await rm(inputPath(root, session));
    dry.child.kill("SIGTERM");
    expect((await dry.exited).code).toBe(0);
    expect(scope.fake.requests).toHaveLength(0);
    const dryHistory = await readdir(join(root, "state", "dry-run", "history"));
    expect(dryHistory.length).toBeGreaterThan(0);
    expect(await readHistory(root)).toEqual({}); // state/history/ holds no dry-run turn

    await scope.start(root);
    expect((await runCli(["send", "--root", root, "--session", session, "REAL-TEXT: the first real message"], { env: scope.vars() })).code).toBe(0);
    await waitFor(() => scope.fake.requests.length > 0, { what: "the real call", timeoutMs: 30_000 });
    const sent = JSON.stringify(bodyOf(scope.fake.requests[0]).messages);
    expect(sent).toContain("REAL-TEXT");
    expect(sent).not.toContain("DRY-RUN-TEXT");
    expect(sent).not.toContain("[relay dry-run]");
    await waitForFile(inputPath(root, session), 30_000);
    const history = JSON.stringify(await readHistory(root));
    expect(history).toContain("REAL-TEXT");
    expect(history).not.toContain("DRY-RUN-TEXT");
  }, 120_000);
});
