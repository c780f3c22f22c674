// `relay status`: everything worth knowing, from files only (works while the daemon runs).
import { readdir } from "node:fs/promises";
import { stateName } from "../../machines/state-name.js";
import { readAllHistories, entryChars } from "../history/conversation-store.js";
import { inputExists } from "../transport/file/dispatch.js";
import { readLedger, summarize as summarizeLedger } from "../costs/ledger.js";
import { probeLock } from "../store/lock.js";
import type { RelayPaths } from "../config/paths.js";
import { countRejected, isInProgressName } from "../transport/file/queue.js";
import { readSnapshot } from "../store/snapshot-file.js";
import { isErrno } from "../store/files.js";

export interface StatusReport {
  state: string;
  /** `lastPid`: the pid of the last daemon, when the lock is free (it stopped or was killed) */
  daemon: { running: boolean; pid: number | null; lastPid?: number };
  needsJc: { session: string; question: string; since: string } | null;
  queue: { depth: number; rejected: number };
  sessions: Record<string, { pending: number; awaitingAck: boolean }>;
  history: { chars: number; turns: number; conversations: Record<string, { chars: number; turns: number }> };
  lastError: { message: string; at: string } | null;
  retry: { kind: "transient" | "permanent"; attempt: number; nextTryAt: string; since: string; message: string } | null;
  cost: { totalUsd: number; todayUsd: number; calls: number; unpricedCalls: number };
  snapshotError?: string;
}

async function queueDepth(paths: RelayPaths): Promise<number> {
  try {
    return (await readdir(paths.queue)).filter((n) => !isInProgressName(n)).length;
  } catch (err) {
    if (isErrno(err, "ENOENT")) return 0;
    throw err;
  }
}

const iso = (ms: number) => new Date(ms).toISOString();

export async function readStatus(paths: RelayPaths, sessionIds: string[], now = Date.now()): Promise<StatusReport> {
  const lock = probeLock(paths.lock);
  const snap = await readSnapshot(paths);
  const context = snap.kind === "ok" ? snap.snapshot.context : null;
  const state = snap.kind === "ok" ? stateName(snap.snapshot.value) : "idle";

  const sessions: StatusReport["sessions"] = {};
  const ids = new Set([...sessionIds, ...Object.keys(context?.outbox ?? {})]);
  for (const id of ids) {
    sessions[id] = { pending: context?.outbox[id]?.length ?? 0, awaitingAck: await inputExists(paths, id) };
  }

  const conversations: StatusReport["history"]["conversations"] = {};
  let chars = 0;
  let turns = 0;
  for (const [name, entries] of await readAllHistories(paths)) {
    const c = entries.reduce((n, e) => n + entryChars(e), 0);
    const t = entries.filter((e) => e.kind === "turn").length;
    conversations[name] = { chars: c, turns: t };
    chars += c;
    turns += t;
  }

  const ledger = await readLedger(paths.root);
  const all = summarizeLedger(ledger, "day");
  const todayKey = iso(now).slice(0, 10);
  const today = all.rows.find((r) => r.key === todayKey);

  const failure = context?.failure ?? null;
  return {
    state,
    daemon: lock.held ? { running: true, pid: lock.pid } : { running: false, pid: null, ...(lock.lastPid ? { lastPid: lock.lastPid } : {}) },
    needsJc: context?.needsJc ? { session: context.needsJc.session, question: context.needsJc.question, since: iso(context.needsJc.since) } : null,
    queue: { depth: await queueDepth(paths), rejected: await countRejected(paths) },
    sessions,
    history: { chars, turns, conversations },
    lastError: context?.lastError ? { message: context.lastError.message, at: iso(context.lastError.at) } : null,
    retry: failure
      ? { kind: failure.kind, attempt: failure.attempt, nextTryAt: iso(failure.nextAt), since: iso(failure.since), message: failure.message }
      : null,
    cost: { totalUsd: all.totalUsd, todayUsd: today?.usd ?? 0, calls: ledger.length, unpricedCalls: all.unpricedCalls },
    ...(snap.kind === "invalid" ? { snapshotError: snap.error } : {}),
  };
}

export function formatStatus(s: StatusReport): string {
  const lines = [
    `state:     ${s.state}${
      s.daemon.running
        ? ` (daemon running, pid ${s.daemon.pid ?? "?"})`
        : s.daemon.lastPid
          ? ` (no daemon running: pid ${s.daemon.lastPid} was killed without releasing state/.lock, which is free)`
          : " (no daemon running)"
    }`,
  ];
  if (s.needsJc) lines.push(`needs JC:  ${s.needsJc.session} asks: ${s.needsJc.question.slice(0, 300).replace(/\s+/g, " ")}`);
  if (s.retry) {
    lines.push(
      s.retry.kind === "transient"
        ? `retrying:  attempt ${s.retry.attempt} failed (${s.retry.message}); next try at ${s.retry.nextTryAt}`
        : `paused:    ${s.retry.message}; next probe at ${s.retry.nextTryAt} (or run: relay resume)`,
    );
  }
  lines.push(`queue:     ${s.queue.depth} waiting, ${s.queue.rejected} rejected`);
  for (const [id, v] of Object.entries(s.sessions)) {
    lines.push(`  ${id}: ${v.pending} pending${v.awaitingAck ? ", input.txt awaiting acknowledgement" : ""}`);
  }
  lines.push(`history:   ${s.history.turns} turns, ${s.history.chars} chars`);
  lines.push(`cost:      $${s.cost.todayUsd.toFixed(4)} today, $${s.cost.totalUsd.toFixed(4)} all time (${s.cost.calls} calls${s.cost.unpricedCalls ? `, ${s.cost.unpricedCalls} price unknown` : ""})`);
  if (s.lastError) lines.push(`last error: ${s.lastError.message} (${s.lastError.at})`);
  if (s.snapshotError) lines.push(`warning:   ${s.snapshotError}`);
  return lines.join("\n");
}
