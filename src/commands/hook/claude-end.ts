import { Flags } from "@oclif/core";
import { SESSION_ID } from "../../config/session-id.js";
import { RelayCommand } from "../base.js";

/** The command of a Claude Code SessionEnd hook: releases the relay session and ends a background wait. */
export default class HookClaudeEnd extends RelayCommand {
  static override description =
    "Claude Code SessionEnd hook: release the relay session bound to this Claude Code session and end its background wait (wake mode).";
  static override flags = {
    session: Flags.string({ char: "s", description: "the relay session id (from config.yaml)", required: true }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(HookClaudeEnd);
    const paths = this.resolvePaths(flags.root);
    if (!SESSION_ID.test(flags.session)) {
      this.logToStderr(`relay: ${JSON.stringify(flags.session)} is not a valid session id (${SESSION_ID.source})`);
      process.exitCode = 1;
      return;
    }
    const [{ runEndHook }, { readStdin }] = await Promise.all([import("../../claude-code/hook.js"), import("../../claude-code/hook-input.js")]);
    const input = await readStdin(process.stdin, 2_000);
    const outcome = await runEndHook({ paths, session: flags.session, input });
    for (const line of outcome.stderr) this.logToStderr(line);
    if (outcome.stdout !== null) this.log(outcome.stdout);
    process.exitCode = outcome.exitCode;
  }

  protected override async catch(err: Error): Promise<unknown> {
    const { oneLineError } = await import("../../claude-code/hook.js");
    this.logToStderr(`relay hook claude-end: ${oneLineError(err)}`);
    process.exitCode = 1;
    return undefined;
  }
}
