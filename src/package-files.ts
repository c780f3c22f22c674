// Files of this installation that the relay reads or names at run time: package.json, the
// shipped config.yaml, bin/relay.js (which hooks and services run) and the status page's files.
// The code that needs them runs from three places: dist/src/ (tsc's output), dist/hot/ (the
// bundle of the hot commands, scripts/bundle.mjs) and src/ (under vitest); so the installation's
// root is found by walking up from this module to the directory holding both package.json and
// bin/relay.js, instead of counting "../" from each caller.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

function findRoot(from: URL): URL | null {
  for (let dir = new URL("./", from); ; dir = new URL("../", dir)) {
    if (existsSync(new URL("package.json", dir)) && existsSync(new URL("bin/relay.js", dir))) return dir;
    if (dir.pathname === "/") return null;
  }
}

let root: URL | null | undefined;

/** The installation's root directory (the package's own directory, e.g. node_modules/claude-code-relay/). */
export function packageRoot(): URL {
  root ??= findRoot(new URL(import.meta.url));
  if (root === null) throw new Error(`the relay's installation is incomplete: no package.json beside bin/relay.js above ${fileURLToPath(import.meta.url)}`);
  return root;
}

/** A file of the installation, by its path from the package's root ("config.yaml", "src/status/http/page/"). */
export function packageFile(path: string): URL {
  return new URL(path, packageRoot());
}
