#!/usr/bin/env node
// The CLI entry: plain node, compiled sources in dist/ (built by `npm ci` via `prepare`).
import { execute } from "@oclif/core";

await execute({ dir: import.meta.url });
