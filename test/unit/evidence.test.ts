// The evidence block the Stop hook appends: what the turn did, from a transcript written as
// Claude Code writes it (tool_use in assistant entries, tool_result in user entries).
import { execFileSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { formatEvidence, gitDiffStat, redact, turnActivity } from "../../src/claude-code/evidence.js";

const CWD = "/work/project";
let n = 0;
const use = (name: string, input: Record<string, unknown>) => {
  const id = `toolu_${++n}`;
  return { id, line: JSON.stringify({ type: "assistant", message: { role: "assistant", content: [{ type: "tool_use", id, name, input }] } }) };
};
const result = (id: string, content: string, isError = false) =>
  JSON.stringify({ type: "user", message: { role: "user", content: [{ type: "tool_result", tool_use_id: id, content, ...(isError ? { is_error: true } : {}) }] } });
const prompt = (text: string) => JSON.stringify({ type: "user", message: { role: "user", content: text } });
const handedContext = () => JSON.stringify({ type: "attachment", attachment: { type: "hook_additional_context", content: ["[relay r-1] reply"] } });

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe("turnActivity", () => {
  it("lists the last turn's calls in order with Bash exit statuses, and the files written or edited", () => {
    const old = use("Bash", { command: "echo an earlier turn" });
    const failing = use("Bash", { command: "npm test" });
    const ok = use("Bash", { command: "ls" });
    const write = use("Write", { file_path: `${CWD}/src/b.ts`, content: "SECRET CONTENT" });
    const edit = use("Edit", { file_path: `${CWD}/src/a.ts`, old_string: "x", new_string: "y" });
    const denied = use("Bash", { command: "rm -rf build" });
    const outside = use("Read", { file_path: "/etc/hosts" });
    const jsonl = [
      prompt("first task"),
      old.line,
      result(old.id, "an earlier turn"),
      handedContext(), // the reviewer's reply starts the turn that ends now
      failing.line,
      result(failing.id, "Exit code 1\n FAIL  test/a.test.ts > parses empty input\n ✓ other\n×  test/b.test.ts > keeps order", true),
      ok.line,
      result(ok.id, "a.ts\nb.ts"),
      write.line,
      result(write.id, "File created successfully"),
      edit.line,
      result(edit.id, "The file has been updated"),
      denied.line,
      result(denied.id, "This command requires approval", true),
      outside.line,
      result(outside.id, "127.0.0.1 localhost"),
      "{ a line being writ",
    ].join("\n");
    const activity = turnActivity(jsonl, CWD, {});
    expect(activity.calls).toEqual([
      { name: "Bash", target: "npm test", outcome: "exit 1" },
      { name: "Bash", target: "ls", outcome: "exit 0" },
      { name: "Write", target: "src/b.ts", outcome: "ok" },
      { name: "Edit", target: "src/a.ts", outcome: "ok" },
      { name: "Bash", target: "rm -rf build", outcome: "denied" },
      { name: "Read", target: "/etc/hosts", outcome: "ok" },
    ]);
    expect(activity.files).toEqual(["src/a.ts", "src/b.ts"]);
    expect(activity.failingTests).toEqual(["test/a.test.ts > parses empty input", "test/b.test.ts > keeps order"]);
    expect(JSON.stringify(activity)).not.toContain("SECRET CONTENT");
  });

  it("takes failing test names only from test commands, and a call without its result has no outcome", () => {
    const grep = use("Bash", { command: "grep -r FAIL logs/" });
    const pending = use("Bash", { command: "sleep 100" });
    const jsonl = [prompt("go"), grep.line, result(grep.id, "FAIL something in a log"), pending.line].join("\n");
    const activity = turnActivity(jsonl, CWD, {});
    expect(activity.failingTests).toEqual([]);
    expect(activity.calls[1]).toEqual({ name: "Bash", target: "sleep 100", outcome: null });
  });
});

describe("redact", () => {
  it("removes API keys, tokens, VAR=value assignments and secret environment values, and keeps paths", () => {
    const env = { MY_API_KEY: "abcd-1234-secret-value", HOME: "/home/x" };
    const text = redact(
      "curl -H 'Authorization: Bearer abcdefghijklmnop123' sk-ant-api03-XYZ_abc API_TOKEN=xyz echo abcd-1234-secret-value ghp_0123456789abcdefghij0123 /work/project/src/very/long/path/to/some/module/file.ts 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
      env,
    );
    expect(text).not.toMatch(/abcdefghijklmnop123|XYZ_abc|xyz echo|abcd-1234-secret-value|ghp_0123|9f86d081/);
    expect(text).toContain("/work/project/src/very/long/path/to/some/module/file.ts");
    expect(text).toContain("API_TOKEN=«redacted»");
  });
});

describe("formatEvidence", () => {
  const activity = {
    calls: Array.from({ length: 60 }, (_, i) => ({ name: "Bash", target: `step-${i} ${"x".repeat(40)}`, outcome: "exit 0" })),
    files: ["src/a.ts"],
    failingTests: ["t1"],
  };

  it("is deterministic and within the cap, eliding calls from the middle and keeping files, tests and the diff", () => {
    const git = { kind: "stat" as const, text: " src/a.ts | 2 +-\n 1 file changed" };
    const text = formatEvidence(activity, git, 1_500);
    expect(text.length).toBeLessThanOrEqual(1_500);
    expect(text).toBe(formatEvidence(activity, git, 1_500));
    expect(text).toContain("1. Bash `step-0");
    expect(text).toContain("60. Bash `step-59");
    expect(text).toMatch(/… \d+ more calls …/);
    expect(text).toContain("Files written or edited: src/a.ts");
    expect(text).toContain("Failing tests seen: t1");
    expect(text).toContain("git diff --stat HEAD:\n src/a.ts | 2 +-");
  });

  it("says when git was skipped for being slow", () => {
    expect(formatEvidence({ calls: [], files: [], failingTests: [] }, { kind: "skipped", reason: "git took over 800 ms" }, 4_000)).toContain(
      "git diff --stat skipped (git took over 800 ms)",
    );
  });
});

describe("gitDiffStat", () => {
  it("reports the change against HEAD in a repository, nothing outside one", async () => {
    const repo = await mkdtemp(join(tmpdir(), "relay-evidence-"));
    dirs.push(repo);
    expect(await gitDiffStat(repo)).toEqual({ kind: "none" });
    const git = (...args: string[]) => execFileSync("git", ["-C", repo, "-c", "user.name=t", "-c", "user.email=t@example.invalid", ...args], { stdio: "ignore" });
    git("init", "-q");
    await writeFile(join(repo, "a.txt"), "one\n");
    git("add", "a.txt");
    git("commit", "-q", "-m", "one");
    await writeFile(join(repo, "a.txt"), "two\n");
    const stat = await gitDiffStat(repo, 5_000);
    expect(stat.kind).toBe("stat");
    expect(stat.kind === "stat" ? stat.text : "").toMatch(/a\.txt \| 2 \+-/);
  });
});
