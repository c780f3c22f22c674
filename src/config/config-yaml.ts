// config.yaml text to validated settings in one call, for the commands and tests that hold the
// text itself. The commands that read a root's config.yaml go through ./config.ts, which loads
// the YAML parser only when state/config.cache.json is not config.yaml's (./config-cache.ts).
import { isMap, parseDocument } from "yaml";
import { ConfigError, type FileConfig, malformedYaml, validateFileConfig } from "./config.js";

/** Parse and validate config.yaml text; throws ConfigError naming the key. */
export function parseFileConfig(yamlText: string, file = "config.yaml"): FileConfig {
  const doc = parseDocument(yamlText, { prettyErrors: false });
  const [first] = doc.errors;
  if (first) throw malformedYaml(file, first.message);
  if (!isMap(doc.contents)) throw new ConfigError(`${file}: expected a YAML mapping of settings`);
  return validateFileConfig(doc.toJS(), file);
}
