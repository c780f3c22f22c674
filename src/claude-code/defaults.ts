// The hook defaults the commands' flags show: a module of its own so defining the flags does not
// load the hook code (zod, the file transport).

/** Our own wait by default: Claude Code's default hook timeout (600 s) minus the margin (HOOK_TIMEOUT_MARGIN_S). */
export const DEFAULT_WAIT_S = 540;
/** Claude Code ignores Stop blocks after 8 in a row (CLAUDE_CODE_STOP_HOOK_BLOCK_CAP): stay within it. */
export const DEFAULT_MAX_TURNS = 8;
