import { Flags } from "@oclif/core";
import type { ConfiguredSession, RootRole, StatusReport } from "../status/report.js";
import { RelayCommand, UsageError } from "./base.js";

/** `relay status` on a directory that is no relay root: one line, exit 1. */
class NotARootError extends UsageError {
  constructor(root: string) {
    super(`${root} is not a relay root (no config.yaml, no state/): pass --root DIR, set RELAY_ROOT, or run: relay init ${root}`, 1);
  }
}

export default class Status extends RelayCommand {
  static override description = "Show what the relay is doing: state, open questions, queue, conversations, sessions, history, errors, costs.";
  static override enableJsonFlag = true;
  static override flags = {
    verbose: Flags.boolean({ char: "v", description: "show each open question whole, not only its start" }),
  };

  async run(): Promise<StatusReport> {
    const { flags } = await this.parse(Status);
    const paths = this.resolvePaths(flags.root);
    const [{ loadAgentConfig, loadConfig, natsSecrets }, { formatStatus, isRelayRoot, readStatus }, { redactDeep, redactorFor, scrubber, secretsFromEnv }] = await Promise.all([
      import("../config/config.js"),
      import("../status/report.js"),
      import("../runtime/redact.js"),
    ]);
    if (!(await isRelayRoot(paths))) throw new NotARootError(paths.root);
    let sessions: ConfiguredSession[] = [];
    let role: RootRole = {};
    // The secrets never appear in the output, even if a file written by an earlier version quotes one.
    let redact = scrubber(secretsFromEnv(process.env));
    try {
      const config = await loadConfig(paths, process.env, { seed: false });
      sessions = config.sessions;
      redact = redactorFor(config);
      if (config.transport === "nats") role = { transport: "nats" };
    } catch {
      // an agent's root (transport: nats) has a config of its own; status still reports from the
      // state files when config.yaml is broken or missing
      try {
        const agent = await loadAgentConfig(paths, process.env);
        sessions = agent.sessions.map((id) => ({ id }));
        role = { transport: "nats", agent: agent.agentName ?? "(named by --name)" };
        redact = scrubber([...secretsFromEnv(process.env), ...natsSecrets(agent.nats)]);
      } catch {
        // neither: the files alone
      }
    }
    const report = redactDeep(await readStatus(paths, sessions, Date.now(), { role }), redact);
    this.log(formatStatus(report, flags.verbose ? { questionChars: Number.POSITIVE_INFINITY } : {}));
    return report;
  }
}
