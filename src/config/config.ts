// config.yaml + .env + the environment, validated at the edge (CONTRACT §3, §4).
import { randomBytes } from "node:crypto";
import { copyFile } from "node:fs/promises";
import * as z from "zod/mini";
import type { RelayPaths } from "./paths.js";
import type { ModelPrice } from "../costs/pricing.js";
import { ConfigError } from "../errors.js";
import { isErrno, readIfPresent, writeAtomic } from "../store/files.js";
import "../zod-english.js";
import { SESSION_ID } from "./session-id.js";
import { packageFile } from "../package-files.js";
import { readConfigCache, writeConfigCache } from "./config-cache.js";
import type { PolicyRule } from "../../machines/permission-policy.js";

export { SESSION_ID };
const MODEL_ID = /^claude-[a-z0-9][a-z0-9.-]*$/;
export const NTFY_TOPIC = /^[-_A-Za-z0-9]{22,64}$/;
/** An agent's name: one NATS subject token and one KV key part. */
export const AGENT_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
/** Streams are `<PREFIX>_*` upper-cased, buckets `<prefix>_*`, subjects `<prefix>.*`. */
export const NATS_PREFIX = /^[a-z][a-z0-9_-]{0,31}$/;
/** One nats:// or tls:// URL, or several comma-separated (a cluster's members). */
const NATS_URL = /^(nats|tls):\/\/[^\s,]+(,(nats|tls):\/\/[^\s,]+)*$/;

const positiveInt = (what: string) => z.number({ error: `expected ${what}` }).check(z.int({ error: `expected ${what}` }), z.positive({ error: `expected ${what}` }));
const text = (what: string) => z.string({ error: `expected ${what}` }).check(z.trim(), z.minLength(1, { error: `expected ${what}` }));

const usdPerMillion = z.number({ error: "expected a number of USD per million tokens" }).check(z.nonnegative({ error: "expected a number of USD per million tokens, 0 or more" }));

const sessionSchema = z.strictObject(
  {
    id: z.string({ error: "expected a session id" }).check(z.regex(SESSION_ID, { error: `expected a session id matching ${SESSION_ID.source}` })),
    system_prompt: z.optional(text("a non-empty system prompt")),
    model: z.optional(z.string().check(z.regex(MODEL_ID, { error: "expected an Anthropic model id such as claude-sonnet-4-6" }))),
    host: z.optional(z.string({ error: "expected an agent name" }).check(z.regex(AGENT_NAME, { error: `expected an agent name matching ${AGENT_NAME.source}` }))),
  },
  { error: "expected a mapping with id (and optionally system_prompt, model, host)" },
);

const glob = (what: string) => z.string({ error: `expected ${what} (a glob: * matches anything)` }).check(z.minLength(1, { error: `expected ${what} (a glob: * matches anything)` }));
const policyRuleSchema = z.strictObject(
  { tool: glob("a tool name such as Bash or Edit"), command: z.optional(glob("a command pattern")), path: z.optional(glob("a file path pattern")) },
  { error: "expected a rule {tool, command?, path?}" },
);

/** How long chat-Claude has to decide a permission prompt by default (permissions.decide_within_s). */
export const DEFAULT_POLICY_DECIDE_WITHIN_MS = 30_000;

export const fileConfigSchema = z.strictObject(
  {
    model: z.string({ error: "expected an Anthropic model id" }).check(z.regex(MODEL_ID, { error: "expected an Anthropic model id such as claude-sonnet-4-6" })),
    max_tokens: z._default(positiveInt("a positive whole number of tokens").check(z.lte(128_000, { error: "expected at most 128000" })), 4096),
    system_prompt: text("a non-empty system prompt"),
    summarization_prompt: text("a non-empty summarization prompt"),
    keep_recent_turns: z._default(z.int().check(z.gte(0, { error: "expected a whole number ≥ 0" })), 10),
    history_char_cap: z._default(positiveInt("a positive whole number of characters"), 400_000),
    poll_interval_ms: z._default(positiveInt("a positive whole number of milliseconds"), 1000),
    api_timeout_ms: z._default(positiveInt("a positive whole number of milliseconds"), 300_000),
    cache_ttl: z._default(z.enum(["auto", "5m", "1h"], { error: 'expected "auto", "5m" or "1h"' }), "auto"),
    max_parallel_calls: z._default(positiveInt("a positive whole number of calls").check(z.lte(64, { error: "expected at most 64" })), 4),
    ntfy: z._default(z.strictObject({ server: z.optional(z.url({ error: "expected an http(s) URL" })) }), {}),
    budget: z.optional(
      z.strictObject({
        daily_usd: z.optional(z.number({ error: "expected a number of USD" }).check(z.positive({ error: "expected a positive number of USD" }))),
        session_daily_usd: z.optional(z.number({ error: "expected a number of USD" }).check(z.positive({ error: "expected a positive number of USD" }))),
      }),
    ),
    prices: z.optional(
      z.record(
        z.string().check(z.regex(MODEL_ID, { error: "expected an Anthropic model id such as claude-sonnet-4-6" })),
        z.strictObject(
          {
            input: usdPerMillion,
            output: usdPerMillion,
            cache_write_5m: usdPerMillion,
            cache_write_1h: usdPerMillion,
            cache_read: usdPerMillion,
          },
          { error: "expected {input, output, cache_write_5m, cache_write_1h, cache_read} in USD per million tokens" },
        ),
        { error: "expected a mapping of model id to its rates" },
      ),
    ),
    status_http: z.optional(z.string()),
    public_url: z.optional(z.url({ protocol: /^https?$/, error: "expected an http(s) URL such as https://relay.example.net/" })),
    permissions: z.optional(
      z.strictObject({
        policy: z._default(z.array(policyRuleSchema, { error: "expected a list of rules such as {tool: Bash, command: \"npm test*\"}" }), []),
        decide_within_s: z._default(positiveInt("a positive whole number of seconds").check(z.lte(300, { error: "expected at most 300" })), DEFAULT_POLICY_DECIDE_WITHIN_MS / 1000),
      }),
    ),
    limits: z._default(
      z.strictObject({
        log_max_bytes: z._default(positiveInt("a positive whole number of bytes").check(z.gte(64 * 1024, { error: "expected at least 65536 bytes" })), 10 * 1024 * 1024),
        log_files: z._default(positiveInt("a positive whole number of files").check(z.lte(100, { error: "expected at most 100" })), 5),
        rejected_keep: z._default(positiveInt("a positive whole number of rejections"), 1000),
        rejected_days: z._default(positiveInt("a positive whole number of days"), 30),
        page_clients: z._default(positiveInt("a positive whole number of clients").check(z.lte(1000, { error: "expected at most 1000" })), 16),
      }),
      { log_max_bytes: 10 * 1024 * 1024, log_files: 5, rejected_keep: 1000, rejected_days: 30, page_clients: 16 },
    ),
    transport: z._default(z.enum(["files", "nats"], { error: 'expected "files" or "nats"' }), "files"),
    nats: z._default(
      z.strictObject({
        url: z.optional(z.string({ error: "expected a nats:// or tls:// URL" }).check(z.regex(NATS_URL, { error: "expected a nats:// or tls:// URL" }))),
        prefix: z._default(z.string({ error: "expected a prefix" }).check(z.regex(NATS_PREFIX, { error: `expected a prefix matching ${NATS_PREFIX.source}` })), "relay"),
        replicas: z._default(z.union([z.literal(1), z.literal(3)], { error: "expected 1 or 3" }), 1),
      }),
      { prefix: "relay", replicas: 1 },
    ),
    agent: z.optional(z.strictObject({ name: z.string({ error: "expected an agent name" }).check(z.regex(AGENT_NAME, { error: `expected an agent name matching ${AGENT_NAME.source}` })) })),
    sessions: z.array(sessionSchema, { error: "expected a list of sessions" }).check(
      z.minLength(1, { error: "expected at least one session" }),
      z.refine((list) => new Set(list.map((s) => s.id)).size === list.length, { error: "expected unique session ids" }),
    ),
  },
  { error: "expected a YAML mapping" },
);
export type FileConfig = z.infer<typeof fileConfigSchema>;

export interface SessionConfig {
  id: string;
  /** "shared", or the session's own conversation when it has its own system prompt */
  conversation: string;
  systemPrompt: string;
  model: string;
  /** the agent that serves this session (`transport: nats`); absent: the relay's own root */
  host?: string;
}

/** `transport: nats` settings; the credentials come from .env or the environment only. */
export interface NatsSettings {
  url: string;
  prefix: string;
  replicas: 1 | 3;
  creds?: string;
  token?: string;
  user?: string;
  password?: string;
  ca?: string;
}

export interface RelayConfig {
  model: string;
  maxTokens: number;
  systemPrompt: string;
  summarizationPrompt: string;
  keepRecentTurns: number;
  historyCharCap: number;
  pollIntervalMs: number;
  apiTimeoutMs: number;
  /** auto: chosen per conversation and call from its pace (src/anthropic/cache-policy.ts) */
  cacheTtl: "auto" | "5m" | "1h";
  /** API calls in flight at once, across conversations */
  maxParallelCalls: number;
  sessions: SessionConfig[];
  budget: { dailyUsd?: number; sessionDailyUsd?: number };
  /** `prices:` in config.yaml: rates for models the price table does not know (or overrides of it), by model id */
  prices?: Readonly<Record<string, Readonly<ModelPrice>>>;
  statusHttp?: string;
  /** `public_url`: where JC's phone reaches the status page (the ntfy Status button), instead of the address it is served on */
  publicUrl?: string;
  /** `permissions:` in config.yaml; absent: every permission prompt goes to JC */
  permissions?: { policy: PolicyRule[]; decideWithinMs: number };
  /** what bounds the relay's growth over weeks (README: Running for weeks) */
  limits: Limits;
  /** RELAY_HTTP_TOKEN: required by the status page when it listens beyond loopback */
  httpToken?: string;
  anthropic: { apiKey?: string; baseUrl?: string };
  /** `replyTopic`: JC's private topic; what is published there is taken like state/jc_input.txt */
  ntfy: { server: string; topic?: string; replyTopic?: string; token?: string };
  /** absent means files (CONTRACT §11) */
  transport?: "files" | "nats";
  nats?: NatsSettings;
  /** agent.name in config.yaml: this root's agent */
  agentName?: string;
}

export { ConfigError } from "../errors.js";

export interface Limits {
  /** logs/relay.jsonl is rotated past this size */
  logMaxBytes: number;
  /** rotated logs kept (relay.1.jsonl … relay.N.jsonl) */
  logFiles: number;
  /** queue/.rejected/ keeps at most this many rejections, the newest */
  rejectedKeep: number;
  /** and none older than this many days */
  rejectedDays: number;
  /** /events clients of the status page at once */
  pageClients: number;
}

export const DEFAULT_LIMITS: Limits = { logMaxBytes: 10 * 1024 * 1024, logFiles: 5, rejectedKeep: 1000, rejectedDays: 30, pageClients: 16 };

const ENV_KEYS = [
  "ANTHROPIC_API_KEY",
  "ANTHROPIC_BASE_URL",
  "NTFY_TOPIC",
  "NTFY_REPLY_TOPIC",
  "NTFY_SERVER",
  "NTFY_TOKEN",
  "HISTORY_CHAR_CAP",
  "POLL_INTERVAL_MS",
  "RELAY_HTTP_TOKEN",
  "NATS_URL",
  "NATS_CREDS",
  "NATS_TOKEN",
  "NATS_USER",
  "NATS_PASSWORD",
  "NATS_CA",
] as const;
type EnvKey = (typeof ENV_KEYS)[number];

export const SHARED_CONVERSATION = "shared";
export const conversationOf = (id: string, ownPrompt: boolean): string => (ownPrompt ? `session.${id}` : SHARED_CONVERSATION);

/** The commented default config.yaml shipped with the package. */
export const DEFAULT_CONFIG_URL = packageFile("config.yaml");

export async function seedConfigIfMissing(paths: RelayPaths): Promise<boolean> {
  try {
    await copyFile(DEFAULT_CONFIG_URL, paths.config, 1 /* COPYFILE_EXCL */);
    return true;
  } catch (err) {
    if (isErrno(err, "EEXIST")) return false;
    throw err;
  }
}

/** .env values, then the real environment on top (CONTRACT §3). */
export async function loadEnv(paths: RelayPaths, env: NodeJS.ProcessEnv): Promise<Partial<Record<EnvKey, string>>> {
  const raw = await readIfPresent(paths.env);
  // the dotenv parser is loaded only for a root that has a .env
  const fromFile = raw === null ? {} : (await import("./dotenv-file.js")).parseEnvText(raw);
  const merged: Partial<Record<EnvKey, string>> = {};
  for (const key of ENV_KEYS) {
    const value = env[key] ?? fromFile[key];
    if (value !== undefined && value !== "") merged[key] = value;
  }
  return merged;
}

function formatPath(path: PropertyKey[]): string {
  return path.reduce<string>((acc, part) => (typeof part === "number" ? `${acc}[${part}]` : acc ? `${acc}.${String(part)}` : String(part)), "");
}

function envInt(name: EnvKey, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n <= 0) {
    throw new ConfigError(`.env or environment: ${name}: expected a positive whole number, got ${JSON.stringify(value)}`);
  }
  return n;
}

/** Validate config.yaml's settings as parsed from YAML; throws ConfigError naming the key. */
export function validateFileConfig(js: unknown, file = "config.yaml"): FileConfig {
  const parsed = fileConfigSchema.safeParse(js);
  if (!parsed.success) throw schemaError(parsed.error.issues[0], file);
  return parsed.data;
}

/** The first issue of a failed validation of `file`, in one line naming the key. */
function schemaError(issue: z.core.$ZodIssue | undefined, file: string): ConfigError {
  const key = issue ? formatPath(issue.path) : "";
  if (issue?.code === "unrecognized_keys") return new ConfigError(`${file}: ${[key, ...issue.keys].filter(Boolean).join(".")}: unknown key (check its spelling)`);
  return new ConfigError(`${file}: ${key || "(top level)"}: ${issue?.message ?? "invalid"}`);
}

/** The first line of a YAML parse error, as every command reports it. */
export const malformedYaml = (file: string, message: string): ConfigError => new ConfigError(`${file}: malformed YAML: ${(message.split(/\r?\n|\r/)[0] ?? "").trim()}`);

/**
 * config.yaml as YAML makes it: `mapping` (its JavaScript value) when it is a well-formed mapping,
 * read from state/config.cache.json while that is config.yaml's (./config-cache.ts), so the
 * commands that start often load no YAML parser; else `missing`, or `other` with the parse error
 * (null when it parsed to something that is not a mapping) and its value.
 */
export type ConfigYaml = { kind: "mapping"; js: unknown } | { kind: "missing" } | { kind: "other"; error: string | null; js: () => unknown };

async function readConfigYaml(paths: RelayPaths, opts: { keepCopy?: boolean } = {}): Promise<ConfigYaml> {
  const cache = await readConfigCache(paths);
  if (cache.hit) return { kind: "mapping", js: cache.document };
  const text = await readIfPresent(paths.config);
  if (text === null) return { kind: "missing" };
  const parsed = (await import("./yaml-text.js")).parseYaml(text);
  if (parsed.kind === "mapping" && opts.keepCopy !== false) await writeConfigCache(paths, cache.key, parsed.js);
  return parsed;
}

/**
 * The relay's settings. `seed: false`: a missing config.yaml is an error, not written from the
 * template. `keepCopy: false`: config.yaml's parsed copy is used but never written (a command
 * that promises to change nothing, as `relay init` on a ready root).
 */
export async function loadConfig(paths: RelayPaths, env: NodeJS.ProcessEnv = process.env, opts: { seed?: boolean; keepCopy?: boolean } = {}): Promise<RelayConfig> {
  if (opts.seed !== false) await seedConfigIfMissing(paths);
  const yaml = await readConfigYaml(paths, { keepCopy: opts.keepCopy });
  if (yaml.kind === "other" && yaml.error !== null) throw malformedYaml("config.yaml", yaml.error);
  if (yaml.kind !== "mapping") throw new ConfigError("config.yaml: expected a YAML mapping of settings");
  const file = validateFileConfig(yaml.js);
  const vars = await loadEnv(paths, env);
  for (const key of ["NTFY_TOPIC", "NTFY_REPLY_TOPIC"] as const) {
    const value = vars[key];
    if (value !== undefined && !NTFY_TOPIC.test(value)) throw new ConfigError(`.env or environment: ${key}: expected 22 to 64 characters from [A-Za-z0-9_-]`);
  }
  const ntfyServer = vars.NTFY_SERVER ?? file.ntfy.server ?? "https://ntfy.sh";
  if (!/^https?:\/\/[^\s]+$/.test(ntfyServer)) throw new ConfigError(".env or environment: NTFY_SERVER: expected an http(s) URL");
  return {
    model: file.model,
    maxTokens: file.max_tokens,
    systemPrompt: file.system_prompt,
    summarizationPrompt: file.summarization_prompt,
    keepRecentTurns: file.keep_recent_turns,
    historyCharCap: envInt("HISTORY_CHAR_CAP", vars.HISTORY_CHAR_CAP) ?? file.history_char_cap,
    pollIntervalMs: envInt("POLL_INTERVAL_MS", vars.POLL_INTERVAL_MS) ?? file.poll_interval_ms,
    apiTimeoutMs: file.api_timeout_ms,
    cacheTtl: file.cache_ttl,
    maxParallelCalls: file.max_parallel_calls,
    sessions: file.sessions.map((s) => ({
      id: s.id,
      conversation: conversationOf(s.id, s.system_prompt !== undefined),
      systemPrompt: s.system_prompt ?? file.system_prompt,
      model: s.model ?? file.model,
      ...(s.host === undefined ? {} : { host: s.host }),
    })),
    budget: {
      ...(file.budget?.daily_usd === undefined ? {} : { dailyUsd: file.budget.daily_usd }),
      ...(file.budget?.session_daily_usd === undefined ? {} : { sessionDailyUsd: file.budget.session_daily_usd }),
    },
    ...(file.prices === undefined
      ? {}
      : {
          prices: Object.fromEntries(
            Object.entries(file.prices).map(([model, r]) => [model, { input: r.input, output: r.output, cacheWrite5m: r.cache_write_5m, cacheWrite1h: r.cache_write_1h, cacheRead: r.cache_read }]),
          ),
        }),
    ...(file.status_http === undefined ? {} : { statusHttp: file.status_http }),
    ...(file.public_url === undefined ? {} : { publicUrl: file.public_url }),
    ...(file.permissions === undefined
      ? {}
      : {
          permissions: {
            policy: file.permissions.policy.map((r) => ({ tool: r.tool, ...(r.command === undefined ? {} : { command: r.command }), ...(r.path === undefined ? {} : { path: r.path }) })),
            decideWithinMs: file.permissions.decide_within_s * 1000,
          },
        }),
    limits: {
      logMaxBytes: file.limits.log_max_bytes,
      logFiles: file.limits.log_files,
      rejectedKeep: file.limits.rejected_keep,
      rejectedDays: file.limits.rejected_days,
      pageClients: file.limits.page_clients,
    },
    ...(vars.RELAY_HTTP_TOKEN === undefined ? {} : { httpToken: vars.RELAY_HTTP_TOKEN }),
    anthropic: {
      ...(vars.ANTHROPIC_API_KEY === undefined ? {} : { apiKey: vars.ANTHROPIC_API_KEY }),
      ...(vars.ANTHROPIC_BASE_URL === undefined ? {} : { baseUrl: vars.ANTHROPIC_BASE_URL }),
    },
    ntfy: {
      server: ntfyServer.replace(/\/+$/, ""),
      ...(vars.NTFY_TOPIC === undefined ? {} : { topic: vars.NTFY_TOPIC }),
      ...(vars.NTFY_REPLY_TOPIC === undefined ? {} : { replyTopic: vars.NTFY_REPLY_TOPIC }),
      ...(vars.NTFY_TOKEN === undefined ? {} : { token: vars.NTFY_TOKEN }),
    },
    ...natsPart(file, vars),
  };
}

/** The `transport: nats` keys, when set; the files transport adds nothing (its config is unchanged). */
function natsPart(file: Pick<FileConfig, "transport" | "nats" | "agent">, vars: Partial<Record<EnvKey, string>>): Pick<RelayConfig, "transport" | "nats" | "agentName"> {
  if (file.transport !== "nats") return {};
  const url = vars.NATS_URL ?? file.nats.url ?? "nats://127.0.0.1:4222";
  if (!NATS_URL.test(url)) throw new ConfigError(".env or environment: NATS_URL: expected a nats:// or tls:// URL");
  if ((vars.NATS_USER === undefined) !== (vars.NATS_PASSWORD === undefined)) throw new ConfigError(".env or environment: NATS_USER and NATS_PASSWORD: expected both or neither");
  const nats: NatsSettings = {
    url,
    prefix: file.nats.prefix,
    replicas: file.nats.replicas,
    ...(vars.NATS_CREDS === undefined ? {} : { creds: vars.NATS_CREDS }),
    ...(vars.NATS_TOKEN === undefined ? {} : { token: vars.NATS_TOKEN }),
    ...(vars.NATS_USER === undefined ? {} : { user: vars.NATS_USER }),
    ...(vars.NATS_PASSWORD === undefined ? {} : { password: vars.NATS_PASSWORD }),
    ...(vars.NATS_CA === undefined ? {} : { ca: vars.NATS_CA }),
  };
  return { transport: "nats", nats, ...(file.agent === undefined ? {} : { agentName: file.agent.name }) };
}

/** The secrets of the NATS settings, for the loggers' redaction (kept with the one redaction step). */
export { natsSecrets } from "../runtime/redact.js";

/** 24 random bytes as base64url: 32 characters, 192 bits (CONTRACT §3 asks for at least 128). */
export const generateTopic = (): string => randomBytes(24).toString("base64url");

/**
 * Make sure a topic exists: keep the one in the environment or .env, else generate one and add
 * it to .env without disturbing its other lines (.env is created 0600 when missing).
 */
export async function ensureTopic(paths: RelayPaths, env: NodeJS.ProcessEnv = process.env, key = "NTFY_TOPIC"): Promise<string> {
  const existing = env[key];
  if (existing) return existing;
  const raw = await readIfPresent(paths.env);
  const { envValue, withEnvValue } = await import("./dotenv-file.js");
  const fromFile = envValue(raw, key);
  if (fromFile) return fromFile;
  const topic = generateTopic();
  await writeAtomic(paths.env, withEnvValue(raw, key, topic), { mode: 0o600 });
  return topic;
}

/** What `relay agent` needs from its root's config.yaml: model and prompts are the relay's business. */
export interface AgentConfig {
  nats: NatsSettings;
  agentName?: string;
  sessions: string[];
  pollIntervalMs: number;
}

export async function loadAgentConfig(paths: RelayPaths, env: NodeJS.ProcessEnv = process.env, opts: { keepCopy?: boolean } = {}): Promise<AgentConfig> {
  const yaml = await readConfigYaml(paths, opts);
  if (yaml.kind === "missing") throw new ConfigError(`config.yaml: missing in ${paths.root} (an agent's root needs transport: nats, nats.url, agent.name and its sessions)`);
  if (yaml.kind === "other" && yaml.error !== null) throw malformedYaml("config.yaml", yaml.error);
  const parsed = z.partial(fileConfigSchema, { model: true, system_prompt: true, summarization_prompt: true }).safeParse(yaml.kind === "mapping" ? yaml.js : yaml.js());
  if (!parsed.success) throw schemaError(parsed.error.issues[0], "config.yaml");
  const file = parsed.data;
  if (file.transport !== "nats") throw new ConfigError('config.yaml: transport: expected "nats" on an agent\'s root');
  const vars = await loadEnv(paths, env);
  const part = natsPart(file, vars);
  if (!part.nats) throw new ConfigError('config.yaml: transport: expected "nats"');
  return {
    nats: part.nats,
    ...(part.agentName === undefined ? {} : { agentName: part.agentName }),
    sessions: file.sessions.map((s) => s.id),
    pollIntervalMs: envInt("POLL_INTERVAL_MS", vars.POLL_INTERVAL_MS) ?? file.poll_interval_ms,
  };
}

/**
 * What the Claude Code side (`send`, `jc`, the hooks, `hook install`, `status`) needs from a
 * root's config.yaml, on the relay's root or on an agent's (CONTRACT §11: they work unchanged
 * there). `conversation` is known on the relay's root only; an agent's root leaves it to the relay.
 */
export interface ClientConfig {
  sessions: readonly { id: string; conversation?: string }[];
  pollIntervalMs: number;
  /** set on an agent's root: the relay is on another host and its status is mirrored here */
  agentName?: string;
}

/** An agent's config.yaml: `agent:` set, or `transport: nats` without the relay's `model`. */
function isAgentDocument(js: unknown): boolean {
  if (typeof js !== "object" || js === null) return false;
  const doc = js as Record<string, unknown>;
  return doc.agent !== undefined || (doc.transport === "nats" && doc.model === undefined);
}

export async function loadClientConfig(paths: RelayPaths, env: NodeJS.ProcessEnv = process.env, opts: { seed?: boolean } = {}): Promise<ClientConfig> {
  const yaml = await readConfigYaml(paths);
  if (yaml.kind !== "missing" && isAgentDocument(yaml.kind === "mapping" ? yaml.js : yaml.js())) {
    const agent = await loadAgentConfig(paths, env);
    return { sessions: agent.sessions.map((id) => ({ id })), pollIntervalMs: agent.pollIntervalMs, agentName: agent.agentName ?? "(set by --name)" };
  }
  const config = await loadConfig(paths, env, opts);
  return { sessions: config.sessions, pollIntervalMs: config.pollIntervalMs };
}
