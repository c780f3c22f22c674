// The YAML parser, loaded only when needed: ./config.ts reads a root's config.yaml through
// state/config.cache.json when that is config.yaml's copy (./config-cache.ts), and parses the
// text here only when it is not. Also config.yaml text to validated settings in one call, for the
// commands and tests that hold the text itself.
import { isMap, parseDocument } from "yaml";
import { ConfigError, type ConfigYaml, type FileConfig, malformedYaml, validateFileConfig } from "./config.js";

/** config.yaml text parsed: its value when it is a mapping; else the first parse error (null when it parsed to something else) and the value. */
export function parseYaml(text: string): Exclude<ConfigYaml, { kind: "missing" }> {
  const doc = parseDocument(text, { prettyErrors: false });
  const [first] = doc.errors;
  if (first === undefined && isMap(doc.contents)) return { kind: "mapping", js: doc.toJS() as unknown };
  return { kind: "other", error: first?.message ?? null, js: () => doc.toJS() as unknown };
}

/** Parse and validate config.yaml text; throws ConfigError naming the key. */
export function parseFileConfig(yamlText: string, file = "config.yaml"): FileConfig {
  const parsed = parseYaml(yamlText);
  if (parsed.kind === "mapping") return validateFileConfig(parsed.js, file);
  if (parsed.error !== null) throw malformedYaml(file, parsed.error);
  throw new ConfigError(`${file}: expected a YAML mapping of settings`);
}
