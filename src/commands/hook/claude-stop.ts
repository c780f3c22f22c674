import { Flags } from "@oclif/core";
import { DEFAULT_EVIDENCE_MAX, DEFAULT_MAX_TURNS, DEFAULT_RELEASE_AFTER_S, DEFAULT_WAIT_S, DEFAULT_WAKE_WAIT_S } from "../../claude-code/defaults.js";
import { stopHook } from "./hook-actions.js";
import { HookCommand } from "./hook-command.js";

/**
 * The command of a Claude Code Stop hook (CONTRACT §10). Block mode: clean stops and hand-overs
 * exit 0 (a hand-over is Stop additionalContext on stdout), misconfiguration exits 1 with one
 * line on stderr. Wake mode (installed async with asyncRewake): a hand-over exits 2 with the text
 * on stderr, which wakes the session.
 */
export default class HookClaudeStop extends HookCommand {
  static override examples = [{ description: "What relay hook install puts in .claude/settings.local.json (Stop)", command: "<%= config.bin %> hook claude-stop --session session-1 --root ~/relay --timeout 600" }];
  static override description =
    "Claude Code Stop hook: relay the agent's last message to chat-Claude and hand the reply over as the agent's next instruction, or let the agent stop.";
  static override flags = {
    session: Flags.string({ char: "s", description: "the relay session id (from config.yaml)", required: true }),
    mode: Flags.string({ description: "block: wait at the stop; wake: stop at once and wake the session when the reply comes (install the hook async)", options: ["block", "wake"], default: "block" }),
    timeout: Flags.integer({ description: `longest wait for the reply, in seconds (default ${DEFAULT_WAIT_S} in block mode, ${DEFAULT_WAKE_WAIT_S} in wake mode)`, min: 1 }),
    "max-turns": Flags.integer({ description: "most relayed turns in a row before the agent is let stop", min: 1, default: DEFAULT_MAX_TURNS }),
    evidence: Flags.boolean({ description: "append an account of the turn (tool calls, files changed, git diff --stat) to the message; --no-evidence leaves it out", allowNo: true, default: true }),
    "evidence-max": Flags.integer({ description: `cap on that account, in characters (default ${DEFAULT_EVIDENCE_MAX})`, min: 200, default: DEFAULT_EVIDENCE_MAX }),
    "release-after": Flags.integer({ description: "seconds after which a bound Claude Code session not seen is taken to be gone", min: 1, default: DEFAULT_RELEASE_AFTER_S }),
  };

  async run(): Promise<void> {
    const startedAt = Date.now();
    const { flags } = await this.parse(HookClaudeStop);
    this.writeOutcome(await stopHook(flags, startedAt));
  }
}
