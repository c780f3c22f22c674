// The NATS client is loaded only when transport is nats: nothing the CLI, the file transport or
// the Claude Code hooks load up front imports @nats-io (only dynamic import() reaches it).
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "../support/cli.js";

/** Static (value) imports of a TypeScript source, resolved to files; `import type` and import() are not followed. */
function staticImports(file: string): string[] {
  const text = readFileSync(file, "utf8");
  const specs: string[] = [];
  for (const m of text.matchAll(/^(?:import|export)\s+(?!type\s)(?:[^;]*?\sfrom\s+)?"([^"]+)";/gms)) if (m[1]) specs.push(m[1]);
  return specs;
}

function reachable(entry: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const stack = [entry];
  for (let file = stack.pop(); file !== undefined; file = stack.pop()) {
    if (files.has(file)) continue;
    files.add(file);
    for (const spec of staticImports(file)) {
      if (spec.startsWith(".")) stack.push(resolve(dirname(file), spec.replace(/\.js$/, ".ts")));
      else packages.add(spec);
    }
  }
  return { files, packages };
}

describe("transport: nats is loaded lazily", () => {
  it.each(["src/commands/index.ts", "src/runtime/compose.ts", "src/runtime/daemon.ts", "src/commands/run.ts", "src/claude-code/hook.ts"])("nothing %s loads up front imports @nats-io", (entry) => {
    const { files, packages } = reachable(join(REPO_ROOT, entry));
    expect(files.size).toBeGreaterThan(3); // the walk does follow the imports
    expect([...packages].filter((p) => p.startsWith("@nats-io"))).toEqual([]);
    expect([...files].filter((f) => f.includes("/transport/nats/"))).toEqual([]);
  });
});
