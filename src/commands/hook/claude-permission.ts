import { Flags } from "@oclif/core";
import { DEFAULT_PERMISSION_WAIT_S } from "../../claude-code/defaults.js";
import { HookCommand } from "./hook-command.js";

/** The command of a Claude Code PermissionRequest hook: the prompt goes to JC; no answer in time denies. */
export default class HookClaudePermission extends HookCommand {
  static override description =
    "Claude Code PermissionRequest hook: put the tool permission prompt before JC (Allow / Deny on the phone) and return JC's decision; no answer within --timeout denies.";
  static override flags = {
    session: Flags.string({ char: "s", description: "the relay session id (from config.yaml)", required: true }),
    timeout: Flags.integer({ description: `how long JC has to answer, in seconds (then: deny; default ${DEFAULT_PERMISSION_WAIT_S})`, min: 1, default: DEFAULT_PERMISSION_WAIT_S }),
  };

  async run(): Promise<void> {
    const startedAt = Date.now();
    const { flags } = await this.parse(HookClaudePermission);
    const paths = this.resolvePaths(flags.root);
    if (!this.validSession(flags.session)) return;
    const [{ runPermissionHook }, { readStdin }] = await Promise.all([import("../../claude-code/permission-hook.js"), import("../../claude-code/hook-input.js")]);
    const input = await readStdin(process.stdin, 2_000);
    const outcome = await runPermissionHook({ paths, session: flags.session, input, deadline: startedAt + flags.timeout * 1000, waitS: flags.timeout });
    this.writeOutcome(outcome);
  }
}
