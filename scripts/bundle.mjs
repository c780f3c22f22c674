// Bundles the relay's commands into dist/hot/ (run by `npm run build`, after tsc).
//
// bin/relay.js runs the Claude Code hooks, `relay status` and `relay run` from dist/hot/hot.js
// (src/commands/fast/hot.ts): the hooks start on every agent turn. Every other command is oclif's,
// which loads its command map from dist/hot/commands.js (package.json "oclif"), so those commands
// come from the same chunks (`relay costs`, Node 20: 0.63 → 0.49 s of CPU, 310 → 181 files read,
// most of the rest oclif's own). Unbundled, Node resolves, reads and compiles each of several
// hundred module files one by one (zod alone is 106); as one bundle split at the code's own
// dynamic imports it reads a few dozen, and only zod's English
// messages, which are all the relay prints. Measured on Node 20 (README "Start-up"): the Stop
// hook 321 → 265 ms from spawn to exit, `relay run` … See the README for the figures.
//
// The bundle is plain ESM split into chunks at each `await import()`, so a command still loads
// only what it uses. Names are kept, so stack traces and logs name the sources' functions;
// whitespace and comments are not: V8 keeps every module's source text for the life of the
// process (it compiles functions lazily from it), and the bundle is 2.2 MB instead of 3.2.
// oclif itself stays outside: it is loaded from node_modules by bin/relay.js when a command needs it.
import { build } from "esbuild";
import { rm, writeFile } from "node:fs/promises";
import { fileURLToPath, URL } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const outdir = `${root}dist/hot`;

/** zod's `locales` namespace (some 40 languages) reduced to the English one its default messages use. */
const englishOnlyZod = {
  name: "zod-english-only",
  setup(b) {
    b.onResolve({ filter: /\/locales\/index\.js$/, namespace: "file" }, (args) => (args.importer.includes("/node_modules/zod/") ? { path: args.importer, namespace: "zod-locales" } : undefined));
    b.onLoad({ filter: /.*/, namespace: "zod-locales" }, (args) => ({
      contents: `export { default as en } from "../locales/en.js";`,
      resolveDir: fileURLToPath(new URL(".", `file://${args.path}`)),
    }));
  },
};

/**
 * Packages the relay's own code may load with import(): ESM ones only. Of a CommonJS package
 * imported so, the bundle keeps only the default export (yaml's and dotenv's named functions
 * were undefined); such a package is imported statically by a module of ours that is itself
 * loaded lazily (src/config/config-yaml.ts, src/config/dotenv-file.ts).
 */
const LAZY_PACKAGES = new Set(["@anthropic-ai/sdk", "@oclif/core"]);
const lazyPackagesAreEsm = {
  name: "lazy-packages-are-esm",
  setup(b) {
    b.onResolve({ filter: /^[^./]/ }, (args) => {
      if (args.kind !== "dynamic-import" || !args.importer.startsWith(`${root}dist/`) || args.path.startsWith("node:")) return undefined;
      const name = args.path.split("/").slice(0, args.path.startsWith("@") ? 2 : 1).join("/");
      if (LAZY_PACKAGES.has(name)) return undefined;
      return { errors: [{ text: `import("${args.path}") in ${args.importer.slice(root.length)}: only ESM packages (${[...LAZY_PACKAGES].join(", ")}) may be imported lazily; import it statically from a lazily loaded module` }] };
    });
  },
};

/**
 * The hooks' file leaves the YAML and .env parsers out: the modules that wrap them import no
 * module of the relay's (but types), so the hooks load them, when they need them, from the
 * files the main build gives them (dist/hot/yaml-text.js, dist/hot/dotenv-file.js).
 */
const PARSER_MODULES = ["yaml-text", "dotenv-file"];
const parsersOutside = {
  name: "parsers-outside",
  setup(b) {
    b.onResolve({ filter: new RegExp(`^\\./(${PARSER_MODULES.join("|")})\\.js$`) }, (args) => (args.importer === `${root}dist/src/config/config.js` ? { path: args.path, external: true } : undefined));
  },
};

const common = {
  outdir,
  bundle: true,
  format: "esm",
  platform: "node",
  target: "node20.19",
  external: ["@oclif/core"],
  // the CommonJS packages inside (dotenv, pino, …) require() Node's built-in modules
  banner: { js: `import { createRequire as __relayCreateRequire } from "node:module"; const require = __relayCreateRequire(import.meta.url);` },
  legalComments: "none",
  minifyWhitespace: true,
  logLevel: "warning",
  metafile: true,
};

await rm(outdir, { recursive: true, force: true });
const shared = await build({
  ...common,
  entryPoints: {
    hot: `${root}dist/src/commands/fast/hot.js`,
    // oclif's command map and its command_not_found hook (package.json "oclif")
    commands: `${root}dist/src/commands/index.js`,
    "command-not-found": `${root}dist/src/commands/command-not-found.js`,
    // the thread that reads a long cost ledger at start (src/costs/ledger-aside.ts)
    "ledger-worker": `${root}dist/src/costs/ledger-worker.js`,
    // the parsers, under names the hooks' file imports them by
    ...Object.fromEntries(PARSER_MODULES.map((name) => [name, `${root}dist/src/config/${name}.js`])),
  },
  splitting: true,
  plugins: [englishOnlyZod, lazyPackagesAreEsm],
});
// The Claude Code hooks: one CommonJS file, every import() of the relay's own modules inlined
// (src/commands/fast/hooks.ts), which bin/relay.js require()s. The same code as one ES module
// took a Stop hook 20-28 ms longer on Node 20 (interleaved medians of 15; in ES module scope
// every top-level binding is a let, const or class V8 must check on each use before it is set).
// import.meta.url (src/package-files.ts) is the file's own URL, made from __filename.
const hooks = await build({
  ...common,
  // and `relay status` (src/commands/fast/status.ts) likewise, in a file of its own
  entryPoints: { hooks: `${root}dist/src/commands/fast/hooks.js`, status: `${root}dist/src/commands/fast/status.js` },
  format: "cjs",
  outExtension: { ".js": ".cjs" },
  splitting: false,
  define: { "import.meta.url": "__relayFileUrl" },
  // strict, as the ES modules it was compiled from
  banner: { js: `"use strict";\nconst __relayFileUrl = require("node:url").pathToFileURL(__filename).href;` },
  plugins: [englishOnlyZod, lazyPackagesAreEsm, parsersOutside],
});
// which sources each chunk holds and what it imports, for test/unit/command-imports.test.ts (not shipped)
const metafile = { inputs: { ...shared.metafile.inputs, ...hooks.metafile.inputs }, outputs: { ...shared.metafile.outputs, ...hooks.metafile.outputs } };
await writeFile(`${root}dist/hot.meta.json`, JSON.stringify(metafile));
