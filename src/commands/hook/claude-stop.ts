import { Flags } from "@oclif/core";
import { DEFAULT_MAX_TURNS, DEFAULT_WAIT_S } from "../../claude-code/defaults.js";
import type { HookOutcome } from "../../claude-code/hook.js";
import { SESSION_ID } from "../../config/session-id.js";
import { RelayCommand } from "../base.js";

/**
 * The command of a Claude Code Stop hook (CONTRACT §10). It never exits 2 (which Claude Code
 * would take as a block): clean stops exit 0, misconfiguration exits 1 with one line on stderr.
 */
export default class HookClaudeStop extends RelayCommand {
  static override description =
    "Claude Code Stop hook: relay the agent's last message to chat-Claude and print the reply as a block decision, or let the agent stop.";
  static override flags = {
    session: Flags.string({ char: "s", description: "the relay session id (from config.yaml)", required: true }),
    timeout: Flags.integer({ description: "give up waiting for the reply after this many seconds (keep it below the hook's timeout)", min: 1, default: DEFAULT_WAIT_S }),
    "max-turns": Flags.integer({ description: "most relayed turns in a row before the agent is let stop", min: 1, default: DEFAULT_MAX_TURNS }),
  };

  async run(): Promise<void> {
    const startedAt = Date.now();
    const { flags } = await this.parse(HookClaudeStop);
    const paths = this.resolvePaths(flags.root);
    const deadline = startedAt + flags.timeout * 1000;
    if (!SESSION_ID.test(flags.session)) {
      this.writeOutcome({ stdout: null, stderr: [`relay: ${JSON.stringify(flags.session)} is not a valid session id (${SESSION_ID.source})`], exitCode: 1 });
      return;
    }
    const [{ loadConfig }, { readStdin, runStopHook }] = await Promise.all([import("../../config/config.js"), import("../../claude-code/hook.js")]);
    const input = await readStdin(process.stdin, Math.min(5_000, flags.timeout * 1000));
    const outcome = await runStopHook({
      paths,
      session: flags.session,
      input,
      deadline,
      maxTurns: flags["max-turns"],
      loadConfig: () => loadConfig(paths, process.env, { seed: false }),
    });
    this.writeOutcome(outcome);
  }

  private writeOutcome(outcome: HookOutcome): void {
    for (const line of outcome.stderr) this.logToStderr(line);
    if (outcome.stdout !== null) this.log(outcome.stdout);
    process.exitCode = outcome.exitCode;
  }

  protected override async catch(err: Error): Promise<unknown> {
    const { oneLineError } = await import("../../claude-code/hook.js");
    this.logToStderr(`relay hook claude-stop: ${oneLineError(err)}`);
    process.exitCode = 1;
    return undefined;
  }
}
