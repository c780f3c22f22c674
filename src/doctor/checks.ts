// `relay doctor`: each check of the set-up (CONTRACT §9) as a function that returns one finding.
// Each runs under its own deadline, so a check that cannot finish says so instead of hanging.
import { existsSync } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import type { RelayConfig } from "../config/config.js";
import type { RelayPaths } from "../config/paths.js";
import { packageFile } from "../package-files.js";

export const CHECK_STATUSES = ["ok", "warn", "fail"] as const;
export type CheckStatus = (typeof CHECK_STATUSES)[number];

export interface Finding {
  name: string;
  status: CheckStatus;
  message: string;
}

export interface DoctorInput {
  paths: RelayPaths;
  env: NodeJS.ProcessEnv;
  /** the longest one check may take */
  timeoutMs: number;
  /** publish a test notification (it pings the phone) */
  ntfyTest: boolean;
  /** Claude Code projects whose hooks to check */
  projects: string[];
  platform: string;
}

const ok = (name: string, message: string): Finding => ({ name, status: "ok", message });
const warn = (name: string, message: string): Finding => ({ name, status: "warn", message });
const fail = (name: string, message: string): Finding => ({ name, status: "fail", message });

const isFile = (path: string): Promise<boolean> => stat(path).then((s) => s.isFile(), () => false);
/** The first line of an error, with its cause (fetch's "fetch failed" says nothing without it). */
function message(err: unknown): string {
  const text = err instanceof Error ? `${err.message}${err.cause instanceof Error ? `: ${err.cause.message}` : ""}` : String(err);
  return text.split("\n")[0] ?? "";
}

/** Run `check` with a deadline: past it, the finding is a fail that says the check did not finish. */
export async function withDeadline(name: string, timeoutMs: number, check: (signal: AbortSignal) => Promise<Finding>): Promise<Finding> {
  const abort = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<Finding>((resolveLate) => {
    timer = setTimeout(() => {
      abort.abort();
      resolveLate(fail(name, `no answer within ${Math.round(timeoutMs / 1000)} s`));
    }, timeoutMs);
  });
  try {
    return await Promise.race([check(abort.signal).catch((err: unknown) => fail(name, message(err))), late]);
  } finally {
    clearTimeout(timer);
    abort.abort();
  }
}


/** `>=20.19` against `20.19.5`; other ranges are not ours to judge (null). */
export function satisfiesMinimum(range: string, version: string): boolean | null {
  const min = /^>=\s*(\d+)(?:\.(\d+))?(?:\.(\d+))?$/.exec(range.trim());
  const have = /^v?(\d+)\.(\d+)\.(\d+)/.exec(version);
  if (!min || !have) return null;
  const want = [Number(min[1]), Number(min[2] ?? 0), Number(min[3] ?? 0)];
  const got = [Number(have[1]), Number(have[2]), Number(have[3])];
  for (let i = 0; i < 3; i++) if ((got[i] ?? 0) !== (want[i] ?? 0)) return (got[i] ?? 0) > (want[i] ?? 0);
  return true;
}

export async function checkNode(version = process.version): Promise<Finding> {
  const pkg = JSON.parse(await readFile(packageFile("package.json"), "utf8")) as { engines?: { node?: string } };
  const range = pkg.engines?.node;
  if (range === undefined) return ok("node", `${version} (no engines range to compare with)`);
  const fits = satisfiesMinimum(range, version);
  if (fits === false) return fail("node", `${version} is older than this relay needs (${range}): install a newer Node.js`);
  return ok("node", `${version} (needs ${range})`);
}

export async function checkRoot(paths: RelayPaths): Promise<Finding> {
  const st = await stat(paths.root).catch(() => null);
  if (!st) return fail("root", `${paths.root} does not exist: relay init ${paths.root}`);
  if (!st.isDirectory()) return fail("root", `${paths.root} is not a directory`);
  return ok("root", paths.root);
}

export type ConfigOutcome = { finding: Finding; config: RelayConfig | null };

export async function checkConfig(paths: RelayPaths, env: NodeJS.ProcessEnv): Promise<ConfigOutcome> {
  if (!(await isFile(paths.config))) return { finding: fail("config", `no ${paths.config}: relay init ${paths.root} makes one`), config: null };
  const { loadConfig, ConfigError } = await import("../config/config.js");
  try {
    const config = await loadConfig(paths, env, { seed: false });
    const sessions = config.sessions.map((s) => s.id).join(", ");
    return { finding: ok("config", `config.yaml: model ${config.model}, sessions ${sessions}`), config };
  } catch (err) {
    if (err instanceof ConfigError) return { finding: fail("config", err.message), config: null };
    throw err;
  }
}

export async function checkEnvFile(paths: RelayPaths): Promise<Finding> {
  const st = await stat(paths.env).catch(() => null);
  if (!st) return warn("env", `no ${paths.env}: relay init ${paths.root} makes one (mode 0600) with the ntfy topics`);
  const mode = st.mode & 0o777;
  const shown = `0${mode.toString(8)}`;
  if ((mode & 0o077) !== 0) return fail("env", `${paths.env} has mode ${shown}: other users can read the key; chmod 600 ${paths.env}`);
  return ok("env", `${paths.env} (mode ${shown})`);
}

export async function checkKey(paths: RelayPaths, env: NodeJS.ProcessEnv): Promise<Finding> {
  const [{ loadEnv }, { isPlaceholderKey }] = await Promise.all([import("../config/config.js"), import("../config/dotenv-file.js")]);
  const key = (await loadEnv(paths, env)).ANTHROPIC_API_KEY;
  if (key === undefined) return fail("key", `ANTHROPIC_API_KEY is not set: add it to ${paths.env} (relay init --key-from-env), or run with --dry-run`);
  if (isPlaceholderKey(key)) return fail("key", `ANTHROPIC_API_KEY is still the placeholder: put your key in ${paths.env}`);
  return ok("key", `ANTHROPIC_API_KEY is set (${env.ANTHROPIC_API_KEY === undefined ? ".env" : "the environment"})`);
}

/** The models config.yaml uses: the default and each session's own. */
const modelsOf = (config: RelayConfig): string[] => [...new Set([config.model, ...config.sessions.map((s) => s.model)])];

/** A free call (count_tokens) per model: the API is reachable, and it accepts the key and the model. */
export async function checkApi(config: RelayConfig | null, timeoutMs: number, signal: AbortSignal): Promise<Finding> {
  if (config === null) return warn("api", "not checked: config.yaml does not load");
  const apiKey = config.anthropic.apiKey;
  if (apiKey === undefined) return warn("api", "not checked: no key");
  const [{ createClient }, { default: Anthropic }] = await Promise.all([import("../anthropic/messages.js"), import("@anthropic-ai/sdk")]);
  const client = await createClient({ apiKey, ...(config.anthropic.baseUrl ? { baseUrl: config.anthropic.baseUrl } : {}), timeoutMs });
  const where = config.anthropic.baseUrl ?? "the Anthropic API";
  const counted: string[] = [];
  for (const model of modelsOf(config)) {
    try {
      const r = await client.messages.countTokens({ model, messages: [{ role: "user", content: "relay doctor" }] }, { signal });
      counted.push(`${model} (${r.input_tokens} tokens counted)`);
    } catch (err) {
      if (err instanceof Anthropic.AuthenticationError) return fail("api", `${where} refused the key (401 ${err.apiMessage ?? "authentication_error"}): check ANTHROPIC_API_KEY`);
      if (err instanceof Anthropic.PermissionDeniedError) return fail("api", `${where} refused the key for this (403 ${err.apiMessage ?? "permission_error"})`);
      if (err instanceof Anthropic.NotFoundError) return fail("api", `${where} does not know the model ${model} (404): check model: in config.yaml`);
      if (err instanceof Anthropic.APIConnectionError) return fail("api", `cannot reach ${where}: ${message(err)}`);
      if (err instanceof Anthropic.APIError) return fail("api", `${where} answered ${err.status ?? "?"} ${err.type ?? "error"}: ${err.apiMessage ?? err.message}`);
      throw err;
    }
  }
  return ok("api", `${where} accepts the key and ${counted.join(", ")}`);
}

export async function checkPrices(config: RelayConfig | null): Promise<Finding> {
  if (config === null) return warn("prices", "not checked: config.yaml does not load");
  const [{ unpricedUnderBudget }, { priceFor }] = await Promise.all([import("../costs/budget.js"), import("../costs/pricing.js")]);
  const refused = unpricedUnderBudget(config);
  if (refused !== null) return fail("prices", refused);
  const unpriced = modelsOf(config).filter((m) => priceFor(m, undefined, config.prices) === null);
  if (unpriced.length > 0) return warn("prices", `no price known for ${unpriced.join(", ")}: its costs show as unknown (give its rates under prices: in config.yaml)`);
  const budget = config.budget.dailyUsd !== undefined || config.budget.sessionDailyUsd !== undefined;
  return ok("prices", `${modelsOf(config).join(", ")} priced${budget ? "; the budget can count every call" : ""}`);
}

const ntfyHeaders = (token: string | undefined): Record<string, string> => (token ? { Authorization: `Bearer ${token}` } : {});

export async function checkNtfyPublish(config: RelayConfig | null, test: boolean, signal: AbortSignal): Promise<Finding> {
  if (config === null) return warn("ntfy-publish", "not checked: config.yaml does not load");
  const topic = config.ntfy.topic;
  if (topic === undefined) return warn("ntfy-publish", "no NTFY_TOPIC yet: relay init (or the first relay run) generates it");
  if (!test) return ok("ntfy-publish", `topic set on ${config.ntfy.server}; not sent (--ntfy-test publishes a test notification)`);
  const res = await fetch(config.ntfy.server, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...ntfyHeaders(config.ntfy.token) },
    body: JSON.stringify({ topic, title: "relay doctor", message: "Test notification from relay doctor: notifications reach you.", tags: ["white_check_mark"] }),
    signal,
  }).catch((err: unknown) => {
    throw new Error(`cannot reach ${config.ntfy.server}: ${message(err)}`);
  });
  await res.body?.cancel();
  if (!res.ok) return fail("ntfy-publish", `${config.ntfy.server} refused the test notification (${res.status}${res.status === 401 || res.status === 403 ? ": check NTFY_TOKEN" : ""})`);
  return ok("ntfy-publish", `test notification published to ${config.ntfy.server}/${topic}`);
}

/** The reply topic's subscription opens: the stream answers 200 (then it is closed at once). */
export async function checkNtfyReplies(config: RelayConfig | null, signal: AbortSignal): Promise<Finding> {
  if (config === null) return warn("ntfy-replies", "not checked: config.yaml does not load");
  const topic = config.ntfy.replyTopic;
  if (topic === undefined) return warn("ntfy-replies", "no NTFY_REPLY_TOPIC yet: relay init (or the first relay run) generates it");
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  signal.addEventListener("abort", onAbort);
  try {
    const res = await fetch(`${config.ntfy.server}/${topic}/json`, { headers: ntfyHeaders(config.ntfy.token), signal: stop.signal }).catch((err: unknown) => {
      throw new Error(`cannot reach ${config.ntfy.server}: ${message(err)}`);
    });
    if (!res.ok) return fail("ntfy-replies", `${config.ntfy.server} refused the reply topic's subscription (${res.status}${res.status === 401 || res.status === 403 ? ": check NTFY_TOKEN" : ""})`);
    return ok("ntfy-replies", `the reply topic's subscription opens on ${config.ntfy.server}`);
  } finally {
    signal.removeEventListener("abort", onAbort);
    stop.abort();
  }
}

/** Split a POSIX shell command line as the relay's hook commands are written (shellQuote). */
export function shellWords(command: string): string[] {
  const words: string[] = [];
  const re = /'((?:[^']|'\\'')*)'|(\S+)/g;
  for (let m = re.exec(command); m !== null; m = re.exec(command)) words.push(m[1] !== undefined ? m[1].replace(/'\\''/g, "'") : (m[2] ?? ""));
  return words;
}

/** node and relay of every relay hook in a project's Claude Code settings that serves this root. */
async function hookPrograms(project: string, root: string): Promise<{ file: string; node: string; bin: string }[]> {
  const out: { file: string; node: string; bin: string }[] = [];
  for (const name of ["settings.local.json", "settings.json"]) {
    const file = join(project, ".claude", name);
    const raw = await readFile(file, "utf8").catch(() => null);
    if (raw === null) continue;
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      continue; // not ours to judge: Claude Code reports its own settings errors
    }
    const commands = JSON.stringify(parsed).match(/"command":"((?:[^"\\]|\\.)*)"/g) ?? [];
    for (const c of commands) {
      const command = JSON.parse(c.slice("\"command\":".length)) as string;
      const words = shellWords(command);
      const at = words.indexOf("hook");
      const rootAt = words.indexOf("--root");
      if (at !== 2 || !(words[3] ?? "").startsWith("claude-") || rootAt < 0 || words[rootAt + 1] !== root) continue;
      out.push({ file, node: words[0] ?? "", bin: words[1] ?? "" });
    }
  }
  return out;
}

export async function checkHooks(paths: RelayPaths, projects: string[]): Promise<Finding> {
  const found = (await Promise.all(projects.map((p) => hookPrograms(p, paths.root)))).flat();
  if (found.length === 0) return ok("hooks", `no relay hooks for this root in ${projects.join(", ")} (--project DIR checks a Claude Code project's)`);
  const broken = found.filter((h) => !existsSync(h.node) || !existsSync(h.bin));
  if (broken.length > 0) {
    const b = broken[0];
    const missing = b && !existsSync(b.node) ? b.node : (b?.bin ?? "");
    return fail("hooks", `${b?.file ?? "?"}: a relay hook runs ${missing}, which does not exist: run relay hook install again`);
  }
  return ok("hooks", `${found.length} relay hook${found.length === 1 ? "" : "s"} in ${[...new Set(found.map((h) => h.file))].join(", ")}, node and relay present`);
}

/** The service files this root may have (systemd user and system units, the launchd agent) and the programs each runs. */
export async function checkService(paths: RelayPaths, platform: string): Promise<Finding> {
  const [unit, launchd] = await Promise.all([import("../service/unit.js"), import("../service/launchd.js")]);
  const candidates =
    platform === "darwin"
      ? [join(launchd.agentDir(), launchd.agentFile(paths.root))]
      : [join(unit.unitDir(true), unit.unitName(paths.root)), join(unit.unitDir(false), unit.unitName(paths.root))];
  const found: { path: string; programs: string[] }[] = [];
  for (const path of candidates) {
    const text = await readFile(path, "utf8").catch(() => null);
    if (text === null) continue;
    const programs =
      platform === "darwin"
        ? [...text.matchAll(/<string>([^<]*)<\/string>/g)].map((m) => (m[1] ?? "").replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&")).slice(1, 3)
        : (/^ExecStart=(.*)$/m.exec(text)?.[1] ?? "")
            .match(/"(?:[^"\\]|\\.)*"|\S+/g)
            ?.slice(0, 2)
            .map((w) => (w.startsWith('"') ? (JSON.parse(w) as string) : w).replace(/%%/g, "%").replace(/\$\$/g, "$")) ?? [];
    found.push({ path, programs });
  }
  if (found.length === 0) return ok("service", "no service installed for this root (relay service install makes one)");
  for (const f of found) {
    const missing = f.programs.find((p) => !existsSync(p));
    if (f.programs.length < 2 || missing !== undefined) return fail("service", `${f.path} runs ${missing ?? "nothing readable"}, which does not exist: run relay service install again`);
  }
  return ok("service", `${found.map((f) => f.path).join(", ")}: node and relay present`);
}

export async function checkLock(paths: RelayPaths): Promise<Finding> {
  const { probeLock } = await import("../store/lock.js");
  const probe = probeLock(paths.lock);
  if (probe.held) return ok("lock", `a relay is running on this root (pid ${probe.pid ?? "unknown"})`);
  return ok("lock", "free: no relay is running on this root (relay run starts one)");
}

/** Every check, in the order they are printed. */
export async function runChecks(input: DoctorInput): Promise<Finding[]> {
  const t = input.timeoutMs;
  const { finding: configFinding, config } = await checkConfig(input.paths, input.env).catch((err: unknown) => ({ finding: fail("config", message(err)), config: null }));
  return Promise.all([
    withDeadline("node", t, () => checkNode()),
    withDeadline("root", t, () => checkRoot(input.paths)),
    Promise.resolve(configFinding),
    withDeadline("env", t, () => checkEnvFile(input.paths)),
    withDeadline("key", t, () => checkKey(input.paths, input.env)),
    withDeadline("api", t, (signal) => checkApi(config, t, signal)),
    withDeadline("prices", t, () => checkPrices(config)),
    withDeadline("ntfy-publish", t, (signal) => checkNtfyPublish(config, input.ntfyTest, signal)),
    withDeadline("ntfy-replies", t, (signal) => checkNtfyReplies(config, signal)),
    withDeadline("hooks", t, () => checkHooks(input.paths, input.projects)),
    withDeadline("service", t, () => checkService(input.paths, input.platform)),
    withDeadline("lock", t, () => checkLock(input.paths)),
  ]);
}
