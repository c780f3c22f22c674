// `relay doctor [--json] [--ntfy-test]` (CONTRACT §9): one finding per check, exit 1 on a fail,
// against the local stand-ins for the Messages API (count_tokens) and ntfy.
import { chmod, mkdtemp, readdir, readFile, writeFile } from "node:fs/promises";
import { createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { startFakeAnthropic } from "../support/fake-anthropic.js";
import { configYaml, killAll, makeRoot, removeRoots, runCli, Scope, secretsCheck, TEST_KEY } from "../support/cli.js";

afterAll(async () => {
  await killAll();
  await removeRoots();
});

interface Report {
  ok: boolean;
  checks: { name: string; status: "ok" | "warn" | "fail"; message: string }[];
}

const NAMES = ["node", "root", "config", "env", "key", "api", "prices", "ntfy-publish", "ntfy-replies", "hooks", "service", "lock"];

/** A root made by `relay init`, the key saved from the environment, pointed at this scope's stand-ins. */
async function readyRoot(scope: Scope, config = configYaml()): Promise<string> {
  const root = await makeRoot({ config, dotenv: `ANTHROPIC_BASE_URL=${scope.fake.url}\nNTFY_SERVER=${scope.ntfy.url}\n` });
  const init = await runCli(["init", root, "--key-from-env"], { env: { ANTHROPIC_API_KEY: TEST_KEY } });
  expect(init.code, init.stderr).toBe(0);
  return root;
}

async function doctor(root: string, args: string[] = [], env: Record<string, string | undefined> = {}): Promise<{ code: number | null; report: Report; stdout: string; stderr: string }> {
  const r = await runCli(["doctor", "--root", root, "--json", ...args], { env, timeoutMs: 60_000 });
  return { code: r.code, report: JSON.parse(r.stdout) as Report, stdout: r.stdout, stderr: r.stderr };
}
const finding = (report: Report, name: string) => report.checks.find((c) => c.name === name);

describe("relay doctor", () => {
  it("on a ready root: every check ok, exit 0, the contract's JSON; the key and model checked by one free count_tokens call; no notification sent", async (ctx) => {
    const scope = await Scope.create(ctx);
    const root = await readyRoot(scope);
    const { code, report } = await doctor(root);
    expect(code).toBe(0);
    expect(report.ok).toBe(true);
    expect(report.checks.map((c) => c.name)).toEqual(NAMES);
    for (const c of report.checks) expect(Object.keys(c).sort()).toEqual(["message", "name", "status"]);
    expect(report.checks.filter((c) => c.status !== "ok")).toEqual([]);
    expect(scope.fake.countRequests).toHaveLength(1);
    expect(scope.fake.countRequests[0]?.response.status).toBe(200);
    expect(scope.fake.requests).toHaveLength(0); // nothing billed
    expect(scope.ntfy.messages).toHaveLength(0); // the phone is pinged only with --ntfy-test
    expect(finding(report, "api")?.message).toMatch(/accepts the key and claude-sonnet-4-6/);

    const human = await runCli(["doctor", "--root", root]);
    expect(human.code).toBe(0);
    expect(human.stdout.split("\n").filter((l) => /^(ok|warn|fail) /.test(l))).toHaveLength(NAMES.length);
    expect(human.stdout).toMatch(/^ok +api +/m);
  }, 60_000);

  it("--ntfy-test publishes one test notification to the topic", async (ctx) => {
    const scope = await Scope.create(ctx);
    const root = await readyRoot(scope);
    const { code, report } = await doctor(root, ["--ntfy-test"]);
    expect(code).toBe(0);
    expect(finding(report, "ntfy-publish")?.status).toBe("ok");
    const topic = /^NTFY_TOPIC=(.*)$/m.exec(await readFile(join(root, ".env"), "utf8"))?.[1];
    expect(scope.ntfy.messages.map((m) => [m.topic, m.title])).toEqual([[topic, "relay doctor"]]);
  }, 60_000);

  it("fails, exit 1, on a refused key, never quoting it", async (ctx) => {
    const scope = await Scope.create(ctx);
    const root = await readyRoot(scope);
    const wrong = "sk-ant-wrong-key-for-doctor-0123456789";
    const r = await doctor(root, [], { ANTHROPIC_API_KEY: wrong });
    expect(r.code).toBe(1);
    expect(r.report.ok).toBe(false);
    expect(finding(r.report, "api")).toMatchObject({ status: "fail", message: expect.stringMatching(/refused the key \(401/) });
    expect(`${r.stdout}${r.stderr}`).not.toContain(wrong);
  }, 60_000);

  it("fails on a model the API does not know (404 from count_tokens)", async (ctx) => {
    const fake = await startFakeAnthropic({ apiKey: TEST_KEY, models: ["claude-sonnet-4-6"] });
    ctx.onTestFinished(() => fake.close());
    const scope = await Scope.create(ctx);
    const root = await readyRoot(scope, configYaml({ sessions: ["session-1", { id: "session-2", systemPrompt: "own" }] }).replace("  - id: session-2\n", "  - id: session-2\n    model: claude-nonexistent-9\n"));
    const r = await doctor(root, [], { ANTHROPIC_BASE_URL: fake.url });
    expect(r.code).toBe(1);
    expect(finding(r.report, "api")).toMatchObject({ status: "fail", message: expect.stringMatching(/does not know the model claude-nonexistent-9/) });
    expect(finding(r.report, "prices")?.status).toBe("warn"); // no budget: an unpriced model is a warning
  }, 60_000);

  it("fails on .env readable by others, on the placeholder key, and on an unpriced model under a budget", async (ctx) => {
    const scope = await Scope.create(ctx);
    const root = await readyRoot(scope, `${configYaml({ model: "claude-unpriced-1" })}budget:\n  daily_usd: 5\n`);
    await chmod(join(root, ".env"), 0o644);
    const env = await readFile(join(root, ".env"), "utf8");
    await writeFile(join(root, ".env"), env.replace(/^ANTHROPIC_API_KEY=.*$/m, "ANTHROPIC_API_KEY=sk-ant-..."));
    const r = await doctor(root);
    expect(r.code).toBe(1);
    expect(finding(r.report, "env")).toMatchObject({ status: "fail", message: expect.stringMatching(/mode 0644: other users can read the key; chmod 600/) });
    expect(finding(r.report, "key")).toMatchObject({ status: "fail", message: expect.stringMatching(/placeholder/) });
    expect(finding(r.report, "prices")).toMatchObject({ status: "fail", message: expect.stringMatching(/budget is set but the price of claude-unpriced-1 .*is unknown/) });
  }, 60_000);

  it("never hangs: an API that never answers is a fail after --timeout", async (ctx) => {
    const sockets = new Set<Socket>();
    const silent = createServer((s) => sockets.add(s)); // accepts, never answers
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    ctx.onTestFinished(async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => silent.close(r));
    });
    const port = (silent.address() as { port: number }).port;
    const scope = await Scope.create(ctx);
    const root = await readyRoot(scope);
    const r = await doctor(root, ["--timeout", "2"], { ANTHROPIC_BASE_URL: `http://127.0.0.1:${port}` });
    expect(r.code).toBe(1);
    expect(finding(r.report, "api")).toMatchObject({ status: "fail", message: expect.stringMatching(/no answer within 2 s|did not answer|timed out/i) });
    expect(finding(r.report, "ntfy-replies")?.status).toBe("ok");
  }, 60_000);

  it("checks that the hooks of a project and the service unit point at a node and a relay that exist", async (ctx) => {
    const scope = await Scope.create(ctx);
    const root = await readyRoot(scope);
    const project = await mkdtemp(join(tmpdir(), "relay-project-"));
    const home = await mkdtemp(join(tmpdir(), "relay-home-"));
    expect((await runCli(["hook", "install", "--session", "session-1", "--project", project, "--root", root])).code).toBe(0);
    expect((await runCli(["service", "install", "--user", "--root", root], { env: { HOME: home } })).code).toBe(0);
    const good = await doctor(root, ["--project", project], { HOME: home });
    expect(finding(good.report, "hooks")).toMatchObject({ status: "ok", message: expect.stringMatching(/relay hooks? in .*settings\.local\.json, node and relay present/) });
    expect(finding(good.report, "service")).toMatchObject({ status: "ok", message: expect.stringMatching(/\.service: node and relay present/) });
    expect(good.code).toBe(0);

    // as after a Node upgrade that moved the binary
    const settings = join(project, ".claude", "settings.local.json");
    await writeFile(settings, (await readFile(settings, "utf8")).replaceAll(process.execPath, "/nonexistent/node"));
    const unitDir = join(home, ".config", "systemd", "user");
    const unit = join(unitDir, (await readdir(unitDir))[0] ?? "");
    await writeFile(unit, (await readFile(unit, "utf8")).replace(process.execPath, "/nonexistent/node"));
    const bad = await doctor(root, ["--project", project], { HOME: home });
    expect(bad.code).toBe(1);
    expect(finding(bad.report, "hooks")).toMatchObject({ status: "fail", message: expect.stringMatching(/runs \/nonexistent\/node, which does not exist: run relay hook install again/) });
    expect(finding(bad.report, "service")).toMatchObject({ status: "fail", message: expect.stringMatching(/runs \/nonexistent\/node, which does not exist: run relay service install again/) });
  }, 60_000);

  it("reports the lock held by a running relay, with its pid", async (ctx) => {
    const scope = await Scope.create(ctx);
    const root = await readyRoot(scope);
    const d = await scope.start(root);
    const r = await doctor(root);
    expect(finding(r.report, "lock")).toMatchObject({ status: "ok", message: `a relay is running on this root (pid ${d.pid})` });
  }, 60_000);

  it("on a directory that is not a root: config fails with the way out, exit 1", async () => {
    const dir = await makeRoot({ config: null });
    const r = await doctor(dir);
    expect(r.code).toBe(1);
    expect(finding(r.report, "config")).toMatchObject({ status: "fail", message: `no ${join(dir, "config.yaml")}: relay init ${dir} makes one` });
  });

  secretsCheck();
});
