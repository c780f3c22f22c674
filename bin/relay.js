#!/usr/bin/env node
// The CLI entry: plain node, compiled sources in dist/ (built by `npm ci` via `prepare`).
// The hot commands (the Claude Code hooks, `relay status`) run without loading oclif when their
// command line is plain; everything else, help and errors included, is oclif's.
import { runWithoutOclif } from "../dist/src/commands/fast/hot.js";

if (!(await runWithoutOclif(process.argv.slice(2)))) {
  const { execute } = await import("@oclif/core");
  await execute({ dir: import.meta.url });
}
