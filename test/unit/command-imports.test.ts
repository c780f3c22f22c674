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

/** What scripts/bundle.mjs built: each chunk of dist/hot/, the sources it holds and what it imports. */
interface BundleMeta {
  outputs: Record<string, { inputs: Record<string, unknown>; imports: { path: string; kind: string; external?: boolean }[] }>;
}
const BUNDLE_META = new URL("../../dist/hot.meta.json", import.meta.url).pathname;
const HOT_CHUNK = "dist/hot/hot.js";
const HOOKS_FILE = "dist/hot/hooks.cjs";
const STATUS_FILE = "dist/hot/status.cjs";
const bundleMeta = (): BundleMeta => JSON.parse(readFileSync(BUNDLE_META, "utf8")) as BundleMeta;

/** The chunks loaded with `from` (itself included): through static imports only, or through `import()` too. */
function chunkGraph(meta: BundleMeta, from: string, dynamic: boolean): string[] {
  const seen = new Set<string>();
  const visit = (chunk: string) => {
    if (seen.has(chunk)) return;
    seen.add(chunk);
    for (const i of meta.outputs[chunk]?.imports ?? []) if (!i.external && (dynamic || i.kind === "import-statement")) visit(i.path);
  };
  visit(from);
  return [...seen];
}
const sourcesOf = (meta: BundleMeta, chunks: readonly string[]): string[] => chunks.flatMap((c) => Object.keys(meta.outputs[c]?.inputs ?? {}));

describe("the hot commands' path (bin/relay.js, then src/commands/fast/hot.ts)", () => {
  it("never loads oclif: no module it imports statically imports @oclif/core", () => {
    const fast = new URL("../../dist/src/commands/fast/hot.js", import.meta.url).pathname;
    expect(existsSync(fast), "run `npm run build` first").toBe(true);
    const loaded = [...staticGraph(fast)];
    expect(loaded.length).toBeGreaterThan(3);
    expect(loaded.filter((f) => /^\s*import\s[^;]*?\sfrom\s+"@oclif\/core/m.test(readFileSync(f, "utf8")))).toEqual([]);
  });

  it("is run from its bundle, which loads no oclif either: oclif stays outside it, imported only where a failure is handed to it", () => {
    expect(existsSync(BUNDLE_META), "run `npm run build` first").toBe(true);
    const bin = readFileSync(new URL("../../bin/relay.js", import.meta.url), "utf8");
    expect(bin).toMatch(/^const OWN_FILE = \{ hook: "\.\.\/dist\/hot\/hooks\.cjs", status: "\.\.\/dist\/hot\/status\.cjs" \};$/m);
    expect(bin).toMatch(/^ {2}const \{ runWithoutOclif \} = own !== null \? require\(own\) : await import\("\.\.\/dist\/hot\/hot\.js"\);$/m);
    expect(bin).not.toMatch(/^import .* from "@oclif\/core";$/m);
    const meta = bundleMeta();
    const atStart = chunkGraph(meta, HOT_CHUNK, false);
    expect(sourcesOf(meta, atStart)).toContain("dist/src/commands/fast/hot.js");
    expect(sourcesOf(meta, Object.keys(meta.outputs)).filter((f) => f.includes("node_modules/@oclif/"))).toEqual([]);
    const oclif = atStart.flatMap((c) => meta.outputs[c]?.imports ?? []).filter((i) => i.path === "@oclif/core");
    expect(oclif.map((i) => [i.kind, i.external])).toEqual([["dynamic-import", true]]);
  });
});

describe("oclif's command map (package.json \"oclif\")", () => {
  it("is the bundle's, dist/hot/commands.js, with every command of src/commands/index.ts, and so is the command_not_found hook", async () => {
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { oclif: { commands: { target: string; identifier: string }; hooks: { command_not_found: string } } };
    expect(pkg.oclif.commands.target).toBe("./dist/hot/commands.js");
    expect(pkg.oclif.hooks.command_not_found).toBe("./dist/hot/command-not-found.js");
    const meta = bundleMeta();
    expect(sourcesOf(meta, ["dist/hot/commands.js"])).toContain("dist/src/commands/index.js");
    expect(sourcesOf(meta, ["dist/hot/command-not-found.js"])).toContain("dist/src/commands/command-not-found.js");
    const built = (await import(new URL(`../../${pkg.oclif.commands.target}`, import.meta.url).href)) as Record<string, Record<string, unknown>>;
    const { commands } = await import("../../src/commands/index.js");
    expect(Object.keys(built[pkg.oclif.commands.identifier] ?? {}).sort()).toEqual(Object.keys(commands).sort());
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
    expect(config).toMatch(/await import\("\.\/yaml-text\.js"\)/);
    expect(config).toMatch(/await import\("\.\/dotenv-file\.js"\)/);
  });

  it("are not in the bundle's chunks that loading the settings brings, only in the chunks config.yaml and .env load", () => {
    const meta = bundleMeta();
    const config = Object.keys(meta.outputs).filter((c) => c !== HOOKS_FILE && c !== STATUS_FILE && "dist/src/config/config.js" in (meta.outputs[c]?.inputs ?? {}));
    expect(config).toHaveLength(1);
    const parsers = (f: string) => /node_modules\/(yaml|dotenv)\//.test(f);
    expect(sourcesOf(meta, chunkGraph(meta, config[0] ?? "", false)).filter(parsers)).toEqual([]);
    const everything = sourcesOf(meta, chunkGraph(meta, HOT_CHUNK, true));
    expect(everything).toContain("node_modules/yaml/dist/index.js");
    expect(everything.some((f) => f.startsWith("node_modules/dotenv/"))).toBe(true);
  });
});

describe.each([
  ["the Claude Code hooks' own file (dist/hot/hooks.cjs, src/commands/fast/hooks.ts)", HOOKS_FILE, ["dist/src/commands/fast/hooks.js", "dist/src/claude-code/hook.js", "dist/src/claude-code/stop-failure.js", "dist/src/claude-code/permission-hook.js"]],
  ["relay status's own file (dist/hot/status.cjs, src/commands/fast/status.ts)", STATUS_FILE, ["dist/src/commands/fast/status.js", "dist/src/commands/status-action.js", "dist/src/status/report.js"]],
])("%s", (_, file, own) => {
  it("is one file: it imports none of the shared chunks, only Node's modules and, lazily, the YAML and .env parsers' files", () => {
    const meta = bundleMeta();
    const hooks = meta.outputs[file];
    expect(hooks, "run `npm run build` first").toBeDefined();
    const imports = hooks?.imports ?? [];
    expect(imports.filter((i) => !i.path.startsWith("node:")).map((i) => [i.path, i.kind, i.external])).toEqual(
      expect.arrayContaining([
        ["./yaml-text.js", "dynamic-import", true],
        ["./dotenv-file.js", "dynamic-import", true],
      ]),
    );
    expect(new Set(imports.filter((i) => !i.path.startsWith("node:")).map((i) => i.path))).toEqual(new Set(["./yaml-text.js", "./dotenv-file.js"]));
    // the parsers it imports are the shared build's files of those names
    expect(sourcesOf(meta, ["dist/hot/yaml-text.js"])).toContain("dist/src/config/yaml-text.js");
    expect(sourcesOf(meta, ["dist/hot/dotenv-file.js", ...chunkGraph(meta, "dist/hot/dotenv-file.js", false)])).toContain("dist/src/config/dotenv-file.js");
  });

  it("holds its command's modules and none of the YAML parser, dotenv, the Anthropic SDK, oclif or zod's classic API", () => {
    const meta = bundleMeta();
    const sources = sourcesOf(meta, [file]);
    expect(sources).toEqual(expect.arrayContaining(own));
    expect(sources.filter((f) => /node_modules\/(yaml|dotenv|@anthropic-ai|@oclif)\//.test(f) || f.includes("node_modules/zod/v4/classic/"))).toEqual([]);
  });
});

describe("zod", () => {
  it("is zod/mini everywhere: no chunk holds zod's classic API, which cannot be tree-shaken (300 KB of a hook's start-up)", () => {
    const meta = bundleMeta();
    const zod = sourcesOf(meta, Object.keys(meta.outputs)).filter((f) => f.includes("node_modules/zod/"));
    expect(zod.length).toBeGreaterThan(0);
    expect(zod.filter((f) => f.includes("/v4/classic/"))).toEqual([]);
  });
});
