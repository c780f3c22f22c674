import { resolve } from "node:path";
import { Command, Errors, Flags } from "@oclif/core";
import { ConfigError, UsageError } from "../errors.js";
import { type RelayPaths, relayPaths } from "../config/paths.js";
import { scrubber, secretsFromEnv } from "../runtime/redact.js";

export { UsageError };

/** The first line of an oclif error that says what is wrong (no "Error:" header, no help hint). */
export function oneLine(message: string): string {
  const lines = message
    .split("\n")
    .map((l) => l.replace(/^[\s›]*(Error:\s*)?/, "").trim())
    .filter((l) => l !== "" && !/^The following errors? occurred:?$/i.test(l) && !/^See more help with/i.test(l));
  return lines[0] ?? message.trim();
}

/** Holds `--root` and turns every expected failure into one line and a non-zero exit. */
export abstract class RelayCommand extends Command {
  static override baseFlags = {
    root: Flags.string({ description: "the relay's root directory (default: $RELAY_ROOT, else the current directory)", helpGroup: "GLOBAL" }),
  };

  protected resolvePaths(root: string | undefined): RelayPaths {
    return relayPaths(resolve(root ?? process.env.RELAY_ROOT ?? process.cwd()));
  }

  protected override async catch(err: Error & { exitCode?: number; oclif?: { exit?: number }; code?: string }): Promise<unknown> {
    if (err instanceof Errors.ExitError || err.code === "EEXIT") return super.catch(err);
    // An error line never quotes a secret of the environment (CONTRACT §8).
    err.message = scrubber(secretsFromEnv(process.env))(err.message);
    if (err instanceof ConfigError || err instanceof UsageError) {
      process.stderr.write(`relay: ${err.message}\n`);
      this.exit(err instanceof UsageError ? err.exitCode : 2);
    }
    // oclif's own parse errors (missing flag, unknown flag, unexpected argument): one line, exit 2
    if (err instanceof Errors.CLIError) {
      process.stderr.write(`relay: ${oneLine(err.message)} (see: relay ${this.id?.replace(/:/g, " ") ?? ""} --help)\n`);
      this.exit(err.oclif?.exit ?? 2);
    }
    return super.catch(err);
  }

  /** With --json, an error is one small object, never oclif's whole configuration. */
  protected override toErrorJson(err: unknown): { error: { message: string } } {
    return { error: { message: err instanceof Error ? oneLine(err.message) : String(err) } };
  }
}
