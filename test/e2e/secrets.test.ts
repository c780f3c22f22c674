// Secrets never leave the process (CONTRACT §8), even when an upstream error message quotes
// them: the stand-in API puts the key (and the page's and ntfy's tokens) into its error messages,
// and every output is searched: relay status (text and JSON), state/status.json, the snapshot,
// the log, queue/.rejected/'s reasons, the status page, the notifications, the daemon's own
// output. The ntfy topics are scrubbed the same way everywhere but where they are the point: the
// publish request's own `topic` field (and the reply topic in a question's buttons, which a 401
// or a 400 does not bring). The file's last test (secretsCheck) then searches every file under
// the roots but .env.
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, it, type TestContext } from "vitest";
import { dropEnvelope, killAll, machineState, makeRoot, runCli, Scope, secretLeaks, secretsCheck, TEST_KEY, waitFor } from "../support/cli.js";

afterAll(killAll);

const HTTP_TOKEN = `page-token-${"7".repeat(32)}`;
const NTFY_TOKEN = "tk_e2esecretntfytoken0123456789";
const TOPIC = "e2e-topic-secret-0123456789abcdef";
const REPLY_TOPIC = "e2e-reply-topic-secret-0123456789";
const SECRETS = [TEST_KEY, HTTP_TOKEN, NTFY_TOKEN, TOPIC, REPLY_TOPIC];
const quoting = `your key ${TEST_KEY} (page ${HTTP_TOKEN}, ntfy ${NTFY_TOKEN}, topics ${TOPIC} and ${REPLY_TOPIC}) was refused`;
const ENV = { RELAY_HTTP_TOKEN: HTTP_TOKEN, NTFY_TOKEN, NTFY_TOPIC: TOPIC, NTFY_REPLY_TOPIC: REPLY_TOPIC };

async function setUp(ctx: TestContext) {
  const scope = await Scope.create(ctx);
  scope.fake.setResponder(() => "all good");
  const root = await makeRoot();
  const vars = scope.vars(ENV);
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
    const daemon = await scope.start(root, ENV, ["--http", "127.0.0.1:0"]);
    await dropEnvelope(root, "e.json", { session_id: "session-1", content: "hello" });
    await waitFor(async () => (await machineState(root)) === "paused", { what: "the relay to pause" });
    const [note] = await scope.ntfy.waitForMessages(1, 30_000);
    expect(note?.topic).toBe(TOPIC); // the publish request itself names its topic
    const { topic: _, ...shown } = note ?? {};
    expectClean(expect, "the paused notification", JSON.stringify(shown));
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
    const daemon = await scope.start(root, ENV);
    await dropEnvelope(root, "e.json", { session_id: "session-1", content: "hello" });
    const reasonFile = join(root, "queue", ".rejected", "e.json.reason.json");
    await waitFor(async () => (await readFile(reasonFile, "utf8").catch(() => "")).includes("redacted"), { what: "the rejection's reason" });
    expectClean(expect, "the rejection's reason", await readFile(reasonFile, "utf8"));
    expectClean(expect, "logs/", await logText(root));
    expectClean(expect, "the daemon's output", daemon.stdout() + daemon.stderr());
  });

  it("an error line of the CLI quotes no secret or topic of the root's .env", async (ctx) => {
    const { expect } = ctx;
    const root = await makeRoot({ dotenv: `NTFY_TOPIC=${TOPIC}\nNTFY_REPLY_TOPIC=${REPLY_TOPIC}\nNTFY_TOKEN=${NTFY_TOKEN}\n` });
    // an error line that would quote the topic (given as a session id, which the line names)
    const r = await runCli(["send", "--root", root, "--session", TOPIC, "hello"], { env: {} });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("[redacted]");
    expectClean(expect, "the error line", r.stdout + r.stderr);
  });

  it("the other tokens are nowhere either, and the topics only in the publish requests' own topic field", async ({ expect }) => {
    for (const secret of [HTTP_TOKEN, NTFY_TOKEN]) expect(await secretLeaks(secret)).toEqual([]);
    for (const topic of [TOPIC, REPLY_TOPIC]) expect((await secretLeaks(topic)).filter((where) => !where.startsWith("ntfy message"))).toEqual([]);
  });
});

secretsCheck();
