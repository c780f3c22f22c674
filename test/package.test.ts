// Installable anywhere (CONTRACT §9): the packed tarball, installed globally into a temporary
// prefix with --ignore-scripts (no build, no compiler at install), gives a `relay` that works from
// any directory: --version, a dry run answering an envelope, the status page with its assets.
// Needs the npm registry for the dependencies; skipped, saying so, when it cannot be reached.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPO_ROOT, waitFor } from "./support/cli.js";

const run = promisify(execFile);
const pkg = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as { name: string; version: string };
const NPM = process.platform === "win32" ? "npm.cmd" : "npm";
/** What the installed tree may weigh (file sizes summed, not disk blocks): the target. */
const MAX_INSTALLED_BYTES = 50 * 1024 * 1024;

let work: string;
let prefix: string;
let tarball: string;
let unreachable: string | null = null;
const children: ChildProcess[] = [];

/** The sum of the sizes of the files under `dir` (what `du --apparent-size` counts). */
function apparentBytes(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) total += apparentBytes(path);
    else if (entry.isFile()) total += statSync(path).size;
  }
  return total;
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "relay-package-"));
  prefix = join(work, "prefix");
  if (!existsSync(join(REPO_ROOT, "dist", "src", "commands", "index.js"))) throw new Error("dist/ is missing: run `npm run build` first");
  try {
    await run(NPM, ["ping"], { timeout: 30_000 });
  } catch (err) {
    unreachable = `the npm registry cannot be reached (npm ping: ${String((err as Error).message).split("\n")[0] ?? ""})`;
    return;
  }
  // --ignore-scripts: pack the dist/ the test run built, instead of rebuilding it under the other tests' feet.
  const packed = await run(NPM, ["pack", "--ignore-scripts", "--json", "--pack-destination", work], { cwd: REPO_ROOT, timeout: 120_000 });
  const [info] = JSON.parse(packed.stdout) as { filename: string }[];
  tarball = join(work, info?.filename ?? "");
  await run(NPM, ["install", "-g", tarball, "--prefix", prefix, "--ignore-scripts", "--prefer-offline", "--no-audit", "--no-fund"], { timeout: 300_000 });
}, 420_000);

afterAll(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  await rm(work, { recursive: true, force: true });
});

const relayBin = () => join(prefix, "bin", "relay");

describe("the packed tarball, installed globally with --ignore-scripts", () => {
  it("holds what the README's steps need and none of the build's leftovers", async (ctx) => {
    if (unreachable) return ctx.skip(unreachable);
    const listed = (await run("tar", ["tzf", tarball])).stdout.split("\n");
    for (const file of [".env.example", "config.yaml", "README.md", "docs/protocol.md", "bin/relay.js", "bin/package.json", "dist/src/commands/index.js", "dist/hot/hot.js", "dist/hot/hooks.cjs", "dist/hot/status.cjs", "dist/hot/yaml-text.js", "dist/hot/dotenv-file.js", "dist/hot/commands.js", "dist/hot/command-not-found.js", "dist/hot/ledger-worker.js", "src/status/http/page/index.html", "src/status/http/page/app.js"]) {
      expect(listed, file).toContain(`package/${file}`);
    }
    expect(listed.filter((f) => f.includes(".tsbuildinfo") || f.endsWith(".meta.json") || f.startsWith("package/test/"))).toEqual([]);
  });

  it(`puts \`relay\` on the PATH, which prints its version from any directory, in an installed tree under ${MAX_INSTALLED_BYTES / 1024 / 1024} MB`, async (ctx) => {
    if (unreachable) return ctx.skip(unreachable);
    const elsewhere = await mkdtemp(join(work, "cwd-"));
    const { stdout } = await run(relayBin(), ["--version"], { cwd: elsewhere, timeout: 30_000 });
    expect(stdout).toMatch(new RegExp(`^${pkg.name}/${pkg.version.replace(/\./g, "\\.")} `));
    const installed = join(prefix, "lib", "node_modules", pkg.name);
    expect(existsSync(join(installed, "node_modules", "mermaid")), "mermaid is not a runtime dependency").toBe(false);
    const bytes = apparentBytes(installed);
    console.log(`installed tree: ${(bytes / 1024 / 1024).toFixed(1)} MB of files`);
    expect(bytes).toBeLessThan(MAX_INSTALLED_BYTES);
  });

  it("follows the README from another directory: relay init ~/relay, then relay run --dry-run there; an envelope is answered, the status page and its chart are served, SIGTERM stops it cleanly", async (ctx) => {
    if (unreachable) return ctx.skip(unreachable);
    const elsewhere = await mkdtemp(join(work, "cwd-"));
    const root = join(elsewhere, "relay");
    const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: elsewhere };
    const init = await run(relayBin(), ["init", root], { cwd: elsewhere, env, timeout: 60_000 });
    expect(init.stdout).toContain(`relay root: ${root}`);
    expect(readFileSync(join(root, "config.yaml"), "utf8")).toBe(readFileSync(join(REPO_ROOT, "config.yaml"), "utf8"));
    expect(statSync(join(root, ".env")).mode & 0o777).toBe(0o600);
    // `cd ~/relay && relay run --dry-run`: the root is the current directory
    const daemon = spawn(relayBin(), ["run", "--dry-run", "--http", "127.0.0.1:0"], { cwd: root, env, stdio: ["ignore", "pipe", "pipe"] });
    children.push(daemon);
    let err = "";
    daemon.stderr.setEncoding("utf8").on("data", (d: string) => (err += d));
    const exited = new Promise<number | null>((resolve) => daemon.on("close", (code) => resolve(code)));
    const url = await waitFor(() => /status page at (http:\/\/\S+)/.exec(err)?.[1], { timeoutMs: 30_000, what: `the status page (stderr: ${err})` });
    await waitFor(() => err.includes("relay started"), { timeoutMs: 30_000, what: "the daemon to start" });

    const sent = await run(relayBin(), ["send", "--session", "session-1", "--wait", "30", "from a packaged install"], { cwd: root, env, timeout: 60_000 });
    expect(sent.stdout).toMatch(/dry-run/i);

    for (const path of ["", "assets/app.js", "assets/style.css", "chart.svg"]) {
      const res = await fetch(new URL(path, url));
      expect(res.status, path).toBe(200);
    }
    expect(await (await fetch(new URL("chart.svg", url))).text()).toContain('data-state="idle"');

    daemon.kill("SIGTERM");
    expect(await exited).toBe(0);
  });
});
