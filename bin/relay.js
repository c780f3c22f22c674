#!/usr/bin/env node
// The CLI entry: plain node, compiled sources in dist/ (built by `npm ci` via `prepare`).
// On Node >= 22.1 Node's compile cache keeps the compiled code of the modules below across runs
// (in $NODE_COMPILE_CACHE, else <tmpdir>/node-compile-cache; NODE_DISABLE_COMPILE_CACHE=1 turns
// it off): the Claude Code hooks start on every agent turn. Node 20 has none. It is enabled
// before anything of the relay's is imported, hence the import() below.
import module from "node:module";

module.enableCompileCache?.();
// The hot commands run without loading oclif when their command line is plain, from their
// bundle (dist/hot/, scripts/bundle.mjs): the Claude Code hooks from one file of their own,
// `relay status` and `relay run` from the chunks every command shares. Everything else, help and
// errors included, is oclif's, whose command map is in the same bundle (dist/hot/commands.js,
// package.json "oclif").
const argv = process.argv.slice(2);
const { runWithoutOclif } = await import(argv[0] === "hook" ? "../dist/hot/hooks.js" : "../dist/hot/hot.js");

if (!(await runWithoutOclif(argv))) {
  const { execute } = await import("@oclif/core");
  await execute({ dir: import.meta.url });
}
