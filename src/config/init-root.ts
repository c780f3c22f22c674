// `relay init`: make a directory a ready root (CONTRACT §2, §9). It only ever adds: an existing
// file, directory or .env value is kept and said to be kept.
import { stat } from "node:fs/promises";
import { relative } from "node:path";
import { ensureTopic, seedConfigIfMissing } from "./config.js";
import { envValue, isPlaceholderKey, withEnvValue } from "./dotenv-file.js";
import type { RelayPaths } from "./paths.js";
import { ensureDirs, readIfPresent, writeAtomic } from "../store/files.js";

/** The .env a fresh root starts with: the optional settings, commented out. The topics and the key follow. */
const ENV_HEADER = [
  "# relay: secrets and per-host settings. Keep this file private (mode 0600).",
  "# Real environment variables override these lines; `relay doctor` checks them.",
  "# ANTHROPIC_BASE_URL=https://api.anthropic.com",
  "# NTFY_SERVER=https://ntfy.sh",
  "# NTFY_TOKEN=tk_...            # for ntfy servers with access control",
  "# RELAY_HTTP_TOKEN=            # 16+ chars; required for the status page beyond 127.0.0.1",
  "",
].join("\n");

export interface InitOutcome {
  root: string;
  /** what this run made, relative to the root ("." for the root itself) */
  created: string[];
  /** what was there already and is left as it was */
  kept: string[];
  topic: string;
  replyTopic: string;
  /** where the key stands now: saved by this run, already in .env, or absent */
  key: "saved" | "kept" | "absent";
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** The key .env holds, unless it is missing or the placeholder of .env.example. */
export async function keyInEnvFile(paths: RelayPaths): Promise<string | undefined> {
  const value = envValue(await readIfPresent(paths.env), "ANTHROPIC_API_KEY");
  return isPlaceholderKey(value) ? undefined : value;
}

export async function initRoot(paths: RelayPaths, opts: { key?: string } = {}): Promise<InitOutcome> {
  const created: string[] = [];
  const kept: string[] = [];
  const name = (path: string) => relative(paths.root, path) || ".";
  const note = (made: boolean, path: string) => (made ? created : kept).push(name(path));

  for (const dir of [paths.root, paths.queue, paths.rejected, paths.dispatch, paths.state, paths.logs]) {
    const made = !(await exists(dir));
    await ensureDirs(dir);
    note(made, dir);
  }
  note(await seedConfigIfMissing(paths), paths.config);

  const envBefore = await readIfPresent(paths.env);
  if (envBefore === null) await writeAtomic(paths.env, ENV_HEADER, { mode: 0o600 });
  note(envBefore === null, paths.env);
  // Into .env, whatever the shell exports: the service and the hooks do not have this shell's environment.
  const topicBefore = envValue(envBefore, "NTFY_TOPIC");
  const replyBefore = envValue(envBefore, "NTFY_REPLY_TOPIC");
  const topic = await ensureTopic(paths, {}, "NTFY_TOPIC");
  const replyTopic = await ensureTopic(paths, {}, "NTFY_REPLY_TOPIC");
  if (envBefore !== null) {
    note(topicBefore === undefined, `${paths.env}:NTFY_TOPIC`);
    note(replyBefore === undefined, `${paths.env}:NTFY_REPLY_TOPIC`);
  }

  let key: InitOutcome["key"] = (await keyInEnvFile(paths)) === undefined ? "absent" : "kept";
  if (key === "kept" && envBefore !== null) kept.push(".env:ANTHROPIC_API_KEY");
  if (key === "absent" && opts.key !== undefined) {
    await writeAtomic(paths.env, withEnvValue(await readIfPresent(paths.env), "ANTHROPIC_API_KEY", opts.key, isPlaceholderKey), { mode: 0o600 });
    created.push(".env:ANTHROPIC_API_KEY");
    key = "saved";
  }
  return { root: paths.root, created, kept, topic, replyTopic, key };
}
