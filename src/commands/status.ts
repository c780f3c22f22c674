import { Flags } from "@oclif/core";
import type { StatusReport } from "../status/report.js";
import { RelayCommand } from "./base.js";

export default class Status extends RelayCommand {
  static override description = "Show what the relay is doing: state, needs-JC question, queue, sessions, history, errors, costs.";
  static override enableJsonFlag = true;
  static override flags = {
    verbose: Flags.boolean({ char: "v", description: "also show per-conversation history sizes" }),
  };

  async run(): Promise<StatusReport> {
    const { flags } = await this.parse(Status);
    const paths = this.resolvePaths(flags.root);
    const [{ loadConfig }, { formatStatus, readStatus }] = await Promise.all([import("../config/config.js"), import("../status/report.js")]);
    let sessions: string[] = [];
    try {
      sessions = (await loadConfig(paths, process.env, { seed: false })).sessions.map((s) => s.id);
    } catch {
      // status still reports from the state files when config.yaml is broken or missing
    }
    const report = await readStatus(paths, sessions);
    this.log(formatStatus(report));
    if (flags.verbose) {
      for (const [name, c] of Object.entries(report.history.conversations)) this.log(`  conversation ${name}: ${c.turns} turns, ${c.chars} chars`);
    }
    return report;
  }
}
