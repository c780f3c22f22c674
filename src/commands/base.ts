import { resolve } from "node:path";
import { Command, Flags } from "@oclif/core";
import { ConfigError, UsageError } from "../errors.js";
import { type RelayPaths, relayPaths } from "../paths.js";

export { UsageError };

/** Holds `--root` and turns every expected failure into one line and a non-zero exit. */
export abstract class RelayCommand extends Command {
  static override baseFlags = {
    root: Flags.string({ description: "the relay's root directory (default: $RELAY_ROOT, else the current directory)", helpGroup: "GLOBAL" }),
  };

  protected resolvePaths(root: string | undefined): RelayPaths {
    return relayPaths(resolve(root ?? process.env.RELAY_ROOT ?? process.cwd()));
  }

  protected override async catch(err: Error & { exitCode?: number; oclif?: { exit?: number } }): Promise<unknown> {
    if (err instanceof ConfigError || err instanceof UsageError) {
      process.stderr.write(`relay: ${err.message}\n`);
      this.exit(err instanceof UsageError ? err.exitCode : 2);
    }
    return super.catch(err);
  }
}

