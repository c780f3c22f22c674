// `relay send` (CONTRACT §5, §9): the envelope carries an id, printed on stdout; with --wait
// [SECONDS], stdout is only the reply to that envelope, which is then acknowledged, and a reply to
// another envelope is left alone. No daemon here: the test plays the relay, writing
// dispatch/<session>/input.json and then input.txt the way the relay does.
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { type CliResult, exists, inputPath, killAll, makeRoot, queueNames, relayVars, removeRoots, runCli, settle, spawnCli, waitFor } from "../support/cli.js";
import { setTimeout as sleep } from "node:timers/promises";
import { relayPaths } from "../../src/config/paths.js";
import { writeStatusFile } from "../support/daemon-status.js";

afterAll(async () => {
  await killAll();
  await removeRoots();
});

const vars = () => relayVars(null, null, { ANTHROPIC_BASE_URL: "http://127.0.0.1:9", NTFY_SERVER: "http://127.0.0.1:9" });
const send = (root: string, args: string[], opts: { input?: string; timeoutMs?: number } = {}) => runCli(["send", "--root", root, ...args], { env: vars(), ...opts });

/** The relay's side of a delivery: input.json first, then input.txt, each written atomically. */
async function deliver(root: string, session: string, inReplyTo: string | null, text: string): Promise<void> {
  const dir = join(root, "dispatch", session);
  await mkdir(dir, { recursive: true });
  const meta = { reply_id: `r-${Math.random().toString(36).slice(2)}`, in_reply_to: inReplyTo, source: "envelope", at: new Date().toISOString() };
  await writeFile(join(dir, ".input.json.tmp"), JSON.stringify(meta));
  await rename(join(dir, ".input.json.tmp"), join(dir, "input.json"));
  await writeFile(join(dir, ".input.txt.tmp"), text);
  await rename(join(dir, ".input.txt.tmp"), join(dir, "input.txt"));
}

async function envelopes(root: string): Promise<Record<string, unknown>[]> {
  const names = await queueNames(root);
  return Promise.all(names.map(async (n) => JSON.parse(await readFile(join(root, "queue", n), "utf8")) as Record<string, unknown>));
}

/** Wait until the sender has dropped its envelope (so it is now waiting for the reply). */
const dropped = (root: string) => waitFor(async () => (await queueNames(root)).length > 0, { what: "the envelope in queue/" });

/** stderr's lines but send's warning that no relay holds the lock (these tests write the replies themselves). */
const withoutNoRelayWarning = (stderr: string): string[] =>
  stderr
    .trim()
    .split("\n")
    .filter((l) => !l.startsWith("relay: warning: no relay is running"));

function oneLineFailure(r: CliResult): string {
  expect(r.signal).toBeNull();
  expect(r.code).not.toBe(0);
  const lines = r.stderr.trim().split("\n");
  expect(lines, r.stderr).toHaveLength(1);
  return lines[0] ?? "";
}

describe.concurrent("relay send", () => {
  it("prints the envelope's fresh id, and the envelope carries it", async () => {
    const root = await makeRoot();
    const r = await send(root, ["--session", "session-1", "hello"]);
    expect(r.code, r.stderr).toBe(0);
    const id = r.stdout.trim();
    expect(id).toMatch(/^send-[0-9a-z]+-[0-9a-f]{8}$/);
    expect(r.stdout).toBe(`${id}\n`);
    expect(await envelopes(root)).toEqual([{ session_id: "session-1", id, timestamp: expect.any(String) as unknown, content: "hello" }]);
  });

  it("reads TEXT from standard input to its end, however slowly it comes (oclif's own 10 ms read of stdin is off)", async () => {
    const root = await makeRoot();
    const d = await spawnCli(["send", "--root", root, "--session", "session-1"], vars());
    d.child.stdin?.write("first line\n");
    await sleep(400);
    d.child.stdin?.end("second line, 400 ms later");
    expect(await d.exited).toEqual({ code: 0, signal: null });
    const id = d.stdout().trim();
    expect(await envelopes(root)).toEqual([{ session_id: "session-1", id, timestamp: expect.any(String) as unknown, content: "first line\nsecond line, 400 ms later" }]);
  });

  it("uses the id given with --id", async () => {
    const root = await makeRoot();
    const r = await send(root, ["--session", "session-1", "--id", "s1-0042:a.b_c", "hello"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe("s1-0042:a.b_c\n");
    expect((await envelopes(root))[0]?.id).toBe("s1-0042:a.b_c");
  });

  for (const bad of ["-starts-with-dash", "has space", "slash/inside", "x".repeat(129)]) {
    it(`refuses --id ${JSON.stringify(bad.slice(0, 20))} with one line and a non-zero exit, writing nothing`, async () => {
      const root = await makeRoot();
      const line = oneLineFailure(await send(root, ["--session", "session-1", `--id=${bad}`, "hello"]));
      expect(line).toMatch(/\bid\b/);
      expect(await queueNames(root)).toEqual([]);
    });
  }

  it("--wait SECONDS prints only the reply to its envelope on stdout (the id on stderr) and acknowledges it", async () => {
    const root = await makeRoot();
    const running = send(root, ["--session", "session-1", "--id", "mine-1", "--wait", "30", "are you there?"]);
    await dropped(root);
    await settle(2);
    await deliver(root, "session-1", "mine-1", "Yes, carry on.\nSecond line.");
    const r = await running;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe("Yes, carry on.\nSecond line.\n");
    expect(withoutNoRelayWarning(r.stderr)).toEqual(["mine-1"]); // no relay runs here: the test writes the replies
    expect(await exists(inputPath(root, "session-1"))).toBe(false);
    expect((await envelopes(root))[0]?.content).toBe("are you there?");
  });

  it("--wait with no value waits (default timeout) and still takes TEXT as the message", async () => {
    const root = await makeRoot();
    const running = send(root, ["--session", "session-1", "--id", "mine-2", "--wait", "just text"]);
    await dropped(root);
    await deliver(root, "session-1", "mine-2", "got it");
    const r = await running;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe("got it\n");
    expect((await envelopes(root))[0]?.content).toBe("just text");
  });

  it("--wait leaves a reply to another envelope alone and keeps waiting for its own", async () => {
    const root = await makeRoot();
    await deliver(root, "session-1", "someone-else", "not yours");
    const running = send(root, ["--session", "session-1", "--id", "mine-3", "--wait=30", "mine"]);
    await dropped(root);
    await settle(5);
    expect(await readFile(inputPath(root, "session-1"), "utf8")).toBe("not yours");
    // The other reply's reader acknowledges it; then the relay delivers ours.
    await rename(inputPath(root, "session-1"), join(root, "taken-by-other.txt"));
    await deliver(root, "session-1", "mine-3", "yours");
    const r = await running;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe("yours\n");
    expect(await readFile(join(root, "taken-by-other.txt"), "utf8")).toBe("not yours");
  });

  it("--wait times out with one line and a non-zero exit, leaving another envelope's reply in place", async () => {
    const root = await makeRoot();
    await deliver(root, "session-1", "someone-else", "not yours");
    const r = await send(root, ["--session", "session-1", "--id", "mine-4", "--wait", "1", "anyone?"]);
    expect(r.code).not.toBe(0);
    expect(r.signal).toBeNull();
    expect(r.stdout).toBe("");
    const lines = withoutNoRelayWarning(r.stderr);
    expect(lines[0]).toBe("mine-4");
    expect(lines.slice(1)).toHaveLength(1);
    expect(lines[1]).toMatch(/no reply to mine-4 within 1 s/);
    expect(await readFile(inputPath(root, "session-1"), "utf8")).toBe("not yours");
  });

  it("--wait --json times out with {\"error\": ...} on stdout", async () => {
    const root = await makeRoot();
    const r = await send(root, ["--session", "session-1", "--id", "mine-5", "--wait", "1", "--json", "anyone?"]);
    expect(r.code).not.toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ error: expect.stringMatching(/no reply to mine-5/) as unknown });
  });

  it("--wait --json prints the id, the file and the reply as one object", async () => {
    const root = await makeRoot();
    const running = send(root, ["--session", "session-1", "--id", "mine-6", "--json", "--wait", "30", "hi"]);
    await dropped(root);
    await deliver(root, "session-1", "mine-6", "hello back");
    const r = await running;
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ id: "mine-6", file: expect.stringMatching(/\.json$/) as unknown, reply: "hello back" });
  });

  it("--wait keeps waiting while the relay asks JC a question in that conversation, saying so once on stderr", async () => {
    const root = await makeRoot();
    await mkdir(join(root, "state"));
    await writeStatusFile(relayPaths(root), { openQuestions: [{ id: "q-1", session: "session-1", question: "[NEEDS-JC] which plan?" }] });
    const running = await spawnCli(["send", "--root", root, "--session", "session-2", "--id", "mine-7", "--wait", "30", "and now?"], vars());
    running.child.stdin?.end("");
    await dropped(root);
    // The reply comes once send has seen the question (a reply already there when it first looks is taken at once, with no note).
    await waitFor(() => running.stderr().includes("q-1") || !running.alive(), { what: "send's note of the open question" });
    await settle(5); // still waiting, and saying so only once
    await deliver(root, "session-2", "mine-7", "plan B, says JC");
    const exit = await running.exited;
    expect(exit.code, running.stderr()).toBe(0);
    expect(running.stdout()).toBe("plan B, says JC\n");
    const notes = running.stderr().split("\n").filter((l) => l.includes("q-1"));
    expect(notes).toHaveLength(1);
  });
});
