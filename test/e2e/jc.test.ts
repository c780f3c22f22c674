// JC, the human (CONTRACT §6): [NEEDS-JC] pauses the relay and pings ntfy once; `relay jc`
// answers it, directly (@session: …, no API call) or as the next chat turn; JC input takes
// priority over a call under way.
import { readFile, unlink } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, it, type TestContext } from "vitest";
import {
  dropEnvelope,
  exists,
  inputPath,
  killAll,
  lastUserText,
  machineState,
  makeRoot,
  messageTexts,
  queueNames,
  quiet,
  runCli,
  Scope,
  secretsCheck,
  settle,
  waitFor,
  waitForFile,
  writeJcInput,
} from "../support/cli.js";

// Each test has its own root, fakes and daemon (a Scope, torn down as the test finishes), so the
// tests of this file run concurrently; killAll is the backstop.
afterAll(killAll);

/** A scope whose replies name the message they answer. */
async function setUp(ctx: TestContext): Promise<Scope> {
  const scope = await Scope.create(ctx);
  scope.fake.setResponder((r) => `reply to <${/msg-[\w-]+/.exec(r.lastUserText)?.[0] ?? r.lastUserText.slice(-40)}>`);
  return scope;
}

interface StatusJson {
  state: string;
  needsJc: { session: string; question: string } | null;
}

describe.concurrent("needs JC", () => {
  it("holds a [NEEDS-JC] reply, pings ntfy once, makes no call while paused, and resumes on JC's answer (direct, then chat)", async (ctx) => {
    const { expect } = ctx;
    const scope = await setUp(ctx);
    const { fake, ntfy } = scope;
    const vars = scope.vars();
    const root = await makeRoot();
    await scope.start(root);

    // --- session-1 raises a question for JC.
    fake.enqueue({ kind: "reply", text: "[NEEDS-JC] Should we ship the migration today? It touches billing." });
    await dropEnvelope(root, "a.json", { session_id: "session-1", content: "msg-a migration is ready" });
    await waitFor(async () => (await machineState(root)) === "needsJc", { what: "needsJc" });

    const status = JSON.parse((await runCli(["status", "--json", "--root", root], { env: vars })).stdout) as StatusJson;
    expect(status.state).toBe("needsJc");
    expect(status.needsJc?.session).toBe("session-1");
    expect(status.needsJc?.question).toContain("Should we ship the migration today?");
    expect(await exists(inputPath(root, "session-1"))).toBe(false);

    const [note] = await ntfy.waitForMessages(1);
    expect(`${note?.title ?? ""}\n${note?.message ?? ""}`).toContain("Should we ship the migration today?");
    expect(note?.topic).toMatch(/^[A-Za-z0-9_-]{22,64}$/);

    // --- while paused, envelopes wait in queue/ and no call is made.
    await dropEnvelope(root, "b.json", { session_id: "session-2", content: "msg-b waiting" });
    await settle(5);
    expect(await queueNames(root)).toEqual(["b.json"]);
    expect(fake.requests).toHaveLength(1);
    expect(await machineState(root)).toBe("needsJc");
    expect(await exists(inputPath(root, "session-1"))).toBe(false);

    // --- JC answers directly: dispatched as is, no API call for it.
    const jc = await runCli(["jc", "--root", root, "@session-1: go ahead"], { env: vars });
    expect(jc.code).toBe(0);
    expect((await waitForFile(inputPath(root, "session-1"))).trim()).toBe("go ahead");
    await waitFor(async () => (await machineState(root)) !== "needsJc", { what: "needsJc to clear" });
    expect(await exists(join(root, "state", "jc_input.txt"))).toBe(false);

    // The waiting envelope goes next; its request carries JC's note so chat-Claude knows.
    expect(await waitForFile(inputPath(root, "session-2"))).toBe("reply to <msg-b>");
    expect(fake.requests).toHaveLength(2);
    expect(lastUserText(fake.requests[1])).toContain("msg-b waiting");
    expect(messageTexts(fake.requests[1]).join("\n")).toContain("go ahead");
    await waitFor(() => quiet(root), { what: "the relay at rest" });
    expect(fake.requests).toHaveLength(2);
    expect(ntfy.messages).toHaveLength(1);

    // --- session-2 raises a question; JC answers with plain text: one call, reply to session-2.
    await unlink(inputPath(root, "session-2"));
    fake.enqueue({ kind: "reply", text: "[NEEDS-JC] Rename the package to relay-cc?" });
    await dropEnvelope(root, "c.json", { session_id: "session-2", content: "msg-c naming" });
    await waitFor(async () => (await machineState(root)) === "needsJc", { what: "needsJc again" });
    const again = JSON.parse((await runCli(["status", "--json", "--root", root], { env: vars })).stdout) as StatusJson;
    expect(again.needsJc?.session).toBe("session-2");
    await ntfy.waitForMessages(2);
    expect(fake.requests).toHaveLength(3);

    fake.setResponder(() => "Renaming approved; go on.");
    expect((await runCli(["jc", "--root", root, "yes, do it"], { env: vars })).code).toBe(0);
    expect(await waitForFile(inputPath(root, "session-2"))).toBe("Renaming approved; go on.");
    expect(fake.requests).toHaveLength(4);
    expect(lastUserText(fake.requests[3])).toContain("yes, do it");
    await waitFor(() => quiet(root), { what: "the relay at rest" });
    expect(await machineState(root)).not.toBe("needsJc");
    await settle(3);
    expect(fake.requests).toHaveLength(4);
    expect(ntfy.messages).toHaveLength(2);
    expect(await exists(inputPath(root, "session-1"))).toBe(true); // JC's direct answer, still unacknowledged
    expect((await readFile(inputPath(root, "session-1"), "utf8")).trim()).toBe("go ahead");
  });

  it("dispatches a reply whose [NEEDS-JC] comes after its first 200 characters, and sends a plain JC turn outside needsJc to the latest envelope's session", async (ctx) => {
    const { expect } = ctx;
    const scope = await setUp(ctx);
    const { fake, ntfy } = scope;
    const vars = scope.vars();
    const root = await makeRoot();
    const late = `${"Fine. ".repeat(34)}[NEEDS-JC] not really a question`;
    expect(late.indexOf("[NEEDS-JC]")).toBeGreaterThanOrEqual(200);
    fake.enqueue({ kind: "reply", text: late });
    await scope.start(root);
    await dropEnvelope(root, "a.json", { session_id: "session-2", content: "msg-a" });
    expect(await waitForFile(inputPath(root, "session-2"))).toBe(late);
    await waitFor(() => quiet(root), { what: "the relay at rest" });
    expect(await machineState(root)).not.toBe("needsJc");
    await unlink(inputPath(root, "session-2"));

    expect((await runCli(["jc", "--root", root, "msg-jc any news?"], { env: vars })).code).toBe(0);
    expect(await waitForFile(inputPath(root, "session-2"))).toBe("reply to <msg-jc>");
    expect(lastUserText(fake.requests[1])).toContain("msg-jc any news?");
    expect(await exists(inputPath(root, "session-1"))).toBe(false);
    expect(ntfy.messages).toHaveLength(0);
  });

  it("lands a JC direct dispatch promptly while an API call hangs (JC input takes priority)", async (ctx) => {
    const { expect } = ctx;
    const scope = await setUp(ctx);
    const { fake } = scope;
    const root = await makeRoot();
    fake.enqueue({ kind: "hang" });
    await scope.start(root);
    await dropEnvelope(root, "slow.json", { session_id: "session-1", content: "msg-slow" });
    await waitFor(async () => fake.requests.length === 1 && (await machineState(root)) === "calling", { what: "the call to hang" });

    // Written as any script may (relay jc does the same), so the time measured is the relay's.
    const written = Date.now();
    await writeJcInput(root, "@session-2: stop and rebase first");
    expect((await waitForFile(inputPath(root, "session-2"))).trim()).toBe("stop and rebase first");
    // Promptly: the hanging call never ends (its timeout is minutes), and JC did not wait for it.
    expect(Date.now() - written).toBeLessThan(30_000);
    // The hanging call is still under way; nothing was sent to session-1.
    expect(await machineState(root)).toBe("calling");
    expect(await exists(inputPath(root, "session-1"))).toBe(false);
    expect(fake.requests).toHaveLength(1);
  });
});

secretsCheck();
