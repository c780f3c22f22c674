// Randomized crash soak: a simulated CC side and JC keep the relay busy while it is killed with
// SIGKILL at random instants (fixed seed), then restarted. Five sessions: two share the default
// conversation, three have a conversation of their own (system_prompt), so four conversations
// compete for max_parallel_calls: 3. The API stand-in answers each call after a random short
// delay, so several calls are often in flight when the kill lands (many kills wait for three of
// them, some for a summarization: the history cap is small, so conversations are summarized
// while others call). JC writes direct answers (`@session: ...`) now and then.
//
// At the end (CONTRACT §8): every envelope is answered exactly once in the history (a turn, or
// folded into the summary that was written) and its reply dispatched exactly once, with the
// input.json that names it; every JC direct answer is delivered once and recorded once; replies
// to one session come in the order its envelopes were sent (= taken, oldest first); the
// envelopes of one conversation are in its history in that order too; no more than
// max_parallel_calls calls were ever in flight. `npm test` runs a short soak; `npm run soak` a
// long one (SOAK_KILLS, SOAK_SEED).
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, describe, expect, it } from "vitest";
import { type FakeAnthropic, type ParsedRequest, startFakeAnthropic } from "../support/fake-anthropic.js";
import { prng } from "../support/soak-random.js";

const BIN = new URL("../../bin/relay.js", import.meta.url).pathname;
const KILLS = Number(process.env.SOAK_KILLS ?? "8");
const SEED = Number(process.env.SOAK_SEED ?? "20261124");
const MAX_PARALLEL = 3;
const SUMMARIZE = "Summarize.";
/** The drain gives up only after this long with no reply delivered and no envelope taken. */
const DRAIN_STALL_MS = 60_000;

/** The relay alive now, if any: killed by afterAll even when the test times out. */
let running: ChildProcess | null = null;

/** Two sessions in the shared conversation, three with a conversation of their own. */
const SESSIONS = [
  { id: "session-1", own: false },
  { id: "session-2", own: false },
  { id: "session-3", own: true },
  { id: "session-4", own: true },
  { id: "session-5", own: true },
] as const;
const SESSION_IDS = SESSIONS.map((s) => s.id);
const conversationOf = (session: string): string => (SESSIONS.find((s) => s.id === session)?.own ? `session.${session}` : "shared");

// A turn is ~100–500 characters: a conversation is summarized every few turns, keeping 2.
const CONFIG = `model: claude-sonnet-4-6
max_tokens: 256
system_prompt: You review.
summarization_prompt: ${SUMMARIZE}
keep_recent_turns: 2
history_char_cap: 1500
max_parallel_calls: ${MAX_PARALLEL}
sessions:
${SESSIONS.map((s) => (s.own ? `  - id: ${s.id}\n    system_prompt: You review ${s.id} alone.` : `  - id: ${s.id}`)).join("\n")}
`;

export interface SoakFigures {
  kills: number;
  envelopes: number;
  jcDirect: number;
  delivered: number;
  lost: number;
  duplicates: number;
  /** summaries written into the histories (and summarization calls made, repeats included) */
  summariesWritten: number;
  summaryCalls: number;
  /** how many of this life's calls were unanswered at each kill: count of kills per number */
  inFlightAtKill: Record<number, number>;
  killsDuringSummary: number;
  maxInFlight: number;
  drainMs: number;
  /** every broken invariant, spelled out (empty when the soak passes) */
  problems: string[];
}

/** One folded or recorded input: an envelope's turn (with its reply) or a JC note. */
interface Recorded {
  marker: string;
  reply: string | null;
}

/** What a delivery looked like to the CC side: input.txt, then the input.json beside it. */
interface Seen {
  session: string;
  text: string;
  meta: { reply_id?: unknown; in_reply_to?: unknown; source?: unknown } | null;
}

/**
 * The stand-in's answers. A reply names the envelope it answers and the call that made it
 * (`reviewed m-12 #c40`), so a repeated call shows as a different reply. A summary is
 * `SUMMARY#k`, and the test keeps, for each k, what was folded into it, in order (an earlier
 * summary folded again is expanded): so the histories still account for every turn after any
 * number of summarizations.
 */
/** A summary rides the conversation's cache: the summarization prompt is its last user turn. */
const isSummaryRequest = (req: ParsedRequest): boolean => req.lastUserText.includes(SUMMARIZE);

/**
 * What a summary request folds, as a transcript: the conversation's messages before its last
 * kept turns (each a user message and its reply), replies marked as in the relay's transcripts.
 */
function foldedText(req: ParsedRequest): string {
  const kept = Number(/except its last (\d+) turn/.exec(req.lastUserText)?.[1] ?? "0");
  const conversation = req.messages.slice(0, -1);
  return conversation
    .slice(0, Math.max(0, conversation.length - 2 * kept))
    .map((m) => (m.role === "assistant" ? `[chat-Claude] ${m.text}` : m.text))
    .join("\n");
}

function standIn(api: FakeAnthropic, seed: number) {
  const delays = prng(seed ^ 0x5eed);
  const summaries = new Map<number, Recorded[]>();
  /** summary k → the earlier summaries its transcript folded (they had been written) */
  const folds = new Map<number, number[]>();
  let calls = 0;
  let summaryCalls = 0;
  const expand = (text: string): Recorded[] => {
    const out: Recorded[] = [];
    for (const m of text.matchAll(/SUMMARY#(\d+)|<(m-\d+)>[^\n]*(?:\n\[chat-Claude\] ([^\n]*))?/g)) {
      if (m[1] !== undefined) out.push(...(summaries.get(Number(m[1])) ?? [{ marker: `unknown summary ${m[1]}`, reply: null }]));
      else out.push({ marker: m[2] ?? "?", reply: m[3] ?? null });
    }
    return out;
  };
  api.setResponder((req: ParsedRequest) => {
    if (isSummaryRequest(req)) {
      summaryCalls += 1;
      const folded = foldedText(req);
      summaries.set(summaryCalls, expand(folded));
      folds.set(summaryCalls, [...folded.matchAll(/SUMMARY#(\d+)/g)].map((m) => Number(m[1])));
      return `SUMMARY#${summaryCalls}`;
    }
    const marker = [...req.lastUserText.matchAll(/<(m-\d+)>/g)].at(-1)?.[1] ?? "?";
    return `reviewed ${marker} #c${++calls}`;
  });
  // A summarization takes longer than a reply, so some kills land in one.
  api.setDelay((req) => (isSummaryRequest(req) ? 150 + delays() * 350 : 20 + delays() * 230));
  /** The summaries that were written: those in the histories now and those they folded. */
  const written = (current: number[]): number => {
    const all = new Set<number>();
    const add = (k: number) => {
      if (all.has(k)) return;
      all.add(k);
      for (const j of folds.get(k) ?? []) add(j);
    };
    current.forEach(add);
    return all.size;
  };
  return { expand, written, summaryCalls: () => summaryCalls };
}

async function soak(api: FakeAnthropic, root: string, kills: number, seed: number): Promise<SoakFigures> {
  const random = prng(seed);
  const stand = standIn(api, seed);
  mkdirSync(join(root, "queue"), { recursive: true });
  writeFileSync(join(root, "config.yaml"), CONFIG);
  /** marker → where it went, in the order sent */
  const sent = new Map<string, { session: string; kind: "envelope" | "jc" }>();
  const seen: Seen[] = [];
  const inFlightAtKill: Record<number, number> = {};
  let killsDuringSummary = 0;
  let counter = 0;
  let child: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  let started: Promise<void> = Promise.resolve();

  const start = () => {
    child = spawn(process.execPath, [BIN, "run", "--root", root], {
      env: { ...process.env, ANTHROPIC_API_KEY: "sk-ant-soak-secret", ANTHROPIC_BASE_URL: api.url, NTFY_SERVER: "http://127.0.0.1:9", NTFY_TOPIC: "s".repeat(24), POLL_INTERVAL_MS: "50" },
      stdio: ["ignore", "ignore", "pipe"],
    });
    const c = child;
    running = c;
    exited = new Promise((resolve) => c.on("exit", () => resolve()));
    started = new Promise((resolve) => {
      let out = "";
      c.stderr?.on("data", (d: Buffer) => {
        out += d.toString();
        if (out.includes("relay started")) resolve();
      });
      c.on("exit", () => resolve());
    });
  };

  /** The CC side: take each input.txt with the input.json beside it, then acknowledge (delete). */
  const collect = () => {
    for (const session of SESSION_IDS) {
      const dir = join(root, "dispatch", session);
      const input = join(dir, "input.txt");
      if (!existsSync(input)) continue;
      const text = readFileSync(input, "utf8");
      let meta: Seen["meta"] = null;
      try {
        meta = JSON.parse(readFileSync(join(dir, "input.json"), "utf8")) as Seen["meta"];
      } catch {
        meta = null;
      }
      unlinkSync(input);
      seen.push({ session, text, meta });
    }
  };

  /** The CC sessions and JC: collect, then maybe send an envelope or a direct answer. */
  const step = () => {
    collect();
    // The CC side keeps a backlog of up to 8 envelopes (enough for every conversation to have work).
    if (random() < 0.5 && readdirSync(join(root, "queue")).filter((n) => n.endsWith(".json")).length < 8) {
      const marker = `m-${++counter}`;
      const session = SESSION_IDS[Math.floor(random() * SESSION_IDS.length)] ?? "session-1";
      const tmp = join(root, "queue", `.${marker}.tmp`);
      writeFileSync(tmp, JSON.stringify({ session_id: session, id: marker, content: `work item <${marker}> ${"x".repeat(Math.floor(random() * 400))}` }));
      renameSync(tmp, join(root, "queue", `${marker}.json`));
      sent.set(marker, { session, kind: "envelope" });
    }
    const jcFile = join(root, "state", "jc_input.txt");
    if (random() < 0.08 && existsSync(join(root, "state")) && !existsSync(jcFile)) {
      const marker = `m-${++counter}`;
      const session = SESSION_IDS[Math.floor(random() * SESSION_IDS.length)] ?? "session-1";
      writeFileSync(`${jcFile}.tmp-soak`, `@${session}: JC says <${marker}>`);
      renameSync(`${jcFile}.tmp-soak`, jcFile);
      sent.set(marker, { session, kind: "jc" });
    }
  };

  for (let kill = 0; kill < kills; kill++) {
    const firstRequest = api.requests.length;
    start();
    await started; // kill a working relay, not one still loading its modules
    const unanswered = () => api.requests.slice(firstRequest).filter((r) => r.response.status === 0);
    const isSummary = (r: { body: unknown }) => JSON.stringify((r.body as { messages?: unknown[] }).messages?.at(-1) ?? "").includes(SUMMARIZE);
    // Most kills wait (a while) for three calls in flight or for a summarization; the rest land anywhere.
    const mode = random();
    const aim = mode < 0.35 ? null : mode < 0.85 ? () => unanswered().length >= MAX_PARALLEL : () => unanswered().some(isSummary);
    const until = Date.now() + random() * 600;
    const latest = until + 1000;
    while (Date.now() < until || (aim !== null && !aim() && Date.now() < latest)) {
      step();
      await sleep(10 + random() * 30);
    }
    const open = unanswered();
    inFlightAtKill[open.length] = (inFlightAtKill[open.length] ?? 0) + 1;
    if (open.some(isSummary)) killsDuringSummary += 1;
    (child as ChildProcess | null)?.kill("SIGKILL");
    await exited;
  }

  // Drain: no more kills, no more input; wait until every marker has come back, for as long as
  // the relay makes progress (a reply delivered, an envelope taken): on a busy machine that can
  // take minutes, and only a drain that has stalled for DRAIN_STALL_MS gives up.
  const drainStart = Date.now();
  start();
  const delivered = () => new Set(seen.flatMap((s) => s.text.match(/m-\d+/g) ?? []));
  let progressAt = Date.now();
  let lastCounts = "";
  while (Date.now() - progressAt < DRAIN_STALL_MS) {
    collect();
    const got = delivered();
    const pending = [...sent.keys()].some((m) => !got.has(m));
    const queued = readdirSync(join(root, "queue")).filter((n) => !n.startsWith("."));
    if (!pending && queued.length === 0) break;
    const counts = `${got.size}/${queued.length}`;
    if (counts !== lastCounts) {
      lastCounts = counts;
      progressAt = Date.now();
    }
    await sleep(25);
  }
  const drainMs = Date.now() - drainStart;
  await sleep(400); // a doubled reply would show up now
  collect();
  (child as ChildProcess | null)?.kill("SIGTERM");
  await exited;

  // ---- The invariants, each failure spelled out.
  const problems: string[] = [];
  const deliveries = new Map<string, Seen[]>();
  for (const s of seen) {
    const markers = s.text.match(/m-\d+/g) ?? [];
    if (markers.length !== 1) problems.push(`${s.session}: input.txt ${JSON.stringify(s.text)} names ${markers.length} markers`);
    for (const m of markers) deliveries.set(m, [...(deliveries.get(m) ?? []), s]);
  }
  const lost = [...sent.keys()].filter((m) => !deliveries.has(m));
  const doubled = [...deliveries].filter(([, list]) => list.length > 1);
  if (lost.length > 0) problems.push(`lost (never delivered): ${lost.map((m) => `${m} (${sent.get(m)?.kind} for ${sent.get(m)?.session})`).join(", ")}`);
  for (const [m, list] of doubled) problems.push(`${m} delivered ${list.length} times: ${list.map((s) => `${s.session} ${JSON.stringify(s.text)} reply_id=${String(s.meta?.reply_id)}`).join("; ")}`);
  for (const [m, list] of deliveries) {
    const want = sent.get(m);
    if (!want) {
      problems.push(`${m} delivered but never sent`);
      continue;
    }
    for (const s of list) {
      if (s.session !== want.session) problems.push(`${m} for ${want.session} delivered to ${s.session}`);
      const source = want.kind === "jc" ? "jc-direct" : "envelope";
      const inReplyTo = want.kind === "jc" ? null : m;
      if (s.meta === null) problems.push(`${m}: no readable input.json beside its input.txt`);
      else if (s.meta.source !== source || s.meta.in_reply_to !== inReplyTo) problems.push(`${m}: input.json ${JSON.stringify(s.meta)} (want source ${source}, in_reply_to ${String(inReplyTo)})`);
    }
  }
  // Each reply delivered once: no reply_id twice in a session.
  for (const session of SESSION_IDS) {
    const ids = seen.filter((s) => s.session === session).map((s) => String(s.meta?.reply_id));
    const twice = ids.filter((id, i) => ids.indexOf(id) !== i);
    if (twice.length > 0) problems.push(`${session}: reply_id delivered more than once: ${[...new Set(twice)].join(", ")}`);
    // Replies to one session in the order its envelopes were sent (they are taken oldest first).
    const order = seen.filter((s) => s.session === session && s.meta?.source === "envelope").map((s) => Number(/m-(\d+)/.exec(s.text)?.[1] ?? -1));
    const outOfOrder = order.filter((n, i) => i > 0 && n < (order[i - 1] ?? 0));
    if (outOfOrder.length > 0) problems.push(`${session}: envelope replies out of order: m-${order.join(", m-")}`);
  }

  // The histories: every envelope a turn exactly once (kept, or folded into the summary written),
  // with the reply that was dispatched; every JC direct answer a note exactly once; each
  // conversation's envelopes in the order they were sent.
  const inHistory = new Map<string, { conversation: string; reply: string | null }[]>();
  const currentSummaries: number[] = [];
  for (const file of readdirSync(join(root, "state", "history")).filter((f) => f.endsWith(".jsonl"))) {
    const conversation = file.slice(0, -".jsonl".length);
    const lines = readFileSync(join(root, "state", "history", file), "utf8").split("\n").filter((l) => l.trim() !== "");
    const entries = lines.map((l) => JSON.parse(l) as { kind: string; id: string; text: string; reply?: string });
    const ids = entries.map((e) => e.id);
    if (new Set(ids).size !== ids.length) problems.push(`${file}: an entry id twice`);
    const recorded: Recorded[] = entries.flatMap((e) => {
      if (e.kind === "summary") {
        currentSummaries.push(Number(/SUMMARY#(\d+)/.exec(e.text)?.[1] ?? -1));
        return stand.expand(e.text);
      }
      return stand.expand(e.text).map((r) => ({ ...r, reply: e.kind === "turn" ? (e.reply ?? null) : null }));
    });
    for (const r of recorded) inHistory.set(r.marker, [...(inHistory.get(r.marker) ?? []), { conversation, reply: r.reply }]);
    const envelopes = recorded.filter((r) => sent.get(r.marker)?.kind === "envelope").map((r) => Number(r.marker.slice(2)));
    if (envelopes.some((n, i) => i > 0 && n < (envelopes[i - 1] ?? 0))) problems.push(`${conversation}: envelopes out of order in the history: m-${envelopes.join(", m-")}`);
  }
  for (const [m, want] of sent) {
    const found = inHistory.get(m) ?? [];
    if (found.length !== 1) {
      problems.push(`${m} (${want.kind} for ${want.session}) is in the history ${found.length} times`);
      continue;
    }
    const [h] = found;
    if (h?.conversation !== conversationOf(want.session)) problems.push(`${m} recorded in ${h?.conversation}, not ${conversationOf(want.session)}`);
    const dispatched = deliveries.get(m)?.[0]?.text;
    if (want.kind === "envelope" && dispatched !== undefined && h?.reply !== dispatched) problems.push(`${m}: dispatched ${JSON.stringify(dispatched)} but the history says ${JSON.stringify(h?.reply)}`);
  }
  for (const m of inHistory.keys()) if (!sent.has(m)) problems.push(`${m} in the history but never sent`);

  // Nothing left behind, files parse.
  const queued = readdirSync(join(root, "queue")).filter((n) => n !== ".rejected");
  if (queued.length > 0) problems.push(`left in queue/: ${queued.join(", ")}`);
  if (existsSync(join(root, "queue", ".rejected")) && readdirSync(join(root, "queue", ".rejected")).length > 0) problems.push(`rejected: ${readdirSync(join(root, "queue", ".rejected")).join(", ")}`);
  for (const session of SESSION_IDS) {
    const dir = join(root, "dispatch", session);
    const left = existsSync(dir) ? readdirSync(dir).filter((n) => n !== "input.json") : [];
    if (left.length > 0) problems.push(`left in dispatch/${session}/: ${left.join(", ")}`);
  }
  if (existsSync(join(root, "state", "jc_input.txt"))) problems.push("state/jc_input.txt left behind");
  JSON.parse(readFileSync(join(root, "state", "snapshot.json"), "utf8"));
  const maxInFlight = api.concurrency().max;
  if (maxInFlight > MAX_PARALLEL) problems.push(`${maxInFlight} calls in flight at once (max_parallel_calls: ${MAX_PARALLEL})`);

  const jcDirect = [...sent.values()].filter((s) => s.kind === "jc").length;
  return {
    kills,
    envelopes: sent.size - jcDirect,
    jcDirect,
    delivered: deliveries.size,
    lost: lost.length,
    duplicates: doubled.length,
    summariesWritten: stand.written(currentSummaries),
    summaryCalls: stand.summaryCalls(),
    inFlightAtKill,
    killsDuringSummary,
    maxInFlight,
    drainMs,
    problems,
  };
}

describe("crash soak", () => {
  const roots: string[] = [];
  afterAll(() => {
    running?.kill("SIGKILL");
    for (const r of roots) rmSync(r, { recursive: true, force: true });
  });

  it(`relays every envelope and JC answer exactly once, in order, across ${KILLS} random kill -9s with calls of four conversations in flight (seed ${SEED})`, async () => {
    const api = await startFakeAnthropic();
    const root = mkdtempSync(join(tmpdir(), "relay-soak-"));
    roots.push(root);
    const began = Date.now();
    try {
      const figures = await soak(api, root, KILLS, SEED);
      const { problems, ...rest } = figures;
      console.log(`soak figures (seed ${SEED}, ${Math.round((Date.now() - began) / 1000)} s): ${JSON.stringify(rest)}`);
      expect(problems).toEqual([]);
      expect(figures.lost).toBe(0);
      expect(figures.duplicates).toBe(0);
      expect(figures.delivered).toBe(figures.envelopes + figures.jcDirect);
      // The soak did what it is for: calls of several conversations in flight at kills, summaries.
      if (KILLS >= 20) {
        expect(figures.maxInFlight).toBe(MAX_PARALLEL);
        expect(figures.inFlightAtKill[MAX_PARALLEL] ?? 0).toBeGreaterThan(0);
        expect(figures.summariesWritten).toBeGreaterThan(0);
      }
    } finally {
      await api.close();
    }
  }, 1_800_000);
});
