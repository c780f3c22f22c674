// Per-session prompts and models, and live reload of config.yaml (CONTRACT §4, issue 6).
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { waitFor } from "./support/cli.js";
import { afterEach, describe, expect, it } from "vitest";
import { type FakeAnthropic, startFakeAnthropic } from "./support/fake-anthropic.js";
import { type FakeNtfy, startFakeNtfy } from "./support/fake-ntfy.js";

const BIN = new URL("../bin/relay.js", import.meta.url).pathname;
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});


const BASE = "model: claude-sonnet-4-6\nsystem_prompt: You review everything.\nsummarization_prompt: Summarize.\n";

async function setup(config: string): Promise<{ root: string; api: FakeAnthropic; ntfy: FakeNtfy; output: () => string; child: ChildProcess }> {
  const api = await startFakeAnthropic();
  const ntfy = await startFakeNtfy();
  const root = mkdtempSync(join(tmpdir(), "relay-sessions-"));
  cleanups.push(() => api.close(), () => ntfy.close(), () => rmSync(root, { recursive: true, force: true }));
  writeFileSync(join(root, "config.yaml"), config);
  const child = spawn(process.execPath, [BIN, "run", "--root", root], {
    env: { ...process.env, ANTHROPIC_API_KEY: "sk-ant-sessions", ANTHROPIC_BASE_URL: api.url, NTFY_SERVER: ntfy.url, NTFY_TOPIC: "t".repeat(24), NTFY_REPLY_TOPIC: "r".repeat(24), POLL_INTERVAL_MS: "100" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let output = "";
  child.stderr?.on("data", (d: Buffer) => {
    output += d.toString();
  });
  cleanups.push(() => child.kill("SIGKILL"));
  await waitFor(() => output.includes("relay started"), { timeoutMs: 30_000, what: "start" });
  return { root, api, ntfy, output: () => output, child };
}

function send(root: string, session: string, content: string) {
  const name = `${Date.now()}-${Math.random().toString(16).slice(2)}`;
  writeFileSync(join(root, "queue", `.${name}.tmp`), JSON.stringify({ session_id: session, content }));
  renameSync(join(root, "queue", `.${name}.tmp`), join(root, "queue", `${name}.json`));
}

const systemText = (body: unknown) => ((body as { system: { text: string }[] }).system[0]?.text ?? "");

describe("per-session prompts", () => {
  it("a session with its own system_prompt and model has its own conversation and cost lines", async () => {
    const { root, api } = await setup(`${BASE}sessions:\n  - id: session-1\n  - id: docs\n    system_prompt: You review only documentation.\n    model: claude-haiku-4-5\n`);
    send(root, "session-1", "code change A");
    await waitFor(() => existsSync(join(root, "dispatch", "session-1", "input.txt")), { timeoutMs: 30_000, what: "reply 1" });
    send(root, "docs", "README section B");
    await waitFor(() => existsSync(join(root, "dispatch", "docs", "input.txt")), { timeoutMs: 30_000, what: "reply 2" });

    const [shared, docs] = api.requests.map((r) => r.body as { model: string; messages: { content: { text: string }[] }[] });
    expect(systemText(shared)).toBe("You review everything.");
    expect(shared?.model).toBe("claude-sonnet-4-6");
    expect(systemText(docs)).toBe("You review only documentation.");
    expect(docs?.model).toBe("claude-haiku-4-5");
    // the docs conversation does not see session-1's turn
    expect(JSON.stringify(docs?.messages)).not.toContain("code change A");
    expect(existsSync(join(root, "state", "history", "shared.jsonl"))).toBe(true);
    expect(readFileSync(join(root, "state", "history", "session.docs.jsonl"), "utf8")).toContain("README section B");
    const ledgerFile = join(root, "state", "costs.jsonl");
    await waitFor(() => existsSync(ledgerFile) && readFileSync(ledgerFile, "utf8").trim().split("\n").length === 2, { timeoutMs: 30_000, what: "both ledger lines" });
    const ledger = readFileSync(ledgerFile, "utf8").trim().split("\n").map((l) => JSON.parse(l) as { session: string; conversation: string; model: string });
    expect(ledger.map((r) => [r.session, r.conversation, r.model])).toEqual([
      ["session-1", "shared", "claude-sonnet-4-6"],
      ["docs", "session.docs", "claude-haiku-4-5"],
    ]);
  });
});

describe("live reload", () => {
  it("takes a new session without a restart, keeps the running config on a bad edit, and keeps a removed session's replies", async () => {
    const { root, ntfy, output } = await setup(`${BASE}sessions:\n  - id: session-1\n  - id: session-2\n`);
    // two replies for session-2: one in input.txt, one waiting
    send(root, "session-2", "first");
    await waitFor(() => existsSync(join(root, "dispatch", "session-2", "input.txt")), { timeoutMs: 30_000, what: "first reply" });
    send(root, "session-2", "second");
    await waitFor(() => output().includes("state awaitingAck") && (output().match(/api call/g)?.length ?? 0) >= 2, { timeoutMs: 30_000, what: "second reply waiting" });

    // a bad edit: the running config stays, one error, one notification
    writeFileSync(join(root, "config.yaml"), `${BASE}sessions:\n  - id: "bad id!"\n`);
    const warned = await ntfy.waitForMessages(1, 10_000);
    expect(warned[0]?.title).toContain("config.yaml edit ignored");
    expect(warned[0]?.message).toContain("sessions[0].id");
    send(root, "session-1", "still works");
    await waitFor(() => existsSync(join(root, "dispatch", "session-1", "input.txt")), { timeoutMs: 30_000, what: "reply under the running config" });

    // a good edit: session-3 added, session-2 removed
    writeFileSync(join(root, "config.yaml"), `${BASE}sessions:\n  - id: session-1\n  - id: session-3\n`);
    await waitFor(() => output().includes("config reloaded"), { timeoutMs: 30_000, what: "reload" });
    send(root, "session-3", "new session here");
    await waitFor(() => existsSync(join(root, "dispatch", "session-3", "input.txt")), { timeoutMs: 30_000, what: "reply for the new session" });
    // session-2's waiting reply is still delivered after its ack
    unlinkSync(join(root, "dispatch", "session-2", "input.txt"));
    await waitFor(() => existsSync(join(root, "dispatch", "session-2", "input.txt")), { timeoutMs: 30_000, what: "the removed session's waiting reply" });
    expect(readFileSync(join(root, "dispatch", "session-2", "input.txt"), "utf8")).toContain("second");
    // an envelope from the removed session is now rejected
    send(root, "session-2", "late");
    await waitFor(() => output().includes("is not registered"), { timeoutMs: 30_000, what: "rejection" });
    expect(output().match(/config edit ignored/g)).toHaveLength(1);
  });
});
