import { Flags } from "@oclif/core";
import { RelayCommand } from "./base.js";

export default class Chart extends RelayCommand {
  static override examples = ["<%= config.bin %> chart > docs/machines.mmd", "<%= config.bin %> chart --machine conversation"];
  static override description =
    "Print the relay's state machines as Mermaid stateDiagram-v2 (derived from their definitions): the root machine (the API gate), then the machine of each conversation.";
  static override flags = {
    machine: Flags.string({ description: "print only this machine", options: ["root", "conversation"] }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Chart);
    const { relayCharts } = await import("../status/chart.js");
    const charts = (await relayCharts()).filter((c) => flags.machine === undefined || c.name === flags.machine);
    this.log(charts.map((c) => (flags.machine ? c.chart : `%% ${c.name}\n${c.chart}`).trimEnd()).join("\n\n"));
  }
}
