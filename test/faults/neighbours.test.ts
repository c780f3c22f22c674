// Slow and dead neighbours never stall the main loop; two starts at once: exactly one relay.
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { waitFor } from "../support/cli.js";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { type FakeAnthropic, startFakeAnthropic } from "../support/fake-anthropic.js";
import { closedPortUrl, type FakeNtfy, startFakeNtfy } from "../support/fake-ntfy.js";

const BIN = new URL("../../bin/relay.js", import.meta.url).pathname;
const POLL_MS = 200;
const children: ChildProcess[] = [];
const roots: string[] = [];

function makeRoot(): string {
  const root = mkdtempSync(join(tmpdir(), "relay-neighbours-"));
  roots.push(root);
  writeFileSync(
    join(root, "config.yaml"),
    "model: claude-sonnet-4-6\nsystem_prompt: You review.\nsummarization_prompt: Summarize.\napi_timeout_ms: 60000\nsessions:\n  - id: session-1\n  - id: session-2\n",
  );
  return root;
}

function relay(root: string, args: string[], env: Record<string, string>) {
  const child = spawn(process.execPath, [BIN, ...args, "--root", root], {
    env: { ...process.env, ANTHROPIC_API_KEY: "sk-ant-neighbours", POLL_INTERVAL_MS: String(POLL_MS), NTFY_TOPIC: "n".repeat(24), ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  let output = "";
  child.stdout?.on("data", (d: Buffer) => {
    output += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    output += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, exited, output: () => output };
}


function writeJc(root: string, text: string) {
  writeFileSync(join(root, "state", "jc_input.tmp"), text);
  // rename, like `relay jc`, so the relay never sees half a file
  return import("node:fs").then((fs) => fs.renameSync(join(root, "state", "jc_input.tmp"), join(root, "state", "jc_input.txt")));
}

function send(root: string, session: string, content: string) {
  const name = `${Date.now()}-${Math.random().toString(16).slice(2)}`;
  writeFileSync(join(root, "queue", `.${name}.tmp`), JSON.stringify({ session_id: session, content }));
  return import("node:fs").then((fs) => fs.renameSync(join(root, "queue", `.${name}.tmp`), join(root, "queue", `${name}.json`)));
}

afterEach(() => {
  for (const c of children.splice(0)) c.kill("SIGKILL");
});
afterAll(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

describe("slow and dead neighbours", () => {
  let api: FakeAnthropic;
  let ntfy: FakeNtfy;
  afterEach(async () => {
    await api?.close();
    await ntfy?.close();
  });

  it("a JC direct dispatch lands while the API hangs and ntfy never answers", async () => {
    api = await startFakeAnthropic();
    ntfy = await startFakeNtfy();
    ntfy.setMode("hang");
    api.enqueue({ kind: "reply", text: "[NEEDS-JC] Which database?" }, { kind: "hang" });
    const root = makeRoot();
    const r = relay(root, ["run"], { ANTHROPIC_BASE_URL: api.url, NTFY_SERVER: ntfy.url });
    await waitFor(() => r.output().includes("relay started"), { timeoutMs: 30_000, what: "start" });

    // needs-JC, with a notification that ntfy swallows forever
    await send(root, "session-1", "schema ready");
    await waitFor(() => r.output().includes("state needsJc"), { timeoutMs: 30_000, what: "needsJc" });
    // JC answers in chat; that call hangs at the API
    await writeJc(root, "Postgres.");
    await waitFor(() => api.requests.length === 2, { timeoutMs: 30_000, what: "the hanging call" });
    expect(existsSync(join(root, "state", "jc_input.txt"))).toBe(false);

    // a direct dispatch still lands within the poll interval (plus the test's own polling)
    await writeJc(root, "@session-2: pause the migration");
    const input = join(root, "dispatch", "session-2", "input.txt");
    await waitFor(() => existsSync(input), { timeoutMs: 2 * POLL_MS + 500, what: "the direct dispatch during a hanging call" });
    expect(readFileSync(input, "utf8")).toBe("pause the migration");
    expect(api.requests).toHaveLength(2);
  });

  it("keeps relaying while ntfy refuses connections", async () => {
    api = await startFakeAnthropic();
    api.enqueue({ kind: "reply", text: "[NEEDS-JC] ok?" });
    const root = makeRoot();
    const r = relay(root, ["run"], { ANTHROPIC_BASE_URL: api.url, NTFY_SERVER: await closedPortUrl() });
    await waitFor(() => r.output().includes("relay started"), { timeoutMs: 30_000, what: "start" });
    await send(root, "session-1", "first");
    await waitFor(() => r.output().includes("state needsJc"), { timeoutMs: 30_000, what: "needsJc" });
    await writeJc(root, "@session-1: yes");
    await send(root, "session-2", "second");
    await waitFor(() => existsSync(join(root, "dispatch", "session-2", "input.txt")), { timeoutMs: 30_000, what: "the next reply" });
    expect(r.output()).toMatch(/ntfy publish failed/);
  });
});

describe("the lock", () => {
  it("of two relays started at the same instant, exactly one runs", async () => {
    for (let round = 0; round < 3; round++) {
      const root = makeRoot();
      const a = relay(root, ["run", "--dry-run"], { NTFY_SERVER: "http://127.0.0.1:9" });
      const b = relay(root, ["run", "--dry-run"], { NTFY_SERVER: "http://127.0.0.1:9" });
      const first = await Promise.race([a.exited.then(() => a), b.exited.then(() => b), sleep(45_000).then(() => null)]);
      expect(first).not.toBeNull();
      const loser = first as NonNullable<typeof first>;
      const winner = loser === a ? b : a;
      expect(await loser.exited).not.toBe(0);
      expect(loser.output()).toMatch(new RegExp(`another relay is running .*pid ${winner.child.pid}`));
      await sleep(300);
      expect(winner.child.exitCode).toBeNull();
      winner.child.kill("SIGTERM");
      expect(await winner.exited).toBe(0);
    }
  });
});
