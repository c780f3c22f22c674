// The hook defaults the commands' flags show: a module of its own so defining the flags does not
// load the hook code (zod, the file transport).

/** Block mode's wait by default: Claude Code's default hook timeout (600 s) minus the margin (HOOK_TIMEOUT_MARGIN_S). */
export const DEFAULT_WAIT_S = 540;
/** Wake mode's longest wait by default: a day, so an answer JC gives hours later still wakes the session. */
export const DEFAULT_WAKE_WAIT_S = 24 * 3600;
/**
 * Most relayed turns in a row before the agent is let stop. Claude Code's own cap (8 blocks in a
 * row, CLAUDE_CODE_STOP_HOOK_BLOCK_CAP) restarts whenever the agent runs a tool, so in real work
 * this is the limit that applies.
 */
export const DEFAULT_MAX_TURNS = 30;
/** A bound Claude Code session not seen for this long is taken to be gone. */
export const DEFAULT_RELEASE_AFTER_S = 30 * 60;
/** The cap on the evidence block the Stop hook appends to the agent's message, in characters. */
export const DEFAULT_EVIDENCE_MAX = 4_000;
/** How long JC has to answer a permission prompt before it is denied, in seconds. */
export const DEFAULT_PERMISSION_WAIT_S = 600;
