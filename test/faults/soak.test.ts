// Randomized crash soak: a simulated CC side and JC keep the relay busy while it is killed with
// SIGKILL at random instants (fixed seed), then restarted. At the end every envelope and every
// JC direct answer must have reached its session exactly once. `npm test` runs a short soak;
// `npm run soak` a long one (SOAK_KILLS, SOAK_SEED).
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, describe, expect, it } from "vitest";
import { type FakeAnthropic, startFakeAnthropic } from "../support/fake-anthropic.js";

const BIN = new URL("../../bin/relay.js", import.meta.url).pathname;
const KILLS = Number(process.env.SOAK_KILLS ?? "8");
const SEED = Number(process.env.SOAK_SEED ?? "20261124");
const SESSIONS = ["session-1", "session-2", "session-3"];

/** mulberry32: a small seeded PRNG, so a failing soak can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const CONFIG = `model: claude-sonnet-4-6
max_tokens: 256
system_prompt: You review.
summarization_prompt: Summarize.
keep_recent_turns: 3
history_char_cap: 4000
sessions:
${SESSIONS.map((s) => `  - id: ${s}`).join("\n")}
`;

export interface SoakFigures {
  kills: number;
  envelopes: number;
  jcDirect: number;
  delivered: number;
  lost: number;
  duplicates: number;
}

async function soak(api: FakeAnthropic, root: string, kills: number, seed: number): Promise<SoakFigures> {
  const random = prng(seed);
  mkdirSync(join(root, "queue"), { recursive: true });
  writeFileSync(join(root, "config.yaml"), CONFIG);
  const sent = new Set<string>();
  const received = new Map<string, number>();
  let jcDirect = 0;
  let counter = 0;
  let child: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  let started: Promise<void> = Promise.resolve();

  const start = (env: Record<string, string> = {}) => {
    child = spawn(process.execPath, [BIN, "run", "--root", root], {
      env: { ...process.env, ANTHROPIC_API_KEY: "sk-ant-soak-secret", ANTHROPIC_BASE_URL: api.url, NTFY_SERVER: "http://127.0.0.1:9", NTFY_TOPIC: "s".repeat(24), POLL_INTERVAL_MS: "50", ...env },
      stdio: ["ignore", "ignore", "pipe"],
    });
    const c = child;
    exited = new Promise((resolve) => c.on("exit", () => resolve()));
    started = new Promise((resolve) => {
      let seen = "";
      c.stderr?.on("data", (d: Buffer) => {
        seen += d.toString();
        if (seen.includes("relay started")) resolve();
      });
      c.on("exit", () => resolve());
    });
  };

  /** The CC sessions and JC: send, collect, acknowledge. */
  const step = () => {
    for (const session of SESSIONS) {
      const input = join(root, "dispatch", session, "input.txt");
      if (existsSync(input)) {
        const text = readFileSync(input, "utf8");
        unlinkSync(input);
        for (const marker of text.match(/m-\d+/g) ?? []) received.set(marker, (received.get(marker) ?? 0) + 1);
      }
    }
    if (random() < 0.5) {
      const marker = `m-${++counter}`;
      const session = SESSIONS[Math.floor(random() * SESSIONS.length)] ?? "session-1";
      const tmp = join(root, "queue", `.${marker}.tmp`);
      writeFileSync(tmp, JSON.stringify({ session_id: session, content: `work item ${marker} ${"x".repeat(Math.floor(random() * 400))}` }));
      renameSync(tmp, join(root, "queue", `${marker}.json`));
      sent.add(marker);
    }
    const jcFile = join(root, "state", "jc_input.txt");
    if (random() < 0.08 && existsSync(join(root, "state")) && !existsSync(jcFile)) {
      const marker = `m-${++counter}`;
      const session = SESSIONS[Math.floor(random() * SESSIONS.length)] ?? "session-1";
      writeFileSync(`${jcFile}.tmp-soak`, `@${session}: JC says ${marker}`);
      renameSync(`${jcFile}.tmp-soak`, jcFile);
      sent.add(marker);
      jcDirect += 1;
    }
  };

  for (let kill = 0; kill < kills; kill++) {
    start();
    await started; // kill a working relay, not one still loading its modules
    const until = Date.now() + random() * 600;
    while (Date.now() < until) {
      step();
      await sleep(10 + random() * 30);
    }
    (child as ChildProcess | null)?.kill("SIGKILL");
    await exited;
  }
  // Drain: no more kills, no more input; wait until every marker has come back.
  start();
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const pending = [...sent].some((m) => !received.has(m));
    const queued = readdirSync(join(root, "queue")).some((n) => !n.startsWith("."));
    if (!pending && !queued) break;
    for (const session of SESSIONS) {
      const input = join(root, "dispatch", session, "input.txt");
      if (existsSync(input)) {
        const text = readFileSync(input, "utf8");
        unlinkSync(input);
        for (const marker of text.match(/m-\d+/g) ?? []) received.set(marker, (received.get(marker) ?? 0) + 1);
      }
    }
    await sleep(25);
  }
  await sleep(300); // a doubled reply would show up now
  for (const session of SESSIONS) {
    const input = join(root, "dispatch", session, "input.txt");
    if (existsSync(input)) for (const marker of readFileSync(input, "utf8").match(/m-\d+/g) ?? []) received.set(marker, (received.get(marker) ?? 0) + 1);
  }
  (child as ChildProcess | null)?.kill("SIGTERM");
  await exited;
  const lost = [...sent].filter((m) => !received.has(m)).length;
  const duplicates = [...received.values()].filter((n) => n > 1).length;
  return { kills, envelopes: sent.size - jcDirect, jcDirect, delivered: received.size, lost, duplicates };
}

describe("crash soak", () => {
  const roots: string[] = [];
  afterAll(() => {
    for (const r of roots) rmSync(r, { recursive: true, force: true });
  });

  it(`relays every envelope and JC answer exactly once across ${KILLS} random kill -9s (seed ${SEED})`, async () => {
    const api = await startFakeAnthropic();
    // Each reply names the markers of the turn it answers, so a doubled dispatch is visible.
    api.setResponder((req) => `reviewed ${(req.lastUserText.match(/m-\d+/g) ?? []).slice(-1).join(" ")}`);
    api.setLatency(20);
    const root = mkdtempSync(join(tmpdir(), "relay-soak-"));
    roots.push(root);
    try {
      const figures = await soak(api, root, KILLS, SEED);
      console.log(`soak figures: ${JSON.stringify(figures)}`);
      expect(figures.lost).toBe(0);
      expect(figures.duplicates).toBe(0);
      expect(figures.delivered).toBe(figures.envelopes + figures.jcDirect);
      // Snapshot and history files parse after all those kills.
      JSON.parse(readFileSync(join(root, "state", "snapshot.json"), "utf8"));
      for (const f of readdirSync(join(root, "state", "history"))) {
        const ids = readFileSync(join(root, "state", "history", f), "utf8").trim().split("\n").map((l) => (JSON.parse(l) as { id: string }).id);
        expect(new Set(ids).size).toBe(ids.length);
      }
    } finally {
      await api.close();
    }
  }, 600_000);
});
