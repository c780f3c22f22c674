import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createLogger, humanLine, scrubber } from "../../src/runtime/log.js";

/** Any Unicode scalar value (fast-check's "binary" unit is much slower to warm up). */
const anyChar = fc
  .oneof({ weight: 3, arbitrary: fc.integer({ min: 0, max: 0x7f }) }, fc.integer({ min: 0x80, max: 0xd7ff }), fc.integer({ min: 0xe000, max: 0x10ffff }))
  .map((c) => String.fromCodePoint(c));

const KEY = "sk-ant-api03-Zx9_unitTestSecretKey-0123456789abcdef";
const TOKEN = "tk_unit0token0value0123";

describe("scrubber", () => {
  it("removes every occurrence of the key in a line", () => {
    const scrub = scrubber([KEY]);
    const line = `{"msg":"key ${KEY} again ${KEY}${KEY}","header":"Bearer ${KEY}"}`;
    const out = scrub(line);
    expect(out).not.toContain(KEY);
    expect(out).toBe(`{"msg":"key [redacted] again [redacted][redacted]","header":"Bearer [redacted]"}`);
  });

  it("removes every one of several secrets", () => {
    const out = scrubber([KEY, undefined, TOKEN])(`${TOKEN} and ${KEY}`);
    expect(out).toBe("[redacted] and [redacted]");
  });

  it("treats regex metacharacters in a secret literally", () => {
    const secret = "a.b+c*d?(e)[f]{g}|h^$\\";
    const scrub = scrubber([secret]);
    expect(scrub(`x${secret}y`)).toBe("x[redacted]y");
    expect(scrub("aXb+c*d?(e)[f]{g}|h^$\\")).toBe("aXb+c*d?(e)[f]{g}|h^$\\");
  });

  it("with no usable secret (missing or too short to be one) lines pass unchanged", () => {
    expect(scrubber([undefined, "", "short"])("short line")).toBe("short line");
  });

  it("property: a key-shaped secret never survives, wherever it hides in the line", () => {
    const keyChars = fc.constantFrom(..."abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-");
    fc.assert(
      fc.property(
        fc.string({ unit: keyChars, minLength: 8, maxLength: 60 }),
        fc.array(fc.string({ unit: anyChar, maxLength: 20 }), { minLength: 1, maxLength: 5 }),
        (secret, pieces) => {
          const line = pieces.join(secret);
          const out = scrubber([secret])(line.includes(secret) ? line : `${line}${secret}`);
          expect(out).not.toContain(secret);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("createLogger", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "relay-log-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const logsDir = () => join(dir, "logs");
  const lines = async () => (await readFile(join(logsDir(), "relay.jsonl"), "utf8")).split("\n").filter(Boolean);

  it("writes one JSON object per line to logs/relay.jsonl (creating logs/), debug included", async () => {
    const log = createLogger({ logsDir: logsDir(), terminal: null, secrets: [KEY] });
    log.info({ session: "session-1" }, "relayed");
    log.debug({ n: 2 }, "detail");
    const records = (await lines()).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(records).toHaveLength(2);
    expect(records[0]).toMatchObject({ level: 30, msg: "relayed", session: "session-1", pid: process.pid });
    expect(records[1]).toMatchObject({ level: 20, msg: "detail", n: 2 });
  });

  it("scrubs the key from the message, field values, nested objects, errors and child bindings", async () => {
    const log = createLogger({ logsDir: logsDir(), terminal: null, secrets: [KEY] });
    log.info({ apiKey: KEY, nested: { headers: { authorization: `Bearer ${KEY}` } }, list: [KEY] }, `calling with ${KEY}`);
    log.error({ err: new Error(`401 invalid key ${KEY}`) }, "failed");
    log.child({ session: "session-1", token: KEY }).warn("child line");
    const text = await readFile(join(logsDir(), "relay.jsonl"), "utf8");
    expect(text).not.toContain(KEY);
    expect(text).toContain("[redacted]");
    const all = await lines();
    expect(all).toHaveLength(3);
    for (const line of all) expect(() => JSON.parse(line) as unknown).not.toThrow();
    expect(JSON.parse(all[0] ?? "{}")).toMatchObject({ apiKey: "[redacted]", msg: "calling with [redacted]" });
  });

  it("the terminal gets readable lines at info and above, scrubbed too", async () => {
    const chunks: string[] = [];
    const terminal = new Writable({
      write(chunk: Buffer, _enc, done) {
        chunks.push(chunk.toString("utf8"));
        done();
      },
    });
    const log = createLogger({ logsDir: logsDir(), terminal, secrets: [KEY] });
    log.debug("not on the terminal");
    log.info({ session: "session-1", key: KEY }, "relayed");
    const out = chunks.join("");
    expect(out).not.toContain(KEY);
    expect(out).not.toContain("not on the terminal");
    expect(out).toMatch(/^\d\d:\d\d:\d\d info {2}relayed session=session-1 key=\[redacted\]\n$/);
  });
});

describe("humanLine", () => {
  const time = Date.UTC(2026, 4, 2, 12, 0, 1);

  it("renders time, level, message and the extra fields, dropping the noisy ones", () => {
    const json = JSON.stringify({ level: 30, time, pid: 1, hostname: "h", msg: "relayed", session: "session-1", n: 3, ok: true });
    expect(humanLine(json)).toBe("12:00:01 info  relayed session=session-1 n=3 ok=true\n");
  });

  it("shows warnings and errors loudly", () => {
    expect(humanLine(JSON.stringify({ level: 40, time, msg: "w" }))).toBe("12:00:01 WARN  w\n");
    expect(humanLine(JSON.stringify({ level: 50, time, msg: "e" }))).toBe("12:00:01 ERROR e\n");
  });

  it("shortens long string values to 80 characters", () => {
    const line = humanLine(JSON.stringify({ level: 30, time, msg: "m", long: "x".repeat(200) }));
    expect(line).toBe(`12:00:01 info  m long=${"x".repeat(77)}...\n`);
  });

  it("returns a line that is not JSON unchanged", () => {
    expect(humanLine("not json")).toBe("not json");
  });

  it("property: never throws on any input", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.jsonValue().map((v) => JSON.stringify(v))), (s) => {
        expect(typeof humanLine(s)).toBe("string");
      }),
      { numRuns: 300 },
    );
  });
});
