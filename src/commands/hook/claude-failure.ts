import { Flags } from "@oclif/core";
import { failureHook } from "./hook-actions.js";
import { HookCommand } from "./hook-command.js";

/** The command of a Claude Code StopFailure hook: a turn that ended on an API error is recorded; JC is told once per streak. */
export default class HookClaudeFailure extends HookCommand {
  static override examples = [{ description: "What relay hook install puts in .claude/settings.local.json (StopFailure)", command: "<%= config.bin %> hook claude-failure --session session-1 --root ~/relay" }];
  static override description =
    "Claude Code StopFailure hook: record that the session's turn ended on an API error (rate limit, overload, refused key); the relay tells JC once per failure streak, with how to resume. Exits 0 and does nothing when no relay runs.";
  static override flags = {
    session: Flags.string({ char: "s", description: "the relay session id (from config.yaml)", required: true }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(HookClaudeFailure);
    this.writeOutcome(await failureHook(flags));
  }
}
