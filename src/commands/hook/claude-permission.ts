import { Flags } from "@oclif/core";
import { DEFAULT_PERMISSION_WAIT_S } from "../../claude-code/defaults.js";
import { permissionHook } from "./hook-actions.js";
import { HookCommand } from "./hook-command.js";

/** The command of a Claude Code PermissionRequest hook: the prompt goes to JC; no answer in time denies. */
export default class HookClaudePermission extends HookCommand {
  static override examples = [{ description: "What relay hook install --permissions puts in .claude/settings.local.json (PermissionRequest)", command: "<%= config.bin %> hook claude-permission --session session-1 --root ~/relay --timeout 300" }];
  static override description =
    "Claude Code PermissionRequest hook: put the tool permission prompt before JC (Allow / Deny on the phone) and return JC's decision; no answer within --timeout denies.";
  static override flags = {
    session: Flags.string({ char: "s", description: "the relay session id (from config.yaml)", required: true }),
    timeout: Flags.integer({ description: `how long JC has to answer, in seconds (then: deny; default ${DEFAULT_PERMISSION_WAIT_S})`, min: 1, default: DEFAULT_PERMISSION_WAIT_S }),
  };

  async run(): Promise<void> {
    const startedAt = Date.now();
    const { flags } = await this.parse(HookClaudePermission);
    this.writeOutcome(await permissionHook(flags, startedAt));
  }
}
