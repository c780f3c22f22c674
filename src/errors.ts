/** A configuration problem, as one line naming the file, the key and what was expected. */
export class ConfigError extends Error {
  override name = "ConfigError";
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
