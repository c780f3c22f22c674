// public_url: the ntfy Status button opens the page where JC's phone reaches it, not the
// 127.0.0.1 address the relay serves it on. The real CLI against local stand-ins.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { waitFor } from "../support/cli.js";
import { startFakeAnthropic } from "../support/fake-anthropic.js";
import { startFakeNtfy } from "../support/fake-ntfy.js";
import { csrfOf, makeRoot, raw, startServer } from "./support.js";

const BIN = new URL("../../bin/relay.js", import.meta.url).pathname;
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe("public_url", () => {
  it("is the address of the needs-JC notification's Status button, while the page is still served on its own address", async () => {
    const api = await startFakeAnthropic();
    const ntfy = await startFakeNtfy();
    cleanups.push(() => api.close(), () => ntfy.close());
    const root = mkdtempSync(join(tmpdir(), "relay-public-url-"));
    cleanups.push(() => rmSync(root, { recursive: true, force: true }));
    const publicUrl = "https://relay.example.net/";
    writeFileSync(join(root, "config.yaml"), `model: claude-sonnet-4-6\nsystem_prompt: s\nsummarization_prompt: s\npublic_url: ${publicUrl}\nsessions:\n  - id: session-1\n`);
    const topic = "main-topic-0123456789abcdef";
    const child: ChildProcess = spawn(process.execPath, [BIN, "run", "--root", root, "--http", "127.0.0.1:0"], {
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: root, ANTHROPIC_API_KEY: "sk-ant-public-url", ANTHROPIC_BASE_URL: api.url, NTFY_SERVER: ntfy.url, NTFY_TOPIC: topic, NTFY_REPLY_TOPIC: "reply-topic-0123456789abcdef", POLL_INTERVAL_MS: "100" },
      stdio: ["ignore", "ignore", "pipe"],
    });
    cleanups.push(() => {
      child.kill("SIGKILL");
    });
    let stderr = "";
    child.stderr?.on("data", (c: Buffer) => (stderr += c.toString("utf8")));
    await waitFor(() => /status page at http:\/\/127\.0\.0\.1:\d+\//.test(stderr), { timeoutMs: 30_000, what: "the status page's address in the log" });
    const served = /status page at (http:\/\/127\.0\.0\.1:\d+\/)/.exec(stderr)?.[1] ?? "";

    api.enqueue({ kind: "reply", text: "[NEEDS-JC] Deploy tonight?" });
    const tmp = join(root, "queue", ".e.tmp");
    writeFileSync(tmp, JSON.stringify({ session_id: "session-1", content: "build is green" }));
    renameSync(tmp, join(root, "queue", "e.json"));
    const [note] = await ntfy.waitForMessages(1, 20_000);
    expect(note?.topic).toBe(topic);
    const actions = (note?.actions ?? []) as { action?: string; label?: string; url?: string }[];
    expect(actions.find((a) => a.label === "Status")).toEqual(expect.objectContaining({ action: "view", url: publicUrl }));
    expect(JSON.stringify(note)).not.toContain(served);
    // the page itself is still where the relay serves it
    expect((await fetch(new URL("/status.json", served))).status).toBe(200);
  }, 60_000);
});

describe("the page behind public_url", () => {
  it("answers a proxy that keeps the public Host header, and takes JC's answer posted from the public origin, token still required", async () => {
    const t = await makeRoot();
    cleanups.push(() => t.remove());
    const token = "public-url-token-0123456789abcdef";
    const server = await startServer(t, { token, publicUrl: "https://relay.example.net/" });
    cleanups.push(() => server.close());
    const auth = { authorization: `Bearer ${token}` };
    const at = (path: string) => new URL(path, server.url).href;

    expect((await raw(at("/status.json"), { headers: { ...auth, host: "relay.example.net" } })).status).toBe(200);
    expect((await raw(at("/status.json"), { headers: { ...auth, host: "relay.example.net:443" } })).status).toBe(200);
    expect((await raw(at("/status.json"), { headers: { host: "relay.example.net" } })).status).toBe(401);
    expect((await raw(at("/status.json"), { headers: { ...auth, host: "relay.example.net:8443" } })).status).toBe(421);
    expect((await raw(at("/status.json"), { headers: { ...auth, host: "evil.example" } })).status).toBe(421);

    // nginx's default rewrites Host to the relay's address; the browser's Origin is the public one
    const csrf = await csrfOf(server.url, auth);
    const post = (origin: string) =>
      raw(at("/jc"), { method: "POST", headers: { ...auth, origin, "content-type": "application/json", "x-csrf-token": csrf }, body: JSON.stringify({ text: "@session-1: merge it" }) });
    expect((await post("https://evil.example")).status).toBe(403);
    expect((await post("https://relay.example.net")).status).toBe(200);
    expect(readFileSync(t.paths.jcInput, "utf8")).toBe("@session-1: merge it\n");
  });
});
