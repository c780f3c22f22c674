// Failures never stop the relay (CONTRACT §8): a transient API failure keeps the envelope and
// retries (honouring retry-after); a permanent one pauses with one notification until
// `relay resume`; a failure is told apart by its type and message, not its status alone; a
// hanging ntfy never delays the main loop.
import { join } from "node:path";
import { afterAll, describe, it, type TestContext } from "vitest";
import {
  dropEnvelope,
  exists,
  inputPath,
  killAll,
  machineState,
  makeRoot,
  queueNames,
  runCli,
  Scope,
  secretsCheck,
  settle,
  TEST_KEY,
  waitFor,
  waitForFile,
  writeJcInput,
} from "../support/cli.js";

// The cases run concurrently (each mostly waits): every test has its own root, fakes and daemon
// in a Scope, torn down when that test finishes; killAll is the backstop.
afterAll(killAll);

async function setUp(ctx: TestContext) {
  const scope = await Scope.create(ctx);
  scope.fake.setResponder(() => "all good");
  return { scope, fake: scope.fake, ntfy: scope.ntfy, root: await makeRoot(), vars: scope.vars() };
}

describe.concurrent("API failures", () => {
  it("keeps the envelope through a transient 529 and retries no sooner than retry-after", async (ctx) => {
    const { expect } = ctx;
    const { scope, fake, root } = await setUp(ctx);
    fake.enqueue({ kind: "error", status: 529, type: "overloaded_error", message: "Overloaded", headers: { "retry-after": "1" } });
    await scope.start(root);
    await dropEnvelope(root, "e.json", { session_id: "session-1", content: "msg-overloaded" });

    await waitFor(() => fake.requests.length === 1 && fake.requests[0]?.response.status === 529, { what: "the failed call" });
    expect(await queueNames(root)).toEqual(["e.json"]);
    expect(await waitForFile(inputPath(root, "session-1"), 5_000)).toBe("all good");
    expect(fake.requests).toHaveLength(2);
    const [first, second] = fake.requests;
    expect((second?.at ?? 0) - (first?.at ?? 0)).toBeGreaterThanOrEqual(1_000);
    await waitFor(async () => (await queueNames(root)).length === 0, { what: "the queue file to go" });
  });

  it("pauses on a refused key (401) with one notification, keeps the envelope, and retries on `relay resume`", async (ctx) => {
    const { expect } = ctx;
    const { scope, fake, ntfy, root, vars } = await setUp(ctx);
    fake.enqueue({ kind: "error", status: 401, type: "authentication_error", message: "invalid x-api-key" });
    await scope.start(root);
    await dropEnvelope(root, "e.json", { session_id: "session-1", content: "msg-refused-key" });

    await waitFor(async () => (await machineState(root)) === "paused", { what: "the relay to pause" });
    const [note] = await ntfy.waitForMessages(1);
    expect(JSON.stringify(note)).toMatch(/401|authentication|refuse/i);
    await settle(5);
    expect(fake.requests).toHaveLength(1);
    expect(ntfy.messages).toHaveLength(1);
    expect(await queueNames(root)).toEqual(["e.json"]);
    expect(await exists(join(root, "queue", ".rejected", "e.json"))).toBe(false);

    const status = await runCli(["status", "--json", "--root", root], { env: vars });
    const s = JSON.parse(status.stdout) as { state: string; lastError: { message: string } | null };
    expect(s.state).toBe("paused");
    expect(s.lastError?.message).toMatch(/401/);
    expect(status.stdout).not.toContain(TEST_KEY);

    expect((await runCli(["resume", "--root", root], { env: vars })).code).toBe(0);
    expect(await waitForFile(inputPath(root, "session-1"))).toBe("all good");
    expect(fake.requests).toHaveLength(2);
    await waitFor(async () => (await queueNames(root)).length === 0, { what: "the queue file to go" });
  });

  it("pauses on an exhausted credit balance (a 400) instead of rejecting the envelope", async (ctx) => {
    const { expect } = ctx;
    const { scope, fake, ntfy, root } = await setUp(ctx);
    fake.enqueue({
      kind: "error",
      status: 400,
      type: "invalid_request_error",
      message: "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.",
    });
    await scope.start(root);
    await dropEnvelope(root, "e.json", { session_id: "session-1", content: "msg-no-credit" });
    await waitFor(async () => (await machineState(root)) === "paused", { what: "the relay to pause" });
    await ntfy.waitForMessages(1);
    await settle(3);
    expect(await queueNames(root)).toEqual(["e.json"]);
    expect(await exists(join(root, "queue", ".rejected", "e.json"))).toBe(false);
    expect(fake.requests).toHaveLength(1);
  });

  it("pauses on the monthly spend cap (a 429 with enforced_spend_limit_reached) instead of retrying", async (ctx) => {
    const { expect } = ctx;
    const { scope, fake, ntfy, root } = await setUp(ctx);
    fake.enqueue({
      kind: "error",
      status: 429,
      type: "rate_limit_error",
      message: "You have reached your specified API usage limits. You will regain access on 2026-12-01 at 00:00 UTC.",
      details: { error_code: "enforced_spend_limit_reached" },
    });
    await scope.start(root);
    await dropEnvelope(root, "e.json", { session_id: "session-1", content: "msg-spend-cap" });
    await waitFor(async () => (await machineState(root)) === "paused", { what: "the relay to pause" });
    await ntfy.waitForMessages(1);
    await settle(3);
    expect(fake.requests).toHaveLength(1);
    expect(await queueNames(root)).toEqual(["e.json"]);
  });
});

describe.concurrent("ntfy", () => {
  it("never delays the relay when ntfy hangs", async (ctx) => {
    const { expect } = ctx;
    const { scope, fake, ntfy, root } = await setUp(ctx);
    ntfy.setMode("hang");
    fake.enqueue({ kind: "reply", text: "[NEEDS-JC] Merge now?" });
    await scope.start(root);
    await dropEnvelope(root, "a.json", { session_id: "session-1", content: "msg-a" });
    await waitFor(async () => (await machineState(root)) === "needsJc", { what: "needsJc" });
    await waitFor(() => ntfy.requests.length >= 1, { what: "the (hanging) publish" });
    const publishing = Date.now();

    // The relay answers JC and the next envelope while the publish still hangs: a main loop that
    // waited for ntfy would sit out its 5-second timeout first.
    await writeJcInput(root, "@session-1: merge it");
    await dropEnvelope(root, "b.json", { session_id: "session-2", content: "msg-b" });
    expect((await waitForFile(inputPath(root, "session-1"))).trim()).toBe("merge it");
    expect(await waitForFile(inputPath(root, "session-2"))).toBe("all good");
    expect(Date.now() - publishing).toBeLessThan(4_000);
  });
});

secretsCheck();
