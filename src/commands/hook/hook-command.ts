import type { HookOutcome } from "../../claude-code/hook.js";
import { RelayCommand } from "../base.js";
import { writeHookFailure, writeOutcome } from "./hook-actions.js";

/**
 * What every Claude Code hook command shares: the outcome goes to stdout/stderr with its exit
 * code, and any failure (a bad flag included) is one line on stderr with exit 1 (never 2, which
 * Claude Code would take as a block). What each hook does is in ./hook-actions.ts.
 */
export abstract class HookCommand extends RelayCommand {
  protected writeOutcome(outcome: HookOutcome): void {
    writeOutcome(outcome);
  }

  protected override async catch(err: Error): Promise<unknown> {
    await writeHookFailure(this.id?.split(":").at(-1) ?? "?", err);
    return undefined;
  }
}
