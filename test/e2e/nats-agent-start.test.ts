// CONTRACT §2 on an agent's root: no temporary file outlives the next start. An agent killed in
// the middle of an atomic write (the NATS soak found state/.agent.json.<hex>.tmp left behind)
// leaves a temporary that `relay agent` removes when it starts again, under the lock.
// Skipped, saying why, when nats-server is not installed.
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { killAll, makeRoot, startAgent } from "../support/cli.js";
import { agentNatsConfig } from "../support/nats-roots.js";
import { type NatsServer, natsSkipReason, startNatsServer } from "../support/nats-server.js";

let server: NatsServer | null = null;
if (natsSkipReason) console.warn(`skipping the NATS agent start test: ${natsSkipReason}`);

beforeAll(async () => {
  if (!natsSkipReason) server = await startNatsServer();
}, 60_000);

afterAll(async () => {
  await killAll();
  await server?.stop();
});

describe.skipIf(natsSkipReason !== null)("relay agent at start", () => {
  it("removes the temporaries of atomic writes a killed agent left in state/, the root and queue/.rejected/", async () => {
    if (!server) throw new Error("no nats-server");
    const root = await makeRoot({ config: agentNatsConfig("laptop", ["s2"], "agstart") });
    mkdirSync(join(root, "state"), { recursive: true });
    mkdirSync(join(root, "queue", ".rejected"), { recursive: true });
    const left = [join(root, "state", ".agent.json.0a1b2c3d.tmp"), join(root, "state", ".remote_status.json.deadbeef.tmp"), join(root, "queue", ".rejected", ".x.json.reason.json.12345678.tmp")];
    for (const file of left) writeFileSync(file, "half");
    const keep = join(root, "state", "notes.txt");
    writeFileSync(keep, "mine");
    const agent = await startAgent(root, { NATS_URL: server.url, POLL_INTERVAL_MS: "100" });
    expect(agent.alive(), agent.stderr()).toBe(true);
    for (const file of left) expect(existsSync(file), file).toBe(false);
    expect(existsSync(keep)).toBe(true);
    agent.child.kill("SIGTERM");
    expect((await agent.exited).code).toBe(0);
  });
});
