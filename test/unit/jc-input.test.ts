import { execFileSync } from "node:child_process";
import { lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { claimedJcFiles, claimJcInput, JC_WRITE_SETTLE_MS, MAX_JC_INPUT_BYTES, parseJcInput, refuseJcInput, releaseJcClaim } from "../../src/operator/jc-input.js";
import { relayPaths, type RelayPaths } from "../../src/config/paths.js";

describe("parseJcInput: the JSON object form", () => {
  it('{"direct": true, "session", "text"} is a direct dispatch', () => {
    expect(parseJcInput('{"direct": true, "session": "session-1", "text": "do X"}')).toEqual({ kind: "direct", session: "session-1", text: "do X" });
  });

  it('{"text", "question"} is a chat turn answering that question', () => {
    expect(parseJcInput('{"text": "yes, merge", "question": "q-7"}')).toEqual({ kind: "chat", text: "yes, merge", question: "q-7" });
  });

  it('{"text", "session"} is a chat turn in that session\'s conversation', () => {
    expect(parseJcInput('{"text": "how is it going?", "session": "session-2"}')).toEqual({ kind: "chat", text: "how is it going?", session: "session-2" });
  });

  it('{"text"} alone is a plain chat turn, and unknown keys are ignored', () => {
    expect(parseJcInput('{"text": "hello", "from": "phone", "n": 3}')).toEqual({ kind: "chat", text: "hello" });
  });

  it('"direct": false is a chat turn, not a dispatch', () => {
    expect(parseJcInput('{"direct": false, "session": "session-1", "text": "x"}')).toEqual({ kind: "chat", text: "x", session: "session-1" });
  });

  it("the text of the JSON form is taken as is (trimmed), even when it looks like a mention", () => {
    expect(parseJcInput('{"text": "  @session-1: go  ", "question": "q-1"}')).toEqual({ kind: "chat", text: "@session-1: go", question: "q-1" });
  });

  it("a byte-order mark and surrounding whitespace do not hide the JSON form", () => {
    expect(parseJcInput('\uFEFF  {"text": "ok", "question": "q-1"}\n')).toEqual({ kind: "chat", text: "ok", question: "q-1" });
  });

  const invalid: [string, RegExp][] = [
    ['{"direct": true, "text": "do X"}', /direct requires a session/],
    ['{"session": "session-1"}', /text/],
    ['{"text": ""}', /text must be a non-empty string/],
    ['{"text": "   "}', /text must be a non-empty string/],
    ['{"text": 42}', /text must be a non-empty string/],
    ['{"text": "x", "session": "../etc"}', /session must match/],
    ['{"text": "x", "session": 7}', /session must be a string/],
    ['{"text": "x", "question": ""}', /question must be a non-empty string/],
    ['{"text": "x", "question": 3}', /question must be a non-empty string/],
    ['{"direct": "yes", "session": "s", "text": "x"}', /direct must be true or false/],
    ['{"text": "x", "question": "q-1", "session": "session-1"}', /not both/],
    ['{"direct": true, "session": "s", "text": "x", "question": "q-1"}', /not a question/],
    ["{}", /text/],
  ];
  for (const [raw, reason] of invalid) {
    it(`${raw} is invalid, with a one-line reason`, () => {
      const parsed = parseJcInput(raw);
      expect(parsed.kind).toBe("invalid");
      if (parsed.kind !== "invalid") return;
      expect(parsed.reason).toMatch(reason);
      expect(parsed.reason).not.toContain("\n");
    });
  }

  for (const raw of ["{not json at all}", "{ curly prose", '{"text": "x"} and more', "[1, 2]", '{"text": "unterminated'])
    it(`${JSON.stringify(raw)} is not a JSON object, so it is a plain chat turn`, () => {
      expect(parseJcInput(raw)).toEqual({ kind: "chat", text: raw });
    });
});

describe("claimJcInput reads safely", () => {
  let root: string;
  let paths: RelayPaths;
  let outside: string;

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), "relay-jc-safe-"));
    paths = relayPaths(root);
    await mkdir(paths.state, { recursive: true });
    outside = join(root, "outside-secret.txt");
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("a regular file is read and returned with its id", async () => {
    await writeFile(paths.jcInput, "\uFEFF@session-1: go");
    const claim = await claimJcInput(paths);
    expect(claim).toEqual({ id: expect.stringMatching(/^jc-[0-9a-f]{16}$/) as unknown, kind: "read", raw: "\uFEFF@session-1: go" });
  });

  it("an empty file created a moment ago is left alone (a shell's `>` creates it before writing it), and taken once it is written", async () => {
    await writeFile(paths.jcInput, "");
    const created = (await stat(paths.jcInput)).mtimeMs;
    expect(await claimJcInput(paths, { nowMs: created + JC_WRITE_SETTLE_MS / 2 })).toBeNull();
    expect(await readFile(paths.jcInput, "utf8")).toBe("");
    await writeFile(paths.jcInput, "@session-1: go", { flag: "a" });
    expect(await claimJcInput(paths, { nowMs: created + JC_WRITE_SETTLE_MS / 2 })).toMatchObject({ kind: "read", raw: "@session-1: go" });
  });

  it("an empty file that stays empty past the settle time is taken (to be refused as empty), also when its date is in the future", async () => {
    await writeFile(paths.jcInput, "");
    const created = (await stat(paths.jcInput)).mtimeMs;
    expect(await claimJcInput(paths, { nowMs: created + JC_WRITE_SETTLE_MS + 1 })).toMatchObject({ kind: "read", raw: "" });
    await writeFile(paths.jcInput, "");
    const again = (await stat(paths.jcInput)).mtimeMs;
    expect(await claimJcInput(paths, { nowMs: again - 3_600_000 })).toMatchObject({ kind: "read", raw: "" });
  });

  it("a symlink is refused, never followed: its target is neither read nor touched, and release removes only the link", async () => {
    await writeFile(outside, "TOP SECRET");
    await symlink(outside, paths.jcInput);
    const before = await stat(outside);
    const claim = await claimJcInput(paths);
    expect(claim).toMatchObject({ kind: "refused", reason: expect.stringMatching(/symlink/) as unknown });
    expect(JSON.stringify(claim)).not.toContain("TOP SECRET");
    expect(await releaseJcClaim(paths, claim?.id ?? "")).toBe(true);
    const after = await stat(outside);
    expect(await readFile(outside, "utf8")).toBe("TOP SECRET");
    expect(after.atimeMs).toBe(before.atimeMs);
    expect(after.mtimeMs).toBe(before.mtimeMs);
    expect(await claimedJcFiles(paths)).toEqual([]);
  });

  it("a FIFO is refused at once, without blocking on it, and release removes it", async () => {
    execFileSync("mkfifo", [paths.jcInput]);
    const started = performance.now();
    const claim = await claimJcInput(paths);
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(claim).toMatchObject({ kind: "refused", reason: expect.stringMatching(/FIFO/) as unknown });
    expect(await releaseJcClaim(paths, claim?.id ?? "")).toBe(true);
    expect(await readdir(paths.state)).toEqual([]);
  }, 5_000);

  it("a directory is refused and release removes it", async () => {
    await mkdir(paths.jcInput);
    await writeFile(join(paths.jcInput, "inside"), "x");
    const claim = await claimJcInput(paths);
    expect(claim).toMatchObject({ kind: "refused", reason: expect.stringMatching(/directory/) as unknown });
    expect(await releaseJcClaim(paths, claim?.id ?? "")).toBe(true);
    expect(await readdir(paths.state)).toEqual([]);
  });

  it("a file of exactly 1 MiB is read", async () => {
    await writeFile(paths.jcInput, "a".repeat(MAX_JC_INPUT_BYTES));
    const claim = await claimJcInput(paths);
    expect(claim?.kind).toBe("read");
    if (claim?.kind === "read") expect(claim.raw).toHaveLength(MAX_JC_INPUT_BYTES);
  });

  it("a file of 1 MiB + 1 byte is refused unread", async () => {
    await writeFile(paths.jcInput, "a".repeat(MAX_JC_INPUT_BYTES + 1));
    const claim = await claimJcInput(paths);
    expect(claim).toMatchObject({ kind: "refused", reason: expect.stringMatching(/over 1 MiB/) as unknown });
    expect(claim).not.toHaveProperty("raw");
  });

  it("a refused claim left by a crash is refused again on the next start, with the same id", async () => {
    await symlink(outside, paths.jcInput);
    const first = await claimJcInput(paths);
    const again = await claimJcInput(paths);
    expect(again).toEqual(first);
    expect((await lstat((await claimedJcFiles(paths))[0] ?? "")).isSymbolicLink()).toBe(true);
  });
});

describe("refuseJcInput", () => {
  let root: string;
  let paths: RelayPaths;
  const rejected = () => readFile(join(paths.state, "jc_input.rejected.txt"), "utf8");

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), "relay-jc-refuse-"));
    paths = relayPaths(root);
    await mkdir(paths.state, { recursive: true });
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("writes the reason as the whole first line, then the refused text as it was read", async () => {
    await refuseJcInput(paths, "@session-9 is not a session in config.yaml", "@session-9: go\nsecond line\n");
    expect(await rejected()).toBe("@session-9 is not a session in config.yaml\n@session-9: go\nsecond line\n");
  });

  it("writes only the reason when the input was refused unread", async () => {
    await refuseJcInput(paths, "state/jc_input.txt is over 1 MiB; removed unread", null);
    expect(await rejected()).toBe("state/jc_input.txt is over 1 MiB; removed unread\n");
  });

  it("keeps the reason on one line even when it spans several", async () => {
    await refuseJcInput(paths, "first\nsecond\r\nthird", "text");
    expect((await rejected()).split("\n")).toEqual(["first second third", "text"]);
  });

  it("replaces an earlier refusal and leaves no temporary file", async () => {
    await refuseJcInput(paths, "old reason", "old text");
    await refuseJcInput(paths, "new reason", "new text");
    expect(await rejected()).toBe("new reason\nnew text");
    expect(await readdir(paths.state)).toEqual(["jc_input.rejected.txt"]);
  });
});
