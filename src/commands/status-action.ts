// What `relay status` does once its flags are parsed, free of oclif so that bin/relay.js can run
// it without loading oclif (./fast/status.ts); the oclif command ./status.ts calls it too.
// STATUS_FLAGS must match the oclif flags (test/unit/fast-path.test.ts checks).
import { pathsForRoot } from "../config/paths.js";
import type { ConfiguredSession, RootRole, StatusReport } from "../status/report.js";
import type { FlagSpecs, ParsedFlags } from "./fast/argv.js";

export const STATUS_FLAGS = {
  root: { kind: "string" },
  verbose: { kind: "boolean", char: "v" },
  json: { kind: "boolean" },
} as const satisfies FlagSpecs;

/** The report (what --json prints) and its text (what is printed without --json). */
export async function statusOf(flags: Omit<ParsedFlags<typeof STATUS_FLAGS>, "json">): Promise<{ report: StatusReport; text: string }> {
  const paths = pathsForRoot(flags.root);
  const [{ loadAgentConfig, loadConfig, natsSecrets }, { NotARootError }, { formatStatus, isRelayRoot, readStatus }, { redactDeep, redactorFor, scrubber, secretsFromEnv }] = await Promise.all([
    import("../config/config.js"),
    import("../config/root.js"),
    import("../status/report.js"),
    import("../runtime/redact.js"),
  ]);
  if (!(await isRelayRoot(paths))) throw new NotARootError(paths.root);
  let sessions: ConfiguredSession[] = [];
  let role: RootRole = {};
  // The secrets never appear in the output, even if a file written by an earlier version quotes one.
  let redact = scrubber(secretsFromEnv(process.env));
  try {
    const config = await loadConfig(paths, process.env, { seed: false, keepCopy: false });
    sessions = config.sessions;
    redact = redactorFor(config);
    if (config.transport === "nats") role = { transport: "nats" };
  } catch {
    // an agent's root (transport: nats) has a config of its own; status still reports from the
    // state files when config.yaml is broken or missing
    try {
      const agent = await loadAgentConfig(paths, process.env, { keepCopy: false });
      sessions = agent.sessions.map((id) => ({ id }));
      role = { transport: "nats", agent: agent.agentName ?? "(named by --name)" };
      redact = scrubber([...secretsFromEnv(process.env), ...natsSecrets(agent.nats)]);
    } catch {
      // neither: the files alone
    }
  }
  const report = redactDeep(await readStatus(paths, sessions, Date.now(), { role }), redact);
  return { report, text: formatStatus(report, flags.verbose ? { questionChars: Number.POSITIVE_INFINITY } : {}) };
}
