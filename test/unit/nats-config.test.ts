// The transport: nats keys of config.yaml and .env (CONTRACT §11), on the relay's root and an agent's.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ConfigError, loadAgentConfig, loadConfig, natsSecrets } from "../../src/config/config.js";
import { relayPaths, type RelayPaths } from "../../src/config/paths.js";

const BASE = `model: claude-sonnet-4-6
system_prompt: You review.
summarization_prompt: Summarize.
`;

let root: string;
let paths: RelayPaths;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "relay-nats-config-"));
  paths = relayPaths(root);
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

const write = (yaml: string, dotenv?: string) => Promise.all([writeFile(paths.config, yaml), dotenv === undefined ? Promise.resolve() : writeFile(paths.env, dotenv)]);

describe("config.yaml: transport", () => {
  it("defaults to files and adds nothing to the configuration (the file transport is unchanged)", async () => {
    await write(`${BASE}sessions:\n  - id: s1\n`);
    const config = await loadConfig(paths, {});
    expect(config.transport).toBeUndefined();
    expect(config.nats).toBeUndefined();
    expect(config.sessions[0]).not.toHaveProperty("host");
  });

  it("reads transport: nats, nats.url/prefix/replicas, sessions' host: and agent.name, with the credentials from .env and the environment winning", async () => {
    await write(
      `${BASE}transport: nats\nnats:\n  url: nats://10.0.0.1:4222\n  prefix: team-a\n  replicas: 3\nagent:\n  name: relay-host\nsessions:\n  - id: s1\n  - id: s2\n    host: laptop\n`,
      "NATS_URL=tls://nats.example:4222\nNATS_TOKEN=token-from-dotenv-123\nNATS_CA=/etc/ca.pem\n",
    );
    const config = await loadConfig(paths, { NATS_TOKEN: "token-from-environment-456" });
    expect(config.transport).toBe("nats");
    expect(config.nats).toEqual({ url: "tls://nats.example:4222", prefix: "team-a", replicas: 3, token: "token-from-environment-456", ca: "/etc/ca.pem" });
    expect(config.agentName).toBe("relay-host");
    expect(config.sessions.map((s) => s.host)).toEqual([undefined, "laptop"]);
    expect(natsSecrets(config.nats)).toContain("token-from-environment-456");
  });

  it.each([
    ["transport: carrier-pigeon", /transport: expected "files" or "nats"/],
    ["transport: nats\nnats:\n  replicas: 2", /nats\.replicas: expected 1 or 3/],
    ["transport: nats\nnats:\n  prefix: Has.Dots", /nats\.prefix: expected a prefix/],
    ["transport: nats\nnats:\n  url: http://x", /nats\.url: expected a nats:\/\/ or tls:\/\/ URL/],
    ["transport: nats\nnats:\n  port: 4222", /nats\.port: unknown key/],
  ])("refuses %j in one line naming the key", async (extra, message) => {
    await write(`${BASE}${extra}\nsessions:\n  - id: s1\n`);
    const err = await loadConfig(paths, {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect(String((err as Error).message)).toMatch(message);
  });

  it("refuses NATS_USER without NATS_PASSWORD", async () => {
    await write(`${BASE}transport: nats\nsessions:\n  - id: s1\n`);
    await expect(loadConfig(paths, { NATS_USER: "someone" })).rejects.toThrow(/NATS_USER and NATS_PASSWORD: expected both or neither/);
  });
});

describe("an agent's config.yaml", () => {
  it("needs no model or prompts: transport, nats.url, agent.name and its sessions are enough", async () => {
    await write("transport: nats\nnats:\n  url: nats://relay.example:4222\nagent:\n  name: laptop\nsessions:\n  - id: s2\n");
    expect(await loadAgentConfig(paths, {})).toEqual({ nats: { url: "nats://relay.example:4222", prefix: "relay", replicas: 1 }, agentName: "laptop", sessions: ["s2"], pollIntervalMs: 1000 });
  });

  it("refuses a root whose transport is not nats", async () => {
    await write("sessions:\n  - id: s2\n");
    await expect(loadAgentConfig(paths, {})).rejects.toThrow(/transport: expected "nats" on an agent's root/);
  });
});
