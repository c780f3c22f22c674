import { execFileSync } from "node:child_process";
import { lstat, mkdir, mkdtemp, readFile, readdir, readlink, rm, symlink, unlink, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { relayPaths, type RelayPaths } from "../../src/config/paths.js";
import { countRejected, envelopeId, isInProgressName, listQueue, MAX_CONTENT_BYTES, parseEnvelope, readEntry, rejectFile, SETTLE_MS, type QueueEntry } from "../../src/transport/file/queue.js";

/** Any Unicode scalar value (fast-check's "binary" unit is much slower to warm up). */
const anyChar = fc
  .oneof({ weight: 3, arbitrary: fc.integer({ min: 0, max: 0x7f }) }, fc.integer({ min: 0x80, max: 0xd7ff }), fc.integer({ min: 0xe000, max: 0x10ffff }))
  .map((c) => String.fromCodePoint(c));

const SESSIONS = new Set(["session-1", "session-2"]);
const SESSION_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const buf = (value: unknown) => Buffer.from(JSON.stringify(value), "utf8");

function expectVerdict(result: ReturnType<typeof parseEnvelope>): void {
  if (result.ok) {
    expect(SESSION_ID_RE.test(result.session)).toBe(true);
    expect(typeof result.content).toBe("string");
  } else {
    expect(typeof result.reason).toBe("string");
    expect(result.reason.length).toBeGreaterThan(0);
  }
}

describe("parseEnvelope: never throws, always a verdict", () => {
  it("arbitrary bytes give ok or a reason", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2048 }), (bytes) => {
        expectVerdict(parseEnvelope(Buffer.from(bytes), SESSIONS));
      }),
      { numRuns: 300 },
    );
  });

  it("arbitrary JSON values give ok or a reason", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        expectVerdict(parseEnvelope(buf(value), SESSIONS));
      }),
      { numRuns: 300 },
    );
  });

  it("objects with the right keys and arbitrary JSON values give ok or a reason", () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.jsonValue(), fc.option(fc.jsonValue(), { nil: undefined }), (session, content, timestamp) => {
        expectVerdict(parseEnvelope(buf({ session_id: session, content, timestamp }), SESSIONS));
      }),
      { numRuns: 300 },
    );
  });

  it("deeply nested JSON (arrays and objects, 100000 levels) gives a reason, not a stack overflow", () => {
    for (const [open, close] of [
      ["[", "]"],
      ['{"a":', "}"],
    ] as const) {
      const deep = Buffer.from(`${open.repeat(100_000)}1${close.repeat(100_000)}`);
      const result = parseEnvelope(deep, SESSIONS);
      expect(result.ok).toBe(false);
      const inField = Buffer.from(`{"session_id":"session-1","content":"x","extra":${open.repeat(50_000)}1${close.repeat(50_000)}}`);
      expectVerdict(parseEnvelope(inField, SESSIONS));
    }
  });

  it("NUL bytes, raw or escaped, give ok or a reason", () => {
    expectVerdict(parseEnvelope(Buffer.from([0, 0, 0]), SESSIONS));
    expectVerdict(parseEnvelope(Buffer.from('{"session_id":"session-1","content":"a\u0000b"}'), SESSIONS));
    expectVerdict(parseEnvelope(Buffer.from('{"session_id":"session-1\\u0000","content":"x"}'), SESSIONS));
    expect(parseEnvelope(Buffer.from('{"session_id":"session-1\\u0000","content":"x"}'), SESSIONS).ok).toBe(false);
    const withNul = parseEnvelope(buf({ session_id: "session-1", content: "a\u0000b" }), SESSIONS);
    expect(withNul).toEqual({ ok: true, session: "session-1", content: "a\u0000b" });
  });

  it("unicode of every kind (including lone surrogates and invalid UTF-8) gives ok or a reason", () => {
    const loneSurrogate = fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c));
    fc.assert(
      fc.property(
        fc.oneof(fc.string({ unit: anyChar }), fc.string({ unit: "grapheme" }), fc.string({ unit: loneSurrogate })),
        fc.oneof(fc.string({ unit: anyChar }), fc.string({ unit: loneSurrogate })),
        (session, content) => {
          expectVerdict(parseEnvelope(buf({ session_id: session, content }), SESSIONS));
          expectVerdict(parseEnvelope(Buffer.from(`{"session_id":"${session}","content":"${content}"}`, "utf8"), SESSIONS));
        },
      ),
      { numRuns: 300 },
    );
    expectVerdict(parseEnvelope(Buffer.from([0x7b, 0xff, 0xfe, 0xc3, 0x28, 0x7d]), SESSIONS));
  });
});

describe("parseEnvelope: valid envelopes", () => {
  const sessionId = fc.stringMatching(SESSION_ID_RE);
  const content = fc.string({ unit: anyChar, minLength: 1, maxLength: 200 }).filter((s) => s.trim() !== "");
  const isoTime = fc.oneof(
    fc.date({ min: new Date("1970-01-01T00:00:00Z"), max: new Date("9999-12-31T23:59:59Z"), noInvalidDate: true }).map((d) => d.toISOString()),
    fc.date({ min: new Date("2000-01-01T00:00:00Z"), max: new Date("2100-01-01T00:00:00Z"), noInvalidDate: true }).map((d) => d.toISOString().replace(/\.\d{3}Z$/, "+02:00")),
  );

  it("round-trip: session, content and timestamp come back exactly, extra fields ignored", () => {
    fc.assert(
      fc.property(sessionId, content, fc.option(isoTime, { nil: undefined }), fc.dictionary(fc.string(), fc.jsonValue(), { maxKeys: 3 }), (session, text, timestamp, extra) => {
        const { session_id: _s, content: _c, timestamp: _t, ...others } = extra;
        const raw = buf({ ...others, session_id: session, content: text, ...(timestamp === undefined ? {} : { timestamp }) });
        const result = parseEnvelope(raw, new Set([session]));
        expect(result).toEqual({ ok: true, session, content: text, ...(timestamp === undefined ? {} : { timestamp }) });
      }),
      { numRuns: 300 },
    );
  });

  it("the contract's own example is accepted", () => {
    const raw = Buffer.from('{"session_id": "session-1", "timestamp": "2026-05-02T15:30:00Z", "content": "Sub-PR A is open at #438."}');
    expect(parseEnvelope(raw, SESSIONS)).toEqual({ ok: true, session: "session-1", content: "Sub-PR A is open at #438.", timestamp: "2026-05-02T15:30:00Z" });
  });
});

describe("parseEnvelope: refusals", () => {
  const refused = (value: unknown, sessions: ReadonlySet<string> = SESSIONS) => {
    const result = parseEnvelope(buf(value), sessions);
    expect(result.ok).toBe(false);
    return result.ok ? "" : result.reason;
  };

  for (const id of ["..", "../session-1", "a/b", "/etc/passwd", "séssion", "セッション", "a".repeat(65), "", ".hidden", "-x", "a b", "a\nb", "session-1/"]) {
    it(`refuses session id ${JSON.stringify(id.slice(0, 24))} even when it is registered`, () => {
      expect(refused({ session_id: id, content: "x" }, new Set([...SESSIONS, id]))).toMatch(/session_id/);
    });
  }

  it("accepts a 64-character session id and refuses 65", () => {
    const id64 = `a${"b".repeat(63)}`;
    expect(parseEnvelope(buf({ session_id: id64, content: "x" }), new Set([id64])).ok).toBe(true);
    expect(refused({ session_id: `${id64}c`, content: "x" }, new Set([`${id64}c`]))).toMatch(/session_id/);
  });

  it("refuses a well-formed session id that is not registered", () => {
    expect(refused({ session_id: "session-9", content: "x" })).toMatch(/not registered/);
  });

  it("property: any session id failing the pattern is refused", () => {
    fc.assert(
      fc.property(fc.string({ unit: anyChar, maxLength: 80 }).filter((s) => !SESSION_ID_RE.test(s)), (id) => {
        expect(parseEnvelope(buf({ session_id: id, content: "x" }), new Set([id])).ok).toBe(false);
      }),
      { numRuns: 300 },
    );
  });

  it("content of exactly 1 MiB in UTF-8 bytes (2-byte chars) is accepted; one byte more is refused", () => {
    const exact = "é".repeat(MAX_CONTENT_BYTES / 2);
    expect(Buffer.byteLength(exact)).toBe(MAX_CONTENT_BYTES);
    expect(parseEnvelope(buf({ session_id: "session-1", content: exact }), SESSIONS).ok).toBe(true);
    expect(refused({ session_id: "session-1", content: `${exact}a` })).toMatch(/1 MiB/);
  });

  it("the limit counts UTF-8 bytes, not characters (3- and 4-byte chars)", () => {
    const euro = "€".repeat(Math.floor(MAX_CONTENT_BYTES / 3)); // 1048575 bytes
    expect(parseEnvelope(buf({ session_id: "session-1", content: `${euro}a` }), SESSIONS).ok).toBe(true);
    expect(refused({ session_id: "session-1", content: `${euro}é` })).toMatch(/1 MiB/);
    const emoji = "😀".repeat(MAX_CONTENT_BYTES / 4);
    expect(parseEnvelope(buf({ session_id: "session-1", content: emoji }), SESSIONS).ok).toBe(true);
    expect(refused({ session_id: "session-1", content: `${emoji}a` })).toMatch(/1 MiB/);
    // 600000 characters is far below 1 Mi characters but 1.2 MB of UTF-8
    expect(refused({ session_id: "session-1", content: "é".repeat(600_000) })).toMatch(/1 MiB/);
  });

  for (const [label, value, pattern] of [
    ["missing session_id", { content: "x" }, /session_id is missing/],
    ["missing content", { session_id: "session-1" }, /content is missing/],
    ["empty content", { session_id: "session-1", content: "" }, /content/],
    ["whitespace-only content", { session_id: "session-1", content: " \n\t " }, /content/],
    ["numeric content", { session_id: "session-1", content: 42 }, /content/],
    ["null content", { session_id: "session-1", content: null }, /content/],
    ["numeric session_id", { session_id: 1, content: "x" }, /session_id/],
    ["an array", [{ session_id: "session-1", content: "x" }], /object/],
    ["null", null, /object/],
    ["a string", "session-1", /object/],
  ] as const) {
    it(`refuses ${label}`, () => {
      expect(refused(value)).toMatch(pattern);
    });
  }

  it("refuses invalid JSON and marks it as a JSON failure (for the settle window)", () => {
    const result = parseEnvelope(Buffer.from('{"session_id": "session-1", "cont'), SESSIONS);
    expect(result).toMatchObject({ ok: false, json: false });
    const typed = parseEnvelope(buf({ session_id: "session-1" }), SESSIONS);
    expect(typed).toMatchObject({ ok: false, json: true });
  });

  for (const ts of ["yesterday", "2026-13-01T00:00:00Z", "2026-02-30T10:00:00Z", "1714663800", ""]) {
    it(`refuses a timestamp that is not ISO 8601 (${JSON.stringify(ts)})`, () => {
      expect(refused({ session_id: "session-1", content: "x", timestamp: ts })).toMatch(/timestamp/);
    });
  }

  it("refuses a numeric timestamp", () => {
    expect(refused({ session_id: "session-1", content: "x", timestamp: 1714663800 })).toMatch(/timestamp/);
  });

  for (const ts of ["2026-05-02T15:30:00Z", "2026-05-02T15:30:00.123Z", "2026-05-02T17:30:00+02:00", "2026-05-02T15:30:00.123456+00:00"]) {
    it(`accepts the ISO 8601 timestamp ${ts}`, () => {
      expect(parseEnvelope(buf({ session_id: "session-1", content: "x", timestamp: ts }), SESSIONS)).toMatchObject({ ok: true, timestamp: ts });
    });
  }

  it("accepts an ISO 8601 local time without offset (what Python's datetime.now().isoformat() writes)", () => {
    const ts = "2026-05-02T15:30:00.123456";
    expect(parseEnvelope(buf({ session_id: "session-1", content: "x", timestamp: ts }), SESSIONS)).toMatchObject({ ok: true, timestamp: ts });
  });
});

describe("queue/ on disk", () => {
  let root: string;
  let outside: string;
  let paths: RelayPaths;

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), "relay-queue-"));
    outside = await mkdtemp(join(tmpdir(), "relay-outside-"));
    paths = relayPaths(root);
    await mkdir(paths.rejected, { recursive: true });
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
    await rm(outside, { recursive: true, force: true });
  });

  const q = (name: string) => join(paths.queue, name);
  const envelope = (content = "hello", session = "session-1") => JSON.stringify({ session_id: session, content });
  async function put(name: string, data: string | Buffer, mtimeSec?: number): Promise<void> {
    await writeFile(q(name), data);
    if (mtimeSec !== undefined) await utimes(q(name), mtimeSec, mtimeSec);
  }
  const entryOf = async (name: string): Promise<QueueEntry> => {
    const entry = (await listQueue(paths)).find((e) => e.name === name);
    if (!entry) throw new Error(`${name} is not listed`);
    return entry;
  };

  it("lists oldest first by mtime, then by name", async () => {
    const t = Math.floor(Date.now() / 1000) - 100;
    await put("a.json", envelope(), t + 30);
    await put("b.json", envelope(), t + 10);
    await put("c.json", envelope(), t + 20);
    await put("d.json", envelope(), t + 10);
    expect((await listQueue(paths)).map((e) => e.name)).toEqual(["b.json", "d.json", "c.json", "a.json"]);
  });

  it("ignores in-progress names (leading dot, .tmp suffix) and the .rejected directory", async () => {
    for (const name of [".x.json", "y.tmp", ".z.tmp", "envelope.json.tmp", ".NAME.tmp"]) await put(name, envelope());
    await put("real.json", envelope());
    expect((await listQueue(paths)).map((e) => e.name)).toEqual(["real.json"]);
    expect(isInProgressName(".rejected")).toBe(true);
  });

  it("a missing queue/ directory lists as empty", async () => {
    await rm(paths.queue, { recursive: true });
    expect(await listQueue(paths)).toEqual([]);
  });

  it("reads a valid envelope into a work item with a stable id", async () => {
    await writeFile(q("e.json"), JSON.stringify({ session_id: "session-2", content: "done", timestamp: "2026-05-02T15:30:00Z" }));
    const entry = await entryOf("e.json");
    const intake = await readEntry(paths, entry, SESSIONS, Date.now());
    expect(intake).toMatchObject({ kind: "envelope", item: { source: "envelope", session: "session-2", text: "done", receipt: "e.json", timestamp: "2026-05-02T15:30:00Z" } });
    // without an id of its own, the reply answers the assigned one
    expect(intake.kind === "envelope" && intake.item.inReplyTo === intake.item.id).toBe(true);
    const again = await readEntry(paths, await entryOf("e.json"), SESSIONS, Date.now());
    expect(again.kind === "envelope" && intake.kind === "envelope" && again.item.id === intake.item.id).toBe(true);
  });

  it("envelope ids differ when the name, mtime or bytes differ", () => {
    const raw = Buffer.from(envelope());
    const id = envelopeId("a.json", 1000, raw);
    expect(envelopeId("a.json", 1000, raw)).toBe(id);
    expect(envelopeId("b.json", 1000, raw)).not.toBe(id);
    expect(envelopeId("a.json", 1001, raw)).not.toBe(id);
    expect(envelopeId("a.json", 1000, Buffer.from(envelope("other")))).not.toBe(id);
  });

  it("invalid JSON younger than the 2 s settle window waits; older is rejected", async () => {
    await put("half.json", '{"session_id": "session-1", "con');
    const entry = await entryOf("half.json");
    expect(await readEntry(paths, entry, SESSIONS, entry.mtimeMs + SETTLE_MS - 500)).toEqual({ kind: "wait" });
    const late = await readEntry(paths, entry, SESSIONS, entry.mtimeMs + SETTLE_MS + 500);
    expect(late).toMatchObject({ kind: "reject" });
    expect(late.kind === "reject" ? late.reason : "").toMatch(/invalid JSON/);
  });

  it("valid JSON with a bad field is rejected at once, without waiting", async () => {
    await put("bad.json", JSON.stringify({ session_id: "session-1", content: "" }));
    const entry = await entryOf("bad.json");
    expect(await readEntry(paths, entry, SESSIONS, entry.mtimeMs)).toMatchObject({ kind: "reject" });
  });

  it("a file over the size limit is rejected", async () => {
    await put("big.json", envelope("x".repeat(MAX_CONTENT_BYTES + 1)));
    const entry = await entryOf("big.json");
    const intake = await readEntry(paths, entry, SESSIONS, Date.now());
    expect(intake.kind === "reject" ? intake.reason : "").toMatch(/1 MiB/);
  });

  it("a symlink to a file outside the root is rejected without following it; the target is untouched", async () => {
    const target = join(outside, "secret.json");
    const targetBytes = envelope("from outside");
    await writeFile(target, targetBytes);
    await symlink(target, q("link.json"));

    const entry = await entryOf("link.json");
    expect(entry.regular).toBe(false);
    const intake = await readEntry(paths, entry, SESSIONS, Date.now());
    expect(intake.kind).toBe("reject");

    expect(await rejectFile(paths, "link.json", intake.kind === "reject" ? intake.reason : "", Date.now())).toBe("link.json");
    const moved = await lstat(join(paths.rejected, "link.json"));
    expect(moved.isSymbolicLink()).toBe(true);
    expect(await readlink(join(paths.rejected, "link.json"))).toBe(target);
    expect(await readFile(target, "utf8")).toBe(targetBytes);
    expect(await readdir(outside)).toEqual(["secret.json"]);
  });

  it("a file swapped for a symlink after listing is still refused (O_NOFOLLOW), never read through", async () => {
    const target = join(outside, "secret.json");
    await writeFile(target, envelope("from outside"));
    await put("swap.json", envelope("harmless"));
    const entry = await entryOf("swap.json");
    expect(entry.regular).toBe(true);
    await unlink(q("swap.json"));
    await symlink(target, q("swap.json"));
    const intake = await readEntry(paths, entry, SESSIONS, Date.now());
    expect(intake.kind).toBe("reject");
  });

  it("a FIFO is rejected without blocking, even if listed as regular by a race", async () => {
    execFileSync("mkfifo", [q("pipe.json")]);
    const entry = await entryOf("pipe.json");
    expect(entry.regular).toBe(false);
    const timeout = new Promise<"blocked">((resolve) => setTimeout(() => resolve("blocked"), 2000).unref());
    const listed = await Promise.race([readEntry(paths, entry, SESSIONS, Date.now()), timeout]);
    expect(listed).toMatchObject({ kind: "reject" });
    const raced = await Promise.race([readEntry(paths, { ...entry, regular: true }, SESSIONS, Date.now()), timeout]);
    expect(raced).toMatchObject({ kind: "reject" });
    expect(await rejectFile(paths, "pipe.json", "not a regular file", Date.now())).toBe("pipe.json");
    expect((await lstat(join(paths.rejected, "pipe.json"))).isFIFO()).toBe(true);
  });

  it("a directory in queue/ is rejected", async () => {
    await mkdir(q("dir.json"));
    const entry = await entryOf("dir.json");
    expect(await readEntry(paths, entry, SESSIONS, Date.now())).toMatchObject({ kind: "reject" });
  });

  it("a file vanishing between list and read is gone, not an error", async () => {
    await put("v.json", envelope());
    const entry = await entryOf("v.json");
    await unlink(q("v.json"));
    expect(await readEntry(paths, entry, SESSIONS, Date.now())).toEqual({ kind: "gone" });
  });

  it("rejecting moves the file byte for byte beside a reason file holding {error, at}", async () => {
    const bytes = Buffer.from([0x7b, 0x00, 0xff, 0x7d]);
    await put("x.json", bytes);
    const now = Date.UTC(2026, 4, 2, 15, 30, 0);
    expect(await rejectFile(paths, "x.json", "invalid JSON: boom", now)).toBe("x.json");
    await expect(lstat(q("x.json"))).rejects.toMatchObject({ code: "ENOENT" });
    expect(await readFile(join(paths.rejected, "x.json"))).toEqual(bytes);
    const reason: unknown = JSON.parse(await readFile(join(paths.rejected, "x.json.reason.json"), "utf8"));
    expect(reason).toEqual({ error: "invalid JSON: boom", at: "2026-05-02T15:30:00.000Z" });
    expect(await countRejected(paths)).toBe(1);
  });

  it("a name collision in .rejected/ does not overwrite the earlier rejection", async () => {
    await put("dup.json", "first");
    await rejectFile(paths, "dup.json", "first reason", Date.now());
    await put("dup.json", "second");
    const second = await rejectFile(paths, "dup.json", "second reason", Date.now());
    expect(second).not.toBe("dup.json");
    expect(second).not.toBeNull();
    expect(await readFile(join(paths.rejected, "dup.json"), "utf8")).toBe("first");
    expect(JSON.parse(await readFile(join(paths.rejected, "dup.json.reason.json"), "utf8"))).toMatchObject({ error: "first reason" });
    expect(await readFile(join(paths.rejected, second ?? ""), "utf8")).toBe("second");
    expect(JSON.parse(await readFile(join(paths.rejected, `${second ?? ""}.reason.json`), "utf8"))).toMatchObject({ error: "second reason" });
  });

  it("rejecting NAME never overwrites an earlier rejected file called NAME.reason.json", async () => {
    await put("b.reason.json", "the earlier envelope");
    await rejectFile(paths, "b.reason.json", "first", Date.now());
    await put("b", "a later envelope");
    await rejectFile(paths, "b", "second", Date.now());
    expect(await readFile(join(paths.rejected, "b.reason.json"), "utf8")).toBe("the earlier envelope");
  });

  it("rejecting again after a crash (file already moved) files no second, orphan rejection", async () => {
    await put("api.json", envelope());
    expect(await rejectFile(paths, "api.json", "400 invalid_request_error: bad", Date.now())).toBe("api.json");
    // the relay was killed before it recorded the rejection as filed: on restart it files it again
    expect(await rejectFile(paths, "api.json", "400 invalid_request_error: bad", Date.now())).toBeNull();
    expect((await readdir(paths.rejected)).sort()).toEqual(["api.json", "api.json.reason.json"]);
    expect(await countRejected(paths)).toBe(1);
  });

  it("rejecting a file that vanished leaves no orphan reason file behind", async () => {
    expect(await rejectFile(paths, "ghost.json", "whatever", Date.now())).toBeNull();
    expect(await readdir(paths.rejected)).toEqual([]);
    expect(await countRejected(paths)).toBe(0);
  });
});
