// The CLI's start-up loads only what every command needs: the lock (and with it anything that
// touches the kernel's socket table or flock) is imported lazily by the commands that use it, so
// `relay --version`, `relay chart` or `relay costs` never load it.
import { existsSync, readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const ENTRY = new URL("../../dist/src/commands/index.js", import.meta.url).pathname;

const STATIC_IMPORT = /^\s*(?:(?:import|export)\s[^;]*?\sfrom\s+|import\s+)"(\.{1,2}\/[^"]+)"/gm;
const ANY_IMPORT = /(?:^\s*(?:import|export)\s[^;]*?\sfrom\s+|\bimport\()"(\.{1,2}\/[^"]+)"/gm;

/** Every built module reachable from `entry` through the relative imports `pattern` finds. */
function importGraph(entry: string, pattern: RegExp): Set<string> {
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    const source = readFileSync(file, "utf8");
    for (const m of source.matchAll(pattern)) {
      if (m[1] !== undefined) visit(resolve(dirname(file), m[1]));
    }
  };
  visit(entry);
  return seen;
}

/** Every built module reachable from `entry` through static (not `import()`, not `import type`) imports. */
const staticGraph = (entry: string): Set<string> => importGraph(entry, STATIC_IMPORT);

describe("the command map", () => {
  it("does not load the lock at start-up: only the commands that need it import it, lazily", () => {
    expect(existsSync(ENTRY), "run `npm run build` first").toBe(true);
    const loaded = [...staticGraph(ENTRY)].map((f) => f.slice(f.indexOf("/dist/src/") + "/dist/src/".length));
    expect(loaded.filter((f) => f.startsWith("store/lock"))).toEqual([]);
    expect(loaded.length).toBeGreaterThan(5);
  });
});

/** dist/hot/hot.js, the bundle of src/commands/fast/hot.ts that bin/relay.js runs (scripts/bundle.mjs). */
const HOT_BUNDLE = new URL("../../dist/hot/hot.js", import.meta.url).pathname;

describe("the hot commands' path (bin/relay.js, then src/commands/fast/hot.ts)", () => {
  it("never loads oclif: no module it imports statically imports @oclif/core", () => {
    const fast = new URL("../../dist/src/commands/fast/hot.js", import.meta.url).pathname;
    expect(existsSync(fast), "run `npm run build` first").toBe(true);
    const loaded = [...staticGraph(fast)];
    expect(loaded.length).toBeGreaterThan(3);
    expect(loaded.filter((f) => /^\s*import\s[^;]*?\sfrom\s+"@oclif\/core/m.test(readFileSync(f, "utf8")))).toEqual([]);
  });

  it("is run from its bundle, which loads no oclif either: oclif stays outside it, imported only where a failure is handed to it", () => {
    expect(existsSync(HOT_BUNDLE), "run `npm run build` first").toBe(true);
    const bin = readFileSync(new URL("../../bin/relay.js", import.meta.url), "utf8");
    expect(bin).toMatch(/^const \{ runWithoutOclif \} = await import\("\.\.\/dist\/hot\/hot\.js"\);$/m);
    expect(bin).not.toMatch(/^import .* from "@oclif\/core";$/m);
    const chunks = [...staticGraph(HOT_BUNDLE)];
    expect(chunks.length).toBeGreaterThan(1);
    const sources = chunks.map((f) => readFileSync(f, "utf8"));
    expect(sources.filter((s) => /from\s+"@oclif\/core"|node_modules\/@oclif\//.test(s))).toEqual([]);
    expect(readFileSync(HOT_BUNDLE, "utf8")).toMatch(/await import\("@oclif\/core"\)/);
  });
});

describe("relay run without oclif (src/commands/run-action.ts)", () => {
  it("never loads oclif: no module the daemon imports, statically or with import(), imports @oclif/core", () => {
    const action = new URL("../../dist/src/commands/run-action.js", import.meta.url).pathname;
    expect(existsSync(action), "run `npm run build` first").toBe(true);
    const loaded = [...importGraph(action, ANY_IMPORT)];
    expect(loaded.some((f) => f.endsWith("/runtime/daemon.js"))).toBe(true);
    expect(loaded.filter((f) => /(?:from\s+|\bimport\()"@oclif\/core/.test(readFileSync(f, "utf8")))).toEqual([]);
  });
});

describe("the Anthropic SDK", () => {
  it("is not loaded with the relay's modules: only its error classes are, and the SDK itself comes with the first client", () => {
    const roots = ["runtime/compose.js", "runtime/daemon.js", "runtime/conversation-actors.js", "anthropic/messages.js"].map((f) => new URL(`../../dist/src/${f}`, import.meta.url).pathname);
    for (const root of roots) expect(existsSync(root), "run `npm run build` first").toBe(true);
    const loaded = new Set(roots.flatMap((root) => [...staticGraph(root)]));
    const sdk = [...loaded].filter((f) => /^\s*import\s[^;]*?\sfrom\s+"@anthropic-ai\/sdk"/m.test(readFileSync(f, "utf8")));
    expect(sdk).toEqual([]);
    const messages = readFileSync(roots[3] ?? "", "utf8");
    expect(messages).toMatch(/from "@anthropic-ai\/sdk\/error"/);
    expect(messages).toMatch(/await import\("@anthropic-ai\/sdk"\)/);
  });
});

describe("the YAML and .env parsers on the hot commands' path", () => {
  it("are not imported statically by what status and the hooks load: config.yaml comes from state/config.cache.json, .env only when there is one", () => {
    const hot = ["commands/fast/hot.js", "config/config.js", "config/root.js", "status/report.js", "runtime/redact.js", "claude-code/hook.js", "claude-code/hook-input.js", "claude-code/stop-failure.js", "claude-code/permission-hook.js"];
    const roots = hot.map((f) => new URL(`../../dist/src/${f}`, import.meta.url).pathname);
    for (const root of roots) expect(existsSync(root), `run \`npm run build\` first (${root})`).toBe(true);
    const loaded = new Set(roots.flatMap((root) => [...staticGraph(root)]));
    const parsers = [...loaded].filter((f) => /^\s*import\s[^;]*?\sfrom\s+"(yaml|dotenv)"/m.test(readFileSync(f, "utf8")));
    expect(parsers).toEqual([]);
    const config = readFileSync(roots[1] ?? "", "utf8");
    expect(config).toMatch(/await import\("\.\/config-yaml\.js"\)/);
    expect(config).toMatch(/await import\("\.\/dotenv-file\.js"\)/);
  });

  it("are not in the bundle's chunks that loading the settings brings, only in the chunks config.yaml and .env load", () => {
    const everything = [...importGraph(HOT_BUNDLE, ANY_IMPORT)];
    const config = everything.filter((f) => readFileSync(f, "utf8").includes("// dist/src/config/config.js\n"));
    expect(config).toHaveLength(1);
    const withConfig = [...staticGraph(config[0] ?? "")].map((f) => readFileSync(f, "utf8"));
    expect(withConfig.filter((s) => /^\/\/ node_modules\/(yaml|dotenv)\//m.test(s))).toEqual([]);
    const sources = everything.map((f) => readFileSync(f, "utf8"));
    expect(sources.some((s) => /^\/\/ node_modules\/yaml\/dist\/index\.js$/m.test(s))).toBe(true);
    expect(sources.some((s) => /^\/\/ node_modules\/dotenv\//m.test(s))).toBe(true);
  });
});
