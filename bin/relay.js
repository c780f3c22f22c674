#!/usr/bin/env node
// The CLI entry: plain node, compiled sources in dist/ (built by `npm ci` via `prepare`).
//
// A CommonJS script (bin/package.json), not an ES module: an ES module entry makes Node 20 set up
// its ES module loader first, about 10 ms of every Claude Code hook's start-up, and the hooks
// (dist/hot/hooks.cjs) need none. The other commands are ES modules, loaded with import().
"use strict";

// On Node >= 22.1 Node's compile cache keeps the compiled code of the modules below across runs
// (in $NODE_COMPILE_CACHE, else <tmpdir>/node-compile-cache; NODE_DISABLE_COMPILE_CACHE=1 turns
// it off): the Claude Code hooks start on every agent turn. Node 20 has none. It is enabled
// before anything of the relay's is loaded.
require("node:module").enableCompileCache?.();

// The hot commands run without loading oclif when their command line is plain, from their
// bundle (dist/hot/, scripts/bundle.mjs): the Claude Code hooks and `relay status` each from one
// CommonJS file of their own, `relay run` from the ES module chunks every other command shares.
// Everything else, help and errors included, is oclif's, whose command map is in the same bundle
// (dist/hot/commands.js, package.json "oclif"); oclif finds the package from its package.json.
const OWN_FILE = { hook: "../dist/hot/hooks.cjs", status: "../dist/hot/status.cjs" };

async function main(argv) {
  const own = Object.hasOwn(OWN_FILE, argv[0]) ? OWN_FILE[argv[0]] : null;
  const { runWithoutOclif } = own !== null ? require(own) : await import("../dist/hot/hot.js");
  if (!(await runWithoutOclif(argv))) {
    const { execute } = await import("@oclif/core");
    await execute({ dir: require.resolve("../package.json") });
  }
}

main(process.argv.slice(2)).catch((err) => {
  // what an ES module entry did with a failure it did not handle: the stack on stderr, exit 1
  process.exitCode = 1;
  console.error(err);
});
