import { Command, Errors, Flags } from "@oclif/core";
import { EXIT, UsageError } from "../errors.js";
import { pathsForRoot, type RelayPaths } from "../config/paths.js";
import { expectedFailure, scrubError } from "./failure.js";

export { UsageError };

/** The first line of an oclif error that says what is wrong (no "Error:" header, no help hint). */
export function oneLine(message: string): string {
  const lines = message
    .split("\n")
    .map((l) => l.replace(/^[\s›]*(Error:\s*)?/, "").trim())
    .filter((l) => l !== "" && !/^The following errors? occurred:?$/i.test(l) && !/^See more help with/i.test(l));
  return lines[0] ?? message.trim();
}

/** Whether the command line asks for JSON: `--json` before any `--`. */
export function asksForJson(argv: readonly string[]): boolean {
  const end = argv.indexOf("--");
  return (end === -1 ? argv : argv.slice(0, end)).includes("--json");
}

/** Holds `--root` and turns every expected failure into one line and a non-zero exit. */
export abstract class RelayCommand extends Command {
  static override baseFlags = {
    root: Flags.string({ description: "the relay's root directory (default: $RELAY_ROOT, else the current directory)", helpGroup: "GLOBAL" }),
  };

  /** the root this command works on, once it is known (its .env holds secrets an error line must not quote) */
  private paths: RelayPaths | null = null;

  protected resolvePaths(root: string | undefined): RelayPaths {
    this.paths = pathsForRoot(root);
    return this.paths;
  }

  protected override async catch(err: Error & { exitCode?: number; oclif?: { exit?: number }; code?: string }): Promise<unknown> {
    if (err instanceof Errors.ExitError || err.code === "EEXIT") return super.catch(err);
    // An error line never quotes a secret or a topic, of the environment or of the root's .env (CONTRACT §8).
    await scrubError(err, this.paths);
    const expected =
      expectedFailure(err) ??
      // oclif's own parse errors (missing flag, unknown flag, unexpected argument)
      (err instanceof Errors.CLIError ? { line: `${oneLine(err.message)} (see: relay ${this.id?.replace(/:/g, " ") ?? ""} --help)`, code: err.oclif?.exit ?? EXIT.usage } : null);
    // Under --json an error is one line of JSON, `{"error": "..."}`, on standard output with the
    // exit code it has without --json, even from a command that has no --json output of its own
    // (there --json itself is the error).
    if (this.wantsJsonErrors()) {
      process.stdout.write(`${JSON.stringify({ error: expected?.line ?? oneLine(err.message) })}\n`);
      this.exit(expected?.code ?? EXIT.failure);
    }
    if (!expected) return super.catch(err);
    process.stderr.write(`relay: ${expected.line}\n`);
    this.exit(expected.code);
  }

  private wantsJsonErrors(): boolean {
    return this.jsonEnabled() || asksForJson(this.argv);
  }

  /** With --json, an error is one small object, never oclif's whole configuration. */
  protected override toErrorJson(err: unknown): { error: string } {
    return { error: err instanceof Error ? oneLine(err.message) : String(err) };
  }
}
