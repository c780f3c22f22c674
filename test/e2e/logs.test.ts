// `relay logs`: logs/relay.jsonl, readably, from the real CLI.
import { appendFile, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { killAll, makeRoot, removeRoots, runCli, spawnCli, waitFor } from "../support/cli.js";

afterAll(async () => {
  await killAll();
  await removeRoots();
});

const line = (msg: string, extra: Record<string, unknown> = {}) => `${JSON.stringify({ level: 30, time: Date.UTC(2026, 10, 28, 12, 0, 0), pid: 1, msg, ...extra })}\n`;

describe("relay logs", () => {
  it("prints the newest lines readably, and with -f the ones written after", async () => {
    const root = await makeRoot();
    await mkdir(join(root, "logs"));
    const log = join(root, "logs", "relay.jsonl");
    await writeFile(log, ["relay starting", "envelope taken", "reply dispatched"].map((m, i) => line(m, { session: `s${i}` })).join(""));

    const last = await runCli(["logs", "--root", root, "--last", "2"]);
    expect(last.code, last.stderr).toBe(0);
    expect(last.stdout).toBe("12:00:00 info  envelope taken session=s1\n12:00:00 info  reply dispatched session=s2\n");

    const follow = await spawnCli(["logs", "--root", root, "--last", "0", "-f"]);
    // -f starts from the end as it finds it, so a line written before it has looked is an old one
    // (on a busy machine its start can take seconds): a new line every 0.5 s until one is printed.
    const appended: string[] = [];
    await waitFor(
      async () => {
        if (follow.stdout().includes("a new line")) return true;
        appended.push(`a new line ${appended.length + 1}`);
        await appendFile(log, line(appended.at(-1) ?? "", { session: "s9" }));
        await new Promise((r) => setTimeout(r, 500));
        return follow.stdout().includes("a new line");
      },
      { timeoutMs: 30_000, what: "a followed line" },
    );
    await new Promise((r) => setTimeout(r, 1_000)); // the follower's next look: anything else it had to print
    // what it printed: the lines written after it started, each once and in order (a suffix of those appended)
    const printed = follow.stdout().trim().split("\n");
    expect(printed.length).toBeGreaterThan(0);
    expect(printed).toEqual(appended.slice(-printed.length).map((m) => `12:00:00 info  ${m} session=s9`));
    expect(follow.stdout()).not.toContain("envelope taken");
    follow.child.kill("SIGKILL");
  }, 60_000);

  it("says so on a directory that is not a relay root", async () => {
    const dir = await makeRoot({ config: null });
    const res = await runCli(["logs", "--root", dir]);
    expect(res.code).toBe(2);
    expect(res.stderr).toContain("is not a relay root (no config.yaml)");
  });
});
