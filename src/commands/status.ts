import { Flags } from "@oclif/core";
import type { StatusReport } from "../status/report.js";
import { RelayCommand } from "./base.js";
import { statusOf } from "./status-action.js";

export default class Status extends RelayCommand {
  static override examples = ["<%= config.bin %> status --root ~/relay", "<%= config.bin %> status --json | jq .state"];
  static override description = "Show what the relay is doing: state, open questions, queue, conversations, sessions, history, errors, costs.";
  static override enableJsonFlag = true;
  static override flags = {
    verbose: Flags.boolean({ char: "v", description: "show each open question whole, not only its start" }),
  };

  async run(): Promise<StatusReport> {
    const { flags } = await this.parse(Status);
    const { report, text } = await statusOf(flags);
    this.log(text);
    return report;
  }
}
