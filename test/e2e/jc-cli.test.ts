// `relay jc [--session ID | --question QID] TEXT` (CONTRACT §6, §9): the flags write the JSON
// forms of state/jc_input.txt; plain text while several questions are open is refused, listing
// them. No daemon here: open questions come from a hand-written state/status.json.
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { type CliResult, exists, killAll, makeRoot, relayVars, removeRoots, runCli } from "../support/cli.js";
import { relayPaths } from "../../src/config/paths.js";
import { writeStatusFile } from "../support/daemon-status.js";

afterAll(async () => {
  await killAll();
  await removeRoots();
});

const vars = () => relayVars(null, null, { ANTHROPIC_BASE_URL: "http://127.0.0.1:9", NTFY_SERVER: "http://127.0.0.1:9" });
const jc = (root: string, args: string[]) => runCli(["jc", "--root", root, ...args], { env: vars() });
const jcInput = (root: string) => join(root, "state", "jc_input.txt");
const written = async (root: string): Promise<unknown> => JSON.parse(await readFile(jcInput(root), "utf8")) as unknown;

function oneLineFailure(r: CliResult): string {
  expect(r.signal).toBeNull();
  expect(r.code).not.toBe(0);
  const lines = r.stderr.trim().split("\n");
  expect(lines, r.stderr).toHaveLength(1);
  return lines[0] ?? "";
}

const twoOpen = [
  { id: "q-1", session: "session-1", question: "[NEEDS-JC] Should the migration run before or after the deploy window on Friday night?" },
  { id: "q-2", session: "session-2", conversation: "session-2", question: "[NEEDS-JC] which name?" },
];

/** state/status.json with these questions open, as the daemon would write it. */
async function withOpenQuestions(root: string, questions: typeof twoOpen): Promise<void> {
  await mkdir(join(root, "state"), { recursive: true });
  await writeStatusFile(relayPaths(root), { openQuestions: questions });
}

describe.concurrent("relay jc", () => {
  it('--question QID writes {"text", "question"} to state/jc_input.txt', async () => {
    const root = await makeRoot();
    const r = await jc(root, ["--question", "q-1", "after the window"]);
    expect(r.code, r.stderr).toBe(0);
    expect(await written(root)).toEqual({ text: "after the window", question: "q-1" });
  });

  it('--session ID writes {"text", "session"} to state/jc_input.txt', async () => {
    const root = await makeRoot();
    const r = await jc(root, ["--session", "session-2", "how is it going?"]);
    expect(r.code, r.stderr).toBe(0);
    expect(await written(root)).toEqual({ text: "how is it going?", session: "session-2" });
  });

  it("--session with a session not in config.yaml is refused with one line, writing nothing", async () => {
    const root = await makeRoot();
    const line = oneLineFailure(await jc(root, ["--session", "session-9", "hello"]));
    expect(line).toContain("session-9");
    expect(await exists(jcInput(root))).toBe(false);
  });

  it("--session and --question together are a usage error, writing nothing", async () => {
    const root = await makeRoot();
    oneLineFailure(await jc(root, ["--session", "session-1", "--question", "q-1", "hello"]));
    expect(await exists(jcInput(root))).toBe(false);
  });

  it("plain text while two questions are open is refused with one line listing them and how to pick one", async () => {
    const root = await makeRoot();
    await withOpenQuestions(root, twoOpen);
    const line = oneLineFailure(await jc(root, ["yes, go ahead"]));
    expect(line).toContain("q-1 (session-1: ");
    expect(line).toContain("q-2 (session-2: ");
    expect(line).toContain('"[NEEDS-JC] Should the migration run before or after the depl…"'); // the first 60 characters
    expect(line).not.toContain("Friday night");
    expect(line).toContain("--question ID");
    expect(await exists(jcInput(root))).toBe(false);
  });

  it("plain text with one open question is taken (it answers that question)", async () => {
    const root = await makeRoot();
    await withOpenQuestions(root, twoOpen.slice(0, 1));
    const r = await jc(root, ["yes, go ahead"]);
    expect(r.code, r.stderr).toBe(0);
    expect(await readFile(jcInput(root), "utf8")).toBe("yes, go ahead\n");
  });

  it("`@session:` text and --question are taken while two questions are open", async () => {
    const direct = await makeRoot();
    await withOpenQuestions(direct, twoOpen);
    expect((await jc(direct, ["@session-1: run it after"])).code).toBe(0);
    expect(await readFile(jcInput(direct), "utf8")).toBe("@session-1: run it after\n");
    const answer = await makeRoot();
    await withOpenQuestions(answer, twoOpen);
    expect((await jc(answer, ["--question", "q-2", "call it relay"])).code).toBe(0);
    expect(await written(answer)).toEqual({ text: "call it relay", question: "q-2" });
  });

  it("never overwrites an earlier answer the relay has not read: it waits, then gives up with one line", async () => {
    const root = await makeRoot();
    await jc(root, ["first answer"]);
    const line = oneLineFailure(await jc(root, ["second answer"]));
    expect(line).toMatch(/not been read yet/);
    expect(await readFile(jcInput(root), "utf8")).toBe("first answer\n");
  });

  it("a JSON answer that is not valid is refused with its reason, writing nothing", async () => {
    const root = await makeRoot();
    const line = oneLineFailure(await jc(root, ['{"direct": true, "text": "x"}']));
    expect(line).toMatch(/direct requires a session/);
    expect(await exists(jcInput(root))).toBe(false);
  });
});
