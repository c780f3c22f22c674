// The relay's main path through the real CLI: `relay send` → queue/ → Messages API (fake, over the
// SDK's real HTTP path) → dispatch/<session>/input.txt; --dry-run; `relay status --json`; SIGTERM.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, it } from "vitest";
import {
  bodyOf,
  configYaml,
  dropEnvelope,
  inputPath,
  killAll,
  lastUserText,
  makeRoot,
  messageTexts,
  queueNames,
  REPO_ROOT,
  runCli,
  Scope,
  secretsCheck,
  SYSTEM_PROMPT,
  systemText,
  TEST_KEY,
  waitFor,
  waitForFile,
} from "../support/cli.js";

// Each test has its own root, fakes and daemon (a Scope, torn down as the test finishes), so the
// tests of this file run concurrently; killAll is the backstop.
afterAll(killAll);

describe.concurrent("relaying", () => {
  it("relays `relay send` to the API and writes the reply to dispatch/<session>/input.txt, removing the queue file", async (ctx) => {
    const { expect } = ctx;
    const scope = await Scope.create(ctx);
    const { fake } = scope;
    // The key comes from .env this time (CONTRACT §3), not from the environment.
    const root = await makeRoot({ dotenv: `# secrets\nANTHROPIC_API_KEY=${TEST_KEY}\n` });
    const vars = scope.vars({ ANTHROPIC_API_KEY: undefined });
    fake.setResponder(() => "Looks good; open sub-PR B next.");
    await scope.start(root, { ANTHROPIC_API_KEY: undefined });

    const sent = await runCli(["send", "--root", root, "--session", "session-1", "Sub-PR A is open at #438."], { env: vars });
    expect(sent.code).toBe(0);

    expect(await waitForFile(inputPath(root, "session-1"))).toBe("Looks good; open sub-PR B next.");
    await waitFor(async () => (await queueNames(root)).length === 0, { what: "the queue file to go" });
    expect(fake.requests).toHaveLength(1);

    // The system prompt is one text block marked for caching.
    const body = bodyOf(fake.requests[0]);
    expect(Array.isArray(body.system)).toBe(true);
    expect(body.system).toHaveLength(1);
    const [system] = body.system as { type: string; text: string; cache_control?: { type: string } }[];
    expect(system?.type).toBe("text");
    expect(system?.text.trim()).toBe(SYSTEM_PROMPT);
    expect(system?.cache_control).toMatchObject({ type: "ephemeral" });
    // The envelope's text reaches chat-Claude labelled with the session that sent it.
    const user = lastUserText(fake.requests[0]);
    expect(user).toMatch(/^\[session-1[\] ·]/);
    expect(user).toContain("Sub-PR A is open at #438.");
    expect(body.model).toBe("claude-sonnet-4-6");
  });

  it("runs with --dry-run and no key: seeds the commented default config.yaml and answers without calling the API", async (ctx) => {
    const { expect } = ctx;
    const scope = await Scope.create(ctx);
    const { fake } = scope;
    const root = await makeRoot({ config: null });
    const d = await scope.start(root, { ANTHROPIC_API_KEY: undefined }, ["--dry-run"]);
    expect(d.alive()).toBe(true);

    const seeded = await readFile(join(root, "config.yaml"), "utf8");
    expect(seeded).toBe(await readFile(join(REPO_ROOT, "config.yaml"), "utf8"));
    expect(seeded).toMatch(/^#/m);

    await dropEnvelope(root, "hello.json", { session_id: "session-1", content: "are you there?" });
    const reply = await waitForFile(inputPath(root, "session-1"));
    expect(reply).toMatch(/dry-run/);
    await waitFor(async () => (await queueNames(root)).length === 0, { what: "the queue file to go" });
    expect(fake.requests).toHaveLength(0);
  });
});

describe.concurrent("conversations", () => {
  it("gives a session with its own system_prompt a conversation of its own, while the others share one labelled by session", async (ctx) => {
    const { expect } = ctx;
    const scope = await Scope.create(ctx);
    const { fake } = scope;
    const root = await makeRoot({ config: configYaml({ sessions: ["session-1", "session-2", { id: "solo", systemPrompt: "SOLO-PROMPT: review docs only." }] }) });
    fake.setResponder((r) => `reply to ${/msg-\w+/.exec(r.lastUserText)?.[0] ?? "?"}`);
    await scope.start(root);
    const ago = (s: number) => new Date(Date.now() - s * 1000);
    await dropEnvelope(root, "1.json", { session_id: "session-1", content: "msg-one" }, ago(30));
    await dropEnvelope(root, "2.json", { session_id: "solo", content: "msg-solo" }, ago(20));
    await dropEnvelope(root, "3.json", { session_id: "session-2", content: "msg-two" }, ago(10));
    await waitFor(async () => fake.requests.length === 3 && (await queueNames(root)).length === 0, { what: "three envelopes answered" });

    expect(await waitForFile(inputPath(root, "solo"))).toBe("reply to msg-solo");
    const [one, solo, two] = fake.requests;
    expect(systemText(one).trim()).toBe(SYSTEM_PROMPT);
    expect(systemText(solo).trim()).toBe("SOLO-PROMPT: review docs only.");
    expect(messageTexts(solo).join("\n")).not.toContain("msg-one");
    expect(systemText(two).trim()).toBe(SYSTEM_PROMPT);
    // session-2 sees session-1's turn (shared, labelled), but not the solo session's.
    const shared = messageTexts(two);
    expect(shared.join("\n")).toContain("msg-one");
    expect(shared.join("\n")).not.toContain("msg-solo");
    expect(shared[0]).toMatch(/^\[session-1[\] ·]/);
    expect(shared.at(-1)).toMatch(/^\[session-2[\] ·]/);
  });
});

describe.concurrent("relay status --json", () => {
  it("reports the keys of CONTRACT §9 with their types while the daemon runs; SIGTERM exits 0; then no daemon is reported", async (ctx) => {
    const { expect } = ctx;
    const scope = await Scope.create(ctx);
    const { fake } = scope;
    const root = await makeRoot();
    const vars = scope.vars();
    const d = await scope.start(root);
    // TEXT on standard input this time.
    const sent = await runCli(["send", "--root", root, "--session", "session-1"], { env: vars, input: "status check\nfrom stdin" });
    expect(sent.code).toBe(0);
    await waitForFile(inputPath(root, "session-1"));
    expect(lastUserText(fake.requests[0])).toContain("status check\nfrom stdin");
    await waitFor(async () => (await queueNames(root)).length === 0, { what: "the queue file to go" });

    const running = await runCli(["status", "--json", "--root", root], { env: vars });
    expect(running.code).toBe(0);
    const s = JSON.parse(running.stdout) as Record<string, unknown>;
    expect(typeof s.state).toBe("string");
    expect(s.daemon).toEqual({ running: true, pid: d.pid });
    expect(s.needsJc).toBeNull();
    expect(s.queue).toMatchObject({ depth: 0, rejected: 0 });
    const sessions = s.sessions as Record<string, { pending: unknown; awaitingAck: unknown }>;
    expect(Object.keys(sessions).sort()).toEqual(["session-1", "session-2"]);
    expect(sessions["session-1"]).toMatchObject({ pending: 0, awaitingAck: true });
    expect(sessions["session-2"]).toMatchObject({ pending: 0, awaitingAck: false });
    const history = s.history as { chars: unknown; turns: unknown };
    expect(history.turns).toBe(1);
    expect(typeof history.chars).toBe("number");
    expect(history.chars as number).toBeGreaterThan(0);
    expect(s).toHaveProperty("lastError");
    expect(s.lastError).toBeNull();
    const cost = s.cost as { totalUsd: unknown };
    expect(typeof cost.totalUsd).toBe("number");
    expect(cost.totalUsd as number).toBeGreaterThan(0);

    d.child.kill("SIGTERM");
    expect(await d.exited).toEqual({ code: 0, signal: null });

    const after = await runCli(["status", "--json", "--root", root], { env: vars });
    expect(after.code).toBe(0);
    const t = JSON.parse(after.stdout) as { state: unknown; daemon: unknown };
    expect(t.daemon).toEqual({ running: false, pid: null });
    expect(typeof t.state).toBe("string");
  });
});

secretsCheck();
