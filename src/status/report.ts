// `relay status`: the CONTRACT §9 object, from files only (works while the daemon runs). The
// daemon's state/status.json is the base; over it goes what only a reader knows at read time:
// whether a daemon holds the lock, the queue's depth, and which input.txt files exist. A root
// that has no status.json yet (fresh, or last run by the single-machine version) is described
// from config.yaml, the history files and the cost ledger.
import { readdir, stat } from "node:fs/promises";
import { readAllHistories, entryChars } from "../history/conversation-store.js";
import { inputExists } from "../transport/file/dispatch.js";
import { LedgerSummary } from "../costs/ledger-summary.js";
import { probeLock } from "../store/lock.js";
import type { RelayPaths } from "../config/paths.js";
import { countRejected, isInProgressName } from "../transport/file/queue.js";
import { isErrno } from "../store/files.js";
import { formatAge, type RelayMirror, readRelayMirror } from "./remote-status.js";
import { type ConversationView, type QuestionView, readStatusFile, type StatusFile, type StatusFileRead } from "./status-file.js";

export interface StatusReport {
  /** CONTRACT §9's precedence: needsJc, else paused/backingOff, else the busiest conversation's state */
  state: string;
  /** `lastPid`: the pid of the last daemon, when the lock is free (it stopped or was killed) */
  daemon: { running: boolean; pid: number | null; lastPid?: number };
  /** the oldest open question */
  needsJc: StatusFile["needsJc"];
  /** every open question, oldest first */
  questions: QuestionView[];
  queue: { depth: number; rejected: number };
  conversations: Record<string, ConversationView>;
  /** `conversation`: the conversation the session's turns belong to, when known */
  sessions: Record<string, { pending: number; awaitingAck: boolean; conversation?: string }>;
  history: { chars: number; turns: number };
  lastError: StatusFile["lastError"];
  retry: StatusFile["retry"];
  /** null until a daemon has written state/status.json */
  calls: StatusFile["calls"] | null;
  cost: StatusFile["cost"];
  /** when the daemon last wrote state/status.json; null when it never has */
  updatedAt: string | null;
  /** state/status.json exists but cannot be read: the report comes from the other files */
  statusError?: string;
  /** permission prompts chat-Claude is deciding, and the latest decisions with who made them (absent without a daemon's status.json) */
  permissions?: NonNullable<StatusFile["permissions"]>;
  /** `transport: nats` only (CONTRACT §11) */
  transport?: "nats";
  /** on an agent's root: `daemon` is the local `relay agent`, and the rest is the relay's status mirrored over NATS */
  relay?: RelayMirrorView;
}

/** How an agent's root sees the relay on another host. */
export interface RelayMirrorView {
  agent: string;
  /** the mirror is younger than 30 s: the relay's heartbeat reaches this host */
  reachable: boolean;
  /** when the agent last rewrote the mirror (this host's clock), and how long ago */
  mirroredAt: string | null;
  ageSeconds: number | null;
  /** the relay's last heartbeat, on the relay host's clock */
  heartbeatAt: string | null;
}

/** The root's role, from its config.yaml: the relay's own, or a `relay agent`'s (`agent`: its name). */
export interface RootRole {
  transport?: "files" | "nats";
  agent?: string;
}

/** What the reader takes from config.yaml: the sessions and their conversations. */
export interface ConfiguredSession {
  id: string;
  /** unknown on an agent's root: the relay's status says it */
  conversation?: string;
}

/** The answer to "is DIR a relay root?": a directory with config.yaml or state/. */
export async function isRelayRoot(paths: RelayPaths): Promise<boolean> {
  const isA = async (path: string, dir: boolean) => {
    try {
      const st = await stat(path);
      return dir ? st.isDirectory() : st.isFile();
    } catch {
      return false;
    }
  };
  return (await isA(paths.root, true)) && ((await isA(paths.config, false)) || (await isA(paths.state, true)));
}

async function queueDepth(paths: RelayPaths): Promise<number> {
  try {
    return (await readdir(paths.queue)).filter((n) => !isInProgressName(n)).length;
  } catch (err) {
    if (isErrno(err, "ENOENT")) return 0;
    throw err;
  }
}

const utcDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/** Everything but what is overlaid at read time. */
type DaemonView = Omit<StatusReport, "daemon" | "queue" | "sessions" | "statusError"> & { sessions: StatusFile["sessions"] };

/** The daemon's own view, when it has written one. */
function fromStatusFile(file: StatusFile, now: number): DaemonView {
  const written = Date.parse(file.updatedAt);
  // the file says what "today" was when it was written; every call is in it, so a later day has spent nothing yet
  const stale = Number.isFinite(written) && utcDay(written) < utcDay(now);
  return {
    state: file.state,
    needsJc: file.needsJc,
    questions: file.questions,
    conversations: file.conversations,
    sessions: file.sessions,
    history: file.history,
    lastError: file.lastError,
    retry: file.retry,
    calls: file.calls,
    cost: stale ? { ...file.cost, todayUsd: 0 } : file.cost,
    updatedAt: file.updatedAt,
    ...(file.permissions === undefined ? {} : { permissions: file.permissions }),
  };
}

/** A root without status.json: idle, its conversations from config.yaml and the history files, costs from the ledger. */
async function fromFiles(paths: RelayPaths, configured: readonly ConfiguredSession[], now: number): Promise<DaemonView> {
  const conversations: Record<string, ConversationView> = {};
  const conversation = (id: string): ConversationView => (conversations[id] ??= { state: "idle", sessions: [], chars: 0, turns: 0, question: null });
  const sessions: DaemonView["sessions"] = {};
  for (const s of configured) {
    if (s.conversation === undefined) continue;
    conversation(s.conversation).sessions.push(s.id);
    sessions[s.id] = { pending: 0, conversation: s.conversation };
  }
  let chars = 0;
  let turns = 0;
  for (const [name, entries] of await readAllHistories(paths)) {
    const c = conversation(name);
    c.chars = entries.reduce((n, e) => n + entryChars(e), 0);
    c.turns = entries.filter((e) => e.kind === "turn").length;
    chars += c.chars;
    turns += c.turns;
  }

  // the saved summary plus the ledger's tail: bounded however long the ledger
  const ledger = await LedgerSummary.load(paths.root);
  if (ledger.worthSaving) await ledger.save().catch(() => undefined); // a cache: a read-only root still gets its report
  const all = ledger.totals();
  return {
    state: "idle",
    needsJc: null,
    questions: [],
    conversations,
    sessions,
    history: { chars, turns },
    lastError: null,
    retry: null,
    calls: null,
    cost: { totalUsd: all.totalUsd, todayUsd: ledger.spentOn(utcDay(now)), calls: all.calls, unpricedCalls: all.unpricedCalls },
    updatedAt: null,
  };
}

/** `held`: the daemon's status as it holds it in memory (the status page in `relay run`), instead of reading state/status.json. */
export async function readStatus(
  paths: RelayPaths,
  configured: readonly ConfiguredSession[],
  now = Date.now(),
  opts: { file?: StatusFile; role?: RootRole } = {},
): Promise<StatusReport> {
  const lock = probeLock(paths.lock);
  const agent = opts.role?.agent;
  const mirror = agent === undefined ? null : await readRelayMirror(paths, now);
  const file: StatusFileRead = opts.file
    ? { kind: "ok", status: opts.file }
    : mirror === null
      ? await readStatusFile(paths)
      : mirror.kind !== "none" && mirror.status !== null
        ? { kind: "ok", status: mirror.status }
        : { kind: "none" };
  const base = file.kind === "ok" ? fromStatusFile(file.status, now) : await fromFiles(paths, configured, now);

  const sessions: StatusReport["sessions"] = {};
  // An agent's root shows the sessions that live on it; the relay's status knows every host's.
  const ids = new Set([...configured.map((s) => s.id), ...(agent === undefined ? Object.keys(base.sessions) : [])]);
  for (const id of ids) {
    const known = base.sessions[id];
    const conversation = known?.conversation ?? configured.find((s) => s.id === id)?.conversation;
    sessions[id] = { pending: known?.pending ?? 0, awaitingAck: await inputExists(paths, id), ...(conversation === undefined ? {} : { conversation }) };
  }

  return {
    state: base.state,
    daemon: lock.held ? { running: true, pid: lock.pid } : { running: false, pid: null, ...(lock.lastPid ? { lastPid: lock.lastPid } : {}) },
    needsJc: base.needsJc,
    questions: base.questions,
    queue: { depth: await queueDepth(paths), rejected: await countRejected(paths) },
    conversations: base.conversations,
    sessions,
    history: base.history,
    lastError: base.lastError,
    retry: base.retry,
    calls: base.calls,
    cost: base.cost,
    updatedAt: base.updatedAt,
    ...(base.permissions === undefined ? {} : { permissions: base.permissions }),
    ...(file.kind === "invalid" ? { statusError: `state/status.json cannot be read (${file.error}); shown from the other files` } : {}),
    ...(opts.role?.transport === "nats" ? { transport: "nats" as const } : {}),
    ...(agent === undefined || mirror === null ? {} : { relay: mirrorView(agent, mirror) }),
  };
}

function mirrorView(agent: string, mirror: RelayMirror): RelayMirrorView {
  if (mirror.kind === "none") return { agent, reachable: false, mirroredAt: null, ageSeconds: null, heartbeatAt: null };
  return {
    agent,
    reachable: mirror.kind === "fresh",
    mirroredAt: mirror.mirror.mirroredAt,
    ageSeconds: Number.isFinite(mirror.ageMs) ? Math.round(mirror.ageMs / 1000) : null,
    heartbeatAt: mirror.mirror.relayHeartbeatAt,
  };
}

const QUESTION_CHARS = 300;
const oneLine = (text: string, max: number) => {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > max ? `${flat.slice(0, max)}…` : flat;
};

export function formatStatus(s: StatusReport, opts: { questionChars?: number } = {}): string {
  const daemonName = s.relay ? `relay agent ${s.relay.agent}` : "daemon";
  const lines = [
    `state:     ${s.state}${
      s.relay
        ? s.daemon.running
          ? ` (${daemonName} running, pid ${s.daemon.pid ?? "?"})`
          : ` (no relay agent running here: start one with relay agent)`
        : s.daemon.running
        ? ` (daemon running, pid ${s.daemon.pid ?? "?"})`
        : s.daemon.lastPid
          ? ` (no daemon running: pid ${s.daemon.lastPid} was killed without releasing state/.lock, which is free)`
          : " (no daemon running)"
    }`,
  ];
  if (s.relay) {
    const age = s.relay.ageSeconds === null ? "" : `, mirrored ${formatAge(s.relay.ageSeconds * 1000)} ago`;
    lines.push(
      s.relay.mirroredAt === null
        ? "relay:     not reached yet from this host (over NATS); what follows is this root's own files"
        : `relay:     ${s.relay.reachable ? "reachable" : "UNREACHABLE (no heartbeat for over 30 s)"} over NATS${age}; what follows is the relay's status as last mirrored here`,
    );
  }
  for (const q of s.questions) {
    lines.push(`needs JC:  ${q.id} from ${q.session} (${q.conversation}, since ${q.since}): ${oneLine(q.question, opts.questionChars ?? QUESTION_CHARS)}`);
  }
  if (s.questions.length > 1) lines.push(`           answer one with: relay jc --question ID TEXT`);
  if (s.retry) {
    lines.push(
      s.retry.kind === "transient"
        ? `retrying:  attempt ${s.retry.attempt} failed (${s.retry.message}); next try at ${s.retry.nextTryAt}`
        : `paused:    ${s.retry.message}; next probe at ${s.retry.nextTryAt} (or run: relay resume)`,
    );
  }
  lines.push(`queue:     ${s.queue.depth} waiting, ${s.queue.rejected} rejected`);
  for (const [id, c] of Object.entries(s.conversations)) {
    lines.push(`conversation ${id}: ${c.state}${c.question ? ` (question ${c.question})` : ""}, sessions ${c.sessions.join(", ") || "none"}, ${c.turns} turns, ${c.chars} chars`);
  }
  for (const [id, v] of Object.entries(s.sessions)) {
    lines.push(`  ${id}: ${v.pending} pending${v.awaitingAck ? ", input.txt awaiting acknowledgement" : ""}`);
  }
  lines.push(`history:   ${s.history.turns} turns, ${s.history.chars} chars`);
  if (s.calls) lines.push(`calls:     ${s.calls.inFlight} in flight (at most ${s.calls.maxParallel})`);
  lines.push(
    `cost:      $${s.cost.todayUsd.toFixed(4)} today, $${s.cost.totalUsd.toFixed(4)} all time (${s.cost.calls} calls${s.cost.unpricedCalls ? `, ${s.cost.unpricedCalls} price unknown` : ""})`,
  );
  for (const id of s.permissions?.deciding ?? []) lines.push(`permission: ${id} is being decided by chat-Claude (permissions.policy)`);
  for (const d of (s.permissions?.recent ?? []).slice(-3)) {
    lines.push(`permission: ${d.id}${d.session ? ` (${d.session})` : ""} ${d.allow ? "allowed" : "denied"} by ${d.by}: ${oneLine(d.reason, 120)}`);
  }
  if (s.lastError) lines.push(`last error: ${s.lastError.message} (${s.lastError.at})`);
  if (s.statusError) lines.push(`warning:   ${s.statusError}`);
  return lines.join("\n");
}
