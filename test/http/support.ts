/**
 * Shared by the status page tests: a temporary root with real state files written by the
 * relay's own modules (ledger, queue rejection) and a state/status.json as the daemon writes it
 * (valid per statusFileSchema), a stand-in for the daemon's state-change subscription, and raw HTTP requests whose every header (Host, Origin) we choose.
 */
import { request } from "node:http";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig, type RelayConfig } from "../../src/config/config.js";
import { appendLedger, makeLedgerRecord } from "../../src/costs/ledger.js";
import { silentLogger } from "../../src/runtime/log.js";
import { inputFile, relayPaths, type RelayPaths, sessionDir } from "../../src/config/paths.js";
import { rejectFile } from "../../src/transport/file/queue.js";
import { ensureDirs } from "../../src/store/files.js";
import { startStatusServer, type StatusServer, type StatusServerOptions } from "../../src/status/http/server.js";
import { type StatusFileParts, writeStatusFile } from "../support/daemon-status.js";

export { statusFile, writeStatusFile } from "../support/daemon-status.js";

export const SESSIONS = ["session-1", "session-2"];

export function configYaml(sessions = SESSIONS): string {
  return [
    "model: claude-sonnet-4-6",
    "max_tokens: 1024",
    "system_prompt: You review the sessions.",
    "summarization_prompt: Summarize.",
    "poll_interval_ms: 100",
    "sessions:",
    ...sessions.map((id) => `  - id: ${id}`),
    "",
  ].join("\n");
}

export interface TestRoot {
  root: string;
  paths: RelayPaths;
  config: RelayConfig;
  remove(): Promise<void>;
}

export async function makeRoot(env: NodeJS.ProcessEnv = {}): Promise<TestRoot> {
  const root = await mkdtemp(join(tmpdir(), "relay-http-"));
  await writeFile(join(root, "config.yaml"), configYaml());
  const paths = relayPaths(root);
  await ensureDirs(paths.queue, paths.rejected, paths.dispatch, paths.state, paths.logs, paths.history);
  const config = await loadConfig(paths, env, { seed: false });
  return { root, paths, config, remove: () => rm(root, { recursive: true, force: true }) };
}

/** state/status.json in `state` (the relay's §9 state string), as the daemon writes it. */
export async function writeStatus(paths: RelayPaths, state: string, parts: StatusFileParts = {}): Promise<void> {
  await writeStatusFile(paths, { state, ...parts });
}

/** Some history for the page to show: a waiting envelope, a rejection, an unacknowledged reply, ledger records over several days. */
export async function seedActivity(paths: RelayPaths, now = Date.now()): Promise<void> {
  await writeFile(join(paths.queue, "waiting.json"), JSON.stringify({ session_id: "session-2", content: "next step done" }));
  await writeFile(join(paths.queue, "broken.json"), "{ not json");
  await rejectFile(paths, "broken.json", "invalid JSON: Expected property name or '}' in JSON at position 2", now - 60_000);
  await mkdir(sessionDir(paths, "session-1"), { recursive: true });
  await writeFile(inputFile(paths, "session-1"), "Looks good: open the PR.");
  const day = 86_400_000;
  const calls: [number, string, number, number, number][] = [
    [4 * day, "session-1", 12_000, 800, 2_100],
    [3 * day, "session-2", 30_000, 1_500, 3_400],
    [2 * day, "session-1", 8_000, 400, 1_800],
    [2 * day - 3_600_000, "session-2", 45_000, 2_200, 5_200],
    [day, "session-1", 22_000, 1_100, 2_900],
    [3_600_000, "session-2", 15_000, 900, 2_300],
    [600_000, "session-1", 40_000, 2_500, 4_100],
  ];
  for (const [back, session, input, output, latencyMs] of calls) {
    await appendLedger(
      paths.root,
      makeLedgerRecord({
        at: new Date(now - back),
        session,
        conversation: "shared",
        model: "claude-sonnet-4-6",
        purpose: "reply",
        usage: { inputTokens: input, outputTokens: output, cacheWrite5mTokens: 2_000, cacheWrite1hTokens: 0, cacheReadTokens: input * 2 },
        latencyMs,
      }),
    );
  }
}

/** The daemon's side of `subscribe`: `notify()` is one machine state change. */
export function stateChanges(): { subscribe: StatusServerOptions["subscribe"]; notify(): void; listeners(): number } {
  const listeners = new Set<() => void>();
  return {
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    notify() {
      for (const l of listeners) l();
    },
    listeners: () => listeners.size,
  };
}

export async function startServer(t: TestRoot, extra: Partial<StatusServerOptions> = {}): Promise<StatusServer & { notify(): void; port: number; host: string }> {
  const changes = stateChanges();
  const server = await startStatusServer({
    paths: t.paths,
    config: () => t.config,
    listen: { host: "127.0.0.1", port: 0 },
    subscribe: changes.subscribe,
    log: silentLogger(),
    ...extra,
  });
  const u = new URL(server.url);
  return { ...server, notify: changes.notify, port: Number(u.port), host: u.host };
}

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One HTTP request with exactly these headers (fetch would not let us set Host). */
export function raw(url: string, opts: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<RawResponse> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: u.hostname.replace(/^\[|\]$/g, ""), port: u.port, path: u.pathname + u.search, method: opts.method ?? "GET", headers: { host: u.host, ...opts.headers } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(opts.body);
  });
}

/** The per-process CSRF token, as the page embeds it. */
export async function csrfOf(url: string, headers: Record<string, string> = {}): Promise<string> {
  const page = await raw(url, { headers });
  const token = /<meta name="csrf-token" content="([^"]+)">/.exec(page.body)?.[1];
  if (!token) throw new Error(`no CSRF token in the page (HTTP ${page.status})`);
  return token;
}
