// state/config.cache.json (src/config/config-cache.ts): the commands that start often read
// config.yaml's parsed value from it instead of loading the YAML parser. It must never give
// other settings than config.yaml: an edit, a torn or foreign file, a value JSON cannot carry
// all fall back to parsing config.yaml. config.yaml's mtime is set in the past with utimes (the
// cache skips a config.yaml modified in the last few seconds), so no test waits.
import { chmod, mkdir, mkdtemp, readFile, rm, stat, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CONFIG_CACHE_SETTLE_MS, configCachePath, readConfigCache } from "../../src/config/config-cache.js";
import { loadAgentConfig, loadClientConfig, loadConfig } from "../../src/config/config.js";
import { relayPaths, type RelayPaths } from "../../src/config/paths.js";

const CONFIG = `model: claude-sonnet-4-6
system_prompt: You review.
summarization_prompt: Summarize.
max_tokens: 2000
sessions:
  - id: session-1
`;
const AGENT = "transport: nats\nnats:\n  url: nats://relay.example:4222\nagent:\n  name: laptop\nsessions:\n  - id: s2\n";

let root: string;
let paths: RelayPaths;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "relay-config-cache-"));
  paths = relayPaths(root);
  await mkdir(paths.state);
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

/** config.yaml with `text`, modified a minute ago (old enough to be cached), or at `mtime`. */
async function writeConfig(text: string, mtime = new Date(Date.now() - 60_000)): Promise<void> {
  await writeFile(paths.config, text);
  await utimes(paths.config, mtime, mtime);
}

const load = () => loadConfig(paths, {}, { seed: false });
const cacheText = () => readFile(configCachePath(paths), "utf8").catch(() => null);

describe("state/config.cache.json", () => {
  it("gives the same settings as config.yaml, from the second load on without parsing YAML", async () => {
    await writeConfig(CONFIG);
    expect(await readConfigCache(paths)).toMatchObject({ hit: false });
    const parsed = await load();
    expect(await readConfigCache(paths)).toMatchObject({ hit: true });
    expect(await load()).toEqual(parsed);
    expect(parsed.maxTokens).toBe(2000);
    expect((await stat(configCachePath(paths))).mode & 0o777).toBe(0o600);
  });

  it("is ignored after config.yaml is edited, even to the same size with its mtime put back", async () => {
    const mtime = new Date(Date.now() - 60_000);
    await writeConfig(CONFIG, mtime);
    expect((await load()).maxTokens).toBe(2000);
    expect(await readConfigCache(paths)).toMatchObject({ hit: true });
    // the same length, the same mtime: only the change time (and the content) differ
    await writeConfig(CONFIG.replace("max_tokens: 2000", "max_tokens: 3000"), mtime);
    expect(await readConfigCache(paths)).toMatchObject({ hit: false });
    expect((await load()).maxTokens).toBe(3000);
    expect((await load()).maxTokens).toBe(3000);
  });

  it("reports an edit that breaks config.yaml with the same error as without a cache", async () => {
    await writeConfig(CONFIG);
    await load();
    await writeConfig(CONFIG.replace("max_tokens: 2000", "max_tokens: lots"));
    await expect(load()).rejects.toThrow("config.yaml: max_tokens: expected a positive whole number of tokens");
    await writeConfig("model: [unclosed\n");
    await expect(load()).rejects.toThrow(/^config\.yaml: malformed YAML: /);
  });

  it("is ignored, and rewritten, when it is torn, foreign or written by others", async () => {
    await writeConfig(CONFIG);
    const parsed = await load();
    const good = await cacheText();
    expect(good).not.toBeNull();
    for (const bad of ["", "{", "null", '{"key": "another"}', JSON.stringify({ document: {} })]) {
      await writeFile(configCachePath(paths), bad, { mode: 0o600 });
      expect(await readConfigCache(paths), bad).toMatchObject({ hit: false });
      expect(await load()).toEqual(parsed);
      expect(await cacheText()).toBe(good);
    }
    // a copy anyone may write is not trusted, whatever it says
    const { key } = JSON.parse(good ?? "") as { key: string };
    await writeFile(configCachePath(paths), JSON.stringify({ key, document: { model: "claude-other-1" } }));
    await chmod(configCachePath(paths), 0o666);
    expect(await readConfigCache(paths)).toMatchObject({ hit: false });
    expect(await load()).toEqual(parsed);
  });

  it("is not written for a config.yaml modified in the last few seconds", async () => {
    await writeConfig(CONFIG, new Date());
    await load();
    expect(await cacheText()).toBeNull();
    // the same file once it has settled
    expect(await readConfigCache(paths, Date.now() + CONFIG_CACHE_SETTLE_MS + 1_000)).toMatchObject({ hit: false });
  });

  it("is not written when JSON would not give back what YAML parsed (.inf)", async () => {
    await writeConfig(`${CONFIG}budget:\n  daily_usd: .inf\n`);
    for (let i = 0; i < 2; i++) await expect(load()).rejects.toThrow("config.yaml: budget.daily_usd: expected a number of USD");
    expect(await cacheText()).toBeNull();
    expect(await readConfigCache(paths)).toMatchObject({ hit: false });
  });

  it("is not needed: a root without state/ loads config.yaml every time and gains no state/", async () => {
    await rm(paths.state, { recursive: true });
    await writeConfig(CONFIG);
    expect((await load()).maxTokens).toBe(2000);
    expect((await load()).maxTokens).toBe(2000);
    await expect(stat(paths.state)).rejects.toThrow(/ENOENT/);
  });

  it("serves an agent's root (transport: nats) as config.yaml does", async () => {
    await writeConfig(AGENT);
    const agent = await loadAgentConfig(paths, {});
    const client = await loadClientConfig(paths, {}, { seed: false });
    expect(await readConfigCache(paths)).toMatchObject({ hit: true });
    expect(await loadAgentConfig(paths, {})).toEqual(agent);
    expect(await loadClientConfig(paths, {}, { seed: false })).toEqual(client);
    expect(client).toEqual({ sessions: [{ id: "s2" }], pollIntervalMs: 1000, agentName: "laptop" });
    await expect(load()).rejects.toThrow(/^config\.yaml: model: /);
  });
});
