// `npm run bench`: the figures of issue 4, measured on the real CLI against the local Messages API
// stand-in, for the relay's design (fs events + the POLL_INTERVAL_MS safety net, conversation-
// prefix caching) and the seed design (fixed 1 s polling, system-only caching).
//
//   node dist-bench/bench/run.js [--quick] [--out FILE] [--previous FILE] [--transport nats]
//
// Prints the machine and a Markdown table on stdout (progress on stderr); --out also writes it.
// --previous FILE (the output of an earlier --out) adds a column with that run's p50 of each
// figure of the same name (e.g. the figures from before a rewrite beside the new ones).
// --transport nats runs only the rows of `transport: nats` (bench/nats.ts), files from the same run beside them.
import { readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { cpus, loadavg, release, tmpdir } from "node:os";
import {
  type CostResult,
  cost,
  type IdleCpuResult,
  idleCpu,
  type IsolationResult,
  isolation,
  type LatencyResult,
  latency,
  loop,
  type LoopResult,
  type MemoryResult,
  memory,
  parallel,
  type ParallelResult,
  perEnvelope,
  type PerEnvelopeResult,
  statusColdStart,
  type ThroughputResult,
  throughput,
} from "./figures.js";
import { cachePace, cachePaceRows } from "./cache-pace.js";
import { lightRows } from "./light.js";
import { natsPlan, natsRows } from "./nats.js";
import { cleanup, figureKey, fmtMs, fmtNum, fsTypeOf, fsyncProbe, log, median, percentile, POLL_MS, prepareEnvironment, readPrevious } from "./lib.js";
import { otherMachine } from "./machine-line.js";

const argv = process.argv.slice(2);
const quick = argv.includes("--quick");
const outIndex = argv.indexOf("--out");
const outFile = outIndex >= 0 ? argv[outIndex + 1] : undefined;
const previousIndex = argv.indexOf("--previous");
const previousFile = previousIndex >= 0 ? argv[previousIndex + 1] : undefined;
const transportIndex = argv.indexOf("--transport");
const transport = transportIndex >= 0 ? argv[transportIndex + 1] : "files";

const plan = quick
  ? { cycles: 10, seedCycles: 3, jc: 10, seedJc: 2, jcCli: 2, status: 10, tpN: 300, tpLimitMs: 4_000, seedTp: true, memEnvelopes: 3, seedMemory: false, memStatus: 0, cpuWarmupMs: 2_000, cpuWindowMs: 10_000, turns: 40,
      parReps: 1, isoDelayMs: 10_000, isoSamples: 3, loopMs: 12_000, perEnvN: 20, perEnvTraced: 10 }
  : { cycles: 30, seedCycles: 8, jc: 30, seedJc: 8, jcCli: 5, status: 10, tpN: 600, tpLimitMs: 15_000, seedTp: true, memEnvelopes: 3, seedMemory: true, memStatus: 10, cpuWarmupMs: 3_000, cpuWindowMs: 60_000, turns: 40,
      parReps: 3, isoDelayMs: 30_000, isoSamples: 5, loopMs: 40_000, perEnvN: 100, perEnvTraced: 30 };
const API_LATENCY_MS = 2_000;

type Outcome<T> = { ok: true; value: T } | { ok: false; error: string };

async function attempt<T>(what: string, fn: () => Promise<T>): Promise<Outcome<T>> {
  log(`${what}…`);
  const started = Date.now();
  try {
    const value = await fn();
    log(`${what}: done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return { ok: true, value };
  } catch (err) {
    const error = err instanceof Error ? err.message : String(err);
    log(`${what}: FAILED: ${error}`);
    return { ok: false, error: error.split("\n")[0] ?? error };
  }
}

function machine(): string {
  let model = "unknown CPU";
  try {
    model = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1]?.trim() ?? model;
  } catch {
    // not Linux
  }
  return `${model}, ${cpus().length} cores, Node ${process.version}, Linux ${release()}; temporary roots in ${tmpdir()} (${fsTypeOf(tmpdir())})`;
}

const load = (): string =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(" / ");

// ---------------------------------------------------------------------------

interface Row {
  figure: string;
  p50: string;
  tail: string;
  target: string;
  baseline: string;
}

const MET = "met";
const MISSED = "**missed**";
const verdict = (ok: boolean | null): string => (ok === null ? "not measured" : ok ? MET : MISSED);

const tail = (v: number[]): string => (v.length === 0 ? "n/a" : `${fmtNum(percentile(v, 95))} / ${fmtNum(percentile(v, 99))} ms`);
const latencyBaseline = (v: number[] | undefined): string =>
  !v || v.length === 0 ? "not measured" : `${fmtMs(median(v))} · p95 / p99 ${tail(v)} (n = ${v.length})`;

function latencyRows(relay: Outcome<LatencyResult>, seed: Outcome<LatencyResult>): Row[] {
  const r = relay.ok ? relay.value : null;
  const s = seed.ok ? seed.value : null;
  const err = relay.ok ? "" : `error: ${relay.error}`;
  const row = (figure: string, pick: (x: LatencyResult) => number[], target: string, ok: (v: number[]) => boolean, tailToo = true): Row => {
    const v = r ? pick(r) : [];
    return {
      figure: `${figure} (n = ${v.length})`,
      p50: r ? fmtMs(median(v)) : err,
      tail: r ? (tailToo ? tail(v) : `${fmtNum(percentile(v, 95))} ms (p95)`) : "",
      target: `${target}: ${verdict(r && v.length > 0 ? ok(v) : null)}`,
      baseline: s ? latencyBaseline(pick(s)) : seed.ok ? "not measured" : `error: ${seed.error}`,
    };
  };
  const rows = [
    row("envelope renamed into `queue/` → request arrives at the API", (x) => x.envToApi, "≤ 15 / ≤ 60 ms", (v) => median(v) <= 15 && percentile(v, 99) <= 60),
    row("API reply sent → `input.txt` visible", (x) => x.replyToInput, "≤ 10 / ≤ 40 ms", (v) => median(v) <= 10 && percentile(v, 99) <= 40),
    row("CC deletes `input.txt` → next waiting reply visible", (x) => x.ackToNext, "p50 ≤ 15 ms", (v) => median(v) <= 15),
    row("`state/jc_input.txt` renamed into place (`@session-1: x`) → `input.txt` visible", (x) => x.jcToInput, "p50 ≤ 20 ms", (v) => median(v) <= 20),
  ];
  if (r) {
    rows.push({
      figure: `full \`relay jc "@session-1: x"\` CLI: spawn → \`input.txt\` visible (n = ${r.jcCliToInput.length})`,
      p50: fmtMs(median(r.jcCliToInput)),
      tail: `CLI exits after ${fmtMs(median(r.jcCliExit))} (p50)`,
      target: "(informational: Node + oclif start-up)",
      baseline: "same CLI",
    });
  }
  return rows;
}

function throughputCell(t: Outcome<ThroughputResult>): string {
  if (!t.ok) return `error: ${t.error}`;
  const v = t.value;
  return `${Math.round(v.perSecond)} envelopes/s (${v.completed}/${v.n} in ${(v.elapsedMs / 1000).toFixed(2)} s${v.timedOut ? ", stopped at the time limit" : ""})`;
}

function cpuCell(c: Outcome<IdleCpuResult>): string {
  if (!c.ok) return `error: ${c.error}`;
  return `${c.value.percent.toFixed(3)} % (${Math.round(c.value.cpuMs)} ms CPU in ${(c.value.wallMs / 1000).toFixed(1)} s)`;
}

function memoryCells(m: Outcome<MemoryResult>): { p50: string; tail: string } {
  if (!m.ok) return { p50: `error: ${m.error}`, tail: "" };
  return { p50: `${m.value.rssMb.toFixed(1)} MB (max VmRSS sampled)`, tail: `settled ${m.value.settledRssMb.toFixed(1)} MB; VmHWM ${m.value.hwmMb.toFixed(1)} MB` };
}

function costCells(c: Outcome<CostResult>): { p50: string; baseline: string } {
  if (!c.ok) return { p50: `error: ${c.error}`, baseline: "" };
  const v = c.value;
  return {
    p50: `${(v.ratio * 100).toFixed(1)} % ($${v.relayUsd.toFixed(4)})`,
    baseline: `100 % ($${v.baselineUsd.toFixed(4)})`,
  };
}

const NEW_FIGURE = "not run (no seed-design figure)";
const secs = (ms: number): string => (Number.isFinite(ms) ? `${(ms / 1000).toFixed(2)} s` : "n/a");
const fixed1 = (x: number): string => (Number.isFinite(x) ? x.toFixed(1) : "n/a");

function parallelRows(par: Outcome<ParallelResult>, iso: Outcome<IsolationResult>, lp: Outcome<LoopResult>, per: Outcome<PerEnvelopeResult>): Row[] {
  const rows: Row[] = [];
  const failedRow = (figure: string, o: { ok: false; error: string }, target: string): Row => ({ figure, p50: `error: ${o.error}`, tail: "", target: `${target}: ${verdict(null)}`, baseline: NEW_FIGURE });

  const parFigure = (n: number) => `parallel: 8 envelopes dropped at once (4 sessions × 2, a conversation each), API latency ${API_LATENCY_MS / 1000} s: drop → last reply visible (n = ${n})`;
  if (par.ok) {
    const v = par.value;
    rows.push({
      figure: parFigure(v.elapsedMs.length),
      p50: secs(median(v.elapsedMs)),
      tail: `max ${secs(Math.max(...v.elapsedMs))}`,
      target: `≤ 5 s (ideal ~4 s): ${verdict(v.elapsedMs.length > 0 ? median(v.elapsedMs) <= 5_000 : null)}`,
      baseline: NEW_FIGURE,
    });
    rows.push({
      figure: "parallel: requests in flight at the API stand-in at once (max, same run)",
      p50: String(Math.max(...v.maxInFlight)),
      tail: `per repetition: ${v.maxInFlight.join(", ")}`,
      target: "(informational: 4 = one call per conversation, max_parallel_calls 4)",
      baseline: NEW_FIGURE,
    });
  } else rows.push(failedRow(parFigure(0), par, "≤ 5 s (ideal ~4 s)"));

  const isoFigure = (n: number) => `isolation: conversation A's call held ${plan.isoDelayMs / 1000} s at the API; B's envelope renamed into \`queue/\` → B's request at the API (n = ${n})`;
  if (iso.ok) {
    const v = iso.value.bToApi;
    rows.push({
      figure: isoFigure(v.length),
      p50: fmtMs(median(v)),
      tail: `max ${fmtMs(Math.max(...v))}${iso.value.blocked ? " (B waited for A's reply)" : ""}`,
      target: `≤ 50 ms: ${verdict(v.length > 0 ? median(v) <= 50 : null)}`,
      baseline: NEW_FIGURE,
    });
  } else rows.push(failedRow(isoFigure(0), iso, "≤ 50 ms"));

  const loopFigure = (n: number) => `loop: 4 conversations for ${plan.loopMs / 1000} s (CC works 3 s per reply), API latency ${API_LATENCY_MS / 1000} s: envelope renamed → \`input.txt\` visible (n = ${n})`;
  if (lp.ok) {
    const v = lp.value.waits;
    const ratio = median(v) / lp.value.latencyMs;
    rows.push({
      figure: loopFigure(v.length),
      p50: `${fmtMs(median(v))} (${ratio.toFixed(2)}× the API latency)`,
      tail: tail(v),
      target: `p50 ≤ 1.2× the API latency: ${verdict(v.length > 0 ? ratio <= 1.2 : null)}`,
      baseline: NEW_FIGURE,
    });
  } else rows.push(failedRow(loopFigure(0), lp, "p50 ≤ 1.2× the API latency"));

  if (per.ok) {
    const v = per.value;
    const f = v.fsync;
    rows.push({
      figure: `per envelope, zero-latency API: fsync + fdatasync on the reply path (API reply sent → \`input.txt\` visible), strace -f${"error" in f ? "" : ` (n = ${f.envelopes})`}`,
      p50: "error" in f ? `n/a: ${f.error}` : `${fixed1(f.replyPath)} per envelope`,
      tail: "error" in f ? "" : `whole envelope ${fixed1(f.perEnvelope)}${f.summaryPerEnvelope !== null ? ` (strace -C summary: ${fixed1(f.summaryPerEnvelope)})` : ""}`,
      target: `≤ 4 on the reply path: ${verdict("error" in f ? null : f.replyPath <= 4)}`,
      baseline: NEW_FIGURE,
    });
    rows.push({
      figure: `per envelope, zero-latency API: API reply sent → \`input.txt\` visible (n = ${v.replyToInput.length})`,
      p50: fmtMs(median(v.replyToInput)),
      tail: tail(v.replyToInput),
      target: `p50 ≤ 8 ms: ${verdict(v.replyToInput.length > 0 ? median(v.replyToInput) <= 8 : null)}`,
      baseline: NEW_FIGURE,
    });
    rows.push({
      figure: `per envelope, zero-latency API: envelope renamed into \`queue/\` → request at the API (n = ${v.renameToRequest.length})`,
      p50: fmtMs(median(v.renameToRequest)),
      tail: tail(v.renameToRequest),
      target: `p50 ≤ 4 ms: ${verdict(v.renameToRequest.length > 0 ? median(v.renameToRequest) <= 4 : null)}`,
      baseline: NEW_FIGURE,
    });
    rows.push({
      figure: `per envelope, zero-latency API: daemon CPU (utime+stime) per envelope over ${v.envelopes} envelopes`,
      p50: `${fixed1(v.cpuMsPerEnvelope)} ms`,
      tail: "",
      target: `≤ 12 ms: ${verdict(Number.isFinite(v.cpuMsPerEnvelope) ? v.cpuMsPerEnvelope <= 12 : null)}`,
      baseline: NEW_FIGURE,
    });
  } else rows.push(failedRow("per envelope, zero-latency API (fsyncs, latencies, CPU)", per, "see the figures"));
  return rows;
}

function parallelNotes(par: Outcome<ParallelResult>, iso: Outcome<IsolationResult>, lp: Outcome<LoopResult>, per: Outcome<PerEnvelopeResult>): string[] {
  const notes: string[] = [];
  notes.push(
    `Parallel conversations (figures from "parallel" on): each session has a \`system_prompt\` of its own, so a conversation of its own; the relay's \`max_parallel_calls\` is left at its default. The stand-in sleeps on a timer of its own per request (\`setLatency\`, \`setDelay\`), so concurrent requests overlap; it counts the requests received and not yet answered. Every session first sends one warm-up envelope through a zero-latency API. A relay that makes one call at a time gives ~16 s and 1 in flight for "parallel", and ~A's hold for "isolation".` +
      (par.ok ? ` Parallel: the 8 envelopes are written and fsync'd as \`queue/.NAME.tmp\`, then renamed in one burst (s1, s2, s3, s4, s1, …); the CC side deletes each \`input.txt\` as soon as it appears; times per repetition: ${par.value.elapsedMs.map((ms) => secs(ms)).join(", ")}.` : ""),
  );
  if (iso.ok) notes.push(`Isolation: the stand-in holds every request whose system prompt is A's for ${plan.isoDelayMs / 1000} s; once A's request is there (+200 ms), B's envelopes go one after the other (each answered at once, its \`input.txt\` deleted) while A's call lasts, at most ${plan.isoSamples}; B's request is found by a marker in its content and stamped on arrival (sub-ms clock, as the bench's rename stamp). Samples: ${iso.value.bToApi.map((ms) => fmtMs(ms)).join(", ")}${iso.value.blocked ? "; the last B waited for A's reply, so sampling stopped there" : ""}.`);
  if (lp.ok) notes.push(`Loop: each of the 4 CC sides sends an envelope, waits for its \`input.txt\`, works 3 s, deletes it and sends the next (session i starts i × 0.5 s late); no new envelope after ${plan.loopMs / 1000} s, the last ones are waited for. ${lp.value.waits.length} replies, at most ${lp.value.maxInFlight} requests in flight at the stand-in.`);
  if (per.ok) {
    const f = per.value.fsync;
    notes.push(
      `Per envelope: one session, each envelope answered, its \`input.txt\` deleted and the relay at rest before the next (after 11 warm-up envelopes; 0–20 ms random pause). Latencies and CPU come from ${per.value.envelopes} untraced envelopes (CPU: /proc/PID/stat utime+stime, 10 ms ticks, over the whole run, rests included). ` +
        ("error" in f
          ? `fsyncs: n/a (${f.error}).`
          : `fsyncs come from ${f.envelopes} more envelopes with \`strace -f -C -ttt -e trace=fsync,fdatasync -p PID\` attached to the daemon (every thread; nothing timed then, strace slows each syscall): "whole envelope" counts every call from just before the first rename until the relay is at rest after the last envelope, divided by the envelopes; "reply path" counts the calls stamped between the stand-in's \`res.end()\` and the bench seeing \`input.txt\` (strace's wall clock aligned to the bench's by a measured offset, ±0.5 ms).`),
    );
  }
  return notes;
}

function table(rows: Row[], previous: Map<string, string> | null, baselineHeader = "seed-design baseline", previousElsewhere = false): string {
  const esc = (s: string) => s.replace(/\|/g, "\\|");
  const prev = (r: Row) => (previous ? ` ${esc(previous.get(figureKey(r.figure)) ?? "—")} |` : "");
  return [
    `| figure | p50 | p95 / p99 | target | ${baselineHeader} |${previous ? ` previous run (p50${previousElsewhere ? ", another machine" : ""}) |` : ""}`,
    `|---|---|---|---|---|${previous ? "---|" : ""}`,
    ...rows.map((r) => `| ${esc(r.figure)} | ${esc(r.p50)} | ${esc(r.tail)} | ${esc(r.target)} | ${esc(r.baseline)} |${prev(r)}`),
  ].join("\n");
}

// ---------------------------------------------------------------------------

async function main(): Promise<number> {
  const startedAt = Date.now();
  const previous = previousFile ? readPrevious(previousFile) : null;
  if (previous) log(`previous figures: ${previous.size} rows from ${previousFile}`);
  const loadBefore = load();
  const host = machine();
  const elsewhere = previousFile ? otherMachine(readFileSync(previousFile, "utf8"), host) : null;
  const elsewhereNote = elsewhere === null ? [] : [`The previous column comes from another machine (${elsewhere}): its times and CPU figures do not compare with this run's.`];
  log(`${quick ? "quick run" : "full run"} on ${host}; load average ${loadBefore}`);
  await prepareEnvironment();
  const fsyncMs = await fsyncProbe(20);
  log(`one durable atomic write (write + fsync, rename, fsync of the directory): ${fmtMs(fsyncMs)} (median of 20)`);
  if (transport === "nats") {
    const nats = await natsRows(natsPlan(quick), log, fsyncMs);
    const notes = [...nats.notes, ...elsewhereNote, `Load average (1 / 5 / 15 min) before: ${loadBefore}; after: ${load()}. Total run time ${((Date.now() - startedAt) / 1000).toFixed(0)} s.`];
    const md = [`Machine: ${host}. One durable atomic write there took ${fmtMs(fsyncMs)} (median of 20).`, "", table(nats.rows, previous, "transport: files, same run", elsewhere !== null), "", ...notes.map((n) => `- ${n}`), ""].join("\n");
    process.stdout.write(`\n${md}`);
    if (outFile) await writeFile(outFile, `# relay benchmark (\`npm run bench -- --transport nats${quick ? " --quick" : ""}\`), ${new Date().toISOString().slice(0, 10)}\n\n${md}`);
    return nats.failed ? 1 : 0;
  }

  const lat = await attempt("1-4. latencies (relay)", () => latency("relay", { cycles: plan.cycles, jc: plan.jc, jcCli: plan.jcCli, gapMs: [0, 100] }));
  const statusTimes = lat.ok
    ? await attempt("8. relay status cold start", () => statusColdStart(lat.value.daemon.root, plan.status))
    : ({ ok: false, error: "no root (the latency figures failed)" } as Outcome<number[]>);
  if (lat.ok) await lat.value.close();
  const seedLat = await attempt("1-4. latencies (seed)", () => latency("seed", { cycles: plan.seedCycles, jc: plan.seedJc, jcCli: 0, gapMs: [0, POLL_MS] }));
  if (seedLat.ok) await seedLat.value.close();

  const tp = await attempt("5. throughput (relay)", () => throughput("relay", plan.tpN, plan.tpLimitMs));
  const seedTp = plan.seedTp
    ? await attempt("5. throughput (seed)", () => throughput("seed", plan.tpN, plan.tpLimitMs))
    : ({ ok: false, error: "skipped in --quick" } as Outcome<ThroughputResult>);

  const mem = await attempt("7. memory with a full history (relay)", () => memory("relay", plan.memEnvelopes, plan.memStatus));
  const seedMem = plan.seedMemory
    ? await attempt("7. memory with a full history (seed)", () => memory("seed", plan.memEnvelopes, 0))
    : ({ ok: false, error: "skipped in --quick" } as Outcome<MemoryResult>);

  const fig9 = await attempt(`9. billed input cost of a ${plan.turns}-turn conversation`, () => cost(plan.turns));
  const pace = await attempt("14. cache lifetime at three paces, and a summarization cycle", () => cachePace());

  // Conversations in parallel (one actor per conversation, max_parallel_calls): relay only.
  const par = await attempt(`10. parallel: 8 envelopes, 4 conversations, API latency ${API_LATENCY_MS / 1000} s`, () => parallel(plan.parReps, API_LATENCY_MS));
  const iso = await attempt(`11. isolation: B while A's call takes ${plan.isoDelayMs / 1000} s`, () => isolation(plan.isoDelayMs, plan.isoSamples));
  const lp = await attempt(`12. loop: 4 conversations for ${plan.loopMs / 1000} s, API latency ${API_LATENCY_MS / 1000} s`, () => loop(plan.loopMs, API_LATENCY_MS));
  const per = await attempt(`13. per envelope: ${plan.perEnvN} envelopes (+ ${plan.perEnvTraced} under strace), zero-latency API`, () => perEnvelope(plan.perEnvN, plan.perEnvTraced));

  // Figure 6 last, with nothing else of the bench running: the two idle daemons side by side.
  const [cpuRelay, cpuSeed] = await Promise.all([
    attempt("6. idle CPU (relay)", () => idleCpu("relay", plan.cpuWarmupMs, plan.cpuWindowMs)),
    attempt("6. idle CPU (seed)", () => idleCpu("seed", plan.cpuWarmupMs, plan.cpuWindowMs)),
  ]);
  const loadAfter = load();

  // -------------------------------------------------------------------------
  const rows: Row[] = latencyRows(lat, seedLat);
  rows.push({
    figure: `throughput, zero-latency API, durable writes (${plan.tpN} envelopes, 4 sessions)`,
    p50: throughputCell(tp),
    tail: "",
    target: `≥ 300 envelopes/s: ${verdict(tp.ok ? tp.value.perSecond >= 300 : null)}`,
    baseline: throughputCell(seedTp),
  });
  rows.push({
    figure: `CPU of an idle daemon over ${plan.cpuWindowMs / 1000} s (utime+stime)`,
    p50: cpuCell(cpuRelay),
    tail: "",
    target: `≤ 0.3 % of one core: ${verdict(cpuRelay.ok ? cpuRelay.value.percent <= 0.3 : null)}`,
    baseline: cpuCell(cpuSeed),
  });
  const memCells = memoryCells(mem);
  rows.push({
    figure: `resident memory with a full history (${mem.ok ? `${mem.value.historyChars.toLocaleString("en-US")} chars, ${mem.value.turns} turns` : "≈ 400k chars"}, after ${plan.memEnvelopes} envelopes)`,
    p50: memCells.p50,
    tail: memCells.tail,
    target: `≤ 120 MB: ${verdict(mem.ok ? mem.value.rssMb <= 120 : null)}`,
    baseline: seedMem.ok ? `${seedMem.value.rssMb.toFixed(1)} MB (settled ${seedMem.value.settledRssMb.toFixed(1)} MB; VmHWM ${seedMem.value.hwmMb.toFixed(1)} MB)` : seedMem.error,
  });
  rows.push({
    figure: `\`relay status\` cold start, spawn → exit (n = ${statusTimes.ok ? statusTimes.value.length : 0})`,
    p50: statusTimes.ok ? fmtMs(median(statusTimes.value)) : `error: ${statusTimes.error}`,
    tail: statusTimes.ok ? `max ${fmtMs(Math.max(...statusTimes.value))}` : "",
    target: `≤ 300 ms (median): ${verdict(statusTimes.ok ? median(statusTimes.value) <= 300 : null)}`,
    baseline: "same command",
  });
  if (mem.ok && mem.value.statusMs.length > 0) {
    const v = mem.value.statusMs;
    rows.push({
      figure: `\`relay status\` cold start on the full-history root (n = ${v.length})`,
      p50: fmtMs(median(v)),
      tail: `max ${fmtMs(Math.max(...v))}`,
      target: `≤ 300 ms (median): ${verdict(median(v) <= 300)}`,
      baseline: "same command",
    });
  }
  const cc = costCells(fig9);
  rows.push({
    figure: `billed input cost, ${plan.turns}-turn conversation (${fig9.ok ? `${fig9.value.model}, ${fig9.value.systemChars.toLocaleString("en-US")}-char system prompt` : "4k-token system prompt"}, 2k-char turns) relative to system-only caching`,
    p50: cc.p50,
    tail: "",
    target: `≤ 25 %: ${verdict(fig9.ok ? fig9.value.ratio <= 0.25 : null)}`,
    baseline: cc.baseline,
  });

  const paceRows = pace.ok ? cachePaceRows(pace.value) : { rows: [], notes: [`Cache paces: error: ${pace.error}`] };
  rows.push(...paceRows.rows);
  rows.push(...parallelRows(par, iso, lp, per));
  // issue 15: start-up, memory and idle (bench/light.ts)
  rows.push(...(await lightRows(quick ? { startRuns: 5, settleMs: 2_000, windowMs: 10_000 } : { startRuns: 15, settleMs: 15_000, windowMs: 30_000 }, log)));

  const notes: string[] = [];
  notes.push(`Both designs run the same CLI (\`node bin/relay.js run\`) with POLL_INTERVAL_MS=${POLL_MS}. The seed design is emulated by preloading \`dist-bench/bench/no-watch.js\` (\`node --import\`), which makes \`fs.watch\` throw so the relay falls back to its poll alone (RELAY_NO_WATCH=1 is set as well).`);
  const ino = (o: Outcome<LatencyResult>) => (o.ok ? (o.value.inotify ? "holds an inotify instance" : "holds no inotify instance") : "not checked");
  notes.push(`Watcher check (/proc/PID/fd): the relay daemon ${ino(lat)}; the seed daemon ${ino(seedLat)}.`);
  notes.push("Latencies: figure 1 compares the stand-in's arrival stamp (Date.now(), after the body is read) with Date.now() just before the bench renames `queue/.NAME.tmp` to `NAME.json`; figure 2 runs from the stand-in's `res.end()` of the reply (latency 0) to the bench seeing `input.txt` (fs.watch plus a 2 ms stat poll); figures 3 and 4 from the bench's own unlink / rename. Each action is preceded by a random pause (0–100 ms for the relay, 0–1000 ms for the seed design) so it lands at a random phase of the poll timer. Percentiles are nearest-rank; with n < 100 the p99 is the maximum.");
  notes.push(`Throughput: the envelopes are written and fsync'd as \`queue/.NAME.tmp\` first, then renamed into \`queue/\` in one burst; the CC side deletes each \`input.txt\` as soon as it appears; the rate is completed dispatches / (last completion − burst). The relay fsyncs every write (history, ledger, snapshot, staged reply, directory).${tp.ok ? ` Relay: ${fmtNum(tp.value.firstRate)} /s over the first 100 completions (long queue), ${fmtNum(tp.value.lastRate)} /s over the last 100.` : ""}${seedTp.ok ? ` Seed: ${fmtNum(seedTp.value.firstRate)} /s first 100, ${fmtNum(seedTp.value.lastRate)} /s last 100.` : ""}`);
  if (cpuRelay.ok && cpuSeed.ok) notes.push(`Idle CPU: /proc/PID/stat utime+stime, clock ticks of 10 ms, after a ${plan.cpuWarmupMs / 1000} s settle; both daemons idle side by side after the other figures, the bench itself only waiting. The relay's ntfy reply subscription, pointed at a closed port, reconnects with back-off (1 s doubling) during the window; that is part of the figure. Watchers: relay ${cpuRelay.value.inotify ? "inotify" : "none"}, seed ${cpuSeed.value.inotify ? "inotify" : "none"}.`);
  if (mem.ok) {
    notes.push(`Memory: state/history/shared.jsonl prefilled with ${mem.value.turns - plan.memEnvelopes} turns of ~3,000 chars; after ${plan.memEnvelopes} relayed envelopes the history holds ${mem.value.historyChars.toLocaleString("en-US")} chars (cap 400,000)${mem.value.summarized ? " and WAS SUMMARIZED" : ", not summarized"}; VmRSS ${mem.value.idleRssMb.toFixed(1)} MB right after start (history not yet loaded; VmHWM ${mem.value.startHwmMb.toFixed(1)} MB by then), at most ${mem.value.rssMb.toFixed(1)} MB sampled every 10 ms while the envelopes went through, ${mem.value.settledRssMb.toFixed(1)} MB half a second after. The verdict is on the sampled maximum; VmHWM (the kernel's peak) is shown beside it.`);
  }
  if (fig9.ok) {
    const v = fig9.value;
    notes.push(
      `Cost: ${v.turns} turns of a 1,000-char envelope and a 1,000-char reply; system prompt ${v.systemChars.toLocaleString("en-US")} chars (${Math.ceil(v.systemChars / 4)} tokens by the stand-in's chars/4 estimate). The relay's bill is its own cost ledger (the stand-in's usage, priced by src/pricing.ts \`costUsd\`, output tokens left out); it ${v.ledgerMatchesReplay ? "matches" : "DOES NOT match"} a replay of the same requests against a fresh stand-in. The baseline replays the same ${v.turns} request bodies with \`cache_control\` on the system prompt only against another fresh stand-in. Tokens, relay: ${v.relayTokens.inputTokens} uncached, ${v.relayTokens.cacheWrite5mTokens + v.relayTokens.cacheWrite1hTokens} written, ${v.relayTokens.cacheReadTokens} read (at most ${v.maxBreakpoints} breakpoints per request); baseline: ${v.baselineTokens.inputTokens} uncached, ${v.baselineTokens.cacheWrite5mTokens + v.baselineTokens.cacheWrite1hTokens} written, ${v.baselineTokens.cacheReadTokens} read. Priced as ${v.altModel} (reads at 0.1x input instead of ${v.model}'s 0.05x) the ratio is ${(v.altRatio * 100).toFixed(1)} %.`,
    );
  }
  notes.push(...paceRows.notes);
  notes.push(...parallelNotes(par, iso, lp, per));
  notes.push(...elsewhereNote);
  notes.push(`Load average (1 / 5 / 15 min) before: ${loadBefore}; after: ${loadAfter}. Total run time ${((Date.now() - startedAt) / 1000).toFixed(0)} s${quick ? " (--quick: fewer samples, 4 s throughput window, 10 s CPU window, no seed-design memory run)" : ""}.`);

  const md = [
    `Machine: ${host}. One durable atomic write there (write + fsync, rename, directory fsync) took ${fmtMs(fsyncMs)} (median of 20) at the start of the run.`,
    "",
    table(rows, previous, undefined, elsewhere !== null),
    "",
    ...notes.map((n) => `- ${n}`),
    "",
  ].join("\n");
  process.stdout.write(`\n${md}`);
  if (outFile) {
    await writeFile(outFile, `# relay benchmark (\`npm run bench\`${quick ? " -- --quick" : ""}), ${new Date().toISOString().slice(0, 10)}\n\n${md}`);
    log(`table written to ${outFile}`);
  }
  const failed = [lat, seedLat, tp, mem, fig9, pace, cpuRelay, statusTimes, par, iso, lp, per].some((o) => !o.ok);
  return failed ? 1 : 0;
}

let exiting = false;
const onSignal = (signal: NodeJS.Signals) => {
  if (exiting) return;
  exiting = true;
  log(`${signal}: stopping every child and removing the temporary roots`);
  void cleanup().finally(() => process.exit(130));
};
process.on("SIGINT", onSignal);
process.on("SIGTERM", onSignal);

let code = 1;
try {
  code = await main();
} catch (err) {
  log(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
} finally {
  await cleanup();
}
process.exit(code);
