import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  ConfigError,
  DEFAULT_CONFIG_URL,
  ensureTopic,
  generateTopic,
  loadConfig,
  seedConfigIfMissing,
  SHARED_CONVERSATION,
} from "../../src/config/config.js";
import { parseFileConfig } from "../../src/config/config-yaml.js";
import { relayPaths, type RelayPaths } from "../../src/config/paths.js";

/** Any Unicode scalar value (fast-check's "binary" unit is much slower to warm up). */
const anyChar = fc
  .oneof({ weight: 3, arbitrary: fc.integer({ min: 0, max: 0x7f }) }, fc.integer({ min: 0x80, max: 0xd7ff }), fc.integer({ min: 0xe000, max: 0x10ffff }))
  .map((c) => String.fromCodePoint(c));

const REPO = new URL("../../", import.meta.url).pathname;
const SHIPPED_CONFIG = `${REPO}config.yaml`;

const MINIMAL = `model: claude-sonnet-4-6
system_prompt: You review.
summarization_prompt: Summarize.
sessions:
  - id: session-1
`;

let root: string;
let paths: RelayPaths;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "relay-config-"));
  paths = relayPaths(root);
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

const writeConfig = (text: string) => writeFile(paths.config, text);
const writeEnv = (text: string) => writeFile(paths.env, text);
const load = (env: NodeJS.ProcessEnv = {}) => loadConfig(paths, env, { seed: false });

/** The ConfigError a load gives; fails the test when the load succeeds or throws something else. */
async function configError(p: Promise<unknown>): Promise<ConfigError> {
  const err = await p.then(
    () => new Error("expected a ConfigError, but the configuration loaded"),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ConfigError);
  return err as ConfigError;
}

function expectOneLine(err: Error, ...parts: (string | RegExp)[]): void {
  expect(err.message).not.toMatch(/[\r\n]/);
  for (const part of parts) {
    if (typeof part === "string") expect(err.message).toContain(part);
    else expect(err.message).toMatch(part);
  }
}

describe("config precedence: config.yaml < .env < real environment", () => {
  const cases = [
    { key: "HISTORY_CHAR_CAP", yaml: "history_char_cap: 1000", file: "1000", env: "2000", real: "3000", read: (c: Awaited<ReturnType<typeof load>>) => String(c.historyCharCap) },
    { key: "POLL_INTERVAL_MS", yaml: "poll_interval_ms: 1000", file: "1000", env: "2000", real: "3000", read: (c: Awaited<ReturnType<typeof load>>) => String(c.pollIntervalMs) },
    {
      key: "NTFY_SERVER",
      yaml: "ntfy:\n  server: https://from-yaml.example",
      file: "https://from-yaml.example",
      env: "https://from-dotenv.example",
      real: "https://from-env.example",
      read: (c: Awaited<ReturnType<typeof load>>) => c.ntfy.server,
    },
  ];

  for (const c of cases) {
    it(`${c.key}: config.yaml alone gives the file's value`, async () => {
      await writeConfig(`${MINIMAL}${c.yaml}\n`);
      expect(c.read(await load())).toBe(c.file);
    });
    it(`${c.key}: .env overrides config.yaml`, async () => {
      await writeConfig(`${MINIMAL}${c.yaml}\n`);
      await writeEnv(`${c.key}=${c.env}\n`);
      expect(c.read(await load())).toBe(c.env);
    });
    it(`${c.key}: a real environment variable overrides .env and config.yaml`, async () => {
      await writeConfig(`${MINIMAL}${c.yaml}\n`);
      await writeEnv(`${c.key}=${c.env}\n`);
      expect(c.read(await load({ [c.key]: c.real }))).toBe(c.real);
    });
  }

  it("defaults apply when nothing sets the knobs (400000 chars, 1000 ms, https://ntfy.sh)", async () => {
    await writeConfig(MINIMAL);
    const config = await load();
    expect(config.historyCharCap).toBe(400_000);
    expect(config.pollIntervalMs).toBe(1000);
    expect(config.ntfy.server).toBe("https://ntfy.sh");
  });
});

describe("config errors are one line naming the file, the key and what was expected", () => {
  it("malformed YAML names config.yaml and says the YAML is malformed", async () => {
    await writeConfig(`${MINIMAL}model: [unclosed\n  - x: y: z\n`);
    const err = await configError(load());
    expectOneLine(err, "config.yaml", /malformed YAML/i);
  });

  it("cache_ttl is auto unless config.yaml says 5m or 1h; anything else names the key and the three values", async () => {
    await writeConfig(MINIMAL);
    expect((await load()).cacheTtl).toBe("auto");
    for (const ttl of ["5m", "1h", "auto"]) {
      await writeConfig(`${MINIMAL}cache_ttl: ${ttl}\n`);
      expect((await load()).cacheTtl).toBe(ttl);
    }
    await writeConfig(`${MINIMAL}cache_ttl: 10m\n`);
    expectOneLine(await configError(load()), "config.yaml", "cache_ttl", 'expected "auto", "5m" or "1h"');
  });

  it("a non-numeric history_char_cap in config.yaml names the key and expects a whole number", async () => {
    await writeConfig(`${MINIMAL}history_char_cap: lots\n`);
    expectOneLine(await configError(load()), "config.yaml", "history_char_cap", /expected .*whole number/);
  });

  for (const bad of ["lots", "12abc", "0", "-5", "1.5", "1e6"]) {
    it(`HISTORY_CHAR_CAP=${bad} in .env names .env, the key and expects a positive whole number`, async () => {
      await writeConfig(MINIMAL);
      await writeEnv(`HISTORY_CHAR_CAP=${bad}\n`);
      expectOneLine(await configError(load()), ".env", "HISTORY_CHAR_CAP", /expected a positive whole number/);
    });
  }

  it("a non-numeric POLL_INTERVAL_MS in the real environment is refused with the key named", async () => {
    await writeConfig(MINIMAL);
    expectOneLine(await configError(load({ POLL_INTERVAL_MS: "fast" })), "environment", "POLL_INTERVAL_MS", /expected/);
  });

  for (const model of ["gpt-4o", "Claude-Sonnet", "sonnet", "claude-", "claude_sonnet"]) {
    it(`an unknown model format (${model}) names config.yaml, model and an Anthropic model id`, async () => {
      await writeConfig(MINIMAL.replace("claude-sonnet-4-6", model));
      expectOneLine(await configError(load()), "config.yaml", "model", /expected an Anthropic model id/);
    });
  }

  it("prices: gives a model's five rates in USD per million tokens", async () => {
    await writeConfig(`${MINIMAL}prices:\n  claude-new-model: {input: 3, output: 15, cache_write_5m: 3.75, cache_write_1h: 6, cache_read: 0.3}\n`);
    expect((await load()).prices).toEqual({ "claude-new-model": { input: 3, output: 15, cacheWrite5m: 3.75, cacheWrite1h: 6, cacheRead: 0.3 } });
  });

  it("prices: missing a rate names the model and the five rates (a price half known is not known)", async () => {
    await writeConfig(`${MINIMAL}prices:\n  claude-new-model: {input: 3, output: 15}\n`);
    expectOneLine(await configError(load()), "config.yaml", "prices.claude-new-model", /cache_write_5m/);
  });

  it("prices: a negative rate or a key that is no model id is refused, naming it", async () => {
    await writeConfig(`${MINIMAL}prices:\n  claude-new-model: {input: -1, output: 15, cache_write_5m: 3.75, cache_write_1h: 6, cache_read: 0.3}\n`);
    expectOneLine(await configError(load()), "config.yaml", "prices.claude-new-model.input", /0 or more/);
    await writeConfig(`${MINIMAL}prices:\n  gpt-4o: {input: 1, output: 1, cache_write_5m: 1, cache_write_1h: 1, cache_read: 1}\n`);
    expectOneLine(await configError(load()), "config.yaml", "prices", /model id/);
  });

  it("a session's own unknown model format names sessions[i].model", async () => {
    await writeConfig(`${MINIMAL}  - id: session-2\n    model: gpt-4\n`);
    expectOneLine(await configError(load()), "config.yaml", "sessions[1].model", /expected an Anthropic model id/);
  });

  for (const id of ["../etc", "a/b", "-leading-dash", ".hidden", "séssion", "a".repeat(65), "has space"]) {
    it(`a bad session id (${JSON.stringify(id.slice(0, 20))}) names sessions[i].id and the pattern`, async () => {
      await writeConfig(`${MINIMAL}  - id: ${JSON.stringify(id)}\n`);
      expectOneLine(await configError(load()), "config.yaml", "sessions[1].id", /expected a session id/);
    });
  }

  it("duplicate session ids name sessions and expect unique ids", async () => {
    await writeConfig(`${MINIMAL}  - id: session-1\n`);
    expectOneLine(await configError(load()), "config.yaml", "sessions", /unique/);
  });

  it("an unknown top-level key is named as unknown", async () => {
    await writeConfig(`${MINIMAL}histroy_char_cap: 5\n`);
    expectOneLine(await configError(load()), "config.yaml", "histroy_char_cap", /unknown key/);
  });

  it("limits: the defaults when unset, a partial block keeps the other defaults, a bad value names its key", async () => {
    await writeConfig(MINIMAL);
    expect((await load()).limits).toEqual({ logMaxBytes: 10 * 1024 * 1024, logFiles: 5, rejectedKeep: 1000, rejectedDays: 30, pageClients: 16 });
    await writeConfig(`${MINIMAL}limits:\n  rejected_keep: 50\n`);
    expect((await load()).limits).toEqual({ logMaxBytes: 10 * 1024 * 1024, logFiles: 5, rejectedKeep: 50, rejectedDays: 30, pageClients: 16 });
    await writeConfig(`${MINIMAL}limits:\n  page_clients: 0\n`);
    expectOneLine(await configError(load()), "config.yaml", "limits.page_clients", /positive whole number/);
  });

  it("an unknown nested key is named with its path", async () => {
    await writeConfig(`${MINIMAL}ntfy:\n  sever: https://x.example\n`);
    expectOneLine(await configError(load()), "config.yaml", "ntfy.sever", /unknown key/);
  });

  it("an unknown key in a session entry is named with its index", async () => {
    await writeConfig(`${MINIMAL}  - id: session-2\n    sytem_prompt: x\n`);
    expectOneLine(await configError(load()), "config.yaml", "sessions[1].sytem_prompt", /unknown key/);
  });

  it("a YAML document that is not a mapping is refused", async () => {
    await writeConfig("- just\n- a list\n");
    expectOneLine(await configError(load()), "config.yaml", /mapping/);
  });

  it("an NTFY_SERVER that is not an http(s) URL is refused naming the key", async () => {
    await writeConfig(MINIMAL);
    expectOneLine(await configError(load({ NTFY_SERVER: "ftp://ntfy.example" })), "NTFY_SERVER", /http\(s\) URL/);
  });

  it("a too-short NTFY_TOPIC is refused (the topic is the only password)", async () => {
    await writeConfig(MINIMAL);
    await writeEnv("NTFY_TOPIC=short\n");
    expectOneLine(await configError(load()), ".env", "NTFY_TOPIC", /22 to 64/);
  });

  it("a carriage return in malformed YAML still gives a one-line error (found by the property below)", () => {
    expect(() => parseFileConfig(">\r")).toThrow(ConfigError);
    try {
      parseFileConfig(">\r");
    } catch (err) {
      expect((err as Error).message).not.toMatch(/[\r\n]/);
    }
  });

  it("parseFileConfig never throws anything but a one-line ConfigError on arbitrary text", () => {
    fc.assert(
      fc.property(fc.string({ unit: anyChar, maxLength: 300 }), (text) => {
        try {
          parseFileConfig(text);
        } catch (err) {
          expect(err).toBeInstanceOf(ConfigError);
          expect((err as Error).message).not.toMatch(/[\r\n]/);
          expect((err as Error).message.startsWith("config.yaml")).toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe("config.yaml seeding", () => {
  it("the shipped commented default parses as a valid configuration", () => {
    const parsed = parseFileConfig(readFileSync(SHIPPED_CONFIG, "utf8"));
    expect(parsed.sessions.map((s) => s.id)).toEqual(["session-1", "session-2"]);
  });

  it("DEFAULT_CONFIG_URL points at the shipped config.yaml", () => {
    expect(DEFAULT_CONFIG_URL.pathname).toBe(SHIPPED_CONFIG);
  });

  it("a missing config.yaml is seeded byte for byte from the shipped commented default", async () => {
    const config = await loadConfig(paths, {});
    expect(await readFile(paths.config, "utf8")).toBe(readFileSync(SHIPPED_CONFIG, "utf8"));
    expect(config.sessions.map((s) => s.id)).toEqual(["session-1", "session-2"]);
  });

  it("the built module (what `relay run` executes) seeds config.yaml from the shipped default", async () => {
    const builtModule = `${REPO}dist/src/config/config.js`;
    const built = (await import(builtModule)) as typeof import("../../src/config/config.js");
    expect(await built.seedConfigIfMissing(paths)).toBe(true);
    expect(await readFile(paths.config, "utf8")).toBe(readFileSync(SHIPPED_CONFIG, "utf8"));
  });

  it("an existing config.yaml is never overwritten by seeding", async () => {
    await writeConfig(MINIMAL);
    expect(await seedConfigIfMissing(paths)).toBe(false);
    expect(await readFile(paths.config, "utf8")).toBe(MINIMAL);
  });
});

describe("conversations", () => {
  it("a session with its own system_prompt gets its own conversation; the others share one", async () => {
    await writeConfig(`${MINIMAL}  - id: session-2\n    system_prompt: You review docs only.\n    model: claude-haiku-4-5\n  - id: session-3\n`);
    const config = await load();
    const byId = new Map(config.sessions.map((s) => [s.id, s]));
    expect(byId.get("session-1")).toEqual({ id: "session-1", conversation: SHARED_CONVERSATION, systemPrompt: "You review.", model: "claude-sonnet-4-6" });
    expect(byId.get("session-3")).toEqual({ id: "session-3", conversation: "shared", systemPrompt: "You review.", model: "claude-sonnet-4-6" });
    expect(byId.get("session-2")).toEqual({ id: "session-2", conversation: "session.session-2", systemPrompt: "You review docs only.", model: "claude-haiku-4-5" });
  });
});

describe("ensureTopic", () => {
  const TOPIC_RE = /^[A-Za-z0-9_-]{22,64}$/;
  const topicLine = (text: string) => text.split("\n").filter((l) => /^\s*(export\s+)?NTFY_TOPIC\s*=/.test(l));

  it("generates 22-64 characters of [A-Za-z0-9_-], at least 128 bits, never the same twice", () => {
    const seen = new Set<string>();
    for (let i = 0; i < 500; i++) {
      const topic = generateTopic();
      expect(topic).toMatch(TOPIC_RE);
      expect(topic.length * Math.log2(64)).toBeGreaterThanOrEqual(128);
      seen.add(topic);
    }
    expect(seen.size).toBe(500);
  });

  it("creates a missing .env with mode 0600 holding the topic, and a second call returns the same topic", async () => {
    const topic = await ensureTopic(paths, {});
    expect(topic).toMatch(TOPIC_RE);
    expect((await stat(paths.env)).mode & 0o777).toBe(0o600);
    expect(await readFile(paths.env, "utf8")).toBe(`NTFY_TOPIC=${topic}\n`);
    expect(await ensureTopic(paths, {})).toBe(topic);
    expect(await readFile(paths.env, "utf8")).toBe(`NTFY_TOPIC=${topic}\n`);
  });

  it("the persisted topic is the one loadConfig then reads", async () => {
    await writeConfig(MINIMAL);
    const topic = await ensureTopic(paths, {});
    expect((await load()).ntfy.topic).toBe(topic);
  });

  it("keeps every other line of .env byte for byte (comments, blanks, export lines, quotes)", async () => {
    const before = "# secrets\n\nexport ANTHROPIC_API_KEY=sk-ant-xyz\nFOO='a b'   # trailing comment\n  BAR=\"x=y\"\n\n";
    await writeEnv(before);
    const topic = await ensureTopic(paths, {});
    const after = await readFile(paths.env, "utf8");
    expect(after).toBe(`${before}NTFY_TOPIC=${topic}\n`);
  });

  it("keeps the last line intact when .env has no trailing newline", async () => {
    await writeEnv("ANTHROPIC_API_KEY=sk-ant-xyz");
    const topic = await ensureTopic(paths, {});
    expect(await readFile(paths.env, "utf8")).toBe(`ANTHROPIC_API_KEY=sk-ant-xyz\nNTFY_TOPIC=${topic}\n`);
  });

  it("keeps CRLF lines intact", async () => {
    await writeEnv("A=1\r\n# c\r\n");
    const topic = await ensureTopic(paths, {});
    expect(await readFile(paths.env, "utf8")).toBe(`A=1\r\n# c\r\nNTFY_TOPIC=${topic}\n`);
  });

  it("leaves a commented-out `# NTFY_TOPIC=` (as in .env.example) alone and adds a real line", async () => {
    const example = readFileSync(`${REPO}.env.example`, "utf8");
    await writeEnv(example);
    const topic = await ensureTopic(paths, {});
    const after = await readFile(paths.env, "utf8");
    expect(after.startsWith(example)).toBe(true);
    expect(after.slice(example.length).replace(/^\n/, "")).toBe(`NTFY_TOPIC=${topic}\n`);
  });

  for (const empty of ["NTFY_TOPIC=", "NTFY_TOPIC=\"\"", "NTFY_TOPIC=''", "  NTFY_TOPIC = "]) {
    it(`fills an empty ${JSON.stringify(empty)} line in place instead of adding a second one`, async () => {
      await writeEnv(`# head\n${empty}\nOTHER=1\n`);
      const topic = await ensureTopic(paths, {});
      const after = await readFile(paths.env, "utf8");
      expect(after).toBe(`# head\nNTFY_TOPIC=${topic}\nOTHER=1\n`);
      expect(topicLine(after)).toHaveLength(1);
    });
  }

  it("a topic already in .env is returned and .env is left untouched", async () => {
    const before = "# keep\nNTFY_TOPIC=abcdefghijklmnopqrstuvwxyz012345\n";
    await writeEnv(before);
    expect(await ensureTopic(paths, {})).toBe("abcdefghijklmnopqrstuvwxyz012345");
    expect(await readFile(paths.env, "utf8")).toBe(before);
  });

  it("an NTFY_TOPIC environment variable wins and nothing is written", async () => {
    const topic = await ensureTopic(paths, { NTFY_TOPIC: "env-topic-0123456789abcdefXYZ" });
    expect(topic).toBe("env-topic-0123456789abcdefXYZ");
    await expect(stat(paths.env)).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("an NTFY_TOPIC environment variable wins over .env", async () => {
    await writeEnv("NTFY_TOPIC=from-dotenv-0123456789abcdef\n");
    expect(await ensureTopic(paths, { NTFY_TOPIC: "from-env-0123456789abcdefghi" })).toBe("from-env-0123456789abcdefghi");
  });

  it("property: any .env without a topic keeps all of its lines, in order, byte for byte", async () => {
    const line = fc.oneof(
      fc.constant(""),
      fc.constant("   "),
      fc.string({ maxLength: 30 }).map((s) => `# ${s.replace(/[\r\n]/g, "")}`),
      fc.stringMatching(/^[A-Z][A-Z0-9_]{0,10}$/).chain((k) => fc.string({ maxLength: 20 }).map((v) => `${k}=${v.replace(/[\r\n'"`\\]/g, "")}`)),
      fc.stringMatching(/^[A-Z][A-Z0-9_]{0,10}$/).map((k) => `export ${k}=value`),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(line, { maxLength: 8 }), fc.boolean(), async (lines, trailingNewline) => {
        const clean = lines.filter((l) => !l.includes("NTFY_TOPIC"));
        const before = clean.join("\n") + (trailingNewline && clean.length > 0 ? "\n" : "");
        await writeEnv(before);
        const topic = await ensureTopic(paths, {});
        const after = await readFile(paths.env, "utf8");
        const sep = before === "" || before.endsWith("\n") ? "" : "\n";
        expect(after).toBe(`${before}${sep}NTFY_TOPIC=${topic}\n`);
      }),
      { numRuns: 40 },
    );
  });
});

describe("public_url", () => {
  it("is the status page's address as JC's phone reaches it: an http(s) URL, optional", async () => {
    await writeFile(paths.config, `${MINIMAL}public_url: https://relay.example.net/status/\n`);
    expect((await loadConfig(paths, {}, { seed: false })).publicUrl).toBe("https://relay.example.net/status/");
    await writeFile(paths.config, MINIMAL);
    expect((await loadConfig(paths, {}, { seed: false })).publicUrl).toBeUndefined();
  });

  it("refuses what is not an http(s) URL, naming the key", () => {
    for (const bad of ["relay.example.net", "ftp://relay.example.net/", "javascript:alert(1)", "''"]) {
      expect(() => parseFileConfig(`${MINIMAL}public_url: ${bad}\n`), bad).toThrow("config.yaml: public_url: expected an http(s) URL such as https://relay.example.net/");
    }
  });
});
