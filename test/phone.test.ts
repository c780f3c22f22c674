// JC answers from the phone: the needs-JC notification's buttons and the private reply topic.
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { waitFor } from "./support/cli.js";
import { afterEach, describe, expect, it } from "vitest";
import { startFakeAnthropic } from "./support/fake-anthropic.js";
import { startFakeNtfy } from "./support/fake-ntfy.js";

const BIN = new URL("../bin/relay.js", import.meta.url).pathname;
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});


const topic = "main-topic-0123456789abcdef";
const replyTopic = "reply-topic-0123456789abcdef";

/** A relay subscribed to its reply topic on a fake ntfy (with access control when `token` is given). */
async function setUp(token?: string) {
  const api = await startFakeAnthropic();
  // with access control, the reply topic is writable by everyone (write-only), as the README says to set it up
  const ntfy = await startFakeNtfy(token === undefined ? {} : { requireToken: token, everyoneWrites: [replyTopic] });
  cleanups.push(() => api.close(), () => ntfy.close());
  const root = mkdtempSync(join(tmpdir(), "relay-phone-"));
  cleanups.push(() => rmSync(root, { recursive: true, force: true }));
  writeFileSync(join(root, "config.yaml"), "model: claude-sonnet-4-6\nsystem_prompt: s\nsummarization_prompt: s\nsessions:\n  - id: session-1\n");
  const child: ChildProcess = spawn(process.execPath, [BIN, "run", "--root", root], {
    env: { ...process.env, ANTHROPIC_API_KEY: "sk-ant-phone", ANTHROPIC_BASE_URL: api.url, NTFY_SERVER: ntfy.url, NTFY_TOPIC: topic, NTFY_REPLY_TOPIC: replyTopic, POLL_INTERVAL_MS: "100", ...(token === undefined ? {} : { NTFY_TOKEN: token }) },
    stdio: ["ignore", "ignore", "pipe"],
  });
  cleanups.push(() => child.kill("SIGKILL"));
  await waitFor(() => ntfy.requests.some((r) => r.method === "GET" && r.path.startsWith(`/${replyTopic}/json`) && !r.path.includes("poll=1")), { timeoutMs: 30_000, what: "the reply-topic subscription" });
  return { api, ntfy, root };
}

/** An envelope whose reply asks JC, and the notification it brings. */
async function askJc({ api, ntfy, root }: Awaited<ReturnType<typeof setUp>>) {
  api.enqueue({ kind: "reply", text: "[NEEDS-JC] Ship it?" });
  const tmp = join(root, "queue", ".e.tmp");
  writeFileSync(tmp, JSON.stringify({ session_id: "session-1", content: "release candidate ready" }));
  renameSync(tmp, join(root, "queue", "e.json"));
  const [note] = await ntfy.waitForMessages(1, 30_000).catch((err: unknown) => {
    throw new Error(`${String(err)}; requests: ${JSON.stringify(ntfy.requests.map((r) => `${r.method} ${r.path}`))}`);
  });
  return note;
}

type Action = { label?: string; url?: string; body?: string; headers?: Record<string, string> };

describe("answering from the phone", () => {
  it("a needs-JC notification offers Approve/Reject on the reply topic, and a reply published there reaches the session", async () => {
    const world = await setUp();
    const { api, ntfy, root } = world;
    const note = await askJc(world);
    expect(note?.topic).toBe(topic);
    expect(note?.message).toContain("[NEEDS-JC] Ship it?");
    expect(note?.actions).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ action: "http", label: "Approve", url: `${ntfy.url}/${replyTopic}` }),
        expect.objectContaining({ action: "http", label: "Reject", url: `${ntfy.url}/${replyTopic}` }),
      ]),
    );
    // The buttons carry the question's id: an answer bound to that question, not to whichever is open.
    const approve = (note?.actions as Action[] | undefined)?.find((a) => a.label === "Approve");
    const bound = JSON.parse(approve?.body ?? "{}") as { text?: string; question?: string };
    expect(bound.text).toBe("Approved: go ahead.");
    expect(bound.question).toMatch(/^q-/);

    ntfy.publish(replyTopic, "@session-1: ship it tonight");
    const input = join(root, "dispatch", "session-1", "input.txt");
    await waitFor(() => existsSync(input), { timeoutMs: 30_000, what: "the phone's direct answer" });
    expect(readFileSync(input, "utf8")).toBe("ship it tonight");
    // the direct answer answered the question: the button's answer now comes too late, and is refused
    ntfy.publish(replyTopic, approve?.body ?? "");
    const rejected = join(root, "state", "jc_input.rejected.txt");
    await waitFor(() => existsSync(rejected), { timeoutMs: 30_000, what: "the late button answer refused" });
    expect(readFileSync(rejected, "utf8")).toContain(`question ${bound.question ?? ""} is not open`);
    expect(api.requests).toHaveLength(1);
  });

  it("on a server with access control (the reply topic writable by everyone) a tap needs no token and answers the question; NTFY_TOKEN is nowhere in the notification", async () => {
    const token = "tk_phonebuttons0123456789abc";
    const world = await setUp(token);
    const { api, ntfy, root } = world;
    const note = await askJc(world);
    api.enqueue({ kind: "reply", text: "Shipping now." });
    const approve = (note?.actions as Action[] | undefined)?.find((a) => a.label === "Approve");
    expect(approve?.headers).toBeUndefined();
    // the relay itself published and subscribed with the token (the main topic is protected)
    expect((await fetch(`${ntfy.url}/${topic}`, { method: "POST", body: "x" })).status).toBe(403);
    // what the phone does on a tap: the action's request as it is
    const tap = () => fetch(approve?.url ?? "", { method: "POST", body: approve?.body ?? "" });
    expect((await tap()).status).toBe(200);
    const input = join(root, "dispatch", "session-1", "input.txt");
    await waitFor(() => existsSync(input), { timeoutMs: 30_000, what: "the reply that follows the tapped answer" });
    expect(readFileSync(input, "utf8")).toBe("Shipping now.");
    expect(JSON.stringify(api.requests.at(-1)?.body)).toContain("Approved: go ahead.");
    expect(JSON.stringify(note)).not.toContain(token);
  });
});
