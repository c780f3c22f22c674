import { RelayCommand } from "./base.js";

export default class Chart extends RelayCommand {
  static override description = "Print the relay's state machine as a Mermaid stateDiagram-v2 (derived from its definition).";

  async run(): Promise<void> {
    const [{ relayMachine }, { toMermaid }] = await Promise.all([import("../../machines/relay.js"), import("../status/chart.js")]);
    this.log(toMermaid(relayMachine).trimEnd());
  }
}
