import { Flags } from "@oclif/core";
import { ensureTopic, loadConfig, type RelayConfig } from "../config.js";
import { createClient } from "../anthropic.js";
import { startDaemon } from "../daemon.js";
import { acquireLock } from "../lock.js";
import { createLogger } from "../log.js";
import { createNotifier } from "../ntfy.js";
import { ensureDirs } from "../store.js";
import { RelayCommand, UsageError } from "./base.js";

export default class Run extends RelayCommand {
  static override description = "Run the relay daemon in the foreground (SIGINT/SIGTERM: finish the current step, exit 0).";
  static override flags = {
    "dry-run": Flags.boolean({ description: "reply with a fixed acknowledgement instead of calling the API (no key needed)" }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Run);
    const paths = this.resolvePaths(flags.root);
    await ensureDirs(paths.root);
    let config: RelayConfig = await loadConfig(paths);
    const dryRun = flags["dry-run"];
    const apiKey = config.anthropic.apiKey;
    if (!dryRun && !apiKey) {
      throw new UsageError("ANTHROPIC_API_KEY is not set: put it in .env or the environment (or try --dry-run)");
    }
    await ensureDirs(paths.queue, paths.rejected, paths.dispatch, paths.state, paths.logs, paths.history);
    const held = await acquireLock(paths.lock);
    if (!held.ok) {
      throw new UsageError(`another relay is running on ${paths.root} (pid ${held.pid ?? "unknown"} holds state/.lock)`, 1);
    }
    try {
      const topic = await ensureTopic(paths);
      config = { ...config, ntfy: { ...config.ntfy, topic } };
      const log = createLogger({ logsDir: paths.logs, terminal: process.stderr, secrets: [apiKey, config.ntfy.token] });
      const notifier = createNotifier({ server: config.ntfy.server, topic, token: config.ntfy.token }, log);
      const client = dryRun || !apiKey ? null : createClient({ apiKey, ...(config.anthropic.baseUrl ? { baseUrl: config.anthropic.baseUrl } : {}), timeoutMs: config.apiTimeoutMs });
      log.info({ root: paths.root, dryRun, sessions: config.sessions.map((s) => s.id), model: config.model }, "relay starting");
      const handle = await startDaemon({ paths, config: () => config, log, notifier, client, now: Date.now, random: Math.random });
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
      process.on("SIGINT", onSignal);
      process.on("SIGTERM", onSignal);
      const code = await handle.done;
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      if (code !== 0) this.exit(code);
    } finally {
      held.lock.release();
    }
  }
}
