// Who may read what the relay writes (CONTRACT §2): state/status.json is the public read model
// ("relay writes, anyone reads"), so it is 0644 in a state/ that others may traverse but not list
// (0711); everything else (conversation text, the snapshot, the ledger and its summary, logs) is
// 0600 in directories 0700.
import { spawnSync } from "node:child_process";
import { chmod, readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, it } from "vitest";
import { dropEnvelope, inputPath, killAll, makeRoot, Scope, secretsCheck, waitFor, waitForFile } from "../support/cli.js";

afterAll(killAll);

const modeOf = async (path: string) => (await stat(path)).mode & 0o777;

/** Whether a process of another user (nobody) can read `path` (only tried when the tests run as root). */
function readableByNobody(path: string): boolean {
  // /bin/cat, not this node: a node unpacked into a private temporary directory (CI's Node 24) is not nobody's to run
  const r = spawnSync("/bin/cat", [path], { uid: 65534, gid: 65534, stdio: "ignore" });
  return r.status === 0;
}

describe("file modes", { timeout: 60_000 }, () => {
  it("status.json is readable by anyone who can reach the root; history, snapshot, ledger and logs by the owner only", async (ctx) => {
    const { expect } = ctx;
    const scope = await Scope.create(ctx);
    scope.fake.setResponder(() => "all good");
    const root = await makeRoot();
    await chmod(root, 0o711); // the user lets others reach the root
    await scope.start(root);
    await dropEnvelope(root, "e.json", { session_id: "session-1", content: "hello" });
    await waitForFile(inputPath(root, "session-1"), 30_000);
    const state = join(root, "state");
    await waitFor(async () => (await readdir(state)).includes("costs.jsonl"), { what: "the ledger" });

    expect(await modeOf(join(state, "status.json"))).toBe(0o644);
    expect(await modeOf(state)).toBe(0o711);
    for (const name of ["snapshot.json", "costs.jsonl"]) expect(await modeOf(join(state, name)), name).toBe(0o600);
    const history = join(state, "history");
    expect(await modeOf(history)).toBe(0o700);
    const conversations = await readdir(history);
    expect(conversations.length).toBeGreaterThan(0);
    for (const name of conversations) expect(await modeOf(join(history, name)), name).toBe(0o600);
    expect(await modeOf(join(root, "logs"))).toBe(0o700);
    for (const name of await readdir(join(root, "logs"))) expect(await modeOf(join(root, "logs", name)), name).toBe(0o600);

    if (process.getuid?.() === 0) {
      expect(readableByNobody(join(state, "status.json"))).toBe(true);
      expect(readableByNobody(join(state, "snapshot.json"))).toBe(false);
      expect(readableByNobody(join(history, conversations[0] ?? ""))).toBe(false);
    }
  });
});

secretsCheck();
