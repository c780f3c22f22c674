import { Flags } from "@oclif/core";
import { endHook } from "./hook-actions.js";
import { HookCommand } from "./hook-command.js";

/** The command of a Claude Code SessionEnd hook: releases the relay session and ends a background wait. */
export default class HookClaudeEnd extends HookCommand {
  static override examples = [{ description: "What relay hook install puts in .claude/settings.local.json (SessionEnd)", command: "<%= config.bin %> hook claude-end --session session-1 --root ~/relay" }];
  static override description =
    "Claude Code SessionEnd hook: release the relay session bound to this Claude Code session and end its background wait (wake mode).";
  static override flags = {
    session: Flags.string({ char: "s", description: "the relay session id (from config.yaml)", required: true }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(HookClaudeEnd);
    this.writeOutcome(await endHook(flags));
  }
}
