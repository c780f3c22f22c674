import { Flags } from "@oclif/core";
import { SESSION_ID } from "../../config/session-id.js";
import { RelayCommand } from "../base.js";

/** The command of a Claude Code SessionStart hook: hands over a reply the session has not seen. */
export default class HookClaudeStart extends RelayCommand {
  static override description =
    "Claude Code SessionStart hook: if a reply waits in dispatch/<session>/input.txt, hand it to the session as context and delete it.";
  static override flags = {
    session: Flags.string({ char: "s", description: "the relay session id (from config.yaml)", required: true }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(HookClaudeStart);
    const paths = this.resolvePaths(flags.root);
    if (!SESSION_ID.test(flags.session)) {
      this.logToStderr(`relay: ${JSON.stringify(flags.session)} is not a valid session id (${SESSION_ID.source})`);
      process.exitCode = 1;
      return;
    }
    const { readStdin, runStartHook } = await import("../../claude-code/hook.js");
    const input = await readStdin(process.stdin, 2_000);
    const outcome = await runStartHook({ paths, session: flags.session, input });
    for (const line of outcome.stderr) this.logToStderr(line);
    if (outcome.stdout !== null) this.log(outcome.stdout);
    process.exitCode = outcome.exitCode;
  }

  protected override async catch(err: Error): Promise<unknown> {
    const { oneLineError } = await import("../../claude-code/hook.js");
    this.logToStderr(`relay hook claude-start: ${oneLineError(err)}`);
    process.exitCode = 1;
    return undefined;
  }
}
