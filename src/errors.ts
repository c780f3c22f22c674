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
