// config.yaml text to validated settings in one call, for the commands and tests that hold the
// text itself (a root's config.yaml is read by ./config.ts).
import { ConfigError, type FileConfig, malformedYaml, validateFileConfig } from "./config.js";
import { parseYaml } from "./yaml-text.js";

/** Parse and validate config.yaml text; throws ConfigError naming the key. */
export function parseFileConfig(yamlText: string, file = "config.yaml"): FileConfig {
  const parsed = parseYaml(yamlText);
  if (parsed.kind === "mapping") return validateFileConfig(parsed.js, file);
  if (parsed.error !== null) throw malformedYaml(file, parsed.error);
  throw new ConfigError(`${file}: expected a YAML mapping of settings`);
}
