import { relayMachine } from "../../machines/relay.js";
import { toMermaid } from "../chart.js";
import { RelayCommand } from "./base.js";

export default class Chart extends RelayCommand {
  static override description = "Print the relay's state machine as a Mermaid stateDiagram-v2 (derived from its definition).";

  async run(): Promise<void> {
    this.log(toMermaid(relayMachine).trimEnd());
  }
}
