// `relay history`: the conversations as the relay recorded them, from the real CLI.
import { afterAll, describe, expect, it } from "vitest";
import { configYaml, killAll, makeRoot, removeRoots, runCli, Scope } from "../support/cli.js";

afterAll(async () => {
  await killAll();
  await removeRoots();
});

describe("relay history", () => {
  it("prints each turn with who wrote it and chat-Claude's reply, per session, as text and JSON", async (ctx) => {
    const scope = await Scope.create(ctx);
    scope.fake.setResponder((req) => `Reviewer answers: ${req.lastUserText.includes("parser") ? "test the parser" : "fine"}`);
    const root = await makeRoot({ config: configYaml({ sessions: ["session-1", "session-2"] }) });
    await scope.start(root);
    for (const [session, text] of [
      ["session-1", "I wrote the parser."],
      ["session-2", "Docs updated."],
      ["session-1", "Parser tests added."],
    ] as const) {
      const sent = await runCli(["send", "--root", root, "--session", session, "--wait", "30", text], { env: scope.vars() });
      expect(sent.code, sent.stderr).toBe(0);
    }

    const json = await runCli(["history", "--root", root, "--session", "session-1", "--json"]);
    expect(json.code, json.stderr).toBe(0);
    const { entries } = JSON.parse(json.stdout) as { entries: { session: string; from: string; text: string; reply: string; kind: string }[] };
    expect(entries.map((e) => [e.kind, e.session, e.from])).toEqual([
      ["turn", "session-1", "agent"],
      ["turn", "session-1", "agent"],
    ]);
    expect(entries[0]?.text).toBe("I wrote the parser.");
    expect(entries[0]?.reply).toBe("Reviewer answers: test the parser");

    const last = await runCli(["history", "--root", root, "--last", "1"]);
    expect(last.code).toBe(0);
    expect(last.stdout).toContain("Parser tests added.");
    expect(last.stdout).toContain("chat-Claude:");
    expect(last.stdout).not.toContain("I wrote the parser.");
  }, 120_000);

  it("says so on a directory that is not a relay root", async () => {
    const dir = await makeRoot({ config: null });
    const res = await runCli(["history", "--root", dir]);
    expect(res.code).toBe(2);
    expect(res.stderr).toContain("is not a relay root (no config.yaml)");
  });
});
