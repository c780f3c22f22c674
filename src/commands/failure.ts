// How a command's failure is reported, the same whether oclif ran the command (./base.ts) or
// bin/relay.js ran it without oclif (./fast/hot.ts): one line that quotes no secret, and the
// exit code the failure names.
import type { RelayPaths } from "../config/paths.js";
import { ConfigError, EXIT, UsageError } from "../errors.js";

/** The environment with the root's .env under it (CONTRACT §3), or the environment alone. */
async function secretVars(paths: RelayPaths | null): Promise<NodeJS.ProcessEnv> {
  if (paths === null) return process.env;
  const { loadEnv } = await import("../config/config.js");
  return loadEnv(paths, process.env).catch(() => process.env);
}

/** Takes out of `err`'s message every secret and topic of the environment and of the root's .env (CONTRACT §8). */
export async function scrubError(err: Error, paths: RelayPaths | null): Promise<void> {
  const { scrubber, secretsFromEnv } = await import("../runtime/redact.js");
  err.message = scrubber(secretsFromEnv(await secretVars(paths)))(err.message);
}

/** The line and exit code of a failure the user can act on (a configuration error, bad input), or null for anything else. */
export function expectedFailure(err: Error): { line: string; code: number } | null {
  if (err instanceof UsageError) return { line: err.message, code: err.exitCode };
  if (err instanceof ConfigError) return { line: err.message, code: EXIT.usage };
  return null;
}
