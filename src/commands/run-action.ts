// What `relay run` does once its flags are parsed, free of oclif so that bin/relay.js can run
// it without loading oclif (../commands/fast/hot.ts): oclif and its dependencies were a quarter
// of the daemon's start-up and about 13 MB of its resident memory for the whole of its life. The
// oclif command ./run.ts calls it too. RUN_FLAGS must match the oclif flags
// (test/unit/fast-path.test.ts checks).
import type { RelayPaths } from "../config/paths.js";
import { ConfigError, EXIT, UsageError } from "../errors.js";
import type { StatusFile } from "../status/status-file.js";
import type { FlagSpecs, ParsedFlags } from "./fast/argv.js";

export const RUN_FLAGS = {
  root: { kind: "string" },
  "dry-run": { kind: "boolean" },
  http: { kind: "string" },
} as const satisfies FlagSpecs;

/**
 * The daemon on `rootPaths` (the root --root names), in the foreground, until a signal stops it;
 * returns its exit code. Expected failures are thrown as UsageError or ConfigError.
 */
export async function runRelay(flags: Omit<ParsedFlags<typeof RUN_FLAGS>, "root">, rootPaths: RelayPaths): Promise<number> {
  // Before the modules load: start-up does not need a young generation that grows (../runtime/young-generation.ts).
  const [{ holdYoungGeneration }, { keepWasmOnBaseline }] = await Promise.all([import("../runtime/young-generation.js"), import("../runtime/wasm-baseline.js")]);
  const releaseYoungGeneration = holdYoungGeneration();
  // fetch's HTTP parser (WebAssembly) stays on V8's baseline compiler: its optimizing compile was the daemon's memory peak.
  keepWasmOnBaseline();
  // Loaded here, not at the top: bin/relay.js loads this module (RUN_FLAGS) for every command line.
  const [{ createClient }, { SpendTracker, unpricedUnderBudget }, { ensureTopic, loadConfig }, { startDaemon }, { createRelayDeps }, { LedgerSummary }, { ASIDE_BYTES, summarizeAside }, { acquireLock }, { createLogger }, { createNotifier }, { startConfigReloader }, { ensureDirs }] =
    await Promise.all([
      import("../anthropic/messages.js"),
      import("../costs/budget.js"),
      import("../config/config.js"),
      import("../runtime/daemon.js"),
      import("../runtime/compose.js"),
      import("../costs/ledger-summary.js"),
      import("../costs/ledger-aside.js"),
      import("../store/lock.js"),
      import("../runtime/log.js"),
      import("../operator/ntfy.js"),
      import("../config/reload.js"),
      import("../store/files.js"),
    ]);
  const [{ subscribeReplies }, { takeReplyFromPhone }, { redactingNotifier, redactorFor }] = await Promise.all([import("../operator/phone-replies.js"), import("../operator/phone.js"), import("../runtime/redact.js")]);
  const dryRun = flags["dry-run"];
  const { dryRunPaths } = await import("../config/paths.js");
  const paths = dryRun ? dryRunPaths(rootPaths) : rootPaths;
  await ensureDirs(paths.root);
  // A budget never fails open: a configuration it could not count is refused, at start and on every reload.
  const loadRunnable = async () => {
    const config = await loadConfig(paths);
    const unpriced = unpricedUnderBudget(config);
    if (unpriced !== null) throw new ConfigError(unpriced);
    return config;
  };
  const initial = await loadRunnable();
  let listen: { host: string; port: number } | null = null;
  const spec = flags.http ?? initial.statusHttp;
  if (spec !== undefined) {
    const { parseListen } = await import("../status/http/listen.js");
    try {
      listen = parseListen(spec);
    } catch (err) {
      throw new UsageError(`--http: ${(err as Error).message}`);
    }
  }
  const apiKey = initial.anthropic.apiKey;
  if (!dryRun && !apiKey) {
    throw new UsageError("ANTHROPIC_API_KEY is not set: put it in .env or the environment (or try --dry-run)");
  }
  await ensureDirs(paths.queue, paths.rejected, paths.dispatch, paths.state, paths.logs, paths.history);
  const held = await acquireLock(paths.lock);
  if (!held.ok) {
    throw new UsageError(`another relay is running on ${paths.root} (pid ${held.pid ?? "unknown"} holds state/.lock)`, EXIT.alreadyRunning);
  }
  try {
    const topic = await ensureTopic(paths);
    const replyTopic = await ensureTopic(paths, process.env, "NTFY_REPLY_TOPIC");
    const withTopic = (c: typeof initial): typeof initial => ({ ...c, ntfy: { ...c.ntfy, topic, replyTopic } });
    // The one redaction step, for every way out of the process (log, status, snapshot, notifications, page):
    // the key, the tokens, the topics (generated ones included) and the NATS credentials.
    const redact = redactorFor(withTopic(initial));
    const log = createLogger({ logsDir: paths.logs, rotation: { maxBytes: initial.limits.logMaxBytes, keep: initial.limits.logFiles }, terminal: process.stderr, redact });
    const notifier = redactingNotifier(createNotifier({ server: initial.ntfy.server, topic, token: initial.ntfy.token }, log), redact);
    const reloader = startConfigReloader({
      paths,
      initial: withTopic(initial),
      load: async () => withTopic(await loadRunnable()),
      log,
      onInvalid: (message) => notifier.notify({ title: "relay: config.yaml edit ignored", message, priority: 4, tags: ["warning"] }),
    });
    // Made once the relay is ready (below): never on the path to ready, never in a dry run.
    let made: ReturnType<typeof createClient> | null = null;
    const client = dryRun || !apiKey ? null : () => (made ??= createClient({ apiKey, ...(initial.anthropic.baseUrl ? { baseUrl: initial.anthropic.baseUrl } : {}), timeoutMs: initial.apiTimeoutMs }));
    // The ledger's totals: state/costs.summary.json plus the ledger's tail since it was saved, read
    // once the relay is ready (below). With no summary yet that is the whole ledger (100,000 lines:
    // half a second); every call, and status.json's first write, waits for today's spend from it.
    const ledger = await LedgerSummary.open(paths.root);
    let ledgerRead: () => void = () => undefined;
    const readLedger = new Promise<void>((resolve) => (ledgerRead = resolve)).then(async () => {
      const unread = await ledger.unreadBytes();
      if (unread > ASIDE_BYTES) {
        const aside = await summarizeAside(paths.root);
        if (aside.saved) await ledger.reopen();
        log.info({ bytes: unread, ...(aside.saved ? {} : { err: aside.error }) }, aside.saved ? "cost ledger summarized by a worker process" : "cost ledger: the worker process failed, so the relay reads it itself");
      }
      await ledger.refresh();
      await ledger.save().catch((err: unknown) => log.warn({ err: (err as Error).message }, "cannot save state/costs.summary.json"));
      return ledger.allCells();
    });
    const spend = SpendTracker.seededLater(Date.now, readLedger);
    // transport: nats loads the NATS client here only (never on the file path or in the hooks).
    let nats: Awaited<ReturnType<typeof import("../transport/nats/start.js").startRelaySide>> | undefined;
    if (initial.transport === "nats" && initial.nats) {
      const [{ startRelaySide }, { NatsSetupError }, { jcTakenFrom }] = await Promise.all([import("../transport/nats/start.js"), import("../transport/nats/errors.js"), import("../runtime/compose.js")]);
      try {
        nats = await startRelaySide({
          paths,
          settings: initial.nats,
          log,
          registered: () => new Set(reloader.current().sessions.map((s) => s.id)),
          localSessions: () => reloader.current().sessions.filter((s) => s.host === undefined).map((s) => s.id),
          agentName: initial.agentName ?? "relay",
          pollMs: initial.pollIntervalMs,
          parseJc: jcTakenFrom,
          alarm: (message) => {
            log.error({}, message);
            notifier.notify({ title: "relay: NATS", message, priority: 4, tags: ["warning"] });
          },
        });
      } catch (err) {
        if (err instanceof NatsSetupError) throw new UsageError(err.message, 1);
        throw err;
      }
    }
    log.info({ root: paths.root, dryRun, sessions: initial.sessions.map((s) => s.id), model: initial.model }, "relay starting");
    // The status page comes up first, so its URL can go on the needs-JC notification.
    const listeners = new Set<() => void>();
    let daemonStatus: () => StatusFile | null = () => null;
    let statusServer: { url: string; close(): Promise<void> } | null = null;
    if (listen) {
      const { startStatusServer } = await import("../status/http/server.js");
      try {
        statusServer = await startStatusServer({
          paths,
          config: reloader.current,
          listen,
          ...(initial.httpToken ? { token: initial.httpToken } : {}),
          log,
          ledger,
          redact,
          maxClients: initial.limits.pageClients,
          ...(initial.publicUrl === undefined ? {} : { publicUrl: initial.publicUrl }),
          current: () => daemonStatus(),
          subscribe: (listener) => {
            listeners.add(listener);
            return () => listeners.delete(listener);
          },
        });
      } catch (err) {
        throw new UsageError(`cannot serve the status page: ${(err as Error).message}`, 1);
      }
    }
    if (initial.publicUrl !== undefined && !statusServer) log.warn({}, "public_url is set but the status page is off: the notifications get no Status button (serve it with --http or status_http)");
    const links = {
      replyUrl: `${initial.ntfy.server}/${replyTopic}`,
      ...(initial.ntfy.token ? { token: initial.ntfy.token } : {}),
      // public_url: the page as the phone reaches it (a reverse proxy, a VPN name); its token still applies
      ...(statusServer ? { statusUrl: initial.publicUrl ?? statusServer.url } : {}),
    };
    const deps = await createRelayDeps({ paths, config: reloader.current, log, notifier, client, spend, ledger, links, redact, ...(nats ? { nats } : {}) });
    const handle = await startDaemon(deps);
    daemonStatus = () => handle.status();
    ledgerRead();
    // Once the ledger is read (or could not be): calls need some room (up to 2 MB a semi-space).
    void readLedger.finally(releaseYoungGeneration).catch(() => undefined);
    // A ledger it cannot read leaves the budgets uncounted: the relay stops rather than spend blind.
    let ledgerFailed = false;
    readLedger.catch((err: unknown) => {
      ledgerFailed = true;
      log.fatal({ err: err instanceof Error ? err.message : String(err) }, "relay stopping: cannot read state/costs.jsonl, so today's spend is unknown");
      handle.stop();
    });
    // The SDK loads once the relay is ready, off the path to ready and before the first call
    // needs it (a first call that loaded it itself took seconds on a loaded machine).
    if (client) void client().catch((err: unknown) => log.error({ err: err instanceof Error ? err.message : String(err) }, "cannot load the Anthropic SDK"));
    const pageUpdates = handle.actor.subscribe(() => {
      for (const listener of listeners) listener();
    });
    // JC's answers from the phone: the reply topic, taken exactly like state/jc_input.txt.
    const stopReplies = new AbortController();
    const replies = subscribeReplies({
      server: initial.ntfy.server,
      topic: replyTopic,
      ...(initial.ntfy.token ? { token: initial.ntfy.token } : {}),
      paths,
      log,
      signal: stopReplies.signal,
      onMessage: (m) => takeReplyFromPhone(paths, reloader.current(), m, notifier),
    });
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals) => {
      signals += 1;
      if (signals === 1) {
        log.info({ signal }, "stopping after the current step (send the signal again to exit at once)");
        handle.stop();
      } else {
        log.warn({ signal }, "exiting at once");
        held.lock.release();
        process.exit(130);
      }
    };
    const onHangup = () => void reloader.reload("SIGHUP");
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
    process.on("SIGHUP", onHangup);
    const stopped = await handle.done;
    const code = ledgerFailed ? 1 : stopped;
    await nats?.stop();
    stopReplies.abort();
    await replies;
    pageUpdates.unsubscribe();
    await statusServer?.close();
    reloader.close();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    process.off("SIGHUP", onHangup);
    return code;
  } finally {
    held.lock.release();
  }
}
