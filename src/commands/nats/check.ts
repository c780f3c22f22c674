import { RelayCommand } from "../base.js";

export interface NatsCheckResult {
  ok: boolean;
  url: string;
  server: { version: string; maxPayload: number } | null;
  problems: string[];
}

export default class NatsCheck extends RelayCommand {
  static override description = "Check the NATS server and the relay's streams, buckets and consumers (transport: nats): one line per problem, exit 1 if any.";
  static override enableJsonFlag = true;

  async run(): Promise<NatsCheckResult> {
    const { flags } = await this.parse(NatsCheck);
    const paths = this.resolvePaths(flags.root);
    const [{ loadAgentConfig, natsSecrets }, { createLogger }] = await Promise.all([import("../../config/config.js"), import("../../runtime/log.js")]);
    const config = await loadAgentConfig(paths);
    const [{ shownUrl }, { topologyOnce }] = await Promise.all([import("../../transport/nats/connection.js"), import("../../transport/nats/start.js")]);
    const log = createLogger({ terminal: null, secrets: natsSecrets(config.nats) });
    const result: NatsCheckResult = { ok: false, url: shownUrl(config.nats.url), server: null, problems: [] };
    const seen = await topologyOnce(config.nats, "relay nats check", log, false);
    if (seen.ok) {
      result.server = seen.server;
      result.problems.push(...seen.report.problems);
    } else {
      result.problems.push(seen.error);
    }
    result.ok = result.problems.length === 0;
    if (!this.jsonEnabled()) {
      if (result.ok) this.log(`ok: nats-server ${result.server?.version ?? "?"} at ${result.url}, streams, buckets and consumers as expected`);
      for (const p of result.problems) this.log(p);
    }
    if (!result.ok) process.exitCode = 1; // the report is still printed (under --json, as the result)
    return result;
  }
}
