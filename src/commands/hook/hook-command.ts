import type { HookOutcome } from "../../claude-code/hook.js";
import { SESSION_ID } from "../../config/session-id.js";
import { RelayCommand } from "../base.js";

/**
 * What every Claude Code hook command shares: a bad session id is one line and exit 1, the
 * outcome goes to stdout/stderr with its exit code, and any failure is one line on stderr with
 * exit 1 (never 2, which Claude Code would take as a block).
 */
export abstract class HookCommand extends RelayCommand {
  /** False (with the line written) when `session` is not a valid session id. */
  protected validSession(session: string): boolean {
    if (SESSION_ID.test(session)) return true;
    this.writeOutcome({ stdout: null, stderr: [`relay: ${JSON.stringify(session)} is not a valid session id (${SESSION_ID.source})`], exitCode: 1 });
    return false;
  }

  protected writeOutcome(outcome: HookOutcome): void {
    if (outcome.exitCode === 2) process.stderr.write(`${outcome.stderr.join("\n")}\n`);
    else for (const line of outcome.stderr) this.logToStderr(line);
    if (outcome.stdout !== null) this.log(outcome.stdout);
    process.exitCode = outcome.exitCode;
  }

  protected override async catch(err: Error): Promise<unknown> {
    const { oneLineError } = await import("../../claude-code/hook.js");
    this.logToStderr(`relay hook ${this.id?.split(":").at(-1) ?? "?"}: ${oneLineError(err)}`);
    process.exitCode = 1;
    return undefined;
  }
}
