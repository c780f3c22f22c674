import { Flags } from "@oclif/core";
import { HookCommand } from "./hook-command.js";

/** The command of a Claude Code StopFailure hook: a turn that ended on an API error is recorded; JC is told once per streak. */
export default class HookClaudeFailure extends HookCommand {
  static override description =
    "Claude Code StopFailure hook: record that the session's turn ended on an API error (rate limit, overload, refused key); the relay tells JC once per failure streak, with how to resume. Exits 0 and does nothing when no relay runs.";
  static override flags = {
    session: Flags.string({ char: "s", description: "the relay session id (from config.yaml)", required: true }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(HookClaudeFailure);
    const paths = this.resolvePaths(flags.root);
    if (!this.validSession(flags.session)) return;
    const [{ runStopFailureHook }, { readStdin }] = await Promise.all([import("../../claude-code/stop-failure.js"), import("../../claude-code/hook-input.js")]);
    const input = await readStdin(process.stdin, 2_000);
    this.writeOutcome(await runStopFailureHook({ paths, session: flags.session, input }));
  }
}
