// The YAML parser, loaded only when needed: ./config.ts reads a root's config.yaml through
// state/config.cache.json when that is config.yaml's copy (./config-cache.ts), and parses the
// text here only when it is not. This module imports nothing of the relay's but types, so the
// Claude Code hooks' bundle (scripts/bundle.mjs) can leave it, and the parser, to a file of its
// own that it loads only then.
import { isMap, parseDocument } from "yaml";
import type { ConfigYaml } from "./config.js";

/** config.yaml text parsed: its value when it is a mapping; else the first parse error (null when it parsed to something else) and the value. */
export function parseYaml(text: string): Exclude<ConfigYaml, { kind: "missing" }> {
  const doc = parseDocument(text, { prettyErrors: false });
  const [first] = doc.errors;
  if (first === undefined && isMap(doc.contents)) return { kind: "mapping", js: doc.toJS() as unknown };
  return { kind: "other", error: first?.message ?? null, js: () => doc.toJS() as unknown };
}
