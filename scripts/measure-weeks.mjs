// Running for weeks: how `relay status`, `relay costs` and `relay run` fare with a 100,000-line
// cost ledger (about ten weeks at one call a minute) against an empty one. Needs `npm run build`.
//   node scripts/measure-weeks.mjs [LINES]
// Prints one JSON object; the README's "Running for weeks" table quotes it.
import { spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const BIN = join(REPO, "bin", "relay.js");
const LINES = Number(process.argv[2] ?? 100_000);
const RUNS = Number(process.env.RUNS ?? 9);

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ms = (n) => Math.round(n * 10) / 10;

const CONFIG = ["model: claude-sonnet-4-6", "system_prompt: You review.", "summarization_prompt: Summarize.", "sessions:", "  - id: session-1", "  - id: session-2", ""].join("\n");

async function makeRoot(lines) {
  const root = await mkdtemp(join(tmpdir(), "relay-weeks-"));
  await writeFile(join(root, "config.yaml"), CONFIG);
  await writeFile(join(root, ".env"), "NTFY_TOPIC=weeksmeasurementtopic0000000\nNTFY_REPLY_TOPIC=weeksmeasurementreply000000\nNTFY_SERVER=http://127.0.0.1:9\n");
  await mkdir(join(root, "state"), { recursive: true });
  if (lines > 0) {
    const start = Date.now() - lines * 60_000;
    const out = [];
    for (let i = 0; i < lines; i++) {
      out.push(
        JSON.stringify({
          at: new Date(start + i * 60_000).toISOString(),
          session: `session-${(i % 2) + 1}`,
          conversation: "shared",
          model: "claude-sonnet-4-6",
          purpose: "reply",
          inputTokens: 1200 + (i % 300),
          outputTokens: 300,
          cacheWriteTokens: 100,
          cacheReadTokens: 8000,
          cacheWrite5mTokens: 100,
          cacheWrite1hTokens: 0,
          usd: 0.0123,
          latencyMs: 900,
        }),
      );
    }
    await writeFile(join(root, "state", "costs.jsonl"), `${out.join("\n")}\n`);
  }
  return root;
}

/** One run's wall time and CPU time (user + system, from /usr/bin/time: steadier than wall time on a busy machine). */
function timeCli(args, node = [BIN]) {
  const out = join(tmpdir(), `relay-weeks-time-${process.pid}`);
  const t0 = performance.now();
  const r = spawnSync("/usr/bin/time", ["-f", "%U %S", "-o", out, process.execPath, ...node, ...args], { encoding: "utf8", env: { ...process.env, RELAY_ROOT: "" } });
  const wall = performance.now() - t0;
  if (r.status !== 0) throw new Error(`relay ${args.join(" ")}: exit ${r.status}: ${r.stderr}`);
  const [user, sys] = readFileSync(out, "utf8").trim().split(/\s+/).slice(-2).map(Number);
  return { wall, cpu: ((user ?? 0) + (sys ?? 0)) * 1000 };
}

/** Medians over RUNS runs of each command on both roots, interleaved so a change of load hits both alike. */
function compare(argsFor) {
  const runs = { empty: [], ledger: [] };
  for (let i = 0; i < RUNS; i++) for (const name of ["empty", "ledger"]) runs[name].push(timeCli(argsFor(roots[name])));
  const pick = (xs, k) => ms(median(xs.map((x) => x[k])));
  return Object.fromEntries(Object.entries(runs).map(([name, xs]) => [name, { wallMs: pick(xs, "wall"), cpuMs: pick(xs, "cpu") }]));
}

/** `relay run --dry-run`: time to "relay started" and resident memory a moment later. */
async function daemon(root) {
  const t0 = performance.now();
  const child = spawn(process.execPath, [BIN, "run", "--dry-run", "--root", root], { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  const started = await new Promise((res, rej) => {
    child.stderr.on("data", (c) => {
      err += c;
      if (err.includes("relay started")) res(performance.now() - t0);
    });
    child.on("exit", () => rej(new Error(`relay run exited: ${err}`)));
  });
  await sleep(2_000);
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(await readFile(`/proc/${child.pid}/status`, "utf8"))?.[1] ?? 0);
  child.kill("SIGTERM");
  await new Promise((r) => child.once("exit", r));
  return { startMs: ms(started), rssMb: ms(rssKb / 1024) };
}

const result = { lines: LINES, runs: RUNS, node: process.version, load: (await readFile("/proc/loadavg", "utf8")).split(" ").slice(0, 3).join(" ") };
const roots = { empty: await makeRoot(0), ledger: await makeRoot(LINES) };
try {
  const medians = (runs) => ({ wallMs: ms(median(runs.map((r) => r.wall))), cpuMs: ms(median(runs.map((r) => r.cpu))) });
  // Node's own start-up (what "excluding Node start-up" subtracts), and the CLI's (oclif, no command)
  const startup = medians(Array.from({ length: RUNS }, () => timeCli(["-e", "0"], [])));
  result.nodeStartup = startup;
  result.cliStartup = medians(Array.from({ length: RUNS }, () => timeCli(["--version"])));
  // the first relay costs on a root builds state/costs.summary.json (once: after an upgrade, or when it is lost)
  result.costsFirst = { empty: timeCli(["costs", "--json", "--root", roots.empty]), ledger: timeCli(["costs", "--json", "--root", roots.ledger]) };
  result.costs = compare((root) => ["costs", "--json", "--root", root]);
  const since = new Date(Date.now() - 3 * 86_400_000 + 3_600_000).toISOString();
  result.costsBySessionSince = compare((root) => ["costs", "--by", "session", "--since", since, "--json", "--root", root]);
  // no status.json yet: the report comes from config.yaml, the history and the ledger's summary
  result.statusNoDaemonYet = compare((root) => ["status", "--json", "--root", root]);
  for (const name of ["empty", "ledger"]) {
    await rm(join(roots[name], "state", "costs.summary.json"), { force: true });
    result[`daemon_${name}`] = { cold: await daemon(roots[name]), warm: await daemon(roots[name]) };
  }
  result.statusAfterDaemon = compare((root) => ["status", "--json", "--root", root]);
  // ledger ÷ empty, less Node's start-up on both sides, and what the ledger adds in ms
  const ratio = (m, k) => Math.round(((m.ledger[k] - startup[k]) / (m.empty[k] - startup[k])) * 100) / 100;
  result.ledgerVsEmpty = Object.fromEntries(
    ["costs", "costsBySessionSince", "statusNoDaemonYet", "statusAfterDaemon"].map((k) => [
      k,
      { wallRatio: ratio(result[k], "wallMs"), cpuRatio: ratio(result[k], "cpuMs"), extraWallMs: ms(result[k].ledger.wallMs - result[k].empty.wallMs), extraCpuMs: ms(result[k].ledger.cpuMs - result[k].empty.cpuMs) },
    ]),
  );
} finally {
  for (const root of Object.values(roots)) await rm(root, { recursive: true, force: true });
}
process.stdout.write(`${JSON.stringify(result, null, 1)}\n`);
