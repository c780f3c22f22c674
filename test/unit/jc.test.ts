import { mkdir, mkdtemp, readFile, rm, stat, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { claimedJcFiles, claimJcInput, parseJcInput, releaseJcClaim } from "../../src/operator/jc-input.js";
import { relayPaths, type RelayPaths } from "../../src/config/paths.js";

/** Any Unicode scalar value (fast-check's "binary" unit is much slower to warm up). */
const anyChar = fc
  .oneof({ weight: 3, arbitrary: fc.integer({ min: 0, max: 0x7f }) }, fc.integer({ min: 0x80, max: 0xd7ff }), fc.integer({ min: 0xe000, max: 0x10ffff }))
  .map((c) => String.fromCodePoint(c));

const SESSION_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

describe("parseJcInput", () => {
  it("`@session-1: text` is a direct dispatch to that session", () => {
    expect(parseJcInput("@session-1: do X")).toEqual({ kind: "direct", session: "session-1", text: "do X" });
  });

  it("the space after the colon is optional and surrounding whitespace is trimmed", () => {
    expect(parseJcInput("@session-1:do X")).toEqual({ kind: "direct", session: "session-1", text: "do X" });
    expect(parseJcInput("  @s.2_x-y:\t  do X  \n\n")).toEqual({ kind: "direct", session: "s.2_x-y", text: "do X" });
  });

  it("multi-line direct text keeps its inner lines", () => {
    expect(parseJcInput("@session-2: first line\n\n  second line\nthird")).toEqual({
      kind: "direct",
      session: "session-2",
      text: "first line\n\n  second line\nthird",
    });
    expect(parseJcInput("@session-2:\nbody on the next line")).toEqual({ kind: "direct", session: "session-2", text: "body on the next line" });
  });

  it("plain text is a chat turn, trimmed, with inner lines kept", () => {
    expect(parseJcInput("  Go ahead with plan B.\nThanks\n")).toEqual({ kind: "chat", text: "Go ahead with plan B.\nThanks" });
  });

  it("a mention that is not at the start stays chat", () => {
    expect(parseJcInput("tell @session-1: do X")).toEqual({ kind: "chat", text: "tell @session-1: do X" });
  });

  it("empty or whitespace-only input is empty", () => {
    for (const raw of ["", "   ", "\n\n\t", "\uFEFF", "\uFEFF  \n"]) expect(parseJcInput(raw)).toEqual({ kind: "empty" });
  });

  it("a byte-order mark at the start does not hide a direct dispatch", () => {
    expect(parseJcInput("\uFEFF@session-1: hi")).toEqual({ kind: "direct", session: "session-1", text: "hi" });
  });

  it("`@session-1:` with no text is empty, not a dispatch of nothing", () => {
    expect(parseJcInput("@session-1:")).toEqual({ kind: "empty" });
    expect(parseJcInput("@session-1:   \n ")).toEqual({ kind: "empty" });
  });

  for (const raw of ["@bad id: hello", "@../etc: hello", "@-x: hello", "@: hello", "@session-1 : hello", `@${"a".repeat(65)}: hello`]) {
    it(`${JSON.stringify(raw.slice(0, 20))} is not a valid mention, so the whole text is chat`, () => {
      expect(parseJcInput(raw)).toEqual({ kind: "chat", text: raw.trim() });
    });
  }

  it("property: never throws; direct has a valid session and non-empty text; chat is the trimmed input; only a {...} can be invalid", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: anyChar }), fc.string().map((s) => `@${s}`), fc.string().map((s) => `@session-1:${s}`)), (raw) => {
        const parsed = parseJcInput(raw);
        switch (parsed.kind) {
          case "direct":
            expect(parsed.session).toMatch(SESSION_ID_RE);
            expect(parsed.text.trim()).toBe(parsed.text);
            expect(parsed.text).not.toBe("");
            break;
          case "chat":
            expect(parsed.text).toBe(raw.replace(/^\uFEFF/, "").trim());
            expect(parsed.text).not.toBe("");
            break;
          case "empty":
            expect(raw.replace(/^\uFEFF/, "").trim().replace(/^@[A-Za-z0-9][A-Za-z0-9._-]{0,63}:/, "").trim()).toBe("");
            break;
          case "invalid":
            // only a JSON object can be invalid; any other text is chat
            expect(raw.replace(/^\uFEFF/, "").trim().startsWith("{")).toBe(true);
            break;
        }
      }),
      { numRuns: 1000 },
    );
  });

  it("property: `@<valid id>: <text>` always parses back to that id and the trimmed text", () => {
    fc.assert(
      fc.property(fc.stringMatching(SESSION_ID_RE), fc.string({ unit: anyChar, minLength: 1 }).filter((s) => s.trim() !== ""), (id, text) => {
        expect(parseJcInput(`@${id}: ${text}`)).toEqual({ kind: "direct", session: id, text: text.trim() });
      }),
      { numRuns: 500 },
    );
  });
});

describe("claimJcInput / releaseJcClaim", () => {
  let root: string;
  let paths: RelayPaths;

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), "relay-jc-"));
    paths = relayPaths(root);
    await mkdir(paths.state, { recursive: true });
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  const exists = (path: string) =>
    stat(path).then(
      () => true,
      () => false,
    );

  it("nothing to claim gives null", async () => {
    expect(await claimJcInput(paths)).toBeNull();
  });

  it("a claim takes jc_input.txt away and returns its text", async () => {
    await writeFile(paths.jcInput, "@session-1: go");
    const claim = await claimJcInput(paths);
    expect(claim).toMatchObject({ kind: "read", raw: "@session-1: go" });
    expect(claim?.id).toMatch(/^jc-[0-9a-f]+$/);
    expect(await exists(paths.jcInput)).toBe(false);
    expect(await claimedJcFiles(paths)).toHaveLength(1);
  });

  it("a claim survives a crash: claiming again before release gives the same id and text", async () => {
    await writeFile(paths.jcInput, "answer one");
    const first = await claimJcInput(paths);
    // simulated crash: nothing released; the next run claims again
    const again = await claimJcInput(paths);
    expect(again).toEqual(first);
    const [claimed] = await claimedJcFiles(paths);
    expect(await readFile(claimed ?? "", "utf8")).toBe("answer one");
  });

  it("a new jc_input.txt written after a claim is not lost: it comes next, after the release", async () => {
    await writeFile(paths.jcInput, "answer one");
    const first = await claimJcInput(paths);
    await writeFile(paths.jcInput, "answer two");
    const stillFirst = await claimJcInput(paths);
    expect(stillFirst).toEqual(first);
    expect(await readFile(paths.jcInput, "utf8")).toBe("answer two");
    expect(await releaseJcClaim(paths, first?.id ?? "")).toBe(true);
    const second = await claimJcInput(paths);
    expect(second).toMatchObject({ kind: "read", raw: "answer two" });
    expect(second?.id).not.toBe(first?.id);
  });

  it("release removes only the claim, and a second release is a no-op", async () => {
    await writeFile(paths.jcInput, "x");
    const claim = await claimJcInput(paths);
    expect(await releaseJcClaim(paths, claim?.id ?? "")).toBe(true);
    expect(await releaseJcClaim(paths, claim?.id ?? "")).toBe(false);
    expect(await claimJcInput(paths)).toBeNull();
  });

  it("two identical answers written one after the other (same clock tick) get distinct ids", async () => {
    const tick = new Date("2026-05-02T15:30:00.004Z");
    await writeFile(paths.jcInput, "yes");
    await utimes(paths.jcInput, tick, tick);
    const first = await claimJcInput(paths);
    await releaseJcClaim(paths, first?.id ?? "");
    await writeFile(paths.jcInput, "yes");
    await utimes(paths.jcInput, tick, tick);
    const second = await claimJcInput(paths);
    expect(second).toMatchObject({ kind: "read", raw: "yes" });
    expect(second?.id).not.toBe(first?.id);
  });
});
