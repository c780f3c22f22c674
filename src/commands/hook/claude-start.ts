import { Flags } from "@oclif/core";
import { DEFAULT_RELEASE_AFTER_S } from "../../claude-code/defaults.js";
import { startHook } from "./hook-actions.js";
import { HookCommand } from "./hook-command.js";

/** The command of a Claude Code SessionStart hook: hands over the replies the session has not seen. */
export default class HookClaudeStart extends HookCommand {
  static override examples = [{ description: "What relay hook install puts in .claude/settings.local.json (SessionStart)", command: "<%= config.bin %> hook claude-start --session session-1 --root ~/relay" }];
  static override description =
    "Claude Code SessionStart hook: hand the session, as context, every reply for it that it has not seen (in input.txt, or handed over before and dropped by Claude Code).";
  static override flags = {
    session: Flags.string({ char: "s", description: "the relay session id (from config.yaml)", required: true }),
    "release-after": Flags.integer({ description: "seconds after which a bound Claude Code session not seen is taken to be gone", min: 1, default: DEFAULT_RELEASE_AFTER_S }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(HookClaudeStart);
    this.writeOutcome(await startHook(flags));
  }
}
