import { stat } from "node:fs/promises";
import { Flags } from "@oclif/core";
import type { RelayPaths } from "../config/paths.js";
import type { Logger } from "../runtime/log.js";
import { RelayCommand, UsageError } from "./base.js";

export default class Agent extends RelayCommand {
  static override examples = ["<%= config.bin %> agent --root ~/relay-laptop", { description: "Name this host's agent and point it at the relay's NATS server", command: "<%= config.bin %> agent --root ~/relay-laptop --name laptop --nats nats://relay-host:4222" }];
  static override description =
    "Serve this root's sessions for a relay on another host over NATS (transport: nats): queue/ to the relay, its replies to dispatch/<session>/input.txt, their deletion back, state/jc_input.txt to it, and its status to state/remote_status.json.";
  static override flags = {
    nats: Flags.string({ description: "the NATS server URL (overrides NATS_URL and nats.url)", helpValue: "URL" }),
    name: Flags.string({ description: "this agent's name (overrides agent.name in config.yaml)" }),
    "take-over": Flags.boolean({ description: "take this root's sessions from the agent that serves them now" }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Agent);
    const [{ loadAgentConfig, natsSecrets, AGENT_NAME }, { acquireLock }, { createLogger }, { ensureDirs, removeStaleTemporaries }] = await Promise.all([
      import("../config/config.js"),
      import("../store/lock.js"),
      import("../runtime/log.js"),
      import("../store/files.js"),
    ]);
    const paths = this.resolvePaths(flags.root);
    const config = await loadAgentConfig(paths);
    const settings = flags.nats === undefined ? config.nats : { ...config.nats, url: flags.nats };
    if (!/^(nats|tls):\/\/\S+$/.test(settings.url)) throw new UsageError("--nats: expected a nats:// or tls:// URL");
    const name = flags.name ?? config.agentName;
    if (name === undefined) throw new UsageError("this agent has no name: set agent.name in config.yaml or pass --name NAME");
    if (!AGENT_NAME.test(name)) throw new UsageError(`--name: expected an agent name matching ${AGENT_NAME.source}`);
    await ensureDirs(paths.queue, paths.rejected, paths.dispatch, paths.state, paths.logs);
    const held = await acquireLock(paths.lock);
    if (!held.ok) throw new UsageError(`another relay is running on ${paths.root} (pid ${held.pid ?? "unknown"} holds state/.lock)`, 1);
    try {
      // Temporaries of atomic writes (state/agent.json, rejections) a killed agent left behind: we hold the lock.
      for (const dir of [paths.state, paths.root, paths.rejected]) await removeStaleTemporaries(dir);
      const log = createLogger({ logsDir: paths.logs, terminal: process.stderr, secrets: natsSecrets(settings) }).child({ agent: name });
      const [{ bringUp }, { NatsAgent }, { NatsSetupError }, { crashPoint }] = await Promise.all([
        import("../transport/nats/start.js"),
        import("../transport/nats/agent.js"),
        import("../transport/nats/errors.js"),
        import("../runtime/crash-points.js"),
      ]);
      // config.yaml's sessions, followed while the agent runs (an invalid edit keeps the running list, one error line)
      const sessions = followAgentSessions(paths, config.sessions, log, () => loadAgentConfig(paths));
      let agent: InstanceType<typeof NatsAgent> | null = null;
      let link: Awaited<ReturnType<typeof bringUp>>;
      try {
        link = await bringUp({
          paths,
          settings,
          clientName: `relay agent ${name}`,
          log,
          relay: false,
          onLink: async (l, names) => {
            const a = new NatsAgent({ paths, link: l, names, name, sessions: () => sessions.current(), log, pollMs: config.pollIntervalMs, takeOver: flags["take-over"], builtIn: false, crashPoint });
            await a.start();
            agent = a;
          },
        });
      } catch (err) {
        if (err instanceof NatsSetupError) throw new UsageError(err.message, 1);
        throw err;
      }
      log.info({ root: paths.root, sessions: config.sessions, connected: link.connected() }, "agent started");
      const stopped = new Promise<NodeJS.Signals>((resolve) => {
        process.once("SIGINT", () => resolve("SIGINT"));
        process.once("SIGTERM", () => resolve("SIGTERM"));
      });
      const signal = await stopped;
      log.info({ signal }, "agent stopping");
      const running = agent as InstanceType<typeof NatsAgent> | null;
      sessions.close();
      if (running) await running.stop();
      await link.stop();
      log.info({}, "agent stopped");
    } finally {
      held.lock.release();
    }
  }
}

/** The session list of an agent's config.yaml, re-read when the file changes (checked every 5 s). */
function followAgentSessions(paths: RelayPaths, initial: string[], log: Logger, load: () => Promise<{ sessions: string[] }>): { current(): readonly string[]; close(): void } {
  let sessions = initial;
  let stamp = "";
  let lastError = "";
  const check = async () => {
    const now = await stat(paths.config).then((s) => `${s.mtimeMs}:${s.size}`, () => "-");
    if (now === stamp) return;
    const first = stamp === "";
    stamp = now;
    if (first) return;
    try {
      sessions = (await load()).sessions;
      lastError = "";
    } catch (err) {
      const message = (err as Error).message;
      if (message !== lastError) log.error({}, `config edit ignored, the running sessions stay: ${message}`);
      lastError = message;
    }
  };
  void check();
  const timer = setInterval(() => void check(), 5_000);
  timer.unref();
  return { current: () => sessions, close: () => clearInterval(timer) };
}
