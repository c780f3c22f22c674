import { RelayCommand } from "../base.js";

export interface NatsInitResult {
  ok: boolean;
  url: string;
  /** the streams, buckets and consumers this run created */
  created: string[];
  problems: string[];
}

export default class NatsInit extends RelayCommand {
  static override description =
    "Create the relay's streams, buckets and consumers on the NATS server (transport: nats), as relay run would at its first start, and record the root as verified: one line per object created. Changes nothing that exists; an object configured differently is reported (exit 1) and nothing is created.";
  static override examples = ["<%= config.bin %> nats init --root ~/relay", "<%= config.bin %> nats init --json"];
  static override enableJsonFlag = true;

  async run(): Promise<NatsInitResult> {
    const { flags } = await this.parse(NatsInit);
    const paths = this.resolvePaths(flags.root);
    const [{ loadAgentConfig, natsSecrets }, { createLogger }, { ensureDirs }] = await Promise.all([
      import("../../config/config.js"),
      import("../../runtime/log.js"),
      import("../../store/files.js"),
    ]);
    const config = await loadAgentConfig(paths);
    const [{ shownUrl }, { topologyOnce, writeVerifiedMarker }] = await Promise.all([import("../../transport/nats/connection.js"), import("../../transport/nats/start.js")]);
    const log = createLogger({ terminal: null, secrets: natsSecrets(config.nats) });
    const result: NatsInitResult = { ok: false, url: shownUrl(config.nats.url), created: [], problems: [] };
    const made = await topologyOnce(config.nats, "relay nats init", log, true);
    if (made.ok) {
      result.created.push(...made.report.created);
      result.problems.push(...made.report.problems);
      if (made.report.problems.length === 0) {
        await ensureDirs(paths.state);
        await writeVerifiedMarker(paths, config.nats, made.report.envCreated);
      }
    } else {
      result.problems.push(made.error);
    }
    result.ok = result.problems.length === 0;
    if (!this.jsonEnabled()) {
      for (const what of result.created) this.log(`created ${what}`);
      if (result.ok) this.log(`ok: ${result.created.length === 0 ? "everything was already there, as expected" : `${result.created.length} created, everything as expected`} (${result.url}, prefix ${config.nats.prefix}, replicas ${config.nats.replicas})`);
      for (const p of result.problems) this.log(p);
    }
    if (!result.ok) process.exitCode = 1;
    return result;
  }
}
