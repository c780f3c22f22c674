// Secrets never leave the process (CONTRACT §8), even when an upstream error message quotes
// them: the stand-in API puts the key (and the page's and ntfy's tokens) into its error messages,
// and every output is searched: relay status (text and JSON), state/status.json, the snapshot,
// the log, queue/.rejected/'s reasons, the status page, the notifications, the daemon's own
// output. The file's last test (secretsCheck) then searches every file under the roots but .env.
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, it, type TestContext } from "vitest";
import { dropEnvelope, killAll, machineState, makeRoot, runCli, Scope, secretLeaks, secretsCheck, TEST_KEY, waitFor } from "../support/cli.js";

afterAll(killAll);

const HTTP_TOKEN = `page-token-${"7".repeat(32)}`;
const NTFY_TOKEN = "tk_e2esecretntfytoken0123456789";
const SECRETS = [TEST_KEY, HTTP_TOKEN, NTFY_TOKEN];
const quoting = `your key ${TEST_KEY} (page ${HTTP_TOKEN}, ntfy ${NTFY_TOKEN}) was refused`;

async function setUp(ctx: TestContext) {
  const scope = await Scope.create(ctx);
  scope.fake.setResponder(() => "all good");
  const root = await makeRoot();
  const vars = scope.vars({ RELAY_HTTP_TOKEN: HTTP_TOKEN, NTFY_TOKEN });
  return { scope, root, vars };
}

/** Every secret absent from `text`, with the place named in the failure. */
function expectClean(expect: TestContext["expect"], what: string, text: string): void {
  for (const secret of SECRETS) expect(text.includes(secret), `${what} quotes a secret`).toBe(false);
}

async function logText(root: string): Promise<string> {
  const names = await readdir(join(root, "logs")).catch(() => []);
  return (await Promise.all(names.map((n) => readFile(join(root, "logs", n), "utf8")))).join("");
}

describe.concurrent("an upstream error message that quotes the secrets", { timeout: 60_000 }, () => {
  it("pausing on a 401: status text and JSON, status.json, snapshot, log, page and the notification carry none of them", async (ctx) => {
    const { expect } = ctx;
    const { scope, root, vars } = await setUp(ctx);
    scope.fake.enqueue({ kind: "error", status: 401, type: "authentication_error", message: quoting });
    const daemon = await scope.start(root, { RELAY_HTTP_TOKEN: HTTP_TOKEN, NTFY_TOKEN }, ["--http", "127.0.0.1:0"]);
    await dropEnvelope(root, "e.json", { session_id: "session-1", content: "hello" });
    await waitFor(async () => (await machineState(root)) === "paused", { what: "the relay to pause" });
    const [note] = await scope.ntfy.waitForMessages(1);
    expectClean(expect, "the paused notification", JSON.stringify(note));
    expect(JSON.stringify(note)).toContain("[redacted]");

    const text = await runCli(["status", "--root", root], { env: vars });
    const json = await runCli(["status", "--json", "--root", root], { env: vars });
    expect((JSON.parse(json.stdout) as { lastError: { message: string } }).lastError.message).toContain("[redacted]");
    expectClean(expect, "relay status", text.stdout + text.stderr);
    expectClean(expect, "relay status --json", json.stdout + json.stderr);
    expectClean(expect, "state/status.json", await readFile(join(root, "state", "status.json"), "utf8"));

    const url = /status page at (http:\/\/\S+)/.exec(daemon.stderr())?.[1];
    expect(url).toBeDefined();
    const headers = { Authorization: `Bearer ${HTTP_TOKEN}` };
    const page = await fetch(new URL("/status.json", url), { headers });
    expectClean(expect, "the page's /status.json", await page.text());
    const ac = new AbortController();
    const events = await fetch(new URL("/events", url), { headers, signal: ac.signal });
    const reader = events.body?.getReader();
    let frame = "";
    while (reader && !/data: .*\n\n/.test(frame)) {
      const { value, done } = await reader.read();
      if (done) break;
      frame += Buffer.from(value).toString("utf8");
    }
    ac.abort();
    expect(frame).toContain("[redacted]");
    expectClean(expect, "the page's /events", frame);

    // stopped, the daemon persists its snapshot (the paused state with the failure's message)
    daemon.child.kill("SIGTERM");
    expect((await daemon.exited).code).toBe(0);
    const snapshot = await readFile(join(root, "state", "snapshot.json"), "utf8");
    expect(snapshot).toContain("[redacted]");
    expectClean(expect, "state/snapshot.json", snapshot);
    expectClean(expect, "logs/", await logText(root));
    expectClean(expect, "the daemon's output", daemon.stdout() + daemon.stderr());
  });

  it("a 400 that is the envelope's fault: its reason in queue/.rejected/ carries none of them", async (ctx) => {
    const { expect } = ctx;
    const { scope, root } = await setUp(ctx);
    scope.fake.enqueue({ kind: "error", status: 400, type: "invalid_request_error", message: `messages.0.content: ${quoting}` });
    const daemon = await scope.start(root, { RELAY_HTTP_TOKEN: HTTP_TOKEN, NTFY_TOKEN });
    await dropEnvelope(root, "e.json", { session_id: "session-1", content: "hello" });
    const reasonFile = join(root, "queue", ".rejected", "e.json.reason.json");
    await waitFor(async () => (await readFile(reasonFile, "utf8").catch(() => "")).includes("redacted"), { what: "the rejection's reason" });
    expectClean(expect, "the rejection's reason", await readFile(reasonFile, "utf8"));
    expectClean(expect, "logs/", await logText(root));
    expectClean(expect, "the daemon's output", daemon.stdout() + daemon.stderr());
  });

  it("the other tokens are nowhere either", async ({ expect }) => {
    for (const secret of [HTTP_TOKEN, NTFY_TOKEN]) expect(await secretLeaks(secret)).toEqual([]);
  });
});

secretsCheck();
