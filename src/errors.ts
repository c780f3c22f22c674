/** The exit codes of every command (README "Exit codes"). */
export const EXIT = {
  ok: 0,
  /** something went wrong while doing what was asked */
  failure: 1,
  /** bad input: an unknown command or flag, a bad argument, a configuration error */
  usage: 2,
  /** `relay run`: another relay holds this root's lock */
  alreadyRunning: 3,
} as const;

/** A configuration problem, as one line naming the file, the key and what was expected. */
export class ConfigError extends Error {
  override name = "ConfigError";
  constructor(message: string) {
    // One line whatever the text it quotes (a YAML parser's message, a key with a carriage return).
    super(message.replace(/[\r\n]+/g, " "));
  }
}

/** Bad input from the user: printed as one line, exit code 2 (or the one given). */
export class UsageError extends Error {
  override name = "UsageError";
  constructor(
    message: string,
    readonly exitCode = 2,
  ) {
    super(message);
  }
}
