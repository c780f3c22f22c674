import { RelayCommand, UsageError } from "../base.js";

export interface NatsCheckResult {
  ok: boolean;
  url: string;
  server: { version: string; maxPayload: number } | null;
  problems: string[];
}

export default class NatsCheck extends RelayCommand {
  static override examples = ["<%= config.bin %> nats check --root ~/relay", "<%= config.bin %> nats check --root ~/relay --json"];
  static override description = "Check the NATS server and the relay's streams, buckets and consumers (transport: nats): one line per problem, exit 1 if any.";
  static override enableJsonFlag = true;

  async run(): Promise<NatsCheckResult> {
    const { flags } = await this.parse(NatsCheck);
    const paths = this.resolvePaths(flags.root);
    const [{ loadAgentConfig, natsSecrets }, { createLogger }] = await Promise.all([import("../../config/config.js"), import("../../runtime/log.js")]);
    const config = await loadAgentConfig(paths);
    const [{ connectNats, shownUrl }, { ensureTopology }, { natsNames }, { messageOf }] = await Promise.all([
      import("../../transport/nats/connection.js"),
      import("../../transport/nats/topology.js"),
      import("../../transport/nats/names.js"),
      import("../../../machines/types.js"),
    ]);
    const log = createLogger({ terminal: null, secrets: natsSecrets(config.nats) });
    const result: NatsCheckResult = { ok: false, url: shownUrl(config.nats.url), server: null, problems: [] };
    try {
      const link = await connectNats(config.nats, "relay nats check", log);
      result.server = link.server;
      try {
        const report = await ensureTopology(link, natsNames(config.nats.prefix), config.nats.replicas, { create: false, relayConsumers: true });
        result.problems.push(...report.problems);
      } finally {
        await link.nc.close();
      }
    } catch (err) {
      result.problems.push(messageOf(err));
    }
    result.ok = result.problems.length === 0;
    if (!this.jsonEnabled()) {
      if (result.ok) this.log(`ok: nats-server ${result.server?.version ?? "?"} at ${result.url}, streams, buckets and consumers as expected`);
      for (const p of result.problems) this.log(p);
    }
    if (!result.ok) process.exitCode = 1; // the report is still printed (under --json, as the result)
    return result;
  }

  protected override async catch(err: Error & { exitCode?: number; code?: string }): Promise<unknown> {
    if (err instanceof UsageError && this.jsonEnabled()) {
      this.logJson({ error: err.message });
      this.exit(err.exitCode);
    }
    return super.catch(err);
  }
}
