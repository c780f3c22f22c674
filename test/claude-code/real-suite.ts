// The real Claude Code (one tested version per file that calls this), headless, against the relay's hooks as `relay hook
// install` writes them: Claude Code's own model is a lenient local stand-in
// (support/fake-claude-model.ts) whose recorded requests show exactly what Claude Code sends its
// model next; the relay runs against its strict Messages API stand-in. Skips, with the reason,
// only when the pinned versions are neither cached nor installable from the npm registry.
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, type TestContext } from "vitest";
import { plainBlockReason } from "../../src/claude-code/hook.js";
import { RELAY_INTRO } from "../../src/claude-code/handover.js";
import { type ClaudeCodeVersion, type ClaudeWorld, killClaudes, locateClaudeCode, makeClaudeWorld, runClaude } from "../support/claude-code.js";
import { type FakeClaudeModel, messageTexts, type ModelRequest, startFakeClaudeModel } from "../support/fake-claude-model.js";
import { configYaml, exists, inputPath, killAll, lastUserText, makeRoot, readStatusJson, removeRoots, runCli, Scope, waitFor } from "../support/cli.js";

const SESSION = "session-1";

const worlds: ClaudeWorld[] = [];
afterAll(async () => {
  killClaudes();
  await killHooksUnder(worlds.map((w) => w.base));
  await killAll();
  for (const w of worlds.splice(0)) await w.remove();
  await removeRoots();
});

/** One test's Claude Code side: its worlds and model stand-ins. */
interface TestSide {
  worlds: ClaudeWorld[];
  models: FakeClaudeModel[];
}
const sides = new WeakMap<object, TestSide>();

/**
 * The test's own side, ended when that test finishes (its Claude Codes, their hooks, its model
 * stand-ins), not by a file-wide afterEach: the tests of a file run concurrently, and a file-wide
 * teardown would kill a sibling's processes. Registered at the test's first world, after its
 * Scope, so it runs before the Scope's teardown (vitest runs them in reverse).
 */
function sideOf(ctx: TestContext): TestSide {
  let side = sides.get(ctx.task);
  if (side === undefined) {
    const mine: TestSide = { worlds: [], models: [] };
    side = mine;
    sides.set(ctx.task, mine);
    ctx.onTestFinished(async () => {
      for (const w of mine.worlds) killClaudes(w);
      await killHooksUnder(mine.worlds.map((w) => w.base));
      await Promise.all(mine.models.splice(0).map((m) => m.close()));
    });
  }
  return side;
}

/** Hooks run in their own process group and outlive a killed Claude Code: end the ones of these tests. */
async function killHooksUnder(bases: string[]): Promise<void> {
  let pids: string[] = [];
  try {
    pids = (await readdir("/proc")).filter((p) => /^\d+$/.test(p));
  } catch {
    return;
  }
  for (const pid of pids) {
    const cmd = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
    if (cmd.includes("hook") && cmd.includes("claude-") && bases.some((b) => cmd.includes(b))) {
      try {
        process.kill(Number(pid), "SIGKILL");
      } catch {
        // gone
      }
    }
  }
}

/** Every transcript of the world's Claude Code sessions, joined: where a hook's notice is recorded on every version. */
async function transcripts(w: ClaudeWorld): Promise<string> {
  const dir = join(w.home, ".claude", "projects");
  const names = await readdir(dir, { recursive: true }).catch(() => [] as string[]);
  const texts = await Promise.all(names.filter((n) => n.endsWith(".jsonl")).map((n) => readFile(join(dir, n), "utf8").catch(() => "")));
  return texts.join("\n");
}

/** The text the model is shown in a request, all messages joined. */
const shown = (request: ModelRequest | undefined): string => (request ? messageTexts(request).map((m) => `${m.role}: ${m.text}`).join("\n") : "");
const occurrences = (haystack: string, needle: string): number => haystack.split(needle).length - 1;

async function world(ctx: TestContext): Promise<ClaudeWorld> {
  const side = sideOf(ctx);
  const w = await makeClaudeWorld();
  worlds.push(w);
  side.worlds.push(w);
  return w;
}

async function model(ctx: TestContext, script: Parameters<typeof startFakeClaudeModel>[0]): Promise<FakeClaudeModel> {
  const side = sideOf(ctx);
  const m = await startFakeClaudeModel(script);
  side.models.push(m);
  return m;
}

/** A relay root whose config registers SESSION, with the hooks installed into the world's project; the root lives inside the world so stray hooks are found. */
async function relayRootFor(w: ClaudeWorld, installArgs: string[] = [], extraConfig = ""): Promise<string> {
  // max_tokens high enough for the 15,000-character reply (the stand-in cuts replies at max_tokens, as the API does).
  const root = await makeRoot({ config: configYaml({ sessions: [SESSION] }).replace("max_tokens: 1024", "max_tokens: 8192") + extraConfig });
  const res = await runCli(["hook", "install", "--session", SESSION, "--project", w.project, "--root", root, ...installArgs]);
  expect(res.code, res.stderr).toBe(0);
  return root;
}

/**
 * The real-Claude-Code tests for one version (a file per version, so the versions run side by side).
 * They run concurrently: each has its own world (HOME, project), relay root, stand-ins and ports,
 * and each waits much of its time on hooks, the relay and deliberate API delays. The two whose
 * point is a wait of 2–3 s racing a process start (a hook killed at Claude Code's 2 s timeout, a
 * 3 s permission timeout) run alone (`it.sequential`), so a crowded machine cannot decide them.
 */
export function realClaudeCodeSuite(version: ClaudeCodeVersion): void {
  describe.concurrent(`Claude Code ${version}`, () => {
    let bin = "";
    let skipReason: string | null = null;
    beforeAll(async () => {
      const found = await locateClaudeCode(version);
      if (found.ok) bin = found.bin;
      else skipReason = found.reason;
    }, 300_000);

    const claude = (w: ClaudeWorld, m: FakeClaudeModel, args: string[], extra: Parameters<typeof runClaude>[3] extends infer O ? Partial<O> : never = {}) =>
      runClaude(bin, w, args, { env: w.env(m.url), timeoutMs: 90_000, ...extra });

    it("relays the agent's message and hands the reply over once as the reviewer's words; [NEEDS-JC] lets it stop", async (ctx) => {
      if (skipReason) return ctx.skip(skipReason);
      const scope = await Scope.create(ctx);
      const w = await world(ctx);
      const root = await relayRootFor(w, ["--timeout", "60"]);
      const review = "Reviewer: good start. Now add a test for the parser's empty input. END-OF-REVIEW";
      scope.fake.setResponder((req) => (req.lastUserText.includes("Added the test") ? "[NEEDS-JC] Ship it to users now?" : review));
      await scope.start(root);
      const m = await model(ctx, (_req, i) => ({ text: i === 0 ? "I wrote the parser." : "Added the test for empty input." }));

      const run = await claude(w, m, ["-p", "Write the parser.", "--output-format", "stream-json", "--verbose"]);
      expect(run.code, run.stderr).toBe(0);

      // The relay got the agent's two messages; its first reply went back into Claude Code.
      const relayed = scope.fake.requests.map((r) => lastUserText(r));
      expect(relayed.some((t) => t.includes("I wrote the parser."))).toBe(true);
      expect(relayed.some((t) => t.includes("Added the test for empty input."))).toBe(true);
      const turns = m.turns();
      expect(turns).toHaveLength(2);
      const second = shown(turns[1]);
      expect(occurrences(second, "END-OF-REVIEW")).toBe(1); // once: no second copy as a system message
      expect(second).toContain(`Stop hook additional context: ${RELAY_INTRO}`);
      expect(second).toContain("The reviewer's reply to your latest message");
      expect(second).not.toContain("is data");
      expect(second).not.toContain("Stop hook blocking error");
      // The [NEEDS-JC] question held the conversation: the agent stopped, told why.
      expect(run.stdout + (await transcripts(w))).toContain("JC is needed");
      const status = await readStatusJson(root);
      expect(status.questions.map((q) => q.question)).toEqual([expect.stringContaining("Ship it to users now?")]);
      expect(await exists(inputPath(root, SESSION))).toBe(false);
    }, 180_000);

    it("hands a 15,000-character reply over whole", async (ctx) => {
      if (skipReason) return ctx.skip(skipReason);
      const scope = await Scope.create(ctx);
      const w = await world(ctx);
      const root = await relayRootFor(w, ["--timeout", "60"]);
      const review = `Reviewer: LONG-REVIEW-START ${"(step) ".repeat(2_200)}END-OF-LONG-REVIEW`;
      expect(review.length).toBeGreaterThan(15_000);
      scope.fake.setResponder((req) => (req.lastUserText.includes("Read it all") ? "[NEEDS-JC] done?" : review));
      await scope.start(root);
      // Like a model, it reads the file Claude Code names when it shows only a preview.
      const m = await model(ctx, (req, i) => {
        const saved = /Full output saved to: (\S+)/.exec(shown(req));
        if (i === 1 && saved?.[1]) return { tool: "Read", input: { file_path: saved[1] } };
        return { text: i === 0 ? "Planned the work." : "Read it all." };
      });
      const run = await claude(w, m, ["-p", "Plan.", "--output-format", "stream-json", "--verbose"]);
      expect(run.code, run.stderr).toBe(0);
      const turns = m.turns().map(shown);
      if (plainBlockReason(version)) {
        // This version shows a block reason whole, as plain "Stop hook feedback".
        expect(turns[1]).toContain(`Stop hook feedback:\n${RELAY_INTRO}`);
        expect(occurrences(turns[1] ?? "", review)).toBe(1);
      } else {
        // Shown as additional context with a preview and Claude Code's own file, which the agent may read without a prompt.
        expect(turns[1]).toContain("Stop hook additional context");
        expect(turns[1]).toContain("Read the whole file it names");
        expect(turns[1]).not.toContain("is data");
        expect(turns[2]).toContain(review);
      }
    }, 180_000);

    it("the reviewer's request carries the turn's evidence: a failing command and an edited file", async (ctx) => {
      if (skipReason) return ctx.skip(skipReason);
      const scope = await Scope.create(ctx);
      const w = await world(ctx);
      const root = await relayRootFor(w, ["--timeout", "60"]);
      await writeFile(join(w.project, "notes.txt"), "draft\n");
      scope.fake.setResponder(() => "[NEEDS-JC] the tests fail, look?");
      await scope.start(root);
      const m = await model(ctx, (_req, i) =>
        [
          { tool: "Bash", input: { command: "SECRET_TOKEN=hunter2-very-secret ls /definitely-not-here", description: "list" } },
          { tool: "Read", input: { file_path: join(w.project, "notes.txt") } },
          { tool: "Edit", input: { file_path: join(w.project, "notes.txt"), old_string: "draft", new_string: "final" } },
          { text: "All tests pass and the notes are final." },
        ][i] ?? { text: "ok" },
      );
      const run = await claude(w, m, ["-p", "Finish the notes.", "--allowedTools", "Bash", "Read", "Edit", "--output-format", "stream-json", "--verbose"]);
      expect(run.code, run.stderr).toBe(0);
      const relayed = lastUserText(scope.fake.requests[0]);
      expect(relayed).toContain("All tests pass and the notes are final.");
      expect(relayed).toContain("[relay evidence:");
      expect(relayed).toMatch(/1\. Bash `SECRET_TOKEN=«redacted» ls \/definitely-not-here` → exit 2/);
      expect(relayed).toContain("2. Read notes.txt → ok");
      expect(relayed).toContain("3. Edit notes.txt → ok");
      expect(relayed).toContain("Files written or edited: notes.txt");
      expect(relayed).not.toContain("hunter2");
    }, 180_000);

    /** The open permission prompt's id, from status.json. */
    const permissionQuestion = (root: string) =>
      waitFor(async () => (await readStatusJson(root).catch(() => null))?.questions.find((q) => q.kind === "permission"), { timeoutMs: 60_000, what: "the permission prompt at the relay" });

    /** 2.1.197 does not run PermissionRequest hooks in -p (it decides the prompt itself); 2.1.332 does (FACTS). */
    const runsPermissionHooks = version !== "2.1.197";

    if (!runsPermissionHooks)
      it("this version decides a -p permission prompt itself: nothing reaches JC, nothing is left behind", async (ctx) => {
      if (skipReason) return ctx.skip(skipReason);
      const scope = await Scope.create(ctx);
      const w = await world(ctx);
      const root = await relayRootFor(w, ["--timeout", "60", "--permissions"]);
      scope.fake.setResponder(() => "[NEEDS-JC] done?");
      await scope.start(root);
      const m = await model(ctx, (_req, i) => (i === 0 ? { tool: "Bash", input: { command: "touch made-by-agent.txt", description: "make the file" } } : { text: "Finished." }));
      const run = await claude(w, m, ["-p", "Make the file.", "--output-format", "stream-json", "--verbose"]);
      expect(run.code, run.stderr).toBe(0);
      expect(await exists(join(w.project, "made-by-agent.txt"))).toBe(false);
      expect(await readdir(join(root, "state", "permissions")).catch(() => [])).toEqual([]);
      expect((await readStatusJson(root)).questions.filter((x) => x.kind === "permission")).toEqual([]);
    }, 180_000);

    const answers = [
      { answer: "allow", runs: true, toolResult: /completed with no output|^$/ },
      { answer: "deny: not in this repo", runs: false, toolResult: /JC denied this: deny: not in this repo/ },
    ];
    for (const { answer, runs, toolResult } of runsPermissionHooks ? answers : [])
      it(`a permission prompt goes to JC; answering "${answer}" decides it`, async (ctx) => {
      if (skipReason) return ctx.skip(skipReason);
      const scope = await Scope.create(ctx);
      const w = await world(ctx);
      const root = await relayRootFor(w, ["--timeout", "60", "--permissions"]);
      scope.fake.setResponder(() => "[NEEDS-JC] done?");
      await scope.start(root);
      const m = await model(ctx, (_req, i) => (i === 0 ? { tool: "Bash", input: { command: "touch made-by-agent.txt", description: "make the file" } } : { text: "Finished." }));
      const run = claude(w, m, ["-p", "Make the file.", "--output-format", "stream-json", "--verbose"]);
      const q = await permissionQuestion(root);
      expect(q.question).toContain("touch made-by-agent.txt");
      expect(q.question).toContain("make the file");
      const jc = await runCli(["jc", "--root", root, "--question", q.id, answer]);
      expect(jc.code, jc.stderr).toBe(0);
      const done = await run;
      expect(done.code, done.stderr).toBe(0);
      expect(await exists(join(w.project, "made-by-agent.txt"))).toBe(runs);
      const afterTool = messageTexts(m.turns()[1] as ModelRequest).at(-1)?.text ?? "";
      expect(afterTool).toMatch(toolResult);
      // The prompt is closed: the relay's conversation was never held by it.
      expect((await readStatusJson(root)).questions.filter((x) => x.kind === "permission")).toEqual([]);
    }, 180_000);

    if (runsPermissionHooks)
      it.sequential("no answer in time denies the prompt, and a late answer is refused", async (ctx) => {
      if (skipReason) return ctx.skip(skipReason);
      const scope = await Scope.create(ctx);
      const w = await world(ctx);
      const root = await relayRootFor(w, ["--timeout", "60", "--permissions", "--permission-timeout", "3"]);
      scope.fake.setResponder(() => "[NEEDS-JC] done?");
      await scope.start(root);
      const m = await model(ctx, (_req, i) => (i === 0 ? { tool: "Bash", input: { command: "touch never.txt", description: "x" } } : { text: "Gave up." }));
      const run = claude(w, m, ["-p", "Make it.", "--output-format", "stream-json", "--verbose"]);
      const q = await permissionQuestion(root);
      const done = await run;
      expect(done.code, done.stderr).toBe(0);
      expect(await exists(join(w.project, "never.txt"))).toBe(false);
      expect(messageTexts(m.turns()[1] as ModelRequest).at(-1)?.text ?? "").toMatch(/no answer from JC within 3 s: denied/);
      await waitFor(async () => !(await readStatusJson(root)).questions.some((x) => x.id === q.id), { what: "the withdrawn prompt closed" });
      await runCli(["jc", "--root", root, "--question", q.id, "allow"]);
      await waitFor(() => readFile(join(root, "state", "jc_input.rejected.txt"), "utf8").then((t) => t.includes(`question ${q.id} is not open`)).catch(() => false), {
        timeoutMs: 20_000,
        what: "the late answer refused",
      });
    }, 180_000);

    if (runsPermissionHooks)
      it("permissions.policy: a command it covers is allowed by chat-Claude without JC; one it does not cover goes to JC", async (ctx) => {
      if (skipReason) return ctx.skip(skipReason);
      const scope = await Scope.create(ctx);
      const w = await world(ctx);
      const root = await relayRootFor(w, ["--timeout", "60", "--permissions"], 'permissions:\n  policy:\n    - {tool: Bash, command: "touch policy-*"}\n');
      scope.fake.setResponder((req) => (req.lastUserText.includes("asks permission to run Bash") ? "ALLOW: it only creates an empty file in the project." : "[NEEDS-JC] done?"));
      await scope.start(root);
      const m = await model(ctx, (_req, i) =>
        [
          { tool: "Bash", input: { command: "touch policy-made.txt", description: "make the policy file" } },
          { tool: "Bash", input: { command: "touch jc-made.txt", description: "make the other file" } },
          { text: "Finished." },
        ][i] ?? { text: "ok" },
      );
      const run = claude(w, m, ["-p", "Make both files.", "--output-format", "stream-json", "--verbose"]);
      // The covered command ran without a question to JC; the other one waits for JC.
      const q = await permissionQuestion(root);
      expect(q.question).toContain("touch jc-made.txt");
      expect(await exists(join(w.project, "policy-made.txt"))).toBe(true);
      const asked = scope.fake.requests.map((r) => lastUserText(r)).filter((t) => t.includes("asks permission to run Bash"));
      expect(asked).toHaveLength(1);
      expect(asked[0]).toContain("Command: touch policy-made.txt");
      expect(asked[0]).toContain("The agent's reason: make the policy file");
      // JC's notification goes out over HTTP beside status.json's write, which may come first.
      const permissionNotes = () => scope.ntfy.messages.filter((n) => (n.title ?? "").includes("asks permission")).map((n) => n.message);
      await waitFor(() => permissionNotes().length > 0, { timeoutMs: 30_000, what: "JC's notification of the prompt" });
      expect(permissionNotes()).toEqual([expect.stringContaining("touch jc-made.txt")]);
      const jc = await runCli(["jc", "--root", root, "--question", q.id, "deny: not that one"]);
      expect(jc.code, jc.stderr).toBe(0);
      const done = await run;
      expect(done.code, done.stderr).toBe(0);
      expect(await exists(join(w.project, "jc-made.txt"))).toBe(false);
      const log = await readFile(join(root, "logs", "relay.jsonl"), "utf8");
      expect(log).toContain('"by":"chat-claude (policy)"');
      expect(log).toContain('"by":"jc"');
    }, 180_000);

    // Plain `claude -p` exits right after starting a StopFailure hook and kills it (measured on both
    // versions: a shell hook lives, a node one is killed while it starts), so the session here is
    // driven as the Agent SDK drives it, standard input kept open, as an interactive session stays.
    it("StopFailure: a streak of turns ending on API errors notifies JC once, with the command that resumes the session", async (ctx) => {
      if (skipReason) return ctx.skip(skipReason);
      const scope = await Scope.create(ctx);
      const w = await world(ctx);
      const root = await relayRootFor(w, ["--timeout", "60"]);
      await scope.start(root);
      const m = await model(ctx, () => ({ error: { status: 429, type: "rate_limit_error", message: "Number of request tokens has exceeded your per-minute rate limit" } }));
      const failureFile = join(root, "state", "stop-failures", `${SESSION}.json`);
      const count = async () => ((await exists(failureFile)) ? (JSON.parse(await readFile(failureFile, "utf8")) as { count: number }).count : 0);
      // The second message goes in once the first failure is recorded, so it is a turn of its own.
      const oneFailure = waitFor(async () => (await count()) >= 1, { timeoutMs: 75_000, what: "the first failure recorded" }).catch(() => undefined);
      const twoFailures = oneFailure.then(() => waitFor(async () => (await count()) >= 2, { timeoutMs: 75_000, what: "two failures recorded in one streak" })).catch(() => undefined);
      // CLAUDE_CODE_MAX_RETRIES=0: Claude Code gives up on the first 429 instead of retrying for minutes.
      const run = await claude(w, m, ["-p", "--input-format", "stream-json", "--output-format", "stream-json", "--verbose"], {
        env: w.env(m.url, { CLAUDE_CODE_MAX_RETRIES: "0" }),
        stdinMessages: ["Work."],
        laterStdinMessages: { after: oneFailure, messages: ["Work again."] },
        closeStdinAfter: twoFailures,
        timeoutMs: 165_000,
      });
      expect(run.stdout).toContain("rate_limit");
      expect(await count(), `requests the model got: ${m.turns().length}`).toBe(2);
      const notes = scope.ntfy.messages.filter((n) => (n.title ?? "").includes("stopped on an API error"));
      const note = notes[0] ?? (await waitFor(() => scope.ntfy.messages.find((n) => (n.title ?? "").includes("stopped on an API error")), { timeoutMs: 30_000, what: "JC's notification" }));
      expect(note.message).toContain("API error (rate_limit)");
      expect(note.message).toContain("per-minute rate limit");
      expect(note.message).toMatch(new RegExp(`cd ${w.project} && claude --resume [0-9a-f-]{36}`));
      await new Promise((r) => setTimeout(r, 1_000)); // polls of the relay: still one notification
      expect(scope.ntfy.messages.filter((n) => (n.title ?? "").includes("stopped on an API error"))).toHaveLength(1);
    }, 180_000);

    it("lets the agent stop at once when no relay runs", async (ctx) => {
      if (skipReason) return ctx.skip(skipReason);
      const w = await world(ctx);
      const root = await relayRootFor(w);
      const m = await model(ctx, () => ({ text: "Done with the task." }));
      const run = await claude(w, m, ["-p", "Do the task.", "--output-format", "stream-json", "--verbose"]);
      expect(run.code, run.stderr).toBe(0);
      expect(m.turns()).toHaveLength(1);
      expect(run.stdout + (await transcripts(w))).toContain("no relay is running");
      expect(await readdir(join(root, "queue")).catch(() => [])).toEqual([]);
    }, 120_000);

    it("a reply Claude Code dropped (--max-turns) is handed over again in the next session, once", async (ctx) => {
      if (skipReason) return ctx.skip(skipReason);
      const scope = await Scope.create(ctx);
      const w = await world(ctx);
      const root = await relayRootFor(w, ["--timeout", "60"]);
      scope.fake.setResponder((req) => (req.lastUserText.includes("first run") ? "Reviewer: DROPPED-THEN-REDELIVERED please refactor." : "[NEEDS-JC] done?"));
      await scope.start(root);
      const m = await model(ctx, (req) => ({ text: shown(req).includes("Second task") ? "Second task: refactored." : "This is the first run's answer." }));

      const first = await claude(w, m, ["-p", "First task.", "--max-turns", "1", "--output-format", "stream-json", "--verbose"]);
      expect(first.code).not.toBeNull();
      expect(m.turns()).toHaveLength(1); // Claude Code ended the run: the reply never reached its model
      expect(await exists(inputPath(root, SESSION))).toBe(false); // the hook took it (the relay's acknowledgement)

      const second = await claude(w, m, ["-p", "Second task.", "--output-format", "stream-json", "--verbose"]);
      expect(second.code, second.stderr).toBe(0);
      const turns = m.turns();
      expect(turns.length).toBeGreaterThanOrEqual(2);
      const firstOfSecond = shown(turns[1]);
      expect(occurrences(firstOfSecond, "DROPPED-THEN-REDELIVERED")).toBe(1);
      // Delivered now: the session after that is not handed it again.
      const third = await claude(w, m, ["-p", "Third task.", "--output-format", "stream-json", "--verbose"]);
      expect(third.code).toBe(0);
      expect(shown(m.turns().at(-1))).not.toContain("DROPPED-THEN-REDELIVERED");
    }, 240_000);

    it("a reply Claude Code dropped at its block cap is handed over again in the next session, once", async (ctx) => {
      if (skipReason) return ctx.skip(skipReason);
      const scope = await Scope.create(ctx);
      const w = await world(ctx);
      const root = await relayRootFor(w, ["--timeout", "60"]);
      let n = 0;
      scope.fake.setResponder((req) => (req.lastUserText.includes("Next session") ? "[NEEDS-JC] stop" : `Reviewer: CAPPED-REPLY-${++n} keep going.`));
      await scope.start(root);
      const m = await model(ctx, (req) => ({ text: shown(req).includes("Next task") ? "Next session: picked it up." : "Working on it." }));
      // Cap 1: the first hand-over continues the turn, the second is dropped by Claude Code.
      const capped = await claude(w, m, ["-p", "Task.", "--output-format", "stream-json", "--verbose"], { env: w.env(m.url, { CLAUDE_CODE_STOP_HOOK_BLOCK_CAP: "1" }) });
      expect(capped.code).toBe(0);
      expect(m.turns()).toHaveLength(2);
      expect(shown(m.turns()[1])).toContain("CAPPED-REPLY-1");
      expect(m.turns().map(shown).join("\n")).not.toContain("CAPPED-REPLY-2");

      const next = await claude(w, m, ["-p", "Next task.", "--output-format", "stream-json", "--verbose"]);
      expect(next.code, next.stderr).toBe(0);
      expect(occurrences(shown(m.turns()[2]), "CAPPED-REPLY-2")).toBe(1);
      expect(shown(m.turns()[2])).not.toContain("CAPPED-REPLY-1");
    }, 240_000);

    // On 2.1.197 the next -p session found the relay session still bound to the first one after its
    // Stop hook was killed (its binding is then released only by --release-after): checked on 2.1.332.
    if (version !== "2.1.197")
    it.sequential("the hook killed at Claude Code's timeout loses nothing: the reply is handed over, labelled late, at the next session's start", async (ctx) => {
      if (skipReason) return ctx.skip(skipReason);
      const scope = await Scope.create(ctx);
      const w = await world(ctx);
      const root = await relayRootFor(w, ["--timeout", "60"]);
      // Claude Code's own timeout for the Stop hook cut to 2 s: it kills the waiting hook.
      const settingsFile = join(w.project, ".claude", "settings.local.json");
      const settings = JSON.parse(await readFile(settingsFile, "utf8")) as { hooks: { Stop: { hooks: { timeout: number }[] }[] } };
      for (const group of settings.hooks.Stop) for (const hook of group.hooks) hook.timeout = 2;
      await writeFile(settingsFile, JSON.stringify(settings));
      scope.fake.setResponder((req) => (req.lastUserText.includes("Killed-hook task") ? "Reviewer: KILLED-HOOK-REPLY check the logs." : "[NEEDS-JC] done?"));
      scope.fake.setDelay((req) => (req.lastUserText.includes("Killed-hook task") ? 5_000 : 0));
      await scope.start(root);
      const m = await model(ctx, (req) => ({ text: shown(req).includes("KILLED-HOOK-REPLY") ? "Checked the logs." : "Killed-hook task done." }));

      const first = await claude(w, m, ["-p", "Do it.", "--output-format", "stream-json", "--verbose"]);
      expect(first.code).toBe(0);
      expect(m.turns()).toHaveLength(1);
      await waitFor(() => exists(inputPath(root, SESSION)), { timeoutMs: 30_000, what: "the reply after the hook was killed" });

      const next = await claude(w, m, ["-p", "Go on.", "--output-format", "stream-json", "--verbose"]);
      expect(next.code, next.stderr).toBe(0);
      const firstOfNext = shown(m.turns()[1]);
      expect(occurrences(firstOfNext, "KILLED-HOOK-REPLY")).toBe(1);
      expect(firstOfNext).toMatch(/late reply from the reviewer to your earlier message/i);
    }, 240_000);

    it("a reply Claude Code dropped (--max-turns) and replays itself on --continue is not doubled", async (ctx) => {
      if (skipReason) return ctx.skip(skipReason);
      const scope = await Scope.create(ctx);
      const w = await world(ctx);
      const root = await relayRootFor(w, ["--timeout", "60"]);
      scope.fake.setResponder((req) => (req.lastUserText.includes("first run") ? "Reviewer: REPLAYED-NOT-DOUBLED tidy up." : "[NEEDS-JC] done?"));
      await scope.start(root);
      const m = await model(ctx, (req) => ({ text: shown(req).includes("Go on") ? "Tidied up." : "This is the first run's answer." }));

      await claude(w, m, ["-p", "First task.", "--max-turns", "1", "--output-format", "stream-json", "--verbose"]);
      expect(m.turns()).toHaveLength(1);
      const next = await claude(w, m, ["-p", "--continue", "Go on.", "--output-format", "stream-json", "--verbose"]);
      expect(next.code, next.stderr).toBe(0);
      expect(occurrences(shown(m.turns()[1]), "REPLAYED-NOT-DOUBLED")).toBe(1);
    }, 240_000);

    it("wake mode in plain -p: the dropped wake is handed over at the next session's start", async (ctx) => {
      if (skipReason) return ctx.skip(skipReason);
      const scope = await Scope.create(ctx);
      const w = await world(ctx);
      const root = await relayRootFor(w, ["--mode", "wake", "--timeout", "60", "--max-turns", "1"]);
      // Not a question after the second step: a wake-mode hook waits through a question, and plain -p waits for it.
      scope.fake.setResponder((req) => (req.lastUserText.includes("first") ? "Reviewer: WAKE-DROPPED-BY-P now document it." : "Reviewer: fine."));
      await scope.start(root);
      const m = await model(ctx, (req) => ({ text: shown(req).includes("Second") ? "Documented." : "The first step is done." }));

      const first = await claude(w, m, ["-p", "First step.", "--output-format", "stream-json", "--verbose"]);
      expect(first.code).toBe(0);
      expect(m.turns()).toHaveLength(1); // -p dropped the wake
      const second = await claude(w, m, ["-p", "Second step.", "--output-format", "stream-json", "--verbose"]);
      expect(second.code, second.stderr).toBe(0);
      expect(occurrences(shown(m.turns()[1]), "WAKE-DROPPED-BY-P")).toBe(1);
    }, 240_000);

    it("a late reply is handed over labelled as late at --continue (SessionStart)", async (ctx) => {
      if (skipReason) return ctx.skip(skipReason);
      const scope = await Scope.create(ctx);
      const w = await world(ctx);
      const root = await relayRootFor(w, ["--timeout", "2"]);
      scope.fake.setResponder(() => "Reviewer: LATE-BUT-LABELLED looks fine.");
      scope.fake.setDelay(() => 5_000);
      await scope.start(root);
      const m = await model(ctx, () => ({ text: "Implemented the cache." }));

      const first = await claude(w, m, ["-p", "Implement the cache.", "--output-format", "stream-json", "--verbose"]);
      expect(first.code).toBe(0);
      expect(first.stdout + (await transcripts(w))).toContain("no reply from the relay in time");
      await waitFor(() => exists(inputPath(root, SESSION)), { timeoutMs: 20_000, what: "the late reply" });

      scope.fake.setDelay(null);
      scope.fake.setResponder(() => "[NEEDS-JC] stop here");
      const next = await claude(w, m, ["-p", "--continue", "Go on.", "--output-format", "stream-json", "--verbose"]);
      expect(next.code, next.stderr).toBe(0);
      const firstOfNext = shown(m.turns()[1]);
      expect(occurrences(firstOfNext, "LATE-BUT-LABELLED")).toBe(1);
      expect(firstOfNext).toMatch(/late reply from the reviewer to your earlier message/i);
    }, 240_000);

    it("wake mode: the agent stops at once and the reply wakes it (stream-json session)", async (ctx) => {
      if (skipReason) return ctx.skip(skipReason);
      const scope = await Scope.create(ctx);
      const w = await world(ctx);
      // --max-turns 1: the stop after the woken turn lets the agent stop at once, so the session can end.
      const root = await relayRootFor(w, ["--mode", "wake", "--timeout", "120", "--max-turns", "1"]);
      scope.fake.setResponder((req) => (req.lastUserText.includes("woken") ? "[NEEDS-JC] all good?" : "Reviewer: WAKE-REPLY run the linter."));
      scope.fake.setDelay(() => 3_000);
      await scope.start(root);
      const m = await model(ctx, (req) => ({ text: shown(req).includes("WAKE-REPLY") ? "I was woken and ran the linter." : "Finished the first step." }));

      const results = (out: string): number => out.split("\n").filter((l) => l.includes('"type":"result"')).length;
      const run = await claude(w, m, ["-p", "--input-format", "stream-json", "--output-format", "stream-json", "--verbose"], {
        stdinMessages: ["Do the first step."],
        closeStdinWhen: (out) => results(out) >= 2,
      });
      expect(run.code, run.stderr).toBe(0);
      const turns = m.turns();
      expect(turns).toHaveLength(2);
      expect(occurrences(shown(turns[1]), "WAKE-REPLY")).toBe(1);
      expect(shown(turns[1])).toContain("The reviewer's reply to your latest message");
    }, 240_000);

    it("a second Claude Code session on the same relay session is told so and let stop; it takes no reply", async (ctx) => {
      if (skipReason) return ctx.skip(skipReason);
      const scope = await Scope.create(ctx);
      const w = await world(ctx);
      const root = await relayRootFor(w, ["--timeout", "60"]);
      scope.fake.setResponder((req) => (req.lastUserText.includes("first session") ? "Reviewer: FOR-THE-FIRST-ONLY" : "[NEEDS-JC] ok?"));
      // The first session's reply is held until the second session has run, however long that takes.
      let releaseFirst = (): void => undefined;
      const firstHeld = new Promise<void>((resolve) => (releaseFirst = resolve));
      ctx.onTestFinished(() => releaseFirst());
      scope.fake.setDelay((req) => (req.lastUserText.includes("first session") ? firstHeld : 0));
      await scope.start(root);
      const m1 = await model(ctx, (_req, i) => ({ text: i === 0 ? "This is the first session." : "Done, thanks." }));
      const m2 = await model(ctx, () => ({ text: "This is the second session." }));

      const firstRun = claude(w, m1, ["-p", "Work.", "--output-format", "stream-json", "--verbose"]);
      await waitFor(() => scope.fake.requests.length > 0, { timeoutMs: 60_000, what: "the first session's message at the relay" });
      const secondRun = await claude(w, m2, ["-p", "Work too.", "--output-format", "stream-json", "--verbose"]);
      releaseFirst();
      expect(secondRun.code).toBe(0);
      expect(secondRun.stdout + (await transcripts(w))).toContain("is bound to another Claude Code session");
      const first = await firstRun;
      expect(first.code).toBe(0);
      expect(shown(m1.turns()[1])).toContain("FOR-THE-FIRST-ONLY");
      expect(m2.turns().map(shown).join("\n")).not.toContain("FOR-THE-FIRST-ONLY");
      expect(scope.fake.requests.map((r) => lastUserText(r)).join("\n")).not.toContain("This is the second session.");
    }, 240_000);
  });
}
